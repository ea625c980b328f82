/* The CPU's bfloat16 matrix product (AVX512-BF16): C = A·B with A in bf16,
 * B in fp32 rounded to bf16 as it is packed, and fp32 accumulation.
 *
 * vdpbf16ps multiplies pairs of bf16 and adds both products to one fp32
 * lane, twice the multiply-adds of an fp32 FMA per instruction.  So A's rows
 * hold their k values in pairs (k even, k + 1), one 32-bit broadcast, and B
 * is packed per panel of PANEL columns as [k/2][column][2].  A 8 × 32 block
 * of C lives in 16 registers while k runs; each panel of B is packed once
 * and used by all rows of A.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <string.h>

#define PANEL VAE_BF16_PANEL /* columns of B packed at once: two registers */
#define ROWS  8              /* rows of A per block: 16 accumulators */

gint
vae_bf16_pairs (gint k)
{
  return (k + 1) / 2;
}

void
vae_bf16_pack_rows (const gfloat *a, gint m, gint k, guint16 *packed)
{
  const gint k_even = 2 * vae_bf16_pairs (k);

  for (gint i = 0; i < m; i++)
    {
      guint16      *row = packed + (gsize) i * k_even;
      const gfloat *src = a + (gsize) i * k;
      for (gint j = 0; j < k; j++) /* vectorises: the rounding is inline */
        row[j] = vae_bf16_round (src[j]);
      if (k < k_even)
        row[k] = 0;
    }
}

