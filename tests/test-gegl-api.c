/* The operations through the GEGL API: read-only properties that report
 * (vq-snap's perplexity and mean error, every op's error), the empty
 * output of a failed op, the three image → image filters (what they
 * compute, the latent they keep, their progress, a model they cannot use),
 * and VQ models through encode, vq-snap, decode, codebook-usage and the
 * diffusion preview.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-gegl-util.h"

#include <gegl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static gchar *
kl_model (void)
{
  return g_build_filename (TEST_SOURCE_DIR, "data", "kl", "sd15-diffusers", "sd15_tiny.safetensors",
                           NULL);
}

/* A W×H picture with some structure, as a GEGL buffer. */
static GeglBuffer *
picture_sized (gint w, gint h)
{
  GeglRectangle rect = { 0, 0, w, h };
  GeglBuffer   *buffer = gegl_buffer_new (&rect, babl_format ("R'G'B'A float"));
  gfloat       *pixels = g_new (gfloat, (gsize) w * h * 4);

  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++)
      {
        gfloat *p = pixels + ((gsize) y * w + x) * 4;
        p[0] = x / (w - 1.0f);
        p[1] = y / (h - 1.0f);
        p[2] = ((x / 8 + y / 8) % 2) ? 0.9f : 0.1f;
        p[3] = 1.0f;
      }
  gegl_buffer_set (buffer, &rect, 0, babl_format ("R'G'B'A float"), pixels, GEGL_AUTO_ROWSTRIDE);
  g_free (pixels);
  return buffer;
}

static GeglBuffer *
picture (void)
{
  return picture_sized (64, 48);
}

static void
test_vq_reports (void)
{
  g_autofree gchar *model = kl_model ();
  GeglBuffer       *input = picture (), *output = NULL;
  GeglNode         *graph = gegl_node_new ();
  GeglNode         *src =
      gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  GeglNode *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL);
  GeglNode *snap =
      gegl_node_new_child (graph, "operation", "vae:vq-snap", "k", 4, "iterations", 5, NULL);
  GeglNode *sink =
      gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gdouble perplexity = 0, mean_error = -1;
  gchar  *error = NULL;

  gegl_node_link_many (src, enc, snap, sink, NULL);
  gegl_node_process (sink);
  gegl_node_get (snap, "perplexity", &perplexity, "mean-error", &mean_error, "error", &error, NULL);
  g_test_message ("perplexity %.3f, mean error %.4g", perplexity, mean_error);
  g_assert_cmpstr (error, ==, "");
  g_assert_cmpfloat (perplexity, >, 1.0);  /* more than one entry in use */
  g_assert_cmpfloat (perplexity, <=, 4.0); /* at most k */
  g_assert_cmpfloat (mean_error, >, 0.0);
  g_assert_cmpint (gegl_buffer_get_extent (output)->width, ==, 8);
  g_free (error);
  g_object_unref (output);
  g_object_unref (graph);
  g_object_unref (input);
}

static gchar *
vq_model (const gchar *dir, const gchar *file)
{
  return g_build_filename (TEST_SOURCE_DIR, "data", "vq", dir, file, NULL);
}

/* The pixels of what SINK's buffer-sink made of OUTPUT (in FORMAT), its
 * size in *W × *H; NULL when it made nothing. */
static gfloat *
processed (GeglNode *sink, GeglBuffer **output, const Babl *format, gint *w, gint *h)
{
  const GeglRectangle *extent;
  gfloat              *pixels;

  gegl_node_process (sink);
  if (!*output || gegl_buffer_get_extent (*output)->width == 0)
    {
      g_clear_object (output);
      return NULL;
    }
  extent = gegl_buffer_get_extent (*output);
  *w = extent->width;
  *h = extent->height;
  pixels = g_new (gfloat, (gsize) *w * *h * babl_format_get_n_components (format));
  gegl_buffer_get (*output, extent, 1.0, format, pixels, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_clear_object (output);
  return pixels;
}

/* SOURCE → vae:encode → the ops of the NULL-terminated list, each an
 * operation name and its properties → sink, in R'G'B'A float unless the
 * last op leaves a latent of CHANNELS; the pixels and their size.  The
 * nodes stay in GRAPH for their read-only properties; *LAST is the last. */
static gfloat *
vq_chain (GeglNode *graph, GeglBuffer *source, const gchar *model, gint channels, GeglNode **last,
          gint *w, gint *h, ...)
{
  GeglBuffer *output = NULL;
  GeglNode   *node =
      gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", source, NULL);
  GeglNode    *next = gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL);
  const gchar *op;
  va_list      args;

  gegl_node_link (node, next);
  node = next;
  va_start (args, h);
  while ((op = va_arg (args, const gchar *)))
    {
      const gchar *first = va_arg (args, const gchar *);
      next = gegl_node_new_child (graph, "operation", op, NULL);
      gegl_node_set_valist (next, first, args);
      gegl_node_link (node, next);
      node = next;
    }
  va_end (args);
  *last = node;
  next = gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gegl_node_link (node, next);
  return processed (next, &output,
                    channels ? babl_format_n (babl_type ("float"), channels)
                             : babl_format ("R'G'B'A float"),
                    w, h);
}

