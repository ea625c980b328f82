/* CPU kernels: convolution (Winograd, see winograd.c; chunks of im2col
 * columns, direct.c; or banded im2col + SGEMM through OpenBLAS), GroupNorm
 * with fused activation, and attention streamed over query blocks so that
 * no N×N score matrix is ever allocated.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <math.h>
#include <string.h>

/* Bytes of im2col buffer per band: big enough for efficient GEMMs, small
 * enough that the largest layer (128 ch at 1024² px) needs no 1 GiB copy. */
#define IM2COL_BAND_BYTES ((gsize) 24 << 20)
/* Query rows per attention block: scores take QUERY_BLOCK × N floats. */
#define QUERY_BLOCK 256

/* Row R of the band's im2col matrix: input channel ci, kernel tap (ky, kx),
 * one column per output pixel; zero outside the (upsampled) input. */
static VAE_HOT void
im2col_row (const VaeConv *conv, const VaeTensor *x, gboolean up, gint out_w, gint y0, gint rows,
            gint r, gfloat *restrict dst)
{
  const gint    k = conv->kernel, s = conv->stride;
  const gint    in_h = x->height << up, in_w = x->width << up;
  const gint    ci = r / (k * k), ky = (r / k) % k, kx = r % k;
  const gfloat *plane = x->data + (gsize) ci * x->height * x->width;

  for (gint oy = y0; oy < y0 + rows; dst += out_w, oy++)
    {
      const gint    iy = oy * s - conv->pad_top + ky;
      const gfloat *src;
      gint          ox0, ox1;
      if (iy < 0 || iy >= in_h)
        {
          memset (dst, 0, sizeof (gfloat) * out_w);
          continue;
        }
      src = plane + (gsize) (iy >> up) * x->width;
      /* valid ox: 0 <= ox*s - pad_left + kx < in_w */
      ox0 = MIN (out_w, MAX (0, (conv->pad_left - kx + s - 1) / s));
      ox1 = MIN (out_w, vae_floor_div (in_w - 1 + conv->pad_left - kx, s) + 1);
      if (ox1 < ox0)
        ox1 = ox0;
      memset (dst, 0, sizeof (gfloat) * ox0);
      if (s == 1 && !up)
        memcpy (dst + ox0, src + ox0 - conv->pad_left + kx, sizeof (gfloat) * (ox1 - ox0));
      else
        for (gint ox = ox0; ox < ox1; ox++)
          dst[ox] = src[(ox * s - conv->pad_left + kx) >> up];
      memset (dst + ox1, 0, sizeof (gfloat) * (out_w - ox1));
    }
}

static void
im2col_band (const VaeConv *conv, const VaeTensor *x, gboolean up, gint out_w, gint y0, gint rows,
             gfloat *col)
{
  const gint  n_rows = vae_conv_terms (conv);
  const gsize band = (gsize) rows * out_w;

#pragma omp parallel for schedule(dynamic)
  for (gint r = 0; r < n_rows; r++)
    im2col_row (conv, x, up, out_w, y0, rows, r, col + (gsize) r * band);
}

VAE_HOT void
vae_cpu_epilogue (const gfloat *src, const gfloat *residual, gsize n, gfloat b, VaeAct act,
                  gfloat *dst)
{
  if (residual)
    for (gsize i = 0; i < n; i++)
      dst[i] = vae_activate (src[i] + b + residual[i], act);
  else
    for (gsize i = 0; i < n; i++)
      dst[i] = vae_activate (src[i] + b, act);
}

static void
epilogue (const VaeConv *conv, VaeTensor *y, const VaeTensor *residual, VaeAct act)
{
  const gsize plane = (gsize) y->height * y->width;

  if (!conv->bias && !residual && act == VAE_ACT_NONE)
    return;
#pragma omp parallel for schedule(dynamic)
  for (gint c = 0; c < y->channels; c++)
    vae_cpu_epilogue (y->data + c * plane, residual ? residual->data + c * plane : NULL, plane,
                      conv->bias ? conv->bias[c] : 0.0f, act, y->data + c * plane);
}

static gboolean
is_plain_1x1 (const VaeConv *conv, gboolean up)
{
  return conv->kernel == 1 && conv->stride == 1 && !up && conv->pad_top == 0 && conv->pad_left == 0;
}

static gint
im2col_band_rows (const VaeConv *conv, gint out_h, gint out_w)
{
  const gsize row_bytes = (gsize) vae_conv_terms (conv) * out_w * sizeof (gfloat);

  return (gint) CLAMP (IM2COL_BAND_BYTES / MAX (row_bytes, 1), 1, (gsize) out_h);
}

static gsize grouped_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w);

