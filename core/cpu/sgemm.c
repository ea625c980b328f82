/* A small fp32 matrix product on one thread, for Winograd's chunks and
 * direct.c's: A (m × k, packed once per convolution: the transformed
 * weights, or the weights) times B (k × n, n ≤ a few panels, rows in
 * cache), so B needs no packing.  A block of C stays in registers while k
 * runs (a k over 128 in slices of 64), as in bf16.c: 8 × 32 in 16 of
 * AVX-512's 32 registers, or 6 × 16 in 12 of AVX2's 16.  A is read from
 * panels of as many rows, so that one step's values share a cache line.
 * These are one call per product of a chunk (e.g. 64 × 64 × 64), too
 * small to pack B for.  The big band products stay with OpenBLAS, or go
 * through vae_sgemm_block where OpenBLAS fell back to kernels without AVX2
 * (gemm.c).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <string.h>

#define PANEL  32 /* AVX-512: columns per block, two registers */
#define ROWS   8  /* AVX-512: rows of A per block */
#define PANEL2 16 /* AVX2: columns per block, two registers */
#define ROWS2  6  /* AVX2: rows of A per block (12 accumulators) */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#define AVX512_TARGET __attribute__ ((target ("avx512f")))

gboolean
vae_cpu_has_avx512 (void)
{
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("avx512f");
}

/* Steps of k per pass over A's panels beyond K_WHOLE, for both kernels:
 * a panel of B's rows for them (8 KB on AVX-512, 4 KB on AVX2) stays in
 * L1 while every panel of A passes over it.  With a whole k of 576 (a
 * 64-channel 3×3 conv's im2col columns, direct.c) each panel of A streamed
 * 37 KB of B from L2; a profile of a TAEF2 pass put those products near 66
 * GFLOP/s on a Zen 3, and sliced they ran at ~94 in the conv alone.  C
 * carries the sums between slices, in fp32 as the registers do, so the
 * result is the same to the bit.  Winograd's products (k ≤ 128) keep one
 * pass, as measured. */
#define K_SLICE 64
#define K_WHOLE 128

/* C rows [i0, i0 + R) × columns [n0, n0 + cols) = A·B, or += A·B when
 * ADD, A's rows from the panel AP (ROWS values per step of k, zeros past
 * its last row).  All ROWS rows are computed, R stored.  As on AVX2
 * (block2), a step's values of A share a cache line: rows of A apart were
 * eight streams. */
static inline __attribute__ ((always_inline)) AVX512_TARGET void
block (const gfloat *ap, gint i0, gint k, const gfloat *b, gsize ldb, gfloat *c, gsize ldc, gint n0,
       gint cols, gint r_count, const gboolean add)
{
  __m512          acc[ROWS][2];
  const __mmask16 low = vae_columns_mask (cols), high = vae_columns_mask (cols - 16);

  for (gint r = 0; r < ROWS; r++)
    if (add && r < r_count)
      {
        const gfloat *row = c + (gsize) (i0 + r) * ldc + n0;
        acc[r][0] = _mm512_maskz_loadu_ps (low, row);
        acc[r][1] = _mm512_maskz_loadu_ps (high, row + 16);
      }
    else
      acc[r][0] = acc[r][1] = _mm512_setzero_ps ();
#pragma GCC unroll 4
  for (gint l = 0; l < k; l++)
    {
      const __m512 b0 = _mm512_maskz_loadu_ps (low, b + (gsize) l * ldb + n0);
      const __m512 b1 = _mm512_maskz_loadu_ps (high, b + (gsize) l * ldb + n0 + 16);
      for (gint r = 0; r < ROWS; r++)
        {
          const __m512 u = _mm512_set1_ps (ap[(gsize) l * ROWS + r]);
          acc[r][0] = _mm512_fmadd_ps (u, b0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps (u, b1, acc[r][1]);
        }
    }
  for (gint r = 0; r < ROWS; r++)
    if (r < r_count)
      {
        gfloat *row = c + (gsize) (i0 + r) * ldc + n0;
        _mm512_mask_storeu_ps (row, low, acc[r][0]);
        _mm512_mask_storeu_ps (row + 16, high, acc[r][1]);
      }
}

/* Every panel of A against columns [n0, n0 + cols) of B, for K steps
 * from L0 (of A's whole KA), adding to C where ADD. */
static AVX512_TARGET void
slice_product (const gfloat *a, gint m, gint ka, gint l0, gint k, const gfloat *b, gsize ldb,
               gfloat *c, gsize ldc, gint n0, gint cols, gboolean add)
{
  for (gint i0 = 0; i0 < m; i0 += ROWS)
    {
      const gfloat *ap = a + (gsize) i0 * ka + (gsize) l0 * ROWS;
      const gint    rows = MIN (ROWS, m - i0);
      if (add)
        block (ap, i0, k, b, ldb, c, ldc, n0, cols, rows, TRUE);
      else
        block (ap, i0, k, b, ldb, c, ldc, n0, cols, rows, FALSE);
    }
}

/* ---- AVX2 and FMA ----------------------------------------------------------- */

#define AVX2_TARGET __attribute__ ((target ("avx2,fma")))

static gboolean
has_avx2 (void)
{
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma");
}

/* Which of 8 lanes hold one of COLS columns. */
static inline AVX2_TARGET __m256i
lanes (gint cols)
{
  return _mm256_cmpgt_epi32 (_mm256_set1_epi32 (cols), _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7));
}

