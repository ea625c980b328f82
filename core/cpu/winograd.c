/* Winograd F(4×4, 3×3) convolution (Lavin & Gray, with other points, see
 * below): 36 multiplies per 4×4 output tile and channel pair instead of 144.
 *
 * Tiles are processed a band of tile rows at a time, so the transformed
 * input and the products stay within a few tens of MB whatever the image
 * size; each band is 36 SGEMMs.  Both transforms work on whole tile rows:
 * the 1-D transform down the 6 input rows runs along the image row, and the
 * one across takes 8 tiles at a time, transposed within each half of an
 * AVX2 register (see "tile order") — both vectorise.  Bias, residual and
 * activation are applied as the output tiles are written.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define TILE        4
#define ALPHA       6 /* TILE + 3 − 1 */
#define POSITIONS   (ALPHA * ALPHA)
#define BATCH_BYTES ((gsize) 48 << 20)
/* Transformed weights are kept for convolutions on fewer output pixels
 * than this: transforming them again costs some 10% of a convolution on
 * 128² pixels and under 1% from 512² on, while big images are where memory
 * is short. */
#define CACHED_BELOW_PIXELS (128 * 128)
/* And, whatever the size, where they take at most this many bytes: TAESD's
 * 64-channel convs (600 KB each) run in bands of 32 rows (block.c) or in
 * tiles, and were transformed again for each. */
#define CACHED_UP_TO_BYTES ((gsize) 1 << 20)
static GMutex cache_lock;
static gsize  cache_used;
/* Transformed weights are kept with the model up to this many bytes in all
 * (set by the memory plan). */
static gsize cache_limit = (gsize) 384 << 20;

void
vae_winograd_set_cache_limit (gsize bytes)
{
  g_mutex_lock (&cache_lock);
  cache_limit = bytes;
  g_mutex_unlock (&cache_lock);
}

gsize
vae_winograd_cached_bytes (void)
{
  gsize bytes;

  g_mutex_lock (&cache_lock);
  bytes = cache_used;
  g_mutex_unlock (&cache_lock);
  return bytes;
}

/* The interpolation points are 0, ±3/2, ±2/3 and ∞ rather than Lavin's 0,
 * ±1, ±2, ∞: the transforms have the same shape but pass on less rounding
 * error.  Against float64, on random convs of 32–256 channels, the fp32
 * max error drops from 4.5e-6–1.3e-5 to 1.0–3.2e-6, and bf16 products
 * leave 7 dB less noise per layer (the SD1.5 bf16 decode: 39.6 → 46.6 dB
 * from fp32).  Of the point sets searched (0, ∞ and four of ±1 … ±4, their
 * inverses, ±3/2, ±2/3, ±3/4, ±4/3) this one lets least of bf16's rounding
 * through.  The rows of Bᵀ and the columns of Aᵀ are scaled to small
 * integers, exact in float, and G takes the inverse scales (computed in
 * double and rounded once), so U is the only rounded matrix:
 *   Bᵀ = [36 0 −97 0 36 0; 0 −12 −8 27 18 0; 0 12 −8 −27 18 0;
 *         0 −18 −27 8 12 0; 0 18 −27 −8 12 0; 0 36 0 −97 0 36]
 *   Aᵀ = [1 8 8 27 27 0; 0 12 −12 18 −18 0; 0 18 18 12 12 0;
 *         0 27 −27 8 −8 1] */

/* Filters transformed side by side: the arithmetic runs across them, so it
 * vectorises in double. */
#define WEIGHT_LANES 16

/* Rows of G applied to the three values A[0..2][lane]: OUT[0..5][lane]. */
static inline void
apply_g (gdouble a[3][WEIGHT_LANES], gdouble out[ALPHA][WEIGHT_LANES])
{
  for (gint l = 0; l < WEIGHT_LANES; l++)
    {
      const gdouble g0 = a[0][l], g1 = a[1][l], g2 = a[2][l];
      const gdouble even1 = 8 * g0 + 18 * g2, odd1 = 12 * g1;
      const gdouble even2 = 81 * g0 / 2 + 18 * g2, odd2 = 27 * g1;
      out[0][l] = g0 / 36;
      out[1][l] = (even1 + odd1) / (65 * 144);
      out[2][l] = (even1 - odd1) / (65 * 144);
      out[3][l] = -(even2 + odd2) / (65 * 324);
      out[4][l] = -(even2 - odd2) / (65 * 324);
      out[5][l] = g2 / 36;
    }
}

/* U = G g Gᵀ for filters OI0 .. OI0 + COUNT, in double, rounded once,
 * into U's 36 planes PLANE apart, filter FIRST at each plane's start. */
static VAE_HOT void
transform_filters (const VaeConv *conv, gsize oi0, gint count, gsize plane, gsize first, gfloat *u)
{
  gdouble g[3][3][WEIGHT_LANES] = { { { 0 } } }; /* [row][column][filter] */
  gdouble column[3][WEIGHT_LANES], gcol[ALPHA][WEIGHT_LANES];
  gdouble half[ALPHA][3][WEIGHT_LANES]; /* G g: [i][column] */
  gdouble out[ALPHA][WEIGHT_LANES];

  for (gint l = 0; l < count; l++)
    for (gint t = 0; t < 9; t++)
      g[t / 3][t % 3][l] = conv->weight[(oi0 + l) * 9 + t];
  for (gint j = 0; j < 3; j++)
    {
      for (gint r = 0; r < 3; r++)
        memcpy (column[r], g[r][j], sizeof column[r]);
      apply_g (column, gcol);
      for (gint i = 0; i < ALPHA; i++)
        memcpy (half[i][j], gcol[i], sizeof gcol[i]);
    }
  for (gint i = 0; i < ALPHA; i++)
    {
      apply_g (half[i], out);
      for (gint k = 0; k < ALPHA; k++)
        for (gint l = 0; l < count; l++)
          u[(gsize) (i * ALPHA + k) * plane + oi0 - first + l] = (gfloat) out[k][l];
    }
}

