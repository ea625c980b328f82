/* Weight files: dtypes, the name → tensor container, and loading by content.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <math.h>
#include <string.h>

static const struct
{
  const gchar *name;
  gsize        size;
  gboolean     is_float;
} dtype_info[] = {
  [VAE_DTYPE_F64] = { "F64", 8, TRUE },          [VAE_DTYPE_F32] = { "F32", 4, TRUE },
  [VAE_DTYPE_F16] = { "F16", 2, TRUE },          [VAE_DTYPE_BF16] = { "BF16", 2, TRUE },
  [VAE_DTYPE_I64] = { "I64", 8, FALSE },         [VAE_DTYPE_I32] = { "I32", 4, FALSE },
  [VAE_DTYPE_I16] = { "I16", 2, FALSE },         [VAE_DTYPE_I8] = { "I8", 1, FALSE },
  [VAE_DTYPE_U8] = { "U8", 1, FALSE },           [VAE_DTYPE_BOOL] = { "BOOL", 1, FALSE },
  [VAE_DTYPE_F8_E4M3] = { "F8_E4M3", 1, FALSE }, [VAE_DTYPE_F8_E5M2] = { "F8_E5M2", 1, FALSE },
};

const gchar *
vae_dtype_name (VaeDtype dtype)
{
  return dtype_info[dtype].name;
}

gsize
vae_dtype_size (VaeDtype dtype)
{
  return dtype_info[dtype].size;
}

gboolean
vae_dtype_is_float (VaeDtype dtype)
{
  return dtype_info[dtype].is_float;
}

gboolean
vae_dtype_from_name (const gchar *name, VaeDtype *dtype)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtype_info); i++)
    if (g_strcmp0 (name, dtype_info[i].name) == 0)
      {
        *dtype = (VaeDtype) i;
        return TRUE;
      }
  return FALSE;
}

/* IEEE half → float, exact for every input including subnormals. */
gfloat
vae_half_to_float (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16;
  guint32 exponent = (h >> 10) & 0x1f;
  guint32 mantissa = h & 0x3ff;
  guint32 bits;
  gfloat  f;

  if (exponent == 0x1f)
    bits = sign | 0x7f800000 | (mantissa << 13);
  else if (exponent != 0)
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  else if (mantissa == 0)
    bits = sign;
  else
    {
      /* subnormal: value = mantissa · 2^-24, exact in float32 */
      f = (gfloat) mantissa * 5.9604644775390625e-8f;
      return sign ? -f : f;
    }
  memcpy (&f, &bits, 4);
  return f;
}

gfloat
vae_bfloat16_to_float (guint16 b)
{
  guint32 bits = (guint32) b << 16;
  gfloat  f;

  memcpy (&f, &bits, 4);
  return f;
}

/* float → half, round to nearest even (used when writing test files). */
guint16
vae_float_to_half (gfloat f)
{
  guint32 x;
  guint32 sign, mantissa;
  gint    exponent;

  memcpy (&x, &f, 4);
  sign = (x >> 16) & 0x8000;
  exponent = (gint) ((x >> 23) & 0xff) - 127 + 15;
  mantissa = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff)
    return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  if (exponent >= 31)
    return sign | 0x7c00;
  if (exponent <= 0)
    {
      guint32 shift, half_bits, rest, halfway;
      if (exponent < -10)
        return sign;
      mantissa |= 0x800000;
      shift = (guint32) (14 - exponent);
      half_bits = mantissa >> shift;
      rest = mantissa & ((1u << shift) - 1);
      halfway = 1u << (shift - 1);
      if (rest > halfway || (rest == halfway && (half_bits & 1)))
        half_bits++;
      return sign | half_bits;
    }
  {
    guint32 h = sign | ((guint32) exponent << 10) | (mantissa >> 13);
    guint32 rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
      h++; /* may carry into the exponent: still correct */
    return (guint16) h;
  }
}