/* Whether bf16 3×3 convs skip Winograd for direct products on AMX tiles
 * (GEGL_VAE_AMX=direct).  These round only inputs and weights: the SD1.5
 * decode at 512² reaches 52 dB PSNR against fp32, where Winograd's single
 * bf16 products reach 43.5 dB.  But im2col and packing 4× the products'
 * operands make them 1.5× slower than Winograd's split products (56.5 dB),
 * and the direct products of amx-conv.c, the default, need no im2col at
 * all (docs/PERFORMANCE-NOTES.md), so this path is for comparisons only. */
static gboolean
bf16_direct (void)
{
  return vae_cpu_has_amx () && vae_amx_path () == VAE_AMX_DIRECT;
}

/* Scratch of the fp32 paths (and of bf16 where it takes them too). */
static gsize
scratch_bytes (const VaeConv *conv, gint out_h, gint out_w)
{
  const gsize im2col = (gsize) im2col_band_rows (conv, out_h, out_w) * vae_conv_terms (conv) *
                       out_w * sizeof (gfloat);

  if (vae_winograd_applies (conv) && !bf16_direct ())
    return vae_winograd_scratch_bytes (conv, out_h, out_w);
  /* not told whether the input is upsampled (a 1×1 conv takes the chunks
   * when it is) nor the precision: where the CPU has bf16, bf16 takes
   * im2col instead */
  if (vae_direct_conv_applies (conv))
    return MAX (vae_direct_conv_scratch_bytes (conv), vae_cpu_has_bf16 () ? im2col : 0);
  if (is_plain_1x1 (conv, FALSE))
    return 0;
  if (vae_winograd_applies (conv))
    return MAX (vae_winograd_scratch_bytes (conv, out_h, out_w), im2col);
  return im2col;
}

gsize
vae_cpu_conv_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w)
{
  if (vae_conv_groups (conv) > 1)
    return grouped_scratch_bytes (conv, out_h, out_w);
  /* the scratch is not told the precision: where bf16 takes another path,
   * the larger of the two */
  if (vae_amx_conv_applies (conv))
    return MAX (scratch_bytes (conv, out_h, out_w),
                vae_amx_conv_scratch_bytes (conv, out_h, out_w));
  return scratch_bytes (conv, out_h, out_w);
}

/* The CPU backend in one precision: BF16 makes the convolutions' products
 * bf16. */
typedef struct
{
  VaeBackend base;
  gboolean   bf16;
} CpuBackend;

/* C = W·B (B k × n, rows LDB apart; C rows LDC apart), in bf16 when the
 * weights come packed as WEIGHT_BF16. */
static void
product (const VaeConv *conv, const guint16 *weight_bf16, gint n, const gfloat *b, gsize ldb,
         gfloat *c, gsize ldc)
{
  const gint k = vae_conv_terms (conv);

  if (weight_bf16)
    vae_gemm_bf16_parallel (conv->out_channels, n, k, weight_bf16, b, ldb, c, ldc);
  else
    vae_sgemm (FALSE, FALSE, conv->out_channels, n, k, 1.0f, conv->weight, (gsize) k, b, ldb, c,
               ldc);
}

/* CONV's weights as rows of bf16 pairs for vae_gemm_bf16_parallel; packed
 * per call, not cached: all bf16 weight packing is 0.6% of an SD1.5
 * encode's profile. */
static guint16 *
pack_weights_bf16 (const VaeConv *conv, GError **error)
{
  const gint n_k = vae_conv_terms (conv);
  guint16   *packed =
      vae_try_alloc ((gsize) conv->out_channels * 2 * vae_bf16_pairs (n_k) * sizeof (guint16),
                     "bf16 weights", error);

  if (packed)
    vae_bf16_pack_rows (conv->weight, conv->out_channels, n_k, packed);
  return packed;
}

/* Y = W·im2col(X), one band of output rows at a time. */
static gboolean
im2col_product (const VaeConv *conv, const guint16 *weight_bf16, const VaeTensor *x, gboolean up,
                VaeTensor *y, GError **error)
{
  const gint  out_w = y->width, out_h = y->height;
  const gsize row_bytes = (gsize) vae_conv_terms (conv) * out_w * sizeof (gfloat);
  const gint  band = im2col_band_rows (conv, out_h, out_w);
  gsize       col_capacity;
  gfloat     *col = vae_scratch_alloc ((gsize) band * row_bytes, FALSE, &col_capacity,
                                       "convolution workspace", error);

  if (!col)
    return FALSE;
  for (gint y0 = 0; y0 < out_h; y0 += band)
    {
      gint rows = MIN (band, out_h - y0);
      im2col_band (conv, x, up, out_w, y0, rows, col);
      product (conv, weight_bf16, rows * out_w, col, (gsize) rows * out_w,
               y->data + (gsize) y0 * out_w, (gsize) out_h * out_w);
    }
  vae_scratch_free (col, col_capacity);
  return TRUE;
}

