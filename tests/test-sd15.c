/* The full SD1.5 VAE architecture (83.6M parameters, seeded weights from
 * core/synth.c) decoding a 32×32 latent, against diffusers in float64.
 * Tolerance: the house bar, max relative error ≤ 1e-4.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"
#include "vae-synth.h"

static void
test_full_decode (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *weights = test_tmp_path ("sd15-synth.safetensors");
  g_autofree gchar *latent_path = test_data_path ("sd15-full", "latent.npy", NULL);
  g_autofree gchar *want_path = test_data_path ("sd15-full", "decoded.npy", NULL);
  g_autoptr (VaeTensor) latent = test_load_npy_latent (latent_path);
  g_autoptr (VaeTensor) want = test_load_npy_latent (want_path);
  g_autoptr (VaeTensor) got = NULL;
  g_autoptr (VaeModel) m = NULL;
  VaeSynthConfig cfg;

  g_assert_true (vae_synth_config_for_family (vae_family_lookup ("sd15"), &cfg, &error));
  g_assert_true (vae_synth_kl (weights, &cfg, 1, &error));
  g_assert_no_error (error);
  m = vae_model_load (weights, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vae_model_get_family (m)->name, ==, "sd15");
  g_assert_cmpuint (m->n_tensors, ==, 248);
  g_assert_cmpuint (m->n_params, ==, 83653863);
  got = vae_model_decode_raw (m, latent, &error);
  g_assert_no_error (error);
  test_assert_close (got, want, 1e-4, "SD1.5 decode of a 32x32 latent");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sd15/full-architecture-decode", test_full_decode);
  return g_test_run ();
}
