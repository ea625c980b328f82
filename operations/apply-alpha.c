/* vae:apply-alpha — the colour of the input with the alpha of aux, over the
 * extent of aux: puts a decoded image back in its source's place (crop to
 * the unpadded size) and restores its transparency, which a VAE never sees.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
/* clang-format on */

#else

#define GEGL_OP_POINT_COMPOSER
#define GEGL_OP_NAME vae_apply_alpha
/* clang-format off */
#define GEGL_OP_C_SOURCE apply-alpha.c
/* clang-format on */

#include "gegl-op.h"

static void
prepare (GeglOperation *operation)
{
  const Babl *rgba = babl_format ("R'G'B'A float");

  gegl_operation_set_format (operation, "input", rgba);
  gegl_operation_set_format (operation, "aux", rgba);
  gegl_operation_set_format (operation, "output", rgba);
}

/* aux's box, but nothing where the input has nothing (a failed decode must
 * not become a black picture with the source's alpha) */
static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  const GeglRectangle *aux = gegl_operation_source_get_bounding_box (operation, "aux");
  GeglRectangle        box = { 0 };

  if (in && aux)
    gegl_rectangle_intersect (&box, in, aux);
  return box;
}

static gboolean
process (GeglOperation *operation, void *in_buf, void *aux_buf, void *out_buf, glong n_pixels,
         const GeglRectangle *roi, gint level)
{
  const gfloat *in = in_buf, *aux = aux_buf;
  gfloat       *out = out_buf;

  for (glong i = 0; i < n_pixels; i++)
    {
      out[4 * i + 0] = in[4 * i + 0];
      out[4 * i + 1] = in[4 * i + 1];
      out[4 * i + 2] = in[4 * i + 2];
      out[4 * i + 3] = aux ? aux[4 * i + 3] : 1.0f;
    }
  return TRUE;
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass              *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationPointComposerClass *composer_class = GEGL_OPERATION_POINT_COMPOSER_CLASS (klass);

  operation_class->prepare = prepare;
  operation_class->get_bounding_box = get_bounding_box;
  composer_class->process = process;

  gegl_operation_class_set_keys (operation_class, "name", "vae:apply-alpha", "title",
                                 _ ("Apply Alpha"), "categories", "hidden", "description",
                                 _ ("Colour from the input, alpha and extent from aux"), NULL);
}

#endif
