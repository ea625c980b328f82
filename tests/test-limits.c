/* Limits users can see and raise, and running out of memory: every case is
 * a GError that names the limit (and its variable), never an abort.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <stdio.h>
#include <sys/resource.h>

static void
test_named_limits (void)
{
  g_autofree gchar *pth = test_data_path ("hostile", "good.pth", NULL);
  g_autofree gchar *kl = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autoptr (GError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL;
  g_autoptr (VaeModel) m = NULL;
  g_autoptr (VaeTensor) image = vae_tensor_new (3, 11, 10, NULL);
  g_autoptr (VaeTensor) latent = vae_tensor_new (4, 2, 2, NULL);

  g_setenv ("GEGL_VAE_MAX_MODEL_BYTES", "100", TRUE);
  g_assert_null (vae_weights_load (pth, &e1));
  test_assert_error (e1, "GEGL_VAE_MAX_MODEL_BYTES raises it");
  g_unsetenv ("GEGL_VAE_MAX_MODEL_BYTES");

  g_setenv ("GEGL_VAE_MAX_PICKLE_MEMO", "2", TRUE);
  g_assert_null (vae_weights_load (pth, &e2));
  test_assert_error (e2, "GEGL_VAE_MAX_PICKLE_MEMO raises it");
  g_unsetenv ("GEGL_VAE_MAX_PICKLE_MEMO");

  m = vae_model_load (kl, NULL, &e3);
  g_assert_no_error (e3);
  g_setenv ("GEGL_VAE_MAX_IMAGE_PIXELS", "100", TRUE);
  g_assert_null (vae_model_encode (m, image, VAE_ENCODE_MEAN, 0, NULL, &e3));
  test_assert_error (
      e3, "110 pixels exceeds the limit of 100 pixels (GEGL_VAE_MAX_IMAGE_PIXELS raises it)");
  g_assert_null (vae_model_decode (m, latent, NULL, &e4));
  test_assert_error (e4, "GEGL_VAE_MAX_IMAGE_PIXELS");
  g_unsetenv ("GEGL_VAE_MAX_IMAGE_PIXELS");
}

/* Under an address-space cap a decode too big to fit fails with a GError. */
static void
test_out_of_memory (void)
{
#if defined(__SANITIZE_ADDRESS__)
  g_test_skip (
      "RLIMIT_AS cannot cap an AddressSanitizer process (its shadow memory reserves terabytes)");
  return;
#endif
  if (g_test_subprocess ())
    {
      g_autofree gchar *kl = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
      g_autoptr (GError) error = NULL;
      g_autoptr (VaeModel) m = vae_model_load (kl, NULL, &error);
      g_autoptr (VaeTensor) latent =
          vae_tensor_new (4, 512, 512, NULL); /* → 4096² × 32 ch: 2 GiB a tensor */
      g_autoptr (VaeTensor) image = NULL;
      struct rlimit cap;
      gchar         line[256];
      guint64       vm_kb = 0;
      FILE         *status = fopen ("/proc/self/status", "r");

      while (status && fgets (line, sizeof line, status))
        sscanf (line, "VmSize: %" G_GUINT64_FORMAT, &vm_kb);
      if (status)
        fclose (status);
      cap.rlim_cur = cap.rlim_max = (vm_kb + 512 * 1024) * 1024;
      g_assert_cmpint (setrlimit (RLIMIT_AS, &cap), ==, 0);
      image = vae_model_decode (m, latent, NULL, &error);
      g_assert_null (image);
      g_assert_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY);
      g_printerr ("%s\n", error->message);
      return;
    }
  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*out of memory*");
}

int
main (int argc, char **argv)
{
  /* one thread: a capped address space has no room for new thread stacks */
  g_setenv ("OMP_NUM_THREADS", "1", TRUE);
  g_setenv ("GEGL_THREADS", "1", TRUE);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/limits/named", test_named_limits);
  g_test_add_func ("/limits/out-of-memory", test_out_of_memory);
  return g_test_run ();
}
