/* vae:codebook-usage — which codebook entry each latent vector snaps to,
 * as a colour image at the latent's size (one colour per entry,
 * vae_codebook_index_colour), so a user sees which entries a picture uses
 * and where.  The codebook is chosen as vae:vq-snap chooses it (a VQ model's
 * own, a file, or learned from the input); the entries used and the
 * perplexity of their use are reported after each run.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
GEGL_VAE_CODEBOOK_PROPERTIES
property_int (entries_used, _("Entries used"), 0)
  description (_("How many entries the last run used (read-only)"))
  value_range (0, G_MAXINT)
GEGL_VAE_PERPLEXITY_PROPERTY
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME vae_codebook_usage
/* clang-format off */
#define GEGL_OP_C_SOURCE codebook-usage.c
/* clang-format on */

#include "gegl-op.h"

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gchar    *what;
  gint            channels = gegl_vae_source_latent_channels (operation, "input", &what);

  gegl_operation_set_format (operation, "input", gegl_vae_latent_format (channels));
  gegl_operation_set_format (operation, "output", babl_format ("R'G'B'A float"));
  gegl_vae_usage_reset (gegl_vae_usage_of (&o->user_data));
  if (channels == 0)
    gegl_vae_report (operation, &o->error, _ ("the input is %s, not a latent (connect vae:encode)"),
                     what);
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
  g_autofree gint    *indices = NULL;
  g_autofree guint64 *counts = NULL;
  gdouble             mean_error;

  if (channels <= 0 || n == 0)
    return TRUE;
  pixels = g_try_new (gfloat, n * MAX (channels, 4));
  indices = g_try_new (gint, n);
  if (!pixels || !indices)
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
  vae_codebook_assign (cb, pixels, n, indices);
  counts = g_new0 (guint64, cb->size);
  for (gsize i = 0; i < n; i++)
    {
      counts[indices[i]]++;
      vae_codebook_index_colour (indices[i], pixels + i * 4);
      pixels[i * 4 + 3] = 1.0f;
    }
  gegl_buffer_set (output, rect, 0, babl_format ("R'G'B'A float"), pixels, GEGL_AUTO_ROWSTRIDE);
  gegl_vae_usage_add (gegl_vae_usage_of (&o->user_data), counts, cb->size, 0.0, n, &o->perplexity,
                      &mean_error, &o->entries_used);
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
  operation_class->prepare = prepare;
  operation_class->get_required_for_output = get_required_for_output;
  operation_class->get_cached_region = get_cached_region;
  operation_class->threaded = FALSE; /* core assigns with all threads itself */
  filter_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:codebook-usage", "title", _ ("Codebook Usage"), "categories",
      "hidden", "description",
      _ ("Shows which codebook entry each latent vector snaps to, one colour per entry, at the "
         "latent's size: a VQ model's own codebook, one from a file, or one learned by k-means++"),
      NULL);
}

#endif
