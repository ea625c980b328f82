/* LatentComposite: a latent placed on another at (x, y), its edges inside
 * the destination feathered.  ComfyUI builds the feather by multiplying
 * rows and columns of a mask of ones, t = 0 … feather − 1, with Python's
 * slices; a feather wider than the placed latent wraps its negative slice
 * ends round, and that is reproduced here, in ComfyUI's order of products.
 * The share of the source at a pixel depends only on the geometry, so any
 * rectangle of the result is computed from the same rectangles of both.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "latent-private.h"

/* The length of the placed source that lies inside the destination. */
static gint
placed_length (gint place, gint length, gint total)
{
  return MIN (length, total - place);
}

/* Is P, of a placed length L, in mask[L − 1 − t : L − t] (Python's slice)? */
static gboolean
on_end_slice (gint p, gint t, gint l)
{
  if (t < l)
    return p == l - 1 - t;
  return t > l && t < 2 * l && p == 2 * l - 1 - t;
}

/* The share of the source at (COL, ROW) of the result: 0 outside it. */
static gfloat
composite_weight (const VaeComposite *c, gint col, gint row)
{
  const gint     lh = placed_length (c->y, c->source_height, c->height);
  const gint     lw = placed_length (c->x, c->source_width, c->width);
  const gint     py = row - c->y, px = col - c->x;
  const gboolean top = c->y != 0, bottom = c->y + lh < c->height;
  const gboolean left = c->x != 0, right = c->x + lw < c->width;
  gfloat         w = 1.0f;

  if (py < 0 || px < 0 || py >= lh || px >= lw)
    return 0.0f;
  for (gint t = 0; t < MIN (c->feather, 2 * MAX (lh, lw)); t++)
    {
      const gfloat f = (gfloat) ((1.0 / c->feather) * (t + 1));

      if (top && py == t)
        w *= f;
      if (bottom && on_end_slice (py, t, lh))
        w *= f;
      if (left && px == t)
        w *= f;
      if (right && on_end_slice (px, t, lw))
        w *= f;
    }
  return w;
}

gboolean
vae_latent_composite (VaeTensor *dest, gint dest_x, gint dest_y, const VaeTensor *source,
                      gint source_x, gint source_y, const VaeComposite *c, GError **error)
{
  const gsize dest_plane = (gsize) dest->width * dest->height;
  const gsize source_plane = (gsize) source->width * source->height;

  if (!vae_latent_check_channels (dest, source, _ ("the latent to place"), error))
    return FALSE;
  if (c->x < 0 || c->y < 0 || c->feather < 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the place (%d, %d) and the feather (%d) must not be negative"), c->x, c->y,
                   c->feather);
      return FALSE;
    }
  for (gint y = 0; y < dest->height; y++)
    for (gint x = 0; x < dest->width; x++)
      {
        const gint   col = dest_x + x, row = dest_y + y;
        const gfloat w = composite_weight (c, col, row);
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
