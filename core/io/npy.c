/* .npy files (NumPy format 1.0–3.0): float32 latents [1, C, h, w] and
 * images [H, W, 3] in [0, 1].
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <string.h>
#include <unistd.h>

typedef struct
{
  VaeDtype dtype;
  gint     ndim;
  gint64   shape[VAE_MAX_DIMS];
  gsize    n_elements;
  guint64  data_offset;
} NpyArray;

static gboolean
npy_fail (const gchar *path, const gchar *what, GError **error)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: not a usable .npy file: %s"), path,
               what);
  return FALSE;
}

static const gchar *
skip_spaces (const gchar *p)
{
  while (*p == ' ')
    p++;
  return p;
}

/* A Python string literal in quotes; its text (no escapes: numpy writes
 * none in the three keys it uses) into *TEXT. */
static const gchar *
parse_string (const gchar *p, gchar **text)
{
  const gchar  quote = *p;
  const gchar *end;

  if (quote != '\'' && quote != '"')
    return NULL;
  if (!(end = strchr (p + 1, quote)) || memchr (p + 1, '\\', (gsize) (end - p - 1)))
    return NULL;
  *text = g_strndup (p + 1, (gsize) (end - p - 1));
  return end + 1;
}

/* "(d0, d1, …)" into A's shape, the element count checked. */
static const gchar *
parse_shape (const gchar *p, NpyArray *a)
{
  if (*p++ != '(')
    return NULL;
  a->ndim = 0;
  a->n_elements = 1;
  for (p = skip_spaces (p); *p != ')'; p = skip_spaces (p))
    {
      gchar  *end;
      guint64 d;
      if (!g_ascii_isdigit (*p))
        return NULL;
      d = g_ascii_strtoull (p, &end, 10);
      if (a->ndim == VAE_MAX_DIMS || d > G_MAXINT32 ||
          !vae_size_mul (a->n_elements, (gsize) d, &a->n_elements))
        return NULL;
      a->shape[a->ndim++] = (gint64) d;
      p = skip_spaces (end);
      if (*p == ',')
        p++;
      else if (*p != ')')
        return NULL;
    }
  return p + 1;
}

/* The header is a Python dict literal with exactly the keys descr,
 * fortran_order and shape; it is parsed as one (searching it for 'shape'
 * found the word inside a string). */
static gboolean
parse_header (const gchar *path, const gchar *header, NpyArray *a, GError **error)
{
  g_autofree gchar *descr = NULL;
  gboolean          have_order = FALSE, have_shape = FALSE, fortran = FALSE;
  const gchar      *p = skip_spaces (header);

  if (*p++ != '{')
    return npy_fail (path, "the header is not a dict", error);
  for (p = skip_spaces (p); *p != '}'; p = skip_spaces (p))
    {
      g_autofree gchar *key = NULL;
      if (!(p = parse_string (p, &key)) || *(p = skip_spaces (p)) != ':')
        return npy_fail (path, "malformed header", error);
      p = skip_spaces (p + 1);
      if (strcmp (key, "descr") == 0 && !descr)
        p = parse_string (p, &descr);
      else if (strcmp (key, "fortran_order") == 0 && !have_order)
        {
          have_order = TRUE;
          fortran = g_str_has_prefix (p, "True");
          p = fortran || g_str_has_prefix (p, "False") ? p + (fortran ? 4 : 5) : NULL;
        }
      else if (strcmp (key, "shape") == 0 && !have_shape)
        {
          have_shape = TRUE;
          p = parse_shape (p, a);
        }
      else
        return npy_fail (
            path, "the header's keys must be descr, fortran_order and shape, once each", error);
      if (!p)
        return npy_fail (path, "malformed header", error);
      p = skip_spaces (p);
      if (*p == ',')
        p++;
      else if (*p != '}')
        return npy_fail (path, "malformed header", error);
    }
  if (*skip_spaces (p + 1) != '\0' && *skip_spaces (p + 1) != '\n')
    return npy_fail (path, "text after the header dict", error);
  if (!descr || !have_order || !have_shape)
    return npy_fail (path, "header lacks descr, fortran_order or shape", error);
  if (strcmp (descr, "<f4") == 0)
    a->dtype = VAE_DTYPE_F32;
  else if (strcmp (descr, "<f8") == 0)
    a->dtype = VAE_DTYPE_F64;
  else if (strcmp (descr, "<f2") == 0)
    a->dtype = VAE_DTYPE_F16;
  else
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: .npy dtype '%s' is not supported (use little-endian float32, '<f4')"),
                   path, descr);
      return FALSE;
    }
  if (fortran)
    return npy_fail (path, "Fortran-ordered arrays are not supported", error);
  return TRUE;
}

/* Reads and checks the preamble and header of the file open on FD (SIZE
 * bytes), leaving the data's place in A. */
