/* vae:latent-scale — a latent to another size, by ComfyUI's methods
 * (LatentUpscale, LatentUpscaleBy): nearest-exact, bilinear, area, bicubic,
 * bislerp.  A whole-latent op: every output pixel may read any input pixel
 * (bislerp, area), so it asks for all of its input.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_enum (method, _("Method"), GeglVaeScaleMethod, gegl_vae_scale_method,
               VAE_SCALE_NEAREST_EXACT)
  description (_("ComfyUI's upscale methods; bislerp blends neighbouring latent vectors "
                 "spherically"))
property_double (factor, _("Factor"), 1.5)
  description (_("Scale by this factor when width and height are 0"))
  value_range (0.0, 64.0) ui_range (0.25, 4.0)
property_int (width, _("Width"), 0)
  description (_("Width in latent pixels; 0 keeps the aspect (or uses the factor)"))
  value_range (0, 65536) ui_range (0, 1024)
property_int (height, _("Height"), 0)
  description (_("Height in latent pixels; 0 keeps the aspect (or uses the factor)"))
  value_range (0, 65536) ui_range (0, 1024)
property_boolean (crop, _("Crop to the aspect"), FALSE)
  description (_("Cut the centre of the latent to the new aspect before scaling"))
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME vae_latent_scale
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-scale.c
/* clang-format on */

#include "gegl-op.h"

/* The output box: the input's corner, the new size; FALSE (with ERROR when
 * the cause is the user's) when there is none. */
static gboolean
output_box (GeglOperation *operation, GeglRectangle *box, gint *channels, GError **error)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");

  if (!(*channels = gegl_vae_pad_latent (operation, "input", error)) || !in || in->width <= 0 ||
      in->height <= 0)
    return FALSE;
  box->x = in->x, box->y = in->y;
  return vae_latent_scaled_size (in->width, in->height, o->factor, o->width, o->height, &box->width,
                                 &box->height, error);
}

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;
  GeglRectangle box;
  gint          channels;

  output_box (operation, &box, &channels, &error);
  gegl_vae_latent_pads (operation, channels);
  gegl_vae_report_outcome (operation, &o->error, error);
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  GeglRectangle box = { 0 };
  gint          channels;

  if (!output_box (operation, &box, &channels, NULL))
    return (GeglRectangle){ 0 };
  return box;
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
  g_autoptr (VaeTensor) latent = NULL;
  g_autoptr (VaeTensor) scaled = NULL;
  GeglRectangle box;
  gint          channels;

  if (!output_box (operation, &box, &channels, NULL))
    return TRUE; /* prepare has said why */
  if ((latent = gegl_vae_read_latent (input, in, channels, &error)))
    scaled = vae_latent_scale (latent, box.width, box.height, o->method, o->crop, &error);
  return gegl_vae_finish_latent (operation, &o->error, output, &box, scaled, error);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass       *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationFilterClass *filter_class = GEGL_OPERATION_FILTER_CLASS (klass);

  operation_class->prepare = prepare;
  operation_class->get_bounding_box = get_bounding_box;
  operation_class->get_required_for_output = gegl_vae_whole_input;
  operation_class->get_invalidated_by_change = gegl_vae_whole_output;
  operation_class->get_cached_region = get_cached_region;
  operation_class->threaded = FALSE;
  filter_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:latent-scale", "title", _ ("Latent Scale"), "categories",
      "hidden", "description",
      _ ("Scales a latent by a factor or to a size, with ComfyUI's latent upscale methods "
         "(nearest-exact, bilinear, area, bicubic, bislerp); any channel count"),
      NULL);
}

#endif
