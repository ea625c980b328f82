/* PNG reading and writing with libpng's classic API (the simplified API
 * converts 16-bit data to linear light, which we do not want).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "png-io.h"
#include "vae-config.h"

#include <glib/gi18n-lib.h>

#include <errno.h>
#include <png.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  const gchar *path;
  GError     **error;
  gboolean     writing;
  GString     *warnings; /* libpng's warnings, told with its error or after a read */
} PngContext;

static void
on_png_error (png_structp png, png_const_charp message)
{
  PngContext *ctx = png_get_error_ptr (png);

  if (ctx->error && !*ctx->error && ctx->writing)
    g_set_error (ctx->error, VAE_ERROR, VAE_ERROR_IO, _ ("cannot write %s: %s"), ctx->path,
                 message);
  else if (ctx->error && !*ctx->error)
    g_set_error (ctx->error, VAE_ERROR, VAE_ERROR_FORMAT, "%s: %s%s%s%s", ctx->path, message,
                 ctx->warnings->len ? " (" : "", ctx->warnings->str, ctx->warnings->len ? ")" : "");
  png_longjmp (png, 1);
}

/* "Invalid IHDR data" says little; the warning before it says which field. */
static void
on_png_warning (png_structp png, png_const_charp message)
{
  PngContext *ctx = png_get_error_ptr (png);

  g_string_append_printf (ctx->warnings, "%s%s", ctx->warnings->len ? "; " : "", message);
}

/* libpng's default writer says "Write Error" and nothing of why. */
static void
write_data (png_structp png, png_bytep data, png_size_t length)
{
  if (fwrite (data, 1, length, png_get_io_ptr (png)) != length)
    png_error (png, g_strerror (errno));
}

static void
flush_data (png_structp png)
{
}