static gboolean grouped (const VaeConv *conv, const VaeTensor *x, gboolean up,
                         const VaeTensor *residual, VaeAct act, gboolean fast, gboolean bf16,
                         VaeTensor *y, GError **error);

/* Models are checked when they load; a layer that still gets the wrong
 * number of channels fails with an error, not a NULL the caller cannot
 * explain. */
static gboolean
channels_match (const gchar *layer, gint want, const VaeTensor *x, GError **error)
{
  if (x->channels == want)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("a %s of %d channels was given %d"), layer,
               want, x->channels);
  return FALSE;
}

/* act(conv(up(x)) + bias + residual): Winograd for 3×3 "same" convs when
 * FAST, one product for 1×1, per-thread chunks of im2col columns for fp32
 * convs of few terms, banded im2col + product otherwise; the
 * products in bf16 when BF16.  Direct bf16 products round only the inputs
 * and weights, so they lose far less than Winograd's bf16 ones.  Grouped
 * convolutions run group by group (groups of few inputs directly). */
static VaeTensor *
convolve (const VaeConv *conv, const VaeTensor *x, gboolean up, const VaeTensor *residual,
          VaeAct act, gboolean fast, gboolean bf16, GError **error)
{
  gint       out_h, out_w;
  VaeTensor *y;
  guint16   *weight_bf16 = NULL;
  gboolean   done;

  if (!vae_blas_ready (error) || !channels_match ("convolution", conv->in_channels, x, error) ||
      !vae_conv_output_checked (conv, x, up, &out_h, &out_w, error))
    return NULL;
  /* every path writes all of Y before reading it */
  y = vae_tensor_new_uninit (conv->out_channels, out_h, out_w, FALSE, error);
  if (!y)
    return NULL;
  if (vae_conv_groups (conv) > 1)
    {
      if (!grouped (conv, x, up, residual, act, fast, bf16, y, error))
        g_clear_pointer (&y, vae_tensor_free);
      return y;
    }
  vae_backend_count_macs ((guint64) conv->out_channels * vae_conv_terms (conv) * out_h * out_w);

  if (fast && bf16 && vae_amx_conv_applies (conv))
    {
      if (!vae_amx_conv (conv, x, up, residual, act, y, error))
        g_clear_pointer (&y, vae_tensor_free);
      return y;
    }
  if (fast && vae_winograd_applies (conv) && !(bf16 && bf16_direct ()))
    {
      if (!vae_winograd_conv (conv, x, NULL, up, residual, act, bf16, y, error))
        g_clear_pointer (&y, vae_tensor_free);
      return y; /* bias and activation applied */
    }
  if (fast && !bf16 && !is_plain_1x1 (conv, up) && vae_direct_conv_applies (conv))
    {
      if (!vae_direct_conv (conv, x, up, residual, act, y, error))
        g_clear_pointer (&y, vae_tensor_free);
      return y; /* bias and activation applied */
    }
  if (bf16 && !(weight_bf16 = pack_weights_bf16 (conv, error)))
    {
      vae_tensor_free (y);
      return NULL;
    }
  done = TRUE;
  if (is_plain_1x1 (conv, up))
    product (conv, weight_bf16, out_h * out_w, x->data, (gsize) out_h * out_w, y->data,
             (gsize) out_h * out_w);
  else
    done = im2col_product (conv, weight_bf16, x, up, y, error);
  g_free (weight_bf16);
  if (!done)
    {
      vae_tensor_free (y);
      return NULL;
    }
  epilogue (conv, y, residual, act);
  return y;
}

/* ---- grouped convolutions ---- */

/* Groups whose outputs sum at most this many products run directly (a
 * depthwise 5×5 sums 25); the others as one product per group. */
#define DIRECT_TERMS 32

/* Channels [FIRST, FIRST + N) of T, borrowing its data. */
static VaeTensor
channel_view (const VaeTensor *t, gint first, gint n)
{
  return (VaeTensor){ n, t->height, t->width, t->data + (gsize) first * t->height * t->width,
                      0, NULL };
}

/* row += w · src, N values. */
static VAE_HOT void
axpy_row (gfloat *restrict row, const gfloat *restrict src, gint n, gfloat w)
{
  for (gint i = 0; i < n; i++)
    row[i] += w * src[i];
}

/* Groups of few inputs (depthwise convolutions, the fixed shortcuts of
 * DC-AE): each output plane sums the kernel's taps over its group's
 * (upsampled, padded) input planes directly. */
