/* libFuzzer: the gegl-vae program's PNG reader (ui/cli/png-io.c).
 *
 * libpng stops at a chunk whose CRC-32 does not match, so a mutation inside
 * a chunk would almost never reach the code behind it: the harness first
 * gives every chunk the CRC of its type and data.  The CRC check itself is
 * libpng's. */
#include "fuzz-util.h"
#include "png-io.h"

#include <string.h>
#include <zlib.h>

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

/* PNG's integers are big-endian and unaligned: read them bytewise */
static guint32
rd32be (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

static void
fix_crcs (guint8 *b, gsize size)
{
  gsize pos = 8; /* after the signature */

  while (pos + 12 <= size)
    {
      const guint32 length = rd32be (b + pos);
      guint32       crc;

      if (length > size - pos - 12)
        return;
      crc = (guint32) crc32 (crc32 (0L, Z_NULL, 0), b + pos + 4, length + 4);
      for (int i = 0; i < 4; i++)
        b[pos + 8 + length + i] = (guint8) (crc >> (24 - 8 * i));
      pos += 12 + (gsize) length;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  guint8 *copy = g_malloc (size + 1);

  memcpy (copy, data, size);
  fix_crcs (copy, size);
  vae_tensor_free (vae_png_read (fuzz_path (copy, size), &error));
  g_free (copy);
  return 0;
}
