/* The CPU kernels of DC-AE's layers (Sana's AutoencoderDC): a sum, GLUMBConv's
 * gate, EfficientViT's ReLU linear attention (in two halves, so that the
 * tiled executor can gather its sums over bands) and the ×2 pixel shuffle.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <string.h>

void
vae_cpu_add (const VaeTensor *a, const VaeTensor *b, VaeTensor *y)
{
  const gsize n = vae_tensor_n_elements (y);

#pragma omp parallel for schedule(static)
  for (gsize i = 0; i < n; i++)
    y->data[i] = a->data[i] + b->data[i];
}

void
vae_cpu_gate (const VaeTensor *x, VaeTensor *y)
{
  const gsize n = vae_tensor_n_elements (y);

#pragma omp parallel for schedule(static)
  for (gsize i = 0; i < n; i++)
    y->data[i] = x->data[i] * vae_activate (x->data[n + i], VAE_ACT_SILU);
}

/* ---- ReLU linear attention ---- */

/* Group G's channel C (of 3·D: q, k, v) as a row of N positions. */
static const gfloat *
group_row (const VaeTensor *x, gint d, gint g, gint c)
{
  return x->data + ((gsize) g * 3 * d + c) * x->height * x->width;
}

/* ReLU of D rows of N values into DST. */
static void
relu_rows (const gfloat *src, gint d, gsize n, gfloat *dst)
{
#pragma omp parallel for schedule(static)
  for (gsize i = 0; i < (gsize) d * n; i++)
    dst[i] = src[i] > 0.0f ? src[i] : 0.0f;
}

gsize
vae_linear_attention_sums_size (const VaeTensor *x, gint head_dim)
{
  return (gsize) x->channels / (3 * head_dim) * (head_dim + 1) * head_dim;
}

gsize
vae_linear_attention_scratch_floats (gint head_dim, gsize positions)
{
  return 2 * (gsize) head_dim * positions + (gsize) (head_dim + 1) * head_dim;
}

/* S_g[i][j] = Σ_n v_i(n)·k'_j(n) for i < d and S_g[d][j] = Σ_n k'_j(n), added
 * to SUMS (G × (d + 1) × d).  The product runs in float32 (as diffusers
 * runs it, even for float64 inputs), each call's sums are added in
 * double. */
void
vae_linear_attention_sums (const VaeTensor *x, gint d, gdouble *sums, gfloat *scratch)
{
  const gsize n = (gsize) x->height * x->width;
  const gint  groups = x->channels / (3 * d);
  gfloat     *k = scratch, *s = scratch + (gsize) d * n;

  for (gint g = 0; g < groups; g++)
    {
      gdouble *sg = sums + (gsize) g * (d + 1) * d;
      relu_rows (group_row (x, d, g, d), d, n, k);
      /* S[:d] = v · k'ᵀ */
      vae_sgemm (FALSE, TRUE, d, d, (gint) n, 1.0f, group_row (x, d, g, 2 * d), n, k, n, s,
                 (gsize) d);
      for (gint i = 0; i < d * d; i++)
        sg[i] += s[i];
      for (gint j = 0; j < d; j++)
        {
          gdouble total = 0.0;
          for (gsize m = 0; m < n; m++)
            total += k[(gsize) j * n + m];
          sg[(gsize) d * d + j] += total;
        }
    }
  vae_backend_count_macs ((guint64) groups * (d + 1) * d * n);
}

/* out_g = S_g[:d]·q' / (S_g[d]·q' + eps), per position. */
void
vae_linear_attention_apply (const VaeTensor *x, gint d, gfloat eps, const gdouble *sums,
                            VaeTensor *out, gfloat *scratch)
{
  const gsize n = (gsize) x->height * x->width;
  const gint  groups = x->channels / (3 * d);
  gfloat     *q = scratch, *s = scratch + 2 * (gsize) d * n;

  for (gint g = 0; g < groups; g++)
    {
      const gdouble *sg = sums + (gsize) g * (d + 1) * d;
      gfloat        *o = out->data + (gsize) g * d * n;
      for (gint i = 0; i < (d + 1) * d; i++)
        s[i] = (gfloat) sg[i];
      relu_rows (group_row (x, d, g, 0), d, n, q);
      vae_sgemm (FALSE, FALSE, d, (gint) n, d, 1.0f, s, (gsize) d, q, n, o, n);
#pragma omp parallel for schedule(static)
      for (gsize m = 0; m < n; m++)
        {
          gdouble den = 0.0;
          for (gint j = 0; j < d; j++)
            den += (gdouble) s[(gsize) d * d + j] * q[(gsize) j * n + m];
          for (gint i = 0; i < d; i++)
            o[(gsize) i * n + m] = (gfloat) (o[(gsize) i * n + m] / (den + eps));
        }
    }
  vae_backend_count_macs ((guint64) groups * (d + 1) * d * n);
}

/* ---- pixel shuffle ---- */

void
vae_pixel_shuffle_rows (const VaeTensor *x, gint x_row0, VaeTensor *y, gint y_row0)
{
  const gint w = y->width;

#pragma omp parallel for schedule(static)
  for (gint c = 0; c < y->channels; c++)
    for (gint r = 0; r < y->height; r++)
      {
        const gint    yy = y_row0 + r, dy = yy % 2;
        const gfloat *even =
            x->data + (((gsize) 4 * c + 2 * dy) * x->height + yy / 2 - x_row0) * x->width;
        const gfloat *odd = even + (gsize) x->height * x->width; /* channel 4c + 2dy + 1 */
        gfloat       *dst = y->data + ((gsize) c * y->height + r) * w;
        for (gint xx = 0; xx < w; xx++)
          dst[xx] = (xx % 2 ? odd : even)[xx / 2];
      }
}
