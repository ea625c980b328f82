/* The KL VAEs' resnet as one call (VaeBackend.resnet): each GroupNorm and
 * its SiLU are applied as the Winograd conv after it reads its input rows,
 * and conv2 writes x + conv2(…) over x, so a full-resolution resnet holds
 * x and conv1's output instead of x, norm1's output and conv1's (the
 * SD1.5 encoder's peak: three 128 MB tensors at 512²).  The values are
 * those of the layers one by one, bit for bit: the same a and b per
 * channel, the same act(x·a + b) per value.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

gboolean
vae_cpu_resnet_fuses (const VaeResnet *r, const VaeTensor *x, gboolean bf16)
{
  const VaeConv *c1 = r->conv1, *c2 = r->conv2;
  gint           h1, w1, h2, w2;

  if (bf16 && vae_cpu_has_amx ()) /* AMX takes these convs its own ways */
    return FALSE;
  if (r->norm1->kind == VAE_NORM_RMS || r->norm2->kind == VAE_NORM_RMS ||
      !vae_winograd_applies (c1) || !vae_winograd_applies (c2))
    return FALSE;
  if (r->norm1->channels != x->channels || c1->in_channels != x->channels ||
      r->norm2->channels != c1->out_channels || c2->in_channels != c1->out_channels ||
      c2->out_channels != x->channels)
    return FALSE;
  vae_conv_output_size (c1, x->height, x->width, &h1, &w1);
  vae_conv_output_size (c2, h1, w1, &h2, &w2);
  return h1 == x->height && w1 == x->width && h2 == x->height && w2 == x->width;
}

/* conv(silu(norm(x))) + residual into Y, the norm's statistics from X. */
static gboolean
norm_conv (const VaeNorm *norm, const VaeConv *conv, const VaeTensor *x, const VaeTensor *residual,
           gboolean bf16, VaeTensor *y, GError **error)
{
  g_autofree gfloat *scale = g_new (gfloat, x->channels);
  g_autofree gfloat *shift = g_new (gfloat, x->channels);
  const VaeInputNorm pending = { scale, shift, VAE_ACT_SILU };

  vae_cpu_norm_scale_shift (norm, x, scale, shift);
  vae_backend_count_macs ((guint64) conv->out_channels * conv->in_channels * 9 * y->height *
                          y->width);
  return vae_winograd_conv (conv, x, &pending, FALSE, residual, VAE_ACT_NONE, bf16, y, error);
}

VaeTensor *
vae_cpu_resnet (const VaeBackend *be, const VaeResnet *r, VaeTensor *x, GError **error)
{
  const gboolean bf16 = be == vae_backend_cpu_bf16 ();
  VaeTensor     *h;
  gboolean       ok;

  if (!vae_cpu_resnet_fuses (r, x, bf16))
    return vae_resnet_layers (be, r, x, error);
  if (!vae_blas_ready (error) ||
      !(h = vae_tensor_new_uninit (r->conv1->out_channels, x->height, x->width, FALSE, error)))
    {
      vae_tensor_free (x);
      return NULL;
    }
  ok = norm_conv (r->norm1, r->conv1, x, NULL, bf16, h, error) &&
       norm_conv (r->norm2, r->conv2, h, x, bf16, x, error);
  vae_tensor_free (h);
  if (!ok)
    g_clear_pointer (&x, vae_tensor_free);
  return x;
}
