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

/* Block Q (row-major over the grid of blocks) of C = alpha·op(A)·op(B). */
static inline void
product_block (const Product *p, gint q)
{
  const gint column_blocks = blocks_of (p->n, GEMM_COLUMNS);
  const gint i = q / column_blocks * GEMM_ROWS, j = q % column_blocks * GEMM_COLUMNS;
  const gint rows = MIN (GEMM_ROWS, p->m - i), cols = MIN (GEMM_COLUMNS, p->n - j);

  vae_blas_sgemm (p->trans_a, p->trans_b, rows, cols, p->k, p->alpha,
                  p->trans_a ? p->a + i : p->a + (gsize) i * p->lda, p->lda,
                  p->trans_b ? p->b + (gsize) j * p->ldb : p->b + j, p->ldb, 0.0f,
                  p->c + (gsize) i * p->ldc + j, p->ldc);
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
#pragma omp parallel for schedule(dynamic)
  for (gint q = 0; q < blocks; q++)
    product_block (&p, q);
}

void
vae_sgemm_batch (gint count, gint m, gint n, gint k, const gfloat *a, gsize a_stride,
                 const gfloat *b, gsize b_stride, gfloat *c, gsize c_stride)
{
  const Product first = { FALSE, FALSE, m, n, k, 1.0f, a, b, (gsize) k, (gsize) n, (gsize) n, c };
  const gint    blocks = product_blocks (&first);

#pragma omp parallel for schedule(dynamic) collapse(2)
  for (gint g = 0; g < count; g++)
    for (gint q = 0; q < blocks; q++)
      {
        Product p = first;
        p.a += g * a_stride;
        p.b += g * b_stride;
        p.c += g * c_stride;
        product_block (&p, q);
      }
}