guint16
vae_float_to_bfloat16 (gfloat f)
{
  guint32 x;

  memcpy (&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000)
    return (guint16) ((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return (guint16) (x >> 16);
}

void
vae_convert_to_float (VaeDtype dtype, const guint8 *src, gfloat *dst, gsize n)
{
  switch (dtype)
    {
    case VAE_DTYPE_F32:
      memcpy (dst, src, n * 4);
      break;
    case VAE_DTYPE_F64:
      for (gsize i = 0; i < n; i++)
        {
          gdouble d;
          memcpy (&d, src + 8 * i, 8);
          dst[i] = (gfloat) d;
        }
      break;
    case VAE_DTYPE_F16:
      for (gsize i = 0; i < n; i++)
        dst[i] = vae_half_to_float ((guint16) (src[2 * i] | (src[2 * i + 1] << 8)));
      break;
    case VAE_DTYPE_BF16:
      for (gsize i = 0; i < n; i++)
        dst[i] = vae_bfloat16_to_float ((guint16) (src[2 * i] | (src[2 * i + 1] << 8)));
      break;
    default:
      g_return_if_reached ();
    }
}

static void
entry_free (gpointer p)
{
  VaeWeightEntry *e = p;

  g_free (e->name);
  g_free (e);
}

VaeWeights *
vae_weights_new (const gchar *path)
{
  VaeWeights *w = g_new0 (VaeWeights, 1);

  w->path = g_strdup (path);
  w->entries = g_ptr_array_new_with_free_func (entry_free);
  w->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  w->buffers = g_ptr_array_new_with_free_func (g_free);
  return w;
}

void
vae_weights_free (VaeWeights *weights)
{
  if (!weights)
    return;
  g_hash_table_unref (weights->by_name);
  g_ptr_array_unref (weights->entries);
  g_ptr_array_unref (weights->buffers);
  g_free (weights->contents);
  g_free (weights->path);
  g_free (weights);
}

gboolean
vae_weights_add (VaeWeights *weights, const gchar *name, VaeDtype dtype, gint ndim,
                 const gint64 *shape, const guint8 *data, GError **error)
{
  VaeWeightEntry *e;
  gsize           n = 1;

  if (g_hash_table_contains (weights->by_name, name))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: tensor '%s' appears twice"),
                   weights->path, name);
      return FALSE;
    }
  if (ndim < 0 || ndim > VAE_MAX_DIMS)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: tensor '%s' has %d dimensions (at most %d)"), weights->path, name, ndim,
                   VAE_MAX_DIMS);
      return FALSE;
    }
  for (gint i = 0; i < ndim; i++)
    if (shape[i] < 0 || !vae_size_mul (n, (gsize) shape[i], &n) || n > VAE_MAX_TENSOR_ELEMENTS)
      {
        g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: tensor '%s' has an invalid shape"),
                     weights->path, name);
        return FALSE;
      }
  e = g_new0 (VaeWeightEntry, 1);
  e->name = g_strdup (name);
  e->dtype = dtype;
  e->ndim = ndim;
  memcpy (e->shape, shape, sizeof (gint64) * ndim);
  e->n_elements = n;
  e->data = data;
  g_ptr_array_add (weights->entries, e);
  g_hash_table_insert (weights->by_name, e->name, e);
  return TRUE;
}

gchar *
vae_shape_text (const gint64 *shape, gint ndim)
{
  GString *s = g_string_new ("[");

  for (gint d = 0; d < ndim; d++)
    g_string_append_printf (s, "%s%" PRId64, d ? ", " : "", shape[d]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

const VaeWeightEntry *
vae_weights_lookup (const VaeWeights *weights, const gchar *name)
{
  return g_hash_table_lookup (weights->by_name, name);
}

const VaeWeightEntry *
vae_weights_lookupf (const VaeWeights *weights, const gchar *format, ...)
{
  g_autofree gchar *name = NULL;
  va_list           args;

  va_start (args, format);
  name = g_strdup_vprintf (format, args);
  va_end (args);
  return vae_weights_lookup (weights, name);
}

gboolean
vae_weights_missing_weight (const VaeWeights *weights, const gchar *prefix, GError **error)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: tensor '%s.weight' is missing"),
               weights->path, prefix);
  return FALSE;
}

