/* LatentFlip, LatentRotate (clockwise, torch.rot90 over dims [3, 2]) and a
 * transpose.  Each output pixel shows one input pixel, so any rectangle of
 * the output is the transform of one rectangle of the input: the GEGL op
 * computes tiles.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "latent-private.h"

gboolean
vae_latent_transform_swaps_axes (VaeTransform transform)
{
  return transform == VAE_TRANSFORM_ROTATE_90 || transform == VAE_TRANSFORM_ROTATE_270 ||
         transform == VAE_TRANSFORM_TRANSPOSE;
}

/* The input pixel (*SX, *SY) of a W×H input that output pixel (X, Y) shows. */
static void
source_pixel (VaeTransform transform, gint w, gint h, gint x, gint y, gint *sx, gint *sy)
{
  *sx = x, *sy = y;
  switch (transform)
    {
    case VAE_TRANSFORM_FLIP_HORIZONTAL:
      *sx = w - 1 - x;
      break;
    case VAE_TRANSFORM_FLIP_VERTICAL:
      *sy = h - 1 - y;
      break;
    case VAE_TRANSFORM_ROTATE_90: /* the left column becomes the top row */
      *sx = y, *sy = h - 1 - x;
      break;
    case VAE_TRANSFORM_ROTATE_180:
      *sx = w - 1 - x, *sy = h - 1 - y;
      break;
    case VAE_TRANSFORM_ROTATE_270:
      *sx = w - 1 - y, *sy = x;
      break;
    case VAE_TRANSFORM_TRANSPOSE:
      *sx = y, *sy = x;
      break;
    }
}

VaeRect
vae_latent_transform_source (VaeTransform transform, gint width, gint height, const VaeRect *area)
{
  gint x0, y0, x1, y1;

  source_pixel (transform, width, height, area->x, area->y, &x0, &y0);
  source_pixel (transform, width, height, area->x + area->width - 1, area->y + area->height - 1,
                &x1, &y1);
  return (VaeRect){ MIN (x0, x1), MIN (y0, y1), ABS (x1 - x0) + 1, ABS (y1 - y0) + 1 };
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
          gint sx, sy;
          source_pixel (transform, w, h, x, y, &sx, &sy);
          out->data[((gsize) c * out->height + y) * out->width + x] =
              latent->data[((gsize) c * h + sy) * w + sx];
        }
  return out;
}