/* vq-snap with codebook=model snaps to the VQ-VAE's own 64 entries; a
 * codebook of 3 channels for its 8-channel latents, and a KL model's
 * missing codebook, are errors that say so. */
static void
test_vq_model_codebook (void)
{
  g_autofree gchar  *seed = vq_model ("vqvae-seed", "vqvae_seed.pth");
  g_autofree gchar  *three = vq_model ("vqmodel-diffusers", "vq_tiny.safetensors");
  g_autofree gchar  *kl = kl_model ();
  GeglBuffer        *input = picture ();
  GeglNode          *graph = gegl_node_new (), *snap;
  gdouble            perplexity = 0, mean_error = 0;
  gchar             *error = NULL;
  gint               w, h;
  g_autofree gfloat *latent = vq_chain (graph, input, seed, 8, &snap, &w, &h, "vae:vq-snap",
                                        "codebook", "model", "model", seed, NULL, NULL);

  gegl_node_get (snap, "perplexity", &perplexity, "mean-error", &mean_error, "error", &error, NULL);
  g_test_message ("codebook=model: perplexity %.3f of 64 entries, mean error %.4g", perplexity,
                  mean_error);
  g_assert_cmpstr (error, ==, "");
  g_assert_nonnull (latent);
  g_assert_cmpint (w, ==, 16);
  g_assert_cmpint (h, ==, 12);
  g_assert_cmpfloat (perplexity, >, 1.0);
  g_assert_cmpfloat (perplexity, <=, 64.0);
  g_clear_pointer (&error, g_free);

  g_test_expect_message (
      "gegl-vae", G_LOG_LEVEL_WARNING,
      "vae:vq-snap: the codebook's entries have 3 channels but the latent has 8");
  g_free (vq_chain (graph, input, seed, 8, &snap, &w, &h, "vae:vq-snap", "codebook", three, NULL,
                    NULL));
  g_test_assert_expected_messages ();
  gegl_node_get (snap, "error", &error, NULL);
  g_assert_nonnull (strstr (error, "the codebook's entries have 3 channels"));
  g_clear_pointer (&error, g_free);

  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING, "vae:vq-snap: model *has no codebook*");
  g_free (vq_chain (graph, input, kl, 4, &snap, &w, &h, "vae:vq-snap", "codebook", "model", "model",
                    kl, NULL, NULL));
  g_test_assert_expected_messages ();
  g_free (error);
  g_object_unref (graph);
  g_object_unref (input);
}

/* vae:decode of a VQ model quantises as diffusers' VQModel.decode does:
 * bit for bit what vq-snap (codebook=model) then decode with
 * force-not-quantize gives, and unlike decoding the latent as it is. */
static void
test_vq_decode_quantizes (void)
{
  g_autofree gchar  *seed = vq_model ("vqvae-seed", "vqvae_seed.pth");
  GeglBuffer        *input = picture ();
  GeglNode          *graph = gegl_node_new (), *last;
  gint               w, h, w2, h2, w3, h3;
  gdouble            differs = 0;
  g_autofree gfloat *quantised =
      vq_chain (graph, input, seed, 0, &last, &w, &h, "vae:decode", "model", seed, NULL, NULL);
  g_autofree gfloat *snapped =
      vq_chain (graph, input, seed, 0, &last, &w2, &h2, "vae:vq-snap", "codebook", "model", "model",
                seed, NULL, "vae:decode", "model", seed, "force-not-quantize", TRUE, NULL, NULL);
  g_autofree gfloat *plain = vq_chain (graph, input, seed, 0, &last, &w3, &h3, "vae:decode",
                                       "model", seed, "force-not-quantize", TRUE, NULL, NULL);

  g_assert_nonnull (quantised);
  g_assert_nonnull (snapped);
  g_assert_nonnull (plain);
  g_assert_cmpint (w, ==, 64);
  g_assert_cmpint (h, ==, 48);
  g_assert_cmpint (w2, ==, w);
  g_assert_cmpint (w3, ==, w);
  g_assert_cmpmem (quantised, (gsize) w * h * 4 * sizeof (gfloat), snapped,
                   (gsize) w2 * h2 * 4 * sizeof (gfloat));
  for (gsize i = 0; i < (gsize) w * h * 4; i++)
    differs = MAX (differs, fabs (quantised[i] - plain[i]));
  g_test_message ("decode: quantised = snapped then decoded (bit for bit); %.3g from the latent "
                  "decoded as it is",
                  differs);
  g_assert_cmpfloat (differs, >, 1e-3);
  g_object_unref (graph);
  g_object_unref (input);
}

/* The diffusion preview with a VQ model: noise, snap, decode.  Without the
 * snap node the decode quantises by itself; with vq on, codebook=model and
 * full strength the snap node does it: the same picture either way, the
 * input's size, no error. */