/* U = G g Gᵀ for every (out, in) pair, as 36 matrices [out × in]. */
static void
transform_weights (const VaeConv *conv, gfloat *u)
{
  const gsize plane = (gsize) conv->out_channels * conv->in_channels;
  const gsize blocks = (plane + WEIGHT_LANES - 1) / WEIGHT_LANES;

#pragma omp parallel for schedule(dynamic)
  for (gsize b = 0; b < blocks; b++)
    transform_filters (conv, b * WEIGHT_LANES, (gint) MIN (WEIGHT_LANES, plane - b * WEIGHT_LANES),
                       plane, 0, u);
}

gboolean
vae_winograd_caches (const VaeConv *conv, gint out_h, gint out_w)
{
  return vae_winograd_applies (conv) && ((gint64) out_h * out_w < CACHED_BELOW_PIXELS ||
                                         vae_winograd_weight_bytes (conv) <= CACHED_UP_TO_BYTES);
}

static gboolean chunked (const VaeConv *conv);

/* Whether the bf16 products are split (vae_amx_gemm's A_LOW): on AMX
 * tiles, unless GEGL_VAE_AMX says single (one bf16 product, as without
 * AMX).  bf16's rounding of U and V, amplified by the output transform,
 * is what costs Winograd's bf16 products their accuracy (the SD1.5 decode
 * 43.5 dB PSNR against fp32, direct bf16 products 52 dB); split products
 * keep about 16 bits of each, and the tiles do the 3× multiplications
 * faster than one product with vdpbf16ps (docs/PERFORMANCE-NOTES.md). */
static gboolean
split (void)
{
  return vae_cpu_has_amx () && vae_amx_path () != VAE_AMX_SINGLE;
}

/* Values of one position's packed bf16 U. */
static gsize
packed_elements (const VaeConv *conv)
{
  return (gsize) conv->out_channels * 2 * vae_bf16_pairs (conv->in_channels);
}

/* U's layouts: fp32 rows (OpenBLAS's bands), fp32 as vae_sgemm_small
 * reads it (chunks), bf16. */
typedef enum
{
  U_ROWS,
  U_SMALL,
  U_BF16,
  U_LAYOUTS
} ULayout;

static ULayout
layout (const VaeConv *conv, gboolean bf16)
{
  return bf16 ? U_BF16 : chunked (conv) ? U_SMALL : U_ROWS;
}

/* Floats of one position's U for the chunks' products. */
static gsize
small_elements (const VaeConv *conv)
{
  return vae_sgemm_small_a_floats (conv->out_channels, conv->in_channels);
}

static gsize
weight_bytes (const VaeConv *conv, gboolean bf16)
{
  switch (layout (conv, bf16))
    {
    case U_BF16:
      return (split () ? 2 : 1) * POSITIONS * packed_elements (conv) * sizeof (guint16);
    case U_SMALL:
      return POSITIONS * small_elements (conv) * sizeof (gfloat);
    default:
      return (gsize) POSITIONS * conv->out_channels * conv->in_channels * sizeof (gfloat);
    }
}

/* What bf16 leaves of U, after U's own 36 positions (split products). */
static const guint16 *
low_weights (const VaeConv *conv, gconstpointer u)
{
  return split () ? (const guint16 *) u + POSITIONS * packed_elements (conv) : NULL;
}

/* U into DST, in LAYOUT (conv, bf16): fp32 [36][out][in], or 36 times
 * vae_sgemm_small's layout of [out][in], or bf16 [36][out][in rounded up
 * to even] for vae_gemm_bf16_batch, followed by what bf16 leaves of it,
 * likewise, for split products. */
static void
make_weights (const VaeConv *conv, gboolean bf16, gpointer dst)
{
  const gsize packed = packed_elements (conv);
  const gint  co = conv->out_channels, ci = conv->in_channels;
  gint        rows;

  if (layout (conv, bf16) == U_SMALL)
    {
      /* at most 128 channels each way: 2.4 MB */
      g_autofree gfloat *t = g_new (gfloat, (gsize) POSITIONS * co * ci);
      transform_weights (conv, t);
      for (gint p = 0; p < POSITIONS; p++)
        vae_sgemm_small_pack_a (co, ci, t + (gsize) p * co * ci, ci,
                                (gfloat *) dst + p * small_elements (conv));
      return;
    }
  if (!bf16)
    {
      transform_weights (conv, dst);
      return;
    }
  /* Each thread transforms the filters of a few output channels into 2 MB
   * of its own and packs them from there: uncached, HunyuanImage's
   * 1024-channel convs would otherwise write and fault in a 151 MB fp32 U
   * per call, then pack it on one thread. */
  rows = CLAMP ((gint) (((gsize) 2 << 20) / (POSITIONS * ci * sizeof (gfloat))), 1, co);
#pragma omp parallel
  {
    gfloat *t = g_new (gfloat, (gsize) POSITIONS * rows * ci);
#pragma omp for schedule(dynamic)
    for (gint o0 = 0; o0 < co; o0 += rows)
      {
        const gint  n = MIN (rows, co - o0);
        const gsize first = (gsize) o0 * ci, count = (gsize) n * ci;
        for (gsize b = 0; b < count; b += WEIGHT_LANES)
          transform_filters (conv, first + b, (gint) MIN (WEIGHT_LANES, count - b), count, first,
                             t);
        for (gint p = 0; p < POSITIONS; p++)
          {
            guint16 *high = (guint16 *) dst + p * packed + (gsize) o0 * 2 * vae_bf16_pairs (ci);
            vae_bf16_pack_rows (t + p * count, n, ci, high);
            if (split ())
              vae_bf16_pack_rows_low (t + p * count, n, ci, high + POSITIONS * packed);
          }
      }
    g_free (t);
  }
}

/* The CPU's slot of a layer's cache: its transformed weights in each
 * layout, counted against the cache limit while they live. */
typedef struct
{
  VaeCached base;
  gpointer  weights[U_LAYOUTS];
  gsize     bytes[U_LAYOUTS];
} CpuCached;

