/* vae:encode — image → latent buffer (float[C]) at 1/f of the image size.
 * With a mask on aux (an ordinary image, stretched from its box to the
 * picture's as ComfyUI does), the pixels where the rounded mask is 1 are
 * filled with grey first: ComfyUI's VAE Encode (for Inpainting).  Its grown
 * noise mask is vae:inpaint-mask's output (a GEGL node hands on one buffer).
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
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_COMPOSER
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
  g_autoptr (VaeModel) model = gegl_vae_load_model (operation, o->model, VAE_HALVES_ENCODER,
                                                    o->backend, o->precision, &error);
  g_autoptr (GError) mask_error = NULL;
  GeglRectangle mask;

  gegl_operation_set_format (operation, "input", babl_format ("R'G'B'A float"));
  gegl_operation_set_format (operation, "aux", babl_format ("Y float"));
  gegl_operation_set_format (
      operation, "output", gegl_vae_latent_format (model ? vae_model_latent_channels (model) : 4));
  if (!model)
    gegl_vae_report_error (operation, &o->error, error);
  else if (!vae_model_has_encoder (model))
    gegl_vae_report (operation, &o->error, _ ("model %s has no encoder"),
                     gegl_vae_model_or_default (o->model));
  else if (gegl_vae_report_empty_input (operation, "input"))
    gegl_vae_report (operation, &o->error, _ ("the input image is empty (0×0)"));
  else if (!gegl_vae_pad_mask (operation, "aux", &mask, &mask_error) && mask_error)
    gegl_vae_report_error (operation, &o->error, mask_error);
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (VaeModel) model =
      gegl_vae_load_model (operation, o->model, VAE_HALVES_ENCODER, o->backend, o->precision, NULL);
  g_autoptr (GError) error = NULL;
  GeglRectangle mask;

  if (!model || !vae_model_has_encoder (model) ||
      (!gegl_vae_pad_mask (operation, "aux", &mask, &error) && error))
    return (GeglRectangle){ 0 };
  return latent_box (gegl_operation_source_get_bounding_box (operation, "input"),
                     vae_model_factor (model));
}

static GeglRectangle
get_cached_region (GeglOperation *operation, const GeglRectangle *roi)
{
  return get_bounding_box (operation);
}

/* VAEEncodeForInpaint's grey fill of IMAGE (the input's box IN) where the
 * mask on aux, stretched to the picture, rounds to 1; TRUE when there is
 * no mask. */
static gboolean
fill_masked (GeglOperation *operation, GeglBuffer *aux, const GeglRectangle *in, VaeTensor *image,
             GError **error)
{
  const VaeRect all = { 0, 0, in->width, in->height };
  g_autoptr (VaeTensor) mask = NULL;
  g_autoptr (VaeTensor) stretched = NULL;
  GeglRectangle box;
  VaeMaskGrid   grid;

  if (!aux || !gegl_vae_pad_mask (operation, "aux", &box, NULL))
    return TRUE;
  grid = (VaeMaskGrid){ box.width, box.height, box.width, box.height, in->width, in->height };
  return (mask = gegl_vae_read_mask (aux, &box, error)) &&
         (stretched = vae_mask_resize (mask, 0, 0, &grid, &all, error)) &&
         vae_inpaint_fill (image, stretched, error);
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *aux, GeglBuffer *output,
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
  if ((model = gegl_vae_load_model (operation, o->model, VAE_HALVES_ENCODER, o->backend,
                                    o->precision, &error)) &&
      (image = gegl_vae_read_rgb (input, in, &error)) &&
      fill_masked (operation, aux, in, image, &error))
    latent = vae_model_encode (
        model, image, o->mode == GEGL_VAE_MODE_SAMPLE ? VAE_ENCODE_SAMPLE : VAE_ENCODE_MEAN,
        o->seed, &run, &error);
  if (latent)
    box = latent_box (in, vae_model_factor (model));
  if (!latent || !gegl_vae_write_latent (output, &box, latent, &error))
    {
      gegl_vae_report_error (operation, &o->error, error);
      return TRUE; /* the output stays empty */
    }
  gegl_vae_clear_error (&o->error);
  return TRUE;
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass         *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationComposerClass *composer_class = GEGL_OPERATION_COMPOSER_CLASS (klass);

  operation_class->prepare = prepare;
  operation_class->get_bounding_box = get_bounding_box;
  operation_class->get_required_for_output = gegl_vae_whole_input;
  operation_class->get_invalidated_by_change = gegl_vae_whole_output;
  operation_class->get_cached_region = get_cached_region;
  operation_class->threaded = FALSE;
  composer_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:encode", "title", _ ("VAE Encode"), "categories", "hidden",
      "description",
      _ ("Encodes an image into the latent space of a Stable Diffusion family VAE: "
         "a buffer of C float channels at 1/8 or 1/16 of the image size, in the "
         "diffusion scale; for a VQ model, the latent before quantisation; with a mask on "
         "aux, the masked pixels are filled with grey first (for inpainting)"),
      NULL);
}

#endif
