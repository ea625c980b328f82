/* Limits a user can see and raise: each error that hits one names the
 * environment variable that sets it.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

static const struct
{
  const gchar *env;
  guint64      fallback;
} limits[] = {
  [VAE_LIMIT_IMAGE_PIXELS] = { "GEGL_VAE_MAX_IMAGE_PIXELS", (guint64) 16384 * 16384 },
  [VAE_LIMIT_MODEL_BYTES] = { "GEGL_VAE_MAX_MODEL_BYTES", (guint64) 16 << 30 },
  [VAE_LIMIT_HEADER_BYTES] = { "GEGL_VAE_MAX_HEADER_BYTES", (guint64) 100 << 20 },
  [VAE_LIMIT_PICKLE_MEMO] = { "GEGL_VAE_MAX_PICKLE_MEMO", (guint64) 1 << 20 },
};

guint64
vae_limit (VaeLimit which)
{
  const gchar *text = g_getenv (limits[which].env);
  gchar       *end;
  guint64      v;

  if (!text || !*text)
    return limits[which].fallback;
  v = g_ascii_strtoull (text, &end, 10);
  return end != text && *end == '\0' && v > 0 ? v : limits[which].fallback;
}

const gchar *
vae_limit_env (VaeLimit which)
{
  return limits[which].env;
}

gboolean
vae_check_image_size (gint64 width, gint64 height, const gchar *what, GError **error)
{
  if (width < 1 || height < 1 || width > VAE_MAX_IMAGE_SIDE || height > VAE_MAX_IMAGE_SIDE)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("%s of %" PRId64 "×%" PRId64 ": sides must be 1 to %d pixels"), what, width,
                   height, VAE_MAX_IMAGE_SIDE);
      return FALSE;
    }
  if ((guint64) (width * height) > vae_limit (VAE_LIMIT_IMAGE_PIXELS))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_LIMIT,
                   _ ("%s of %" PRId64 "×%" PRId64 " = %" PRId64
                      " pixels exceeds the limit of %" PRIu64 " pixels (%s raises it)"),
                   what, width, height, width * height, vae_limit (VAE_LIMIT_IMAGE_PIXELS),
                   vae_limit_env (VAE_LIMIT_IMAGE_PIXELS));
      return FALSE;
    }
  return TRUE;
}
