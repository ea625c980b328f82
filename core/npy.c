/* .npy files (NumPy format 1.0–3.0): float32 latents [1, C, h, w] and
 * images [H, W, 3] in [0, 1].
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct
{
  VaeDtype      dtype;
  gint          ndim;
  gint64        shape[VAE_MAX_DIMS];
  const guint8 *data;
  gsize         n_elements;
} NpyArray;

static gboolean
npy_fail (const gchar *path, const gchar *what, GError **error)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: not a usable .npy file: %s"), path,
               what);
  return FALSE;
}

/* The value text after 'KEY': in the header dict, or NULL. */
static const gchar *
header_value (const gchar *header, const gchar *key)
{
  g_autofree gchar *quoted = g_strdup_printf ("'%s'", key);
  const gchar      *at = strstr (header, quoted);

  if (!at)
    return NULL;
  at += strlen (quoted);
  while (*at == ' ' || *at == ':')
    at++;
  return at;
}

static gboolean
parse_header (const gchar *path, const gchar *header, NpyArray *a, GError **error)
{
  const gchar *descr = header_value (header, "descr");
  const gchar *order = header_value (header, "fortran_order");
  const gchar *shape = header_value (header, "shape");

  if (!descr || !order || !shape)
    return npy_fail (path, "header lacks descr, fortran_order or shape", error);
  if (g_str_has_prefix (descr, "'<f4'"))
    a->dtype = VAE_DTYPE_F32;
  else if (g_str_has_prefix (descr, "'<f8'"))
    a->dtype = VAE_DTYPE_F64;
  else if (g_str_has_prefix (descr, "'<f2'"))
    a->dtype = VAE_DTYPE_F16;
  else
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: .npy dtype %.8s is not supported (use little-endian float32)"), path,
                   descr);
      return FALSE;
    }
  if (!g_str_has_prefix (order, "False"))
    return npy_fail (path, "Fortran-ordered arrays are not supported", error);
  if (*shape++ != '(')
    return npy_fail (path, "malformed shape", error);
  a->ndim = 0;
  a->n_elements = 1;
  while (*shape != ')')
    {
      gchar  *end;
      guint64 d;
      while (*shape == ' ')
        shape++;
      if (*shape == ')')
        break;
      d = g_ascii_strtoull (shape, &end, 10);
      if (end == shape || a->ndim == VAE_MAX_DIMS || d > G_MAXINT32 ||
          !vae_size_mul (a->n_elements, (gsize) d, &a->n_elements))
        return npy_fail (path, "malformed shape", error);
      a->shape[a->ndim++] = (gint64) d;
      shape = end;
      while (*shape == ' ')
        shape++;
      if (*shape == ',')
        shape++;
      else if (*shape != ')')
        return npy_fail (path, "malformed shape", error);
    }
  return TRUE;
}

static gboolean
npy_parse (const gchar *path, const guint8 *bytes, gsize size, NpyArray *a, GError **error)
{
  gsize             header_len, offset, n_bytes;
  g_autofree gchar *header = NULL;

  if (size < 10 || memcmp (bytes, "\x93NUMPY", 6) != 0)
    return npy_fail (path, "no NUMPY magic", error);
  if (bytes[6] == 1)
    {
      header_len = bytes[8] | (bytes[9] << 8);
      offset = 10;
    }
  else if ((bytes[6] == 2 || bytes[6] == 3) && size >= 12)
    {
      header_len =
          bytes[8] | (bytes[9] << 8) | ((gsize) bytes[10] << 16) | ((gsize) bytes[11] << 24);
      offset = 12;
    }
  else
    return npy_fail (path, "unknown format version", error);
  if (header_len > size - offset || header_len > vae_limit (VAE_LIMIT_HEADER_BYTES))
    return npy_fail (path, "header longer than the file", error);
  header = g_strndup ((const gchar *) bytes + offset, header_len);
  if (!parse_header (path, header, a, error))
    return FALSE;
  offset += header_len;
  if (!vae_size_mul (a->n_elements, vae_dtype_size (a->dtype), &n_bytes) ||
      n_bytes != size - offset)
    return npy_fail (path, "data size does not match the shape (truncated?)", error);
  a->data = bytes + offset;
  return TRUE;
}

