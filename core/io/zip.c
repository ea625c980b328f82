/* A read-only zip reader for PyTorch checkpoints: stored and deflated
 * members, zip64, every offset checked against the archive's size.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <string.h>
#include <zlib.h>

#define SIG_LOCAL         0x04034b50u
#define SIG_CENTRAL       0x02014b50u
#define SIG_END           0x06054b50u
#define SIG_END64         0x06064b50u
#define SIG_END64_LOCATE  0x07064b50u
#define DEFLATE_MAX_RATIO 1032

typedef struct
{
  VaeZipMember member;
  guint16      flags;
  guint16      method;
  guint32      crc;
  guint64      compressed;
  guint64      uncompressed;
  guint64      local_offset;
  gboolean     loaded;
} ZipEntry;

struct _VaeZip
{
  const guint8 *bytes;
  gsize         size;
  gchar        *path;
  GPtrArray    *entries;
  GHashTable   *by_name;
};

static guint16
rd16 (const guint8 *p)
{
  return (guint16) (p[0] | (p[1] << 8));
}

static guint32
rd32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

static guint64
rd64 (const guint8 *p)
{
  return (guint64) rd32 (p) | ((guint64) rd32 (p + 4) << 32);
}

/* TRUE when [offset, offset + length) lies inside [0, limit). */
static gboolean
inside (guint64 offset, guint64 length, guint64 limit)
{
  return offset <= limit && length <= limit - offset;
}

static void
entry_free (gpointer p)
{
  ZipEntry *e = p;

  g_free (e->member.name);
  g_free (e);
}

void
vae_zip_free (VaeZip *zip)
{
  if (!zip)
    return;
  g_ptr_array_unref (zip->entries);
  g_hash_table_unref (zip->by_name);
  g_free (zip->path);
  g_free (zip);
}

static gboolean
fail (VaeZip *zip, GError **error, const gchar *what)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: corrupt zip archive: %s"), zip->path,
               what);
  return FALSE;
}

/* Finds the central directory: (zip64) end record → count, offset, size. */
static gboolean
find_directory (VaeZip *zip, guint64 *count, guint64 *offset, guint64 *length, GError **error)
{
  const guint8 *b = zip->bytes;
  gsize         end = 0;
  gboolean      found = FALSE;

  if (zip->size < 22)
    return fail (zip, error, "too short for an end-of-directory record");
  for (gsize p = zip->size - 22 + 1; p-- > 0 && zip->size - p <= 22 + 65535;)
    if (rd32 (b + p) == SIG_END)
      {
        end = p;
        found = TRUE;
        break;
      }
  if (!found)
    return fail (zip, error, "no end-of-directory record (truncated?)");
  if (rd16 (b + end + 4) != 0 || rd16 (b + end + 6) != 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: multi-volume zip archives are not supported"), zip->path);
      return FALSE;
    }
  *count = rd16 (b + end + 10);
  *length = rd32 (b + end + 12);
  *offset = rd32 (b + end + 16);
  if (*count == 0xffff || *length == 0xffffffffu || *offset == 0xffffffffu)
    {
      guint64 rec;
      if (end < 20 || rd32 (b + end - 20) != SIG_END64_LOCATE)
        return fail (zip, error, "zip64 locator missing");
      rec = rd64 (b + end - 20 + 8);
      if (!inside (rec, 56, end) || rd32 (b + rec) != SIG_END64)
        return fail (zip, error, "zip64 end record outside the archive");
      *count = rd64 (b + rec + 32);
      *length = rd64 (b + rec + 40);
      *offset = rd64 (b + rec + 48);
    }
  if (!inside (*offset, *length, end))
    return fail (zip, error, "central directory outside the archive");
  return TRUE;
}