static void
test_vq_preview (gconstpointer file)
{
  g_auto (GStrv) parts = g_strsplit (file, "/", 2);
  g_autofree gchar *model = vq_model (parts[0], parts[1]);
  GeglBuffer       *input = picture ();
  gfloat           *out[2] = { NULL, NULL };

  for (gint vq = 0; vq < 2; vq++)
    {
      GeglBuffer *output = NULL;
      GeglNode   *graph = gegl_node_new ();
      GeglNode   *src =
          gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
      GeglNode *preview = gegl_node_new_child (
          graph, "operation", "vae:diffusion-preview", "model", model, "strength", 0.3, "seed", 7,
          "vq", (gboolean) vq, "codebook", "model", "vq-strength", 1.0, NULL);
      GeglNode *sink =
          gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
      gchar *error = NULL;
      gint   w = 0, h = 0;

      gegl_node_link_many (src, preview, sink, NULL);
      out[vq] = processed (sink, &output, babl_format ("R'G'B'A float"), &w, &h);
      gegl_node_get (preview, "error", &error, NULL);
      g_assert_cmpstr (error, ==, "");
      g_assert_nonnull (out[vq]);
      g_assert_cmpint (w, ==, 64);
      g_assert_cmpint (h, ==, 48);
      g_free (error);
      g_object_unref (graph);
    }
  g_assert_cmpmem (out[0], 64 * 48 * 4 * sizeof (gfloat), out[1], 64 * 48 * 4 * sizeof (gfloat));
  g_free (out[0]);
  g_free (out[1]);
  g_object_unref (input);
}

/* The codebook-usage view: one colour per entry used, as many colours as
 * the entries it reports, at the latent's size. */
static void
test_codebook_usage (void)
{
  g_autofree gchar *seed = vq_model ("vqvae-seed", "vqvae_seed.pth");
  g_autoptr (GHashTable) colours = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GeglBuffer        *input = picture ();
  GeglNode          *graph = gegl_node_new (), *usage;
  gint               w, h, used = 0;
  gdouble            perplexity = 0;
  gchar             *error = NULL;
  g_autofree gfloat *map = vq_chain (graph, input, seed, 0, &usage, &w, &h, "vae:codebook-usage",
                                     "codebook", "model", "model", seed, NULL, NULL);

  gegl_node_get (usage, "entries-used", &used, "perplexity", &perplexity, "error", &error, NULL);
  g_assert_cmpstr (error, ==, "");
  g_assert_nonnull (map);
  g_assert_cmpint (w, ==, 16);
  g_assert_cmpint (h, ==, 12);
  for (gint i = 0; i < w * h; i++)
    g_hash_table_add (
        colours, g_strdup_printf ("%.6f %.6f %.6f", map[i * 4], map[i * 4 + 1], map[i * 4 + 2]));
  g_test_message ("%d entries used, %u colours, perplexity %.3f", used, g_hash_table_size (colours),
                  perplexity);
  g_assert_cmpint (used, >, 1);
  g_assert_cmpint (used, <=, 64);
  g_assert_cmpuint (g_hash_table_size (colours), ==, used);
  g_assert_cmpfloat (perplexity, >, 1.0);
  g_free (error);
  g_object_unref (graph);
  g_object_unref (input);
}

static void
on_progress (GeglNode *node, gdouble fraction, gpointer data)
{
  g_array_append_val ((GArray *) data, fraction);
}

/* The model's layers report through the op: several rising steps up to 1. */
static void
test_progress (void)
{
  g_autofree gchar *model = kl_model ();
  g_autoptr (GArray) steps = g_array_new (FALSE, FALSE, sizeof (gdouble));
  GeglBuffer *input = picture (), *output = NULL;
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *src =
      gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  GeglNode *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL);
  GeglNode *sink =
      gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);

  g_signal_connect (enc, "progress", G_CALLBACK (on_progress), steps);
  gegl_node_link_many (src, enc, sink, NULL);
  gegl_node_process (sink);
  g_test_message ("%u progress reports", steps->len);
  g_assert_cmpuint (steps->len, >=, 4);
  for (guint i = 1; i < steps->len; i++)
    g_assert_cmpfloat (g_array_index (steps, gdouble, i), >=,
                       g_array_index (steps, gdouble, i - 1));
  g_assert_cmpfloat (g_array_index (steps, gdouble, steps->len - 1), ==, 1.0);
  g_object_unref (output);
  g_object_unref (graph);
  g_object_unref (input);
}

/* A round trip (vae:encode, vae:decode) under MEMORY_MIB; returns the
 * pixels, the decoder's progress reports and the first error property set. */
