/* The input checks the latent operations share: each error says which input
 * is wrong and how.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "latent-private.h"

gboolean
vae_latent_check_channels (const VaeTensor *latent, const VaeTensor *other, const gchar *what,
                           GError **error)
{
  if (latent->channels == other->channels)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s has %d channels but the latent has %d"),
               what, other->channels, latent->channels);
  return FALSE;
}

gboolean
vae_latent_check_mask (const VaeTensor *mask, GError **error)
{
  if (mask->channels == 1)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("a mask has 1 channel, not %d"),
               mask->channels);
  return FALSE;
}

gboolean
vae_latent_check_size (gint width, gint height, GError **error)
{
  if (width >= 1 && height >= 1 && width <= VAE_MAX_IMAGE_SIDE && height <= VAE_MAX_IMAGE_SIDE)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
               _ ("a latent of %d×%d is out of range (1 to %d on each side)"), width, height,
               VAE_MAX_IMAGE_SIDE);
  return FALSE;
}

gboolean
vae_latent_check_same_size (const VaeTensor *a, const VaeTensor *b, const gchar *what_a,
                            const gchar *what_b, GError **error)
{
  if (a->width == b->width && a->height == b->height)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s is %d×%d but %s is %d×%d"), what_b,
               b->width, b->height, what_a, a->width, a->height);
  return FALSE;
}
