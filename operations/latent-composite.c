/* vae:latent-composite — the latent on aux placed on the input at (x, y),
 * its edges inside the input feathered (ComfyUI's LatentComposite).
 * Chunk-safe: a pixel's share of aux depends on the two boxes only, so
 * each output rectangle reads the same rectangle of the input and the one
 * of aux under it.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_int (x, _("X"), 0)
  description (_("Where the left edge of aux goes"))
  value_range (0, 1048576) ui_range (0, 1024)
property_int (y, _("Y"), 0)
  description (_("Where the top edge of aux goes"))
  value_range (0, 1048576) ui_range (0, 1024)
property_int (feather, _("Feather"), 0)
  description (_("How many pixels the edges of aux fade over where they lie inside the input"))
  value_range (0, 1048576) ui_range (0, 256)
property_enum (units, _("Units"), GeglVaeUnits, gegl_vae_units, GEGL_VAE_UNITS_LATENT)
  description (_("Whether x, y and feather count latent pixels or image pixels (ComfyUI's, "
                 "divided by the factor and rounded down)"))
property_int (factor, _("Image pixels per latent pixel"), 8)
  description (_("For image units: 8 for SD, SDXL, SD3 and FLUX.1, 16 for FLUX.2 and TAEF2, "
                 "32 for Sana"))
  value_range (1, 64)
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_COMPOSER
#define GEGL_OP_NAME vae_latent_composite
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-composite.c
/* clang-format on */

#include "gegl-op.h"

#include <string.h>

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;
  gboolean with_aux;

  gegl_vae_latent_pads (operation, gegl_vae_pad_latents (operation, &with_aux, &error));
  gegl_vae_report_outcome (operation, &o->error, error);
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  gboolean             with_aux;

  if (!in || !gegl_vae_pad_latents (operation, &with_aux, NULL))
    return (GeglRectangle){ 0 };
  return *in;
}

/* The placement in latent pixels, against the two boxes. */
static VaeComposite
geometry (GeglOperation *operation, const GeglRectangle *in, const GeglRectangle *aux)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gint      f = o->units == GEGL_VAE_UNITS_IMAGE ? o->factor : 1;

  return (VaeComposite){ in->width,  in->height,  o->x / f,      o->y / f,
                         aux->width, aux->height, o->feather / f };
}

/* The rectangle of aux under ROI of the output (empty when none). */
static GeglRectangle
aux_under (GeglOperation *operation, const GeglRectangle *roi)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  const GeglRectangle *aux = gegl_operation_source_get_bounding_box (operation, "aux");
  GeglRectangle        under = { 0 };
  VaeComposite         c;

  if (!in || !aux)
    return under;
  c = geometry (operation, in, aux);
  under = (GeglRectangle){ roi->x - in->x - c.x + aux->x, roi->y - in->y - c.y + aux->y, roi->width,
                           roi->height };
  gegl_rectangle_intersect (&under, &under, aux);
  return under;
}

static GeglRectangle
get_required_for_output (GeglOperation *operation, const gchar *input_pad, const GeglRectangle *roi)
{
  return strcmp (input_pad, "aux") == 0 ? aux_under (operation, roi) : *roi;
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *aux, GeglBuffer *output,
         const GeglRectangle *roi, gint level)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  const GeglRectangle *aux_box = gegl_operation_source_get_bounding_box (operation, "aux");
  const GeglRectangle  under = aux_under (operation, roi);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) dest = NULL;
  g_autoptr (VaeTensor) source = NULL;
  gboolean   with_aux;
  const gint channels = gegl_vae_pad_latents (operation, &with_aux, NULL);

  if (!channels)
    return TRUE; /* prepare has said why */
  dest = gegl_vae_read_latent (input, roi, channels, &error);
  if (dest && with_aux && aux && under.width > 0 && under.height > 0)
    {
      const VaeComposite c = geometry (operation, in, aux_box);

      if (!(source = gegl_vae_read_latent (aux, &under, channels, &error)) ||
          !vae_latent_composite (dest, roi->x - in->x, roi->y - in->y, source, under.x - aux_box->x,
                                 under.y - aux_box->y, &c, &error))
        g_clear_pointer (&dest, vae_tensor_free);
    }
  return gegl_vae_finish_latent (operation, &o->error, output, roi, dest, error);
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
      operation_class, "name", "vae:latent-composite", "title", _ ("Latent Composite"),
      "categories", "hidden", "description",
      _ ("Places the latent on aux onto the input at x, y, its edges feathered (ComfyUI's "
         "Latent Composite); any channel count"),
      NULL);
}

#endif