static gfloat *
preview_under (gint memory_mib, guint *reports, gchar **error)
{
  g_autofree gchar *model = kl_model ();
  g_autoptr (GArray) steps = g_array_new (FALSE, FALSE, sizeof (gdouble));
  GeglBuffer *input = picture_sized (256, 256), *output = NULL;
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *src =
      gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  GeglNode *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model", model,
                                       "memory-limit", memory_mib, NULL);
  GeglNode *dec = gegl_node_new_child (graph, "operation", "vae:decode", "model", model,
                                       "memory-limit", memory_mib, NULL);
  GeglNode *sink =
      gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gfloat       *pixels = g_new0 (gfloat, 256 * 256 * 4);
  GeglRectangle rect = { 0, 0, 256, 256 };

  /* the CPU, where the memory plan applies (a device has its own memory) */
  test_set_enum (enc, "backend", "cpu");
  test_set_enum (dec, "backend", "cpu");
  gegl_node_link_many (src, enc, dec, sink, NULL);
  g_signal_connect (dec, "progress", G_CALLBACK (on_progress), steps);
  gegl_node_process (sink);
  gegl_node_get (enc, "error", error, NULL);
  if (output)
    gegl_buffer_get (output, &rect, 1.0, babl_format ("R'G'B'A float"), pixels, GEGL_AUTO_ROWSTRIDE,
                     GEGL_ABYSS_NONE);
  *reports = steps->len;
  g_clear_object (&output);
  g_object_unref (graph);
  g_object_unref (input);
  return pixels;
}

/* memory-limit: 70 MiB makes the small KL model's 256² round trip run in
 * bands (many more progress reports) with the same picture, ≥ 50 dB PSNR
 * (the bar; float rounding differs at band edges); 1 MiB is an
 * error that says so. */
static void
test_memory_limit (void)
{
  guint   plain_reports, tiled_reports, failed_reports;
  gchar  *plain_error = NULL, *tiled_error = NULL, *failed_error = NULL;
  gfloat *plain = preview_under (0, &plain_reports, &plain_error);
  gfloat *tiled = preview_under (70, &tiled_reports, &tiled_error);
  gfloat *failed;
  gdouble sq = 0, psnr;

  for (gsize i = 0; i < 256 * 256 * 4; i++)
    sq += ((gdouble) plain[i] - tiled[i]) * ((gdouble) plain[i] - tiled[i]);
  psnr = 10 * log10 (256 * 256 * 4 / MAX (sq, 1e-30));
  g_test_message ("untiled: %u progress reports; 70 MiB: %u, %.1f dB PSNR", plain_reports,
                  tiled_reports, psnr);
  g_assert_cmpstr (plain_error, ==, "");
  g_assert_cmpstr (tiled_error, ==, "");
  g_assert_cmpuint (tiled_reports, >, 2 * plain_reports);
  g_assert_cmpfloat (psnr, >=, 50.0);
  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING,
                         "vae:encode: *memory limit of 1 MiB is too small*");
  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING,
                         "vae:decode: *memory limit of 1 MiB is too small*");
  failed = preview_under (1, &failed_reports, &failed_error);
  g_test_assert_expected_messages ();
  g_assert_nonnull (strstr (failed_error, "memory limit of 1 MiB is too small"));
  g_free (plain);
  g_free (tiled);
  g_free (failed);
  g_free (plain_error);
  g_free (tiled_error);
  g_free (failed_error);
}

/* GIMP 2.10's GEGL Operation tool lists an operation unless one of its
 * categories is on its list below (app/tools/gimpgegltool.c,
 * gimp_gegl_tool_operation_blacklisted); the same rule over our ops: the
 * image → image preview is listed with a title and a description, the
 * latent ops are not. */
static gboolean
gimp_tool_lists (const gchar *categories)
{
  static const gchar *const hidden_in_gimp[] = { "compositors", "core",  "debug",  "display",
                                                 "hidden",      "input", "output", "programming",
                                                 "transform",   "video" };
  g_auto (GStrv) parts = g_strsplit (categories ? categories : "", ":", 0);

  for (guint i = 0; parts[i]; i++)
    for (guint j = 0; j < G_N_ELEMENTS (hidden_in_gimp); j++)
      if (strcmp (parts[i], hidden_in_gimp[j]) == 0)
        return FALSE;
  return TRUE;
}

static void
test_gimp_tool_listing (void)
{
  static const gchar *const latent_ops[] = {
    "vae:encode",       "vae:decode",           "vae:latent-noise",     "vae:vq-snap",
    "vae:latent-save",  "vae:latent-load",      "vae:latent-preview",   "vae:apply-alpha",
    "vae:latent-scale", "vae:latent-transform", "vae:latent-composite", "vae:latent-blend",
    "vae:inpaint-mask", "vae:codebook-usage"
  };
  static const gchar *const filters[] = { "vae:diffusion-preview", "vae:inpaint-preview",
                                          "vae:round-trip", "vae:latent-posterize" };

  for (guint i = 0; i < G_N_ELEMENTS (filters); i++)
    {
      const gchar *title = gegl_operation_get_key (filters[i], "title");
      const gchar *description = gegl_operation_get_key (filters[i], "description");

      g_assert_true (gimp_tool_lists (gegl_operation_get_key (filters[i], "categories")));
      g_assert_nonnull (title);
      g_assert_cmpuint (strlen (title), >, 5);
      g_assert_nonnull (description);
      g_assert_cmpuint (strlen (description), >, 20);
    }
  for (guint i = 0; i < G_N_ELEMENTS (latent_ops); i++)
    {
      g_assert_true (gegl_has_operation (latent_ops[i]));
      if (gimp_tool_lists (gegl_operation_get_key (latent_ops[i], "categories")))
        g_error ("%s would be listed in GIMP's GEGL tool", latent_ops[i]);
    }
}

