/* The backend interface: the few layer operations the VAE graphs are made of.
 * The CPU implementation is cpu.c; cuda/ provides another.  Graph code
 * (kl.c, tiny.c) only calls through this table.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_BACKEND_H
#define VAE_BACKEND_H

#include "vae-private.h"

G_BEGIN_DECLS

typedef enum
{
  VAE_ACT_NONE,
  VAE_ACT_RELU,
  VAE_ACT_SILU
} VaeAct;

/* A k×k convolution with explicit padding on each side (AutoencoderKL's
 * downsampler pads only right and bottom). */
typedef struct
{
  gint    out_channels;
  gint    in_channels;
  gint    kernel;
  gint    stride;
  gint    pad_top, pad_left, pad_bottom, pad_right;
  gfloat *weight;      /* out × in × k × k */
  gfloat *bias;        /* out, or NULL */
  gfloat *winograd;    /* cached transformed weights (winograd.c), or NULL */
} VaeConv;

typedef struct
{
  gint    channels;
  gint    groups;
  gfloat  eps;
  gfloat *gamma;
  gfloat *beta;
} VaeNorm;

/* Single-head self-attention over all positions, with its own GroupNorm and
 * the residual: out = x + proj(softmax(q kᵀ / √c) v). */
typedef struct
{
  VaeNorm norm;
  VaeConv q, k, v, proj;  /* 1×1 */
} VaeAttention;

typedef struct
{
  const gchar *name;
  /* act(conv(up(x)) + bias + residual); up is nearest ×2 when upsample is
   * set; residual may be NULL. */
  VaeTensor *(*conv) (const VaeConv *conv, const VaeTensor *x, gboolean upsample,
                      const VaeTensor *residual, VaeAct act, GError **error);
  VaeTensor *(*norm) (const VaeNorm *norm, const VaeTensor *x, VaeAct act, GError **error);
  VaeTensor *(*attention) (const VaeAttention *attention, const VaeTensor *x, GError **error);
} VaeBackend;

const VaeBackend *vae_backend_cpu (void);

/* Winograd F(4×4,3×3) for 3×3 stride-1 "same" convs of 8+ input channels:
 * y = act(y + conv(up(x)) + bias), y holding the residual or zeros. */
gboolean vae_winograd_applies (const VaeConv *conv);
gboolean vae_winograd_conv (const VaeConv *conv, const VaeTensor *x, gboolean upsample, VaeAct act, VaeTensor *y,
                            GError **error);
void     vae_winograd_release (VaeConv *conv);
/* The plain im2col + SGEMM convolution, the reference the fast kernels are
 * tested against. */
VaeTensor *vae_cpu_conv_reference (const VaeConv *conv, const VaeTensor *x, gboolean upsample,
                                   const VaeTensor *residual, VaeAct act, GError **error);

/* Graphs report after each of TOTAL steps (to this thread's callback). */
void vae_progress_step (gint done, gint total);

/* Backends add the multiply-adds they do (see vae_macs_counted). */
void vae_backend_count_macs (guint64 macs);

void vae_conv_clear (VaeConv *conv);
void vae_norm_clear (VaeNorm *norm);
void vae_attention_clear (VaeAttention *attention);
/* Output size of CONV on an input of H × W (already upsampled). */
void vae_conv_output_size (const VaeConv *conv, gint height, gint width, gint *out_h, gint *out_w);

/* A network half: encoder or decoder of some family. */
typedef struct _VaeNet VaeNet;
struct _VaeNet
{
  VaeTensor *(*forward) (VaeNet *net, const VaeBackend *backend, const VaeTensor *x, GError **error);
  void       (*free) (VaeNet *net);
  gint       in_channels;
  gint       out_channels;
  gint       factor;       /* spatial down- (encoder) or upscale (decoder) */
};

void vae_net_free (VaeNet *net);

/* Replaces *t by NEXT, usually computed from it, freeing the old tensor;
 * FALSE when NEXT failed (its error is set). */
static inline gboolean
vae_tensor_replace (VaeTensor **t, VaeTensor *next)
{
  vae_tensor_free (*t);
  *t = next;
  return next != NULL;
}

/* The structure of the AutoencoderKL or TAESD weights in a file. */
typedef struct
{
  VaeKind  kind;
  gint     raw_channels;
  gint     raw_factor;
  gboolean quant_convs;
  gboolean batch_norm;
  gboolean pool_branch;
  gboolean encoder_present;
  gboolean decoder_present;
} VaeStructure;

gboolean vae_kl_detect (const VaeWeights *weights);
/* Builds what the file holds: encoder (image in [-1,1] → 2Z moments after
 * quant_conv) and/or decoder (Z latent → image in [-1,1], post_quant_conv
 * included); FLUX.2 BatchNorm statistics into bn_mean/bn_var when present. */
gboolean vae_kl_build (const VaeWeights *weights, VaeStructure *structure, VaeNet **encoder,
                       VaeNet **decoder, gfloat **bn_mean, gfloat **bn_var, GError **error);

gboolean vae_tiny_detect (const VaeWeights *weights);
/* Builds the encoder (image in [0,1] → Z) and/or decoder (Z → image) held. */
gboolean vae_tiny_build (const VaeWeights *weights, VaeStructure *structure, VaeNet **encoder,
                         VaeNet **decoder, GError **error);

G_END_DECLS

#endif
