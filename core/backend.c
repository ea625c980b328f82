/* What every backend and graph shares: layer caches, layer helpers, the
 * pass's stop flag, the multiply-add counter.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "backend.h"

VaeLayerCache *
vae_layer_cache_new (void)
{
  return g_new0 (VaeLayerCache, 1);
}

void
vae_layer_cache_free (VaeLayerCache *cache)
{
  for (gint i = 0; i < VAE_CACHE_SLOTS; i++)
    if (cache->slot[i])
      cache->slot[i]->free (cache->slot[i]);
  g_free (cache);
}

gboolean
vae_pass_stopped (const VaePass *pass, GError **error)
{
  if (!pass->cancel || !g_atomic_int_get (pass->cancel))
    return FALSE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_CANCELLED, _ ("cancelled"));
  return TRUE;
}

static gsize mac_counter; /* pointer-sized for g_atomic_pointer_add */

void
vae_backend_count_macs (guint64 macs)
{
  g_atomic_pointer_add (&mac_counter, (gssize) macs);
}

guint64
vae_macs_counted (void)
{
  return (guint64) g_atomic_pointer_get (&mac_counter);
}

void
vae_macs_reset (void)
{
  g_atomic_pointer_set (&mac_counter, 0);
}

void
vae_conv_output_size (const VaeConv *conv, gint height, gint width, gint *out_h, gint *out_w)
{
  *out_h = (height + conv->pad_top + conv->pad_bottom - conv->kernel) / conv->stride + 1;
  *out_w = (width + conv->pad_left + conv->pad_right - conv->kernel) / conv->stride + 1;
}

gboolean
vae_conv_output_checked (const VaeConv *conv, const VaeTensor *x, gboolean up, gint *out_h,
                         gint *out_w, GError **error)
{
  vae_conv_output_size (conv, x->height << up, x->width << up, out_h, out_w);
  if (*out_h > 0 && *out_w > 0)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
               _ ("input of %d×%d is too small for a %d×%d convolution"), x->width, x->height,
               conv->kernel, conv->kernel);
  return FALSE;
}

gboolean
vae_conv_transpose_output_checked (const VaeConvTranspose *layer, const VaeTensor *x, gint *out_h,
                                   gint *out_w, GError **error)
{
  *out_h = vae_conv_transpose_output (layer, x->height);
  *out_w = vae_conv_transpose_output (layer, x->width);
  if (*out_h > 0 && *out_w > 0)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
               _ ("input of %d×%d is too small for a %d×%d transposed convolution"), x->width,
               x->height, layer->kernel, layer->kernel);
  return FALSE;
}

VaeTensor *
vae_conv_transpose (const VaeBackend *be, const VaeConvTranspose *layer, const VaeTensor *x,
                    VaeAct act, GError **error)
{
  if (be->conv_transpose)
    return be->conv_transpose (be, layer, x, act, error);
  g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
               _ ("the %s backend has no transposed convolution (a layer of this model's "
                  "decoder); run it on the CPU"),
               be->name);
  return NULL;
}

void
vae_residual_block_h (const VaeResidualBlock *b, const VaeTensor *x, gint *channels, gint *height,
                      gint *width)
{
  *channels = b->pre ? b->pre->out_channels : x->channels;
  *height = b->pre ? x->height << b->up : x->height;
  *width = b->pre ? x->width << b->up : x->width;
}

void
vae_residual_block_output (const VaeResidualBlock *b, const VaeTensor *x, gint *channels,
                           gint *height, gint *width)
{
  vae_residual_block_h (b, x, channels, height, width);
  if (!b->post)
    return;
  *channels = b->post->out_channels;
  vae_conv_output_size (b->post, *height, *width, height, width);
}

VaeTensor *
vae_residual_block_layers (const VaeBackend *be, const VaeResidualBlock *b, const VaeTensor *x,
                           GError **error)
{
  VaeTensor *h = NULL, *t, *out = NULL;

  if (b->pre && !(h = be->conv (be, b->pre, x, b->up, NULL, b->pre_act, error)))
    return NULL;
  if (h)
    x = h;
  if ((t = be->conv (be, b->conv[0], x, FALSE, NULL, VAE_ACT_RELU, error)) &&
      vae_tensor_replace (&t, be->conv (be, b->conv[1], t, FALSE, NULL, VAE_ACT_RELU, error)))
    out = be->conv (be, b->conv[2], t, FALSE, x, VAE_ACT_RELU, error);
  vae_tensor_free (t);
  vae_tensor_free (h);
  if (out && b->post)
    vae_tensor_replace (&out, be->conv (be, b->post, out, FALSE, NULL, b->post_act, error));
  return out;
}

VaeTensor *
vae_residual_block (const VaeBackend *be, const VaeResidualBlock *block, const VaeTensor *x,
                    GError **error)
{
  return be->residual_block ? be->residual_block (be, block, x, error)
                            : vae_residual_block_layers (be, block, x, error);
}

void
vae_conv_clear (VaeConv *conv)
{
  g_clear_pointer (&conv->cache, vae_layer_cache_free);
  g_clear_pointer (&conv->weight, g_free);
  g_clear_pointer (&conv->bias, g_free);
}

void
vae_norm_clear (VaeNorm *norm)
{
  g_clear_pointer (&norm->cache, vae_layer_cache_free);
  g_clear_pointer (&norm->gamma, g_free);
  g_clear_pointer (&norm->beta, g_free);
}

void
vae_conv_transpose_clear (VaeConvTranspose *layer)
{
  g_clear_pointer (&layer->cache, vae_layer_cache_free);
  g_clear_pointer (&layer->weight, g_free);
  g_clear_pointer (&layer->bias, g_free);
}

void
vae_attention_clear (VaeAttention *attention)
{
  vae_norm_clear (&attention->norm);
  vae_conv_clear (&attention->q);
  vae_conv_clear (&attention->k);
  vae_conv_clear (&attention->v);
  vae_conv_clear (&attention->proj);
}

void
vae_net_free (VaeNet *net)
{
  if (net)
    net->free (net);
}

VaeTensor *
vae_resnet_layers (const VaeBackend *be, const VaeResnet *r, VaeTensor *x, GError **error)
{
  VaeTensor *h = be->norm (be, r->norm1, x, VAE_ACT_SILU, error), *out = NULL;

  if (h && vae_tensor_replace (&h, be->conv (be, r->conv1, h, FALSE, NULL, VAE_ACT_NONE, error)) &&
      (h = vae_norm_consume (be, r->norm2, h, VAE_ACT_SILU, error)))
    out = be->conv (be, r->conv2, h, FALSE, x, VAE_ACT_NONE, error);
  vae_tensor_free (h);
  vae_tensor_free (x);
  return out;
}

VaeTensor *
vae_resnet (const VaeBackend *be, const VaeResnet *resnet, VaeTensor *x, GError **error)
{
  return be->resnet ? be->resnet (be, resnet, x, error) : vae_resnet_layers (be, resnet, x, error);
}