static void
direct_grouped (const VaeConv *conv, const VaeTensor *x, gboolean up, VaeTensor *y)
{
  const gint k = conv->kernel, s = conv->stride, in_h = x->height << up, in_w = x->width << up;
  const gint gi = vae_conv_group_inputs (conv), go = conv->out_channels / vae_conv_groups (conv);

#pragma omp parallel for schedule(dynamic)
  for (gint o = 0; o < y->channels; o++)
    for (gint oy = 0; oy < y->height; oy++)
      {
        gfloat *row = y->data + ((gsize) o * y->height + oy) * y->width;
        memset (row, 0, y->width * sizeof (gfloat));
        for (gint ci = 0; ci < gi; ci++)
          {
            const gfloat *w = conv->weight + ((gsize) o * gi + ci) * k * k;
            const gfloat *plane = x->data + (gsize) (o / go * gi + ci) * x->height * x->width;
            for (gint ky = 0; ky < k; ky++)
              {
                const gint    iy = oy * s - conv->pad_top + ky;
                const gfloat *src;
                if (iy < 0 || iy >= in_h)
                  continue;
                src = plane + (gsize) (iy >> up) * x->width;
                for (gint kx = 0; kx < k; kx++)
                  {
                    /* valid ox: 0 <= ox*s - pad_left + kx < in_w */
                    const gint ox0 = MIN (y->width, MAX (0, (conv->pad_left - kx + s - 1) / s));
                    const gint ox1 =
                        MIN (y->width, vae_floor_div (in_w - 1 + conv->pad_left - kx, s) + 1);
                    const gfloat wt = w[ky * k + kx];
                    if (wt == 0.0f) /* the shortcuts' weights are mostly zeros */
                      continue;
                    if (s == 1 && !up && ox1 > ox0)
                      axpy_row (row + ox0, src + ox0 - conv->pad_left + kx, ox1 - ox0, wt);
                    else
                      for (gint ox = ox0; ox < ox1; ox++)
                        row[ox] += wt * src[(ox * s - conv->pad_left + kx) >> up];
                  }
              }
          }
      }
}

/* CONV's group G as a dense convolution of its own. */
static VaeConv
group_conv (const VaeConv *conv, gint g)
{
  const gint gi = vae_conv_group_inputs (conv), go = conv->out_channels / vae_conv_groups (conv);
  VaeConv    sub = *conv;

  sub.in_channels = gi;
  sub.out_channels = go;
  sub.groups = 1;
  sub.weight = conv->weight + (gsize) g * go * gi * conv->kernel * conv->kernel;
  sub.bias = conv->bias ? conv->bias + (gsize) g * go : NULL;
  sub.cache = NULL; /* nothing kept for a part */
  return sub;
}

static gboolean
grouped (const VaeConv *conv, const VaeTensor *x, gboolean up, const VaeTensor *residual,
         VaeAct act, gboolean fast, gboolean bf16, VaeTensor *y, GError **error)
{
  const gint  groups = vae_conv_groups (conv), go = conv->out_channels / groups;
  const gint  gi = vae_conv_group_inputs (conv);
  const gsize plane = (gsize) y->height * y->width;

  if (vae_conv_terms (conv) <= DIRECT_TERMS)
    {
      vae_backend_count_macs ((guint64) conv->out_channels * vae_conv_terms (conv) * plane);
      direct_grouped (conv, x, up, y);
      epilogue (conv, y, residual, act);
      return TRUE;
    }
  for (gint g = 0; g < groups; g++)
    {
      const VaeConv   sub = group_conv (conv, g);
      const VaeTensor xg = channel_view (x, g * gi, gi);
      const VaeTensor rg = residual ? channel_view (residual, g * go, go) : (VaeTensor){ 0 };
      VaeTensor      *yg = convolve (&sub, &xg, up, residual ? &rg : NULL, act, fast, bf16, error);
      if (!yg)
        return FALSE;
      memcpy (y->data + g * go * plane, yg->data, go * plane * sizeof (gfloat));
      vae_tensor_free (yg);
    }
  return TRUE;
}

/* A group's own scratch and output, for all but direct ones. */
static gsize
grouped_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w)
{
  const VaeConv sub = group_conv (conv, 0);

  if (vae_conv_terms (conv) <= DIRECT_TERMS)
    return 0;
  return vae_cpu_conv_scratch_bytes (&sub, out_h, out_w) +
         (gsize) sub.out_channels * out_h * out_w * sizeof (gfloat);
}

/* ---- end grouped convolutions ---- */

VaeTensor *
vae_cpu_conv_reference (const VaeConv *conv, const VaeTensor *x, gboolean up,
                        const VaeTensor *residual, VaeAct act, GError **error)
{
  return convolve (conv, x, up, residual, act, FALSE, FALSE, error);
}

static VaeTensor *
cpu_conv (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x, gboolean up,
          const VaeTensor *residual, VaeAct act, GError **error)
{
  return convolve (conv, x, up, residual, act, TRUE, ((const CpuBackend *) be)->bf16, error);
}

/* Whether convolve would take CONV with Winograd on BE. */
static gboolean
winograd_takes (const VaeBackend *be, const VaeConv *conv)
{
  const gboolean bf16 = ((const CpuBackend *) be)->bf16;

  return vae_winograd_applies (conv) && !(bf16 && (bf16_direct () || vae_amx_conv_applies (conv)));
}

