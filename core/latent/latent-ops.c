/* Latent operations: ComfyUI's latent nodes on planar tensors of any channel
 * count, computed in float32 in the order PyTorch computes them, so that
 * results match ComfyUI's to float rounding (tests/test-latent-ops.c against
 * tests/reference/make_latent_ops_goldens.py).
 *
 *   scale      comfy.utils.common_upscale: torch's interpolate (nearest-exact,
 *              bilinear, bicubic; align_corners False), adaptive average
 *              pooling ("area") and ComfyUI's bislerp
 *   transform  LatentFlip, LatentRotate (clockwise), transpose
 *   composite  LatentComposite with its feathered edges
 *   blend      LatentBlend, the slerp of bislerp, LatentAdd, LatentSubtract,
 *              LatentMultiply
 *   masks      the noise mask on the latent grid (comfy.utils.reshape_mask),
 *              VAEEncodeForInpaint's grown mask and grey fill, and the masked
 *              noise of the sampler's first step
 *
 * Self-contained: it needs vae.h's tensors and nothing else of libvae.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae.h"

#include <glib/gi18n-lib.h>
#include <math.h>
#include <string.h>

#define MAX_SIDE 65536 /* the largest latent side these operations make */

static gboolean
check_channels (const VaeTensor *a, const VaeTensor *b, const gchar *what, GError **error)
{
  if (a->channels == b->channels)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s has %d channels but the latent has %d"),
               what, b->channels, a->channels);
  return FALSE;
}

static gboolean
check_mask (const VaeTensor *mask, GError **error)
{
  if (mask->channels == 1)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("a mask has 1 channel, not %d"),
               mask->channels);
  return FALSE;
}

/* ---- resampling along one axis ------------------------------------------ */

/* Where one output position reads along an axis, and with what weights. */
typedef struct
{
  gint   n;
  gint   index[4];
  gfloat weight[4];
} Taps;

/* torch's area_pixel_compute_source_index (align_corners False), which
 * torch 1.13 keeps in double. */
static gdouble
source_position (gfloat scale, gint dst)
{
  return scale * (dst + 0.5) - 0.5;
}

/* torch's cubic convolution weights (A = −0.75) in float32, the first steps
 * fused as PyTorch's build compiles them (fmaf): the polynomials cancel,
 * and an unfused evaluation lands up to 7e-7 away from PyTorch's. */
static gfloat
cubic_near (gfloat x) /* |x| ≤ 1 */
{
  const gfloat a = -0.75f, p = fmaf (a + 2, x, -(a + 3));
  return p * x * x + 1;
}

static gfloat
cubic_far (gfloat x) /* 1 < |x| < 2 */
{
  const gfloat a = -0.75f, p = fmaf (fmaf (a, x, -5 * a), x, 8 * a);
  return p * x - 4 * a;
}

/* torch's interpolate (nearest-exact, bilinear, bicubic) from IN_SIZE to
 * OUT_SIZE: the taps of output position DST. */
static void
axis_taps (VaeScaleMethod method, gint in_size, gint out_size, gint dst, Taps *t)
{
  const gfloat scale = (gfloat) in_size / out_size;

  if (method == VAE_SCALE_NEAREST_EXACT)
    {
      /* floorf of a double product rounded to float, as torch writes it */
      t->n = 1;
      t->index[0] = MIN ((gint) floorf ((gfloat) ((dst + 0.5) * scale)), in_size - 1);
      t->weight[0] = 1.0f;
    }
  else if (method == VAE_SCALE_BILINEAR)
    {
      const gdouble src = MAX (source_position (scale, dst), 0.0);
      const gint    i0 = (gint) src;

      t->n = 2;
      t->index[0] = i0;
      t->index[1] = i0 + (i0 < in_size - 1 ? 1 : 0);
      t->weight[1] = (gfloat) (src - i0);
      t->weight[0] = 1.0f - t->weight[1];
    }
  else /* bicubic: four taps, the positions clamped to the axis */
    {
      const gdouble src = source_position (scale, dst);
      const gint    i0 = (gint) floor (src);
      const gfloat  x = (gfloat) (src - i0);

      t->n = 4;
      for (gint j = 0; j < 4; j++)
        t->index[j] = CLAMP (i0 - 1 + j, 0, in_size - 1);
      t->weight[0] = cubic_far (x + 1.0f);
      t->weight[1] = cubic_near (x);
      t->weight[2] = cubic_near (1.0f - x);
      t->weight[3] = cubic_far (1.0f - x + 1.0f);
    }
}

