/* The gegl-vae program: exit status, one-line errors, file formats.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "png-io.h"
#include "test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>

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

/* A full disk, as far as the child sees: writing past FILE_BYTES fails
 * with EFBIG (SIGXFSZ ignored, as a shell's ulimit -f would not). */
static void
limit_file_size (gpointer file_bytes)
{
  struct rlimit limit = { GPOINTER_TO_SIZE (file_bytes), GPOINTER_TO_SIZE (file_bytes) };

  signal (SIGXFSZ, SIG_IGN);
  setrlimit (RLIMIT_FSIZE, &limit);
}

/* Runs gegl-vae with ARGS and GEGL_VAE_MODEL_PATH=MODELS; FILE_BYTES > 0
 * caps the size of the files it writes. */
static Run
run_va (gsize file_bytes, const gchar *models, va_list args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_auto (GStrv) env = g_get_environ ();
  g_autoptr (GError) error = NULL;
  Run          r = { 0 };
  const gchar *a;

  g_ptr_array_add (argv, (gchar *) GEGL_VAE_BIN);
  while ((a = va_arg (args, const gchar *)))
    g_ptr_array_add (argv, (gchar *) a);
  g_ptr_array_add (argv, NULL);
  env = g_environ_setenv (env, "GEGL_VAE_MODEL_PATH", models ? models : "", TRUE);
  g_spawn_sync (NULL, (gchar **) argv->pdata, env, G_SPAWN_DEFAULT,
                file_bytes ? limit_file_size : NULL, GSIZE_TO_POINTER (file_bytes), &r.out, &r.err,
                &r.status, &error);
  g_assert_no_error (error);
  g_test_message ("stderr: %s", r.err);
  return r;
}

/* Runs gegl-vae with ARGS (NULL-terminated) and GEGL_VAE_MODEL_PATH=MODELS. */
static Run
run (const gchar *models, ...)
{
  va_list args;
  Run     r;

  va_start (args, models);
  r = run_va (0, models, args);
  va_end (args);
  return r;
}

/* The same with the files it writes capped at FILE_BYTES. */
static Run
run_capped (gsize file_bytes, ...)
{
  va_list args;
  Run     r;

  va_start (args, file_bytes);
  r = run_va (file_bytes, NULL, args);
  va_end (args);
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

/* The default precision is "auto": the same latent as --precision bf16 on
 * a CPU with AMX, as fp32 elsewhere (GEGL_VAE_AMX=0 hides the tiles, as on
 * a CPU with AVX512-BF16 alone); --precision fp32 is the way back. */
static void
test_default_precision (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *image = test_data_path ("kl", "sd15-diffusers", "image.npy", NULL);
  g_autofree gchar *a = test_tmp_path ("auto.npy"), *b = test_tmp_path ("bf16.npy"),
                   *c = test_tmp_path ("fp32.npy"), *d = test_tmp_path ("no-tiles.npy");
  g_autofree gchar *amx_setting = g_strdup (g_getenv ("GEGL_VAE_AMX"));
  const gchar      *chosen = vae_cpu_has_amx () ? "bf16" : "fp32";
  g_autoptr (VaeTensor) ta = NULL, tb = NULL, tc = NULL, td = NULL;
  g_auto (Run) r1 = { 0 };
  g_auto (Run) r2 = { 0 };
  g_auto (Run) r3 = { 0 };
  g_auto (Run) r4 = { 0 };

  r1 = run (NULL, "encode", "-m", kl, "--backend", "cpu", image, a, NULL);
  r2 = run (NULL, "encode", "-m", kl, "--backend", "cpu", "--precision", chosen, image, b, NULL);
  r3 = run (NULL, "encode", "-m", kl, "--backend", "cpu", "--precision", "fp32", image, c, NULL);
  g_setenv ("GEGL_VAE_AMX", "0", TRUE);
  r4 = run (NULL, "encode", "-m", kl, "--backend", "cpu", image, d, NULL);
  if (amx_setting)
    g_setenv ("GEGL_VAE_AMX", amx_setting, TRUE);
  else
    g_unsetenv ("GEGL_VAE_AMX");
  g_assert_true (exited_ok (&r1) && exited_ok (&r2) && exited_ok (&r3) && exited_ok (&r4));
  ta = test_load_npy_latent (a);
  tb = test_load_npy_latent (b);
  tc = test_load_npy_latent (c);
  td = test_load_npy_latent (d);
  g_assert_cmpfloat (test_max_abs_error (ta, tb), ==, 0.0);
  g_assert_cmpfloat (test_max_abs_error (td, tc), ==, 0.0);
  if (vae_cpu_has_amx ())
    g_assert_cmpfloat (test_max_abs_error (ta, tc), >, 0.0);
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
  /* the writer refuses NaN: set it in the file's data, at element 5 of 16 */
  g_assert_true (vae_npy_write_latent (nan_npy, nan_latent, NULL));
  {
    g_autofree gchar *bytes = NULL;
    gsize             len;
    const gfloat      nan = NAN;
    g_assert_true (g_file_get_contents (nan_npy, &bytes, &len, NULL));
    memcpy (bytes + len - (16 - 5) * sizeof (gfloat), &nan, sizeof nan);
    g_assert_true (g_file_set_contents (nan_npy, bytes, (gssize) len, NULL));
  }
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

/* ---- outputs on a full disk --------------------------------------------- */

/* No temporary left beside DIR's files (they start with a dot). */
static void
assert_no_temporary (const gchar *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)))
    if (name[0] == '.')
      g_error ("a temporary was left behind: %s/%s", dir, name);
}

