/* bf16 3×3 convolutions of stride 1 and 2 as direct products on AMX
 * tiles, with no im2col and no Winograd: the input is rounded to bf16, a
 * band of rows at a time, into rows of channel pairs, and every tap of the
 * kernel is a shifted view of it.  With stride 2 each packed row holds the
 * even input columns, then the odd ones, so that a tap's 16 pixels are 16
 * consecutive words there too.
 *
 * tdpbf16ps adds A·B into a 16 × 16 fp32 tile C, A 16 rows × 32 bf16 and
 * B 16 pair rows × 16 columns of pairs.  Here C is 16 output channels × 16
 * output pixels of one image row (so it lands in the planar output as it
 * is), A the weights of 16 output channels for 32 input channels at one tap,
 * and B those 32 input channels (16 pairs) at the 16 input pixels the tap
 * reads: in the packed input P[row][pair][column] (each pair one 32-bit
 * word) that is 16 words of each of 16 pair rows, the rows a packed row's
 * width apart, wherever the tap points.  Nothing is copied per tap.
 * Inside a residual block's band the conv before may write this packed
 * input itself (VaeAmxActs), so that the conv after packs nothing.
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
/* A conv of at most a tile of outputs (TAESD's and SD's 3-channel output
 * convs) fills 1 × 4 tiles instead, 16 channels × 64 pixels: the padding
 * it computes for nothing is 16/3, not 32/3.  (Winograd took 90 ms for
 * TAEF2's 64 → 3 conv at 1024², 2 × 2 tiles 55.) */
#define NARROW_PIXELS (4 * TILE)
/* Packed input of a band of rows a thread keeps in its L2 cache while it
 * runs every block of output channels over it. */
#define BAND_BYTES ((gsize) 1 << 20)

static gint
round_up (gint n, gint to)
{
  return (n + to - 1) / to * to;
}

/* The shapes of the packed operands: PAIRS channel pairs of input (whole
 * tiles); the input's rows, and each in STRIDE planes of PLANE_COLS
 * columns (plane q, column j: input column stride·j + q − pad_left), so
 * that every tap reads 16 consecutive columns of one plane; CO_TILES
 * tiles of output channels (whole steps); the output channels and pixels
 * of a step (2 × 2 tiles, or 1 × 4 when NARROW). */
typedef struct
{
  gint     stride, pad_top, pad_left;
  gint     pairs, plane_cols, co_tiles;
  gboolean narrow;
  gint     step_channels, step_pixels;
} Packing;

/* Columns of each of STRIDE planes, at least COLS, such that a packed row
 * is an odd number of cache lines.  A B tile reads 16 pair rows a packed
 * row apart; a power-of-two width makes that a multiple of 4 KB plus a few
 * words, which puts the 16 rows in two or three of L1's 64 sets, more
 * than their 12 ways hold.  An odd number of lines spreads them over 16. */
static gint
spread_cols (gint cols, gint stride)
{
  gint words = round_up (stride * cols, TILE);

  if (words / TILE % 2 == 0)
    words += TILE;
  return words / stride;
}

static Packing
packing (const VaeConv *conv, gint out_w)
{
  const gboolean narrow = conv->out_channels <= TILE;
  const gint step_channels = narrow ? TILE : BLOCK, step_pixels = narrow ? NARROW_PIXELS : BLOCK;
  const gint reach = round_up (out_w, step_pixels) + 2 / conv->stride; /* the taps' columns */

  return (Packing){ conv->stride,
                    conv->pad_top,
                    conv->pad_left,
                    round_up (conv->in_channels, 2 * TILE) / 2,
                    spread_cols (reach, conv->stride),
                    round_up (conv->out_channels, step_channels) / TILE,
                    narrow,
                    step_channels,
                    step_pixels };
}

/* Words of a packed row of one pair (its planes side by side). */
static gsize
row_words (const Packing *p)
{
  return (gsize) p->stride * p->plane_cols;
}