/* Σ_j (Σ_i plane[y_j][x_i]·wx_i)·wy_j, each sum started by its first
 * product, in torch's order. */
static gfloat
apply_taps (const gfloat *plane, gsize stride, const Taps *ty, const Taps *tx)
{
  gfloat out = 0.0f;

  for (gint j = 0; j < ty->n; j++)
    {
      const gfloat *row = plane + ty->index[j] * stride;
      gfloat        t = row[tx->index[0]] * tx->weight[0];

      for (gint i = 1; i < tx->n; i++)
        t += row[tx->index[i]] * tx->weight[i];
      out = j == 0 ? t * ty->weight[0] : out + t * ty->weight[j];
    }
  return out;
}

/* The rectangle AREA of IN (whole size IN_W×IN_H, of which IN holds the
 * rectangle at IN_X, IN_Y) interpolated to OUT_W×OUT_H. */
static VaeTensor *
interpolate (const VaeTensor *in, gint in_x, gint in_y, gint in_w, gint in_h, gint out_w,
             gint out_h, const VaeRect *area, VaeScaleMethod method, GError **error)
{
  VaeTensor  *out = vae_tensor_new (in->channels, area->height, area->width, error);
  const gsize in_plane = (gsize) in->width * in->height;
  const gsize out_plane = (gsize) area->width * area->height;
  Taps       *tx;

  if (!out)
    return NULL;
  tx = g_new (Taps, area->width);
  for (gint x = 0; x < area->width; x++)
    {
      axis_taps (method, in_w, out_w, area->x + x, &tx[x]);
      for (gint i = 0; i < tx[x].n; i++)
        tx[x].index[i] -= in_x;
    }
  for (gint y = 0; y < area->height; y++)
    {
      Taps ty;

      axis_taps (method, in_h, out_h, area->y + y, &ty);
      for (gint j = 0; j < ty.n; j++)
        ty.index[j] -= in_y;
      for (gint c = 0; c < in->channels; c++)
        for (gint x = 0; x < area->width; x++)
          out->data[c * out_plane + (gsize) y * area->width + x] =
              apply_taps (in->data + c * in_plane, in->width, &ty, &tx[x]);
    }
  g_free (tx);
  return out;
}

/* adaptive_avg_pool2d: the mean over [⌊o·in/out⌋, ⌈(o+1)·in/out⌉) on each
 * axis, a float sum divided by the rows, then by the columns. */
static VaeTensor *
area_average (const VaeTensor *in, gint out_w, gint out_h, GError **error)
{
  VaeTensor  *out = vae_tensor_new (in->channels, out_h, out_w, error);
  const gsize in_plane = (gsize) in->width * in->height;

  if (!out)
    return NULL;
  for (gint c = 0; c < in->channels; c++)
    for (gint oy = 0; oy < out_h; oy++)
      for (gint ox = 0; ox < out_w; ox++)
        {
          const gint    y0 = (gint) ((gint64) oy * in->height / out_h);
          const gint    y1 = (gint) (((gint64) (oy + 1) * in->height + out_h - 1) / out_h);
          const gint    x0 = (gint) ((gint64) ox * in->width / out_w);
          const gint    x1 = (gint) (((gint64) (ox + 1) * in->width + out_w - 1) / out_w);
          const gfloat *plane = in->data + c * in_plane;
          gfloat        sum = 0.0f;

          for (gint y = y0; y < y1; y++)
            for (gint x = x0; x < x1; x++)
              sum += plane[(gsize) y * in->width + x];
          out->data[c * (gsize) out_w * out_h + (gsize) oy * out_w + ox] =
              sum / (y1 - y0) / (x1 - x0);
        }
  return out;
}

