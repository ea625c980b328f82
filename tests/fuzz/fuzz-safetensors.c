/* libFuzzer: the safetensors reader, then every float conversion. */
#include "fuzz-util.h"
#include "vae-private.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  VaeWeights         *w = vae_weights_new ("fuzz.safetensors");
  const VaeTensorSink sink = vae_weights_sink (w);

  if (vae_safetensors_parse (&sink, data, size, &error))
    for (guint i = 0; i < vae_weights_count (w); i++)
      {
        g_autoptr (GError) e = NULL;
        g_free (vae_weights_get_float (w, vae_weights_name (w, i), NULL, &e));
      }
  vae_weights_free (w);
  return 0;
}
