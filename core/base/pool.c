/* Large blocks (tensors, scratch) carved out of one arena that keeps its
 * pages between layers and passes.
 *
 * Memory the process has not touched before costs a page fault and the
 * kernel's zeroing of each page; memory it gives back costs a TLB shootdown
 * on every core when unmapped, and on a virtual machine that hands freed
 * memory back to its host, the next first touch costs the host's fault too:
 * on this project's VM 0.17 s to 17 s per GB against 0.1 s to rewrite
 * memory already held (docs/PERFORMANCE-NOTES.md).  A forward pass frees
 * and allocates blocks of a few sizes over and over, so reusing the same
 * pages is most of what a pass can save.
 *
 * The arena is one range of address space, reserved (MAP_NORESERVE) but
 * not touched, in grains of one huge page, each known to be resident
 * (touched since it was last given back) or not.  Blocks are extents of
 * it: the free extent that fits with the fewest grains to fault in, then
 * the smallest, split; else the top of the used range grows.  Freed
 * extents merge with their neighbours.  Before a block takes grains that
 * are not resident, as many resident free grains go back to the system
 * (MADV_DONTNEED), so the arena holds no more than the live blocks did at
 * their peak.  A pass starts with at most the memory plan's spare bytes of
 * resident free grains, and between passes the arena keeps RETAINED_BYTES
 * at most.
 *
 * Without the arena (no room to reserve it, an address-space limit, an
 * AddressSanitizer build, which must see every block's bounds) blocks are
 * plain allocations.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <string.h>

#ifdef G_OS_UNIX
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

/* AddressSanitizer (gcc says so with a macro, clang with a feature test) */
#if defined(__SANITIZE_ADDRESS__)
#define VAE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VAE_ASAN 1
#endif
#endif

#define POOLED_MIN_BYTES ((gsize) 1 << 20)
/* Blocks are whole grains: a transparent huge page each, so a grain is
 * either resident or not, and giving one back splits no huge page. */
#define GRAIN ((gsize) 2 << 20)
/* Resident free bytes kept between passes, so the next pass (the decode
 * after an encode, the next image) does not fault its pages in again: on
 * this project's VM, keeping 1 GB instead of 512 MB (and not trimming
 * within a pass) took the TAEF2 bf16 round trip at 1024² from 2.4 s to
 * 1.9 s. */
#define RETAINED_BYTES ((gsize) 1 << 30)
/* Resident free bytes a pass starts with at most (set by the memory plan). */
static gsize held_bytes = (gsize) 768 << 20;

typedef struct
{
  gsize offset, bytes;
} Extent;

static GMutex  pool_lock;
static gint    open_passes;
static guint8 *base;          /* the arena, NULL until first used or where it cannot be */
static gsize   reserved;      /* its bytes of address space */
static gsize   top;           /* bytes from BASE ever handed out; beyond: untouched */
static guint8 *resident;      /* per grain: touched since last given back */
static GArray *free_extents;  /* Extent, by offset */
static gsize   resident_free; /* bytes of resident grains in free extents */

/* Whether an address-space limit (ulimit -v) is set: it cannot see into
 * the reservation, so the arena then neither starts nor grows, and blocks
 * beyond what it has come from (and are refused by) the system. */