/* X's rows as the tensor the other kernels read: X's own tensor where they
 * are all of it, else a copy (*COPY, freed by the caller). */
static const VaeTensor *
rows_tensor (const VaeRows *x, VaeTensor **copy, GError **error)
{
  if (x->first == 0 && x->rows == x->t->height)
    return x->t;
  return *copy = vae_tensor_rows (x->t, x->first, x->first + x->rows, error);
}

gboolean
vae_cpu_conv_rows (const VaeBackend *be, const VaeConv *conv, const VaeRows *x, gboolean up,
                   const VaeRows *residual, VaeAct act, VaeTensor *y, gint y_row, gint out_h,
                   GError **error)
{
  const gboolean   bf16 = ((const CpuBackend *) be)->bf16;
  VaeTensor       *copy = NULL, *out;
  const VaeTensor *band;
  gint             all_h, out_w;

  if (!vae_blas_ready (error) || !channels_match ("convolution", conv->in_channels, x->t, error))
    return FALSE;
  vae_conv_output_size (conv, x->rows << up, x->t->width << up, &all_h, &out_w);
  g_return_val_if_fail (out_h <= all_h && out_w == y->width && y_row + out_h <= y->height &&
                            (!residual || residual->rows == out_h),
                        FALSE);
  if (winograd_takes (be, conv))
    {
      vae_backend_count_macs ((guint64) conv->out_channels * vae_conv_terms (conv) * out_h * out_w);
      return vae_winograd_conv_rows (conv, x, up, residual, act, bf16, y, y_row, out_h, error);
    }
  if (!(band = rows_tensor (x, &copy, error)))
    return FALSE;
  out = be->conv (be, conv, band, up, NULL, residual ? VAE_ACT_NONE : act, error);
  vae_tensor_free (copy);
  if (!out)
    return FALSE;
#pragma omp parallel for schedule(dynamic)
  for (gint c = 0; c < out->channels; c++)
    {
      const gsize   n = (gsize) out_h * out_w;
      const gfloat *r =
          residual ? residual->t->data + ((gsize) c * residual->t->height + residual->first) * out_w
                   : NULL;
      vae_cpu_epilogue (out->data + c * (gsize) all_h * out_w, r, n, 0.0f, r ? act : VAE_ACT_NONE,
                        y->data + ((gsize) c * y->height + y_row) * out_w);
    }
  vae_tensor_free (out);
  return TRUE;
}

VaeTensor *
vae_cpu_conv_band (const VaeBackend *be, const VaeConv *conv, const VaeRows *x, gboolean up,
                   VaeAct act, GError **error)
{
  VaeTensor       *copy = NULL, *y;
  const VaeTensor *band;
  gint             out_h, out_w;

  if (winograd_takes (be, conv))
    {
      vae_conv_output_size (conv, x->rows << up, x->t->width << up, &out_h, &out_w);
      if ((y = vae_tensor_new_uninit (conv->out_channels, out_h, out_w, FALSE, error)) &&
          !vae_cpu_conv_rows (be, conv, x, up, NULL, act, y, 0, out_h, error))
        g_clear_pointer (&y, vae_tensor_free);
      return y;
    }
  if (!(band = rows_tensor (x, &copy, error)))
    return NULL;
  y = be->conv (be, conv, band, up, NULL, act, error);
  vae_tensor_free (copy);
  return y;
}

/* Independent partial sums, so that the double additions vectorise (one
 * running sum is bound by the adder's latency). */
#define MOMENT_LANES 32

VAE_HOT void
vae_moments (const gfloat *restrict p, gsize n, gdouble *mean, gdouble *m2)
{
  gdouble     lane[MOMENT_LANES] = { 0 }, sum = 0.0, sum_sq = 0.0, m;
  const gsize body = n - n % MOMENT_LANES;

  for (gsize i = 0; i < body; i += MOMENT_LANES)
    for (gint j = 0; j < MOMENT_LANES; j++)
      lane[j] += p[i + j];
  for (gsize i = body; i < n; i++)
    sum += p[i];
  for (gint j = 0; j < MOMENT_LANES; j++)
    sum += lane[j];
  m = sum / (gdouble) n;
  memset (lane, 0, sizeof lane);
  for (gsize i = 0; i < body; i += MOMENT_LANES)
    for (gint j = 0; j < MOMENT_LANES; j++)
      lane[j] += (p[i + j] - m) * (p[i + j] - m);
  for (gsize i = body; i < n; i++)
    sum_sq += (p[i] - m) * (p[i] - m);
  for (gint j = 0; j < MOMENT_LANES; j++)
    sum_sq += lane[j];
  *mean = m;
  *m2 = sum_sq;
}