static void
test_error_property (void)
{
  GeglBuffer *input = picture (), *output = NULL;
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *src =
      gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  GeglNode *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model",
                                       "/no/such/model.safetensors", NULL);
  GeglNode *sink =
      gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gchar *error = NULL;

  gegl_node_link_many (src, enc, sink, NULL);
  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING,
                         "vae:encode: model '/no/such/model.safetensors'*");
  /* GEGL's own note that the (empty) output had nothing to process */
  g_test_expect_message ("GEGL", G_LOG_LEVEL_WARNING, "*0px rectangle*");
  gegl_node_process (sink);
  g_test_assert_expected_messages ();
  gegl_node_get (enc, "error", &error, NULL);
  g_assert_nonnull (strstr (error, "/no/such/model.safetensors"));
  g_assert_true (output == NULL || gegl_buffer_get_extent (output)->width == 0);
  g_free (error);
  g_clear_object (&output);
  g_object_unref (graph);
  g_object_unref (input);
}

/* backend = cpu with precision = fp16 is refused in the error property,
 * naming why; precision and backend are enum properties GEGL graphs can
 * set by name, the precision "auto" unless set. */
static void
test_backend_precision (void)
{
  GeglBuffer *input = picture (), *output = NULL;
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *src =
      gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  g_autofree gchar *model = kl_model ();
  GeglNode *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL);
  GeglNode *sink =
      gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gchar *error = NULL;

  GParamSpec *precision = gegl_operation_find_property ("vae:encode", "precision");

  g_assert_cmpstr (g_enum_get_value (G_PARAM_SPEC_ENUM (precision)->enum_class,
                                     g_value_get_enum (g_param_spec_get_default_value (precision)))
                       ->value_nick,
                   ==, "auto");
  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING,
                         "vae:encode: precision fp16 is implemented on the CUDA*");
  g_test_expect_message ("GEGL", G_LOG_LEVEL_WARNING, "*0px rectangle*");
  test_set_enum (enc, "backend", "cpu");
  test_set_enum (enc, "precision", "fp16");
  gegl_node_link_many (src, enc, sink, NULL);
  gegl_node_process (sink);
  g_test_assert_expected_messages ();
  gegl_node_get (enc, "error", &error, NULL);
  g_assert_nonnull (strstr (error, "the CPU computes fp32 or bf16"));
  g_free (error);
  g_clear_object (&output);
  g_object_unref (graph);
  g_object_unref (input);
}

/* ---- the filters ---------------------------------------------------------- */

/* The child of META running OP. */
static GeglNode *
child (GeglNode *meta, const gchar *op)
{
  GSList   *children = gegl_node_get_children (meta);
  GeglNode *found = NULL;

  for (GSList *c = children; c; c = c->next)
    if (g_strcmp0 (gegl_node_get_operation (c->data), op) == 0)
      found = c->data;
  g_slist_free (children);
  g_assert_nonnull (found);
  return found;
}

/* The 64×48 INPUT through NODE of a graph, as floats (NULL when the output
 * is empty).  The source made for NODE's input on the first call stays, as
 * in a host: a new one would invalidate every cache after it. */
static gfloat *
render (GeglNode *node, GeglBuffer *input)
{
  GeglNode     *graph = gegl_node_get_parent (node);
  GeglBuffer   *output = NULL;
  GeglNode     *sink;
  GeglRectangle rect = { 0, 0, 64, 48 };
  gfloat       *pixels = NULL;

  if (!gegl_node_get_producer (node, "input", NULL))
    gegl_node_link (
        gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL),
        node);
  sink = gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gegl_node_link (node, sink);
  gegl_node_process (sink);
  if (output && gegl_buffer_get_extent (output)->width == 64)
    {
      pixels = g_new (gfloat, 64 * 48 * 4);
      gegl_buffer_get (output, &rect, 1.0, babl_format ("R'G'B'A float"), pixels,
                       GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    }
  g_clear_object (&output);
  gegl_node_remove_child (graph, sink);
  return pixels;
}

static gdouble
max_difference (const gfloat *a, const gfloat *b)
{
  gdouble d = 0;

  for (gsize i = 0; i < 64 * 48 * 4; i++)
    d = MAX (d, fabs ((gdouble) a[i] - b[i]));
  return d;
}

/* NODE's whole passes (its progress reaching 1). */
static void
count_pass (GeglNode *node, gdouble fraction, guint *passes)
{
  if (fraction >= 1.0)
    (*passes)++;
}

/* Strength and, with the mean encode, the seed change only what follows the
 * encode: the encode does not run again (its passes are counted through its
 * progress), the decode does and the picture changes.  A sampled encode
 * follows the seed: that change runs the encode again. */