/* ---- slerp and bislerp ------------------------------------------------------ */

/* The slerp inside comfy.utils.bislerp, for one pair of channel vectors
 * (STRIDE apart in memory): the directions slerped, the norms lerped;
 * nearly equal directions keep B1, nearly opposite ones are lerped. */
static void
slerp (const gfloat *b1, const gfloat *b2, gsize stride, gfloat r, gint channels, gfloat *out,
       gsize out_stride)
{
  gdouble s1 = 0.0, s2 = 0.0, dot = 0.0;
  gfloat  n1, n2, d, omega, so, k1, k2, norm;

  for (gint c = 0; c < channels; c++)
    {
      s1 += (gdouble) b1[c * stride] * b1[c * stride];
      s2 += (gdouble) b2[c * stride] * b2[c * stride];
    }
  n1 = (gfloat) sqrt (s1);
  n2 = (gfloat) sqrt (s2);
  for (gint c = 0; c < channels; c++)
    {
      const gfloat u1 = n1 == 0.0f ? 0.0f : b1[c * stride] / n1;
      const gfloat u2 = n2 == 0.0f ? 0.0f : b2[c * stride] / n2;
      dot += u1 * u2;
    }
  d = (gfloat) dot;
  if (d > (gfloat) (1 - 1e-5))
    {
      for (gint c = 0; c < channels; c++)
        out[c * out_stride] = b1[c * stride];
      return;
    }
  if (d < (gfloat) (1e-5 - 1))
    {
      for (gint c = 0; c < channels; c++)
        out[c * out_stride] = b1[c * stride] * (1.0f - r) + b2[c * stride] * r;
      return;
    }
  omega = acosf (d);
  so = sinf (omega);
  k1 = sinf ((1.0f - r) * omega) / so;
  k2 = sinf (r * omega) / so;
  norm = n1 * (1.0f - r) + n2 * r;
  for (gint c = 0; c < channels; c++)
    {
      const gfloat u1 = n1 == 0.0f ? 0.0f : b1[c * stride] / n1;
      const gfloat u2 = n2 == 0.0f ? 0.0f : b2[c * stride] / n2;
      out[c * out_stride] = (k1 * u1 + k2 * u2) * norm;
    }
}

/* bislerp's generate_bilinear_data: the bilinear positions of the ramps
 * 0, 1, …, OLD − 1 and 1, 2, …, OLD − 1, OLD − 1 at each new position. */
static void
bislerp_axis (gint old, gint new, gint *first, gint *second, gfloat *ratio)
{
  for (gint i = 0; i < new; i++)
    {
      Taps   t;
      gfloat p1, p2;

      axis_taps (VAE_SCALE_BILINEAR, old, new, i, &t);
      p1 = (gfloat) t.index[0] * t.weight[0] + (gfloat) t.index[1] * t.weight[1];
      p2 = (gfloat) MIN (t.index[0] + 1, old - 1) * t.weight[0] +
           (gfloat) MIN (t.index[1] + 1, old - 1) * t.weight[1];
      first[i] = (gint) p1;
      second[i] = (gint) p2;
      ratio[i] = p1 - floorf (p1);
    }
}

