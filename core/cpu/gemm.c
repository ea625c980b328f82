/* fp32 matrix products through OpenBLAS that give the same values on any
 * number of threads.
 *
 * OpenBLAS's own threading splits a product by the thread count, and on
 * some CPUs its kernels then round differently (seen on AMD Zen 3: a
 * 64 × 1024 × 64 product differs in 12k of its 65k values between one and
 * two threads).  Here every product is cut into blocks of GEMM_ROWS ×
 * GEMM_COLUMNS of C whatever the thread count, and each block is one
 * OpenBLAS call on one of our threads (inside a parallel region, OpenBLAS's OpenMP
 * build runs single-threaded): the same calls with the same shapes, so the
 * same values, on 1 thread or 16.  Callers have passed vae_blas_ready.
 * Where OpenBLAS runs kernels without AVX2 on a CPU that has it (it did not
 * know the CPU: vae_blas_falls_back), each block goes through sgemm.c's
 * kernels instead, in every program alike: OpenBLAS picks its kernels as
 * it loads, and in a GEGL program GEGL's own matting-levin module has
 * loaded it before us.  An SD1.5 decode at 512² on 2 threads of an
 * Emerald Rapids Xeon: 14.9–16.9 s with OpenBLAS's SSE3 kernels, 5.8–6.4 s
 * with ours, 5.8–6.4 s with its AVX-512 ones (OPENBLAS_CORETYPE=SkylakeX).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

/* Large enough that packing a block's share of A and B costs little next to
 * its products (GEMM_ROWS·GEMM_COLUMNS·k multiply-adds for
 * (GEMM_ROWS + GEMM_COLUMNS)·k values packed). */
#define GEMM_ROWS    128
#define GEMM_COLUMNS 256

typedef struct
{
  gboolean      trans_a, trans_b;
  gint          m, n, k;
  gfloat        alpha;
  const gfloat *a, *b;
  gsize         lda, ldb, ldc;
  gfloat       *c;
} Product;

static inline gint
blocks_of (gint size, gint block)
{
  return (size + block - 1) / block;
}

/* One thread's scratch for sgemm.c's blocks (vae_sgemm_block_floats),
 * kept between products up to KEPT_FLOATS, and whose block of A it holds
 * packed. */
#define KEPT_FLOATS ((gsize) 2 << 20)

typedef struct
{
  gfloat       *data;
  gsize         floats, need;
  const gfloat *packed;
} Scratch;

static void
scratch_free (gpointer p)
{
  Scratch *s = p;

  g_free (s->data);
  g_free (s);
}

static GPrivate thread_scratch = G_PRIVATE_INIT (scratch_free);

/* This thread's scratch for the blocks of P, or NULL where OpenBLAS takes
 * them; its memory comes with the thread's first block.  Kept, since a
 * fresh block for each product was faulted in again (7% of an SD1.5
 * decode). */
static Scratch *
block_scratch (const Product *p)
{
  Scratch *s;

  if (!vae_blas_falls_back ())
    return NULL;
  if (!(s = g_private_get (&thread_scratch)))
    g_private_set (&thread_scratch, s = g_new0 (Scratch, 1));
  s->need =
      vae_sgemm_block_floats (MIN (GEMM_ROWS, p->m), MIN (GEMM_COLUMNS, p->n), p->k, p->trans_b);
  s->packed = NULL;
  return s;
}

/* After a product: a scratch above KEPT_FLOATS (a long k: attention over
 * every pixel) is not kept. */
static void
scratch_done (Scratch *s)
{
  if (s && s->floats > KEPT_FLOATS)
    {
      g_clear_pointer (&s->data, g_free);
      s->floats = 0;
    }
}

/* Block Q (row-major over the grid of blocks) of C = alpha·op(A)·op(B),
 * through sgemm.c where S is given: its block of A is packed once for the
 * blocks of C beside it. */
static inline void
product_block (const Product *p, gint q, Scratch *s)
{
  const gint    column_blocks = blocks_of (p->n, GEMM_COLUMNS);
  const gint    i = q / column_blocks * GEMM_ROWS, j = q % column_blocks * GEMM_COLUMNS;
  const gint    rows = MIN (GEMM_ROWS, p->m - i), cols = MIN (GEMM_COLUMNS, p->n - j);
  const gfloat *a = p->trans_a ? p->a + i : p->a + (gsize) i * p->lda;
  const gfloat *b = p->trans_b ? p->b + (gsize) j * p->ldb : p->b + j;
  gfloat       *c = p->c + (gsize) i * p->ldc + j;

  if (!s)
    {
      vae_blas_sgemm (p->trans_a, p->trans_b, rows, cols, p->k, p->alpha, a, p->lda, b, p->ldb,
                      0.0f, c, p->ldc);
      return;
    }
  if (s->floats < s->need)
    {
      g_free (s->data);
      s->data = g_new (gfloat, s->need);
      s->floats = s->need;
    }
  vae_sgemm_block (p->trans_a, p->trans_b, rows, cols, p->k, p->alpha, a, p->lda, s->packed == a, b,
                   p->ldb, c, p->ldc, s->data);
  s->packed = a;
}

static inline gint
product_blocks (const Product *p)
{
  return blocks_of (p->m, GEMM_ROWS) * blocks_of (p->n, GEMM_COLUMNS);
}

void
vae_sgemm (gboolean trans_a, gboolean trans_b, gint m, gint n, gint k, gfloat alpha,
           const gfloat *a, gsize lda, const gfloat *b, gsize ldb, gfloat *c, gsize ldc)
{
  const Product p = { trans_a, trans_b, m, n, k, alpha, a, b, lda, ldb, ldc, c };
  const gint    blocks = product_blocks (&p);

  /* even one block runs inside the team: outside a parallel region
   * OpenBLAS would split it by thread count again */
#pragma omp parallel
  {
    Scratch *s = block_scratch (&p);
#pragma omp for schedule(dynamic)
    for (gint q = 0; q < blocks; q++)
      product_block (&p, q, s);
    scratch_done (s);
  }
}

void
vae_sgemm_batch (gint count, gint m, gint n, gint k, const gfloat *a, gsize a_stride,
                 const gfloat *b, gsize b_stride, gfloat *c, gsize c_stride)
{
  const Product first = { FALSE, FALSE, m, n, k, 1.0f, a, b, (gsize) k, (gsize) n, (gsize) n, c };
  const gint    blocks = product_blocks (&first);

#pragma omp parallel
  {
    Scratch *s = block_scratch (&first);
#pragma omp for schedule(dynamic) collapse(2)
    for (gint g = 0; g < count; g++)
      for (gint q = 0; q < blocks; q++)
        {
          Product p = first;
          p.a += g * a_stride;
          p.b += g * b_stride;
          p.c += g * c_stride;
          product_block (&p, q, s);
        }
    scratch_done (s);
  }
}
