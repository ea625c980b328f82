/* The operations through the GEGL API: read-only properties that report
 * (vq-snap's perplexity and mean error, every op's error) and the empty
 * output of a failed op.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-gegl-util.h"

#include <gegl.h>
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
    "vae:inpaint-mask"
  };
  const gchar *title = gegl_operation_get_key ("vae:diffusion-preview", "title");
  const gchar *description = gegl_operation_get_key ("vae:diffusion-preview", "description");

  g_assert_true (gimp_tool_lists (gegl_operation_get_key ("vae:diffusion-preview", "categories")));
  g_assert_nonnull (title);
  g_assert_cmpuint (strlen (title), >, 5);
  g_assert_nonnull (description);
  g_assert_cmpuint (strlen (description), >, 20);
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
 * set by name. */
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
  g_test_add_func ("/gegl-api/backend-precision", test_backend_precision);
  g_test_add_func ("/gegl-api/gimp-tool-listing", test_gimp_tool_listing);
  {
    int status = g_test_run ();
    gegl_exit ();
    return status;
  }
}
