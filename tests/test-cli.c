/* The gegl-vae program: exit status, one-line errors, file formats.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "png-io.h"
#include "test-util.h"

#include <math.h>
#include <string.h>

typedef struct
{
  gint   status;
  gchar *out;
  gchar *err;
} Run;

static void
run_clear (Run *r)
{
  g_free (r->out);
  g_free (r->err);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

/* Runs gegl-vae with ARGS (NULL-terminated) and GEGL_VAE_MODEL_PATH=MODELS. */
static Run
run (const gchar *models, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_auto (GStrv) env = g_get_environ ();
  g_autoptr (GError) error = NULL;
  Run          r = { 0 };
  va_list      args;
  const gchar *a;

  g_ptr_array_add (argv, (gchar *) GEGL_VAE_BIN);
  va_start (args, models);
  while ((a = va_arg (args, const gchar *)))
    g_ptr_array_add (argv, (gchar *) a);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  env = g_environ_setenv (env, "GEGL_VAE_MODEL_PATH", models ? models : "", TRUE);
  g_spawn_sync (NULL, (gchar **) argv->pdata, env, G_SPAWN_DEFAULT, NULL, NULL, &r.out, &r.err,
                &r.status, &error);
  g_assert_no_error (error);
  g_test_message ("stderr: %s", r.err);
  return r;
}

static gboolean
exited_ok (const Run *r)
{
  return g_spawn_check_wait_status (r->status, NULL);
}

/* A failure: non-zero exit, exactly one line on stderr holding NEEDLE. */
static void
assert_failed (const Run *r, const gchar *needle)
{
  g_assert_false (exited_ok (r));
  g_assert_cmpint (strlen (r->err), >, 0);
  g_assert_nonnull (strchr (r->err, '\n'));
  g_assert_cmpstr (strchr (r->err, '\n') + 1, ==, "");
  if (!strstr (r->err, needle))
    g_error ("stderr '%s' does not mention '%s'", r->err, needle);
}

static gchar *
kl_model (void)
{
  return test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
}

static void
test_info_kl (void)
{
  g_autofree gchar *kl = kl_model ();
  g_auto (Run) r = run (NULL, "info", kl, NULL);

  g_assert_true (exited_ok (&r));
  g_assert_nonnull (strstr (r.out, "family:     sd15"));
  g_assert_nonnull (strstr (r.out, "scale:      0.18215"));
  g_assert_nonnull (strstr (r.out, "4 channels at 1/8"));
}

static void
test_info_taef2 (void)
{
  g_autofree gchar *models = test_models_dir ("taef2_encoder.pth");
  g_auto (Run) r = { 0 };

  if (!models)
    return;
  r = run (models, "info", "taef2", NULL);
  g_assert_true (exited_ok (&r));
  g_assert_nonnull (strstr (r.out, "128 channels at 1/16"));
  g_assert_nonnull (strstr (r.out, "parameters: 2677027"));
  g_assert_nonnull (strstr (r.out, "dtypes:     F16"));
}

/* A VQ-VAE through the program: info names its codebook; encode writes the
 * pre-quantisation latent; decode snaps it to the codebook unless
 * --force-not-quantize; preview runs. */
static void
test_vq_model (void)
{
  g_autofree gchar *model = test_data_path ("vq", "vqvae-seed", "vqvae_seed.pth", NULL);
  g_autofree gchar *image = test_data_path ("vq", "vqvae-seed", "image.npy", NULL); /* 29×37 */
  g_autofree gchar *npy = test_tmp_path ("vq.npy"), *a_path = test_tmp_path ("vq-a.npy"),
                   *b_path = test_tmp_path ("vq-b.npy"), *c_path = test_tmp_path ("vq-c.png");
  g_autoptr (VaeTensor) z = NULL, a = NULL, b = NULL;
  g_auto (Run) info = run (NULL, "info", model, NULL);
  g_auto (Run) enc = run (NULL, "encode", "-m", model, image, npy, NULL);
  g_auto (Run) dec = run (NULL, "decode", "-m", model, npy, a_path, NULL);
  g_auto (Run) raw = run (NULL, "decode", "-m", model, "--force-not-quantize", npy, b_path, NULL);
  g_auto (Run) preview =
      run (NULL, "preview", "-m", model, "--strength", "0.3", image, c_path, NULL);

  g_assert_true (exited_ok (&info));
  g_assert_nonnull (strstr (info.out, "codebook:   64 entries of 8 channels"));
  g_assert_nonnull (strstr (info.out, "family:     vqvae"));
  g_assert_true (exited_ok (&enc) && exited_ok (&dec) && exited_ok (&raw) && exited_ok (&preview));
  z = test_load_npy_latent (npy);
  g_assert_cmpint (z->channels, ==, 8);
  g_assert_cmpint (z->width, ==, 8);
  g_assert_cmpint (z->height, ==, 10);
  a = test_load_npy_image (a_path);
  b = test_load_npy_image (b_path);
  g_assert_cmpint (a->width, ==, 32);
  g_assert_cmpfloat (test_max_abs_error (a, b), >, 1e-3);
  g_assert_true (g_file_test (c_path, G_FILE_TEST_IS_REGULAR));
}