gboolean
vae_weights_wrong_shape (const VaeWeights *weights, const gchar *name, const gchar *want,
                         GError **error)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: tensor '%s' should be %s"), weights->path,
               name, want);
  return FALSE;
}

const gchar *
vae_weights_get_path (const VaeWeights *weights)
{
  return weights->path;
}

guint
vae_weights_count (const VaeWeights *weights)
{
  return weights->entries->len;
}

const gchar *
vae_weights_name (const VaeWeights *weights, guint index)
{
  g_return_val_if_fail (index < weights->entries->len, NULL);
  return ((VaeWeightEntry *) weights->entries->pdata[index])->name;
}

gboolean
vae_weights_shape (const VaeWeights *weights, const gchar *name, gint *ndim,
                   gint64 shape[VAE_MAX_DIMS], VaeDtype *dtype)
{
  const VaeWeightEntry *e = vae_weights_lookup (weights, name);

  if (!e)
    return FALSE;
  if (ndim)
    *ndim = e->ndim;
  if (shape)
    memcpy (shape, e->shape, sizeof (gint64) * e->ndim);
  if (dtype)
    *dtype = e->dtype;
  return TRUE;
}

gfloat *
vae_weights_get_float (const VaeWeights *weights, const gchar *name, gsize *n_elements,
                       GError **error)
{
  const VaeWeightEntry *e = vae_weights_lookup (weights, name);
  gfloat               *out;

  if (!e)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: tensor '%s' is missing"),
                   weights->path, name);
      return NULL;
    }
  if (!vae_dtype_is_float (e->dtype))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: tensor '%s' has dtype %s; only F64, F32, F16 and BF16 tensors are "
                      "supported"),
                   weights->path, name, vae_dtype_name (e->dtype));
      return NULL;
    }
  out = vae_try_alloc_floats (e->n_elements, name, error);
  if (!out)
    return NULL;
  vae_convert_to_float (e->dtype, e->data, out, e->n_elements);
  /* NaN or infinity in a weight turns whole outputs black or NaN */
  for (gsize i = 0; i < e->n_elements; i++)
    if (!isfinite (out[i]))
      {
        g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                     _ ("%s: tensor '%s' holds a non-finite value (%g) at element %zu"),
                     weights->path, name, (gdouble) out[i], i);
        g_free (out);
        return NULL;
      }
  if (n_elements)
    *n_elements = e->n_elements;
  return out;
}

/* Single-file checkpoints hold the VAE under `first_stage_model.` (or
 * `vae.`) beside the diffusion model; keep only the VAE then.  Training
 * leftovers (`loss.*`, `model_ema.*`) are dropped. */
void
vae_weights_strip_prefixes (VaeWeights *weights)
{
  static const gchar *prefixes[] = { "first_stage_model.", "vae." };
  const gchar        *prefix = NULL;
  GPtrArray          *kept;

  for (guint p = 0; p < G_N_ELEMENTS (prefixes) && !prefix; p++)
    for (guint i = 0; i < weights->entries->len; i++)
      if (g_str_has_prefix (vae_weights_name (weights, i), prefixes[p]))
        {
          prefix = prefixes[p];
          break;
        }

  kept = g_ptr_array_new_with_free_func (entry_free);
  g_hash_table_remove_all (weights->by_name);
  for (guint i = 0; i < weights->entries->len; i++)
    {
      VaeWeightEntry *e = weights->entries->pdata[i];
      const gchar    *name = e->name;

      if (prefix && !g_str_has_prefix (name, prefix))
        continue;
      if (prefix)
        name += strlen (prefix);
      if (g_str_has_prefix (name, "loss.") || g_str_has_prefix (name, "model_ema.") ||
          g_hash_table_contains (weights->by_name, name))
        continue;
      weights->entries->pdata[i] = NULL;
      if (name != e->name)
        {
          gchar *stripped = g_strdup (name);
          g_free (e->name);
          e->name = stripped;
        }
      g_ptr_array_add (kept, e);
      g_hash_table_insert (weights->by_name, e->name, e);
    }
  g_ptr_array_set_free_func (weights->entries, NULL);
  for (guint i = 0; i < weights->entries->len; i++)
    if (weights->entries->pdata[i])
      entry_free (weights->entries->pdata[i]);
  g_ptr_array_unref (weights->entries);
  weights->entries = kept;
}