static VaeTensor *
npy_read (const gchar *path, gboolean image, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (GMappedFile) file = g_mapped_file_new (path, FALSE, &local);
  NpyArray   a;
  VaeTensor *t;
  gint       c, h, w;

  if (!file)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_IO, _ ("cannot read %s: %s"), path, local->message);
      return NULL;
    }
  if (!npy_parse (path, (const guint8 *) g_mapped_file_get_contents (file),
                  g_mapped_file_get_length (file), &a, error))
    return NULL;
  if (image && a.ndim == 3 && a.shape[2] == 3)
    c = 3, h = (gint) a.shape[0], w = (gint) a.shape[1];
  else if (!image && a.ndim == 4 && a.shape[0] == 1)
    c = (gint) a.shape[1], h = (gint) a.shape[2], w = (gint) a.shape[3];
  else
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s: expected %s, got a %d-D array"), path,
                   image ? "an image of shape [H, W, 3]" : "a latent of shape [1, C, h, w]",
                   a.ndim);
      return NULL;
    }
  if (!(t = vae_tensor_new (c, h, w, error)))
    return NULL;
  if (!image)
    vae_convert_to_float (a.dtype, a.data, t->data, a.n_elements);
  else
    {
      g_autofree gfloat *hwc = vae_try_alloc_floats (a.n_elements, path, error);
      if (!hwc)
        {
          vae_tensor_free (t);
          return NULL;
        }
      vae_convert_to_float (a.dtype, a.data, hwc, a.n_elements);
      for (gsize i = 0; i < a.n_elements; i++)
        t->data[(i % 3) * (gsize) h * w + i / 3] = hwc[i];
    }
  return t;
}

VaeTensor *
vae_npy_read_latent (const gchar *path, GError **error)
{
  return npy_read (path, FALSE, error);
}

VaeTensor *
vae_npy_read_image (const gchar *path, GError **error)
{
  return npy_read (path, TRUE, error);
}

static gboolean
npy_write (const gchar *path, const gint64 *shape, gint ndim, const gfloat *data, GError **error)
{
  GString *header = g_string_new ("{'descr': '<f4', 'fortran_order': False, 'shape': (");
  gsize    n = 1;
  guint8   preamble[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0 };
  FILE    *f;
  gboolean ok;

  for (gint d = 0; d < ndim; d++)
    {
      g_string_append_printf (header, "%" PRId64 ", ", shape[d]);
      n *= (gsize) shape[d];
    }
  g_string_append (header, "), }");
  while ((header->len + 11) % 64) /* data starts 64-byte aligned, as numpy writes */
    g_string_append_c (header, ' ');
  g_string_append_c (header, '\n');
  preamble[8] = header->len & 0xff;
  preamble[9] = (header->len >> 8) & 0xff;
  f = fopen (path, "wb");
  ok = f && fwrite (preamble, 1, 10, f) == 10 &&
       fwrite (header->str, 1, header->len, f) == header->len &&
       fwrite (data, sizeof (gfloat), n, f) == n;
  if (f)
    ok = (fclose (f) == 0) && ok;
  if (!ok)
    g_set_error (error, VAE_ERROR, VAE_ERROR_IO, _ ("cannot write %s: %s"), path,
                 g_strerror (errno));
  g_string_free (header, TRUE);
  return ok;
}

gboolean
vae_npy_write_latent (const gchar *path, const VaeTensor *latent, GError **error)
{
  gint64 shape[4] = { 1, latent->channels, latent->height, latent->width };
  return npy_write (path, shape, 4, latent->data, error);
}

gboolean
vae_npy_write_image (const gchar *path, const VaeTensor *image, GError **error)
{
  gint64             shape[3] = { image->height, image->width, image->channels };
  const gsize        plane = (gsize) image->height * image->width;
  g_autofree gfloat *hwc = vae_try_alloc_floats (vae_tensor_n_elements (image), path, error);

  if (!hwc)
    return FALSE;
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < image->channels; c++)
      hwc[i * image->channels + c] = image->data[c * plane + i];
  return npy_write (path, shape, 3, hwc, error);
}