static void
cpu_cached_free (VaeCached *cached)
{
  CpuCached *c = (CpuCached *) cached;

  g_mutex_lock (&cache_lock);
  for (gint i = 0; i < U_LAYOUTS; i++)
    {
      cache_used -= c->bytes[i];
      g_free (c->weights[i]);
    }
  g_mutex_unlock (&cache_lock);
  g_free (c);
}

/* The conv's transformed weights: kept in its layer cache while the budget
 * lasts, else made in *scratch (freed by the caller). */
static gconstpointer
weights_for (const VaeConv *conv, gint out_h, gint out_w, gboolean bf16, gpointer *scratch,
             GError **error)
{
  const gsize   bytes = weight_bytes (conv, bf16);
  const ULayout at = layout (conv, bf16);
  gconstpointer u = NULL;

  g_mutex_lock (&cache_lock);
  if (conv->cache && vae_winograd_caches (conv, out_h, out_w))
    {
      VaeCached **slot = &conv->cache->slot[VAE_CACHE_CPU];
      CpuCached  *c = (CpuCached *) *slot;
      if (!c)
        {
          c = g_new0 (CpuCached, 1);
          c->base.free = cpu_cached_free;
          *slot = &c->base;
        }
      if (!c->weights[at] && cache_used + bytes <= cache_limit &&
          (c->weights[at] = g_try_malloc (bytes)))
        {
          make_weights (conv, bf16, c->weights[at]);
          cache_used += c->bytes[at] = bytes;
        }
      u = c->weights[at];
    }
  g_mutex_unlock (&cache_lock);
  if (u)
    return u;
  if (!(*scratch = vae_try_alloc (bytes, "Winograd weights", error)))
    return NULL;
  make_weights (conv, bf16, *scratch);
  return *scratch;
}

/* ---- input transform ------------------------------------------------------ */

/* The tiles one transform covers: SPAN tiles from tile column TX0 on in
 * each tile row it is given. */
typedef struct
{
  const VaeConv      *conv;
  VaeRows             x;    /* the input: these rows of a tensor, read in place */
  const VaeInputNorm *norm; /* NULL: X as it is */
  gboolean            up;
  gint                tx0;
  gint                span;
  gint                row_w; /* padded row: 4·span + 2 */
} Geometry;

/* Four and eight floats at any address, read or written with one move.
 * Copied with memcpy into arrays of Floats8, GCC 12 kept them on the stack
 * in 16-byte halves, and the TAEF2 round trip took 30% longer. */
typedef gfloat Floats4u __attribute__ ((vector_size (16), aligned (4), may_alias));
typedef gfloat Floats8u __attribute__ ((vector_size (32), aligned (4), may_alias));
typedef gint32 Ints8 __attribute__ ((vector_size (32)));
#define AT4(p) (*(Floats4u *) (p))
#define AT8(p) (*(Floats8u *) (p))

/* DST[j] = SRC[(j + FIRST) / 2] for j in [J0, J1): a row upsampled ×2,
 * nearest neighbour, 8 values from 4 at a time (GCC's own vectorisation
 * of the loop read one value at a time, 2% of a TAEF2 round trip). */
static inline void
upsample_row (const gfloat *src, gint first, gfloat *dst, gint j0, gint j1)
{
  gint j = j0;

  if ((j + first) & 1 && j < j1) /* from an odd column: its first value alone */
    {
      dst[j] = src[(j + first) >> 1];
      j++;
    }
  for (; j + 8 <= j1; j += 8)
    {
      const Floats4u four = AT4 (src + ((j + first) >> 1));
      AT8 (dst + j) = __builtin_shufflevector (four, four, 0, 0, 1, 1, 2, 2, 3, 3);
    }
  for (; j < j1; j++)
    dst[j] = src[(j + first) >> 1];
}

/* The six input rows tile row TY reads, as column_transform wants them:
 * D[i][j − *J0] is input row Y0 + i at column j of the padded row, for the
 * columns [*J0, *J1) where the span meets the image; every value outside
 * is zero.  The input's rows are read in place (copying them was a sixth of
 * a TAEF2 pass on AVX2); a row above or below the image is ROWS' first,
 * zeroed, and an upsampled or normalised row (of channel C) is built in
 * ROWS, nearest neighbour.  Padding stays zero: it pads the normalised
 * tensor. */
static VAE_HOT void
input_rows (const Geometry *g, const gfloat *plane, gint c, gint y0, gfloat *restrict rows,
            const gfloat **d, gint *j0, gint *j1)
{
  const gint in_h = g->x.rows << g->up, in_w = g->x.t->width << g->up, w = g->row_w;
  const gint x_first = g->tx0 * TILE - g->conv->pad_left; /* the input column of padded column 0 */
  gboolean   zeroed = FALSE;

  *j0 = CLAMP (-x_first, 0, w);
  *j1 = CLAMP (in_w - x_first, *j0, w);
  for (gint i = 0; i < ALPHA; i++)
    {
      const gint    iy = y0 + i;
      const gfloat *src;
      gfloat       *row = rows + (gsize) (i + 1) * w;

      if (iy < 0 || iy >= in_h)
        {
          if (!zeroed)
            memset (rows, 0, sizeof (gfloat) * w);
          zeroed = TRUE;
          d[i] = rows;
          continue;
        }
      src = plane + (gsize) (iy >> g->up) * g->x.t->width;
      d[i] = g->up || g->norm ? row + *j0 : src + *j0 + x_first;
      if (g->up)
        upsample_row (src, x_first, row, *j0, *j1);
      if (g->norm)
        vae_scale_shift_act (g->up ? row + *j0 : src + *j0 + x_first, row + *j0, *j1 - *j0,
                             g->norm->scale[c], g->norm->shift[c], g->norm->act);
    }
}

/* Bᵀ applied down the six rows D0 … D5, along W values of each, into the
 * rows R0 … R5: one pass that reads each input row once (a pass per row
 * of Bᵀ read them 21 times in all).  Restrict parameters, for GCC to
 * vectorise it (see apply_a); the D rows may be the same zero row,
 * which is only read. */
