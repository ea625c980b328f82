/* The GEGL operations through Debian's `gegl` program: chains and the XML
 * presets, chunk independence, agreement with the gegl-vae program, and bad
 * input.  `gegl` exits 0 even when an op fails, so outputs and stderr are
 * what is checked.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "png-io.h"
#include "test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct
{
  gchar *err;
} Gegl;

static void
gegl_clear (Gegl *g)
{
  g_free (g->err);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Gegl, gegl_clear)

static gchar *
kl_model (void)
{
  return test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
}

/* gegl ARGS… in DIR with our module on GEGL_PATH; EXTRA_ENV is NAME=VALUE pairs. */
static Gegl
run_gegl (const gchar *dir, const gchar *const *extra_env, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_auto (GStrv) env = g_get_environ ();
  g_autofree gchar *models = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree gchar *out = NULL;
  Gegl              g = { 0 };
  gint              status;
  va_list           args;
  const gchar      *a;

  g_ptr_array_add (argv, (gchar *) "gegl");
  va_start (args, extra_env);
  while ((a = va_arg (args, const gchar *)))
    g_ptr_array_add (argv, (gchar *) a);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  env = g_environ_setenv (env, "GEGL_PATH", GEGL_MODULE_DIR ":" GEGL_SYSTEM_PLUGINS, TRUE);
  models = g_build_filename (TEST_SOURCE_DIR, "..", "..", "shared", "models", NULL);
  env = g_environ_setenv (
      env, "GEGL_VAE_MODEL_PATH",
      g_getenv ("GEGL_VAE_TEST_MODELS") ? g_getenv ("GEGL_VAE_TEST_MODELS") : models, TRUE);
  for (gint i = 0; extra_env && extra_env[i]; i += 2)
    env = g_environ_setenv (env, extra_env[i], extra_env[i + 1], TRUE);
  g_spawn_sync (dir, (gchar **) argv->pdata, env, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &g.err,
                &status, &error);
  g_assert_no_error (error);
  g_test_message ("gegl stderr: %s", g.err);
  return g;
}

static gboolean
has_warning (const Gegl *g, const gchar *op, const gchar *cause)
{
  g_autofree gchar *needle = g_strdup_printf ("%s: %s", op, cause);
  return strstr (g->err, needle) != NULL;
}

static gchar *
photo (void)
{
  return g_build_filename (SKIMAGE_DATA_DIR, "chelsea.png", NULL);
}

static gboolean
need_taef2_and_photo (void)
{
  g_autofree gchar *models = test_models_dir ("taef2_decoder.pth");
  g_autofree gchar *p = photo ();

  if (models && !g_file_test (p, G_FILE_TEST_IS_REGULAR))
    g_test_skip ("python3-skimage's photographs are not installed");
  return models && g_file_test (p, G_FILE_TEST_IS_REGULAR);
}

static void
test_registered (void)
{
  static const gchar *ops[] = { "vae:encode",
                                "vae:decode",
                                "vae:latent-noise",
                                "vae:vq-snap",
                                "vae:diffusion-preview",
                                "vae:latent-save",
                                "vae:latent-load",
                                "vae:latent-preview",
                                "vae:apply-alpha",
                                "vae:codebook-usage",
                                "vae:latent-scale",
                                "vae:latent-transform",
                                "vae:latent-composite",
                                "vae:latent-blend",
                                "vae:inpaint-mask" };
  g_auto (Gegl) g = { 0 };
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) env = g_environ_setenv (g_get_environ (), "GEGL_PATH",
                                         GEGL_MODULE_DIR ":" GEGL_SYSTEM_PLUGINS, TRUE);
  g_autofree gchar *out = NULL;
  gchar            *argv[] = { (gchar *) "gegl", (gchar *) "--list-all", NULL };

  g_spawn_sync (NULL, argv, env, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &g.err, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    if (!strstr (out, ops[i]))
      g_error ("%s is not registered", ops[i]);
}

/* The same picture through `gegl` and through gegl-vae encode: the same
 * latent.  CASE is "kl-8" or "kl-16", a picture for the KL model as a PNG
 * of that depth, or one of skimage's pictures for TAEF2: 8-bit RGB, gray
 * and RGBA, and 16-bit RGB, each a format vae:encode reads as integers. */
