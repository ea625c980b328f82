/* bf16 3×3 stride-1 convolutions as direct products on AMX tiles, with no
 * im2col and no Winograd: the input is rounded to bf16, a band of rows at
 * a time, into rows of channel pairs, and every tap of the kernel is a
 * shifted view of it.
 *
 * tdpbf16ps adds A·B into a 16 × 16 fp32 tile C, A 16 rows × 32 bf16 and
 * B 16 pair rows × 16 columns of pairs.  Here C is 16 output channels × 16
 * output pixels of one image row (so it lands in the planar output as it
 * is), A the weights of 16 output channels for 32 input channels at one tap,
 * and B those 32 input channels (16 pairs) at the 16 input pixels the tap
 * reads: in the packed input P[row][pair][column] (each pair one 32-bit
 * word) that is 16 words of each of 16 pair rows, the rows a packed row's
 * width apart, wherever the tap points.  Nothing is copied per tap.
 *
 * Only the inputs and weights are rounded (the products are exact and
 * summed in fp32): more accurate than Winograd's single bf16 products, a
 * little less than its split ones, and the tiles make the 4×
 * multiplications of a direct convolution cheaper than either's transforms
 * (docs/PERFORMANCE-NOTES.md).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <omp.h>
#include <string.h>

#define TILE  16 /* a tile's rows: output channels of A and C, pair rows of B */
#define BLOCK 32 /* output channels and pixels of the 2 × 2 tiles of C a step fills */
/* Packed input of a band of rows a thread keeps in its L2 cache while it
 * runs every block of output channels over it. */
#define BAND_BYTES ((gsize) 1 << 20)

static gint
round_up (gint n, gint to)
{
  return (n + to - 1) / to * to;
}

/* The shapes of the packed operands: PAIRS channel pairs of input (whole
 * tiles), ROWS × COLS packed pixels (the output's rows and columns with a
 * one-pixel border, columns up to whole blocks), CO_TILES tiles of output
 * channels (whole blocks). */
typedef struct
{
  gint pairs, rows, cols, co_tiles;
} Packing;

static Packing
packing (const VaeConv *conv, gint out_h, gint out_w)
{
  return (Packing){ round_up (conv->in_channels, 2 * TILE) / 2, out_h + 2,
                    round_up (out_w, BLOCK) + 2, round_up (conv->out_channels, BLOCK) / TILE };
}

/* Output rows per band: a band's packed rows (two more) fill BAND_BYTES. */
static gint
band_rows (const Packing *p, gint out_h)
{
  const gsize row_bytes = (gsize) p->pairs * p->cols * sizeof (guint32);

  return (gint) CLAMP (BAND_BYTES / row_bytes, 3, (gsize) out_h + 2) - 2;
}

/* Each thread's packed band. */
static gsize
band_bytes (const Packing *p, gint out_h)
{
  return (gsize) (band_rows (p, out_h) + 2) * p->pairs * p->cols * sizeof (guint32);
}

static gsize
weight_bytes (const Packing *p)
{
  return (gsize) 9 * p->pairs * 2 * p->co_tiles * TILE * sizeof (guint16);
}

gsize
vae_amx_conv_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w)
{
  const Packing p = packing (conv, out_h, out_w);

  return omp_get_max_threads () * band_bytes (&p, out_h) + weight_bytes (&p);
}

/* Taken by default where the tiles are; GEGL_VAE_AMX=winograd (or single,
 * or direct) keeps the bf16 Winograd (or im2col) path for comparisons. */
static gboolean
enabled (void)
{
  return vae_cpu_has_amx () && vae_amx_path () == VAE_AMX_DEFAULT;
}