static void
test_filter_keeps_latent (void)
{
  g_autofree gchar *model = kl_model ();
  GeglBuffer       *input = picture ();
  GeglNode         *graph = gegl_node_new ();
  GeglNode *filter = gegl_node_new_child (graph, "operation", "vae:diffusion-preview", "model",
                                          model, "strength", 0.3, NULL);
  guint     encodes = 0, decodes = 0;
  g_autofree gfloat *first = NULL, *stronger = NULL, *reseeded = NULL, *sampled = NULL;

  g_signal_connect (child (filter, "vae:encode"), "progress", G_CALLBACK (count_pass), &encodes);
  g_signal_connect (child (filter, "vae:decode"), "progress", G_CALLBACK (count_pass), &decodes);
  first = render (filter, input);
  g_assert_cmpuint (encodes, ==, 1);
  g_assert_cmpuint (decodes, ==, 1);
  gegl_node_set (filter, "strength", 0.7, NULL);
  stronger = render (filter, input);
  gegl_node_set (filter, "seed", 7, NULL);
  reseeded = render (filter, input);
  g_test_message ("strength 0.3 to 0.7: max change %.3f; seed 0 to 7: %.3f; encodes %u, decodes %u",
                  max_difference (first, stronger), max_difference (stronger, reseeded), encodes,
                  decodes);
  g_assert_cmpuint (encodes, ==, 1);
  g_assert_cmpuint (decodes, ==, 3);
  g_assert_cmpfloat (max_difference (first, stronger), >, 0.05);
  g_assert_cmpfloat (max_difference (stronger, reseeded), >, 0.05);
  test_set_enum (filter, "mode", "sample");
  sampled = render (filter, input);
  g_assert_cmpuint (encodes, ==, 2);
  g_assert_nonnull (sampled);
  g_object_unref (graph);
  g_object_unref (input);
}

static void
on_filter_progress (GeglNode *node, gdouble fraction, GArray *steps)
{
  g_array_append_val (steps, fraction);
}

/* The filter's own node reports the whole run (GIMP's filter tool listens
 * there): from 0, rising, the encode below one half, the decode above, to 1;
 * a re-run after a strength change starts at 0 again, then the decode. */
static void
test_filter_progress (void)
{
  g_autofree gchar *model = kl_model ();
  g_autoptr (GArray) steps = g_array_new (FALSE, FALSE, sizeof (gdouble));
  GeglBuffer *input = picture ();
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *filter =
      gegl_node_new_child (graph, "operation", "vae:diffusion-preview", "model", model, NULL);
  guint below = 0, above = 0;

  g_signal_connect (filter, "progress", G_CALLBACK (on_filter_progress), steps);
  g_free (render (filter, input));
  for (guint i = 0; i < steps->len; i++)
    {
      gdouble f = g_array_index (steps, gdouble, i);
      below += f > 0 && f < 0.5;
      above += f > 0.5 && f < 1;
      if (i > 0)
        g_assert_cmpfloat (f, >=, g_array_index (steps, gdouble, i - 1));
    }
  g_test_message ("%u reports, %u in the encode's half, %u in the decode's", steps->len, below,
                  above);
  g_assert_cmpfloat (g_array_index (steps, gdouble, 0), ==, 0.0);
  g_assert_cmpfloat (g_array_index (steps, gdouble, steps->len - 1), ==, 1.0);
  g_assert_cmpuint (below, >=, 2);
  g_assert_cmpuint (above, >=, 2);
  g_array_set_size (steps, 0);
  gegl_node_set (filter, "strength", 0.9, NULL);
  g_free (render (filter, input));
  g_assert_cmpfloat (g_array_index (steps, gdouble, 0), ==, 0.0);
  g_assert_cmpfloat (g_array_index (steps, gdouble, 1), >, 0.5);
  g_assert_cmpfloat (g_array_index (steps, gdouble, steps->len - 1), ==, 1.0);
  g_object_unref (graph);
  g_object_unref (input);
}

/* A model the filter cannot use: the picture passes through unchanged (a
 * host never shows a blank layer), `error` (with `failed`) and one message
 * in the "GEGL" log domain (GIMP's message) say why; a good model then
 * clears them and filters again. */
static void
test_filter_missing_model (void)
{
  g_autofree gchar  *model = kl_model ();
  GeglBuffer        *input = picture ();
  GeglNode          *graph = gegl_node_new ();
  GeglNode          *filter;
  g_autofree gfloat *original =
      render (gegl_node_new_child (graph, "operation", "gegl:nop", NULL), input);
  g_autofree gfloat *through = NULL, *filtered = NULL;
  gchar             *error = NULL;
  gboolean           failed = FALSE;

  g_test_expect_message ("GEGL", G_LOG_LEVEL_MESSAGE,
                         "vae:round-trip: model '/no/such/model.safetensors'*");
  filter = gegl_node_new_child (graph, "operation", "vae:round-trip", "model",
                                "/no/such/model.safetensors", NULL);
  g_test_assert_expected_messages ();
  gegl_node_set (filter, "error", "", NULL); /* as GIMP's scripts do: set again, not logged */
  through = render (filter, input);
  gegl_node_get (filter, "error", &error, "failed", &failed, NULL);
  g_assert_nonnull (strstr (error, "/no/such/model.safetensors"));
  g_assert_true (failed);
  g_clear_pointer (&error, g_free);
  g_assert_nonnull (through);
  g_assert_cmpfloat (max_difference (original, through), ==, 0.0);
  gegl_node_set (filter, "model", model, NULL);
  filtered = render (filter, input);
  gegl_node_get (filter, "error", &error, "failed", &failed, NULL);
  g_assert_cmpstr (error, ==, "");
  g_assert_false (failed);
  g_assert_cmpfloat (max_difference (original, filtered), >, 0.01);
  g_free (error);
  g_object_unref (graph);
  g_object_unref (input);
}

