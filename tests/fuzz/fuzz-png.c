/* libFuzzer: the gegl-vae program's PNG reader (ui/cli/png-io.c). */
#include "fuzz-util.h"
#include "png-io.h"

static void
quiet (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
}

int LLVMFuzzerInitialize (int *argc, char ***argv);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  /* a 16384² header with a little zlib data would ask for 3 GB, over the
   * harness's 2 GB allocation limit; the limit's own check is what is
   * fuzzed, at a size the harness can afford */
  g_setenv ("GEGL_VAE_MAX_IMAGE_PIXELS", "4194304", TRUE);
  /* libpng's warnings on images that still read go to g_message */
  g_log_set_handler (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, quiet, NULL);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;

  vae_tensor_free (vae_png_read (fuzz_path (data, size), &error));
  return 0;
}
