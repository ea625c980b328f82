/* vae:vq-snap — every latent vector to its nearest codebook entry, the
 * codebook read from a file or learned from the input by k-means++
 * ("latent posterize").  With a file the op is chunk-safe; learning needs
 * the whole input.  Usage perplexity and mean squared quantisation error
 * are reported after each run.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_file_path (codebook, _("Codebook"), "")
  description (_("A safetensors/.pth file with one [K, C] tensor or a VQ model's "
                 "quantize.embedding.weight; empty: learn one from the input"))
property_int (k, _("Codebook size"), 16)
  description (_("Entries to learn when no codebook file is given"))
  value_range (1, 4096)
  ui_range (2, 256)
property_int (iterations, _("Iterations"), 10)
  description (_("k-means iterations after k-means++ seeding"))
  value_range (0, 1000)
  ui_range (0, 50)
property_seed (seed, _("Seed"), rand)
property_double (strength, _("Strength"), 1.0)
  description (_("Blend between the original (0) and the snapped latent (1)"))
  value_range (0.0, 1.0)
property_double (perplexity, _("Codebook perplexity"), 0.0)
  description (_("exp(entropy) of entry usage in the last run (read-only)"))
  value_range (0.0, G_MAXDOUBLE)
property_double (mean_error, _("Mean quantisation error"), 0.0)
  description (_("Mean squared distance from a vector to its entry in the last run (read-only)"))
  value_range (0.0, G_MAXDOUBLE)
property_string (error, _("Error"), "")
  description (_("Why the last run failed (read-only)"))
  ui_meta ("error", "true")
/* clang-format on */

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME vae_vq_snap
/* clang-format off */
#define GEGL_OP_C_SOURCE vq-snap.c
/* clang-format on */

#include "gegl-op.h"

/* Usage and error of the current run, over all chunks. */
typedef struct
{
  GMutex   lock;
  guint64 *counts;
  gint     size;
  gdouble  sq_error;
  guint64  vectors;
} Stats;

static Stats *
stats_of (GeglProperties *o)
{
  if (!o->user_data)
    {
      Stats *s = g_new0 (Stats, 1);
      g_mutex_init (&s->lock);
      o->user_data = s;
    }
  return o->user_data;
}

static gboolean
learning (GeglProperties *o)
{
  return !o->codebook || !*o->codebook;
}

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  Stats          *s = stats_of (o);
  const gchar    *what;
  gint            channels = gegl_vae_source_latent_channels (operation, "input", &what);

  gegl_operation_set_format (operation, "input", gegl_vae_latent_format (channels));
  gegl_operation_set_format (operation, "output", gegl_vae_latent_format (channels));
  g_mutex_lock (&s->lock);
  g_clear_pointer (&s->counts, g_free);
  s->sq_error = 0.0;
  s->vectors = 0;
  g_mutex_unlock (&s->lock);
  if (channels == 0)
    gegl_vae_report (operation, &o->error, _ ("the input is %s, not a latent (connect vae:encode)"),
                     what);
  else
    gegl_vae_report_nan (operation, &o->error);
}

static GeglRectangle
get_required_for_output (GeglOperation *operation, const gchar *input_pad, const GeglRectangle *roi)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");

  if (learning (GEGL_PROPERTIES (operation)))
    return in ? *in : (GeglRectangle){ 0 };
  return *roi;
}

static GeglRectangle
get_cached_region (GeglOperation *operation, const GeglRectangle *roi)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");

  if (learning (GEGL_PROPERTIES (operation)))
    return in ? *in : (GeglRectangle){ 0 };
  return *roi;
}

static VaeCodebook *
get_codebook (GeglProperties *o, const gfloat *vectors, gsize n, gint dim, GError **error)
{
  VaeCodebook *cb;

  if (learning (o))
    return vae_codebook_learn (vectors, n, dim, o->k, o->iterations, o->seed, error);
  if (!(cb = vae_codebook_load (o->codebook, error)))
    return NULL;
  if (cb->dim != dim)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the codebook's entries have %d channels but the latent has %d"), cb->dim,
                   dim);
      g_clear_pointer (&cb, vae_codebook_free);
    }
  return cb;
}

static void
add_stats (GeglProperties *o, const guint64 *counts, gint size, gdouble sq_error, gsize n)
{
  Stats *s = stats_of (o);

  g_mutex_lock (&s->lock);
  if (!s->counts || s->size != size)
    {
      g_free (s->counts);
      s->counts = g_new0 (guint64, size);
      s->size = size;
    }
  for (gint k = 0; k < size; k++)
    s->counts[k] += counts[k];
  s->sq_error += sq_error;
  s->vectors += n;
  o->perplexity = vae_codebook_perplexity (s->counts, size);
  o->mean_error = s->sq_error / MAX (s->vectors, 1);
  g_mutex_unlock (&s->lock);
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *output, const GeglRectangle *roi,
         gint level)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  const GeglRectangle *rect = learning (o) ? in : roi;
  const gchar         *what;
  const gint           channels = gegl_vae_source_latent_channels (operation, "input", &what);
  const gsize          n = rect ? (gsize) rect->width * rect->height : 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeCodebook) cb = NULL;
  g_autofree gfloat  *pixels = NULL;
  g_autofree guint64 *counts = NULL;
  gdouble             sq_error = 0.0;

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
  if (!(cb = get_codebook (o, pixels, n, channels, &error)))
    {
      gegl_vae_report_error (operation, &o->error, error);
      return TRUE;
    }
  counts = g_new0 (guint64, cb->size);
  vae_codebook_snap (cb, pixels, pixels, n, (gfloat) o->strength, counts, &sq_error);
  gegl_buffer_set (output, rect, 0, gegl_vae_latent_format (channels), pixels, GEGL_AUTO_ROWSTRIDE);
  add_stats (o, counts, cb->size, sq_error, n);
  gegl_vae_clear_error (&o->error);
  return TRUE;
}

static void
finalize (GObject *object)
{
  GeglProperties *o = GEGL_PROPERTIES (object);
  Stats          *s = o->user_data;

  if (s)
    {
      g_mutex_clear (&s->lock);
      g_free (s->counts);
      g_free (s);
      o->user_data = NULL;
    }
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
      _ ("Replaces every latent vector by its nearest codebook entry, from a file or "
         "learned from the latent itself by k-means++ (latent posterize)"),
      NULL);
}

#endif
