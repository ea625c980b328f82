/* vae:latent-blend — the input and the latent on aux, per latent pixel:
 * lerp (ComfyUI's LatentBlend), slerp, add, subtract, multiply (LatentAdd,
 * LatentSubtract, LatentMultiply, scaled by the factor).  Point-wise and
 * chunk-safe; aux lines up with the input by its top-left corner, as
 * ComfyUI's tensors do, and must be the input's size.  Without aux the
 * input passes unchanged (multiply still scales it), as GEGL's composers
 * pass their input without aux.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_enum (mode, _("Mode"), GeglVaeBlendMode, gegl_vae_blend_mode, VAE_BLEND_LERP)
  description (_("Lerp and slerp mix towards aux; add and subtract add aux times the factor; "
                 "multiply scales the input (aux unused)"))
property_double (factor, _("Factor"), 0.5)
  description (_("The share of aux (lerp, slerp), its weight (add, subtract), or the multiplier"))
  value_range (-100.0, 100.0) ui_range (0.0, 1.0)
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_COMPOSER
#define GEGL_OP_NAME vae_latent_blend
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-blend.c
/* clang-format on */

#include "gegl-op.h"

#include <string.h>

/* The latent's channel count when the inputs can be blended, *WITH_AUX telling whether aux has
 * pixels; 0 (with ERROR when the cause is the user's) otherwise. */
static gint
blendable (GeglOperation *operation, gboolean *with_aux, GError **error)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  const GeglRectangle *aux = gegl_operation_source_get_bounding_box (operation, "aux");
  const gint           channels = gegl_vae_pad_latents (operation, with_aux, error);

  if (!channels || !in || in->width <= 0 || in->height <= 0)
    return 0;
  if (o->mode == VAE_BLEND_MULTIPLY || !*with_aux)
    return channels;
  if (aux->width != in->width || aux->height != in->height)
    g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                 _ ("aux is %d×%d but the input is %d×%d (vae:latent-scale can match them)"),
                 aux->width, aux->height, in->width, in->height);
  else
    return channels;
  return 0;
}

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;
  gboolean with_aux;

  gegl_vae_latent_pads (operation, blendable (operation, &with_aux, &error));
  gegl_vae_report_outcome (operation, &o->error, error);
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  gboolean             with_aux;

  if (!blendable (operation, &with_aux, NULL))
    return (GeglRectangle){ 0 };
  return *in;
}

/* ROI of the input, and the same place of aux counted from its corner. */
static GeglRectangle
get_required_for_output (GeglOperation *operation, const gchar *input_pad, const GeglRectangle *roi)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  const GeglRectangle *aux = gegl_operation_source_get_bounding_box (operation, "aux");

  if (strcmp (input_pad, "aux") != 0 || !in || !aux)
    return *roi;
  return (GeglRectangle){ roi->x - in->x + aux->x, roi->y - in->y + aux->y, roi->width,
                          roi->height };
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *aux, GeglBuffer *output,
         const GeglRectangle *roi, gint level)
{
  GeglProperties     *o = GEGL_PROPERTIES (operation);
  const GeglRectangle under = get_required_for_output (operation, "aux", roi);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) a = NULL;
  g_autoptr (VaeTensor) b = NULL;
  gboolean       with_aux;
  const gint     channels = blendable (operation, &with_aux, NULL);
  const gboolean multiply = o->mode == VAE_BLEND_MULTIPLY, blend = with_aux && aux && !multiply;

  if (!channels)
    return TRUE; /* prepare has said why */
  a = gegl_vae_read_latent (input, roi, channels, &error);
  if (a && ((blend && !(b = gegl_vae_read_latent (aux, &under, channels, &error))) ||
            ((blend || multiply) && !vae_latent_blend (a, b, o->mode, o->factor, &error))))
    g_clear_pointer (&a, vae_tensor_free);
  return gegl_vae_finish_latent (operation, &o->error, output, roi, a, error);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass         *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationComposerClass *composer_class = GEGL_OPERATION_COMPOSER_CLASS (klass);

  operation_class->prepare = prepare;
  operation_class->get_bounding_box = get_bounding_box;
  operation_class->get_required_for_output = get_required_for_output;
  operation_class->get_invalidated_by_change = gegl_vae_whole_output;
  operation_class->threaded = TRUE;
  composer_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:latent-blend", "title", _ ("Latent Blend"), "categories",
      "hidden", "description",
      _ ("Blends the input with the latent on aux per latent pixel: lerp, slerp, add, subtract, "
         "or multiplies the input; any channel count"),
      NULL);
}

#endif
