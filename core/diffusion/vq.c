/* Codebooks: loading, k-means++ learning and nearest-entry snapping.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <math.h>
#include <string.h>

#define MAX_ENTRIES 65536

static VaeCodebook *
codebook_new (gint size, gint dim, GError **error)
{
  VaeCodebook *cb = g_new0 (VaeCodebook, 1);

  cb->size = size;
  cb->dim = dim;
  cb->entries = vae_try_alloc_floats ((gsize) size * dim, "a codebook", error);
  cb->norms = cb->entries ? vae_try_alloc_floats (size, "a codebook", error) : NULL;
  if (!cb->norms)
    {
      vae_codebook_free (cb);
      return NULL;
    }
  return cb;
}

static void
update_norms (VaeCodebook *cb)
{
  for (gint k = 0; k < cb->size; k++)
    {
      const gfloat *e = cb->entries + (gsize) k * cb->dim;
      gfloat        sum = 0.0f;
      for (gint d = 0; d < cb->dim; d++)
        sum += e[d] * e[d];
      cb->norms[k] = sum;
    }
}

void
vae_codebook_free (VaeCodebook *codebook)
{
  if (!codebook)
    return;
  g_free (codebook->entries);
  g_free (codebook->norms);
  g_free (codebook);
}

VaeCodebook *
vae_codebook_load (const gchar *path, GError **error)
{
  g_autoptr (VaeWeights) w = vae_weights_load (path, error);
  const gchar *name = NULL;
  gint         ndim;
  gint64       shape[VAE_MAX_DIMS];
  VaeCodebook *cb;
  gfloat      *data;

  if (!w)
    return NULL;
  if (vae_weights_lookup (w, "quantize.embedding.weight"))
    name = "quantize.embedding.weight";
  else if (vae_weights_count (w) == 1)
    name = vae_weights_name (w, 0);
  if (!name || !vae_weights_shape (w, name, &ndim, shape, NULL) || ndim != 2 || shape[0] < 1 ||
      shape[0] > MAX_ENTRIES || shape[1] < 1 || shape[1] > 4096)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("codebook %s must hold one [K, C] tensor (K ≤ %d) or a VQ model's "
                      "quantize.embedding.weight"),
                   path, MAX_ENTRIES);
      return NULL;
    }
  if (!(data = vae_weights_get_float (w, name, NULL, error)))
    return NULL;
  cb = g_new0 (VaeCodebook, 1);
  cb->size = (gint) shape[0];
  cb->dim = (gint) shape[1];
  cb->entries = data;
  cb->norms = g_new (gfloat, cb->size);
  update_norms (cb);
  return cb;
}

gint
vae_codebook_nearest (const VaeCodebook *cb, const gfloat *v)
{
  gfloat vv = 0.0f, best = G_MAXFLOAT;
  gint   best_k = 0;

  for (gint d = 0; d < cb->dim; d++)
    vv += v[d] * v[d];
  for (gint k = 0; k < cb->size; k++)
    {
      const gfloat *e = cb->entries + (gsize) k * cb->dim;
      gfloat        dot = 0.0f, dist;
      for (gint d = 0; d < cb->dim; d++)
        dot += v[d] * e[d];
      dist = vv + cb->norms[k] - 2.0f * dot;
      if (dist < best) /* strict: ties keep the lowest index */
        {
          best = dist;
          best_k = k;
        }
    }
  return best_k;
}

void
vae_codebook_snap (const VaeCodebook *cb, const gfloat *in, gfloat *out, gsize n, gfloat strength,
                   guint64 *counts, gdouble *sq_error)
{
  gdouble error_sum = 0.0;
  gint   *nearest = g_new (gint, n);

#pragma omp parallel for schedule(static)
  for (gsize i = 0; i < n; i++)
    nearest[i] = vae_codebook_nearest (cb, in + i * cb->dim);
  for (gsize i = 0; i < n; i++)
    {
      const gfloat *e = cb->entries + (gsize) nearest[i] * cb->dim;
      for (gint d = 0; d < cb->dim; d++)
        {
          gfloat x = in[i * cb->dim + d];
          error_sum += ((gdouble) x - e[d]) * ((gdouble) x - e[d]);
          out[i * cb->dim + d] = x + strength * (e[d] - x);
        }
      if (counts)
        counts[nearest[i]]++;
    }
  if (sq_error)
    *sq_error += error_sum;
  g_free (nearest);
}