/* C rows [i0, i0 + R) × columns [n0, n0 + cols) = A·B, or += A·B when
 * ADD, A's rows from the panel AP (ROWS2 values per column of A, zeros
 * past its last row); FULL: cols is 16.  All ROWS2 rows are computed, R
 * stored.  With A's six values of a step on one cache line and the k loop
 * unrolled, 55-65 → 75 GFLOP/s on a Zen 3 (rows of A apart were six
 * streams, and the loop's own add, compare and branch shared each step's
 * cycles). */
static inline __attribute__ ((always_inline)) AVX2_TARGET void
block2 (const gfloat *ap, gint i0, gint k, const gfloat *b, gsize ldb, gfloat *c, gsize ldc,
        gint n0, gint cols, gint r_count, const gboolean full, const gboolean add)
{
  __m256        acc[ROWS2][2];
  const __m256i low = lanes (cols), high = lanes (cols - 8);

  for (gint r = 0; r < ROWS2; r++)
    if (add && r < r_count)
      {
        const gfloat *row = c + (gsize) (i0 + r) * ldc + n0;
        acc[r][0] = full ? _mm256_loadu_ps (row) : _mm256_maskload_ps (row, low);
        acc[r][1] = full ? _mm256_loadu_ps (row + 8) : _mm256_maskload_ps (row + 8, high);
      }
    else
      acc[r][0] = acc[r][1] = _mm256_setzero_ps ();
#pragma GCC unroll 4
  for (gint l = 0; l < k; l++)
    {
      const gfloat *row = b + (gsize) l * ldb + n0;
      const __m256  b0 = full ? _mm256_loadu_ps (row) : _mm256_maskload_ps (row, low);
      const __m256  b1 = full ? _mm256_loadu_ps (row + 8) : _mm256_maskload_ps (row + 8, high);
      for (gint r = 0; r < ROWS2; r++)
        {
          const __m256 u = _mm256_broadcast_ss (ap + (gsize) l * ROWS2 + r);
          acc[r][0] = _mm256_fmadd_ps (u, b0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps (u, b1, acc[r][1]);
        }
    }
  for (gint r = 0; r < ROWS2; r++)
    if (r < r_count)
      {
        gfloat *row = c + (gsize) (i0 + r) * ldc + n0;
        if (full)
          {
            _mm256_storeu_ps (row, acc[r][0]);
            _mm256_storeu_ps (row + 8, acc[r][1]);
          }
        else
          {
            _mm256_maskstore_ps (row, low, acc[r][0]);
            _mm256_maskstore_ps (row + 8, high, acc[r][1]);
          }
      }
}

/* As slice_product, on AVX2. */
static AVX2_TARGET void
slice_product2 (const gfloat *a, gint m, gint ka, gint l0, gint k, const gfloat *b, gsize ldb,
                gfloat *c, gsize ldc, gint n0, gint cols, gboolean add)
{
  for (gint i0 = 0; i0 < m; i0 += ROWS2)
    {
      const gfloat *ap = a + (gsize) i0 * ka + (gsize) l0 * ROWS2;
      const gint    rows = MIN (ROWS2, m - i0);
      if (cols == PANEL2 && add)
        block2 (ap, i0, k, b, ldb, c, ldc, n0, cols, rows, TRUE, TRUE);
      else if (cols == PANEL2)
        block2 (ap, i0, k, b, ldb, c, ldc, n0, cols, rows, TRUE, FALSE);
      else if (add)
        block2 (ap, i0, k, b, ldb, c, ldc, n0, cols, rows, FALSE, TRUE);
      else
        block2 (ap, i0, k, b, ldb, c, ldc, n0, cols, rows, FALSE, FALSE);
    }
}

gboolean
vae_cpu_has_small_sgemm (void)
{
  return vae_cpu_has_avx512 () || has_avx2 ();
}

/* Rows of A per panel: the kernel's block height. */
static gint
panel_rows (void)
{
  return vae_cpu_has_avx512 () ? ROWS : ROWS2;
}

gsize
vae_sgemm_small_a_floats (gint m, gint k)
{
  const gint rows = panel_rows ();

  return (gsize) (m + rows - 1) / rows * rows * k;
}

/* A (or Aᵀ where TRANS, times ALPHA) into panels of panel_rows () rows,
 * reading A's rows (or Aᵀ's columns) along. */
static void
pack_a (gint m, gint k, const gfloat *a, gsize lda, gboolean trans, gfloat alpha, gfloat *packed)
{
  const gint rows = panel_rows ();

  for (gint i0 = 0; i0 < m; i0 += rows)
    {
      gfloat *panel = packed + (gsize) i0 * k;
      if (trans)
        for (gint l = 0; l < k; l++)
          for (gint r = 0; r < rows; r++)
            panel[(gsize) l * rows + r] = i0 + r < m ? alpha * a[l * lda + (gsize) (i0 + r)] : 0.0f;
      else
        for (gint r = 0; r < rows; r++)
          for (gint l = 0; l < k; l++)
            panel[(gsize) l * rows + r] = i0 + r < m ? alpha * a[(gsize) (i0 + r) * lda + l] : 0.0f;
    }
}

void
vae_sgemm_small_pack_a (gint m, gint k, const gfloat *a, gsize lda, gfloat *packed)
{
  pack_a (m, k, a, lda, FALSE, 1.0f, packed);
}

gsize
vae_sgemm_block_floats (gint m, gint n, gint k, gboolean trans_b)
{
  return vae_sgemm_small_a_floats (m, k) + (trans_b ? (gsize) k * n : 0);
}

void
vae_sgemm_block (gboolean trans_a, gboolean trans_b, gint m, gint n, gint k, gfloat alpha,
                 const gfloat *a, gsize lda, gboolean a_packed, const gfloat *b, gsize ldb,
                 gfloat *c, gsize ldc, gfloat *scratch)
{
  if (k == 0) /* C = 0, as cblas_sgemm gives */
    {
      for (gint i = 0; i < m; i++)
        memset (c + (gsize) i * ldc, 0, sizeof (gfloat) * n);
      return;
    }
  if (!a_packed)
    pack_a (m, k, a, lda, trans_a, alpha, scratch);
  if (trans_b)
    {
      gfloat *bt = scratch + vae_sgemm_small_a_floats (m, k);
      for (gint l = 0; l < k; l++)
        for (gint j = 0; j < n; j++)
          bt[(gsize) l * n + j] = b[(gsize) j * ldb + l];
      b = bt;
      ldb = (gsize) n;
    }
  vae_sgemm_small (m, n, k, scratch, b, ldb, c, ldc);
}

void
vae_sgemm_small (gint m, gint n, gint k, const gfloat *a, const gfloat *b, gsize ldb, gfloat *c,
                 gsize ldc)
{
  const gboolean avx512 = vae_cpu_has_avx512 ();
  const gint     panel = avx512 ? PANEL : PANEL2, slice = k <= K_WHOLE ? k : K_SLICE;

  for (gint n0 = 0; n0 < n; n0 += panel)
    for (gint l0 = 0; l0 < k; l0 += slice)
      {
        const gint    cols = MIN (panel, n - n0), steps = MIN (slice, k - l0);
        const gfloat *bs = b + (gsize) l0 * ldb;
        if (avx512)
          slice_product (a, m, k, l0, steps, bs, ldb, c, ldc, n0, cols, l0 > 0);
        else
          slice_product2 (a, m, k, l0, steps, bs, ldb, c, ldc, n0, cols, l0 > 0);
      }
}

#else /* no x86 kernels on this compiler or architecture */

gboolean
vae_cpu_has_avx512 (void)
{
  return FALSE;
}

gboolean
vae_cpu_has_small_sgemm (void)
{
  return FALSE;
}

gsize
vae_sgemm_small_a_floats (gint m, gint k)
{
  g_return_val_if_reached (0);
}

void
vae_sgemm_small_pack_a (gint m, gint k, const gfloat *a, gsize lda, gfloat *packed)
{
  g_return_if_reached ();
}

void
vae_sgemm_small (gint m, gint n, gint k, const gfloat *a, const gfloat *b, gsize ldb, gfloat *c,
                 gsize ldc)
{
  g_return_if_reached ();
}

gsize
vae_sgemm_block_floats (gint m, gint n, gint k, gboolean trans_b)
{
  g_return_val_if_reached (0);
}

void
vae_sgemm_block (gboolean trans_a, gboolean trans_b, gint m, gint n, gint k, gfloat alpha,
                 const gfloat *a, gsize lda, gboolean a_packed, const gfloat *b, gsize ldb,
                 gfloat *c, gsize ldc, gfloat *scratch)
{
  g_return_if_reached ();
}

#endif
