/* The operations through the GEGL API: read-only properties that report
 * (vq-snap's perplexity and mean error, every op's error) and the empty
 * output of a failed op.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include <gegl.h>
#include <math.h>
#include <string.h>

static gchar *
kl_model (void)
{
  return g_build_filename (TEST_SOURCE_DIR, "data", "kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
}

/* A 64×48 picture with some structure, as a GEGL buffer. */
static GeglBuffer *
picture (void)
{
  GeglRectangle rect = { 0, 0, 64, 48 };
  GeglBuffer   *buffer = gegl_buffer_new (&rect, babl_format ("R'G'B'A float"));
  gfloat       *pixels = g_new (gfloat, 64 * 48 * 4);

  for (gint y = 0; y < 48; y++)
    for (gint x = 0; x < 64; x++)
      {
        gfloat *p = pixels + (y * 64 + x) * 4;
        p[0] = x / 63.0f;
        p[1] = y / 47.0f;
        p[2] = ((x / 8 + y / 8) % 2) ? 0.9f : 0.1f;
        p[3] = 1.0f;
      }
  gegl_buffer_set (buffer, &rect, 0, babl_format ("R'G'B'A float"), pixels, GEGL_AUTO_ROWSTRIDE);
  g_free (pixels);
  return buffer;
}

static void
test_vq_reports (void)
{
  g_autofree gchar *model = kl_model ();
  GeglBuffer *input = picture (), *output = NULL;
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *src = gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  GeglNode   *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL);
  GeglNode   *snap = gegl_node_new_child (graph, "operation", "vae:vq-snap", "k", 4, "iterations", 5, NULL);
  GeglNode   *sink = gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gdouble     perplexity = 0, mean_error = -1;
  gchar      *error = NULL;

  gegl_node_link_many (src, enc, snap, sink, NULL);
  gegl_node_process (sink);
  gegl_node_get (snap, "perplexity", &perplexity, "mean-error", &mean_error, "error", &error, NULL);
  g_test_message ("perplexity %.3f, mean error %.4g", perplexity, mean_error);
  g_assert_cmpstr (error, ==, "");
  g_assert_cmpfloat (perplexity, >, 1.0);   /* more than one entry in use */
  g_assert_cmpfloat (perplexity, <=, 4.0);  /* at most k */
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
  GeglNode   *src = gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  GeglNode   *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL);
  GeglNode   *sink = gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);

  g_signal_connect (enc, "progress", G_CALLBACK (on_progress), steps);
  gegl_node_link_many (src, enc, sink, NULL);
  gegl_node_process (sink);
  g_test_message ("%u progress reports", steps->len);
  g_assert_cmpuint (steps->len, >=, 4);
  for (guint i = 1; i < steps->len; i++)
    g_assert_cmpfloat (g_array_index (steps, gdouble, i), >=, g_array_index (steps, gdouble, i - 1));
  g_assert_cmpfloat (g_array_index (steps, gdouble, steps->len - 1), ==, 1.0);
  g_object_unref (output);
  g_object_unref (graph);
  g_object_unref (input);
}

static void
test_error_property (void)
{
  GeglBuffer *input = picture (), *output = NULL;
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *src = gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  GeglNode   *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model", "/no/such/model.safetensors", NULL);
  GeglNode   *sink = gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gchar      *error = NULL;

  gegl_node_link_many (src, enc, sink, NULL);
  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING, "vae:encode: model '/no/such/model.safetensors'*");
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

int
main (int argc, char **argv)
{
  g_setenv ("GEGL_PATH", GEGL_MODULE_DIR ":" GEGL_SYSTEM_PLUGINS, TRUE);
  g_test_init (&argc, &argv, NULL);
  gegl_init (&argc, &argv);
  g_test_add_func ("/gegl-api/vq-snap-reports", test_vq_reports);
  g_test_add_func ("/gegl-api/error-property", test_error_property);
  g_test_add_func ("/gegl-api/progress", test_progress);
  {
    int status = g_test_run ();
    gegl_exit ();
    return status;
  }
}
