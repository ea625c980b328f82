/* vae:latent-save — writes a latent buffer to .npy (float32 [1, C, h, w],
 * diffusion scale) or ComfyUI .latent (raw latent and marker), as the
 * gegl-vae program does.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_file_path (path, _("File"), "")
  description (_("Target .npy or .latent file"))
property_string (model, _("Model"), GEGL_VAE_DEFAULT_MODEL)
  description (_("Family or model whose scale turns the latent raw for a .latent file"))
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_SINK
#define GEGL_OP_NAME vae_latent_save
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-save.c
/* clang-format on */

#include "gegl-op.h"

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gchar    *what;
  gint            channels = gegl_vae_source_latent_channels (operation, "input", &what);

  gegl_operation_set_format (operation, "input", gegl_vae_latent_format (channels));
  if (channels == 0)
    gegl_vae_report (operation, &o->error, _ ("the input is %s, not a latent (connect vae:encode)"),
                     what);
}

static gboolean
save (GeglProperties *o, VaeTensor *latent, GError **error)
{
  gdouble  scale, shift;
  gboolean identity;

  if (g_str_has_suffix (o->path, ".npy"))
    return vae_npy_write_latent (o->path, latent, error);
  if (!g_str_has_suffix (o->path, ".latent"))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: latents are saved as .npy or .latent"), o->path);
      return FALSE;
    }
  if (!gegl_vae_raw_scale (o->model, &scale, &shift, &identity, error))
    return FALSE;
  for (gsize i = 0; !identity && i < vae_tensor_n_elements (latent); i++)
    latent->data[i] = (gfloat) (latent->data[i] / scale + shift);
  return vae_latent_file_write (o->path, latent, error);
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, const GeglRectangle *result, gint level)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  const gchar         *what;
  gint                 channels = gegl_vae_source_latent_channels (operation, "input", &what);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) latent = NULL;

  if (channels <= 0)
    return TRUE;
  if (!in || in->width <= 0 || in->height <= 0)
    {
      gegl_vae_report (operation, &o->error, _ ("the input latent is empty (0×0); %s not written"),
                       o->path);
      return TRUE;
    }
  if (!(latent = gegl_vae_read_latent (input, in, channels, &error)) || !save (o, latent, &error))
    gegl_vae_report_error (operation, &o->error, error);
  else
    gegl_vae_clear_error (&o->error);
  return TRUE;
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass     *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationSinkClass *sink_class = GEGL_OPERATION_SINK_CLASS (klass);

  operation_class->prepare = prepare;
  sink_class->process = process;
  sink_class->needs_full = TRUE;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:latent-save", "title", _ ("Latent File Saver"), "categories",
      "hidden", "description",
      _ ("Saves a latent as .npy (diffusion scale) or as a ComfyUI .latent file"), NULL);
}

#endif