/* A 64×48 picture with some structure, as a PNG. */
static gchar *
write_photo (const gchar *name)
{
  g_autoptr (VaeTensor) image = vae_tensor_new (3, 48, 64, NULL);
  gchar *path = test_tmp_path (name);

  for (gsize i = 0; i < vae_tensor_n_elements (image); i++)
    image->data[i] = (gfloat) ((i * 7919) % 256) / 255.0f;
  g_assert_true (vae_png_write (path, image, 8, NULL));
  return path;
}

/* Every kind of output, written over an old file while the disk is full
 * (no file may grow past 100 bytes): the command fails with the system's
 * reason, the old file is intact and no temporary is left.  Before, the
 * old file was truncated and half-written. */
static void
test_full_disk (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *image = test_data_path ("kl", "sd15-diffusers", "image.npy", NULL);
  g_autofree gchar *latent = test_tmp_path ("full-in.npy");
  g_autofree gchar *photo = write_photo ("photo.png");
  g_autofree gchar *photo_before = NULL, *dir = g_path_get_dirname (photo);
  gsize             photo_len;
  const gchar      *outputs[] = { "full.npy", "full.latent", "full.png", "full-image.npy",
                                  "full.safetensors" };
  g_auto (Run) made = run (NULL, "encode", "-m", kl, image, latent, NULL);

  g_assert_true (exited_ok (&made));
  for (guint i = 0; i < G_N_ELEMENTS (outputs); i++)
    {
      g_autofree gchar *out = test_tmp_path (outputs[i]);
      g_autofree gchar *kept = NULL;
      g_auto (Run) r = { 0 };
      g_assert_true (g_file_set_contents (out, "OLD", 3, NULL));
      if (i < 2)
        r = run_capped (100, "encode", "-m", kl, image, out, NULL);
      else if (i < 4)
        r = run_capped (100, "decode", "-m", kl, latent, out, NULL);
      else
        r = run_capped (100, "synth", "--family", "sd15", out, NULL);
      assert_failed (&r, "File too large");
      g_assert_true (g_file_get_contents (out, &kept, NULL, NULL));
      g_assert_cmpstr (kept, ==, "OLD");
    }
  /* the photo itself as the output */
  {
    g_autofree gchar *after = NULL;
    g_auto (Run) r = { 0 };
    g_assert_true (g_file_get_contents (photo, &photo_before, &photo_len, NULL));
    r = run_capped (100, "preview", "-m", kl, "--strength", "0.3", photo, photo, NULL);
    assert_failed (&r, "cannot write");
    g_assert_true (g_file_get_contents (photo, &after, NULL, NULL));
    g_assert_true (memcmp (after, photo_before, photo_len) == 0);
  }
  assert_no_temporary (dir);
}