static void
test_same_latents_as_cli (gconstpointer case_name)
{
  const gchar      *name = case_name;
  const gboolean    kl = g_str_has_prefix (name, "kl-");
  g_autofree gchar *image = kl ? test_data_path ("kl", "sdxl-ldm-ckpt", "image.npy", NULL)
                               : g_build_filename (SKIMAGE_DATA_DIR, name, NULL);
  g_autofree gchar *model = kl ? kl_model () : g_strdup ("taef2");
  g_autofree gchar *png = test_tmp_path ("same-input.png");
  g_autofree gchar *via_gegl = test_tmp_path ("same-gegl.npy"),
                   *via_cli = test_tmp_path ("same-cli.npy");
  g_autofree gchar *model_arg = NULL, *path_arg = NULL;
  g_autoptr (VaeTensor) a = NULL, b = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g = { 0 };
  gchar *argv[7];
  gint   status;

  if (!kl && !need_taef2_and_photo ())
    return;
  if (kl)
    {
      /* an odd-sized picture (53×37), read the same way by both */
      g_autoptr (VaeTensor) t = test_load_npy_image (image);
      g_assert_true (vae_png_write (png, t, atoi (name + 3), &error));
    }
  else
    {
      g_free (png);
      png = g_strdup (image);
    }
  argv[0] = (gchar *) GEGL_VAE_BIN, argv[1] = (gchar *) "encode", argv[2] = (gchar *) "--model";
  argv[3] = model, argv[4] = png, argv[5] = via_cli, argv[6] = NULL;
  {
    g_auto (GStrv) env =
        g_environ_setenv (g_get_environ (), "GEGL_VAE_MODEL_PATH",
                          g_getenv ("GEGL_VAE_TEST_MODELS") ? g_getenv ("GEGL_VAE_TEST_MODELS")
                                                            : TEST_SOURCE_DIR "/../presets/models",
                          TRUE);
    g_remove (via_cli);
    g_spawn_sync (NULL, argv, env, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL, &status, &error);
  }
  g_assert_no_error (error);
  g_assert_cmpint (status, ==, 0);
  b = test_load_npy_latent (via_cli);
  model_arg = g_strdup_printf ("model=%s", model);
  path_arg = g_strdup_printf ("path=%s", via_gegl);
  /* babl picks its conversion path at run time by timing candidates within
   * its tolerance, and a float path once moved a CI run's latent by 6.1e-6
   * (its exact reference path, BABL_TOLERANCE=0, by 2.6e-5 on TAEF2).
   * vae:encode reads 8- and 16-bit pixels as integers and divides as the
   * CLI does, so under either choice the engine sees the same floats and,
   * running the same kernels on them, gives the same latent to the bit. */
  for (gint reference = 0; reference < 2; reference++)
    {
      const gchar *const env[] = { "BABL_TOLERANCE", "0", NULL };
      gegl_clear (&g);
      g_remove (via_gegl); /* a run that writes nothing must not pass on the last one's file */
      g = run_gegl (NULL, reference ? env : NULL, png, "--", "vae:encode", model_arg,
                    "vae:latent-save", path_arg, NULL);
      g_clear_pointer (&a, vae_tensor_free);
      a = test_load_npy_latent (via_gegl);
      g_assert_cmpint (a->width, ==, b->width);
      g_test_message ("%s: max |gegl − cli| = %g", reference ? "babl's reference" : "babl's pick",
                      test_max_abs_error (a, b));
      g_assert_cmpfloat (test_max_abs_error (a, b), ==, 0.0);
    }
}

/* A format of the same model and type in another order (cairo-RGB24 is
 * R'G'B' u8 stored B'G'R'x) is converted by babl, not read as integers
 * with its channels swapped.  The bar: babl's float path moved TAEF2's
 * latent by up to 2.6e-5 (above); red and blue swapped move it by whole
 * units. */
static void
test_other_pixel_order (void)
{
  g_autofree gchar *png = photo ();
  g_autofree gchar *plain = test_tmp_path ("order-plain.npy"),
                   *cairo = test_tmp_path ("order-cairo.npy");
  g_autofree gchar *plain_arg = g_strdup_printf ("path=%s", plain),
                   *cairo_arg = g_strdup_printf ("path=%s", cairo);
  g_autoptr (VaeTensor) a = NULL, b = NULL;
  g_auto (Gegl) g1 = { 0 };
  g_auto (Gegl) g2 = { 0 };

  if (!need_taef2_and_photo ())
    return;
  g1 = run_gegl (NULL, NULL, png, "--", "vae:encode", "model=taef2", "vae:latent-save", plain_arg,
                 NULL);
  g2 = run_gegl (NULL, NULL, png, "--", "gegl:convert-format", "format=cairo-RGB24", "vae:encode",
                 "model=taef2", "vae:latent-save", cairo_arg, NULL);
  a = test_load_npy_latent (plain);
  b = test_load_npy_latent (cairo);
  g_test_message ("max |cairo-RGB24 − R'G'B' u8| = %g", test_max_abs_error (a, b));
  g_assert_cmpfloat (test_max_abs_error (a, b), <=, 1e-4);
}