/* ComfyUI's bislerp: slerp between neighbouring columns, then rows. */
static VaeTensor *
bislerp (const VaeTensor *in, gint out_w, gint out_h, GError **error)
{
  const gint  c = in->channels, h = in->height;
  const gsize in_plane = (gsize) in->width * h, mid_plane = (gsize) out_w * h;
  g_autofree gint   *first = g_new (gint, MAX (out_w, out_h));
  g_autofree gint   *second = g_new (gint, MAX (out_w, out_h));
  g_autofree gfloat *ratio = g_new (gfloat, MAX (out_w, out_h));
  g_autoptr (VaeTensor) mid = vae_tensor_new (c, h, out_w, error);
  VaeTensor *out = mid ? vae_tensor_new (c, out_h, out_w, error) : NULL;

  if (!out)
    return NULL;
  bislerp_axis (in->width, out_w, first, second, ratio);
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < out_w; x++)
      {
        const gfloat *row = in->data + (gsize) y * in->width;
        slerp (row + first[x], row + second[x], in_plane, ratio[x], c,
               mid->data + (gsize) y * out_w + x, mid_plane);
      }
  bislerp_axis (h, out_h, first, second, ratio);
  for (gint y = 0; y < out_h; y++)
    for (gint x = 0; x < out_w; x++)
      slerp (mid->data + (gsize) first[y] * out_w + x, mid->data + (gsize) second[y] * out_w + x,
             mid_plane, ratio[y], c, out->data + (gsize) y * out_w + x, (gsize) out_w * out_h);
  return out;
}

/* ---- scale ---------------------------------------------------------------- */

static gboolean
check_size (gint width, gint height, GError **error)
{
  if (width >= 1 && height >= 1 && width <= MAX_SIDE && height <= MAX_SIDE)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
               _ ("a latent of %d×%d is out of range (1 to %d on each side)"), width, height,
               MAX_SIDE);
  return FALSE;
}

gboolean
vae_latent_scaled_size (gint width, gint height, gdouble factor, gint *new_width, gint *new_height,
                        GError **error)
{
  gdouble w = nearbyint (width * factor), h = nearbyint (height * factor);

  if (!(factor > 0.0) || !isfinite (factor))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the scale factor must be a positive number, not %g"), factor);
      return FALSE;
    }
  if (!check_size (w < MAX_SIDE ? (gint) w : MAX_SIDE + 1, h < MAX_SIDE ? (gint) h : MAX_SIDE + 1,
                   error))
    return FALSE;
  *new_width = (gint) w;
  *new_height = (gint) h;
  return TRUE;
}

VaeTensor *
vae_latent_scale (const VaeTensor *latent, gint width, gint height, VaeScaleMethod method,
                  gboolean crop, GError **error)
{
  g_autoptr (VaeTensor) cropped = NULL;
  const VaeTensor *in = latent;
  VaeRect          all = { 0, 0, width, height };

  if (!check_size (width, height, error))
    return NULL;
  if (crop)
    {
      /* the centre of the old picture at the new aspect (Python's round:
       * halves to even) */
      const gdouble old_aspect = (gdouble) latent->width / latent->height;
      const gdouble new_aspect = (gdouble) width / height;
      gint          x = 0, y = 0;

      if (old_aspect > new_aspect)
        x = (gint) nearbyint ((latent->width - latent->width * (new_aspect / old_aspect)) / 2);
      else if (old_aspect < new_aspect)
        y = (gint) nearbyint ((latent->height - latent->height * (old_aspect / new_aspect)) / 2);
      if (x || y)
        {
          if (!(cropped = vae_tensor_new (latent->channels, latent->height - 2 * y,
                                          latent->width - 2 * x, error)))
            return NULL;
          for (gint c = 0; c < latent->channels; c++)
            for (gint r = 0; r < cropped->height; r++)
              memcpy (cropped->data + ((gsize) c * cropped->height + r) * cropped->width,
                      latent->data + ((gsize) c * latent->height + r + y) * latent->width + x,
                      cropped->width * sizeof (gfloat));
          in = cropped;
        }
    }
  switch (method)
    {
    case VAE_SCALE_AREA:
      return area_average (in, width, height, error);
    case VAE_SCALE_BISLERP:
      return bislerp (in, width, height, error);
    default:
      return interpolate (in, 0, 0, in->width, in->height, width, height, &all, method, error);
    }
}

/* ---- transform ---------------------------------------------------------------- */

