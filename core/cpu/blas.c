/* OpenBLAS, opened when a pass first needs it rather than linked in.
 *
 * Linked in, OpenBLAS starts as the program loads and maps a buffer of
 * 128 MiB per thread (Debian's build: BUFFER_SIZE = 32 << 22); when an
 * address-space limit (ulimit -v) leaves no room for them its allocator
 * retries forever (OpenBLAS issue 5289; 0.3.30 exits instead): under a
 * limit of 150–400 MB even `gegl-vae --version` hung.  Opened here, it
 * costs nothing to programs that compute nothing, and a limit too tight for
 * its buffers is an error before it starts.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <cblas.h>
#include <gmodule.h>
#include <omp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define BLAS_BUFFER_BYTES  ((gsize) 128 << 20)
#define BLAS_LIBRARY_BYTES ((gsize) 64 << 20) /* its code, data and thread stacks */

typedef void (*SgemmFunc) (enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a,
                           enum CBLAS_TRANSPOSE trans_b, blasint m, blasint n, blasint k,
                           float alpha, const float *a, blasint lda, const float *b, blasint ldb,
                           float beta, float *c, blasint ldc);
typedef void (*SetThreadsFunc) (int n);
typedef const char *(*CoreNameFunc) (void);

static GMutex       lock;
static SgemmFunc    sgemm;
static CoreNameFunc core_name;
static gint         fell_back;

/* OpenBLAS maps a buffer for each of its THREADS as it starts and one for
 * the thread that calls a product.  Whether the address space has room for
 * them is tried with a mapping of that size, given back at once. */
static gboolean
room_for_buffers (gint threads, GError **error)
{
  const gsize   page = (gsize) sysconf (_SC_PAGESIZE);
  const gsize   bytes = BLAS_LIBRARY_BYTES + (gsize) (threads + 1) * (BLAS_BUFFER_BYTES + page);
  struct rlimit limit;
  gpointer      probe;

  if (getrlimit (RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return TRUE;
  probe = mmap (NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (probe != MAP_FAILED)
    {
      munmap (probe, bytes);
      return TRUE;
    }
  g_set_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY,
               _ ("the address-space limit (ulimit -v) of %" PRIu64
                  " MiB leaves too little room for OpenBLAS, which needs about %zu MiB more with "
                  "%d threads and would otherwise wait forever; raise the limit or use fewer "
                  "threads (OMP_NUM_THREADS and GEGL_THREADS)"),
               (guint64) limit.rlim_cur >> 20, bytes >> 20, threads);
  return FALSE;
}

/* OpenBLAS's names of its kernel sets without AVX2. */
static const gchar *const pre_avx2_cores[] = {
  "Prescott", "Core2",       "Penryn",     "Dunnington",   "Nehalem",
  "Atom",     "Sandybridge", "Opteron",    "Opteron_SSE3", "Barcelona",
  "Bobcat",   "Bulldozer",   "Piledriver", "Steamroller",  "Nano",
};

const gchar *
vae_blas_core (void)
{
  CoreNameFunc f = g_atomic_pointer_get (&core_name);

  return f ? f () : NULL;
}

/* Whether OpenBLAS runs kernels without AVX2 where the CPU has it (and
 * sgemm.c's kernels): an OpenBLAS older than the CPU does not know it and
 * falls back to SSE3.  Debian 12's 0.3.21 took "Prescott" on an Intel
 * Xeon of model 207 (Emerald Rapids): 19 GFLOP/s on one core, where its
 * AVX-512 kernels, named in OPENBLAS_CORETYPE, reach 108. */
static gboolean
falls_back (void)
{
  const gchar *core = vae_blas_core ();

  if (!core || !vae_cpu_has_small_sgemm ())
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (pre_avx2_cores); i++)
    if (g_ascii_strcasecmp (core, pre_avx2_cores[i]) == 0)
      return TRUE;
  return FALSE;
}

gboolean
vae_blas_falls_back (void)
{
  return g_atomic_int_get (&fell_back);
}

static gboolean
load (GError **error)
{
  const gint     threads = MAX (vae_threads (), omp_get_max_threads ());
  GModule       *module;
  gpointer       sgemm_symbol, threads_symbol, core_symbol;
  SetThreadsFunc set_threads;
  gfloat        *warm;

  if (!room_for_buffers (threads, error))
    return FALSE;
  module = g_module_open (VAE_OPENBLAS_LIBRARY, G_MODULE_BIND_LOCAL);
  if (!module || !g_module_symbol (module, "cblas_sgemm", &sgemm_symbol) ||
      !g_module_symbol (module, "openblas_set_num_threads", &threads_symbol))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_NOT_FOUND, _ ("cannot load OpenBLAS (%s): %s"),
                   VAE_OPENBLAS_LIBRARY, g_module_error ());
      if (module)
        g_module_close (module);
      return FALSE;
    }
  if (g_module_symbol (module, "openblas_get_corename", &core_symbol))
    g_atomic_pointer_set (&core_name, (CoreNameFunc) core_symbol);
  g_atomic_int_set (&fell_back, falls_back ());
  g_module_make_resident (module);
  set_threads = (SetThreadsFunc) threads_symbol;
  set_threads (vae_threads ());
  /* one product now maps the caller's buffer while the room is known to be
   * there; later products reuse it instead of mapping one when tensors may
   * have taken the space */
  warm = g_new0 (gfloat, 3 * 256 * 256);
  ((SgemmFunc) sgemm_symbol) (CblasRowMajor, CblasNoTrans, CblasNoTrans, 256, 256, 256, 1.0f, warm,
                              256, warm + 256 * 256, 256, 0.0f, warm + 2 * 256 * 256, 256);
  g_free (warm);
  g_atomic_pointer_set (&sgemm, (SgemmFunc) sgemm_symbol);
  return TRUE;
}

gboolean
vae_blas_ready (GError **error)
{
  gboolean ready;

  if (g_atomic_pointer_get (&sgemm))
    return TRUE;
  g_mutex_lock (&lock);
  ready = sgemm || load (error);
  g_mutex_unlock (&lock);
  return ready;
}

void
vae_blas_sgemm (gboolean trans_a, gboolean trans_b, gint m, gint n, gint k, gfloat alpha,
                const gfloat *a, gsize lda, const gfloat *b, gsize ldb, gfloat beta, gfloat *c,
                gsize ldc)
{
  SgemmFunc f = g_atomic_pointer_get (&sgemm);

  /* every path to a product passed vae_blas_ready first */
  g_assert (f != NULL);
  f (CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n,
     k, alpha, a, (blasint) lda, b, (blasint) ldb, beta, c, (blasint) ldc);
}
