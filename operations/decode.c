/* vae:decode — latent buffer (float[C]) → image at f× the latent size.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_string (model, _("Model"), GEGL_VAE_DEFAULT_MODEL)
  description (_("A model file, or a preset name looked up on the model path"))
property_boolean (force_not_quantize, _("Force not quantize"), FALSE)
  description (_("VQ models: decode the latent as it is; off, it is snapped to the model's "
                 "codebook first, as diffusers' VQModel.decode does"))
GEGL_VAE_RUN_PROPERTIES
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME     vae_decode
#define GEGL_OP_C_SOURCE decode.c

#include "gegl-op.h"

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = gegl_vae_load_model (operation, o->model, VAE_HALVES_DECODER,
                                                    o->backend, o->precision, &error);
  const gchar *what;
  gint         channels = gegl_vae_source_latent_channels (operation, "input", &what);

  gegl_operation_set_format (operation, "input", gegl_vae_latent_format (channels));
  gegl_operation_set_format (operation, "output", babl_format ("R'G'B'A float"));
  if (!model)
    gegl_vae_report_error (operation, &o->error, error);
  else if (!vae_model_has_decoder (model))
    gegl_vae_report (operation, &o->error, _ ("model %s has no decoder"),
                     gegl_vae_model_or_default (o->model));
  else if (channels == 0)
    gegl_vae_report (operation, &o->error,
                     _ ("the input is %s, not a latent (connect vae:encode or vae:latent-load)"),
                     what);
  else if (channels > 0 && channels != vae_model_latent_channels (model))
    gegl_vae_report (operation, &o->error, _ ("the latent has %d channels but model %s takes %d"),
                     channels, gegl_vae_model_or_default (o->model),
                     vae_model_latent_channels (model));
  else if (gegl_vae_report_empty_input (operation, "input"))
    gegl_vae_report (operation, &o->error, _ ("the input latent is empty (0×0)"));
}

/* The model, when it can decode what the input pad carries. */
static VaeModel *
usable_model (GeglOperation *operation, GError **error)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gchar    *what;
  gint            channels = gegl_vae_source_latent_channels (operation, "input", &what);
  VaeModel       *model = gegl_vae_load_model (operation, o->model, VAE_HALVES_DECODER, o->backend,
                                               o->precision, error);

  if (model && (!vae_model_has_decoder (model) || channels != vae_model_latent_channels (model)))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, "unusable input");
      g_clear_pointer (&model, vae_model_unref);
    }
  return model;
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  g_autoptr (VaeModel) model = usable_model (operation, NULL);
  gint f;

  if (!model || !in)
    return (GeglRectangle){ 0 };
  f = vae_model_factor (model);
  return (GeglRectangle){ in->x * f, in->y * f, in->width * f, in->height * f };
}

static GeglRectangle
get_cached_region (GeglOperation *operation, const GeglRectangle *roi)
{
  return get_bounding_box (operation);
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *output,
         const GeglRectangle *result, gint level)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = usable_model (operation, NULL);
  g_autoptr (VaeTensor) latent = NULL;
  g_autoptr (VaeTensor) image = NULL;
  GeglRectangle box;
  VaeRun        run;

  if (!model || !in || in->width <= 0 || in->height <= 0)
    return TRUE; /* prepare has said why */
  run = gegl_vae_run (operation, o->memory_limit, o->backend, o->precision);
  if ((latent = gegl_vae_read_latent (input, in, vae_model_latent_channels (model), &error)))
    image = vae_model_decode_vq (model, latent, o->force_not_quantize, &run, &error);
  box = get_bounding_box (operation);
  if (!image || !gegl_vae_write_rgb (output, &box, image, &error))
    {
      gegl_vae_report_error (operation, &o->error, error);
      return TRUE;
    }
  gegl_vae_clear_error (&o->error);
  return TRUE;
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass       *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationFilterClass *filter_class = GEGL_OPERATION_FILTER_CLASS (klass);

  operation_class->prepare = prepare;
  operation_class->get_bounding_box = get_bounding_box;
  operation_class->get_required_for_output = gegl_vae_whole_input;
  operation_class->get_cached_region = get_cached_region;
  operation_class->threaded = FALSE;
  filter_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:decode", "title", _ ("VAE Decode"), "categories", "hidden",
      "description",
      _ ("Decodes a latent buffer of a Stable Diffusion family VAE into an image. A VQ model "
         "first snaps the latent to its own codebook, as diffusers' VQModel.decode does, unless "
         "force-not-quantize is set (diffusers' force_not_quantize)"),
      NULL);
}

#endif
