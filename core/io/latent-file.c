/* ComfyUI .latent files: safetensors holding the raw latent.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <string.h>

#define LATENT_NAME   "latent_tensor"
#define MARKER_NAME   "latent_format_version_0"
#define OLD_SD_FACTOR 0.18215 /* files without the marker stored z·0.18215 */

VaeTensor *
vae_latent_file_read (const gchar *path, GError **error)
{
  g_autoptr (VaeWeights) w = vae_weights_load (path, error);
  g_autofree gfloat *data = NULL;
  g_autofree gchar  *shape_text = NULL;
  gint               ndim;
  gint64             shape[VAE_MAX_DIMS];
  VaeTensor         *t;

  if (!w)
    return NULL;
  if (!vae_weights_shape (w, LATENT_NAME, &ndim, shape, NULL))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: no '%s' tensor; not a ComfyUI .latent file"), path, LATENT_NAME);
      return NULL;
    }
  if (ndim != 4 || shape[1] > 4096 || shape[2] > G_MAXINT || shape[3] > G_MAXINT)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s: '%s' must be [B, C, H, W]"), path,
                   LATENT_NAME);
      return NULL;
    }
  shape_text = vae_shape_text (shape, ndim);
  /* the rule .npy files follow too: a batch is refused, never cut to its
   * first latent */
  if (shape[0] > 1)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("%s holds a batch of %" PRId64 " latents %s; only files of one latent "
                      "are read (split the batch)"),
                   path, shape[0], shape_text);
      return NULL;
    }
  if (shape[0] < 1 || shape[1] < 1 || shape[2] < 1 || shape[3] < 1)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s holds an empty array %s"), path,
                   shape_text);
      return NULL;
    }
  if (!(data = vae_weights_get_float (w, LATENT_NAME, NULL, error)) ||
      !(t = vae_tensor_new ((gint) shape[1], (gint) shape[2], (gint) shape[3], error)))
    return NULL;
  memcpy (t->data, data, vae_tensor_n_elements (t) * sizeof (gfloat));
  if (!vae_weights_lookup (w, MARKER_NAME))
    for (gsize i = 0; i < vae_tensor_n_elements (t); i++)
      t->data[i] = (gfloat) (t->data[i] / OLD_SD_FACTOR);
  return t;
}

gboolean
vae_latent_file_write (const gchar *path, const VaeTensor *raw, GError **error)
{
  static const gfloat nothing[1];
  VaeSafetensorsItem  items[2] = {
     { LATENT_NAME, 4, { 1, raw->channels, raw->height, raw->width }, VAE_DTYPE_F32, raw->data },
     { MARKER_NAME, 1, { 0 }, VAE_DTYPE_F32, nothing },
  };

  return vae_tensor_check_output (raw, path, error) &&
         vae_safetensors_write (path, items, 2, NULL, error);
}
