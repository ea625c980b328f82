/* TAESD's residual block, relu(conv3(relu(conv2(relu(conv1(x))))) + x), in
 * bands of rows: each band's two inner tensors are computed from the rows
 * of X it reaches (three rows more each side) and stay in the caches, so a
 * full-resolution block reads X twice and writes its output once instead
 * of writing and reading two whole inner tensors, and holds two tensors of
 * the image's size at its peak instead of three.  The convs of a band pad
 * only at the image's edges; inside, the rows they lose are the halo
 * (docs/PERFORMANCE-NOTES.md has the figures).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <string.h>

/* Bytes of one band of an inner tensor: small enough that a band's
 * tensors stay in the last-level cache, large enough that the halo's 6
 * rows of recomputation (over 3 convs) stay a small share: 8 MB (32 rows
 * of TAEF2's 64 channels at 1024 wide, 6% recomputed) was faster than 4,
 * 16 or 32 MB on this project's VM. */
#define BAND_BYTES ((gsize) 8 << 20)
#define HALO       3 /* rows each side: one per 3×3 conv */

/* Rows [FIRST, LAST) of X, as a tensor of their own. */
static VaeTensor *
rows_copy (const VaeTensor *x, gint first, gint last, GError **error)
{
  const gsize plane = (gsize) x->height * x->width, n = (gsize) (last - first) * x->width;
  VaeTensor  *y = vae_tensor_new_uninit (x->channels, last - first, x->width, FALSE, error);

  if (!y)
    return NULL;
#pragma omp parallel for schedule(static)
  for (gint c = 0; c < x->channels; c++)
    memcpy (y->data + c * n, x->data + c * plane + (gsize) first * x->width, n * sizeof (gfloat));
  return y;
}

/* Conv of the band X, whose rows start at image row *FIRST of HEIGHT:
 * padded only where the band meets the image's top or bottom, so every
 * output row is exact; *FIRST becomes the output's first row. */
static VaeTensor *
band_conv (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x, gint *first, gint height,
           VaeAct act, GError **error)
{
  VaeConv band = *conv;

  band.pad_top = *first == 0 ? conv->pad_top : 0;
  band.pad_bottom = *first + x->height == height ? conv->pad_bottom : 0;
  *first += conv->pad_top - band.pad_top;
  return be->conv (be, &band, x, FALSE, NULL, act, error);
}

static gboolean
same_3x3 (const VaeConv *c)
{
  return c->kernel == 3 && c->stride == 1 && c->pad_top == 1 && c->pad_bottom == 1 &&
         c->pad_left == 1 && c->pad_right == 1 && vae_conv_groups (c) == 1;
}

/* Rows per band for X (C × H × W), or 0 where the block runs whole. */
static gint
band_rows (const VaeConv *const convs[3], gint channels, gint height, gint width)
{
  gsize widest = channels;
  gint  rows;

  for (gint k = 0; k < 3; k++)
    if (!same_3x3 (convs[k]))
      return 0;
  if (convs[2]->out_channels != channels)
    return 0;
  widest = MAX (widest, (gsize) MAX (convs[0]->out_channels, convs[1]->out_channels));
  rows = (gint) CLAMP (BAND_BYTES / (widest * width * sizeof (gfloat)), 4 * HALO, (gsize) height);
  return rows < height ? rows : 0;
}

gboolean
vae_cpu_residual_block_banded (const VaeConv *const convs[3], gint channels, gint height,
                               gint width, gsize *band_bytes)
{
  const gint rows = band_rows (convs, channels, height, width);
  gsize      peak = 0, in_rows = rows + 2 * HALO;

  if (!rows)
    return FALSE;
  /* conv k holds its input band, its output band (two rows fewer) and
   * its scratch */
  for (gint k = 0; k < 3; k++, in_rows -= 2)
    peak = MAX (peak, (gsize) width * sizeof (gfloat) *
                              (convs[k]->in_channels * in_rows +
                               (gsize) convs[k]->out_channels * (in_rows - 2)) +
                          vae_cpu_conv_scratch_bytes (convs[k], in_rows - 2, width));
  *band_bytes = peak;
  return TRUE;
}

VaeTensor *
vae_cpu_residual_block (const VaeBackend *be, const VaeConv *const convs[3], const VaeTensor *x,
                        GError **error)
{
  const gint  h = x->height, w = x->width;
  const gsize plane = (gsize) h * w;
  const gint  rows = band_rows (convs, x->channels, h, w);
  VaeTensor  *out = NULL;

  if (!rows) /* the whole tensors, conv by conv */
    {
      VaeTensor *t = be->conv (be, convs[0], x, FALSE, NULL, VAE_ACT_RELU, error);
      if (t &&
          vae_tensor_replace (&t, be->conv (be, convs[1], t, FALSE, NULL, VAE_ACT_RELU, error)))
        out = be->conv (be, convs[2], t, FALSE, x, VAE_ACT_RELU, error);
      vae_tensor_free (t);
      return out;
    }
  if (!(out = vae_tensor_new_uninit (convs[2]->out_channels, h, w, FALSE, error)))
    return NULL;
  for (gint y0 = 0; y0 < h; y0 += rows)
    {
      const gint y1 = MIN (h, y0 + rows);
      gint       first = MAX (0, y0 - HALO);
      VaeTensor *t = rows_copy (x, first, MIN (h, y1 + HALO), error);
      gboolean   ok = t != NULL;

      for (gint k = 0; ok && k < 3; k++)
        ok = vae_tensor_replace (
            &t, band_conv (be, convs[k], t, &first, h, k < 2 ? VAE_ACT_RELU : VAE_ACT_NONE, error));
      if (!ok)
        {
          vae_tensor_free (t);
          vae_tensor_free (out);
          return NULL;
        }
      {
        const gsize band_plane = (gsize) t->height * w, skip = (gsize) (y0 - first) * w;
        const gsize n = (gsize) (y1 - y0) * w;
#pragma omp parallel for schedule(static)
        for (gint c = 0; c < out->channels; c++)
          {
            const gfloat *restrict r = x->data + c * plane + (gsize) y0 * w;
            const gfloat *restrict s = t->data + c * band_plane + skip;
            gfloat *restrict d = out->data + c * plane + (gsize) y0 * w;
            for (gsize i = 0; i < n; i++)
              d[i] = MAX (s[i] + r[i], 0.0f);
          }
      }
      vae_tensor_free (t);
    }
  return out;
}