/* Runs CHAIN (encode … latent-save) and a diffusion-preview with THREADS
 * and CHUNK pixels, and the chain with babl's exact conversions if
 * EXACT_CHAIN (see above): all must be identical.  The preview's PNG goes
 * through png-save's float → 16-bit conversion, which is babl's pick and
 * not ours, so that one is always exact. */
static void
run_threaded (const gchar *threads, const gchar *chunk, gboolean exact_chain, const gchar *tag,
              VaeTensor **latent, VaeTensor **image)
{
  g_autofree gchar *model = kl_model ();
  g_autofree gchar *input = test_data_path ("kl", "sd15-diffusers", "image.npy", NULL);
  g_autofree gchar *png = test_tmp_path ("chunk-in.png");
  g_autofree gchar *npy = g_strdup_printf ("%s-%s.npy", png, tag),
                   *out = g_strdup_printf ("%s-%s.png", png, tag);
  g_autofree gchar *model_arg = g_strdup_printf ("model=%s", model),
                   *path_arg = g_strdup_printf ("path=%s", npy);
  const gchar *exact[] = {
    "GEGL_THREADS", threads, "GEGL_CHUNK_SIZE", chunk, "BABL_TOLERANCE", "0", NULL
  };
  const gchar *picked[] = { "GEGL_THREADS", threads, "GEGL_CHUNK_SIZE", chunk, NULL };
  g_autoptr (VaeTensor) t = test_load_npy_image (input);
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g1 = { 0 };
  g_auto (Gegl) g2 = { 0 };

  g_assert_true (vae_png_write (png, t, 8, &error));
  g1 = run_gegl (NULL, exact_chain ? exact : picked, png, "--", "vae:encode", model_arg,
                 "mode=sample", "seed=3", "vae:latent-noise", "strength=0.4", "seed=9",
                 "vae:latent-noise", "strength=0.3", "rng=torch-cpu", "seed=4", "vae:vq-snap",
                 "k=5", "seed=2", "strength=0.7", "vae:latent-save", path_arg, NULL);
  g2 = run_gegl (NULL, exact, png, "-o", out, "--", "vae:diffusion-preview", model_arg,
                 "strength=0.5", "vq=true", "k=4", NULL);
  *latent = test_load_npy_latent (npy);
  *image = vae_png_read (out, &error);
  g_assert_no_error (error);
}

static void
test_chunk_independence (void)
{
  g_autoptr (VaeTensor) l1 = NULL, i1 = NULL, l2 = NULL, i2 = NULL;

  run_threaded ("1", "1000000", FALSE, "one", &l1, &i1);
  run_threaded ("2", "64", TRUE, "two", &l2, &i2);
  g_assert_cmpfloat (test_max_abs_error (l1, l2), ==, 0.0);
  g_assert_cmpfloat (test_max_abs_error (i1, i2), ==, 0.0);
  g_assert_cmpint (i1->width, ==, 56);
}

/* latent-noise in a graph equals vae_add_noise on the whole latent. */
static void
test_noise_matches_core (gconstpointer rng_name)
{
  g_autofree gchar *model = kl_model ();
  g_autofree gchar *latent_in = test_data_path ("kl", "sd3-old-names", "latent.npy", NULL);
  g_autofree gchar *out = test_tmp_path ("noised.npy");
  g_autofree gchar *load = g_strdup_printf ("path=%s", latent_in),
                   *save = g_strdup_printf ("path=%s", out);
  g_autofree gchar *rng = g_strdup_printf ("rng=%s", (const gchar *) rng_name);
  const gchar      *env[] = { "GEGL_THREADS", "2", "GEGL_CHUNK_SIZE", "7", NULL };
  g_autoptr (VaeTensor) want = test_load_npy_latent (latent_in);
  g_autoptr (VaeTensor) got = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g = { 0 };
  VaeRng r = g_strcmp0 (rng_name, "philox") == 0 ? VAE_RNG_PHILOX : VAE_RNG_TORCH_CPU;

  g = run_gegl (NULL, env, "--", "vae:latent-load", load, "vae:latent-noise", "schedule=cosine",
                "timestep=321", "form=eps", "seed=77", rng, "vae:latent-save", save, NULL);
  got = test_load_npy_latent (out);
  g_assert_true (vae_add_noise (want, VAE_SCHEDULE_COSINE, 321, VAE_FORM_EPS, r, 77, &error));
  g_assert_cmpfloat (test_max_abs_error (got, want), <=, 1e-6);
}

