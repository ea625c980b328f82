/* vae:latent-load — reads a .npy (diffusion scale) or ComfyUI .latent file
 * into a latent buffer.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_file_path (path, _("File"), "")
  description (_("A .npy or .latent file"))
property_string (model, _("Model"), GEGL_VAE_DEFAULT_MODEL)
  description (_("Family or model whose scale brings a .latent file's raw latent to the diffusion scale"))
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_SOURCE
#define GEGL_OP_NAME vae_latent_load
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-load.c
/* clang-format on */

#include "gegl-op.h"

static VaeTensor *
load (GeglProperties *o, GError **error)
{
  VaeTensor *latent;
  gdouble    scale, shift;
  gboolean   identity;

  if (g_str_has_suffix (o->path, ".npy"))
    return vae_npy_read_latent (o->path, error);
  if (!g_str_has_suffix (o->path, ".latent"))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: latents are read from .npy or .latent"), o->path);
      return NULL;
    }
  if (!gegl_vae_raw_scale (o->model, &scale, &shift, &identity, error) ||
      !(latent = vae_latent_file_read (o->path, error)))
    return NULL;
  for (gsize i = 0; !identity && i < vae_tensor_n_elements (latent); i++)
    latent->data[i] = (gfloat) ((latent->data[i] - shift) * scale);
  return latent;
}

/* The file is read whenever it is asked about; latents are small. */
static VaeTensor *
load_reporting (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;
  VaeTensor *latent = o->path && *o->path ? load (o, &error) : NULL;

  if (o->path && *o->path && !latent)
    gegl_vae_report_error (operation, &o->error, error);
  return latent;
}

static void
prepare (GeglOperation *operation)
{
  g_autoptr (VaeTensor) latent = load_reporting (operation);

  gegl_operation_set_format (operation, "output",
                             gegl_vae_latent_format (latent ? latent->channels : 4));
}

static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  g_autoptr (VaeTensor) latent = load_reporting (operation);

  return latent ? (GeglRectangle){ 0, 0, latent->width, latent->height } : (GeglRectangle){ 0 };
}

static gboolean
process (GeglOperation *operation, GeglBuffer *output, const GeglRectangle *result, gint level)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (VaeTensor) latent = load_reporting (operation);
  g_autoptr (GError) error = NULL;
  GeglRectangle box;

  if (!latent)
    return TRUE;
  box = (GeglRectangle){ 0, 0, latent->width, latent->height };
  if (!gegl_vae_write_latent (output, &box, latent, &error))
    gegl_vae_report_error (operation, &o->error, error);
  else
    gegl_vae_clear_error (&o->error);
  return TRUE;
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass       *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationSourceClass *source_class = GEGL_OPERATION_SOURCE_CLASS (klass);

  operation_class->prepare = prepare;
  operation_class->get_bounding_box = get_bounding_box;
  source_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:latent-load", "title", _ ("Latent File Loader"), "categories",
      "hidden", "description",
      _ ("Loads a latent from .npy (diffusion scale) or a ComfyUI .latent file"), NULL);
}

#endif