/* Mean and 1/std of N values. */
static void
group_stats (const gfloat *p, gsize n, gfloat eps, gdouble *mean, gdouble *rstd)
{
  gdouble m2;

  vae_moments (p, n, mean, &m2);
  *rstd = 1.0 / sqrt (m2 / (gdouble) n + eps);
}

/* One loop per activation, so that each vectorises (with the activation
 * tested inside, GCC 12 keeps the AVX2 build scalar). */
VAE_HOT void
vae_scale_shift_act (const gfloat *src, gfloat *dst, gsize n, gfloat a, gfloat b, VaeAct act)
{
  if (act == VAE_ACT_SILU)
    for (gsize i = 0; i < n; i++)
      dst[i] = vae_activate (src[i] * a + b, VAE_ACT_SILU);
  else if (act == VAE_ACT_RELU)
    for (gsize i = 0; i < n; i++)
      dst[i] = vae_activate (src[i] * a + b, VAE_ACT_RELU);
  else
    for (gsize i = 0; i < n; i++)
      dst[i] = src[i] * a + b;
}

/* A GroupNorm's y = x·a + b per channel of X: a = rstd·γ, b = β − mean·a,
 * the statistics per group, in double. */
void
vae_cpu_norm_scale_shift (const VaeNorm *norm, const VaeTensor *x, gfloat *a, gfloat *b)
{
  const gsize plane = (gsize) x->height * x->width;
  const gint  per_group = x->channels / norm->groups;
  gdouble    *mean = g_new (gdouble, norm->groups), *rstd = g_new (gdouble, norm->groups);

#pragma omp parallel for schedule(dynamic)
  for (gint g = 0; g < norm->groups; g++)
    group_stats (x->data + (gsize) g * per_group * plane, (gsize) per_group * plane, norm->eps,
                 &mean[g], &rstd[g]);
  for (gint c = 0; c < x->channels; c++)
    {
      const gint g = c / per_group;
      a[c] = (gfloat) (rstd[g] * norm->gamma[c]);
      b[c] = (gfloat) (norm->beta[c] - mean[g] * rstd[g] * norm->gamma[c]);
    }
  g_free (mean);
  g_free (rstd);
}

/* GroupNorm, with the activation in the same pass; Y may be X. */
static void
normalize (const VaeNorm *norm, const VaeTensor *x, VaeAct act, VaeTensor *y)
{
  const gsize plane = (gsize) x->height * x->width;
  gfloat     *a = g_new (gfloat, x->channels), *b = g_new (gfloat, x->channels);

  vae_cpu_norm_scale_shift (norm, x, a, b);
#pragma omp parallel for schedule(dynamic)
  for (gint c = 0; c < x->channels; c++)
    vae_scale_shift_act (x->data + (gsize) c * plane, y->data + (gsize) c * plane, plane, a[c],
                         b[c], act);
  g_free (a);
  g_free (b);
}

/* ---- RMS norm ---- */

/* Positions per block: their sums (in double, as the float64 reference)
 * stay in the first-level cache while every channel adds to them. */
#define RMS_BLOCK 512

static VAE_HOT void
rms_block (const VaeNorm *norm, const gfloat *x, gfloat *y, gsize plane, gsize first, gint n,
           VaeAct act)
{
  const gdouble floor = VAE_RMS_FLOOR / norm->channels;
  gdouble       sum[RMS_BLOCK] = { 0 };
  gfloat        rstd[RMS_BLOCK];

  for (gint c = 0; c < norm->channels; c++)
    {
      const gfloat *xc = x + c * plane + first;
      for (gint i = 0; i < n; i++)
        sum[i] += (gdouble) xc[i] * xc[i];
    }
  for (gint i = 0; i < n; i++)
    rstd[i] = (gfloat) (1.0 / sqrt (MAX (sum[i] / norm->channels, floor) + norm->eps));
  for (gint c = 0; c < norm->channels; c++)
    {
      const gfloat *xc = x + c * plane + first;
      gfloat       *yc = y + c * plane + first;
      const gfloat  g = norm->gamma[c], b = norm->beta ? norm->beta[c] : 0.0f;
      for (gint i = 0; i < n; i++)
        yc[i] = vae_activate (xc[i] * rstd[i] * g + b, act);
    }
}

void
vae_rms_norm_span (const VaeNorm *norm, const gfloat *x, gfloat *y, gsize plane, gsize first,
                   gsize count, VaeAct act)
{
  const gsize blocks = (count + RMS_BLOCK - 1) / RMS_BLOCK;

#pragma omp parallel for schedule(dynamic)
  for (gsize b = 0; b < blocks; b++)
    rms_block (norm, x, y, plane, first + b * RMS_BLOCK,
               (gint) MIN ((gsize) RMS_BLOCK, count - b * RMS_BLOCK), act);
}

/* ---- end RMS norm ---- */