/* .latent through latent-save and latent-load: the raw latent is z/s + h. */
static void
test_latent_file_round_trip (void)
{
  g_autofree gchar *latent_in = test_data_path ("kl", "sd3-old-names", "latent.npy", NULL);
  g_autofree gchar *comfy = test_tmp_path ("sd3.latent"), *back = test_tmp_path ("back.npy");
  g_autofree gchar *load = g_strdup_printf ("path=%s", latent_in),
                   *save = g_strdup_printf ("path=%s", comfy);
  g_autofree gchar *load2 = g_strdup_printf ("path=%s", comfy),
                   *save2 = g_strdup_printf ("path=%s", back);
  g_autoptr (VaeTensor) z = test_load_npy_latent (latent_in);
  g_autoptr (VaeTensor) raw = NULL, again = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g1 = { 0 };
  g_auto (Gegl) g2 = { 0 };

  g1 = run_gegl (NULL, NULL, "--", "vae:latent-load", load, "vae:latent-save", save, "model=sd3",
                 NULL);
  raw = vae_latent_file_read (comfy, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < vae_tensor_n_elements (z); i++)
    g_assert_cmpfloat_with_epsilon (raw->data[i], z->data[i] / 1.5305 + 0.0609, 1e-5);
  g2 = run_gegl (NULL, NULL, "--", "vae:latent-load", load2, "model=sd3", "vae:latent-save", save2,
                 NULL);
  again = test_load_npy_latent (back);
  g_assert_cmpfloat (test_max_rel_error (again, z), <=, 1e-6);
}

/* ComfyUI's SD1.5 factors on a constant latent give a known colour. */
static void
test_latent_preview (void)
{
  g_autofree gchar *npy = test_tmp_path ("const.npy"), *png = test_tmp_path ("preview.png");
  g_autofree gchar *load = g_strdup_printf ("path=%s", npy);
  g_autoptr (VaeTensor) z = vae_tensor_new (4, 3, 5, NULL);
  g_autoptr (VaeTensor) rgb = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g = { 0 };

  for (gsize i = 0; i < 15; i++)
    z->data[i] = 1.0f; /* channel 0 = 1, others 0 */
  g_assert_true (vae_npy_write_latent (npy, z, NULL));
  g = run_gegl (NULL, NULL, "-o", png, "--", "vae:latent-load", load, "vae:latent-preview",
                "model=sd15", NULL);
  rgb = vae_png_read (png, &error);
  g_assert_no_error (error);
  g_assert_cmpint (rgb->width, ==, 5);
  /* (0.3512 + 1) / 2, (0.2297 + 1) / 2, (0.3227 + 1) / 2 */
  g_assert_cmpfloat_with_epsilon (rgb->data[0], 0.6756, 1.0 / 255);
  g_assert_cmpfloat_with_epsilon (rgb->data[15], 0.61485, 1.0 / 255);
  g_assert_cmpfloat_with_epsilon (rgb->data[30], 0.66135, 1.0 / 255);
}

/* The W×H rectangle of T at (X, Y). */
static VaeTensor *
window (const VaeTensor *t, gint x, gint y, gint w, gint h)
{
  VaeTensor *out = vae_tensor_new (t->channels, h, w, NULL);

  for (gint c = 0; c < t->channels; c++)
    for (gint r = 0; r < h; r++)
      memcpy (out->data + ((gsize) c * h + r) * w,
              t->data + ((gsize) c * t->height + y + r) * t->width + x, w * sizeof (gfloat));
  return out;
}

/* PICTURE through `gegl PICTURE -o … -- gegl:OP ARGS…` (GEGL's own
 * resampling, a reference for the latent-space graphs). */
static VaeTensor *
gegl_resampled (const gchar *picture, const gchar *op, const gchar *x, const gchar *y)
{
  g_autofree gchar *out = g_strdup_printf ("%s-%s.png", picture, op + 5);
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g = run_gegl (NULL, NULL, picture, "-o", out, "--", op, x, y, NULL);
  VaeTensor *t = vae_png_read (out, &error);

  g_assert_no_error (error);
  return t;
}

/* Each XML preset runs as its comment tells a `gegl` user: the placeholder
 * @INPUT@ (and the blend's @SECOND@) replaced by a picture, `gegl -x GRAPH
 * -o out.png`. */