/* zip64 extra field: 64-bit values for the 32-bit fields that read all ones. */
static gboolean
read_zip64_extra (const guint8 *extra, guint16 extra_len, ZipEntry *e)
{
  for (guint p = 0; p + 4 <= extra_len;)
    {
      guint16 id = rd16 (extra + p), len = rd16 (extra + p + 2);
      guint   q = p + 4;
      if (p + 4 + (guint) len > extra_len)
        return FALSE;
      if (id == 0x0001)
        {
          guint64 *fields[] = { &e->uncompressed, &e->compressed, &e->local_offset };
          for (guint i = 0; i < 3; i++)
            if (*fields[i] == 0xffffffffu)
              {
                if (q + 8 > p + 4 + (guint) len)
                  return FALSE;
                *fields[i] = rd64 (extra + q);
                q += 8;
              }
        }
      p += 4 + len;
    }
  return TRUE;
}

static gboolean
read_entry (VaeZip *zip, guint64 *pos, guint64 dir_end, GError **error)
{
  const guint8 *b = zip->bytes;
  const guint8 *h = b + *pos;
  guint16       name_len, extra_len, comment_len;
  ZipEntry     *e;
  guint64       data;

  if (!inside (*pos, 46, dir_end) || rd32 (h) != SIG_CENTRAL)
    return fail (zip, error, "central directory entry truncated");
  name_len = rd16 (h + 28);
  extra_len = rd16 (h + 30);
  comment_len = rd16 (h + 32);
  if (!inside (*pos + 46, (guint64) name_len + extra_len + comment_len, dir_end))
    return fail (zip, error, "central directory entry truncated");
  e = g_new0 (ZipEntry, 1);
  e->member.name = g_strndup ((const gchar *) h + 46, name_len);
  g_ptr_array_add (zip->entries, e);
  e->flags = rd16 (h + 8);
  e->method = rd16 (h + 10);
  e->crc = rd32 (h + 16);
  e->compressed = rd32 (h + 20);
  e->uncompressed = rd32 (h + 24);
  e->local_offset = rd32 (h + 42);
  *pos += 46 + (guint64) name_len + extra_len + comment_len;
  if (strlen (e->member.name) != name_len || !g_utf8_validate (e->member.name, -1, NULL))
    return fail (zip, error, "a member name is not text");
  if (!read_zip64_extra (h + 46 + name_len, extra_len, e))
    return fail (zip, error, "bad zip64 extra field");
  if (g_hash_table_contains (zip->by_name, e->member.name))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: zip member '%s' appears twice"),
                   zip->path, e->member.name);
      return FALSE;
    }
  g_hash_table_insert (zip->by_name, e->member.name, e);

  /* the local header repeats the name and has its own extra field */
  if (!inside (e->local_offset, 30, zip->size) || rd32 (b + e->local_offset) != SIG_LOCAL)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: zip member '%s' points outside the archive"), zip->path, e->member.name);
      return FALSE;
    }
  data = e->local_offset + 30 + rd16 (b + e->local_offset + 26) + rd16 (b + e->local_offset + 28);
  if (!inside (data, e->compressed, zip->size))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: zip member '%s' points outside the archive (truncated?)"), zip->path,
                   e->member.name);
      return FALSE;
    }
  e->member.data = b + data;
  e->member.size = (gsize) e->compressed;
  return TRUE;
}

VaeZip *
vae_zip_open (const guint8 *bytes, gsize size, const gchar *path, GError **error)
{
  VaeZip *zip = g_new0 (VaeZip, 1);
  guint64 count, offset, length, pos;

  zip->bytes = bytes;
  zip->size = size;
  zip->path = g_strdup (path);
  zip->entries = g_ptr_array_new_with_free_func (entry_free);
  zip->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  if (!find_directory (zip, &count, &offset, &length, error))
    goto fail;
  if (count > length / 46)
    {
      fail (zip, error, "more entries than the central directory can hold");
      goto fail;
    }
  pos = offset;
  for (guint64 i = 0; i < count; i++)
    if (!read_entry (zip, &pos, offset + length, error))
      goto fail;
  return zip;

fail:
  vae_zip_free (zip);
  return NULL;
}

guint
vae_zip_count (const VaeZip *zip)
{
  return zip->entries->len;
}

const gchar *
vae_zip_name (const VaeZip *zip, guint index)
{
  return ((ZipEntry *) zip->entries->pdata[index])->member.name;
}