/* Fewer than a tile's channels would be mostly zero padding. */
gboolean
vae_amx_conv_applies (const VaeConv *conv)
{
  return vae_winograd_applies (conv) && conv->in_channels >= 2 * TILE &&
         conv->out_channels >= BLOCK && enabled ();
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

/* AMX for the products, AVX-512 for the loops around them (every CPU with
 * AMX has it). */
#define KERNEL_TARGET                                                                              \
  __attribute__ ((target ("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))

/* vae_bf16_round of 16 values, each in the low half of its 32-bit lane:
 * round to nearest even, NaN kept a (quiet) NaN. */
static inline KERNEL_TARGET __m512i
bf16_bits (__m512 v)
{
  const __m512i   u = _mm512_castps_si512 (v);
  const __m512i   lsb = _mm512_and_si512 (_mm512_srli_epi32 (u, 16), _mm512_set1_epi32 (1));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask (
      _mm512_and_si512 (u, _mm512_set1_epi32 (0x7fffffff)), _mm512_set1_epi32 (0x7f800000));
  const __m512i rounded = _mm512_srli_epi32 (
      _mm512_add_epi32 (_mm512_add_epi32 (u, _mm512_set1_epi32 (0x7fff)), lsb), 16);

  return _mm512_mask_mov_epi32 (
      rounded, nan, _mm512_or_si512 (_mm512_srli_epi32 (u, 16), _mm512_set1_epi32 (0x40)));
}

/* Pixels [IX, IX + 16) of channels S0 and S1 (NULL: zero) as pair words,
 * M the pixels that exist; each input pixel twice (nearest ×2) when UP. */
static inline KERNEL_TARGET __m512i
pair_words (const gfloat *s0, const gfloat *s1, gint ix, __mmask16 m, gboolean up)
{
  __m512 v0, v1;

  if (up) /* input pixels ix/2 … ix/2 + 7, each to two lanes */
    {
      const __m512i   twice = _mm512_set_epi32 (7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
      const __mmask16 half = (__mmask16) ((1u << ((_mm_popcnt_u32 (m) + 1) / 2)) - 1);
      v0 = _mm512_permutexvar_ps (twice, _mm512_maskz_loadu_ps (half, s0 + ix / 2));
      v1 = s1 ? _mm512_permutexvar_ps (twice, _mm512_maskz_loadu_ps (half, s1 + ix / 2))
              : _mm512_setzero_ps ();
    }
  else
    {
      v0 = _mm512_maskz_loadu_ps (m, s0 + ix);
      v1 = s1 ? _mm512_maskz_loadu_ps (m, s1 + ix) : _mm512_setzero_ps ();
    }
  return _mm512_maskz_or_epi32 (m, bf16_bits (v0), _mm512_slli_epi32 (bf16_bits (v1), 16));
}

/* Packed row R (input row R − 1, upsampled when UP), pair CP: zero where
 * the input has no such row, channel or column. */
static KERNEL_TARGET void
pack_input_row (const VaeTensor *x, gboolean up, const Packing *p, gint r, gint cp, guint32 *dst)
{
  const gint in_h = x->height << up, in_w = x->width << up, iy = r - 1;
  const gint c0 = 2 * cp, c1 = 2 * cp + 1;

  memset (dst, 0, (gsize) p->cols * sizeof (guint32));
  if (iy < 0 || iy >= in_h || c0 >= x->channels)
    return;
  {
    const gsize   plane = (gsize) x->height * x->width, row = (gsize) (iy >> up) * x->width;
    const gfloat *s0 = x->data + c0 * plane + row;
    const gfloat *s1 = c1 < x->channels ? x->data + c1 * plane + row : NULL;
    const gint    n = MIN (in_w, p->cols - 1);

    for (gint ix = 0; ix < n; ix += 16)
      {
        const __mmask16 m = (__mmask16) (n - ix >= 16 ? 0xffff : (1u << (n - ix)) - 1);
        _mm512_mask_storeu_epi32 (dst + ix + 1, m, pair_words (s0, s1, ix, m, up));
      }
  }
}

/* Weights as A tiles: [tap][pair tile][output tile][16 channels][32 inputs]. */
static void
pack_weights (const VaeConv *conv, const Packing *p, guint16 *w)
{
  const gint ci = conv->in_channels, co = conv->out_channels, k_tiles = p->pairs / TILE;

#pragma omp parallel for schedule(static) collapse(2)
  for (gint tap = 0; tap < 9; tap++)
    for (gint kt = 0; kt < k_tiles; kt++)
      for (gint ot = 0; ot < p->co_tiles; ot++)
        for (gint m = 0; m < TILE; m++)
          {
            guint16 *dst =
                w + ((((gsize) tap * k_tiles + kt) * p->co_tiles + ot) * TILE + m) * 2 * TILE;
            const gint o = ot * TILE + m;
            for (gint j = 0; j < 2 * TILE; j++)
              {
                const gint i = kt * 2 * TILE + j;
                dst[j] = o < co && i < ci
                             ? vae_bf16_round (conv->weight[((gsize) o * ci + i) * 9 + tap])
                             : 0;
              }
          }
}

/* DST[j] = act(SRC[j] + B + RES[j]) (RES may be NULL), j < N: one loop
 * per case, so that each vectorises. */
static inline KERNEL_TARGET void
epilogue_row (const gfloat *src, gfloat b, const gfloat *res, VaeAct act, gint n, gfloat *dst)
{
  gfloat v[BLOCK];

  if (res)
    for (gint j = 0; j < n; j++)
      v[j] = src[j] + b + res[j];
  else
    for (gint j = 0; j < n; j++)
      v[j] = src[j] + b;
  if (act == VAE_ACT_SILU)
    for (gint j = 0; j < n; j++)
      dst[j] = vae_activate (v[j], VAE_ACT_SILU);
  else if (act == VAE_ACT_RELU)
    for (gint j = 0; j < n; j++)
      dst[j] = vae_activate (v[j], VAE_ACT_RELU);
  else
    for (gint j = 0; j < n; j++)
      dst[j] = v[j];
}

/* y[o][oy][ox0 + j] = act(c[o][j] + bias + residual) for the block's
 * channels and pixels that exist. */
static KERNEL_TARGET void
epilogue_block (const VaeConv *conv, const gfloat *c, gint o0, gint oy, gint ox0,
                const VaeTensor *residual, VaeAct act, VaeTensor *y)
{
  const gsize plane = (gsize) y->height * y->width, at = (gsize) oy * y->width + ox0;
  const gint  n = MIN (BLOCK, y->width - ox0);

  for (gint o = o0; o < MIN (o0 + BLOCK, y->channels); o++)
    epilogue_row (c + (o - o0) * BLOCK, conv->bias ? conv->bias[o] : 0.0f,
                  residual ? residual->data + o * plane + at : NULL, act, n,
                  y->data + o * plane + at);
}

/* Output channels [32·OB, +32) × pixels [OX0, +32) of row OY, row OY of P
 * at BAND (the packed rows from the band's first on). */
static KERNEL_TARGET void
block (const Packing *p, const guint16 *w, const guint32 *band, gint band_row, gint ob, gint ox0,
       gfloat *c)
{
  const gint  k_tiles = p->pairs / TILE;
  const gsize b_stride = (gsize) p->cols * sizeof (guint32), c_stride = BLOCK * sizeof (gfloat);

  _tile_zero (0);
  _tile_zero (1);
  _tile_zero (2);
  _tile_zero (3);
  for (gint tap = 0; tap < 9; tap++)
    {
      const guint32 *b = band + (gsize) (band_row + tap / 3) * p->pairs * p->cols + ox0 + tap % 3;
      const guint16 *a = w + ((gsize) tap * k_tiles * p->co_tiles + 2 * ob) * TILE * 2 * TILE;
      for (gint kt = 0; kt < k_tiles; kt++)
        {
          const guint32 *bk = b + (gsize) kt * TILE * p->cols;
          const guint16 *ak = a + (gsize) kt * p->co_tiles * TILE * 2 * TILE;
          _tile_loadd (4, ak, 2 * TILE * sizeof (guint16));
          _tile_loadd (5, ak + TILE * 2 * TILE, 2 * TILE * sizeof (guint16));
          _tile_loadd (6, bk, b_stride);
          _tile_loadd (7, bk + TILE, b_stride);
          _tile_dpbf16ps (0, 4, 6);
          _tile_dpbf16ps (1, 4, 7);
          _tile_dpbf16ps (2, 5, 6);
          _tile_dpbf16ps (3, 5, 7);
        }
    }
  _tile_stored (0, c, c_stride);
  _tile_stored (1, c + TILE, c_stride);
  _tile_stored (2, c + TILE * BLOCK, c_stride);
  _tile_stored (3, c + TILE * BLOCK + TILE, c_stride);
}

gboolean
vae_amx_conv (const VaeConv *conv, const VaeTensor *x, gboolean up, const VaeTensor *residual,
              VaeAct act, VaeTensor *y, GError **error)
{
  const Packing p = packing (conv, y->height, y->width);
  const gint    rows = band_rows (&p, y->height), bands = (y->height + rows - 1) / rows;
  const gint    blocks = p.co_tiles / 2, threads = omp_get_max_threads ();
  const gsize   band_words = band_bytes (&p, y->height) / sizeof (guint32);
  gsize         in_capacity, w_capacity;
  guint32 *in = vae_scratch_alloc (threads * band_words * sizeof (guint32), FALSE, &in_capacity,
                                   "packed bf16 input", error);
  guint16 *w =
      in ? vae_scratch_alloc (weight_bytes (&p), FALSE, &w_capacity, "packed bf16 weights", error)
         : NULL;

  if (!w)
    {
      vae_scratch_free (in, in_capacity);
      return FALSE;
    }
  pack_weights (conv, &p, w);
  /* Each thread packs the rows of the band it works on into its own
   * buffer, which stays in its cache while every block of output channels
   * runs over it; with the units in band order a thread packs each of its
   * bands once. */
#pragma omp parallel num_threads(threads)
  {
    guint32 *packed = in + omp_get_thread_num () * band_words;
    gint     packed_band = -1;
    gfloat   c[BLOCK * BLOCK];

    vae_amx_tiles_begin ();
#pragma omp for schedule(static) collapse(2)
    for (gint band = 0; band < bands; band++)
      for (gint ob = 0; ob < blocks; ob++)
        {
          const gint y0 = band * rows, y1 = MIN (y->height, y0 + rows);
          if (band != packed_band)
            {
              for (gint r = y0; r < y1 + 2; r++)
                for (gint cp = 0; cp < p.pairs; cp++)
                  pack_input_row (x, up, &p, r, cp,
                                  packed + ((gsize) (r - y0) * p.pairs + cp) * p.cols);
              packed_band = band;
            }
          for (gint oy = y0; oy < y1; oy++)
            for (gint ox0 = 0; ox0 < y->width; ox0 += BLOCK)
              {
                block (&p, w, packed, oy - y0, ob, ox0, c);
                epilogue_block (conv, c, ob * BLOCK, oy, ox0, residual, act, y);
              }
        }
    vae_amx_tiles_end ();
  }
  vae_scratch_free (w, w_capacity);
  vae_scratch_free (in, in_capacity);
  return TRUE;
}

#else /* no AMX code on this compiler or architecture: vae_cpu_has_amx is FALSE */

gboolean
vae_amx_conv (const VaeConv *conv, const VaeTensor *x, gboolean up, const VaeTensor *residual,
              VaeAct act, VaeTensor *y, GError **error)
{
  g_return_val_if_reached (FALSE);
}

#endif