static void
test_preset (gconstpointer name)
{
  g_autofree gchar *src = g_build_filename (TEST_SOURCE_DIR, "..", "presets", "graphs", name, NULL);
  g_autofree gchar *xml = test_tmp_path (name), *input = test_tmp_path ("input.png");
  g_autofree gchar *out = g_strdup_printf ("%s.png", xml), *p = photo (), *graph = NULL;
  g_autoptr (GString) text = NULL;
  g_autofree gchar *input2 = test_tmp_path ("input2.png");
  g_autofree gchar *p2 = g_build_filename (SKIMAGE_DATA_DIR, "coffee.png", NULL);
  g_autofree gchar *dir = g_path_get_dirname (xml);
  g_autofree gchar *photo_bytes = NULL;
  g_autoptr (VaeTensor) image = NULL, source = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g = { 0 };
  gsize len;

  if (!need_taef2_and_photo ())
    return;
  g_assert_true (g_file_get_contents (src, &graph, NULL, NULL));
  text = g_string_new (graph);
  g_assert_cmpuint (g_string_replace (text, "@INPUT@", "input.png", 0), >=, 1);
  g_assert_true (g_file_get_contents (p, &photo_bytes, &len, NULL));
  g_assert_true (g_file_set_contents (input, photo_bytes, (gssize) len, NULL));
  g_clear_pointer (&photo_bytes, g_free);
  g_assert_true (g_file_get_contents (p2, &photo_bytes, &len, NULL));
  g_assert_true (g_file_set_contents (input2, photo_bytes, (gssize) len, NULL));
  g_string_replace (text, "@SECOND@", "input2.png", 0);
  g = run_gegl (dir, NULL, "-x", text->str, "-o", out, NULL);
  g_assert_null (strstr (g.err, "gegl-vae-WARNING"));
  image = vae_png_read (out, &error);
  g_assert_no_error (error);
  source = vae_png_read (input, &error);
  if (g_str_has_prefix (name, "strength-sweep"))
    {
      g_assert_cmpint (image->width, ==, 1024);
      return;
    }
  if (g_str_has_prefix (name, "outpaint"))
    {
      /* a canvas half as large again, the picture in its middle as a round
       * trip gives it (25.7 dB inside a 32-pixel margin; the encoder sees
       * grey around it), noise around it (standard deviation 0.12; grey
       * would be 0) */
      const gint x = (image->width - source->width) / 2, y = (image->height - source->height) / 2;
      g_autoptr (VaeTensor) inner =
          window (image, x + 32, y + 32, source->width - 64, source->height - 64);
      g_autoptr (VaeTensor) want = window (source, 32, 32, source->width - 64, source->height - 64);
      g_autoptr (VaeTensor) band = window (image, 0, 0, image->width, y - 8);
      gdouble sum = 0, sq = 0;
      gsize   n = vae_tensor_n_elements (band);

      g_assert_cmpint (image->width, ==, (gint) ceil (source->width * 1.5));
      g_assert_cmpint (image->height, ==, (gint) ceil (source->height * 1.5));
      for (gsize i = 0; i < n; i++)
        sum += band->data[i], sq += band->data[i] * band->data[i];
      g_test_message ("outpaint: inside %.1f dB, around σ %.3f", test_psnr (inner, want),
                      sqrt (sq / n - (sum / n) * (sum / n)));
      g_assert_cmpfloat (test_psnr (inner, want), >, 22.0);
      g_assert_cmpfloat (sqrt (sq / n - (sum / n) * (sum / n)), >, 0.06);
      return;
    }
  if (g_str_has_prefix (name, "latent-upscale"))
    {
      /* TAEF2's latent (1/16) scaled by 1.5, Python's rounding; like GEGL's
       * own 1.5× bilinear scale of the picture (21.6 dB) */
      const gint w = 16 * (gint) nearbyint ((source->width + 15) / 16 * 1.5);
      const gint h = 16 * (gint) nearbyint ((source->height + 15) / 16 * 1.5);
      g_autoptr (VaeTensor) ref = gegl_resampled (input, "gegl:scale-ratio", "x=1.5", "y=1.5");
      const gint cw = MIN (w, ref->width), ch = MIN (h, ref->height);
      g_autoptr (VaeTensor) a = window (image, 0, 0, cw, ch);
      g_autoptr (VaeTensor) b = window (ref, 0, 0, cw, ch);

      g_assert_cmpint (image->width, ==, w);
      g_assert_cmpint (image->height, ==, h);
      g_test_message ("latent upscale: %.1f dB from GEGL's bilinear 1.5×", test_psnr (a, b));
      g_assert_cmpfloat (test_psnr (a, b), >, 19.0);
      return;
    }
  if (g_str_has_prefix (name, "latent-blend"))
    {
      /* half way between the photos: nearer each (15.1, 16.6 dB) than they
       * are to each other (10.6 dB) */
      g_autoptr (VaeTensor) a = gegl_resampled (input, "gegl:scale-size", "x=512", "y=384");
      g_autoptr (VaeTensor) b = gegl_resampled (input2, "gegl:scale-size", "x=512", "y=384");

      g_assert_cmpint (image->width, ==, 512);
      g_assert_cmpint (image->height, ==, 384);
      g_test_message ("blend: %.1f dB from one photo, %.1f from the other, %.1f between them",
                      test_psnr (image, a), test_psnr (image, b), test_psnr (a, b));
      g_assert_cmpfloat (test_psnr (image, a), >, test_psnr (a, b) + 3.0);
      g_assert_cmpfloat (test_psnr (image, b), >, test_psnr (a, b) + 3.0);
      return;
    }
  g_assert_cmpint (image->width, ==, source->width);
  g_assert_cmpint (image->height, ==, source->height);
  if (g_str_has_prefix (name, "round-trip"))
    {
      /* TAEF2 reconstructs chelsea at about 32.7 dB: far from noise, not identical */
      gdouble mse = 0;
      for (gsize i = 0; i < vae_tensor_n_elements (image); i++)
        mse += (image->data[i] - source->data[i]) * (image->data[i] - source->data[i]);
      mse /= vae_tensor_n_elements (image);
      g_test_message ("round trip PSNR %.2f dB", 10 * log10 (1 / mse));
      g_assert_cmpfloat (10 * log10 (1 / mse), >, 28.0);
    }
}