gboolean
vae_latent_transform_swaps_axes (VaeTransform transform)
{
  return transform == VAE_TRANSFORM_ROTATE_90 || transform == VAE_TRANSFORM_ROTATE_270 ||
         transform == VAE_TRANSFORM_TRANSPOSE;
}

VaeTensor *
vae_latent_transform (const VaeTensor *latent, VaeTransform transform, GError **error)
{
  const gboolean swap = vae_latent_transform_swaps_axes (transform);
  const gint     w = latent->width, h = latent->height;
  VaeTensor     *out = vae_tensor_new (latent->channels, swap ? w : h, swap ? h : w, error);

  if (!out)
    return NULL;
  for (gint c = 0; c < latent->channels; c++)
    for (gint y = 0; y < out->height; y++)
      for (gint x = 0; x < out->width; x++)
        {
          /* the input pixel this output pixel shows */
          gint sx = x, sy = y;

          switch (transform)
            {
            case VAE_TRANSFORM_FLIP_HORIZONTAL:
              sx = w - 1 - x;
              break;
            case VAE_TRANSFORM_FLIP_VERTICAL:
              sy = h - 1 - y;
              break;
            case VAE_TRANSFORM_ROTATE_90: /* clockwise: the left column becomes the top row */
              sx = y, sy = h - 1 - x;
              break;
            case VAE_TRANSFORM_ROTATE_180:
              sx = w - 1 - x, sy = h - 1 - y;
              break;
            case VAE_TRANSFORM_ROTATE_270:
              sx = w - 1 - y, sy = x;
              break;
            case VAE_TRANSFORM_TRANSPOSE:
              sx = y, sy = x;
              break;
            }
          out->data[((gsize) c * out->height + y) * out->width + x] =
              latent->data[((gsize) c * h + sy) * w + sx];
        }
  return out;
}

/* ---- composite ---------------------------------------------------------------- */

/* LatentComposite's mask along one axis at position POS of the destination:
 * 1 inside the placed source, its first and last FEATHER positions
 * multiplied by (t + 1)/feather where that edge lies inside the destination;
 * *FACTORS receives the multipliers in ComfyUI's order (t rising, the start
 * edge before the end edge), *N their count (0 to 2). */
static gboolean
feather_axis (gint pos, gint place, gint length, gint total, gint feather, gfloat factors[2],
              gint *t_of, gint *n)
{
  const gint start = MAX (place, 0), end = MIN (place + length, total);
  gint       from_start, from_end;

  *n = 0;
  if (pos < start || pos >= end)
    return FALSE;
  from_start = start > 0 ? pos - start : G_MAXINT;
  from_end = end < total ? end - 1 - pos : G_MAXINT;
  for (gint k = 0; k < 2; k++)
    {
      const gint t = k == 0 ? MIN (from_start, from_end) : MAX (from_start, from_end);
      if (t < feather)
        {
          factors[*n] = (gfloat) ((1.0 / feather) * (t + 1));
          t_of[(*n)++] = t;
        }
    }
  return TRUE;
}

gfloat
vae_composite_weight (const VaeComposite *c, gint col, gint row)
{
  gfloat fy[2], fx[2], w = 1.0f;
  gint   ty[2], tx[2], ny, nx, iy = 0, ix = 0;

  if (!feather_axis (row, c->y, c->source_height, c->height, c->feather, fy, ty, &ny) ||
      !feather_axis (col, c->x, c->source_width, c->width, c->feather, fx, tx, &nx))
    return 0.0f;
  /* ComfyUI multiplies rows before columns at each t, t rising */
  while (iy < ny || ix < nx)
    if (ix == nx || (iy < ny && ty[iy] <= tx[ix]))
      w *= fy[iy++];
    else
      w *= fx[ix++];
  return w;
}