/* encode → .npy and .latent, decode both back; odd sizes are padded. */
static void
test_round_trip_formats (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *image = test_data_path ("kl", "sdxl-ldm-ckpt", "image.npy", NULL); /* 53×37 */
  g_autofree gchar *npy = test_tmp_path ("z.npy"), *lat = test_tmp_path ("z.latent");
  g_autofree gchar *png = test_tmp_path ("out.png"), *png2 = test_tmp_path ("out2.png");
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) z = NULL, raw = NULL, a = NULL, b = NULL;
  g_auto (Run) r1 = { 0 };
  g_auto (Run) r2 = { 0 };
  g_auto (Run) r3 = { 0 };
  g_auto (Run) r4 = { 0 };

  r1 = run (NULL, "encode", "--model", kl, image, npy, NULL);
  r2 = run (NULL, "encode", "-m", kl, image, lat, NULL);
  g_assert_true (exited_ok (&r1) && exited_ok (&r2));
  z = test_load_npy_latent (npy);
  g_assert_cmpint (z->channels, ==, 4);
  g_assert_cmpint (z->width, ==, 7);
  g_assert_cmpint (z->height, ==, 5);
  /* .latent holds the raw latent z = x / 0.18215 */
  raw = vae_latent_file_read (lat, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < vae_tensor_n_elements (z); i++)
    g_assert_cmpfloat_with_epsilon (raw->data[i], z->data[i] / 0.18215,
                                    1e-5 * (1 + fabsf (raw->data[i])));
  r3 = run (NULL, "decode", "--model", kl, npy, png, NULL);
  r4 = run (NULL, "decode", "--model", kl, lat, png2, NULL);
  g_assert_true (exited_ok (&r3) && exited_ok (&r4));
  a = vae_png_read (png, &error);
  b = vae_png_read (png2, &error);
  g_assert_no_error (error);
  g_assert_cmpint (a->width, ==, 56);
  g_assert_cmpint (a->height, ==, 40);
  g_assert_cmpfloat (test_max_abs_error (a, b), <=, 1.0 / 255);
}

/* Sampling is seeded: same seed, same latent; another seed, another. */
static void
test_sample_seed (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *image = test_data_path ("kl", "sd15-diffusers", "image.npy", NULL);
  g_autofree gchar *a = test_tmp_path ("s1.npy"), *b = test_tmp_path ("s2.npy"),
                   *c = test_tmp_path ("s3.npy");
  g_autoptr (VaeTensor) ta = NULL, tb = NULL, tc = NULL;
  g_auto (Run) r1 = { 0 };
  g_auto (Run) r2 = { 0 };
  g_auto (Run) r3 = { 0 };

  r1 = run (NULL, "encode", "-m", kl, "--mode", "sample", "--seed", "3", image, a, NULL);
  r2 = run (NULL, "encode", "-m", kl, "--mode", "sample", "--seed", "3", image, b, NULL);
  r3 = run (NULL, "encode", "-m", kl, "--mode", "sample", "--seed", "4", image, c, NULL);
  g_assert_true (exited_ok (&r1) && exited_ok (&r2) && exited_ok (&r3));
  ta = test_load_npy_latent (a);
  tb = test_load_npy_latent (b);
  tc = test_load_npy_latent (c);
  g_assert_cmpfloat (test_max_abs_error (ta, tb), ==, 0.0);
  g_assert_cmpfloat (test_max_abs_error (ta, tc), >, 0.0);
}

static void
test_errors (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *image = test_data_path ("kl", "sd15-diffusers", "image.npy", NULL);
  g_autofree gchar *latent16 = test_data_path ("kl", "sd3-old-names", "latent.npy", NULL);
  g_autofree gchar *out = test_tmp_path ("never.npy");
  g_autofree gchar *garbage = test_write_tmp ("garbage.png", "not a png at all", 16);
  g_autofree gchar *nan_npy = test_tmp_path ("nan.npy");
  g_autoptr (VaeTensor) nan_latent = vae_tensor_new (4, 2, 2, NULL);
  g_auto (Run) r1 = { 0 };
  g_auto (Run) r2 = { 0 };
  g_auto (Run) r3 = { 0 };
  g_auto (Run) r4 = { 0 };
  g_auto (Run) r5 = { 0 };
  g_auto (Run) r6 = { 0 };
  g_auto (Run) r7 = { 0 };

  r1 = run (NULL, "encode", "-m", "/no/such/model.safetensors", image, out, NULL);
  assert_failed (&r1, "model '/no/such/model.safetensors'");
  r2 = run (NULL, "decode", "-m", kl, latent16, out, NULL);
  assert_failed (&r2, "the latent has 16 channels but model sd15");
  r3 = run (NULL, "encode", "-m", kl, garbage, out, NULL);
  assert_failed (&r3, "is not a PNG file");
  nan_latent->data[5] = NAN;
  g_assert_true (vae_npy_write_latent (nan_npy, nan_latent, NULL));
  r4 = run (NULL, "decode", "-m", kl, nan_npy, out, NULL);
  assert_failed (&r4, "non-finite");
  r5 = run (NULL, "encode", "-m", kl, "--mode", "median", image, out, NULL);
  assert_failed (&r5, "--mode must be mean or sample");
  r6 = run (NULL, "encode", "-m", kl, image, NULL);
  assert_failed (&r6, "usage");
  r7 = run (NULL, "frobnicate", NULL);
  g_assert_false (exited_ok (&r7));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/info/kl", test_info_kl);
  g_test_add_func ("/cli/info/taef2", test_info_taef2);
  g_test_add_func ("/cli/round-trip-formats", test_round_trip_formats);
  g_test_add_func ("/cli/vq-model", test_vq_model);
  g_test_add_func ("/cli/sample-seed", test_sample_seed);
  g_test_add_func ("/cli/errors", test_errors);
  return g_test_run ();
}
