/* Two latents into one, per latent pixel: LatentBlend (lerp), the slerp of
 * ComfyUI's bislerp, LatentAdd, LatentSubtract and LatentMultiply, with a
 * factor: B's share.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "latent-private.h"

#include <math.h>

/* ComfyUI's slerp: the directions slerped, the norms lerped; nearly equal
 * directions keep B1, nearly opposite ones are lerped.  Norms and the dot
 * product are summed in double (torch sums float32 in its own order: the
 * results agree to about 1e-6 relative, the tests' bar is 1e-5). */
void
vae_slerp (const gfloat *b1, const gfloat *b2, gsize stride, gfloat r, gint channels, gfloat *out,
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

gboolean
vae_latent_blend (VaeTensor *a, const VaeTensor *b, VaeBlendMode mode, gdouble factor,
                  GError **error)
{
  const gsize  n = vae_tensor_n_elements (a), plane = (gsize) a->width * a->height;
  const gfloat f = (gfloat) factor;

  if (!isfinite (factor))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the blend factor must be a number, not %g"), factor);
      return FALSE;
    }
  if (mode != VAE_BLEND_MULTIPLY &&
      (!vae_latent_check_channels (a, b, _ ("the second latent"), error) ||
       !vae_latent_check_same_size (a, b, _ ("the first latent"), _ ("the second latent"), error)))
    return FALSE;
  switch (mode)
    {
    case VAE_BLEND_LERP:
      {
        /* LatentBlend: a·blend_factor + b·(1 − blend_factor), blend_factor = 1 − factor */
        const gdouble blend_factor = 1.0 - factor;
        const gfloat  wa = (gfloat) blend_factor, wb = (gfloat) (1 - blend_factor);
        for (gsize i = 0; i < n; i++)
          a->data[i] = a->data[i] * wa + b->data[i] * wb;
        break;
      }
    case VAE_BLEND_SLERP:
      for (gsize i = 0; i < plane; i++)
        vae_slerp (a->data + i, b->data + i, plane, f, a->channels, a->data + i, plane);
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
      for (gsize i = 0; i < n; i++)
        a->data[i] *= f;
      break;
    }
  return TRUE;
}
