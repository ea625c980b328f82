/* vae:latent-preview — a latent seen as RGB at its own size through the
 * family's linear latent→RGB factors (the cheap preview ComfyUI and sd.cpp
 * show): rgb = ((x · F + bias) + 1) / 2.  Families without factors show
 * their first three channels the same way.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_string (model, _("Model"), GEGL_VAE_DEFAULT_MODEL)
  description (_("Family (or model file) whose preview factors to use"))
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME vae_latent_preview
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-preview.c
/* clang-format on */

#include "gegl-op.h"

static const VaeFamily *
family_of (GeglProperties *o, GError **error)
{
  const gchar     *name = gegl_vae_model_or_default (o->model);
  const VaeFamily *family = vae_family_lookup (name);
  g_autoptr (VaeModel) model = NULL;

  if (family)
    return family;
  model = gegl_vae_load_any_half (name, error);
  return model ? vae_model_get_family (model) : NULL; /* descriptors outlive models */
}

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gchar    *what;
  gint            channels = gegl_vae_source_latent_channels (operation, "input", &what);

  gegl_operation_set_format (operation, "input", gegl_vae_latent_format (channels));
  gegl_operation_set_format (operation, "output", babl_format ("R'G'B'A float"));
  if (channels == 0)
    gegl_vae_report (operation, &o->error, _ ("the input is %s, not a latent"), what);
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *output, const GeglRectangle *roi,
         gint level)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gchar    *what;
  const gint      channels = gegl_vae_source_latent_channels (operation, "input", &what);
  const gsize     n = (gsize) roi->width * roi->height;
  g_autoptr (GError) error = NULL;
  const VaeFamily *family;
  gfloat          *in, *out;

  if (channels <= 0)
    return TRUE;
  if (!(family = family_of (o, &error)))
    {
      gegl_vae_report_error (operation, &o->error, error);
      return TRUE;
    }
  in = g_new (gfloat, n * channels);
  out = g_new (gfloat, n * 4);
  gegl_buffer_get (input, roi, 1.0, gegl_vae_latent_format (channels), in, GEGL_AUTO_ROWSTRIDE,
                   GEGL_ABYSS_NONE);
  vae_latent_preview_rgba (family, in, n, channels, out);
  gegl_buffer_set (output, roi, 0, babl_format ("R'G'B'A float"), out, GEGL_AUTO_ROWSTRIDE);
  g_free (in);
  g_free (out);
  gegl_vae_clear_error (&o->error);
  return TRUE;
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass       *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationFilterClass *filter_class = GEGL_OPERATION_FILTER_CLASS (klass);

  operation_class->prepare = prepare;
  filter_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:latent-preview", "title", _ ("Latent Preview"), "categories",
      "hidden", "description",
      _ ("Shows a latent as a small RGB image through the family's latent→RGB factors"), NULL);
}

#endif
