/* Planar float32 tensors, their data in the scratch pool.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <math.h>
#include <string.h>

VaeTensor *
vae_tensor_new (gint channels, gint height, gint width, GError **error)
{
  return vae_tensor_new_uninit (channels, height, width, TRUE, error);
}

VaeTensor *
vae_tensor_new_uninit (gint channels, gint height, gint width, gboolean zeroed, GError **error)
{
  VaeTensor *t;
  gsize      n;

  if (channels <= 0 || height <= 0 || width <= 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("empty tensor %d×%d×%d"), channels, height,
                   width);
      return NULL;
    }
  if (!vae_size_mul ((gsize) channels, (gsize) height, &n) || !vae_size_mul (n, width, &n) ||
      n > VAE_MAX_TENSOR_ELEMENTS)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_LIMIT,
                   _ ("tensor %d×%d×%d exceeds the largest allowed (%zu elements)"), channels,
                   height, width, (gsize) VAE_MAX_TENSOR_ELEMENTS);
      return NULL;
    }
  t = g_new0 (VaeTensor, 1);
  t->channels = channels;
  t->height = height;
  t->width = width;
  t->data = vae_scratch_alloc (n * sizeof (gfloat), zeroed, &t->capacity, "a tensor", error);
  if (!t->data)
    {
      g_free (t);
      return NULL;
    }
  return t;
}

VaeTensor *
vae_tensor_rows (const VaeTensor *t, gint y0, gint y1, GError **error)
{
  const gint  a = MAX (0, y0), b = MIN (t->height, y1);
  const gsize row = (gsize) t->width;
  VaeTensor  *band =
      vae_tensor_new_uninit (t->channels, y1 - y0, t->width, a != y0 || b != y1, error);

  if (!band || a >= b)
    return band;
#pragma omp parallel for schedule(dynamic)
  for (gint c = 0; c < t->channels; c++)
    memcpy (band->data + ((gsize) c * band->height + a - y0) * row,
            t->data + ((gsize) c * t->height + a) * row, (b - a) * row * sizeof (gfloat));
  return band;
}

void
vae_tensor_put_rows (VaeTensor *dst, gint y, const VaeTensor *src)
{
  const gsize row = (gsize) src->width;

  g_return_if_fail (src->channels == dst->channels && src->width == dst->width && y >= 0 &&
                    y + src->height <= dst->height);
#pragma omp parallel for schedule(dynamic)
  for (gint c = 0; c < src->channels; c++)
    memcpy (dst->data + ((gsize) c * dst->height + y) * row,
            src->data + (gsize) c * src->height * row, src->height * row * sizeof (gfloat));
}

void
vae_tensor_free (VaeTensor *tensor)
{
  if (!tensor)
    return;
  if (tensor->external)
    ((VaeExternal *) tensor->external)->release (tensor->external);
  vae_scratch_free (tensor->data, tensor->capacity);
  g_free (tensor);
}

gsize
vae_tensor_n_elements (const VaeTensor *tensor)
{
  return (gsize) tensor->channels * tensor->height * tensor->width;
}

gboolean
vae_tensor_check_finite (const VaeTensor *tensor, const gchar *what, GError **error)
{
  gsize n = vae_tensor_n_elements (tensor);
  gsize plane = (gsize) tensor->height * tensor->width;

  for (gsize i = 0; i < n; i++)
    if (!isfinite (tensor->data[i]))
      {
        gsize in_plane = i % plane;
        g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                     _ ("%s holds a non-finite value (%g) at channel %zu"
                        ", x %zu, y %zu"),
                     what, (double) tensor->data[i], i / plane, in_plane % tensor->width,
                     in_plane / tensor->width);
        return FALSE;
      }
  return TRUE;
}

gboolean
vae_tensor_check_output (const VaeTensor *tensor, const gchar *path, GError **error)
{
  g_autofree gchar *what = g_strdup_printf (_ ("the data to write to %s"), path);

  return vae_tensor_check_finite (tensor, what, error);
}