/* The same on a real full disk: a tmpfs just large enough for the photo,
 * mounted in a mount namespace of its own (needs root; skipped without). */
static void
test_full_tmpfs (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *photo = write_photo ("tmpfs-photo.png");
  g_autofree gchar *mount_point = test_tmp_path ("tmpfs");
  g_autofree gchar *size = NULL;
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (GError) error = NULL;
  GStatBuf     st;
  gint         status;
  const gchar *script =
      "mount -t tmpfs -o size=$1 tmpfs \"$2\" || exit 77; echo mounted;"
      "cp \"$3\" \"$2\"/photo.png;"
      "\"$4\" preview -m \"$5\" --strength 0.3 \"$2\"/photo.png \"$2\"/photo.png; s=$?;"
      "cmp -s \"$3\" \"$2\"/photo.png || { echo changed; exit 3; };"
      "[ \"$(ls -A \"$2\")\" = photo.png ] || { echo left; exit 4; }; exit $s";

  g_assert_cmpint (g_stat (photo, &st), ==, 0);
  g_assert_cmpint (g_mkdir (mount_point, 0700), ==, 0);
  /* whole pages: the photo fits, a second copy of it does not */
  size = g_strdup_printf ("%" G_GINT64_FORMAT "k", ((gint64) st.st_size + 4095) / 4096 * 4);
  {
    const gchar *argv[] = { "unshare", "-m",        "sh",  "-c",         script, "sh",
                            size,      mount_point, photo, GEGL_VAE_BIN, kl,     NULL };
    g_spawn_sync (NULL, (gchar **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status,
                  &error);
  }
  g_assert_no_error (error);
  g_test_message ("stdout: %s stderr: %s", out, err);
  g_rmdir (mount_point);
  if (!strstr (out, "mounted"))
    {
      g_test_skip ("cannot mount a tmpfs in a mount namespace here (needs root)");
      return;
    }
  g_assert_null (strstr (out, "changed"));
  g_assert_null (strstr (out, "left"));
  g_assert_false (g_spawn_check_wait_status (status, NULL));
  g_assert_nonnull (strstr (err, "No space left on device"));
}

/* ---- hostile options and models ------------------------------------------- */

static void
test_hostile_options (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *image = test_data_path ("kl", "sd15-diffusers", "image.npy", NULL);
  g_autofree gchar *latent = test_data_path ("kl", "sd15-diffusers", "latent.npy", NULL);
  g_autofree gchar *out = test_tmp_path ("hostile-out.npy");
  g_autofree gchar *png = test_tmp_path ("hostile-out.png");
  g_autofree gchar *bad_encoder = test_kl_with_channels ("encoder.conv_in.weight", 1, 4);
  g_autofree gchar *folder = test_tmp_path ("folder.png");
  struct
  {
    const gchar *args[12];
    const gchar *needle;
  } cases[] = {
    /* NaN added no noise; a negative timestep fell back to the strength */
    { { "preview", "-m", kl, "--strength", "nan", image, png },
      "--strength must lie in 0–1, not nan" },
    { { "preview", "-m", kl, "--timestep", "-5", image, png },
      "--timestep must lie in 0–999, not -5" },
    /* finite as a double, infinite as a float */
    { { "encode", "-m", kl, "--scale", "1e300", image, out }, "latent scale 1e+300" },
    /* within float, but the latent times it is not */
    { { "encode", "-m", kl, "--scale", "3e38", "--shift", "-2", image, out },
      "the encoded latent holds a non-finite value" },
    { { "decode", "-m", kl, "--memory-limit", "1", latent, png },
      "a memory limit of 1 bytes is too small" },
    /* checked before the input is made (that took minutes) */
    { { "bench", "-m", kl, "--size", "100000x100000" },
      "--size of 100000×100000: sides must be 1 to 65536" },
    { { "bench", "-m", kl, "--size", "20000x20000" }, "(GEGL_VAE_MAX_IMAGE_PIXELS raises it)" },
    /* "failed" after a g_critical */
    { { "encode", "-m", bad_encoder, image, out }, "'encoder.conv_in' takes 4 channels" },
    { { "encode", "-m", kl, "--family", "taef2", image, out },
      "is a sd15 model: a AutoencoderKL with 4 latent channels at 1/8; family 'taef2' describes a "
      "tiny autoencoder (TAESD)" },
    { { "encode", "-m", kl, folder, out }, "folder.png is a folder, not a file" },
  };

  g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const gchar **a = cases[i].args;
      g_auto (Run) r = run (NULL, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], NULL);
      assert_failed (&r, cases[i].needle);
    }
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (png, G_FILE_TEST_EXISTS));
  g_rmdir (folder);
}

