/* Masks for inpainting, 1 where the picture is to change: the noise mask on
 * the latent grid (SetLatentNoiseMask's mask as comfy.utils.reshape_mask
 * resizes it: bilinear; a mask of an unpadded picture padded first, as
 * vae:encode pads the picture, so that the two line up), VAEEncodeForInpaint's grown noise mask and
 * grey fill, and the sampler's masked start.  Each is computed for any rectangle from the rectangle
 * of its input that it reads, so GEGL ops run in tiles. SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "latent-private.h"

#include <math.h>

/* The padded mask's rectangle that AREA of the latent reads. */
static VaeRect
padded_source (const VaeMaskGrid *g, const VaeRect *area)
{
  VaeTaps first, last;
  VaeRect r;

  vae_axis_taps (VAE_SCALE_BILINEAR, g->padded_width, g->width, area->x, &first);
  vae_axis_taps (VAE_SCALE_BILINEAR, g->padded_width, g->width, area->x + area->width - 1, &last);
  r.x = first.index[0];
  r.width = last.index[1] + 1 - r.x;
  vae_axis_taps (VAE_SCALE_BILINEAR, g->padded_height, g->height, area->y, &first);
  vae_axis_taps (VAE_SCALE_BILINEAR, g->padded_height, g->height, area->y + area->height - 1,
                 &last);
  r.y = first.index[0];
  r.height = last.index[1] + 1 - r.y;
  return r;
}

VaeRect
vae_mask_source (const VaeMaskGrid *g, const VaeRect *area)
{
  VaeRect r = padded_source (g, area);

  /* the padding repeats the last column and row */
  r.x = MIN (r.x, g->mask_width - 1);
  r.y = MIN (r.y, g->mask_height - 1);
  r.width = MIN (r.x + r.width, g->mask_width) - r.x;
  r.height = MIN (r.y + r.height, g->mask_height) - r.y;
  return r;
}

VaeTensor *
vae_mask_resize (const VaeTensor *mask, gint mask_x, gint mask_y, const VaeMaskGrid *g,
                 const VaeRect *area, GError **error)
{
  const VaeRect need = vae_mask_source (g, area), padded = padded_source (g, area);
  g_autoptr (VaeTensor) tile = NULL;

  if (!vae_latent_check_mask (mask, error) || !vae_latent_check_size (g->width, g->height, error) ||
      !vae_latent_check_size (g->padded_width, g->padded_height, error))
    return NULL;
  g_return_val_if_fail (need.x >= mask_x && need.y >= mask_y &&
                            need.x + need.width <= mask_x + mask->width &&
                            need.y + need.height <= mask_y + mask->height,
                        NULL);
  /* the padded rectangle, read from MASK with the last column and row
   * repeated (vae:encode's replicate padding) */
  if (!(tile = vae_tensor_new (1, padded.height, padded.width, error)))
    return NULL;
  for (gint y = 0; y < padded.height; y++)
    for (gint x = 0; x < padded.width; x++)
      {
        const gint mx = MIN (padded.x + x, g->mask_width - 1) - mask_x;
        const gint my = MIN (padded.y + y, g->mask_height - 1) - mask_y;
        tile->data[(gsize) y * padded.width + x] = mask->data[(gsize) my * mask->width + mx];
      }
  return vae_interpolate (tile, padded.x, padded.y, g->padded_width, g->padded_height, g->width,
                          g->height, area, VAE_SCALE_BILINEAR, error);
}

void
vae_inpaint_grow_reach (gint grow, gint *before, gint *after)
{
  /* conv2d with a GROW×GROW kernel and padding ⌈(GROW − 1)/2⌉: output y
   * reads input rows y − padding … y − padding + GROW − 1 */
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

  if (!vae_latent_check_mask (mask, error))
    return NULL;
  if (grow < 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("a mask cannot grow by %d pixels"), grow);
      return NULL;
    }
  if (!(rows = vae_tensor_new (1, h, w, error)) || !(out = vae_tensor_new (1, h, w, error)))
    return NULL;
  /* the box sum of the rounded mask (whole numbers: exact in float), rows
   * first; outside the mask counts 0 (conv2d's zero padding); torch.round
   * rounds halves to even, as nearbyintf does; grow 0 is the rounded mask,
   * unclamped, as ComfyUI leaves it */
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
        out->data[(gsize) y * w + x] = grow == 0 ? sum : CLAMP (sum, 0.0f, 1.0f);
      }
  return out;
}

gboolean
vae_inpaint_fill (VaeTensor *image, const VaeTensor *mask, GError **error)
{
  const gsize plane = (gsize) image->width * image->height;

  if (!vae_latent_check_mask (mask, error) ||
      !vae_latent_check_same_size (image, mask, _ ("the picture"), _ ("the mask"), error))
    return FALSE;
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