gdouble
vae_codebook_perplexity (const guint64 *counts, gint size)
{
  gdouble total = 0.0, entropy = 0.0;

  for (gint k = 0; k < size; k++)
    total += (gdouble) counts[k];
  for (gint k = 0; k < size && total > 0; k++)
    if (counts[k])
      {
        gdouble p = counts[k] / total;
        entropy -= p * log (p);
      }
  return exp (entropy);
}

/* ---- k-means++ ------------------------------------------------------------ */

static gdouble
uniform (guint64 *state)
{
  guint64 z = (*state += G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));

  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94D049BB133111EB);
  return (gdouble) ((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}

static gdouble
sq_distance (const gfloat *a, const gfloat *b, gint dim)
{
  gdouble s = 0.0;

  for (gint d = 0; d < dim; d++)
    s += ((gdouble) a[d] - b[d]) * ((gdouble) a[d] - b[d]);
  return s;
}

/* Each next centre is drawn with probability ∝ its squared distance to the
 * nearest centre so far (uniformly once every point is a centre). */
static void
seed_centres (VaeCodebook *cb, const gfloat *v, gsize n, guint64 *rng)
{
  gdouble *d2 = g_new (gdouble, n);
  gsize    pick = MIN ((gsize) (uniform (rng) * n), n - 1);

  memcpy (cb->entries, v + pick * cb->dim, sizeof (gfloat) * cb->dim);
  for (gsize i = 0; i < n; i++)
    d2[i] = sq_distance (v + i * cb->dim, cb->entries, cb->dim);
  for (gint k = 1; k < cb->size; k++)
    {
      gdouble total = 0.0, target, acc = 0.0;
      for (gsize i = 0; i < n; i++)
        total += d2[i];
      target = uniform (rng) * total;
      pick = MIN ((gsize) (uniform (rng) * n), n - 1);
      for (gsize i = 0; total > 0 && i < n; i++)
        if ((acc += d2[i]) > target)
          {
            pick = i;
            break;
          }
      memcpy (cb->entries + (gsize) k * cb->dim, v + pick * cb->dim, sizeof (gfloat) * cb->dim);
#pragma omp parallel for schedule(static)
      for (gsize i = 0; i < n; i++)
        d2[i] =
            MIN (d2[i], sq_distance (v + i * cb->dim, cb->entries + (gsize) k * cb->dim, cb->dim));
    }
  g_free (d2);
}

/* One Lloyd step; an entry that attracts no vector keeps its place. */
static void
lloyd_step (VaeCodebook *cb, const gfloat *v, gsize n, gint *assign, gdouble *sums, guint64 *counts)
{
  update_norms (cb);
#pragma omp parallel for schedule(static)
  for (gsize i = 0; i < n; i++)
    assign[i] = vae_codebook_nearest (cb, v + i * cb->dim);
  memset (sums, 0, sizeof (gdouble) * cb->size * cb->dim);
  memset (counts, 0, sizeof (guint64) * cb->size);
  for (gsize i = 0; i < n; i++)
    {
      counts[assign[i]]++;
      for (gint d = 0; d < cb->dim; d++)
        sums[(gsize) assign[i] * cb->dim + d] += v[i * cb->dim + d];
    }
  for (gint k = 0; k < cb->size; k++)
    if (counts[k])
      for (gint d = 0; d < cb->dim; d++)
        cb->entries[(gsize) k * cb->dim + d] = (gfloat) (sums[(gsize) k * cb->dim + d] / counts[k]);
}

VaeCodebook *
vae_codebook_learn (const gfloat *vectors, gsize n, gint dim, gint k, gint iterations, guint64 seed,
                    GError **error)
{
  VaeCodebook *cb;
  guint64      rng = seed;
  gint        *assign;
  gdouble     *sums;
  guint64     *counts;

  if (n == 0 || dim < 1 || k < 1 || k > MAX_ENTRIES || iterations < 0)
    {
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_INPUT,
          _ ("k-means needs vectors, 1 ≤ k ≤ %d and iterations ≥ 0 (got %zu vectors, k = %d)"),
          MAX_ENTRIES, n, k);
      return NULL;
    }
  if (!(cb = codebook_new (k, dim, error)))
    return NULL;
  seed_centres (cb, vectors, n, &rng);
  assign = g_new (gint, n);
  sums = g_new (gdouble, (gsize) k * dim);
  counts = g_new (guint64, k);
  for (gint it = 0; it < iterations; it++)
    lloyd_step (cb, vectors, n, assign, sums, counts);
  update_norms (cb);
  g_free (assign);
  g_free (sums);
  g_free (counts);
  return cb;
}