/* Either kind of norm; Y may be X. */
static void
normalize_any (const VaeNorm *norm, const VaeTensor *x, VaeAct act, VaeTensor *y)
{
  const gsize plane = (gsize) x->height * x->width;

  if (norm->kind == VAE_NORM_RMS)
    vae_rms_norm_span (norm, x->data, y->data, plane, 0, plane, act);
  else
    normalize (norm, x, act, y);
}

static gboolean
norm_fits (const VaeNorm *norm, const VaeTensor *x, GError **error)
{
  return channels_match (norm->kind == VAE_NORM_RMS ? "RMS norm" : "GroupNorm", norm->channels, x,
                         error);
}

static VaeTensor *
cpu_norm (const VaeBackend *be, const VaeNorm *norm, const VaeTensor *x, VaeAct act, GError **error)
{
  VaeTensor *y;

  if (!norm_fits (norm, x, error))
    return NULL;
  if ((y = vae_tensor_new_uninit (x->channels, x->height, x->width, FALSE, error)))
    normalize_any (norm, x, act, y);
  return y;
}

static gboolean
cpu_norm_in_place (const VaeBackend *be, const VaeNorm *norm, VaeTensor *x, VaeAct act,
                   GError **error)
{
  if (!norm_fits (norm, x, error))
    return FALSE;
  normalize_any (norm, x, act, x);
  return TRUE;
}

static void
softmax_rows (gfloat *scores, gint rows, gint n)
{
#pragma omp parallel for schedule(dynamic)
  for (gint r = 0; r < rows; r++)
    {
      gfloat *s = scores + (gsize) r * n;
      gfloat  max = s[0];
      gdouble sum = 0.0;
      gfloat  inv;
      for (gint j = 1; j < n; j++)
        max = MAX (max, s[j]);
      for (gint j = 0; j < n; j++)
        {
          s[j] = expf (s[j] - max);
          sum += s[j];
        }
      inv = (gfloat) (1.0 / sum);
      for (gint j = 0; j < n; j++)
        s[j] *= inv;
    }
}

void
vae_cpu_attend (const gfloat *q, gsize q_stride, gint rows, const VaeTensor *k, const VaeTensor *v,
                gfloat *o, gsize o_stride, gfloat *scores)
{
  const gint c = k->channels, n = k->height * k->width;

  for (gint r0 = 0; r0 < rows; r0 += QUERY_BLOCK)
    {
      gint block = MIN (QUERY_BLOCK, rows - r0);
      /* scores[block, n] = q[:, r0:r0+block]ᵀ · k / √c */
      vae_sgemm (TRUE, FALSE, block, n, c, (gfloat) (1.0 / sqrt (c)), q + r0, q_stride, k->data,
                 (gsize) n, scores, (gsize) n);
      softmax_rows (scores, block, n);
      /* o[:, r0:r0+block] = v · scoresᵀ */
      vae_sgemm (FALSE, TRUE, c, block, n, 1.0f, v->data, (gsize) n, scores, (gsize) n, o + r0,
                 o_stride);
    }
  vae_backend_count_macs (2 * (guint64) rows * n * c);
}

gsize
vae_cpu_attend_scratch_floats (gint n)
{
  return (gsize) MIN (QUERY_BLOCK, n) * n;
}

static VaeTensor *
cpu_attention (const VaeBackend *be, const VaeAttention *attn, const VaeTensor *x, GError **error)
{
  const gint n = x->height * x->width;
  VaeTensor *h = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL, *out = NULL;
  gfloat    *scores = NULL;
  gsize      scores_capacity = 0;

  if (!(h = cpu_norm (be, &attn->norm, x, VAE_ACT_NONE, error)) ||
      !(q = cpu_conv (be, &attn->q, h, FALSE, NULL, VAE_ACT_NONE, error)) ||
      !(k = cpu_conv (be, &attn->k, h, FALSE, NULL, VAE_ACT_NONE, error)) ||
      !(v = cpu_conv (be, &attn->v, h, FALSE, NULL, VAE_ACT_NONE, error)))
    goto done;
  g_clear_pointer (&h, vae_tensor_free);
  if (!(o = vae_tensor_new (x->channels, x->height, x->width, error)) ||
      !(scores = vae_scratch_alloc (vae_cpu_attend_scratch_floats (n) * sizeof (gfloat), FALSE,
                                    &scores_capacity, "attention scores", error)))
    goto done;
  vae_cpu_attend (q->data, n, n, k, v, o->data, n, scores);
  out = cpu_conv (be, &attn->proj, o, FALSE, x, VAE_ACT_NONE, error);
done:
  vae_scratch_free (scores, scores_capacity);
  vae_tensor_free (h);
  vae_tensor_free (q);
  vae_tensor_free (k);
  vae_tensor_free (v);
  vae_tensor_free (o);
  return out;
}

