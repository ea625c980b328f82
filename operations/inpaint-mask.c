/* vae:inpaint-mask — the noise mask ComfyUI's VAE Encode (for Inpainting)
 * hands on with its latent: the mask rounded and grown by `grow` pixels
 * (a grow × grow box, 0 or 1).  GEGL delivers only a node's "output" pad to
 * the nodes after it, so vae:encode cannot pass this on beside its latent:
 * graphs feed the same mask to vae:encode's aux (grey fill) and, through
 * this op, to vae:latent-noise's aux.  Chunk-safe: each rectangle reads the
 * mask around it.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_int (grow, _("Grow"), 6)
  description (_("Grow the mask by this many pixels, as ComfyUI's grow_mask_by"))
  value_range (0, 64)
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME vae_inpaint_mask
/* clang-format off */
#define GEGL_OP_C_SOURCE inpaint-mask.c
/* clang-format on */

#include "gegl-op.h"

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;
  GeglRectangle box;

  gegl_operation_set_format (operation, "input", babl_format ("Y float"));
  gegl_operation_set_format (operation, "output", babl_format ("Y float"));
  gegl_vae_pad_mask (operation, "input", &box, &error);
  gegl_vae_report_outcome (operation, &o->error, error);
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  GeglRectangle box = { 0 };

  if (!gegl_vae_pad_mask (operation, "input", &box, NULL))
    return (GeglRectangle){ 0 };
  return box;
}

/* ROI and the pixels around it that its grown values read. */
static GeglRectangle
get_required_for_output (GeglOperation *operation, const gchar *input_pad, const GeglRectangle *roi)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  gint            before, after;

  vae_inpaint_grow_reach (o->grow, &before, &after);
  return (GeglRectangle){ roi->x - before, roi->y - before, roi->width + before + after,
                          roi->height + before + after };
}

/* The output pixels that read a changed input rectangle. */
static GeglRectangle
get_invalidated_by_change (GeglOperation *operation, const gchar *input_pad,
                           const GeglRectangle *region)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  gint            before, after;

  vae_inpaint_grow_reach (o->grow, &before, &after);
  return (GeglRectangle){ region->x - after, region->y - after, region->width + before + after,
                          region->height + before + after };
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *output, const GeglRectangle *roi,
         gint level)
{
  GeglProperties     *o = GEGL_PROPERTIES (operation);
  const GeglRectangle around = get_required_for_output (operation, "input", roi);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) mask = NULL;
  g_autoptr (VaeTensor) grown = NULL;
  GeglRectangle box;
  gint          before, after;

  if (!gegl_vae_pad_mask (operation, "input", &box, NULL))
    return TRUE; /* prepare has said why */
  /* outside the mask's box reads 0, as conv2d's zero padding */
  if (!(mask = gegl_vae_read_mask (input, &around, &error)) ||
      !(grown = vae_inpaint_grow (mask, o->grow, &error)))
    {
      gegl_vae_report_error (operation, &o->error, error);
      return TRUE;
    }
  vae_inpaint_grow_reach (o->grow, &before, &after);
  gegl_buffer_set (output, roi, 0, babl_format ("Y float"),
                   grown->data + (gsize) before * around.width + before,
                   around.width * sizeof (gfloat));
  return TRUE;
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
      operation_class, "name", "vae:inpaint-mask", "title", _ ("Inpaint Noise Mask"), "categories",
      "hidden", "description",
      _ ("The noise mask of ComfyUI's VAE Encode (for Inpainting): the mask rounded and grown by "
         "some pixels, for vae:latent-noise's aux"),
      NULL);
}

#endif