static gboolean
npy_parse (const gchar *path, gint fd, gsize size, NpyArray *a, GError **error)
{
  guint8            pre[12];
  gsize             header_len, offset, n_bytes;
  g_autofree gchar *header = NULL;

  if (size < 10)
    return npy_fail (path, "no NUMPY magic", error);
  if (!vae_file_pread (fd, path, pre, MIN (size, sizeof pre), 0, error))
    return FALSE;
  if (memcmp (pre, "\x93NUMPY", 6) != 0)
    return npy_fail (path, "no NUMPY magic", error);
  if (pre[6] == 1)
    {
      header_len = pre[8] | (pre[9] << 8);
      offset = 10;
    }
  else if ((pre[6] == 2 || pre[6] == 3) && size >= 12)
    {
      header_len = pre[8] | (pre[9] << 8) | ((gsize) pre[10] << 16) | ((gsize) pre[11] << 24);
      offset = 12;
    }
  else
    return npy_fail (path, "unknown format version", error);
  if (header_len > size - offset || header_len > vae_limit (VAE_LIMIT_HEADER_BYTES))
    return npy_fail (path, "header longer than the file", error);
  if (!(header = vae_try_alloc (header_len + 1, path, error)) ||
      !vae_file_pread (fd, path, header, header_len, offset, error))
    return FALSE;
  if (strlen (header) != header_len)
    return npy_fail (path, "the header holds a NUL byte", error);
  if (!parse_header (path, header, a, error))
    return FALSE;
  offset += header_len;
  if (!vae_size_mul (a->n_elements, vae_dtype_size (a->dtype), &n_bytes) ||
      n_bytes != size - offset)
    return npy_fail (path, "data size does not match the shape (truncated?)", error);
  a->data_offset = offset;
  return TRUE;
}

/* Channels, height and width from an image [H, W, 3] or a latent [1, C, h,
 * w], every size checked before anything is allocated. */
static gboolean
npy_layout (const gchar *path, const NpyArray *a, gboolean image, gint *c, gint *h, gint *w,
            GError **error)
{
  g_autofree gchar *shape = vae_shape_text (a->shape, a->ndim);

  if (image && a->ndim == 3 && a->shape[2] == 3)
    *c = 3, *h = (gint) a->shape[0], *w = (gint) a->shape[1];
  else if (!image && a->ndim == 4 && a->shape[0] > 1)
    {
      /* one rule for .npy and .latent files: a batch is refused, not cut */
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("%s holds a batch of %" PRId64 " latents %s; only files of one latent "
                      "are read (split the batch)"),
                   path, a->shape[0], shape);
      return FALSE;
    }
  else if (!image && a->ndim == 4 && a->shape[0] == 1)
    *c = (gint) a->shape[1], *h = (gint) a->shape[2], *w = (gint) a->shape[3];
  else
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s: expected %s, got an array of %s"),
                   path, image ? "an image of shape [H, W, 3]" : "a latent of shape [1, C, h, w]",
                   shape);
      return FALSE;
    }
  if (*c < 1 || *h < 1 || *w < 1)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s holds an empty array %s"), path,
                   shape);
      return FALSE;
    }
  return !image || vae_check_image_size (*w, *h, path, error);
}

/* The C × H × W tensor of the data BYTES in A's dtype and layout. */
static VaeTensor *
npy_tensor (const NpyArray *a, const guint8 *bytes, gboolean image, gint c, gint h, gint w,
            const gchar *path, GError **error)
{
  VaeTensor         *t = vae_tensor_new (c, h, w, error);
  g_autofree gfloat *hwc = NULL;

  if (!t || !image)
    {
      if (t)
        vae_convert_to_float (a->dtype, bytes, t->data, a->n_elements);
      return t;
    }
  if (!(hwc = vae_try_alloc_floats (a->n_elements, path, error)))
    {
      vae_tensor_free (t);
      return NULL;
    }
  vae_convert_to_float (a->dtype, bytes, hwc, a->n_elements);
  for (gsize i = 0; i < a->n_elements; i++)
    t->data[(i % 3) * (gsize) h * w + i / 3] = hwc[i];
  return t;
}

static VaeTensor *
npy_read (const gchar *path, gboolean image, GError **error)
{
  NpyArray           a;
  gsize              size;
  gint               c, h, w, fd = vae_file_open (path, &size, error);
  g_autofree guint8 *bytes = NULL;
  VaeTensor         *t = NULL;

  if (fd < 0)
    return NULL;
  if (npy_parse (path, fd, size, &a, error) && npy_layout (path, &a, image, &c, &h, &w, error) &&
      (bytes = vae_try_alloc_uninit (size - a.data_offset, path, error)) &&
      vae_file_pread (fd, path, bytes, size - a.data_offset, a.data_offset, error))
    t = npy_tensor (&a, bytes, image, c, h, w, path, error);
  close (fd);
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
  g_autoptr (GString) header = g_string_new ("{'descr': '<f4', 'fortran_order': False, 'shape': (");
  gsize      n = 1;
  guint8     preamble[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0 };
  VaeOutput *out;
  FILE      *f;

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
  if (!(out = vae_output_new (path, error)))
    return FALSE;
  f = vae_output_file (out);
  return vae_output_close (out,
                           fwrite (preamble, 1, 10, f) == 10 &&
                               fwrite (header->str, 1, header->len, f) == header->len &&
                               fwrite (data, sizeof (gfloat), n, f) == n,
                           error);
}

gboolean
vae_npy_write_latent (const gchar *path, const VaeTensor *latent, GError **error)
{
  gint64 shape[4] = { 1, latent->channels, latent->height, latent->width };

  return vae_tensor_check_output (latent, path, error) &&
         npy_write (path, shape, 4, latent->data, error);
}

gboolean
vae_npy_write_image (const gchar *path, const VaeTensor *image, GError **error)
{
  gint64             shape[3] = { image->height, image->width, image->channels };
  const gsize        plane = (gsize) image->height * image->width;
  g_autofree gfloat *hwc = NULL;

  if (!vae_tensor_check_output (image, path, error) ||
      !(hwc = vae_try_alloc_floats (vae_tensor_n_elements (image), path, error)))
    return FALSE;
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < image->channels; c++)
      hwc[i * image->channels + c] = image->data[c * plane + i];
  return npy_write (path, shape, 3, hwc, error);
}