/* vae:inpaint-preview: a mask on aux (the inpainting preview, what
 * GIMP's selection becomes): far from the mask the picture is the plain
 * round trip (the decoder spreads the noise a few latent pixels: measured
 * 0.0058 on average 40 pixels away, bar 0.01), inside it is noise (0.118,
 * bar 0.05). */
static void
test_preview_mask (void)
{
  g_autofree gchar *p = photo (), *mask = test_tmp_path ("mask.png");
  g_autofree gchar *masked = test_tmp_path ("masked.png"), *plain = test_tmp_path ("plain.png");
  g_autofree gchar *aux = NULL;
  g_autoptr (VaeTensor) m = NULL, a = NULL, b = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g1 = { 0 };
  g_auto (Gegl) g2 = { 0 };
  gdouble far = 0, inside = 0;
  gsize   n_far = 0, n_inside = 0;

  if (!need_taef2_and_photo ())
    return;
  a = vae_png_read (p, &error);
  g_assert_no_error (error);
  m = vae_tensor_new (3, a->height, a->width, NULL);
  for (gint c = 0; c < 3; c++)
    for (gint y = 100; y < 200; y++)
      for (gint x = 150; x < 300; x++)
        m->data[((gsize) c * a->height + y) * a->width + x] = 1.0f;
  g_assert_true (vae_png_write (mask, m, 8, &error));
  aux = g_strdup_printf ("path=%s", mask);
  g1 = run_gegl (NULL, NULL, p, "-o", masked, "--", "vae:inpaint-preview", "strength=0.8", "seed=1",
                 "aux=[", "gegl:load", aux, "]", NULL);
  g2 = run_gegl (NULL, NULL, p, "-o", plain, "--", "vae:diffusion-preview", "strength=0", NULL);
  g_assert_null (strstr (g1.err, "gegl-vae-WARNING"));
  g_clear_pointer (&a, vae_tensor_free);
  a = vae_png_read (masked, &error);
  g_assert_no_error (error);
  b = vae_png_read (plain, &error);
  g_assert_no_error (error);
  for (gint c = 0; c < 3; c++)
    for (gint y = 0; y < a->height; y++)
      for (gint x = 0; x < a->width; x++)
        {
          const gsize   i = ((gsize) c * a->height + y) * a->width + x;
          const gdouble d = fabs (a->data[i] - b->data[i]);
          if (y >= 100 && y < 200 && x >= 150 && x < 300)
            inside += d, n_inside++;
          else if (y < 60 || y >= 240 || x < 110 || x >= 340)
            far += d, n_far++;
        }
  g_test_message ("mean |masked − round trip|: %.4f far from the mask, %.4f inside", far / n_far,
                  inside / n_inside);
  g_assert_cmpfloat (far / n_far, <, 0.01);
  g_assert_cmpfloat (inside / n_inside, >, 0.05);
}

