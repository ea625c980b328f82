/* libFuzzer: family descriptors (the presets/families .ini files and user ones). */
#include "fuzz-util.h"
#include "vae-private.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  VaeFamily *family = NULL;

  if (vae_family_parse ((const gchar *) data, size, "fuzz.ini", &family, &error))
    vae_family_free (family);
  return 0;
}