static VAE_HOT void
column_transform (const gfloat *restrict d0, const gfloat *restrict d1, const gfloat *restrict d2,
                  const gfloat *restrict d3, const gfloat *restrict d4, const gfloat *restrict d5,
                  gfloat *restrict r0, gfloat *restrict r1, gfloat *restrict r2,
                  gfloat *restrict r3, gfloat *restrict r4, gfloat *restrict r5, gint w)
{
  for (gint x = 0; x < w; x++)
    {
      const gfloat even1 = 18 * d4[x] - 8 * d2[x], odd1 = 27 * d3[x] - 12 * d1[x];
      const gfloat even3 = 12 * d4[x] - 27 * d2[x], odd3 = 8 * d3[x] - 18 * d1[x];
      r0[x] = 36 * d0[x] - 97 * d2[x] + 36 * d4[x];
      r1[x] = even1 + odd1;
      r2[x] = even1 - odd1;
      r3[x] = even3 + odd3;
      r4[x] = even3 - odd3;
      r5[x] = 36 * d1[x] - 97 * d3[x] + 36 * d5[x];
    }
}

/* ---- tile order ----------------------------------------------------------- */

/* Both transforms go between pixel order and one vector per tile position
 * with the 4 × 4 transposes AVX2 does within each 128-bit half of a
 * register (vunpck*ps, vshufps): no shuffle across the halves.  That leaves
 * each block of 8 tiles in V and M in the order 0 2 4 6 1 3 5 7, which the
 * products do not see and the output transform undoes.  GCC's own
 * vectorisation of a stride-4 copy (vpermd and blends) was about 40% of
 * the input transform. */
#define BLOCK 8

/* Where tile T of a row of TW tiles is kept: permuted within whole blocks,
 * in order after them. */
static inline gint
tile_slot (gint t, gint tw)
{
  return t < tw / BLOCK * BLOCK ? (t & ~(BLOCK - 1)) | (t & 1) << 2 | (t & (BLOCK - 1)) >> 1 : t;
}

/* V[i] = the 8 floats at P + i·STEP, i < 4.  The helpers take and give
 * vectors through pointers (to locals GCC keeps in registers): a vector
 * argument would change the ABI of the default clone. */
static inline __attribute__ ((always_inline)) void
load_four (const gfloat *p, gsize step, Floats8 *v)
{
  for (gint i = 0; i < 4; i++)
    v[i] = AT8 (p + i * step);
}

/* The 4 × 4 transpose of IN[0 … 3] within each half: from 8 groups of 4
 * (two per register) to 4 registers of one member of each group, groups in
 * the order 0 2 4 6 1 3 5 7; and back, from such registers to groups. */
static inline __attribute__ ((always_inline)) void
transpose_halves (const Floats8 *in, Floats8 *q)
{
  const Floats8 ab_lo = __builtin_shufflevector (in[0], in[1], 0, 8, 1, 9, 4, 12, 5, 13);
  const Floats8 ab_hi = __builtin_shufflevector (in[0], in[1], 2, 10, 3, 11, 6, 14, 7, 15);
  const Floats8 cd_lo = __builtin_shufflevector (in[2], in[3], 0, 8, 1, 9, 4, 12, 5, 13);
  const Floats8 cd_hi = __builtin_shufflevector (in[2], in[3], 2, 10, 3, 11, 6, 14, 7, 15);

  q[0] = __builtin_shufflevector (ab_lo, cd_lo, 0, 1, 8, 9, 4, 5, 12, 13);
  q[1] = __builtin_shufflevector (ab_lo, cd_lo, 2, 3, 10, 11, 6, 7, 14, 15);
  q[2] = __builtin_shufflevector (ab_hi, cd_hi, 0, 1, 8, 9, 4, 5, 12, 13);
  q[3] = __builtin_shufflevector (ab_hi, cd_hi, 2, 3, 10, 11, 6, 7, 14, 15);
}

/* ---- input transform (continued) ------------------------------------------ */

/* Bᵀ across 8 tiles: A[j] holds value j of each tile's six; transformed
 * value l goes to O + l·STRIDE_P. */
static inline __attribute__ ((always_inline)) void
tile_across (const Floats8 *a, gfloat *o, gsize stride_p)
{
  const Floats8 even1 = 18 * a[4] - 8 * a[2], odd1 = 27 * a[3] - 12 * a[1];
  const Floats8 even3 = 12 * a[4] - 27 * a[2], odd3 = 8 * a[3] - 18 * a[1];

  AT8 (o) = 36 * a[0] - 97 * a[2] + 36 * a[4];
  AT8 (o + stride_p) = even1 + odd1;
  AT8 (o + 2 * stride_p) = even1 - odd1;
  AT8 (o + 3 * stride_p) = even3 + odd3;
  AT8 (o + 4 * stride_p) = even3 - odd3;
  AT8 (o + 5 * stride_p) = 36 * a[1] - 97 * a[3] + 36 * a[5];
}

/* Bᵀ across each of the TW tiles of row RK (tile t at RK[4t … 4t + 5];
 * whole blocks may read up to RK[4·TW + 3]), into O, O + STRIDE_P, …,
 * O + 5·STRIDE_P at the tiles' slots. */
static VAE_HOT void
row_across (const gfloat *rk, gint tw, gfloat *o, gsize stride_p)
{
  const gint blocks = tw / BLOCK;
  Floats8    in[4], a[ALPHA + 2]; /* a[6], a[7]: not used */

  for (gint b = 0; b < blocks; b++)
    {
      const gfloat *r = rk + (gsize) b * TILE * BLOCK;
      /* values 0 … 3 of the block's tiles, then 4 and 5 (the next tile's 0
       * and 1), read 4 floats on: the next tile of 0 2 4 6 1 3 5 7 is what
       * the same transpose gives there */
      load_four (r, 8, in);
      transpose_halves (in, a);
      load_four (r + 4, 8, in);
      transpose_halves (in, a + 4);
      tile_across (a, o + (gsize) b * BLOCK, stride_p);
    }
  if (blocks * BLOCK < tw)
    {
      /* the last tiles in order, through a block of their own */
      const gint first = blocks * BLOCK, n = tw - first;
      gfloat     tail[ALPHA * BLOCK], out[ALPHA * BLOCK];

      memset (tail, 0, sizeof tail);
      for (gint j = 0; j < ALPHA; j++)
        for (gint i = 0; i < n; i++)
          tail[j * BLOCK + i] = rk[(gsize) TILE * (first + i) + j];
      for (gint j = 0; j < ALPHA; j++)
        a[j] = AT8 (tail + j * BLOCK);
      tile_across (a, out, BLOCK);
      for (gint l = 0; l < ALPHA; l++)
        memcpy (o + l * stride_p + first, out + l * BLOCK, sizeof (gfloat) * n);
    }
}

