/* vae:latent-transform — flip, rotate by quarter turns or transpose a
 * latent (ComfyUI's LatentFlip and LatentRotate).  Chunk-safe: each output
 * rectangle is the transform of one input rectangle, which is all it asks
 * for.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_enum (transform, _("Transform"), GeglVaeTransform, gegl_vae_transform,
               VAE_TRANSFORM_FLIP_HORIZONTAL)
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME vae_latent_transform
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-transform.c
/* clang-format on */

#include "gegl-op.h"

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;

  gegl_vae_latent_pads (operation, gegl_vae_pad_latent (operation, "input", &error));
  gegl_vae_report_outcome (operation, &o->error, error);
}

/* The input's box, nothing when it is not a latent. */
static const GeglRectangle *
input_box (GeglOperation *operation)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");

  if (!gegl_vae_pad_latent (operation, "input", NULL) || !in || in->width <= 0 || in->height <= 0)
    return NULL;
  return in;
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = input_box (operation);
  const gboolean       swap = vae_latent_transform_swaps_axes (o->transform);

  if (!in)
    return (GeglRectangle){ 0 };
  return (GeglRectangle){ in->x, in->y, swap ? in->height : in->width,
                          swap ? in->width : in->height };
}

/* The input rectangle that ROI of the output shows, and *AREA, the part of
 * ROI inside the output. */
static GeglRectangle
source_of (GeglOperation *operation, const GeglRectangle *roi, GeglRectangle *area)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = input_box (operation);
  const GeglRectangle  box = get_bounding_box (operation);
  VaeRect              local, source;

  if (!in || !gegl_rectangle_intersect (area, roi, &box))
    return (GeglRectangle){ 0 };
  local = gegl_vae_rect_in (area, &box);
  source = vae_latent_transform_source (o->transform, in->width, in->height, &local);
  return gegl_vae_rect_out (&source, in);
}

static GeglRectangle
get_required_for_output (GeglOperation *operation, const gchar *input_pad, const GeglRectangle *roi)
{
  GeglRectangle area;
  return source_of (operation, roi, &area);
}

/* The output rectangle a changed input rectangle shows up in: the inverse
 * transform's source of it (quarter turns invert each other, the rest
 * themselves). */
static GeglRectangle
get_invalidated_by_change (GeglOperation *operation, const gchar *input_pad,
                           const GeglRectangle *region)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = input_box (operation);
  const GeglRectangle  box = get_bounding_box (operation);
  VaeTransform         inverse = o->transform;
  GeglRectangle        area;
  VaeRect              local, shown;

  if (!in || !gegl_rectangle_intersect (&area, region, in))
    return (GeglRectangle){ 0 };
  if (o->transform == VAE_TRANSFORM_ROTATE_90 || o->transform == VAE_TRANSFORM_ROTATE_270)
    inverse = VAE_TRANSFORM_ROTATE_90 + VAE_TRANSFORM_ROTATE_270 - o->transform;
  local = gegl_vae_rect_in (&area, in);
  shown = vae_latent_transform_source (inverse, box.width, box.height, &local);
  return gegl_vae_rect_out (&shown, &box);
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *output, const GeglRectangle *roi,
         gint level)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gint      channels = gegl_vae_pad_latent (operation, "input", NULL);
  GeglRectangle   area;
  GeglRectangle   source = source_of (operation, roi, &area);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) part = NULL;
  g_autoptr (VaeTensor) done = NULL;

  if (!channels || source.width <= 0)
    return TRUE; /* prepare has said why */
  if ((part = gegl_vae_read_latent (input, &source, channels, &error)))
    done = vae_latent_transform (part, o->transform, &error);
  return gegl_vae_finish_latent (operation, &o->error, output, &area, done, error);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass       *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationFilterClass *filter_class = GEGL_OPERATION_FILTER_CLASS (klass);

  operation_class->prepare = prepare;
  operation_class->get_bounding_box = get_bounding_box;
  operation_class->get_required_for_output = get_required_for_output;
  operation_class->get_invalidated_by_change = get_invalidated_by_change;
  operation_class->threaded = TRUE;
  filter_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:latent-transform", "title", _ ("Latent Transform"),
      "categories", "hidden", "description",
      _ ("Flips a latent, rotates it by quarter turns (clockwise, as ComfyUI) or transposes it; "
         "any channel count"),
      NULL);
}

#endif
