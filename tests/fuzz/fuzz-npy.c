/* libFuzzer: .npy latents and images. */
#include "fuzz-util.h"
#include "vae.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) e1 = NULL;
  g_autoptr (GError) e2 = NULL;
  const char *path = fuzz_path (data, size);

  vae_tensor_free (vae_npy_read_latent (path, &e1));
  vae_tensor_free (vae_npy_read_image (path, &e2));
  return 0;
}