/* Bytes of the row buffers input_tile_row works in: a zero row, the six
 * input rows, the six rows down, and room for the two floats after r_5's
 * W that a whole last block reads (and does not use). */
static gsize
input_rows_bytes (const Geometry *g)
{
  return sizeof (gfloat) * ((gsize) (2 * ALPHA + 1) * g->row_w + TILE);
}

/* V for one channel and one tile row TY: rows r_k = Σ_i Bᵀ[k][i]·in_i, then
 * across each tile of each. */
static VAE_HOT void
input_tile_row (const Geometry *g, const gfloat *plane, gint c, gint ty, gfloat *restrict rows,
                gfloat *restrict v, gsize stride_p)
{
  const gint    w = g->row_w;
  const gint    y0 = ty * TILE - g->conv->pad_top;
  const gfloat *d[ALPHA];
  gfloat *restrict r = rows + (gsize) (ALPHA + 1) * w; /* r_k at r + k·w */
  gint j0, j1;

  input_rows (g, plane, c, y0, rows, d, &j0, &j1);
  for (gint k = 0; k < ALPHA; k++)
    {
      memset (r + (gsize) k * w, 0, sizeof (gfloat) * j0);
      memset (r + (gsize) k * w + j1, 0, sizeof (gfloat) * (w - j1));
    }
  column_transform (d[0], d[1], d[2], d[3], d[4], d[5], r + j0, r + w + j0, r + 2 * w + j0,
                    r + 3 * w + j0, r + 4 * w + j0, r + 5 * w + j0, j1 - j0);
  for (gint k = 0; k < ALPHA; k++)
    row_across (r + (gsize) k * w, g->span, v + (gsize) k * ALPHA * stride_p, stride_p);
}

/* V ([36][ci][LD], n_rows · span of each row used) for channel C of tile
 * rows TY0 … */
static void
input_channel (const Geometry *g, gint c, gint ty0, gint n_rows, gsize ld, gfloat *rows, gfloat *v)
{
  const VaeTensor *x = g->x.t;
  const gfloat    *plane = x->data + ((gsize) c * x->height + g->x.first) * x->width;

  for (gint r = 0; r < n_rows; r++)
    input_tile_row (g, plane, c, ty0 + r, rows, v + (gsize) c * ld + (gsize) r * g->span,
                    g->conv->in_channels * ld);
}

static void
transform_input (const Geometry *g, gint ty0, gint n_rows, gfloat *v)
{
#pragma omp parallel
  {
    gfloat *rows = g_malloc (input_rows_bytes (g));
#pragma omp for schedule(dynamic)
    for (gint c = 0; c < g->conv->in_channels; c++)
      input_channel (g, c, ty0, n_rows, (gsize) n_rows * g->span, rows, v);
    g_free (rows);
  }
}

/* ---- output transform ----------------------------------------------------- */

/* Output tiles are written as act(residual + out + bias); the residual, when
 * there is one, is read from its own tensor so that a fresh output page is
 * only ever written (reading it first would map the zero page and then
 * fault again, with a TLB shootdown, on the write), or is the output
 * itself, each value read just before it is replaced. */
typedef struct
{
  const VaeConv *conv;
  VaeRows        residual; /* its T NULL where there is none */
  VaeAct         act;
  VaeTensor     *y;
  gint           y_row, rows; /* the output's rows: Y's from Y_ROW */
  gint           tx0;         /* the tiles covered, as in Geometry */
  gint           span;
} Output;

/* The first COLUMNS values of one output row of TW tiles, back in pixel
 * order (value j of tile t is ROW[j·TW + slot of t]), into DST as
 * act(value + RES) (RES may be NULL, or DST itself).  SiLU goes through
 * LINE and the convs' epilogue, where its loop vectorises; the rest is
 * written as it is transposed, a pass less. */
static inline __attribute__ ((always_inline)) void
row_to_pixels (const gfloat *row, gint tw, const gfloat *res, VaeAct act, gfloat *dst, gfloat *line,
               gint columns)
{
  const gboolean silu = act == VAE_ACT_SILU;
  const gint     blocks = MIN (tw / BLOCK, columns / (TILE * BLOCK));
  gfloat        *to = silu ? line : dst;

  for (gint b = 0; b < blocks; b++)
    {
      const gfloat *r = row + (gsize) b * BLOCK;
      const gsize   at = (gsize) b * TILE * BLOCK;
      Floats8       in[TILE], q[TILE];

      load_four (r, tw, in);
      transpose_halves (in, q);
      for (gint i = 0; i < TILE; i++)
        {
          Floats8 value = q[i];
          if (res && !silu)
            value += AT8 (res + at + 8 * i);
          if (act == VAE_ACT_RELU) /* v > 0 ? v : 0, NaN and −0 included */
            value = (Floats8) ((Ints8) value & (Ints8) (value > 0));
          AT8 (to + at + 8 * i) = value;
        }
    }
  for (gint x = blocks * TILE * BLOCK; x < columns; x++)
    {
      const gfloat value = row[(gsize) (x % TILE) * tw + tile_slot (x / TILE, tw)];
      to[x] = silu ? value : vae_activate (res ? value + res[x] : value, act);
    }
  if (silu)
    vae_cpu_epilogue (line, res, columns, 0.0f, act, dst);
}

/* Aᵀ applied to six rows M0 … M5 of TW values, into O0 … O3, plus BIAS.
 * One restrict parameter per row: GCC 12 keeps the loop scalar when the
 * rows are an array, or offsets of one pointer, or restrict locals. */