static VaeTensor *
cpu_clamp (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  VaeTensor *y = vae_tensor_new (x->channels, x->height, x->width, error);
  gsize      n = vae_tensor_n_elements (x);

  if (!y)
    return NULL;
#pragma omp parallel for schedule(static)
  for (gsize i = 0; i < n; i++)
    y->data[i] = tanhf (x->data[i] / 3.0f) * 3.0f;
  return y;
}

/* in fp32 in either precision: the VQ-VAE's transposed convolutions are
 * small */
static VaeTensor *
cpu_conv_transpose (const VaeBackend *be, const VaeConvTranspose *layer, const VaeTensor *x,
                    VaeAct act, GError **error)
{
  if (!vae_blas_ready (error))
    return NULL;
  return vae_cpu_conv_transpose (layer, x, act, error);
}

/* ---- DC-AE layers (kernels in dcae.c) ---- */

/* As channels_match, for the layers whose input shapes are a rule rather
 * than one count (the loader checks them; a miswired net still gets an
 * error, not a NULL that says nothing). */
static gboolean
layer_takes (gboolean ok, const gchar *layer, const VaeTensor *x, GError **error)
{
  if (ok)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("a %s cannot take %d channels of %d×%d"),
               layer, x->channels, x->width, x->height);
  return FALSE;
}

static VaeTensor *
cpu_add (const VaeBackend *be, const VaeTensor *a, const VaeTensor *b, GError **error)
{
  VaeTensor *y;

  if (!layer_takes (vae_tensor_n_elements (a) == vae_tensor_n_elements (b), "residual sum", b,
                    error))
    return NULL;
  if ((y = vae_tensor_new_uninit (a->channels, a->height, a->width, FALSE, error)))
    vae_cpu_add (a, b, y);
  return y;
}

static VaeTensor *
cpu_gate (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  VaeTensor *y;

  if (!layer_takes (x->channels % 2 == 0, "gate", x, error))
    return NULL;
  if ((y = vae_tensor_new_uninit (x->channels / 2, x->height, x->width, FALSE, error)))
    vae_cpu_gate (x, y);
  return y;
}

static VaeTensor *
cpu_linear_attention (const VaeBackend *be, const VaeTensor *x, gint head_dim, gfloat eps,
                      GError **error)
{
  const gsize         positions = (gsize) x->height * x->width;
  g_autofree gdouble *sums = NULL;
  VaeTensor          *y;
  gfloat             *scratch;
  gsize               capacity;

  if (!layer_takes (head_dim > 0 && x->channels % (3 * head_dim) == 0, "linear attention", x,
                    error))
    return NULL;
  if (!(y = vae_tensor_new_uninit (x->channels / 3, x->height, x->width, FALSE, error)))
    return NULL;
  if (!(scratch = vae_scratch_alloc (vae_linear_attention_scratch_floats (head_dim, positions) *
                                         sizeof (gfloat),
                                     FALSE, &capacity, "linear attention", error)))
    {
      vae_tensor_free (y);
      return NULL;
    }
  sums = g_new0 (gdouble, vae_linear_attention_sums_size (x, head_dim));
  vae_linear_attention_sums (x, head_dim, sums, scratch);
  vae_linear_attention_apply (x, head_dim, eps, sums, y, scratch);
  vae_scratch_free (scratch, capacity);
  return y;
}

static VaeTensor *
cpu_pixel_shuffle (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  VaeTensor *y;

  if (!layer_takes (x->channels % 4 == 0, "pixel shuffle", x, error))
    return NULL;
  if ((y = vae_tensor_new_uninit (x->channels / 4, x->height * 2, x->width * 2, FALSE, error)))
    vae_pixel_shuffle_rows (x, 0, y, 0);
  return y;
}

/* ---- end DC-AE layers ---- */

#define CPU_BACKEND(is_bf16)                                                                       \
  {                                                                                                \
    { .name = "cpu",                                                                               \
      .conv = cpu_conv,                                                                            \
      .norm = cpu_norm,                                                                            \
      .attention = cpu_attention,                                                                  \
      .clamp = cpu_clamp,                                                                          \
      .norm_in_place = cpu_norm_in_place,                                                          \
      .conv_transpose = cpu_conv_transpose,                                                        \
      .add = cpu_add,                                                                              \
      .gate = cpu_gate,                                                                            \
      .linear_attention = cpu_linear_attention,                                                    \
      .pixel_shuffle = cpu_pixel_shuffle,                                                          \
      .residual_block = vae_cpu_residual_block,                                                    \
      .resnet = vae_cpu_resnet },                                                                  \
        is_bf16                                                                                    \
  }

static const CpuBackend cpu_backends[] = { CPU_BACKEND (FALSE), CPU_BACKEND (TRUE) };

const VaeBackend *
vae_backend_cpu (void)
{
  return &cpu_backends[0].base;
}

const VaeBackend *
vae_backend_cpu_bf16 (void)
{
  return &cpu_backends[1].base;
}