/* A family's full architecture (seeded weights, "qwen-image", "wan22",
 * "dc-ae" or "hunyuan-image") through vae:encode and vae:decode with the
 * model file, against diffusers' float64 goldens in tests/data/FAMILY/full:
 * the latent at the house bar, the decoded image (16-bit PNG) within the bar
 * plus half a 16-bit step; in fp32 (the ops' "auto" is bf16 on AMX CPUs). */
static void
test_family_ops (gconstpointer family)
{
  g_autofree gchar *model = test_tmp_path ("synth.safetensors");
  g_autofree gchar *image = test_data_path (family, "full", "image.npy", NULL);
  g_autofree gchar *d = test_data_path (family, "full", "decode-latent.npy", NULL);
  g_autofree gchar *want_latent = test_data_path (family, "full", "latent.npy", NULL);
  g_autofree gchar *want_decoded = test_data_path (family, "full", "decoded.npy", NULL);
  g_autofree gchar *png = test_tmp_path ("family-in.png"), *npy = test_tmp_path ("latent.npy");
  g_autofree gchar *out = test_tmp_path ("family-out.png");
  g_autofree gchar *model_arg = g_strdup_printf ("model=%s", model);
  g_autofree gchar *save = g_strdup_printf ("path=%s", npy), *load = g_strdup_printf ("path=%s", d);
  g_autofree gchar *png_save = g_strdup_printf ("path=%s", out);
  g_autoptr (VaeTensor) t = test_load_npy_image (image);
  g_autoptr (VaeTensor) latent = NULL, decoded = NULL, want = NULL, raw = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Gegl) g1 = { 0 };
  g_auto (Gegl) g2 = { 0 };

  g_assert_true (vae_synth_family (family, 1, model, &error));
  g_assert_true (vae_png_write (png, t, 8, &error)); /* 8-bit values: exact */
  g1 = run_gegl (NULL, NULL, png, "--", "vae:encode", model_arg, "precision=fp32",
                 "vae:latent-save", save, NULL);
  latent = test_load_npy_latent (npy);
  want = test_load_npy_latent (want_latent);
  test_assert_close (latent, want, 1e-4, "the latent through vae:encode");
  g2 = run_gegl (NULL, NULL, "--", "vae:latent-load", load, "vae:decode", model_arg,
                 "precision=fp32", "gegl:png-save", png_save, "bitdepth=16", NULL);
  decoded = vae_png_read (out, &error);
  g_assert_no_error (error);
  raw = test_load_npy_latent (want_decoded);
  g_clear_pointer (&want, vae_tensor_free);
  want = vae_tensor_new (3, raw->height, raw->width, NULL);
  for (gsize i = 0; i < vae_tensor_n_elements (want); i++)
    want->data[i] = CLAMP ((raw->data[i] + 1.0f) / 2.0f, 0.0f, 1.0f);
  g_test_message ("%s decode through vae:decode: max |ours − diffusers| = %.3g",
                  (const gchar *) family, test_max_abs_error (decoded, want));
  g_assert_cmpfloat (test_max_abs_error (decoded, want), <=, 1e-4 + 0.5 / 65535);
}