static inline void
apply_a (const gfloat *restrict m0, const gfloat *restrict m1, const gfloat *restrict m2,
         const gfloat *restrict m3, const gfloat *restrict m4, const gfloat *restrict m5,
         gfloat *restrict o0, gfloat *restrict o1, gfloat *restrict o2, gfloat *restrict o3,
         gfloat bias, gint tw)
{
  for (gint t = 0; t < tw; t++)
    {
      const gfloat sum_p = m1[t] + m2[t], diff_p = m1[t] - m2[t]; /* the points ±3/2 */
      const gfloat sum_q = m3[t] + m4[t], diff_q = m3[t] - m4[t]; /* the points ±2/3 */
      o0[t] = m0[t] + 8 * sum_p + 27 * sum_q + bias;
      o1[t] = 12 * diff_p + 18 * diff_q + bias;
      o2[t] = 18 * sum_p + 12 * sum_q + bias;
      o3[t] = 27 * diff_p + 8 * diff_q + m5[t] + bias;
    }
}

/* One output channel, one tile row: h_kj = Σ_l M_kl·A[l][j] down the tiles,
 * then all four output rows i = Σ_k A[k][i]·h_k in one pass over h (the
 * same sums and differences: a pass per row read h four times), each
 * written back in pixel order (row_to_pixels). */
static VAE_HOT void
output_tile_row (const Output *out, const gfloat *m, gsize stride_p, gint ty, gint o,
                 gfloat *restrict h)
{
  const gint       tw = out->span, x0 = out->tx0 * TILE, width = out->y->width;
  const gint       columns = MIN (width - x0, TILE * tw); /* those of this span inside the image */
  const VaeTensor *r = out->residual.t;
  const gfloat     bias = out->conv->bias ? out->conv->bias[o] : 0.0f;
  gfloat *rows = h + (gsize) ALPHA * TILE * tw;   /* output row i, j: rows[(4i + j)·tw + t] */
  gfloat *line = rows + (gsize) TILE * TILE * tw; /* one output row in pixel order (SiLU) */

  for (gint k = 0; k < ALPHA; k++)
    {
      const gfloat *mk = m + (gsize) k * ALPHA * stride_p;
      gfloat       *hk = h + (gsize) k * TILE * tw;
      apply_a (mk, mk + stride_p, mk + 2 * stride_p, mk + 3 * stride_p, mk + 4 * stride_p,
               mk + 5 * stride_p, hk, hk + tw, hk + 2 * tw, hk + 3 * tw, 0.0f, tw);
    }
  for (gint j = 0; j < TILE; j++)
    {
      const gfloat *hj = h + (gsize) j * tw;
      gfloat       *oj = rows + (gsize) j * tw;
      const gsize   k = (gsize) TILE * tw; /* from h_kj to h_(k+1)j, and from row i to i + 1 */
      apply_a (hj, hj + k, hj + 2 * k, hj + 3 * k, hj + 4 * k, hj + 5 * k, oj, oj + k, oj + 2 * k,
               oj + 3 * k, bias, tw);
    }
  for (gint i = 0; i < TILE && ty * TILE + i < out->rows; i++)
    {
      const gsize   y = out->y_row + ty * TILE + i, yr = out->residual.first + ty * TILE + i;
      const gfloat *res = r ? r->data + ((gsize) o * r->height + yr) * width + x0 : NULL;
      /* may be RES: not restrict */
      gfloat       *dst = out->y->data + ((gsize) o * out->y->height + y) * width + x0;
      const gfloat *row = rows + (gsize) i * TILE * tw; /* output row i, tile-major */

      row_to_pixels (row, tw, res, out->act, dst, line, columns);
    }
}

/* h (ALPHA·TILE rows), the four output rows tile-major and one in pixel
 * order (for SiLU). */
static gsize
output_rows_bytes (const Output *out)
{
  return sizeof (gfloat) * (ALPHA + TILE + 1) * TILE * out->span;
}

/* Output channel O of tile rows TY0 … from M ([36][co][LD], as V). */
static void
output_channel (const Output *out, const gfloat *m, gint o, gint ty0, gint n_rows, gsize ld,
                gfloat *h)
{
  for (gint r = 0; r < n_rows; r++)
    output_tile_row (out, m + (gsize) o * ld + (gsize) r * out->span, out->conv->out_channels * ld,
                     ty0 + r, o, h);
}

static void
transform_output (const Output *out, const gfloat *m, gint ty0, gint n_rows)
{
#pragma omp parallel
  {
    gfloat *h = g_malloc (output_rows_bytes (out));
#pragma omp for schedule(dynamic)
    for (gint o = 0; o < out->conv->out_channels; o++)
      output_channel (out, m, o, ty0, n_rows, (gsize) n_rows * out->span, h);
    g_free (h);
  }
}

/* ---- the convolution ------------------------------------------------------- */

gboolean
vae_winograd_applies (const VaeConv *conv)
{
  return conv->kernel == 3 && conv->stride == 1 && conv->in_channels >= 8 && conv->pad_top <= 1 &&
         conv->pad_left == 1 && vae_conv_groups (conv) == 1;
}

/* Bytes of transformed input and products per row of tiles, and the rows
 * of tiles transformed at once. */
static gsize
tile_row_bytes (const VaeConv *conv, gint tiles_w)
{
  return (gsize) POSITIONS * (conv->in_channels + conv->out_channels) * tiles_w * sizeof (gfloat);
}

static gint
batch_rows (const VaeConv *conv, gint tiles_w, gint tiles_h)
{
  return (gint) CLAMP (BATCH_BYTES / tile_row_bytes (conv, tiles_w), 1, (gsize) tiles_h);
}

gsize
vae_winograd_weight_bytes (const VaeConv *conv)
{
  return weight_bytes (conv, FALSE);
}

static gsize chunk_scratch_bytes (const VaeConv *conv);

