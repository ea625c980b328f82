/* libFuzzer: codebook files, and a snap with what was read. */
#include "fuzz-util.h"
#include "vae.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  VaeCodebook *cb = vae_codebook_load (fuzz_path (data, size), &error);

  if (cb && cb->dim <= 4096)
    {
      gfloat *v = g_new0 (gfloat, cb->dim);
      vae_codebook_snap (cb, v, v, 1, 1.0f, NULL, NULL);
      g_free (v);
    }
  vae_codebook_free (cb);
  return 0;
}
