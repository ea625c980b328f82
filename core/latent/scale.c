/* comfy.utils.common_upscale on planar latents of any channel count, in
 * float32 in the order PyTorch 1.13's CPU kernels compute it: torch's
 * interpolate (nearest-exact, bilinear, bicubic; align_corners False),
 * adaptive average pooling ("area") and ComfyUI's bislerp, after the
 * optional centre crop; and LatentUpscale's and LatentUpscaleBy's sizes.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "latent-private.h"

#include <math.h>
#include <string.h>

/* torch's area_pixel_compute_source_index: a float scale times a double
 * position, kept in double (the weights torch 1.13 uses are those of this
 * double position: 7 → 3 wide reads 2.999999875, 53 → 7 reads 26.0000008). */
static gdouble
source_position (gint in_size, gint out_size, gint dst)
{
  const gfloat scale = (gfloat) in_size / (gfloat) out_size;
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

void
vae_axis_taps (VaeScaleMethod method, gint in_size, gint out_size, gint dst, VaeTaps *t)
{
  if (method == VAE_SCALE_NEAREST_EXACT)
    {
      /* floorf of a double product rounded to float, as torch writes it */
      const gfloat scale = (gfloat) in_size / (gfloat) out_size;
      t->n = 1;
      t->index[0] = MIN ((gint) floorf ((gfloat) ((dst + 0.5) * scale)), in_size - 1);
      t->weight[0] = 1.0f;
    }
  else if (method == VAE_SCALE_BILINEAR)
    {
      const gdouble src = MAX (source_position (in_size, out_size, dst), 0.0);
      const gint    i0 = (gint) src;

      t->n = 2;
      t->index[0] = i0;
      t->index[1] = i0 + (i0 < in_size - 1 ? 1 : 0);
      t->weight[1] = (gfloat) (src - i0);
      t->weight[0] = 1.0f - t->weight[1];
    }
  else /* bicubic: four taps, the positions clamped to the axis */
    {
      const gdouble src = source_position (in_size, out_size, dst);
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

/* Bilinear as torch 1.13's CPU kernel sums it: Σ_j Σ_i plane[y_j][x_i]·w,
 * each w the float product wy_j·wx_i, in double, rounded once. */
static gfloat
apply_bilinear (const gfloat *plane, gsize stride, const VaeTaps *ty, const VaeTaps *tx)
{
  gdouble out = 0.0;

  for (gint j = 0; j < 2; j++)
    for (gint i = 0; i < 2; i++)
      out += (gdouble) plane[ty->index[j] * stride + tx->index[i]] *
             (gfloat) (ty->weight[j] * tx->weight[i]);
  return (gfloat) out;
}

/* Nearest and bicubic: Σ_j (Σ_i plane[y_j][x_i]·wx_i)·wy_j in float, each
 * sum started by its first product (within 5e-7 of torch's bicubic). */
static gfloat
apply_taps (const gfloat *plane, gsize stride, const VaeTaps *ty, const VaeTaps *tx)
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

VaeTensor *
vae_interpolate (const VaeTensor *in, gint in_x, gint in_y, gint in_w, gint in_h, gint out_w,
                 gint out_h, const VaeRect *area, VaeScaleMethod method, GError **error)
{
  VaeTensor          *out = vae_tensor_new (in->channels, area->height, area->width, error);
  const gsize         in_plane = (gsize) in->width * in->height;
  const gsize         out_plane = (gsize) area->width * area->height;
  g_autofree VaeTaps *tx = NULL;

  if (!out)
    return NULL;
  tx = g_new (VaeTaps, area->width);
  for (gint x = 0; x < area->width; x++)
    {
      vae_axis_taps (method, in_w, out_w, area->x + x, &tx[x]);
      for (gint i = 0; i < tx[x].n; i++)
        tx[x].index[i] -= in_x;
    }
  for (gint y = 0; y < area->height; y++)
    {
      VaeTaps ty;

      vae_axis_taps (method, in_h, out_h, area->y + y, &ty);
      for (gint j = 0; j < ty.n; j++)
        ty.index[j] -= in_y;
      for (gint c = 0; c < in->channels; c++)
        for (gint x = 0; x < area->width; x++)
          out->data[c * out_plane + (gsize) y * area->width + x] =
              method == VAE_SCALE_BILINEAR
                  ? apply_bilinear (in->data + c * in_plane, in->width, &ty, &tx[x])
                  : apply_taps (in->data + c * in_plane, in->width, &ty, &tx[x]);
    }
  return out;
}

/* torch's adaptive_avg_pool2d: the window [⌊o·in/out⌋, ⌈(o+1)·in/out⌉) of
 * one axis, its ends computed in float as torch does. */
static void
pool_window (gint o, gint in, gint out, gint *start, gint *end)
{
  *start = (gint) floorf ((gfloat) ((gint64) o * in) / (gfloat) out);
  *end = (gint) ceilf ((gfloat) ((gint64) (o + 1) * in) / (gfloat) out);
}

/* The mean of each window: a float sum divided by the rows, then by the
 * columns. */
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
          const gfloat *plane = in->data + c * in_plane;
          gfloat        sum = 0.0f;
          gint          y0, y1, x0, x1;

          pool_window (oy, in->height, out_h, &y0, &y1);
          pool_window (ox, in->width, out_w, &x0, &x1);
          for (gint y = y0; y < y1; y++)
            for (gint x = x0; x < x1; x++)
              sum += plane[(gsize) y * in->width + x];
          out->data[c * (gsize) out_w * out_h + (gsize) oy * out_w + ox] =
              sum / (gfloat) (y1 - y0) / (gfloat) (x1 - x0);
        }
  return out;
}

/* bislerp's generate_bilinear_data: the bilinear interpolations of the
 * ramps 0, 1, …, OLD − 1 and 1, 2, …, OLD − 1, OLD − 1 at each new
 * position, truncated to indices, and the first one's fraction; summed as
 * torch sums them (7 → 3 gives 3.0 at position 1, not 2.9999998). */
static void
bislerp_axis (gint old, gint new, gint *first, gint *second, gfloat *ratio)
{
  for (gint i = 0; i < new; i++)
    {
      VaeTaps t;
      gfloat  p1, p2;

      vae_axis_taps (VAE_SCALE_BILINEAR, old, new, i, &t);
      p1 = (gfloat) ((gdouble) t.index[0] * t.weight[0] + (gdouble) t.index[1] * t.weight[1]);
      p2 = (gfloat) ((gdouble) MIN (t.index[0] + 1, old - 1) * t.weight[0] +
                     (gdouble) MIN (t.index[1] + 1, old - 1) * t.weight[1]);
      first[i] = (gint) p1;
      second[i] = (gint) p2;
      ratio[i] = p1 - floorf (p1);
    }
}

/* ComfyUI's bislerp: slerp between neighbouring columns, then rows. */
static VaeTensor *
bislerp (const VaeTensor *in, gint out_w, gint out_h, GError **error)
{
  const gint         c = in->channels, h = in->height;
  const gsize        in_plane = (gsize) in->width * h, mid_plane = (gsize) out_w * h;
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
        vae_slerp (row + first[x], row + second[x], in_plane, ratio[x], c,
                   mid->data + (gsize) y * out_w + x, mid_plane);
      }
  bislerp_axis (h, out_h, first, second, ratio);
  for (gint y = 0; y < out_h; y++)
    for (gint x = 0; x < out_w; x++)
      vae_slerp (mid->data + (gsize) first[y] * out_w + x,
                 mid->data + (gsize) second[y] * out_w + x, mid_plane, ratio[y], c,
                 out->data + (gsize) y * out_w + x, (gsize) out_w * out_h);
  return out;
}