/* Each filter computes what its chain of latent ops computes, bit for bit. */
static void
test_filter_same_as_chain (void)
{
  g_autofree gchar *model = kl_model ();
  GeglBuffer       *input = picture ();
  GeglNode         *graph = gegl_node_new ();
  struct
  {
    GeglNode *filter, *chain[5];
  } cases[] = {
    { gegl_node_new_child (graph, "operation", "vae:round-trip", "model", model, NULL),
      { gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL) } },
    { gegl_node_new_child (graph, "operation", "vae:latent-posterize", "model", model, "k", 4,
                           "seed", 3, NULL),
      { gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL),
        gegl_node_new_child (graph, "operation", "vae:vq-snap", "k", 4, "seed", 3, "iterations", 20,
                             NULL) } },
    { gegl_node_new_child (graph, "operation", "vae:diffusion-preview", "model", model, "strength",
                           0.6, "seed", 5, "vq", TRUE, "k", 6, NULL),
      { gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL),
        gegl_node_new_child (graph, "operation", "vae:latent-noise", "strength", 0.6, "seed", 5,
                             NULL),
        gegl_node_new_child (graph, "operation", "vae:vq-snap", "k", 6, "seed", 5, NULL) } },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      GeglNode          *last = NULL, *decode, *alpha, *nop;
      g_autofree gfloat *by_filter = render (cases[i].filter, input), *by_chain = NULL;

      /* the input proxy of a meta op: a nop, also feeding apply-alpha's aux */
      nop = gegl_node_new_child (graph, "operation", "gegl:nop", NULL);
      decode = gegl_node_new_child (graph, "operation", "vae:decode", "model", model, NULL);
      alpha = gegl_node_new_child (graph, "operation", "vae:apply-alpha", NULL);
      for (guint j = 0; j < G_N_ELEMENTS (cases[i].chain) && cases[i].chain[j]; j++)
        {
          gegl_node_link (last ? last : nop, cases[i].chain[j]);
          last = cases[i].chain[j];
        }
      gegl_node_link_many (last, decode, alpha, NULL);
      test_connect (nop, alpha, "aux");
      g_free (render (nop, input)); /* gives the nop its source */
      by_chain = render (alpha, input);
      g_test_message ("%s: max difference from its chain %g",
                      gegl_node_get_operation (cases[i].filter),
                      max_difference (by_filter, by_chain));
      g_assert_cmpfloat (max_difference (by_filter, by_chain), ==, 0.0);
    }
  g_object_unref (graph);
  g_object_unref (input);
}

/* What GIMP 3 reads: the menu entry under Filters → Generic → VAE, the
 * installed presets only (none but the default here, with "another file":
 * the tests run with an empty model path), the model name field hidden and
 * the file chooser shown for "another file"; no aux pad (GIMP 3 keeps no
 * filter with one on a layer), so vae:inpaint-preview has no menu entry. */
static void
test_filter_gimp_keys (void)
{
  static const gchar *const filters[] = { "vae:diffusion-preview", "vae:round-trip",
                                          "vae:latent-posterize" };
  GeglNode                 *graph = gegl_node_new ();

  g_assert_true (gegl_node_has_pad (
      gegl_node_new_child (graph, "operation", "vae:inpaint-preview", NULL), "aux"));
  g_assert_null (gegl_operation_get_key ("vae:inpaint-preview", "gimp:menu-path"));
  for (guint i = 0; i < G_N_ELEMENTS (filters); i++)
    {
      guint        n;
      GParamSpec **specs = gegl_operation_list_properties (filters[i], &n);
      GEnumClass  *presets = NULL;

      g_assert_false (
          gegl_node_has_pad (gegl_node_new_child (graph, "operation", filters[i], NULL), "aux"));
      g_assert_cmpstr (gegl_operation_get_key (filters[i], "gimp:menu-path"), ==,
                       "<Image>/Filters/Generic/VAE");
      g_assert_true (
          g_str_has_suffix (gegl_operation_get_key (filters[i], "gimp:menu-label"), "…"));
      for (guint j = 0; j < n; j++)
        if (strcmp (specs[j]->name, "preset") == 0)
          presets = G_PARAM_SPEC_ENUM (specs[j])->enum_class;
      g_assert_nonnull (presets);
      g_assert_cmpuint (presets->n_values, ==, 2);
      g_assert_cmpstr (presets->values[0].value_nick, ==, "taef2");
      g_assert_cmpstr (presets->values[1].value_nick, ==, "file");
      g_assert_cmpstr (gegl_operation_get_property_key (filters[i], "model", "visible"), ==, "0");
      g_assert_cmpstr (gegl_operation_get_property_key (filters[i], "model-file", "visible"), ==,
                       "preset {file}");
      g_free (specs);
    }
  g_object_unref (graph);
}

