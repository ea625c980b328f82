/* Checked sizes and allocation, the error domain: what
 * every other part of core builds on (it uses nothing of core itself).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#ifdef G_OS_UNIX
#include <sys/mman.h>
#include <unistd.h>
#endif

/* Blocks from this size on ask for transparent huge pages: a fresh 4 KiB
 * page costs a fault each (an encode at 512² spent a tenth of its time in
 * page faults), and the layers' strided reads across channel planes miss
 * the TLB less on 2 MiB pages. */
#define HUGE_PAGES_FROM_BYTES ((gsize) 8 << 20)

static void
advise_huge_pages (gpointer p, gsize n_bytes)
{
#if defined(G_OS_UNIX) && defined(MADV_HUGEPAGE)
  const guintptr page = (guintptr) sysconf (_SC_PAGESIZE);
  const guintptr start = ((guintptr) p + page - 1) & ~(page - 1),
                 end = ((guintptr) p + n_bytes) & ~(page - 1);

  if (n_bytes >= HUGE_PAGES_FROM_BYTES && end > start)
    madvise ((gpointer) start, end - start,
             MADV_HUGEPAGE); /* advice only: failure changes nothing */
#else
  (void) p;
  (void) n_bytes;
#endif
}

/* clang-format off */
G_DEFINE_QUARK (vae-error-quark, vae_error)
/* clang-format on */

gboolean
vae_size_mul (gsize a, gsize b, gsize *out)
{
  return g_size_checked_mul (out, a, b);
}

gboolean
vae_size_add (gsize a, gsize b, gsize *out)
{
  return g_size_checked_add (out, a, b);
}

static gpointer
try_alloc (gsize n_bytes, gboolean zeroed, const gchar *what, GError **error)
{
  gpointer p = zeroed ? g_try_malloc0 (MAX (n_bytes, 1)) : g_try_malloc (MAX (n_bytes, 1));

  if (!p)
    g_set_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY,
                 _ ("out of memory allocating %zu bytes for %s"), n_bytes, what);
  else
    advise_huge_pages (p, n_bytes);
  return p;
}

gpointer
vae_try_alloc (gsize n_bytes, const gchar *what, GError **error)
{
  return try_alloc (n_bytes, TRUE, what, error);
}

gpointer
vae_try_alloc_uninit (gsize n_bytes, const gchar *what, GError **error)
{
  return try_alloc (n_bytes, FALSE, what, error);
}

gpointer
vae_try_alloc_floats (gsize n_floats, const gchar *what, GError **error)
{
  gsize n_bytes;

  if (!vae_size_mul (n_floats, sizeof (gfloat), &n_bytes))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_LIMIT, _ ("%s: size overflows memory"), what);
      return NULL;
    }
  return vae_try_alloc (n_bytes, what, error);
}
