/* AutoencoderKL against diffusers (float64) on small random-weight models:
 * both naming schemes, quant convs on and off, Z = 4, 16, 32 with FLUX.2
 * BatchNorm and patchify, F32/F16/BF16 storage, odd sizes; and the LDM
 * kl-f4/f16/f32 structures (3, 5, 6 levels; attention inside levels), which
 * load as the generic KL family.
 * Tolerance: max |ours − ref| / max |ref| ≤ 1e-4 (float32 vs float64).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <string.h>

#define HOUSE_BAR 1e-4

typedef struct
{
  const gchar *dir;
  const gchar *file;
  const gchar *family;
} Variant;

static const Variant variants[] = {
  { "sd15-diffusers", "sd15_tiny.safetensors", "sd15" },
  { "sdxl-ldm-ckpt", "sdxl_tiny.ckpt", "sdxl" },
  { "sd3-old-names", "sd3_tiny.safetensors", "sd3" },
  { "flux2-bfl", "flux2_tiny.safetensors", "flux2" },
  /* LDM's kl-f4, kl-f16 and kl-f32 structures, which no descriptor fits */
  { "ldm-kl-f4", "kl-f4.safetensors", "kl-generic" },
  { "ldm-kl-f16", "kl-f16.safetensors", "kl-generic" },
  { "ldm-kl-f32", "kl-f32.safetensors", "kl-generic" },
};

static VaeModel *
load_variant (const Variant *v)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *path = test_data_path ("kl", v->dir, v->file, NULL);
  VaeModel         *m = vae_model_load (path, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (vae_model_get_family (m)->name, ==, v->family);
  return m;
}

static void
test_encode (gconstpointer data)
{
  const Variant *v = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) m = load_variant (v);
  g_autofree gchar *image_path = test_data_path ("kl", v->dir, "image.npy", NULL);
  g_autofree gchar *want_path = test_data_path ("kl", v->dir, "encoded.npy", NULL);
  g_autoptr (VaeTensor) image = test_load_npy_image (image_path);
  g_autoptr (VaeTensor) want = test_load_npy_latent (want_path);
  g_autoptr (VaeTensor) got = vae_model_encode (m, image, VAE_ENCODE_MEAN, 0, NULL, &error);

  g_assert_no_error (error);
  test_assert_close (got, want, HOUSE_BAR, "encode (diffusion latent)");
}

static void
test_decode (gconstpointer data)
{
  const Variant *v = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) m = load_variant (v);
  g_autofree gchar *latent_path = test_data_path ("kl", v->dir, "latent.npy", NULL);
  g_autofree gchar *want_path = test_data_path ("kl", v->dir, "decoded.npy", NULL);
  g_autoptr (VaeTensor) latent = test_load_npy_latent (latent_path);
  g_autoptr (VaeTensor) want = test_load_npy_latent (want_path);
  g_autoptr (VaeTensor) got = vae_model_decode_raw (m, latent, NULL, &error);
  g_autoptr (VaeTensor) image = NULL;

  g_assert_no_error (error);
  test_assert_close (got, want, HOUSE_BAR, "decode (raw decoder output)");
  /* the public decode is the same output mapped to [0,1] */
  image = vae_model_decode (m, latent, NULL, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < vae_tensor_n_elements (image); i++)
    g_assert_cmpfloat_with_epsilon (image->data[i], CLAMP ((want->data[i] + 1) / 2, 0, 1), 1e-4);
}

/* Sampling differs from the mean by std·ε, with ε fixed by the seed. */
static void
test_sample_mode (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) m = load_variant (&variants[0]);
  g_autofree gchar *image_path = test_data_path ("kl", variants[0].dir, "image.npy", NULL);
  g_autoptr (VaeTensor) image = test_load_npy_image (image_path);
  g_autoptr (VaeTensor) mean = vae_model_encode (m, image, VAE_ENCODE_MEAN, 0, NULL, &error);
  g_autoptr (VaeTensor) s1 = vae_model_encode (m, image, VAE_ENCODE_SAMPLE, 7, NULL, &error);
  g_autoptr (VaeTensor) s2 = vae_model_encode (m, image, VAE_ENCODE_SAMPLE, 7, NULL, &error);
  g_autoptr (VaeTensor) s3 = vae_model_encode (m, image, VAE_ENCODE_SAMPLE, 8, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpfloat (test_max_abs_error (s1, s2), ==, 0.0);
  g_assert_cmpfloat (test_max_abs_error (s1, mean), >, 1e-4);
  g_assert_cmpfloat (test_max_abs_error (s1, s3), >, 1e-4);
}

/* A KL that no descriptor fits loads as the generic family with one notice
 * line saying how to set scale and shift, which --scale/--shift then do;
 * what `gegl-vae info` prints names it. */
static void
test_generic_family (void)
{
  for (guint i = 4; i < G_N_ELEMENTS (variants); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree gchar *path = test_data_path ("kl", variants[i].dir, variants[i].file, NULL);
      VaeModelOptions   options = {
          .set_scale = TRUE, .scale = 0.5, .set_shift = TRUE, .shift = 0.25
      };
      g_autoptr (VaeModel) plain = NULL, scaled = NULL;
      g_autofree gchar *info = NULL;

      vae_model_cache_clear ();
      g_test_expect_message ("gegl-vae", G_LOG_LEVEL_MESSAGE,
                             "*no family descriptor fits*generic*--scale/--shift*");
      plain = vae_model_load (path, NULL, &error);
      g_test_assert_expected_messages ();
      g_assert_no_error (error);
      info = vae_model_describe (plain);
      g_test_message ("%s", info);
      g_assert_nonnull (strstr (info, "family:     kl-generic"));
      g_assert_cmpfloat (vae_model_scale (plain), ==, 1.0);
      g_assert_cmpfloat (vae_model_shift (plain), ==, 0.0);
      g_assert_cmpint (vae_model_get_family (plain)->schedule, ==, VAE_SCHEDULE_SD_SCALED_LINEAR);
      g_test_expect_message ("gegl-vae", G_LOG_LEVEL_MESSAGE, "*no family descriptor fits*");
      scaled = vae_model_load (path, &options, &error);
      g_test_assert_expected_messages ();
      g_assert_no_error (error);
      g_assert_cmpfloat (vae_model_scale (scaled), ==, 0.5);
      g_assert_cmpfloat (vae_model_shift (scaled), ==, 0.25);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      g_autofree gchar *enc = g_strdup_printf ("/kl/%s/encode", variants[i].dir);
      g_autofree gchar *dec = g_strdup_printf ("/kl/%s/decode", variants[i].dir);
      g_test_add_data_func (enc, &variants[i], test_encode);
      g_test_add_data_func (dec, &variants[i], test_decode);
    }
  g_test_add_func ("/kl/sample-mode", test_sample_mode);
  g_test_add_func ("/kl/generic-family", test_generic_family);
  return g_test_run ();
}