/* An op keeps its model between calls: vae:encode of a model file that is
 * then deleted still encodes when its seed changes (the model was loaded
 * once, for prepare, the bounding box and process alike), and a new model
 * name is a new load (a deleted file is then an error). */
static void
test_op_holds_model (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *bytes = NULL;
  g_autofree gchar *dir = g_dir_make_tmp ("gegl-vae-XXXXXX", NULL);
  g_autofree gchar *held = g_build_filename (dir, "held.safetensors", NULL);
  g_autofree gchar *gone = g_build_filename (dir, "gone.safetensors", NULL);
  g_autoptr (GeglBuffer) source = picture ();
  GeglBuffer *output = NULL;
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *encode, *sink;
  gfloat     *first, *second, *third;
  gchar      *error = NULL;
  gsize       len;
  gint        w, h;

  g_assert_true (g_file_get_contents (kl, &bytes, &len, NULL));
  g_assert_true (g_file_set_contents (held, bytes, (gssize) len, NULL));
  encode = gegl_node_new_child (graph, "operation", "vae:encode", "model", held, NULL);
  sink = gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gegl_node_link_many (
      gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", source, NULL),
      encode, sink, NULL);
  first = processed (sink, &output, babl_format_n (babl_type ("float"), 4), &w, &h);
  g_assert_nonnull (first);
  g_assert_cmpint (g_unlink (held), ==, 0);
  gegl_node_set (encode, "mode", 1 /* sample */, "seed", 5, NULL);
  second = processed (sink, &output, babl_format_n (babl_type ("float"), 4), &w, &h);
  g_assert_nonnull (second);
  {
    gdouble d = 0; /* sampled: computed again, not the cached mean */
    for (gsize i = 0; i < (gsize) w * h * 4; i++)
      d = MAX (d, fabs ((gdouble) first[i] - second[i]));
    g_assert_cmpfloat (d, >, 0.0);
  }
  gegl_node_get (encode, "error", &error, NULL);
  g_assert_cmpstr (error, ==, "");
  g_free (error);
  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING, "vae:encode: *gone.safetensors*");
  g_test_expect_message ("GEGL", G_LOG_LEVEL_WARNING, "*0px rectangle*");
  gegl_node_set (encode, "model", gone, NULL);
  third = processed (sink, &output, babl_format_n (babl_type ("float"), 4), &w, &h);
  g_test_assert_expected_messages ();
  g_assert_null (third);
  g_free (first);
  g_free (second);
  g_object_unref (graph);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_setenv ("GEGL_PATH", GEGL_MODULE_DIR ":" GEGL_SYSTEM_PLUGINS, TRUE);
  g_test_init (&argc, &argv, NULL);
  gegl_init (&argc, &argv);
  g_test_add_func ("/gegl-api/vq-snap-reports", test_vq_reports);
  g_test_add_func ("/gegl-api/error-property", test_error_property);
  g_test_add_func ("/gegl-api/progress", test_progress);
  g_test_add_func ("/gegl-api/memory-limit", test_memory_limit);
  g_test_add_func ("/gegl-api/op-holds-model", test_op_holds_model);
  g_test_add_func ("/gegl-api/backend-precision", test_backend_precision);
  g_test_add_func ("/gegl-api/gimp-tool-listing", test_gimp_tool_listing);
  g_test_add_func ("/gegl-api/vq/model-codebook", test_vq_model_codebook);
  g_test_add_func ("/gegl-api/vq/decode-quantizes", test_vq_decode_quantizes);
  g_test_add_func ("/gegl-api/vq/codebook-usage", test_codebook_usage);
  g_test_add_data_func ("/gegl-api/vq/preview/vqvae", "vqvae-seed/vqvae_seed.pth", test_vq_preview);
  g_test_add_data_func ("/gegl-api/vq/preview/vqmodel", "vqmodel-diffusers/vq_tiny.safetensors",
                        test_vq_preview);
  g_test_add_func ("/gegl-api/filter/keeps-latent", test_filter_keeps_latent);
  g_test_add_func ("/gegl-api/filter/progress", test_filter_progress);
  g_test_add_func ("/gegl-api/filter/missing-model", test_filter_missing_model);
  g_test_add_func ("/gegl-api/filter/same-as-chain", test_filter_same_as_chain);
  g_test_add_func ("/gegl-api/filter/gimp-keys", test_filter_gimp_keys);
  {
    int status = g_test_run ();
    gegl_exit ();
    return status;
  }
}