gsize
vae_winograd_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w)
{
  const gint  tiles_w = (out_w + TILE - 1) / TILE, tiles_h = (out_h + TILE - 1) / TILE;
  const gsize weights =
      vae_winograd_caches (conv, out_h, out_w) ? 0 : vae_winograd_weight_bytes (conv);

  if (chunked (conv))
    return chunk_scratch_bytes (conv) * omp_get_max_threads () + weights;
  return tile_row_bytes (conv, tiles_w) * batch_rows (conv, tiles_w, tiles_h) + weights;
}

/* The 36 products M_p = U_p·V_p of a band of N tiles. */
static void
multiply (const VaeConv *conv, gboolean bf16, gconstpointer u, const gfloat *v, gint n, gfloat *m)
{
  const gint co = conv->out_channels, ci = conv->in_channels;

  if (bf16 && split ())
    {
      vae_amx_products (POSITIONS, co, n, ci, u, low_weights (conv, u), packed_elements (conv), v,
                        (gsize) n, (gsize) ci * n, m, (gsize) n, (gsize) co * n);
      return;
    }
  if (bf16)
    {
      vae_gemm_bf16_batch (POSITIONS, co, n, ci, u, (gsize) co * 2 * vae_bf16_pairs (ci), v,
                           (gsize) ci * n, m, (gsize) co * n);
      return;
    }
  vae_sgemm_batch (POSITIONS, co, n, ci, u, (gsize) co * ci, v, (gsize) ci * n, m, (gsize) co * n);
}

/* ---- chunks that stay in one core's cache ------------------------------------ */

/* With few channels the transforms, not the products, take the time, and a
 * band's transformed input and products (2¼× the activations each) go
 * through memory twice.  So each thread takes chunks of a few tens of tiles
 * (chunk_tiles) and does all three steps on them in its own caches: 36·(ci
 * + co) floats per tile, 576 KB for 32 tiles at 64 channels in and out. */
#define CHUNK_MAX_CHANNELS 128

/* Tiles per chunk: 32 where AVX-512 runs the products (a chunk is one bf16
 * panel there; in fp32 on an Emerald Rapids with 2 MB of L2, 64 tiles and
 * a row stride of 80 were level with it, within the VM's ±15%); 64 on
 * AVX2, where 64 took 10–14% less time than 32 (and 16, 128 or 256 more)
 * on a TAEF2 round trip at 1024² on a 2-core Zen 3: with its 512 KB L2
 * the chunk spills either way, and a wider one reads the weights once for
 * twice the tiles and its input rows in longer runs. */
static gint
chunk_tiles (void)
{
  return vae_cpu_has_avx512 () ? 32 : 64;
}

/* V's and M's row stride in a chunk.  On AVX2 a row of 64 tiles is 4
 * cache lines, so the 64–128 rows of one position's V fell into a
 * sixteenth of L1's sets; 16 floats more make it an odd number of lines
 * (the product of a 128-channel position 50 → 60 GFLOP/s on a Zen 3).
 * AVX-512's products copy V into bf16 panels or read 32-tile rows (see
 * chunk_tiles for fp32). */
static gsize
chunk_ld (void)
{
  return (gsize) chunk_tiles () + (vae_cpu_has_avx512 () ? 0 : 16);
}

static gboolean chunks_allowed = TRUE;

void
vae_winograd_set_chunked (gboolean allowed)
{
  chunks_allowed = allowed;
}

/* Where the chunks' own products have their kernels: AVX-512 or AVX2 (bf16
 * is only ever asked for where the CPU has AVX512-BF16 too). */
static gboolean
chunked (const VaeConv *conv)
{
  return chunks_allowed && conv->in_channels <= CHUNK_MAX_CHANNELS &&
         conv->out_channels <= CHUNK_MAX_CHANNELS && vae_cpu_has_small_sgemm ();
}

/* Chunks of ROWS tile rows by SPAN tiles, PER_ROW of them across: a wide
 * image is cut across, a narrow one takes several tile rows at once. */
typedef struct
{
  gint rows, span, per_row, count;
} Chunks;

static Chunks
chunks_for (gint tiles_w, gint tiles_h)
{
  const gint tiles = chunk_tiles ();
  Chunks     c;

  c.per_row = (tiles_w + tiles - 1) / tiles;
  c.span = (tiles_w + c.per_row - 1) / c.per_row;
  c.rows = MAX (1, tiles / tiles_w);
  c.count = c.per_row * ((tiles_h + c.rows - 1) / c.rows);
  return c;
}

/* Per thread: V and M of one chunk, the transforms' rows and a bf16 panel. */
typedef struct
{
  gfloat  *v, *m, *rows, *h;
  guint16 *panel;
} ChunkScratch;

static gsize
chunk_floats (const VaeConv *conv)
{
  return (gsize) POSITIONS * (conv->in_channels + conv->out_channels) * chunk_ld ();
}

/* One thread's ChunkScratch in one block of chunk_scratch_bytes (S may
 * be NULL: only the size is wanted); every chunk is at most chunk_tiles ()
 * wide. */
static gsize
chunk_scratch_layout (const VaeConv *conv, gpointer block, ChunkScratch *s)
{
  const gint     tiles = chunk_tiles ();
  const Geometry widest = { conv, { NULL, 0, 0 }, NULL, FALSE, 0, tiles, TILE * tiles + 2 };
  const Output   widest_out = { conv, { NULL, 0, 0 }, VAE_ACT_NONE, NULL, 0, 0, 0, tiles };
  const gsize    rows_at = chunk_floats (conv) * sizeof (gfloat);
  const gsize    h_at = rows_at + input_rows_bytes (&widest);
  const gsize    panel_at = h_at + output_rows_bytes (&widest_out);

  if (s)
    {
      s->v = block;
      s->m = s->v + (gsize) POSITIONS * conv->in_channels * chunk_ld ();
      s->rows = (gfloat *) ((gchar *) block + rows_at);
      s->h = (gfloat *) ((gchar *) block + h_at);
      s->panel = (guint16 *) ((gchar *) block + panel_at);
    }
  return panel_at + vae_bf16_panel_elements (conv->in_channels) * sizeof (guint16);
}

static gsize
chunk_scratch_bytes (const VaeConv *conv)
{
  return chunk_scratch_layout (conv, NULL, NULL);
}

