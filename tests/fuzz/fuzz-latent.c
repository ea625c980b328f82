/* libFuzzer: ComfyUI .latent files. */
#include "fuzz-util.h"
#include "vae.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  vae_tensor_free (vae_latent_file_read (fuzz_path (data, size), &error));
  return 0;
}