/* ---- PNG files ----------------------------------------------------------- */

/* W×H of 16-bit gray or 8-bit RGB written by libpng, Adam7 or not. */
static gchar *
write_png (const gchar *name, gint w, gint h, gboolean gray16, gboolean adam7)
{
  gchar      *path = test_tmp_path (name);
  FILE       *f = fopen (path, "wb");
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop   info = png_create_info_struct (png);
  const gint  row_bytes = gray16 ? 2 * w : 3 * w;
  guint8     *rows = g_new (guint8, (gsize) row_bytes * h);
  png_bytep  *pointers = g_new (png_bytep, h);

  for (gint i = 0; i < row_bytes * h; i++)
    rows[i] = (guint8) ((i * 37 + i / row_bytes * 11) % 251);
  for (gint y = 0; y < h; y++)
    pointers[y] = rows + (gsize) y * row_bytes;
  png_init_io (png, f);
  png_set_IHDR (png, info, w, h, gray16 ? 16 : 8, gray16 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                adam7 ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  png_write_image (png, pointers); /* all passes when interlaced */
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  fclose (f);
  g_free (pointers);
  g_free (rows);
  return path;
}

/* Interlaced PNGs read as garbage: the same pixels, Adam7 or not. */
static void
test_png_interlaced (void)
{
  for (gint gray16 = 0; gray16 <= 1; gray16++)
    {
      g_autofree gchar *plain = write_png ("plain.png", 37, 29, gray16, FALSE);
      g_autofree gchar *adam7 = write_png ("adam7.png", 37, 29, gray16, TRUE);
      g_autoptr (GError) error = NULL;
      g_autoptr (VaeTensor) a = vae_png_read (plain, &error);
      g_autoptr (VaeTensor) b = vae_png_read (adam7, &error);

      g_assert_no_error (error);
      g_assert_cmpfloat (test_max_abs_error (a, b), ==, 0.0);
      g_assert_cmpfloat (test_max_abs_error (a, b), ==, 0.0);
      /* and not trivially: the picture is not flat */
      g_assert_cmpfloat (a->data[0], !=, a->data[1]);
    }
}

/* A PNG of only a header (and IEND) saying W×H, 8-bit RGB compressed by
 * method COMPRESSION (0 is the only one). */
static gchar *
write_png_header (const gchar *name, guint32 w, guint32 h, guint8 compression)
{
  guint8  file[8 + 25 + 12] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  guint8 *ihdr = file + 8, *iend = file + 33;
  guint32 be;

  be = GUINT32_TO_BE (13);
  memcpy (ihdr, &be, 4);
  memcpy (ihdr + 4, "IHDR", 4);
  be = GUINT32_TO_BE (w);
  memcpy (ihdr + 8, &be, 4);
  be = GUINT32_TO_BE (h);
  memcpy (ihdr + 12, &be, 4);
  memcpy (ihdr + 16, "\x08\x02\x00\x00\x00", 5); /* 8-bit RGB */
  ihdr[18] = compression;
  be = GUINT32_TO_BE ((guint32) crc32 (0, ihdr + 4, 17));
  memcpy (ihdr + 21, &be, 4);
  memcpy (iend + 4, "IEND", 4);
  be = GUINT32_TO_BE ((guint32) crc32 (0, iend + 4, 4));
  memcpy (iend + 8, &be, 4);
  return test_write_tmp (name, file, sizeof file);
}

/* Sizes are checked from the header, before anything is allocated: a
 * 65535² header asked for 51 GB, a 20000² one was decoded whole (4 GB)
 * before the limit; libpng's own cap and its reasons were hidden. */
static void
test_png_header_limits (void)
{
  struct
  {
    guint32      w, h;
    guint8       compression;
    const gchar *needle;
  } cases[] = {
    { 65535, 65535, 0, "(GEGL_VAE_MAX_IMAGE_PIXELS raises it)" },
    { 20000, 20000, 0, "= 400000000 pixels exceeds the limit of 268435456 pixels" },
    { 1, 70000, 0, "of 1×70000: sides must be 1 to 65536 pixels" },
    { 0, 4, 0, "of 0×4: sides must be 1 to 65536 pixels" },
    /* libpng's error and, in brackets, the warning that says why */
    { 4, 4, 1, "Invalid IHDR data (Unknown compression method in IHDR)" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree gchar *path =
          write_png_header ("header.png", cases[i].w, cases[i].h, cases[i].compression);
      g_autoptr (GError) error = NULL;
      g_assert_null (vae_png_read (path, &error));
      test_assert_error (error, cases[i].needle);
    }
}

/* A 5×5 PNG whose next chunk, a zTXt, declares 1.5 GB and ends there:
 * libpng allocated and cleared what it declared (1.5 GB, 12 s; found by
 * fuzz-png).  Reading it fails at once, without that memory. */
static void
test_png_huge_chunk (void)
{
  if (g_test_subprocess ())
    {
      g_autofree gchar *header = write_png_header ("huge-chunk.png", 5, 5, 0);
      g_autofree gchar *bytes = NULL;
      gsize             len;
      g_autoptr (GError) error = NULL;
      struct rusage usage;

      /* drop IEND, declare the chunk */
      g_assert_true (g_file_get_contents (header, &bytes, &len, NULL));
      memcpy (bytes + 33, "\x5a\x00\xff\x00zTXt", 8);
      g_assert_true (g_file_set_contents (header, bytes, 41, NULL));
      g_assert_null (vae_png_read (header, &error));
      test_assert_error (error, "Read Error");
      g_assert_cmpint (getrusage (RUSAGE_SELF, &usage), ==, 0);
      g_assert_cmpint (usage.ru_maxrss, <, 256 * 1024); /* kB */
      return;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* A FIFO blocked in open(); a folder is named as one. */
static void
test_png_not_regular (void)
{
  if (g_test_subprocess ())
    {
      g_autofree gchar *fifo = test_tmp_path ("fifo.png");
      g_autoptr (GError) error = NULL;
      g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
      g_assert_null (vae_png_read (fifo, &error));
      test_assert_error (error, "is not a regular file");
      return;
    }
  g_test_trap_subprocess (NULL, 30 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* How many times libgomp started in the run R (OMP_DISPLAY_ENV prints its
 * settings each time), and the spin count it last printed. */
static gint
omp_starts (const Run *r, const gchar **spin)
{
  gint         n = 0;
  const gchar *at = r->err;

  *spin = NULL;
  while ((at = strstr (at, "OPENMP DISPLAY ENVIRONMENT BEGIN")))
    n++, at++;
  for (at = r->err; (at = strstr (at, "GOMP_SPINCOUNT = ")); at++)
    *spin = at + strlen ("GOMP_SPINCOUNT = ");
  return n;
}

/* The program starts itself again once with OMP_WAIT_POLICY=passive, so
 * that its threads sleep where libgomp's would spin (a spin count of 0),
 * unless the user chose a wait policy or a spin count. */
static void
test_threads_wait_passively (void)
{
  const gchar *given[] = { "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_DISPLAY_ENV" };
  gchar       *saved[G_N_ELEMENTS (given)];
  const gchar *spin;
  g_auto (Run) plain = { 0 };
  g_auto (Run) active = { 0 };
  g_auto (Run) counted = { 0 };

  for (guint i = 0; i < G_N_ELEMENTS (given); i++)
    {
      saved[i] = g_strdup (g_getenv (given[i]));
      g_unsetenv (given[i]);
    }
  g_setenv ("OMP_DISPLAY_ENV", "verbose", TRUE);
  plain = run (NULL, "--help", NULL);
  g_setenv ("OMP_WAIT_POLICY", "active", TRUE);
  active = run (NULL, "--help", NULL);
  g_unsetenv ("OMP_WAIT_POLICY");
  g_setenv ("GOMP_SPINCOUNT", "1000", TRUE);
  counted = run (NULL, "--help", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (given); i++)
    {
      if (saved[i])
        g_setenv (given[i], saved[i], TRUE);
      else
        g_unsetenv (given[i]);
      g_free (saved[i]);
    }
  g_assert_true (exited_ok (&plain) && exited_ok (&active) && exited_ok (&counted));
  g_assert_cmpint (omp_starts (&plain, &spin), ==, 2);
  g_assert_nonnull (spin);
  g_assert_true (g_str_has_prefix (spin, "'0'"));
  g_assert_cmpint (omp_starts (&active, &spin), ==, 1);
  g_assert_nonnull (spin);
  g_assert_false (g_str_has_prefix (spin, "'0'"));
  g_assert_cmpint (omp_starts (&counted, &spin), ==, 1);
  g_assert_nonnull (spin);
  g_assert_true (g_str_has_prefix (spin, "'1000'"));
}

/* Usage errors (an unknown option, a bad option value, a missing argument)
 * exit 2 and other failures 1, as the README says; a command's --help
 * names the command; a picture in another format says how to convert it. */
static void
test_exit_status (void)
{
  g_autofree gchar *kl = kl_model ();
  g_autofree gchar *image = test_data_path ("kl", "sd15-diffusers", "image.npy", NULL);
  g_autofree gchar *out = test_tmp_path ("never.npy");
  g_autofree gchar *jpeg = test_write_tmp ("photo.jpg", "\xff\xd8\xff\xe0", 4);
  struct
  {
    const gchar *args[6];
    gint         status;
    const gchar *needle;
  } cases[] = {
    { { "encode", "--bogus", image, out }, 2, "Unknown option --bogus" },
    { { "encode", "-m", kl, image }, 2, "usage: gegl-vae encode" },
    { { "preview", "--strength", "2", image, out }, 2, "--strength must lie in 0–1, not 2" },
    { { "preview", "--timestep", "1000", image, out }, 2, "not 1000" },
    { { "encode", "-m", "/no/such/model.safetensors", image, out }, 1, "neither a file" },
    { { "encode", "-m", kl, jpeg, out }, 1, "convert it first, e.g. gegl" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_auto (Run) r = run (NULL, cases[i].args[0], cases[i].args[1], cases[i].args[2],
                            cases[i].args[3], cases[i].args[4], NULL);
      assert_failed (&r, cases[i].needle);
      g_assert_true (WIFEXITED (r.status));
      g_assert_cmpint (WEXITSTATUS (r.status), ==, cases[i].status);
      g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
    }
  {
    g_auto (Run) help = run (NULL, "preview", "--help", NULL);
    g_assert_true (exited_ok (&help));
    g_assert_nonnull (strstr (help.out, "gegl-vae preview [OPTION"));
  }
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
  g_test_add_func ("/cli/default-precision", test_default_precision);
  g_test_add_func ("/cli/errors", test_errors);
  g_test_add_func ("/cli/exit-status", test_exit_status);
  g_test_add_func ("/cli/threads-wait-passively", test_threads_wait_passively);
  g_test_add_func ("/cli/full-disk/every-output", test_full_disk);
  g_test_add_func ("/cli/full-disk/tmpfs", test_full_tmpfs);
  g_test_add_func ("/cli/hostile-options", test_hostile_options);
  g_test_add_func ("/cli/png/interlaced", test_png_interlaced);
  g_test_add_func ("/cli/png/header-limits", test_png_header_limits);
  g_test_add_func ("/cli/png/not-regular", test_png_not_regular);
  g_test_add_func ("/cli/png/huge-chunk", test_png_huge_chunk);
  return g_test_run ();
}