/* The 36 products of one chunk of N tiles, on this thread. */
static void
chunk_products (const VaeConv *conv, gboolean bf16, gconstpointer u, gint n, ChunkScratch *s)
{
  const gint  co = conv->out_channels, ci = conv->in_channels;
  const gsize ld = chunk_ld ();

  for (gint p = 0; p < POSITIONS; p++)
    if (bf16 && split ())
      vae_amx_gemm (co, n, ci, (const guint16 *) u + p * packed_elements (conv),
                    low_weights (conv, u) + p * packed_elements (conv), s->v + (gsize) p * ci * ld,
                    ld, s->m + (gsize) p * co * ld, ld, s->panel);
    else if (bf16)
      vae_gemm_bf16 (co, n, ci, (const guint16 *) u + (gsize) p * co * 2 * vae_bf16_pairs (ci),
                     s->v + (gsize) p * ci * ld, ld, s->m + (gsize) p * co * ld, ld, s->panel);
    else
      vae_sgemm_small (co, n, ci, (const gfloat *) u + p * small_elements (conv),
                       s->v + (gsize) p * ci * ld, ld, s->m + (gsize) p * co * ld, ld);
}

static void
chunk_run (const Geometry *g, const Output *out, gboolean bf16, gconstpointer u, gint ty0,
           gint n_rows, ChunkScratch *s)
{
  const gint co = g->conv->out_channels, ci = g->conv->in_channels;

  for (gint c = 0; c < ci; c++)
    input_channel (g, c, ty0, n_rows, chunk_ld (), s->rows, s->v);
  chunk_products (g->conv, bf16, u, n_rows * g->span, s);
  for (gint o = 0; o < co; o++)
    output_channel (out, s->m, o, ty0, n_rows, chunk_ld (), s->h);
}

static void
chunked_conv (const Geometry *whole, const Output *whole_out, gboolean bf16, gconstpointer u,
              gint tiles_h)
{
  const Chunks chunks = chunks_for (whole->span, tiles_h);

#pragma omp parallel
  {
    ChunkScratch s;
    gpointer     block = g_malloc (chunk_scratch_bytes (whole->conv));
    chunk_scratch_layout (whole->conv, block, &s);
    /* dynamic, as a pass's other loops over channels, rows and blocks: a
     * thread whose core another process shares takes fewer chunks, where a
     * static share made its partner wait (docs/PERFORMANCE-NOTES.md) */
#pragma omp for schedule(dynamic)
    for (gint i = 0; i < chunks.count; i++)
      {
        const gint ty0 = i / chunks.per_row * chunks.rows, tx0 = i % chunks.per_row * chunks.span;
        const gint span = MIN (chunks.span, whole->span - tx0);
        const Geometry g = { whole->conv, whole->x, whole->norm,    whole->up,
                             tx0,         span,     TILE * span + 2 };
        Output         out = *whole_out;
        out.tx0 = tx0;
        out.span = span;
        chunk_run (&g, &out, bf16, u, ty0, MIN (chunks.rows, tiles_h - ty0), &s);
      }
    g_free (block);
  }
}

static gboolean
winograd (const VaeConv *conv, const VaeRows *x, const VaeInputNorm *norm, gboolean up,
          const VaeRows *residual, VaeAct act, gboolean bf16, VaeTensor *y, gint y_row, gint out_h,
          GError **error)
{
  const gint     co = conv->out_channels, ci = conv->in_channels;
  const gint     tiles_w = (y->width + TILE - 1) / TILE, tiles_h = (out_h + TILE - 1) / TILE;
  const gint     band = batch_rows (conv, tiles_w, tiles_h);
  const Geometry g = { conv, *x, norm, up, 0, tiles_w, TILE * tiles_w + 2 };
  const Output   out = {
      conv, residual ? *residual : (VaeRows){ NULL, 0, 0 }, act, y, y_row, out_h, 0, tiles_w
  };
  g_autofree gpointer scratch = NULL;
  gconstpointer       u;
  gfloat             *v, *m;
  gsize               v_capacity, m_capacity;

  if (!(u = weights_for (conv, out_h, y->width, bf16, &scratch, error)))
    return FALSE;
  if (chunked (conv))
    {
      chunked_conv (&g, &out, bf16, u, tiles_h);
      return TRUE;
    }
  if (!(v = vae_scratch_alloc ((gsize) POSITIONS * ci * band * tiles_w * sizeof (gfloat), FALSE,
                               &v_capacity, "Winograd input", error)))
    return FALSE;
  if (!(m = vae_scratch_alloc ((gsize) POSITIONS * co * band * tiles_w * sizeof (gfloat), FALSE,
                               &m_capacity, "Winograd products", error)))
    {
      vae_scratch_free (v, v_capacity);
      return FALSE;
    }
  for (gint ty0 = 0; ty0 < tiles_h; ty0 += band)
    {
      const gint rows = MIN (band, tiles_h - ty0);
      const gint n = rows * tiles_w;
      transform_input (&g, ty0, rows, v);
      multiply (conv, bf16, u, v, n, m);
      transform_output (&out, m, ty0, rows);
    }
  vae_scratch_free (v, v_capacity);
  vae_scratch_free (m, m_capacity);
  return TRUE;
}

gboolean
vae_winograd_conv (const VaeConv *conv, const VaeTensor *x, const VaeInputNorm *norm, gboolean up,
                   const VaeTensor *residual, VaeAct act, gboolean bf16, VaeTensor *y,
                   GError **error)
{
  const VaeRows rows = vae_rows_all (x), r = vae_rows_all (residual);

  return winograd (conv, &rows, norm, up, residual ? &r : NULL, act, bf16, y, 0, y->height, error);
}

gboolean
vae_winograd_conv_rows (const VaeConv *conv, const VaeRows *x, gboolean up, const VaeRows *residual,
                        VaeAct act, gboolean bf16, VaeTensor *y, gint y_row, gint out_h,
                        GError **error)
{
  return winograd (conv, x, NULL, up, residual, act, bf16, y, y_row, out_h, error);
}
