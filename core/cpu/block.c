/* TAESD's residual block, relu(conv3(relu(conv2(relu(conv1(h))))) + h),
 * with h the input or the output of the conv before it, in bands of rows:
 * each band's h and inner tensors are computed from the rows of the input
 * it reaches (three rows more each side, four with the conv before) and
 * stay in the caches, so only the block's input and output are ever held
 * whole: a full-resolution decoder stage holds its 512² input and its
 * output instead of three 1024² tensors at once, and writes once instead of four
 * times.  The convs of a band pad only at the image's edges; inside, the
 * rows they lose are the halo (docs/PERFORMANCE-NOTES.md has the figures).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

/* Bytes of one band of an inner tensor: small enough that a band's
 * tensors stay in the last-level cache, large enough that the halo's 6
 * rows of recomputation (over 3 convs) stay a small share: 8 MB (32 rows
 * of TAEF2's 64 channels at 1024 wide, 6% recomputed) was faster than 4,
 * 16 or 32 MB on this project's VM. */
#define BAND_BYTES ((gsize) 8 << 20)
#define HALO       3 /* rows each side: one per 3×3 conv */

/* Conv of the band X, whose rows (of up(X) when UP) start at row *FIRST
 * of the HEIGHT the conv reads whole: padded only where the band meets that
 * input's top or bottom, so every output row is exact; *FIRST becomes the
 * output's first row. */
static VaeTensor *
band_conv (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x, gboolean up, gint *first,
           gint height, VaeAct act, GError **error)
{
  VaeConv band = *conv;

  band.pad_top = *first == 0 ? conv->pad_top : 0;
  band.pad_bottom = *first + (x->height << up) == height ? conv->pad_bottom : 0;
  *first += conv->pad_top - band.pad_top;
  return be->conv (be, &band, x, up, NULL, act, error);
}

static gboolean
same_3x3 (const VaeConv *c)
{
  return c->kernel == 3 && c->stride == 1 && c->pad_top == 1 && c->pad_bottom == 1 &&
         c->pad_left == 1 && c->pad_right == 1 && vae_conv_groups (c) == 1;
}

/* Output rows per band for the input X, or 0 where the block runs
 * whole. */
static gint
band_rows (const VaeResidualBlock *b, const VaeTensor *x)
{
  gint  hc, hh, hw, rows;
  gsize widest;

  vae_residual_block_output (b, x, &hc, &hh, &hw);
  widest = hc;
  if (b->pre && (!same_3x3 (b->pre) || b->pre->in_channels != x->channels))
    return 0;
  for (gint k = 0; k < 3; k++)
    if (!same_3x3 (b->conv[k]))
      return 0;
    else
      widest = MAX (widest, (gsize) b->conv[k]->out_channels);
  if (b->conv[2]->out_channels != hc)
    return 0;
  rows = (gint) CLAMP (BAND_BYTES / (widest * hw * sizeof (gfloat)), 4 * HALO, (gsize) hh);
  return rows < hh ? rows : 0;
}

gboolean
vae_cpu_residual_block_banded (const VaeResidualBlock *b, const VaeTensor *x, gsize *band_bytes)
{
  const gint rows = band_rows (b, x);
  gint       hc, hh, hw;
  gsize      row, in_rows, h_band, peak = 0;

  if (!rows)
    return FALSE;
  vae_residual_block_output (b, x, &hc, &hh, &hw);
  row = (gsize) hw * sizeof (gfloat);
  in_rows = rows + 2 * HALO + 1; /* the band of h, one row more where ×2 rounds */
  h_band = hc * in_rows * row;
  if (b->pre) /* the rows of X it reads, the band of h, the pre conv's scratch */
    peak = (gsize) x->channels * ((in_rows >> b->up) + 3) * x->width * sizeof (gfloat) + h_band +
           vae_cpu_conv_scratch_bytes (b->pre, in_rows, hw);
  /* conv k: the band of h (kept for the sum), its input and output bands
   * (two rows fewer each conv), its scratch */
  for (gint k = 0; k < 3; k++)
    {
      const gsize rows_in = in_rows - 2 * k, rows_out = rows_in - 2;
      peak = MAX (peak, h_band + (k ? b->conv[k]->in_channels * rows_in * row : 0) +
                            b->conv[k]->out_channels * rows_out * row +
                            vae_cpu_conv_scratch_bytes (b->conv[k], rows_out, hw));
    }
  *band_bytes = peak;
  return TRUE;
}

/* The band of h that holds its rows [Y0 − HALO, Y1 + HALO) (HEIGHT in
 * all), and in *FIRST the row of h it starts at. */
static VaeTensor *
band_input (const VaeBackend *be, const VaeResidualBlock *b, const VaeTensor *x, gint y0, gint y1,
            gint height, gint *first, GError **error)
{
  const gint lo = MAX (0, y0 - HALO), hi = MIN (height, y1 + HALO);
  gint       s0, s1;
  VaeTensor *source, *t;

  if (!b->pre)
    {
      *first = lo;
      return vae_tensor_rows (x, lo, hi, error);
    }
  /* the rows of X under rows [lo − 1, hi + 1) of up(X), which the pre
   * conv reads */
  s0 = MAX (0, (lo - 1) >> b->up);
  s1 = MIN (x->height, (hi >> b->up) + 1);
  if (!(source = vae_tensor_rows (x, s0, s1, error)))
    return NULL;
  *first = s0 << b->up;
  t = band_conv (be, b->pre, source, b->up, first, height, b->pre_act, error);
  vae_tensor_free (source);
  return t;
}

VaeTensor *
vae_cpu_residual_block (const VaeBackend *be, const VaeResidualBlock *b, const VaeTensor *x,
                        GError **error)
{
  const gint rows = band_rows (b, x);
  gint       hc, h, w;
  VaeTensor *out;

  if (!rows)
    return vae_residual_block_layers (be, b, x, error);
  vae_residual_block_output (b, x, &hc, &h, &w);
  if (!(out = vae_tensor_new_uninit (hc, h, w, FALSE, error)))
    return NULL;
  for (gint y0 = 0; y0 < h; y0 += rows)
    {
      const gint y1 = MIN (h, y0 + rows);
      gint       first_h, first;
      VaeTensor *hb = band_input (be, b, x, y0, y1, h, &first_h, error), *t = NULL;
      gboolean   ok = hb != NULL;

      first = first_h;
      for (gint k = 0; ok && k < 3; k++)
        ok = vae_tensor_replace (&t, band_conv (be, b->conv[k], k ? t : hb, FALSE, &first, h,
                                                k < 2 ? VAE_ACT_RELU : VAE_ACT_NONE, error));
      if (ok) /* out = relu(t + h) over rows [y0, y1) */
        {
          const gsize n = (gsize) (y1 - y0) * w, plane = (gsize) h * w;
#pragma omp parallel for schedule(static)
          for (gint c = 0; c < hc; c++)
            {
              const gfloat *restrict r = hb->data + ((gsize) c * hb->height + (y0 - first_h)) * w;
              const gfloat *restrict s = t->data + ((gsize) c * t->height + (y0 - first)) * w;
              gfloat *restrict d = out->data + c * plane + (gsize) y0 * w;
              for (gsize i = 0; i < n; i++)
                d[i] = MAX (s[i] + r[i], 0.0f);
            }
        }
      vae_tensor_free (t);
      vae_tensor_free (hb);
      if (!ok)
        {
          vae_tensor_free (out);
          return NULL;
        }
    }
  return out;
}