static gboolean
inflate_member (VaeZip *zip, ZipEntry *e, GPtrArray *owned, GError **error)
{
  z_stream zs = { 0 };
  guint8  *out;
  guint64  most;
  int      rc;

  /* deflate cannot expand beyond 1032:1, so a larger claim is a lie (found
   * by fuzzing: a 600-byte file asking for a 4 GB buffer) */
  if (!g_uint64_checked_mul (&most, e->compressed, DEFLATE_MAX_RATIO) ||
      !g_uint64_checked_add (&most, most, 64) || e->uncompressed > most ||
      e->uncompressed > G_MAXSIZE)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: zip member '%s' claims %" PRIu64 " bytes from %" PRIu64
                      " compressed, more than deflate can produce"),
                   zip->path, e->member.name, e->uncompressed, e->compressed);
      return FALSE;
    }
  out = vae_try_alloc ((gsize) e->uncompressed, e->member.name, error);
  if (!out)
    return FALSE;
  if (inflateInit2 (&zs, -MAX_WBITS) != Z_OK)
    {
      g_free (out);
      return fail (zip, error, "zlib failed to start");
    }
  /* z_stream counts in uInt: feed and drain in pieces below 4 GiB.  An empty
   * member still gets one byte of room (the buffer has it) so zlib can finish. */
  {
    const guint8 *in = e->member.data;
    guint64       in_left = e->compressed, out_done = 0;
    do
      {
        guint chunk_in = (guint) MIN (in_left, (guint64) 1 << 30);
        guint chunk_out = (guint) MAX (1, MIN (e->uncompressed - out_done, (guint64) 1 << 30));
        zs.next_in = (Bytef *) in;
        zs.avail_in = chunk_in;
        zs.next_out = out + out_done;
        zs.avail_out = chunk_out;
        rc = inflate (&zs, Z_NO_FLUSH);
        in += chunk_in - zs.avail_in;
        in_left -= chunk_in - zs.avail_in;
        out_done += chunk_out - zs.avail_out;
      }
    while (rc == Z_OK && in_left > 0 && out_done < e->uncompressed);
    inflateEnd (&zs);
    if (rc != Z_STREAM_END || out_done != e->uncompressed)
      {
        g_free (out);
        g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                     _ ("%s: zip member '%s' does not inflate to its size"), zip->path,
                     e->member.name);
        return FALSE;
      }
  }
  g_ptr_array_add (owned, out);
  e->member.data = out;
  e->member.size = (gsize) e->uncompressed;
  return TRUE;
}

guint64
vae_zip_size (const VaeZip *zip, const gchar *name)
{
  const ZipEntry *e = g_hash_table_lookup (zip->by_name, name);

  return e ? e->uncompressed : 0;
}

const VaeZipMember *
vae_zip_get (VaeZip *zip, const gchar *name, GPtrArray *owned, GError **error)
{
  ZipEntry *e = g_hash_table_lookup (zip->by_name, name);

  if (!e)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: zip member '%s' is missing"),
                   zip->path, name);
      return NULL;
    }
  if (e->loaded)
    return &e->member;
  if (e->flags & 1)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED, _ ("%s: zip member '%s' is encrypted"),
                   zip->path, name);
      return NULL;
    }
  if (e->method == 0)
    {
      if (e->compressed != e->uncompressed)
        {
          fail (zip, error, "a stored member's sizes differ");
          return NULL;
        }
    }
  else if (e->method == 8)
    {
      if (!inflate_member (zip, e, owned, error))
        return NULL;
    }
  else
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: zip member '%s' uses compression method %u (only stored and deflate are "
                      "supported)"),
                   zip->path, name, e->method);
      return NULL;
    }
  {
    uLong crc = crc32 (0L, Z_NULL, 0);
    for (gsize done = 0; done < e->member.size;)
      {
        uInt chunk = (uInt) MIN (e->member.size - done, (gsize) 1 << 30);
        crc = crc32 (crc, e->member.data + done, chunk);
        done += chunk;
      }
    if ((guint32) crc != e->crc)
      {
        g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                     _ ("%s: zip member '%s' is corrupt (CRC mismatch)"), zip->path, name);
        return NULL;
      }
  }
  e->loaded = TRUE;
  return &e->member;
}
