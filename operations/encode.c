/* vae:encode — image → latent buffer (float[C]) at 1/f of the image size.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_string (model, _("Model"), GEGL_VAE_DEFAULT_MODEL)
  description (_("A model file, or a preset name looked up on the model path"))
property_enum (mode, _("Mode"), GeglVaeMode, gegl_vae_mode, GEGL_VAE_MODE_MEAN)
  description (_("Mean of the posterior, or a sample of it drawn with the seed"))
property_seed (seed, _("Seed"), rand)
GEGL_VAE_RUN_PROPERTIES
property_string (error, _("Error"), "")
  description (_("Why the last run failed (read-only)"))
  ui_meta ("error", "true")
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME     vae_encode
#define GEGL_OP_C_SOURCE encode.c

#include "gegl-op.h"

/* The latent grid of the input's box at the model's factor. */
static GeglRectangle
latent_box (const GeglRectangle *image, gint factor)
{
  GeglRectangle r = { 0 };

  if (image && image->width > 0 && image->height > 0)
    {
      r.x = gegl_vae_floor_div (image->x, factor);
      r.y = gegl_vae_floor_div (image->y, factor);
      r.width = (image->width + factor - 1) / factor;
      r.height = (image->height + factor - 1) / factor;
    }
  return r;
}

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = gegl_vae_load_model (o->model, o->backend, o->precision, &error);

  gegl_operation_set_format (operation, "input", babl_format ("R'G'B'A float"));
  gegl_operation_set_format (
      operation, "output", gegl_vae_latent_format (model ? vae_model_latent_channels (model) : 4));
  if (!model)
    gegl_vae_report_error (operation, &o->error, error);
  else if (!vae_model_has_encoder (model))
    gegl_vae_report (operation, &o->error, _ ("model %s has no encoder"), o->model);
  else if (gegl_vae_report_empty_input (operation, "input"))
    gegl_vae_report (operation, &o->error, _ ("the input image is empty (0×0)"));
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (VaeModel) model = gegl_vae_load_model (o->model, o->backend, o->precision, NULL);

  if (!model || !vae_model_has_encoder (model))
    return (GeglRectangle){ 0 };
  return latent_box (gegl_operation_source_get_bounding_box (operation, "input"),
                     vae_model_factor (model));
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
  g_autoptr (VaeModel) model = NULL;
  g_autoptr (VaeTensor) image = NULL;
  g_autoptr (VaeTensor) latent = NULL;
  GeglRectangle box;
  VaeRun        run;

  if (!in || in->width <= 0 || in->height <= 0)
    return TRUE;
  run = gegl_vae_run (operation, o->memory_limit, o->backend, o->precision);
  if ((model = gegl_vae_load_model (o->model, o->backend, o->precision, &error)) &&
      (image = gegl_vae_read_rgb (input, in, &error)))
    latent = vae_model_encode (
        model, image, o->mode == GEGL_VAE_MODE_SAMPLE ? VAE_ENCODE_SAMPLE : VAE_ENCODE_MEAN,
        o->seed, &run, &error);
  if (!latent)
    {
      gegl_vae_report_error (operation, &o->error, error);
      return TRUE; /* the output stays empty */
    }
  box = latent_box (in, vae_model_factor (model));
  gegl_vae_write_latent (output, &box, latent);
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
      operation_class, "name", "vae:encode", "title", _ ("VAE Encode"), "categories", "hidden",
      "description",
      _ ("Encodes an image into the latent space of a Stable Diffusion family VAE: "
         "a buffer of C float channels at 1/8 or 1/16 of the image size, in the "
         "diffusion scale"),
      NULL);
}

#endif