void
vae_bf16_pack_rows_low (const gfloat *a, gint m, gint k, guint16 *packed)
{
  const gint k_even = 2 * vae_bf16_pairs (k);

  for (gint i = 0; i < m; i++)
    {
      guint16      *row = packed + (gsize) i * k_even;
      const gfloat *src = a + (gsize) i * k;
      for (gint j = 0; j < k; j++)
        row[j] = vae_bf16_round (src[j] - vae_bf16_value (vae_bf16_round (src[j])));
      if (k < k_even)
        row[k] = 0;
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#define BF16_TARGET __attribute__ ((target ("avx512f,avx512bw,avx512vl,avx512bf16")))

gboolean
vae_cpu_has_bf16 (void)
{
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("avx512bf16") && __builtin_cpu_supports ("avx512bw");
}

void
vae_bf16_pack_panel (const gfloat *b, gsize ldb, gint k, gint n0, gint cols, guint16 *p)
{
  vae_bf16_pack_pairs (b, ldb, k, 0, vae_bf16_pairs (k), n0, cols, FALSE, p);
}

/* b − bf16(b), what bf16 leaves of B (exact in fp32), for split products */
static inline __attribute__ ((always_inline)) BF16_TARGET __m512
bf16_residue (__m512 x)
{
  return _mm512_sub_ps (x, _mm512_cvtpbh_ps (_mm512_cvtneps_pbh (x)));
}

BF16_TARGET void
vae_bf16_pack_pairs (const gfloat *b, gsize ldb, gint k, gint kk0, gint kk1, gint n0, gint cols,
                     gboolean residue, guint16 *p)
{
  const __mmask16 low = vae_columns_mask (cols), high = vae_columns_mask (cols - 16);
  /* (row 2kk, row 2kk + 1) interleaved: lane 2j from the first, 2j + 1 from the second */
  const __m512i interleave =
      _mm512_set_epi16 (31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                        21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);

  for (gint kk = kk0; kk < kk1; kk++)
    {
      const gfloat  *r0 = b + (gsize) 2 * kk * ldb + n0;
      const gfloat  *r1 = r0 + ldb;
      const gboolean first = 2 * kk < k, second = 2 * kk + 1 < k;
      for (gint half = 0; half < 2; half++)
        {
          const __mmask16 mask = half ? high : low;
          __m512 x0 = first ? _mm512_maskz_loadu_ps (mask, r0 + 16 * half) : _mm512_setzero_ps ();
          __m512 x1 = second ? _mm512_maskz_loadu_ps (mask, r1 + 16 * half) : _mm512_setzero_ps ();
          if (residue)
            {
              x0 = bf16_residue (x0);
              x1 = bf16_residue (x1);
            }
          __m512i both = (__m512i) _mm512_cvtne2ps_pbh (x1, x0); /* x0 in lanes 0–15, x1 in 16–31 */
          _mm512_storeu_si512 (p + (gsize) (kk - kk0) * 2 * PANEL + 32 * half,
                               _mm512_permutexvar_epi16 (interleave, both));
        }
    }
}

/* C rows [i0, i0 + R) × the panel's columns += A·P (C is overwritten). */
static inline __attribute__ ((always_inline)) BF16_TARGET void
block (const guint16 *a, gint lda, gint i0, const guint16 *p, gint pairs, gfloat *c, gsize ldc,
       gint n0, gint cols, const gint r_count)
{
  __m512          acc[ROWS][2];
  const __mmask16 low = vae_columns_mask (cols), high = vae_columns_mask (cols - 16);

  for (gint r = 0; r < r_count; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps ();
  for (gint kk = 0; kk < pairs; kk++)
    {
      const __m512bh v0 = (__m512bh) _mm512_loadu_si512 (p + (gsize) kk * 2 * PANEL);
      const __m512bh v1 = (__m512bh) _mm512_loadu_si512 (p + (gsize) kk * 2 * PANEL + 32);
      for (gint r = 0; r < r_count; r++)
        {
          guint32 pair;
          memcpy (&pair, a + (gsize) (i0 + r) * lda + 2 * kk, sizeof pair);
          const __m512bh u = (__m512bh) _mm512_set1_epi32 ((gint) pair);
          acc[r][0] = _mm512_dpbf16_ps (acc[r][0], v0, u);
          acc[r][1] = _mm512_dpbf16_ps (acc[r][1], v1, u);
        }
    }
  for (gint r = 0; r < r_count; r++)
    {
      gfloat *row = c + (gsize) (i0 + r) * ldc + n0;
      _mm512_mask_storeu_ps (row, low, acc[r][0]);
      _mm512_mask_storeu_ps (row + 16, high, acc[r][1]);
    }
}

/* Every row block against one packed panel; full blocks get a constant row
 * count so that their accumulators stay in registers. */
static BF16_TARGET void
panel_product (const guint16 *a, gint m, gint k, const guint16 *p, gfloat *c, gsize ldc, gint n0,
               gint cols)
{
  const gint pairs = vae_bf16_pairs (k), lda = 2 * pairs;
  gint       i0 = 0;

  for (; i0 + ROWS <= m; i0 += ROWS)
    block (a, lda, i0, p, pairs, c, ldc, n0, cols, ROWS);
  switch (m - i0)
    {
    case 7:
      block (a, lda, i0, p, pairs, c, ldc, n0, cols, 7);
      break;
    case 6:
      block (a, lda, i0, p, pairs, c, ldc, n0, cols, 6);
      break;
    case 5:
      block (a, lda, i0, p, pairs, c, ldc, n0, cols, 5);
      break;
    case 4:
      block (a, lda, i0, p, pairs, c, ldc, n0, cols, 4);
      break;
    case 3:
      block (a, lda, i0, p, pairs, c, ldc, n0, cols, 3);
      break;
    case 2:
      block (a, lda, i0, p, pairs, c, ldc, n0, cols, 2);
      break;
    case 1:
      block (a, lda, i0, p, pairs, c, ldc, n0, cols, 1);
      break;
    default:
      break;
    }
}

/* AMX's panels are padded to whole tiles: the larger of the two */
gsize
vae_bf16_panel_elements (gint k)
{
  return MAX ((gsize) vae_bf16_pairs (k) * 2 * PANEL, vae_amx_panel_elements (k));
}

/* On AMX where A has a whole tile of rows: fewer leave the tiles mostly
 * idle, and this kernel takes them row by row. */
void
vae_gemm_bf16 (gint m, gint n, gint k, const guint16 *a, const gfloat *b, gsize ldb, gfloat *c,
               gsize ldc, guint16 *panel)
{
  if (m >= 16 && vae_cpu_has_amx ())
    {
      vae_amx_gemm (m, n, k, a, NULL, b, ldb, c, ldc, panel);
      return;
    }
  for (gint n0 = 0; n0 < n; n0 += PANEL)
    {
      vae_bf16_pack_panel (b, ldb, k, n0, MIN (PANEL, n - n0), panel);
      panel_product (a, m, k, panel, c, ldc, n0, MIN (PANEL, n - n0));
    }
}

/* C_g = A_g·B_g for g < COUNT, the panels of all products shared out
 * among the threads. */
static void
products (gint count, gint m, gint n, gint k, const guint16 *a, gsize a_stride, const gfloat *b,
          gsize ldb, gsize b_stride, gfloat *c, gsize ldc, gsize c_stride)
{
  const gint panels = (n + PANEL - 1) / PANEL;

  g_return_if_fail (vae_cpu_has_bf16 ());
  if (m >= 16 && vae_cpu_has_amx ())
    {
      vae_amx_products (count, m, n, k, a, NULL, a_stride, b, ldb, b_stride, c, ldc, c_stride);
      return;
    }
#pragma omp parallel
  {
    guint16 *p = g_new (guint16, vae_bf16_panel_elements (k));
#pragma omp for schedule(static) collapse(2)
    for (gint g = 0; g < count; g++)
      for (gint q = 0; q < panels; q++)
        vae_gemm_bf16 (m, MIN (PANEL, n - q * PANEL), k, a + g * a_stride,
                       b + g * b_stride + q * PANEL, ldb, c + g * c_stride + q * PANEL, ldc, p);
    g_free (p);
  }
}

void
vae_gemm_bf16_batch (gint count, gint m, gint n, gint k, const guint16 *a, gsize a_stride,
                     const gfloat *b, gsize b_stride, gfloat *c, gsize c_stride)
{
  products (count, m, n, k, a, a_stride, b, (gsize) n, b_stride, c, (gsize) n, c_stride);
}

void
vae_gemm_bf16_parallel (gint m, gint n, gint k, const guint16 *a, const gfloat *b, gsize ldb,
                        gfloat *c, gsize ldc)
{
  products (1, m, n, k, a, 0, b, ldb, 0, c, ldc, 0);
}

#else /* no AVX512-BF16 code on this compiler or architecture */

gboolean
vae_cpu_has_bf16 (void)
{
  return FALSE;
}

void
vae_bf16_pack_panel (const gfloat *b, gsize ldb, gint k, gint n0, gint cols, guint16 *p)
{
  g_return_if_reached ();
}

void
vae_bf16_pack_pairs (const gfloat *b, gsize ldb, gint k, gint kk0, gint kk1, gint n0, gint cols,
                     gboolean residue, guint16 *p)
{
  g_return_if_reached ();
}

gsize
vae_bf16_panel_elements (gint k)
{
  return 0;
}

void
vae_gemm_bf16 (gint m, gint n, gint k, const guint16 *a, const gfloat *b, gsize ldb, gfloat *c,
               gsize ldc, guint16 *panel)
{
  g_return_if_reached ();
}

void
vae_gemm_bf16_batch (gint count, gint m, gint n, gint k, const guint16 *a, gsize a_stride,
                     const gfloat *b, gsize b_stride, gfloat *c, gsize c_stride)
{
  g_return_if_reached ();
}

void
vae_gemm_bf16_parallel (gint m, gint n, gint k, const guint16 *a, const gfloat *b, gsize ldb,
                        gfloat *c, gsize ldc)
{
  g_return_if_reached ();
}

#endif
