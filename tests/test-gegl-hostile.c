/* The operations given what issue 18 found them unprepared for: models whose
 * channels do not fit images (they read past a buffer, or crashed the host
 * through a NULL error), NaN properties (GObject only warned and kept the
 * old value) and a full disk under vae:latent-save.  Each ends in the op's
 * `error` property, the host program carrying on.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <gegl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

static gchar *
kl_model (void)
{
  return test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
}

/* A 32×24 picture as a GEGL buffer. */
static GeglBuffer *
picture (void)
{
  GeglRectangle rect = { 0, 0, 32, 24 };
  GeglBuffer   *buffer = gegl_buffer_new (&rect, babl_format ("R'G'B'A float"));
  gfloat       *pixels = g_new (gfloat, 32 * 24 * 4);

  for (gint i = 0; i < 32 * 24 * 4; i++)
    pixels[i] = (gfloat) ((i * 37) % 100) / 100.0f;
  gegl_buffer_set (buffer, &rect, 0, babl_format ("R'G'B'A float"), pixels, GEGL_AUTO_ROWSTRIDE);
  g_free (pixels);
  return buffer;
}

/* Runs picture → vae:encode with ENCODER (none when NULL) → OPERATION, its
 * properties set by SETUP → sink; returns the op's error property and the
 * output's width. */
typedef void (*Setup) (GeglNode *op, gpointer data);

static gchar *
run_graph (const gchar *encoder, const gchar *operation, Setup setup, gpointer data, gint *width)
{
  GeglBuffer *input = picture (), *output = NULL;
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *src =
      gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
  GeglNode *op = gegl_node_new_child (graph, "operation", operation, NULL);
  GeglNode *sink =
      gegl_node_new_child (graph, "operation", "gegl:buffer-sink", "buffer", &output, NULL);
  gchar *error = NULL;

  setup (op, data);
  if (encoder)
    gegl_node_link_many (
        src, gegl_node_new_child (graph, "operation", "vae:encode", "model", encoder, NULL), op,
        sink, NULL);
  else
    gegl_node_link_many (src, op, sink, NULL);
  gegl_node_process (sink);
  gegl_node_get (op, "error", &error, NULL);
  *width = output ? gegl_buffer_get_extent (output)->width : 0;
  g_clear_object (&output);
  g_object_unref (graph);
  g_object_unref (input);
  return error;
}

static void
set_model (GeglNode *op, gpointer model)
{
  gegl_node_set (op, "model", model, NULL);
}

/* A decoder giving 1 channel made vae:decode read past the end of its
 * image; an encoder taking 4 returned NULL without an error, which
 * vae:encode dereferenced, killing gegl or GIMP.  And each op builds only
 * its own half: with the other one malformed it runs (a load of both
 * failed). */
static void
test_bad_channels (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *one = test_kl_with_channels ("decoder.conv_out.", 0, 1);
  g_autofree gchar *four = test_kl_with_channels ("encoder.conv_in.weight", 1, 4);
  g_autofree gchar *decode_error = NULL, *encode_error = NULL;
  gint              width;

  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING,
                         "vae:decode: *'decoder.conv_out' gives 1 channels*");
  g_test_expect_message ("GEGL", G_LOG_LEVEL_WARNING, "*0px rectangle*");
  decode_error = run_graph (kl, "vae:decode", set_model, one, &width);
  g_test_assert_expected_messages ();
  g_assert_nonnull (strstr (decode_error, "an RGB decoder gives 3"));
  g_assert_cmpint (width, ==, 0);

  g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING,
                         "vae:encode: *'encoder.conv_in' takes 4 channels*");
  g_test_expect_message ("GEGL", G_LOG_LEVEL_WARNING, "*0px rectangle*");
  encode_error = run_graph (NULL, "vae:encode", set_model, four, &width);
  g_test_assert_expected_messages ();
  g_assert_nonnull (strstr (encode_error, "an RGB encoder takes 3"));
  g_assert_cmpint (width, ==, 0);

  g_free (encode_error);
  encode_error = run_graph (NULL, "vae:encode", set_model, one, &width);
  g_assert_cmpstr (encode_error, ==, "");
  g_assert_cmpint (width, ==, 4); /* 32 pixels, a factor of 8 */
  g_free (decode_error);
  decode_error = run_graph (kl, "vae:decode", set_model, four, &width);
  g_assert_cmpstr (decode_error, ==, "");
  g_assert_cmpint (width, ==, 32);
}

static void
set_nan_strength (GeglNode *op, gpointer data)
{
  gegl_node_set (op, "strength", NAN, NULL);
}