/* Packed input rows that ROWS output rows read. */
static gint
input_rows (const Packing *p, gint rows)
{
  return p->stride * (rows - 1) + 3;
}

/* Output rows per band: its packed input rows fill BAND_BYTES. */
static gint
band_rows (const Packing *p, gint out_h)
{
  const gsize row_bytes = (gsize) p->pairs * row_words (p) * sizeof (guint32);
  const gint  fit = (gint) MIN (BAND_BYTES / row_bytes, (gsize) G_MAXINT / 2);

  return CLAMP ((fit - 3) / p->stride + 1, 1, out_h);
}

/* The sums of the steps of an output row, one step's after another. */
static gsize
row_sums_floats (const Packing *p, gint out_w)
{
  return (gsize) round_up (out_w, p->step_pixels) * BLOCK;
}

/* Each thread's packed band. */
static gsize
band_bytes (const Packing *p, gint out_h)
{
  return (gsize) input_rows (p, band_rows (p, out_h)) * p->pairs * row_words (p) * sizeof (guint32);
}

static gsize
weight_bytes (const Packing *p)
{
  return (gsize) 9 * p->pairs * 2 * p->co_tiles * TILE * sizeof (guint16);
}

/* Activations packed as their reader packs its input (P), with the rows
 * of its padding: packed row r holds the activations' row r − pad_top. */
struct _VaeAmxActs
{
  Packing  p;
  gint     rows; /* pad_top + height + pad_bottom */
  guint32 *words;
  gsize    capacity;
};

static gsize
acts_words (const Packing *p, gint rows)
{
  return (gsize) rows * p->pairs * row_words (p);
}

gboolean
vae_amx_acts_apply (const VaeConv *writer, const VaeConv *reader)
{
  return reader->stride == 1 && writer->out_channels == reader->in_channels &&
         reader->in_channels % (2 * TILE) == 0 && vae_amx_conv_applies (writer) &&
         vae_amx_conv_applies (reader);
}

VaeAmxActs *
vae_amx_acts_new (const VaeConv *reader, gint height, gint width, GError **error)
{
  VaeAmxActs *a = g_new (VaeAmxActs, 1);
  gsize       words;

  a->p = packing (reader, width);
  a->rows = reader->pad_top + height + reader->pad_bottom;
  words = row_words (&a->p);
  if (!(a->words = vae_scratch_alloc (acts_words (&a->p, a->rows) * sizeof (guint32), FALSE,
                                      &a->capacity, "packed bf16 activations", error)))
    {
      g_free (a);
      return NULL;
    }
  /* the writer fills columns [pad_left, pad_left + width) of the rows
   * between the padding; the rest reads as zeros */
  memset (a->words, 0, acts_words (&a->p, reader->pad_top) * sizeof (guint32));
  memset (a->words + acts_words (&a->p, reader->pad_top + height), 0,
          acts_words (&a->p, reader->pad_bottom) * sizeof (guint32));
#pragma omp parallel for schedule(static)
  for (gint r = reader->pad_top; r < reader->pad_top + height; r++)
    for (gint cp = 0; cp < a->p.pairs; cp++)
      {
        guint32 *row = a->words + ((gsize) r * a->p.pairs + cp) * words;
        memset (row, 0, a->p.pad_left * sizeof (guint32));
        memset (row + a->p.pad_left + width, 0, (words - a->p.pad_left - width) * sizeof (guint32));
      }
  return a;
}

void
vae_amx_acts_free (VaeAmxActs *acts)
{
  if (!acts)
    return;
  vae_scratch_free (acts->words, acts->capacity);
  g_free (acts);
}

gsize
vae_amx_conv_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w)
{
  const Packing p = packing (conv, out_w);

  return omp_get_max_threads () *
             (band_bytes (&p, out_h) + row_sums_floats (&p, out_w) * sizeof (gfloat)) +
         weight_bytes (&p);
}