void
vae_weights_drop_prefix (VaeWeights *weights, const gchar *prefix)
{
  GPtrArray *kept = g_ptr_array_new_with_free_func (entry_free);

  for (guint i = 0; i < weights->entries->len; i++)
    if (!g_str_has_prefix (vae_weights_name (weights, i), prefix))
      g_ptr_array_add (kept, weights->entries->pdata[i]);
  if (kept->len == 0 || kept->len == weights->entries->len)
    {
      g_ptr_array_set_free_func (kept, NULL);
      g_ptr_array_unref (kept);
      return;
    }
  g_ptr_array_set_free_func (weights->entries, NULL);
  for (guint i = 0; i < weights->entries->len; i++)
    {
      VaeWeightEntry *e = weights->entries->pdata[i];
      if (g_str_has_prefix (e->name, prefix))
        {
          g_hash_table_remove (weights->by_name, e->name);
          entry_free (e);
        }
    }
  g_ptr_array_unref (weights->entries);
  weights->entries = kept;
}

/* The pickle torch.save wrote before 1.6 begins with the magic number
 * 0x1950a86a20f9469cfc6c as a LONG1; testing byte 0 alone would take a
 * safetensors file whose header is 128, 384… bytes long (0x80 first) for one. */
static gboolean
is_legacy_pth (const guint8 *bytes, gsize size)
{
  static const guint8 magic[] = { 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                  0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };

  return size >= 2 + sizeof magic && bytes[0] == 0x80 && bytes[1] >= 2 && bytes[1] <= 5 &&
         memcmp (bytes + 2, magic, sizeof magic) == 0;
}

static gboolean
add_entry (gpointer weights, const gchar *name, VaeDtype dtype, gint ndim, const gint64 *shape,
           const guint8 *data, GError **error)
{
  return vae_weights_add (weights, name, dtype, ndim, shape, data, error);
}

VaeTensorSink
vae_weights_sink (VaeWeights *weights)
{
  return (VaeTensorSink){ weights->path, weights->buffers, add_entry, weights };
}

VaeWeights *
vae_weights_load (const gchar *path, GError **error)
{
  VaeWeights         *weights = vae_weights_new (path);
  const VaeTensorSink sink = vae_weights_sink (weights);
  gsize               size;
  gboolean            ok;

  /* read, not mapped: the file may shrink while it is read (the weights are
   * converted to float anyway, so the copy costs the file's size until the
   * model is built) */
  weights->contents = vae_file_read (path, VAE_LIMIT_MODEL_BYTES, &size, error);
  if (!weights->contents)
    {
      vae_weights_free (weights);
      return NULL;
    }
  if (size >= 4 && memcmp (weights->contents, "PK\003\004", 4) == 0)
    ok = vae_pth_parse (&sink, weights->contents, size, error);
  else if (is_legacy_pth (weights->contents, size))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s is a legacy (pre-1.6) PyTorch file; re-save it with torch.save or "
                      "convert it to safetensors"),
                   path);
      ok = FALSE;
    }
  else
    ok = vae_safetensors_parse (&sink, weights->contents, size, error);

  if (!ok)
    {
      vae_weights_free (weights);
      return NULL;
    }
  vae_weights_strip_prefixes (weights);
  return weights;
}