/* Python's round (halves to even) of a non-negative double, kept in range
 * for the size check. */
static gint
round_side (gdouble side)
{
  side = nearbyint (side);
  return side <= VAE_MAX_IMAGE_SIDE ? (gint) side : VAE_MAX_IMAGE_SIDE + 1;
}

gboolean
vae_latent_scaled_size (gint width, gint height, gdouble factor, gint to_width, gint to_height,
                        gint *new_width, gint *new_height, GError **error)
{
  if (to_width < 0 || to_height < 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the size to scale to must not be negative (%d×%d)"), to_width, to_height);
      return FALSE;
    }
  if (to_width == 0 && to_height == 0 && !(isfinite (factor) && factor > 0.0))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the scale factor must be a positive number, not %g"), factor);
      return FALSE;
    }
  if (to_width == 0 && to_height == 0) /* LatentUpscaleBy */
    *new_width = round_side (width * factor), *new_height = round_side (height * factor);
  else if (to_width == 0) /* LatentUpscale: the other side keeps the aspect */
    *new_width = round_side ((gdouble) width * to_height / height), *new_height = to_height;
  else if (to_height == 0)
    *new_width = to_width, *new_height = round_side ((gdouble) height * to_width / width);
  else
    *new_width = to_width, *new_height = to_height;
  return vae_latent_check_size (*new_width, *new_height, error);
}

/* The centre of LATENT at the aspect of WIDTH×HEIGHT (common_upscale's
 * crop "center"); NULL with no error when nothing is cut. */
static VaeTensor *
centre_crop (const VaeTensor *latent, gint width, gint height, GError **error)
{
  const gdouble old_aspect = (gdouble) latent->width / latent->height;
  const gdouble new_aspect = (gdouble) width / height;
  gint          x = 0, y = 0;
  VaeTensor    *cropped;

  if (old_aspect > new_aspect)
    x = (gint) nearbyint ((latent->width - latent->width * (new_aspect / old_aspect)) / 2);
  else if (old_aspect < new_aspect)
    y = (gint) nearbyint ((latent->height - latent->height * (old_aspect / new_aspect)) / 2);
  if (!x && !y)
    return NULL;
  if (!(cropped = vae_tensor_new (latent->channels, latent->height - 2 * y, latent->width - 2 * x,
                                  error)))
    return NULL;
  for (gint c = 0; c < latent->channels; c++)
    for (gint r = 0; r < cropped->height; r++)
      memcpy (cropped->data + ((gsize) c * cropped->height + r) * cropped->width,
              latent->data + ((gsize) c * latent->height + r + y) * latent->width + x,
              cropped->width * sizeof (gfloat));
  return cropped;
}

VaeTensor *
vae_latent_scale (const VaeTensor *latent, gint width, gint height, VaeScaleMethod method,
                  gboolean crop, GError **error)
{
  g_autoptr (VaeTensor) cropped = NULL;
  const VaeTensor *in = latent;
  const VaeRect    all = { 0, 0, width, height };

  if (!vae_latent_check_size (width, height, error))
    return NULL;
  if (crop)
    {
      GError *crop_error = NULL;
      if ((cropped = centre_crop (latent, width, height, &crop_error)))
        in = cropped;
      else if (crop_error)
        {
          g_propagate_error (error, crop_error);
          return NULL;
        }
    }
  switch (method)
    {
    case VAE_SCALE_AREA:
      return area_average (in, width, height, error);
    case VAE_SCALE_BISLERP:
      return bislerp (in, width, height, error);
    default:
      return vae_interpolate (in, 0, 0, in->width, in->height, width, height, &all, method, error);
    }
}