gboolean
vae_latent_composite (VaeTensor *dest, gint dest_x, gint dest_y, const VaeTensor *source,
                      gint source_x, gint source_y, const VaeComposite *c, GError **error)
{
  const gsize dest_plane = (gsize) dest->width * dest->height;
  const gsize source_plane = (gsize) source->width * source->height;

  if (!check_channels (dest, source, _ ("the latent to place"), error))
    return FALSE;
  if (c->feather < 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("the feather must not be negative (%d)"),
                   c->feather);
      return FALSE;
    }
  for (gint y = 0; y < dest->height; y++)
    for (gint x = 0; x < dest->width; x++)
      {
        const gint   col = dest_x + x, row = dest_y + y;
        const gfloat w = vae_composite_weight (c, col, row);
        const gint   sx = col - c->x - source_x, sy = row - c->y - source_y;

        if (w == 0.0f)
          continue;
        g_return_val_if_fail (sx >= 0 && sy >= 0 && sx < source->width && sy < source->height,
                              FALSE);
        for (gint ch = 0; ch < dest->channels; ch++)
          {
            gfloat      *d = dest->data + ch * dest_plane + (gsize) y * dest->width + x;
            const gfloat s = source->data[ch * source_plane + (gsize) sy * source->width + sx];
            *d = c->feather == 0 ? s : s * w + *d * (1.0f - w);
          }
      }
  return TRUE;
}

/* ---- blend ---------------------------------------------------------------------- */

gboolean
vae_latent_blend (VaeTensor *a, const VaeTensor *b, VaeBlendMode mode, gdouble factor,
                  GError **error)
{
  const gsize n = vae_tensor_n_elements (a), plane = (gsize) a->width * a->height;
  const gfloat f = (gfloat) factor;

  if (!isfinite (factor))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("the blend factor must be a number, not %g"),
                   factor);
      return FALSE;
    }
  if (mode == VAE_BLEND_MULTIPLY)
    {
      for (gsize i = 0; i < n; i++)
        a->data[i] *= f;
      return TRUE;
    }
  if (!check_channels (a, b, _ ("the second latent"), error))
    return FALSE;
  if (a->width != b->width || a->height != b->height)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the second latent is %d×%d but the first is %d×%d"), b->width, b->height,
                   a->width, a->height);
      return FALSE;
    }
  switch (mode)
    {
    case VAE_BLEND_LERP:
      {
        /* LatentBlend's a·blend_factor + b·(1 − blend_factor), blend_factor = 1 − factor */
        const gdouble blend_factor = 1.0 - factor;
        const gfloat  wa = (gfloat) blend_factor, wb = (gfloat) (1 - blend_factor);
        for (gsize i = 0; i < n; i++)
          a->data[i] = a->data[i] * wa + b->data[i] * wb;
        break;
      }
    case VAE_BLEND_SLERP:
      for (gsize i = 0; i < plane; i++)
        slerp (a->data + i, b->data + i, plane, f, a->channels, a->data + i, plane);
      break;
    case VAE_BLEND_ADD:
      for (gsize i = 0; i < n; i++)
        a->data[i] += b->data[i] * f;
      break;
    case VAE_BLEND_SUBTRACT:
      for (gsize i = 0; i < n; i++)
        a->data[i] -= b->data[i] * f;
      break;
    case VAE_BLEND_MULTIPLY:
      break;
    }
  return TRUE;
}

/* ---- masks ---------------------------------------------------------------------- */

VaeRect
vae_mask_source (gint mask_width, gint mask_height, gint width, gint height, const VaeRect *area)
{
  Taps    first, last;
  VaeRect r;

  axis_taps (VAE_SCALE_BILINEAR, mask_width, width, area->x, &first);
  axis_taps (VAE_SCALE_BILINEAR, mask_width, width, area->x + area->width - 1, &last);
  r.x = first.index[0];
  r.width = last.index[1] + 1 - r.x;
  axis_taps (VAE_SCALE_BILINEAR, mask_height, height, area->y, &first);
  axis_taps (VAE_SCALE_BILINEAR, mask_height, height, area->y + area->height - 1, &last);
  r.y = first.index[0];
  r.height = last.index[1] + 1 - r.y;
  return r;
}