/* Taken by default where the tiles are; GEGL_VAE_AMX=winograd (or single,
 * or direct) keeps the bf16 Winograd (or im2col) path for comparisons. */
static gboolean
enabled (void)
{
  return vae_cpu_has_amx () && vae_amx_path () == VAE_AMX_DEFAULT;
}

/* 3×3 convolutions of stride 1 (padded by one before) or 2 (the
 * encoders' downsamplers, padded by one or none before); fewer than a
 * tile's input channels would be mostly zero padding, and so would 17–31
 * outputs. */
gboolean
vae_amx_conv_applies (const VaeConv *conv)
{
  const gboolean shape = conv->stride == 1
                             ? vae_winograd_applies (conv)
                             : conv->stride == 2 && conv->kernel == 3 && conv->pad_top <= 1 &&
                                   conv->pad_left <= 1 && vae_conv_groups (conv) == 1;

  return shape && conv->in_channels >= 2 * TILE &&
         (conv->out_channels >= BLOCK || conv->out_channels <= TILE) && enabled ();
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

/* S[START, START + 16): zero outside the row's W values. */
static inline KERNEL_TARGET __m512
load_row (const gfloat *s, gint start, gint w)
{
  const gint lo = MAX (0, -start), hi = MIN (16, w - start);

  return _mm512_maskz_loadu_ps (hi > lo ? (__mmask16) (((1u << hi) - 1) & ~((1u << lo) - 1)) : 0,
                                s + start);
}

/* Columns [J, J + 16) of plane Q of the packed row of input row S: the
 * input columns stride·j + q − pad_left (each input column twice, nearest
 * ×2, when UP), zero outside the W columns. */
static inline KERNEL_TARGET __m512
plane_columns (const Packing *p, const gfloat *s, gint w, gboolean up, gint q, gint j)
{
  const gint first = p->stride * j + q - p->pad_left;

  if (up && p->stride == 2) /* columns c = 2·(j + l) + q − pad_left: c >> 1 consecutive */
    return load_row (s, first >> 1, w);
  if (up) /* input column c of the upsampled row is c >> 1 of S */
    {
      const __m512i from_even = _mm512_set_epi32 (7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
      const __m512i from_odd = _mm512_set_epi32 (8, 7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0);
      return _mm512_permutexvar_ps ((first & 1) ? from_odd : from_even,
                                    load_row (s, first >> 1, w));
    }
  if (p->stride == 1)
    return load_row (s, first, w);
  {
    const __m512i even =
        _mm512_set_epi32 (30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps (load_row (s, first, w), even, load_row (s, first + 16, w));
  }
}

/* The packed row of input row IY (of the ×2 upsampled input when UP),
 * pair CP: zero where the input has no such row or channel, and beyond its
 * columns. */
static KERNEL_TARGET void
pack_input_row (const VaeRows *x, gboolean up, const Packing *p, gint iy, gint cp, guint32 *dst)
{
  const gint c0 = 2 * cp, c1 = 2 * cp + 1, w = x->t->width;

  if (iy < 0 || iy >= x->rows << up || c0 >= x->t->channels)
    {
      memset (dst, 0, row_words (p) * sizeof (guint32));
      return;
    }
  {
    const gsize   plane = (gsize) x->t->height * w, row = (gsize) (x->first + (iy >> up)) * w;
    const gfloat *s0 = x->t->data + c0 * plane + row;
    const gfloat *s1 = c1 < x->t->channels ? x->t->data + c1 * plane + row : NULL;

    for (gint q = 0; q < p->stride; q++)
      for (gint j = 0; j < p->plane_cols; j += 16)
        {
          const gint    n = MIN (16, p->plane_cols - j);
          const __m512i even = bf16_bits (plane_columns (p, s0, w, up, q, j));
          const __m512i odd =
              s1 ? bf16_bits (plane_columns (p, s1, w, up, q, j)) : _mm512_setzero_si512 ();
          const __mmask16 m = (__mmask16) ((1u << n) - 1);
          _mm512_mask_storeu_epi32 (dst + q * p->plane_cols + j, m,
                                    _mm512_or_si512 (even, _mm512_slli_epi32 (odd, 16)));
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
  gfloat v[NARROW_PIXELS];

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

/* y[o][y_row + oy][ox0 + j] = act(c[o][j] + bias + residual's row oy)
 * for the step's channels and pixels that exist. */
static KERNEL_TARGET void
epilogue_block (const Packing *p, const VaeConv *conv, const gfloat *c, gint o0, gint oy, gint ox0,
                const VaeRows *residual, VaeAct act, VaeTensor *y, gint y_row)
{
  const gint  width = y->width, n = MIN (p->step_pixels, width - ox0);
  const gsize plane = (gsize) y->height * width, at = (gsize) (y_row + oy) * width + ox0;

  for (gint o = o0; o < MIN (o0 + p->step_channels, y->channels); o++)
    epilogue_row (c + (o - o0) * p->step_pixels, conv->bias ? conv->bias[o] : 0.0f,
                  residual
                      ? residual->t->data +
                            ((gsize) o * residual->t->height + residual->first + oy) * width + ox0
                      : NULL,
                  act, n, y->data + o * plane + at);
}

/* As epilogue_block of a 2 × 2 step, into the packed activations YP:
 * channels o and o + 1 are the halves of a pair's word, rounded as
 * pack_input_row rounds. */
static KERNEL_TARGET void
epilogue_packed (const VaeConv *conv, const gfloat *c, gint o0, gint oy, gint ox0, gint width,
                 VaeAct act, VaeAmxActs *yp)
{
  const gint  n = MIN (BLOCK, width - ox0);
  const gsize words = row_words (&yp->p);
  guint32    *row =
      yp->words + (gsize) (oy + yp->p.pad_top) * yp->p.pairs * words + yp->p.pad_left + ox0;

  for (gint o = o0; o < o0 + BLOCK; o += 2)
    {
      gfloat   even[BLOCK], odd[BLOCK];
      guint32 *dst = row + (gsize) (o / 2) * words;
      epilogue_row (c + (o - o0) * BLOCK, conv->bias ? conv->bias[o] : 0.0f, NULL, act, n, even);
      epilogue_row (c + (o + 1 - o0) * BLOCK, conv->bias ? conv->bias[o + 1] : 0.0f, NULL, act, n,
                    odd);
      for (gint j = 0; j < n; j += 16)
        {
          const __mmask16 m = vae_columns_mask (n - j);
          const __m512i   lo = bf16_bits (_mm512_maskz_loadu_ps (m, even + j));
          const __m512i   hi = bf16_bits (_mm512_maskz_loadu_ps (m, odd + j));
          _mm512_mask_storeu_epi32 (dst + j, m, _mm512_or_si512 (lo, _mm512_slli_epi32 (hi, 16)));
        }
    }
}

/* C's four tiles (0–3), zeroed. */
static inline KERNEL_TARGET void
zero_c (void)
{
  _tile_zero (0);
  _tile_zero (1);
  _tile_zero (2);
  _tile_zero (3);
}

/* Where tap TAP of an output row whose taps start at packed row BAND_ROW
 * of BAND reads the pixels from OX0 on: 16 words of each pair row. */
static inline const guint32 *
tap_input (const Packing *p, const guint32 *band, gint band_row, gint tap, gint ox0)
{
  const gint ky = tap / 3, kx = tap % 3;

  return band + (gsize) (band_row + ky) * p->pairs * row_words (p) +
         (kx % p->stride) * p->plane_cols + ox0 + kx / p->stride;
}

/* The 1 × 4 tiles of a narrow step: output channels [0, 16) × pixels
 * [OX0, +64); four B tiles take turns in three tile registers. */
static KERNEL_TARGET void
narrow_block (const Packing *p, const guint16 *w, const guint32 *band, gint band_row, gint ox0,
              gfloat *c)
{
  const gint  k_tiles = p->pairs / TILE;
  const gsize words = row_words (p), b_stride = words * sizeof (guint32),
              c_stride = NARROW_PIXELS * sizeof (gfloat);

  zero_c ();
  for (gint tap = 0; tap < 9; tap++)
    {
      const guint32 *b = tap_input (p, band, band_row, tap, ox0);
      const guint16 *a = w + (gsize) tap * k_tiles * TILE * 2 * TILE;
      for (gint kt = 0; kt < k_tiles; kt++)
        {
          const guint32 *bk = b + (gsize) kt * TILE * words;
          _tile_loadd (4, a + (gsize) kt * TILE * 2 * TILE, 2 * TILE * sizeof (guint16));
          _tile_loadd (5, bk, b_stride);
          _tile_loadd (6, bk + TILE, b_stride);
          _tile_loadd (7, bk + 2 * TILE, b_stride);
          _tile_dpbf16ps (0, 4, 5);
          _tile_dpbf16ps (1, 4, 6);
          _tile_loadd (5, bk + 3 * TILE, b_stride);
          _tile_dpbf16ps (2, 4, 7);
          _tile_dpbf16ps (3, 4, 5);
        }
    }
  _tile_stored (0, c, c_stride);
  _tile_stored (1, c + TILE, c_stride);
  _tile_stored (2, c + 2 * TILE, c_stride);
  _tile_stored (3, c + 3 * TILE, c_stride);
}

/* Output channels [32·OB, +32) × pixels [OX0, +32) of an output row whose
 * taps start at packed row BAND_ROW of BAND (the band's packed rows): the
 * products of its input pair tiles [KT0, KT1) added to the sums C holds,
 * or to zero from KT0 = 0 (a narrow step takes all its tiles at once). */
static KERNEL_TARGET void
block (const Packing *p, const guint16 *w, const guint32 *band, gint band_row, gint ob, gint ox0,
       gint kt0, gint kt1, gfloat *c)
{
  const gint  k_tiles = p->pairs / TILE;
  const gsize words = row_words (p), b_stride = words * sizeof (guint32),
              c_stride = BLOCK * sizeof (gfloat);

  if (p->narrow)
    {
      narrow_block (p, w, band, band_row, ox0, c);
      return;
    }

  if (kt0 == 0)
    zero_c ();
  else
    {
      _tile_loadd (0, c, c_stride);
      _tile_loadd (1, c + TILE, c_stride);
      _tile_loadd (2, c + TILE * BLOCK, c_stride);
      _tile_loadd (3, c + TILE * BLOCK + TILE, c_stride);
    }
  for (gint tap = 0; tap < 9; tap++)
    {
      const guint32 *b = tap_input (p, band, band_row, tap, ox0);
      const guint16 *a = w + ((gsize) tap * k_tiles * p->co_tiles + 2 * ob) * TILE * 2 * TILE;
      for (gint kt = kt0; kt < kt1; kt++)
        {
          const guint32 *bk = b + (gsize) kt * TILE * words;
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

/* Bands for OUT_H rows of at most ROWS each, as equal as rows allow and
 * as many more as give each of THREADS the same number of (band, block of
 * outputs) units: the threads wait for the slowest at the end of a conv,
 * and a band of a TAEF2 residual block is a conv of 3 to 8 such bands (36
 * rows in bands of 5 left one thread 20 rows, the other 16). */
static gint
balanced_bands (gint out_h, gint rows, gint blocks, gint threads)
{
  gint bands = (out_h + rows - 1) / rows;

  while (bands * blocks % threads != 0 && bands < out_h)
    bands++;
  return bands;
}

/* Tiles of input pairs one pass over an output row takes, the steps of
 * later passes adding to the sums the row's earlier passes left.  TAESD's
 * 64-channel convs (two tiles) take two: a step's weights are then 18 KB
 * (9 taps × 2 tiles) and stay in L1 from step to step beside its 9 KB of
 * input, where all 36 KB and 18 KB of input, more than L1's 48 KB, missed
 * on every step (TAEF2's bf16 round trip at 1024², 1.16–1.23 s → 1.12–1.19
 * s).  Wider convs (SD's 128 to 512 channels) gained nothing from passes
 * of 1, 2 or 4 tiles: each pass after the first stores and reloads the
 * step's sums. */
static gint
pass_tiles (const Packing *p)
{
  const gint k_tiles = p->pairs / TILE;

  return k_tiles == 2 && !p->narrow ? 1 : k_tiles;
}

/* y's rows from Y_ROW (or yp) = act(conv(up(x), or xp's rows from
 * XP_ROW) + bias + residual), of OUT_H × OUT_W. */
static gboolean
amx_conv (const VaeConv *conv, const VaeRows *x, const VaeAmxActs *xp, gint xp_row, gboolean up,
          const VaeRows *residual, VaeAct act, gint out_h, gint out_w, VaeTensor *y, gint y_row,
          VaeAmxActs *yp, GError **error)
{
  const Packing p = packing (conv, out_w);
  const gint    blocks = p.co_tiles * TILE / p.step_channels, threads = omp_get_max_threads ();
  const gint    bands = balanced_bands (out_h, band_rows (&p, out_h), blocks, threads);
  const gint    k_tiles = p.pairs / TILE, pass = pass_tiles (&p);
  /* each thread's packed band (none when reading XP), then its row's sums */
  const gsize band_words = xp ? 0 : band_bytes (&p, out_h) / sizeof (guint32),
              thread_words = band_words + row_sums_floats (&p, out_w);
  gsize    in_capacity = 0, w_capacity;
  guint32 *in;
  guint16 *w;

  if (!(in = vae_scratch_alloc (threads * thread_words * sizeof (guint32), FALSE, &in_capacity,
                                "packed bf16 input", error)))
    return FALSE;
  if (!(w = vae_scratch_alloc (weight_bytes (&p), FALSE, &w_capacity, "packed bf16 weights",
                               error)))
    {
      vae_scratch_free (in, in_capacity);
      return FALSE;
    }
  pack_weights (conv, &p, w);
  /* Each thread packs the rows of the band it works on into its own
   * buffer, which stays in its cache while every block of output channels
   * runs over it; with the units in band order a thread packs each of its
   * bands once.  Packed activations are read where they are: their row
   * stride·oy is where output row oy's taps start.  A row's steps run a
   * pass at a time (pass_tiles), then its epilogues. */
#pragma omp parallel num_threads(threads)
  {
    guint32 *packed = in + omp_get_thread_num () * thread_words;
    gfloat  *sums = (gfloat *) (packed + band_words);
    gint     packed_band = -1, packed_rows = 0;

    vae_amx_tiles_begin ();
#pragma omp for schedule(static) collapse(2)
    for (gint band = 0; band < bands; band++)
      for (gint ob = 0; ob < blocks; ob++)
        {
          const gint y0 = band * out_h / bands, y1 = (band + 1) * out_h / bands;
          if (!xp && band != packed_band)
            {
              const gsize row = (gsize) p.pairs * row_words (&p);
              const gint  rows = input_rows (&p, y1 - y0);
              gint        r = 0;
              /* the rows the taps of this band and the one before both read:
               * moved, not packed again */
              if (packed_band >= 0 && band == packed_band + 1)
                {
                  r = 3 - p.stride;
                  memmove (packed, packed + (packed_rows - r) * row, r * row * sizeof (guint32));
                }
              for (; r < rows; r++)
                for (gint cp = 0; cp < p.pairs; cp++)
                  pack_input_row (x, up, &p, p.stride * y0 + r - p.pad_top, cp,
                                  packed + r * row + (gsize) cp * row_words (&p));
              packed_band = band;
              packed_rows = rows;
            }
          for (gint oy = y0; oy < y1; oy++)
            {
              const guint32 *src = xp ? xp->words : packed;
              const gint     src_row = xp ? xp_row + p.stride * oy : p.stride * (oy - y0);
              /* in one pass, each step's sums in the same place, still in L1
               * for its epilogue */
              const gsize step_floats = pass < k_tiles ? BLOCK * (gsize) p.step_pixels : 0;
              for (gint kt0 = 0; kt0 < k_tiles; kt0 += pass)
                for (gint ox0 = 0; ox0 < out_w; ox0 += p.step_pixels)
                  {
                    gfloat *c = sums + ox0 / p.step_pixels * step_floats;
                    block (&p, w, src, src_row, ob, ox0, kt0, MIN (k_tiles, kt0 + pass), c);
                    if (kt0 + pass < k_tiles)
                      continue;
                    if (yp)
                      epilogue_packed (conv, c, ob * BLOCK, oy, ox0, out_w, act, yp);
                    else
                      epilogue_block (&p, conv, c, ob * p.step_channels, oy, ox0, residual, act, y,
                                      y_row);
                  }
            }
        }
    vae_amx_tiles_end ();
  }
  vae_scratch_free (w, w_capacity);
  vae_scratch_free (in, in_capacity);
  return TRUE;
}

gboolean
vae_amx_conv (const VaeConv *conv, const VaeTensor *x, gboolean up, const VaeTensor *residual,
              VaeAct act, VaeTensor *y, GError **error)
{
  const VaeRows in = vae_rows_all (x), res = vae_rows_all (residual);

  return amx_conv (conv, &in, NULL, 0, up, residual ? &res : NULL, act, y->height, y->width, y, 0,
                   NULL, error);
}

gboolean
vae_amx_conv_packed (const VaeConv *conv, const VaeRows *x, const VaeAmxActs *xp, gint xp_row,
                     const VaeRows *residual, VaeAct act, gint out_h, gint out_w, VaeTensor *y,
                     gint y_row, VaeAmxActs *yp, GError **error)
{
  const Packing p = packing (conv, out_w);

  /* XP was packed for this conv, YP for one that reads OUT_H × OUT_W */
  g_return_val_if_fail (!xp || (xp->p.pairs == p.pairs && xp->p.plane_cols == p.plane_cols &&
                                xp->p.pad_left == p.pad_left && xp->p.pad_top == p.pad_top &&
                                xp->rows >= xp_row + p.stride * (out_h - 1) + 3),
                        FALSE);
  g_return_val_if_fail (!yp || (yp->p.pairs * 2 == conv->out_channels && y == NULL &&
                                yp->rows - yp->p.pad_top >= out_h &&
                                row_words (&yp->p) >= (gsize) yp->p.pad_left + out_w),
                        FALSE);
  g_return_val_if_fail (!y || (y->width == out_w && y_row + out_h <= y->height), FALSE);
  vae_backend_count_macs ((guint64) conv->out_channels * conv->in_channels * 9 * out_h * out_w);
  return amx_conv (conv, x, xp, xp_row, FALSE, residual, act, out_h, out_w, y, y_row, yp, error);
}

#else /* no AMX code on this compiler or architecture: vae_cpu_has_amx is FALSE */

gboolean
vae_amx_conv (const VaeConv *conv, const VaeTensor *x, gboolean up, const VaeTensor *residual,
              VaeAct act, VaeTensor *y, GError **error)
{
  g_return_val_if_reached (FALSE);
}

gboolean
vae_amx_conv_packed (const VaeConv *conv, const VaeRows *x, const VaeAmxActs *xp, gint xp_row,
                     const VaeRows *residual, VaeAct act, gint out_h, gint out_w, VaeTensor *y,
                     gint y_row, VaeAmxActs *yp, GError **error)
{
  g_return_val_if_reached (FALSE);
}

#endif