static gboolean
address_space_capped (void)
{
#ifdef G_OS_UNIX
  struct rlimit as;

  return getrlimit (RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY;
#else
  return FALSE;
#endif
}

static gboolean
arena_ready (void)
{
#if defined(G_OS_UNIX) && defined(MAP_NORESERVE) && !defined(VAE_ASAN)
  static gboolean tried;
  gsize           want = (gsize) sysconf (_SC_PHYS_PAGES) * (gsize) sysconf (_SC_PAGESIZE);
  gpointer        p = MAP_FAILED;

  if (tried)
    return base != NULL;
  tried = TRUE;
  if (address_space_capped ())
    return FALSE;
  /* the machine's memory, or less where the system refuses that much;
   * one grain more to align the start to a huge page */
  for (want = want / GRAIN * GRAIN; want >= ((gsize) 256 << 20); want = want / 2 / GRAIN * GRAIN)
    if ((p = mmap (NULL, want + GRAIN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) != MAP_FAILED)
      break;
  if (p == MAP_FAILED)
    return FALSE;
  base = (guint8 *) (((guintptr) p + GRAIN - 1) & ~(guintptr) (GRAIN - 1));
  reserved = want;
#ifdef MADV_HUGEPAGE
  madvise (base, reserved, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
  resident = g_new0 (guint8, reserved / GRAIN);
  free_extents = g_array_new (FALSE, FALSE, sizeof (Extent));
  return TRUE;
#else
  return FALSE;
#endif
}

static Extent *
extent (guint i)
{
  return &g_array_index (free_extents, Extent, i);
}

/* Resident grains in [OFFSET, OFFSET + BYTES). */
static gsize
resident_grains (gsize offset, gsize bytes)
{
  gsize n = 0;

  for (gsize g = offset / GRAIN; g < (offset + bytes) / GRAIN; g++)
    n += resident[g];
  return n;
}

/* Gives resident free grains back, from the end of the largest free
 * extents, until at most KEEP resident free bytes are left. */
static void
trim (gsize keep)
{
  while (resident_free > keep)
    {
      gint largest = -1;
      for (guint i = 0; i < free_extents->len; i++)
        if (resident_grains (extent (i)->offset, extent (i)->bytes) > 0 &&
            (largest < 0 || extent (i)->bytes > extent (largest)->bytes))
          largest = (gint) i;
      if (largest < 0)
        break;
      for (gsize g = (extent (largest)->offset + extent (largest)->bytes) / GRAIN;
           g-- > extent (largest)->offset / GRAIN && resident_free > keep;)
        if (resident[g])
          {
#ifdef G_OS_UNIX
            madvise (base + g * GRAIN, GRAIN, MADV_DONTNEED);
#endif
            resident[g] = 0;
            resident_free -= GRAIN;
          }
    }
}

/* The free extent for BYTES: the fewest grains to fault in, then the
 * smallest; -1 if none is large enough. */
static gint
best_fit (gsize bytes)
{
  gint  best = -1;
  gsize best_fresh = 0;

  for (guint i = 0; i < free_extents->len; i++)
    {
      const Extent *e = extent (i);
      gsize         fresh;
      if (e->bytes < bytes)
        continue;
      fresh = bytes / GRAIN - resident_grains (e->offset, bytes);
      if (best < 0 || fresh < best_fresh ||
          (fresh == best_fresh && e->bytes < extent (best)->bytes))
        best = (gint) i, best_fresh = fresh;
    }
  return best;
}

/* A block of BYTES (whole grains) from the arena, or NULL when it has no
 * room; *DIRTY says whether some of its grains may hold old data. */
static gpointer
carve (gsize bytes, gboolean *dirty)
{
  const gint best = best_fit (bytes);
  gsize      offset, reused;

  if (best >= 0)
    {
      Extent *e = extent (best);
      offset = e->offset;
      e->offset += bytes;
      e->bytes -= bytes;
      if (e->bytes == 0)
        g_array_remove_index (free_extents, best);
    }
  else /* grow the used range, from the last free extent when it ends at the top */
    {
      const Extent *last = free_extents->len > 0 ? extent (free_extents->len - 1) : NULL;
      offset = last && last->offset + last->bytes == top ? last->offset : top;
      if (offset + bytes > reserved || address_space_capped ())
        return NULL;
      if (offset != top)
        g_array_remove_index (free_extents, free_extents->len - 1);
      top = offset + bytes;
    }
  reused = resident_grains (offset, bytes) * GRAIN;
  resident_free -= reused;
  *dirty = reused > 0;
  for (gsize g = offset / GRAIN; g < (offset + bytes) / GRAIN; g++)
    resident[g] = 1;
  /* the grains it faults in: as many resident free ones go back first */
  trim (resident_free > bytes - reused ? resident_free - (bytes - reused) : 0);
  return base + offset;
}

/* The extent at OFFSET back into the free list, merged with its neighbours. */
static void
release (gsize offset, gsize bytes)
{
  Extent e = { offset, bytes };
  guint  i = 0;

  while (i < free_extents->len && extent (i)->offset < offset)
    i++;
  resident_free += resident_grains (offset, bytes) * GRAIN;
  if (i < free_extents->len && extent (i)->offset == offset + bytes)
    {
      e.bytes += extent (i)->bytes;
      g_array_remove_index (free_extents, i);
    }
  if (i > 0 && extent (i - 1)->offset + extent (i - 1)->bytes == offset)
    extent (i - 1)->bytes += e.bytes;
  else
    g_array_insert_val (free_extents, i, e);
}

void
vae_pool_set_hold (gsize bytes)
{
  g_mutex_lock (&pool_lock);
  held_bytes = bytes;
  g_mutex_unlock (&pool_lock);
}

void
vae_pool_begin (void)
{
  g_mutex_lock (&pool_lock);
  if (open_passes++ == 0 && base)
    trim (held_bytes); /* what the last pass retained counts against this one's hold */
  g_mutex_unlock (&pool_lock);
}

void
vae_pool_end (void)
{
  g_mutex_lock (&pool_lock);
  if (--open_passes == 0 && base)
    trim (RETAINED_BYTES);
  g_mutex_unlock (&pool_lock);
}

gpointer
vae_scratch_alloc (gsize bytes, gboolean zeroed, gsize *capacity, const gchar *what, GError **error)
{
  gpointer data = NULL;
  gboolean dirty = FALSE;

  *capacity = bytes;
  if (bytes >= POOLED_MIN_BYTES && bytes <= G_MAXSIZE - GRAIN)
    {
      g_mutex_lock (&pool_lock);
      if (arena_ready ())
        {
          const gsize grains = (bytes + GRAIN - 1) / GRAIN * GRAIN;
          if ((data = carve (grains, &dirty)))
            *capacity = grains;
          if (open_passes == 0) /* within a pass, carve keeps to the live peak */
            trim (RETAINED_BYTES);
        }
      g_mutex_unlock (&pool_lock);
    }
  if (!data)
    return vae_try_alloc (bytes, what, error); /* fresh pages are zero anyway */
  if (zeroed && dirty)
    memset (data, 0, bytes);
  return data;
}

void
vae_scratch_free (gpointer data, gsize capacity)
{
  if (!data)
    return;
  if (base && (guint8 *) data >= base && (guint8 *) data < base + reserved)
    {
      g_mutex_lock (&pool_lock);
      release ((gsize) ((guint8 *) data - base), capacity);
      if (open_passes == 0)
        trim (RETAINED_BYTES);
      g_mutex_unlock (&pool_lock);
      return;
    }
  g_free (data);
}
