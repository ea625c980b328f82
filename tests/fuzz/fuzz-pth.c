/* libFuzzer: the zip reader and the restricted unpickler of .pth/.ckpt files.
 *
 * A mutated member almost never keeps its CRC-32, so most inputs would stop
 * at the CRC check and the unpickler and the tensor views behind it would
 * hardly be reached: the harness first gives every member named in the
 * central directory the CRC of its (stored or inflated) data.  The CRC check
 * itself is covered by the loader tests (bad-crc.pth). */
#include "fuzz-util.h"
#include "vae-private.h"

#include <string.h>
#include <zlib.h>

#define SIG_CENTRAL 0x02014b50u
#define SIG_LOCAL   0x04034b50u
/* a member inflating to more than this keeps its CRC (and is refused) */
#define INFLATE_CAP (8u << 20)

static guint32
rd (const guint8 *p, int bytes)
{
  guint32 v = 0;

  for (int i = bytes - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static void
wr32 (guint8 *p, guint32 v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (guint8) (v >> (8 * i));
}

/* the CRC-32 of a raw-deflate stream's output; FALSE where it does not inflate */
static gboolean
inflated_crc (const guint8 *data, gsize size, guint32 *crc)
{
  static guint8 out[64 << 10];
  z_stream      z = { 0 };
  uLong         c = crc32 (0L, Z_NULL, 0);
  gsize         total = 0;
  int           r = Z_OK;

  if (inflateInit2 (&z, -MAX_WBITS) != Z_OK)
    return FALSE;
  z.next_in = (Bytef *) data;
  z.avail_in = (uInt) size;
  while (r == Z_OK && total < INFLATE_CAP)
    {
      z.next_out = out;
      z.avail_out = sizeof out;
      r = inflate (&z, Z_NO_FLUSH);
      c = crc32 (c, out, (uInt) (sizeof out - z.avail_out));
      total += sizeof out - z.avail_out;
      if (r == Z_BUF_ERROR && z.avail_in == 0)
        break;
    }
  inflateEnd (&z);
  *crc = (guint32) c;
  return r == Z_STREAM_END;
}

static void
fix_crcs (guint8 *b, gsize size)
{
  for (gsize pos = 0; pos + 46 <= size; pos++)
    {
      guint8 *h = b + pos;
      guint32 method, compressed, local, data;
      guint32 crc;

      if (rd (h, 4) != SIG_CENTRAL)
        continue;
      method = rd (h + 10, 2);
      compressed = rd (h + 20, 4);
      local = rd (h + 42, 4);
      if (local > size - 30 || rd (b + local, 4) != SIG_LOCAL)
        continue;
      data = local + 30 + rd (b + local + 26, 2) + rd (b + local + 28, 2);
      if (data > size || compressed > size - data)
        continue;
      if (method == 0)
        crc = (guint32) crc32 (crc32 (0L, Z_NULL, 0), b + data, compressed);
      else if (method != 8 || !inflated_crc (b + data, compressed, &crc))
        continue;
      wr32 (h + 16, crc);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  VaeWeights         *w = vae_weights_new ("fuzz.pth");
  const VaeTensorSink sink = vae_weights_sink (w);
  guint8             *copy = g_malloc (size + 1);

  memcpy (copy, data, size);
  fix_crcs (copy, size);
  if (vae_pth_parse (&sink, copy, size, &error))
    for (guint i = 0; i < vae_weights_count (w); i++)
      {
        g_autoptr (GError) e = NULL;
        g_free (vae_weights_get_float (w, vae_weights_name (w, i), NULL, &e));
      }
  vae_weights_free (w);
  g_free (copy);
  return 0;
}