/* Every ancillary chunk PNG 1.2 and libpng know, each name with its NUL. */
static const png_byte ancillary_chunks[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL"
                                           "\0pHYs\0sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0tRNS\0zTXt";

VaeTensor *
vae_png_read (const gchar *path, GError **error)
{
  g_autoptr (GString) warnings = g_string_new (NULL);
  PngContext  ctx = { path, error, FALSE, warnings };
  gsize       size;
  gint        fd = vae_file_open (path, &size, error);
  FILE       *f;
  png_structp png;
  png_infop   info;
  VaeTensor *volatile image = NULL;
  guint8 *volatile rows = NULL;
  guint8 head[8 + 8 + 13]; /* signature, IHDR's length and type, IHDR */

  if (fd < 0)
    return NULL;
  if (!(f = fdopen (fd, "rb")))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_IO, _ ("cannot read %s: %s"), path,
                   g_strerror (errno));
      close (fd);
      return NULL;
    }
  if (fread (head, 1, 8, f) != 8 || png_sig_cmp (head, 0, 8))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s is not a PNG file"), path);
      fclose (f);
      return NULL;
    }
  /* the size, from IHDR before libpng reads on (it allocates for the chunks
   * that follow, and a 65535² header asked for 51 GB later) */
  if (fread (head + 8, 1, sizeof head - 8, f) == sizeof head - 8 &&
      memcmp (head + 12, "IHDR", 4) == 0 &&
      !vae_check_image_size (png_get_uint_32 (head + 16), png_get_uint_32 (head + 20), path, error))
    {
      fclose (f);
      return NULL;
    }
  fseek (f, 8, SEEK_SET);
  png = png_create_read_struct (PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
  info = png_create_info_struct (png);
  if (setjmp (png_jmpbuf (png)))
    {
      vae_tensor_free (image);
      g_free (rows);
      png_destroy_read_struct (&png, &info, NULL);
      fclose (f);
      return NULL;
    }
  png_init_io (png, f);
  png_set_sig_bytes (png, 8);
  /* libpng's own cap (1 000 000 a side here) would refuse before ours, in
   * words that do not say which */
  png_set_user_limits (png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  /* None of the ancillary chunks changes the values we read (alpha is
   * dropped, gamma not applied), and libpng allocates what each declares:
   * a 72-byte file with a 1.5 GB zTXt took 1.5 GB and 12 s (found by
   * fuzz-png; its own cap only warns).  Skipped unread, they cost nothing. */
  png_set_keep_unknown_chunks (png, PNG_HANDLE_CHUNK_NEVER, ancillary_chunks,
                               (int) (sizeof ancillary_chunks / 5));
  png_read_info (png, info);
  png_set_expand (png); /* palette → RGB, low bit depths → 8, tRNS → alpha */
  png_set_gray_to_rgb (png);
  png_set_strip_alpha (png); /* alpha is carried around the VAE, not through it */
  {
    /* Adam7: every pass writes its pixels into the rows read so far */
    const gint passes = png_set_interlace_handling (png);
    png_read_update_info (png, info);
    const guint32 width = png_get_image_width (png, info),
                  height = png_get_image_height (png, info);
    const gint   depth = png_get_bit_depth (png, info);
    const gsize  stride = png_get_rowbytes (png, info);
    const gsize  plane = (gsize) width * height;
    const gfloat max = depth == 16 ? 65535.0f : 255.0f;

    image = vae_tensor_new (3, (gint) height, (gint) width, error);
    rows = image ? g_try_malloc (stride * height) : NULL;
    if (!rows)
      png_error (png, "out of memory");
    for (gint pass = 0; pass < passes; pass++)
      for (guint32 y = 0; y < height; y++)
        png_read_row (png, rows + y * stride, NULL);
    for (gsize i = 0; i < plane; i++)
      for (gint c = 0; c < 3; c++)
        {
          const guint8 *p =
              rows + (i / width) * stride + (i % width) * 3 * (depth / 8) + c * (depth / 8);
          guint v = depth == 16 ? (guint) (p[0] << 8 | p[1]) : p[0];
          image->data[c * plane + i] = (gfloat) v / max;
        }
  }
  png_read_end (png, NULL);
  png_destroy_read_struct (&png, &info, NULL);
  g_free (rows);
  fclose (f);
  if (warnings->len)
    g_message ("%s: %s", path, warnings->str);
  return image;
}

gboolean
vae_png_write (const gchar *path, const VaeTensor *image, gint depth, GError **error)
{
  g_autoptr (GString) warnings = g_string_new (NULL);
  PngContext  ctx = { path, error, TRUE, warnings };
  VaeOutput  *out;
  png_structp png;
  png_infop   info;
  guint8 *volatile row = NULL;
  const gsize  plane = (gsize) image->width * image->height;
  const gint   bytes = depth / 8;
  const gfloat max = depth == 16 ? 65535.0f : 255.0f;

  g_return_val_if_fail (image->channels == 3 && (depth == 8 || depth == 16), FALSE);
  if (!vae_tensor_check_output (image, path, error) || !(out = vae_output_new (path, error)))
    return FALSE;
  png = png_create_write_struct (PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
  info = png_create_info_struct (png);
  if (setjmp (png_jmpbuf (png)))
    {
      g_free (row);
      png_destroy_write_struct (&png, &info);
      return vae_output_close (out, FALSE, error);
    }
  png_set_write_fn (png, vae_output_file (out), write_data, flush_data);
  png_set_IHDR (png, info, image->width, image->height, depth, PNG_COLOR_TYPE_RGB,
                PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  row = g_malloc ((gsize) image->width * 3 * bytes);
  for (gint y = 0; y < image->height; y++)
    {
      for (gint x = 0; x < image->width; x++)
        for (gint c = 0; c < 3; c++)
          {
            gfloat  v = image->data[c * plane + (gsize) y * image->width + x];
            guint   q = (guint) (CLAMP (v, 0.0f, 1.0f) * max + 0.5f);
            guint8 *p = row + ((gsize) x * 3 + c) * bytes;
            if (depth == 16)
              p[0] = q >> 8, p[1] = q & 0xff;
            else
              p[0] = (guint8) q;
          }
      png_write_row (png, row);
    }
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  g_free (row);
  return vae_output_close (out, TRUE, error);
}