VaeTensor *
vae_mask_resize (const VaeTensor *mask, const VaeRect *mask_area, gint mask_width,
                 gint mask_height, gint width, gint height, const VaeRect *area, GError **error)
{
  const VaeRect need = vae_mask_source (mask_width, mask_height, width, height, area);

  if (!check_mask (mask, error) || !check_size (width, height, error))
    return NULL;
  g_return_val_if_fail (need.x >= mask_area->x && need.y >= mask_area->y &&
                            need.x + need.width <= mask_area->x + mask->width &&
                            need.y + need.height <= mask_area->y + mask->height,
                        NULL);
  return interpolate (mask, mask_area->x, mask_area->y, mask_width, mask_height, width, height,
                      area, VAE_SCALE_BILINEAR, error);
}

void
vae_inpaint_grow_reach (gint grow, gint *before, gint *after)
{
  /* conv2d with an N×N kernel and padding ⌈(N − 1)/2⌉: output y sees input
   * rows y − padding … y − padding + N − 1 */
  *before = grow / 2;
  *after = grow > 0 ? grow - 1 - *before : 0;
}

VaeTensor *
vae_inpaint_grow (const VaeTensor *mask, gint grow, GError **error)
{
  const gint w = mask->width, h = mask->height;
  gint       before, after;
  g_autoptr (VaeTensor) rows = NULL;
  VaeTensor *out;

  if (!check_mask (mask, error))
    return NULL;
  if (grow < 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("a mask cannot grow by %d pixels"), grow);
      return NULL;
    }
  if (!(out = vae_tensor_new (1, h, w, error)) || !(rows = vae_tensor_new (1, h, w, error)))
    {
      g_clear_pointer (&out, vae_tensor_free);
      return NULL;
    }
  if (grow == 0)
    {
      for (gsize i = 0; i < (gsize) w * h; i++)
        out->data[i] = nearbyintf (mask->data[i]); /* torch.round: halves to even */
      return out;
    }
  /* the box sum of the rounded mask (whole numbers: exact in float),
   * rows first; outside the mask counts 0 (conv2d's zero padding) */
  vae_inpaint_grow_reach (grow, &before, &after);
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++)
      {
        gfloat sum = 0.0f;
        for (gint i = MAX (x - before, 0); i <= MIN (x + after, w - 1); i++)
          sum += nearbyintf (mask->data[(gsize) y * w + i]);
        rows->data[(gsize) y * w + x] = sum;
      }
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++)
      {
        gfloat sum = 0.0f;
        for (gint j = MAX (y - before, 0); j <= MIN (y + after, h - 1); j++)
          sum += rows->data[(gsize) j * w + x];
        out->data[(gsize) y * w + x] = nearbyintf (CLAMP (sum, 0.0f, 1.0f));
      }
  return out;
}

gboolean
vae_inpaint_fill (VaeTensor *image, const VaeTensor *mask, GError **error)
{
  const gsize plane = (gsize) image->width * image->height;

  if (!check_mask (mask, error))
    return FALSE;
  if (mask->width != image->width || mask->height != image->height)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("the mask is %d×%d but the picture %d×%d"),
                   mask->width, mask->height, image->width, image->height);
      return FALSE;
    }
  for (gint c = 0; c < image->channels; c++)
    for (gsize i = 0; i < plane; i++)
      {
        gfloat *p = image->data + c * plane + i;
        *p = (*p - 0.5f) * (1.0f - nearbyintf (mask->data[i])) + 0.5f;
      }
  return TRUE;
}

void
vae_latent_mask_noise (gfloat *noisy, const gfloat *clean, const gfloat *mask, gsize n,
                       gint channels)
{
  for (gsize i = 0; i < n; i++)
    for (gint c = 0; c < channels; c++)
      {
        const gsize k = i * channels + c;
        noisy[k] = noisy[k] * mask[i] + clean[k] * (1.0f - mask[i]);
      }
}