static void
test_bad_input (void)
{
  g_autofree gchar *model = kl_model ();
  g_autofree gchar *input = test_data_path ("kl", "sd3-old-names", "latent.npy", NULL);
  g_autofree gchar *out = test_tmp_path ("bad.png"), *npy = test_tmp_path ("bad.npy");
  g_autofree gchar *load = g_strdup_printf ("path=%s", input),
                   *model_arg = g_strdup_printf ("model=%s", model);
  g_autofree gchar *save = g_strdup_printf ("path=%s", npy);
  g_autofree gchar *image = test_data_path ("kl", "sd15-diffusers", "image.npy", NULL);
  g_autofree gchar *png = test_tmp_path ("bad-in.png");
  g_autoptr (VaeTensor) t = test_load_npy_image (image);
  g_auto (Gegl) g1 = { 0 };
  g_auto (Gegl) g2 = { 0 };
  g_auto (Gegl) g3 = { 0 };
  g_auto (Gegl) g4 = { 0 };
  g_auto (Gegl) g5 = { 0 };
  g_auto (Gegl) g6 = { 0 };

  g_assert_true (vae_png_write (png, t, 8, NULL));
  g1 = run_gegl (NULL, NULL, png, "-o", out, "--", "vae:diffusion-preview",
                 "model=/no/such.safetensors", NULL);
  /* the filter passes the picture through (GIMP must not get a blank layer) and says why */
  g_assert_true (has_warning (&g1, "vae:diffusion-preview", "model '/no/such.safetensors'"));
  {
    g_autoptr (VaeTensor) through = vae_png_read (out, NULL);
    g_autoptr (VaeTensor) source = vae_png_read (png, NULL);
    g_assert_nonnull (through);
    g_assert_cmpmem (through->data, vae_tensor_n_elements (through) * sizeof (gfloat), source->data,
                     vae_tensor_n_elements (source) * sizeof (gfloat));
  }
  g2 = run_gegl (NULL, NULL, "-o", out, "--", "vae:latent-load", load, "vae:decode", model_arg,
                 NULL);
  g_assert_true (has_warning (&g2, "vae:decode", "the latent has 16 channels but model"));
  g_assert_true (strstr (g2.err, "takes 4") != NULL);
  /* an empty model is the default one, and the warning names it */
  g6 =
      run_gegl (NULL, NULL, "-o", out, "--", "vae:latent-load", load, "vae:decode", "model=", NULL);
  g_assert_true (
      has_warning (&g6, "vae:decode", "the latent has 16 channels but model taef2 takes"));
  g3 = run_gegl (NULL, NULL, png, "-o", out, "--", "vae:decode", model_arg, NULL);
  g_assert_true (has_warning (&g3, "vae:decode", "the input is R'G'B'"));
  g4 = run_gegl (NULL, NULL, "--", "gegl:rectangle", "width=0", "height=0", "vae:encode", model_arg,
                 "vae:latent-save", save, NULL);
  g_assert_true (has_warning (&g4, "vae:encode", "the input image is empty"));
  g_assert_false (g_file_test (npy, G_FILE_TEST_EXISTS));
  g5 = run_gegl (NULL, NULL, png, "--", "vae:encode", model_arg, "vae:vq-snap",
                 "codebook=/no/codebook.safetensors", "vae:latent-save", save, NULL);
  g_assert_true (
      has_warning (&g5, "vae:vq-snap", "cannot read /no/codebook.safetensors: No such file"));
  g_assert_false (g_file_test (npy, G_FILE_TEST_EXISTS) &&
                  test_load_npy_latent (npy)->data[0] != 0.0f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gegl/registered", test_registered);
  {
    static const gchar *cases[] = { "kl-8",        "kl-16",
                                    "chelsea.png", "chessboard_GRAY.png",
                                    "horse.png",   "chessboard_RGB.png" };
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autofree gchar *path = g_strdup_printf ("/gegl/same-latents-as-cli/%s", cases[i]);
        g_test_add_data_func (path, cases[i], test_same_latents_as_cli);
      }
  }
  g_test_add_func ("/gegl/other-pixel-order", test_other_pixel_order);
  g_test_add_func ("/gegl/chunk-independence", test_chunk_independence);
  g_test_add_data_func ("/gegl/noise-matches-core/philox", "philox", test_noise_matches_core);
  g_test_add_data_func ("/gegl/noise-matches-core/torch-cpu", "torch-cpu", test_noise_matches_core);
  g_test_add_func ("/gegl/latent-file-round-trip", test_latent_file_round_trip);
  g_test_add_func ("/gegl/latent-preview", test_latent_preview);
  g_test_add_data_func ("/gegl/preset/diffusion-preview", "diffusion-preview.xml", test_preset);
  g_test_add_data_func ("/gegl/preset/round-trip", "round-trip.xml", test_preset);
  g_test_add_data_func ("/gegl/preset/latent-posterize", "latent-posterize.xml", test_preset);
  g_test_add_data_func ("/gegl/preset/strength-sweep", "strength-sweep.xml", test_preset);
  g_test_add_data_func ("/gegl/preset/codebook-usage", "codebook-usage.xml", test_preset);
  g_test_add_data_func ("/gegl/preset/outpaint-preview", "outpaint-preview.xml", test_preset);
  g_test_add_data_func ("/gegl/preset/latent-upscale-preview", "latent-upscale-preview.xml",
                        test_preset);
  g_test_add_data_func ("/gegl/preset/latent-blend", "latent-blend.xml", test_preset);
  g_test_add_func ("/gegl/diffusion-preview/mask", test_preview_mask);
  g_test_add_data_func ("/gegl/family/qwen-image", "qwen-image", test_family_ops);
  g_test_add_data_func ("/gegl/family/dc-ae", "dc-ae", test_family_ops);
  g_test_add_data_func ("/gegl/family/hunyuan-image", "hunyuan-image", test_family_ops);
  g_test_add_data_func ("/gegl/family/wan22", "wan22", test_family_ops);
  g_test_add_func ("/gegl/bad-input", test_bad_input);
  return g_test_run ();
}