/* "strength=nan": GObject warned, kept the old strength and the op ran
 * with it, its error empty.  Now the op says so and outputs nothing. */
static void
test_nan_properties (void)
{
  g_autofree gchar *kl = kl_model ();
  const gchar      *ops[] = { "vae:latent-noise", "vae:vq-snap" };

  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    {
      g_autofree gchar *pattern =
          g_strdup_printf ("%s: property 'strength' is not a number*", ops[i]);
      g_autofree gchar *error = NULL;
      gint              width;
      g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING, pattern);
      g_test_expect_message ("GEGL", G_LOG_LEVEL_WARNING, "*0px rectangle*");
      error = run_graph (kl, ops[i], set_nan_strength, NULL, &width);
      g_test_assert_expected_messages ();
      g_assert_nonnull (strstr (error, "property 'strength' is not a number (NaN)"));
      g_assert_cmpint (width, ==, 0);
    }
  /* the filter says it too, at once, in GEGL's domain (which GIMP shows) */
  {
    GeglNode *graph = gegl_node_new ();
    GeglNode *preview =
        gegl_node_new_child (graph, "operation", "vae:diffusion-preview", "model", kl, NULL);
    g_autofree gchar *error = NULL;
    g_test_expect_message ("GEGL", G_LOG_LEVEL_MESSAGE,
                           "vae:diffusion-preview: property 'vq-strength' is not a number*");
    gegl_node_set (preview, "vq-strength", NAN, NULL);
    g_test_assert_expected_messages ();
    gegl_node_get (preview, "error", &error, NULL);
    g_assert_nonnull (strstr (error, "'vq-strength' is not a number"));
    g_object_unref (graph);
  }
}

static void
set_path (GeglNode *op, gpointer path)
{
  gegl_node_set (op, "path", path, "model", "sd15", NULL);
}

/* vae:latent-save writing over an old file on a full disk (files may not
 * grow past 100 bytes): the old file stays, no temporary is left, and the
 * error gives the system's reason. */
static void
test_latent_save_full_disk (void)
{
  if (g_test_subprocess ())
    {
      g_autofree gchar *kl = kl_model ();
      const gchar      *names[] = { "old.npy", "old.latent" };
      struct rlimit     cap = { 100, 100 };

      signal (SIGXFSZ, SIG_IGN);
      for (guint i = 0; i < G_N_ELEMENTS (names); i++)
        {
          g_autofree gchar *path = test_tmp_path (names[i]);
          g_autofree gchar *dir = g_path_get_dirname (path);
          g_autofree gchar *kept = NULL, *error = NULL;
          g_autoptr (GDir) d = NULL;
          const gchar *name;
          GeglBuffer  *input = picture ();
          GeglNode    *graph = gegl_node_new ();
          GeglNode    *src =
              gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", input, NULL);
          GeglNode *enc = gegl_node_new_child (graph, "operation", "vae:encode", "model", kl, NULL);
          GeglNode *save = gegl_node_new_child (graph, "operation", "vae:latent-save", NULL);

          g_assert_true (g_file_set_contents (path, "OLD", 3, NULL));
          g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &cap), ==, 0);
          set_path (save, path);
          gegl_node_link_many (src, enc, save, NULL);
          g_test_expect_message ("gegl-vae", G_LOG_LEVEL_WARNING,
                                 "vae:latent-save: cannot write *: File too large");
          gegl_node_process (save);
          g_test_assert_expected_messages ();
          gegl_node_get (save, "error", &error, NULL);
          g_assert_nonnull (strstr (error, "File too large"));
          g_assert_true (g_file_get_contents (path, &kept, NULL, NULL));
          g_assert_cmpstr (kept, ==, "OLD");
          d = g_dir_open (dir, 0, NULL);
          while ((name = g_dir_read_name (d)))
            g_assert_true (name[0] != '.');
          g_object_unref (graph);
          g_object_unref (input);
        }
      return;
    }
  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_setenv ("GEGL_PATH", GEGL_MODULE_DIR ":" GEGL_SYSTEM_PLUGINS, TRUE);
  g_test_init (&argc, &argv, NULL);
  gegl_init (&argc, &argv);
  g_test_add_func ("/gegl-hostile/bad-channel-models", test_bad_channels);
  g_test_add_func ("/gegl-hostile/nan-properties", test_nan_properties);
  g_test_add_func ("/gegl-hostile/latent-save-full-disk", test_latent_save_full_disk);
  {
    int status = g_test_run ();
    gegl_exit ();
    return status;
  }
}
