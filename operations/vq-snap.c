/* vae:vq-snap — every latent vector to its nearest codebook entry, the
 * codebook a VQ model's own (`codebook=model`, or the model's name), read
 * from a file, or learned from the input by k-means++ ("latent
 * posterize").  With a given codebook the op is chunk-safe; learning needs
 * the whole input.  Usage perplexity and mean squared quantisation error
 * are reported after each run.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
GEGL_VAE_CODEBOOK_PROPERTIES
property_double (strength, _("Strength"), 1.0)
  description (_("Blend between the original (0) and the snapped latent (1)"))
  value_range (0.0, 1.0)
GEGL_VAE_PERPLEXITY_PROPERTY
property_double (mean_error, _("Mean quantisation error"), 0.0)
  description (_("Mean squared distance from a vector to its entry in the last run (read-only)"))
  value_range (0.0, G_MAXDOUBLE)
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME vae_vq_snap
/* clang-format off */
#define GEGL_OP_C_SOURCE vq-snap.c
/* clang-format on */

#include "gegl-op.h"

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gchar    *what;
  gint            channels = gegl_vae_source_latent_channels (operation, "input", &what);

  gegl_operation_set_format (operation, "input", gegl_vae_latent_format (channels));
  gegl_operation_set_format (operation, "output", gegl_vae_latent_format (channels));
  gegl_vae_usage_reset (gegl_vae_usage_of (&o->user_data));
  if (channels == 0)
    gegl_vae_report (operation, &o->error, _ ("the input is %s, not a latent (connect vae:encode)"),
                     what);
  else
    gegl_vae_report_nan (operation, &o->error);
}

static GeglRectangle
get_required_for_output (GeglOperation *operation, const gchar *input_pad, const GeglRectangle *roi)
{
  return gegl_vae_codebook_region (operation, GEGL_PROPERTIES (operation)->codebook, roi);
}

static GeglRectangle
get_cached_region (GeglOperation *operation, const GeglRectangle *roi)
{
  return gegl_vae_codebook_region (operation, GEGL_PROPERTIES (operation)->codebook, roi);
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *output, const GeglRectangle *roi,
         gint level)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  const GeglRectangle *rect = gegl_vae_codebook_learns (o->codebook) ? in : roi;
  const gchar         *what;
  const gint           channels = gegl_vae_source_latent_channels (operation, "input", &what);
  const gsize          n = rect ? (gsize) rect->width * rect->height : 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeCodebook) cb = NULL;
  g_autofree gfloat  *pixels = NULL;
  g_autofree guint64 *counts = NULL;
  gdouble             sq_error = 0.0;
  gint                used;

  if (channels <= 0 || n == 0 || gegl_vae_nan_property (operation))
    return TRUE;
  pixels = g_try_new (gfloat, n * channels);
  if (!pixels)
    {
      gegl_vae_report (operation, &o->error, _ ("out of memory for a %d×%d latent"), rect->width,
                       rect->height);
      return TRUE;
    }
  gegl_buffer_get (input, rect, 1.0, gegl_vae_latent_format (channels), pixels, GEGL_AUTO_ROWSTRIDE,
                   GEGL_ABYSS_NONE);
  if (!(cb = gegl_vae_codebook (o->codebook, o->model, o->k, o->iterations, o->seed, pixels, n,
                                channels, &error)))
    {
      gegl_vae_report_error (operation, &o->error, error);
      return TRUE;
    }
  counts = g_new0 (guint64, cb->size);
  vae_codebook_snap (cb, pixels, pixels, n, (gfloat) o->strength, counts, &sq_error);
  gegl_buffer_set (output, rect, 0, gegl_vae_latent_format (channels), pixels, GEGL_AUTO_ROWSTRIDE);
  gegl_vae_usage_add (gegl_vae_usage_of (&o->user_data), counts, cb->size, sq_error, n,
                      &o->perplexity, &o->mean_error, &used);
  gegl_vae_clear_error (&o->error);
  return TRUE;
}

static void
finalize (GObject *object)
{
  GeglProperties *o = GEGL_PROPERTIES (object);

  g_clear_pointer (&o->user_data, gegl_vae_usage_free);
  G_OBJECT_CLASS (gegl_op_parent_class)->finalize (object);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass       *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationFilterClass *filter_class = GEGL_OPERATION_FILTER_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = finalize;
  gegl_vae_accept_nan (G_OBJECT_CLASS (klass));
  operation_class->prepare = prepare;
  operation_class->get_bounding_box = gegl_vae_box_unless_nan;
  operation_class->get_required_for_output = get_required_for_output;
  operation_class->get_cached_region = get_cached_region;
  operation_class->threaded = FALSE; /* core snaps with all threads itself */
  filter_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:vq-snap", "title", _ ("Latent VQ Snap"), "categories", "hidden",
      "description",
      _ ("Replaces every latent vector by its nearest codebook entry: a VQ model's own "
         "codebook, one from a file, or one learned from the latent itself by k-means++ "
         "(latent posterize)"),
      NULL);
}

#endif
