/* ComfyUI's latent→RGB preview: a linear map from a latent vector to RGB.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "latent-private.h"

void
vae_latent_preview_rgba (const VaeFamily *family, const gfloat *latent, gsize n, gint channels,
                         gfloat *rgba)
{
  const gdouble *factors =
      family && family->n_rgb_factors == channels * 3 + 3 ? family->rgb_factors : NULL;

  for (gsize i = 0; i < n; i++)
    {
      const gfloat *v = latent + i * channels;

      for (gint rgb = 0; rgb < 3; rgb++)
        {
          gdouble value = factors ? factors[channels * 3 + rgb] : 0.0;

          if (factors)
            for (gint c = 0; c < channels; c++)
              value += v[c] * factors[c * 3 + rgb];
          else if (rgb < channels)
            value = v[rgb];
          rgba[i * 4 + rgb] = (gfloat) CLAMP ((value + 1.0) / 2.0, 0.0, 1.0);
        }
      rgba[i * 4 + 3] = 1.0f;
    }
}
