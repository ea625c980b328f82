/* The backend interface: the few layer operations the VAE graphs are made
 * of, and what a graph is to the code that runs it.  Graph code (nets/)
 * only calls through VaeBackend; cpu/ implements it, cuda/ another, run/
 * the tiled executor over either and the memory planner.  Nothing here
 * knows a backend, a family or a file format.
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

static inline gfloat
vae_activate (gfloat v, VaeAct act)
{
  if (act == VAE_ACT_RELU)
    return v > 0.0f ? v : 0.0f;
  if (act == VAE_ACT_SILU)
    return v / (1.0f + vae_expf (-v));
  return v;
}

/* What backends keep for a layer between passes, each in its own slot: the
 * CPU's transformed Winograd weights, a device's uploaded weights.  The
 * layers are const to the backends that run them; their caches are not. */
typedef enum
{
  VAE_CACHE_CPU,
  VAE_CACHE_DEVICE,
  VAE_CACHE_SLOTS
} VaeCacheSlot;

typedef struct _VaeCached VaeCached;
struct _VaeCached
{
  void (*free) (VaeCached *self); /* what a backend keeps starts with this */
};

typedef struct
{
  VaeCached *slot[VAE_CACHE_SLOTS]; /* each backend guards its own slot */
} VaeLayerCache;

VaeLayerCache *vae_layer_cache_new (void);
/* Frees what every backend kept, and the cache. */
void vae_layer_cache_free (VaeLayerCache *cache);

/* A k×k convolution with explicit padding on each side (AutoencoderKL's
 * downsampler pads only right and bottom). */
typedef struct
{
  gint           out_channels;
  gint           in_channels;
  gint           kernel;
  gint           stride;
  gint           pad_top, pad_left, pad_bottom, pad_right;
  gfloat        *weight; /* out × in/groups × k × k */
  gfloat        *bias;   /* out, or NULL */
  VaeLayerCache *cache;  /* what backends keep for it, or NULL (nothing is kept) */
  gint           groups; /* 0 or 1: dense; G: output group g reads input group g alone */
} VaeConv;

/* ---- grouped convolutions (DC-AE) ---- */

static inline gint
vae_conv_groups (const VaeConv *conv)
{
  return conv->groups > 1 ? conv->groups : 1;
}

/* Input channels each output channel reads. */
static inline gint
vae_conv_group_inputs (const VaeConv *conv)
{
  return conv->in_channels / vae_conv_groups (conv);
}

/* Products each output value sums: input channels each output reads ×
 * kernel taps (the rows of the im2col matrix, the columns of the weight
 * matrix). */
static inline gint
vae_conv_terms (const VaeConv *conv)
{
  return vae_conv_group_inputs (conv) * conv->kernel * conv->kernel;
}

/* ---- end grouped convolutions ---- */

/* ---- RMS norm (Qwen-Image / Wan 2.1, DC-AE) ---- */

typedef enum
{
  VAE_NORM_GROUP, /* GroupNorm: statistics over each group of channels and all positions */
  VAE_NORM_RMS    /* over the channels of each position alone (groups 1, unused):
                   * y = x·γ/√(max(mean_c(x²), VAE_RMS_FLOOR/C) + eps) + β, β optional */
} VaeNormKind;

/* F.normalize's floor on ‖x‖ (1e-12), squared: on mean_c(x²) it is 1e-24/C. */
#define VAE_RMS_FLOOR 1e-24

/* ---- end RMS norm ---- */

typedef struct
{
  gint           channels;
  gint           groups;
  gfloat         eps;
  gfloat        *gamma;
  gfloat        *beta; /* NULL: none (RMS norms only) */
  VaeLayerCache *cache;
  VaeNormKind    kind; /* zero, GroupNorm, unless set */
} VaeNorm;

/* A k×k transposed convolution, PyTorch's ConvTranspose2d without groups,
 * dilation or output padding: input (iy, ix) adds w[i][o] to the outputs
 * from (iy·stride − pad, ix·stride − pad) on, so an H-row input gives
 * (H − 1)·stride − 2·pad + k rows (2H for the VQ-VAE's 4×4, stride 2,
 * pad 1). */
typedef struct
{
  gint           out_channels;
  gint           in_channels;
  gint           kernel;
  gint           stride;
  gint           pad;
  gfloat        *weight; /* in × out × k × k, PyTorch's order */
  gfloat        *bias;   /* out, or NULL */
  VaeLayerCache *cache;
} VaeConvTranspose;

/* Single-head self-attention over all positions, with its own norm and
 * the residual: out = x + proj(softmax(q kᵀ / √c) v). */
typedef struct
{
  VaeNorm norm;
  VaeConv q, k, v, proj; /* 1×1 */
} VaeAttention;

/* TAESD's residual block of 3×3 "same" convs, maybe with the conv that
 * feeds it and the conv it feeds: h = pre ? pre_act(pre(up(x))) : x, then
 * s = relu(conv[2](relu(conv[1](relu(conv[0](h))))) + h), and
 * out = post ? post_act(post(s)) : s. */
typedef struct
{
  const VaeConv *pre; /* or NULL (then no UP) */
  gboolean       up;  /* nearest ×2 before PRE */
  VaeAct         pre_act;
  const VaeConv *conv[3];
  const VaeConv *post; /* or NULL; never upsampled */
  VaeAct         post_act;
} VaeResidualBlock;

/* The KL VAEs' resnet without a shortcut conv:
 * x + conv2(silu(norm2(conv1(silu(norm1(x)))))), "same" convs. */
typedef struct
{
  const VaeNorm *norm1;
  const VaeConv *conv1;
  const VaeNorm *norm2;
  const VaeConv *conv2;
} VaeResnet;

typedef struct _VaeBackend VaeBackend;
struct _VaeBackend
{
  const gchar *name;
  /* act(conv(up(x)) + bias + residual); up is nearest ×2 when upsample is
   * set; residual may be NULL. */
  VaeTensor *(*conv) (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x,
                      gboolean upsample, const VaeTensor *residual, VaeAct act, GError **error);
  VaeTensor *(*norm) (const VaeBackend *be, const VaeNorm *norm, const VaeTensor *x, VaeAct act,
                      GError **error);
  VaeTensor *(*attention) (const VaeBackend *be, const VaeAttention *attention, const VaeTensor *x,
                           GError **error);
  /* 3·tanh(x/3), TAESD's soft clamp of latents. */
  VaeTensor *(*clamp) (const VaeBackend *be, const VaeTensor *x, GError **error);
  /* norm, written over X's own values; NULL where a backend cannot. */
  gboolean (*norm_in_place) (const VaeBackend *be, const VaeNorm *norm, VaeTensor *x, VaeAct act,
                             GError **error);
  /* Makes *TENSOR, which this backend returned, a plain host tensor; NULL
   * where its tensors always are (the CPU's). */
  gboolean (*to_host) (const VaeBackend *be, VaeTensor **tensor, GError **error);
  /* act(conv_transpose(x) + bias); NULL where a backend has none (call it
   * through vae_conv_transpose, which then says so). */
  VaeTensor *(*conv_transpose) (const VaeBackend *be, const VaeConvTranspose *layer,
                                const VaeTensor *x, VaeAct act, GError **error);

  /* ---- DC-AE layers (Sana's AutoencoderDC) ---- */
  /* a + b, of equal shapes. */
  VaeTensor *(*add) (const VaeBackend *be, const VaeTensor *a, const VaeTensor *b, GError **error);
  /* GLUMBConv's gate: x[:C/2] · SiLU(x[C/2:]), C/2 channels. */
  VaeTensor *(*gate) (const VaeBackend *be, const VaeTensor *x, GError **error);
  /* EfficientViT's ReLU linear attention over all positions, per group of
   * 3·HEAD_DIM channels (q, k, v its thirds), HEAD_DIM channels out per
   * group: out_n = Σ_m v_m (k'_m·q'_n) / (Σ_m k'_m·q'_n + eps), k' = ReLU(k),
   * q' = ReLU(q). */
  VaeTensor *(*linear_attention) (const VaeBackend *be, const VaeTensor *x, gint head_dim,
                                  gfloat eps, GError **error);
  /* Depth to space ×2: out[c, 2i + dy, 2j + dx] = x[4c + 2dy + dx, i, j]. */
  VaeTensor *(*pixel_shuffle) (const VaeBackend *be, const VaeTensor *x, GError **error);
  /* ---- end DC-AE layers ---- */

  /* A VaeResidualBlock as one call, so that a backend may fuse it; NULL
   * where it runs layer by layer (call it through vae_residual_block). */
  VaeTensor *(*residual_block) (const VaeBackend *be, const VaeResidualBlock *block,
                                const VaeTensor *x, GError **error);
  /* A VaeResnet as one call that consumes X, so that a backend may apply
   * the norms as the convs read and write the sum over X: two tensors
   * alive instead of three; NULL where it runs layer by layer (call it
   * through vae_resnet). */
  VaeTensor *(*resnet) (const VaeBackend *be, const VaeResnet *resnet, VaeTensor *x,
                        GError **error);
};

/* BE's transposed convolution, or VAE_ERROR_UNSUPPORTED naming the backend
 * when it has none. */
VaeTensor *vae_conv_transpose (const VaeBackend *be, const VaeConvTranspose *layer,
                               const VaeTensor *x, VaeAct act, GError **error);

/* The shape of BLOCK's h (and of its sum s) for the input X, and of its
 * output. */
void vae_residual_block_h (const VaeResidualBlock *block, const VaeTensor *x, gint *channels,
                           gint *height, gint *width);
void vae_residual_block_output (const VaeResidualBlock *block, const VaeTensor *x, gint *channels,
                                gint *height, gint *width);
/* BLOCK through BE's residual_block, or layer by layer where it has none;
 * vae_residual_block_layers always layer by layer. */
VaeTensor *vae_residual_block (const VaeBackend *be, const VaeResidualBlock *block,
                               const VaeTensor *x, GError **error);
/* RESNET on X (consumed) through BE's resnet, or layer by layer where it
 * has none; vae_resnet_layers always layer by layer. */
VaeTensor *vae_resnet (const VaeBackend *be, const VaeResnet *resnet, VaeTensor *x, GError **error);
VaeTensor *vae_resnet_layers (const VaeBackend *be, const VaeResnet *resnet, VaeTensor *x,
                              GError **error);
VaeTensor *vae_residual_block_layers (const VaeBackend *be, const VaeResidualBlock *block,
                                      const VaeTensor *x, GError **error);

/* norm(X) for a tensor nobody reads afterwards: in place where the backend
 * can, so the pass holds one tensor instead of two.  X is consumed. */
static inline VaeTensor *
vae_norm_consume (const VaeBackend *be, const VaeNorm *norm, VaeTensor *x, VaeAct act,
                  GError **error)
{
  VaeTensor *y;

  if (be->norm_in_place)
    {
      if (be->norm_in_place (be, norm, x, act, error))
        return x;
      vae_tensor_free (x);
      return NULL;
    }
  y = be->norm (be, norm, x, act, error);
  vae_tensor_free (x);
  return y;
}

/* Replaces *t by NEXT, usually computed from it, freeing the old tensor;
 * FALSE when NEXT failed (its error is set). */
static inline gboolean
vae_tensor_replace (VaeTensor **t, VaeTensor *next)
{
  vae_tensor_free (*t);
  *t = next;
  return next != NULL;
}

/* One forward pass of a network: the backend its layers run on, where it
 * reports progress, and the flag that stops it.  run/ makes one per pass. */
typedef struct
{
  const VaeBackend *backend;
  VaeProgressFunc   progress; /* per layer; NULL when nobody listens or bands report */
  gpointer          progress_data;
  const gint       *cancel; /* non-zero (read atomically): stop; may be NULL */
} VaePass;

/* Progress after DONE of TOTAL steps of the pass. */
static inline void
vae_pass_step (const VaePass *pass, gint done, gint total)
{
  if (pass->progress && total > 0)
    pass->progress (CLAMP ((gdouble) done / total, 0.0, 1.0), pass->progress_data);
}

/* TRUE, with VAE_ERROR_CANCELLED, once the pass has been asked to stop. */
gboolean vae_pass_stopped (const VaePass *pass, GError **error);

/* Backends add the multiply-adds they do (see vae_macs_counted). */
void vae_backend_count_macs (guint64 macs);

void vae_conv_clear (VaeConv *conv);
void vae_norm_clear (VaeNorm *norm);
void vae_attention_clear (VaeAttention *attention);
void vae_conv_transpose_clear (VaeConvTranspose *layer);
/* Output size of CONV on an input of H × W (already upsampled). */
void vae_conv_output_size (const VaeConv *conv, gint height, gint width, gint *out_h, gint *out_w);
/* The output size of CONV on X (upsampled when UP), or an error when X is
 * too small for it. */
gboolean vae_conv_output_checked (const VaeConv *conv, const VaeTensor *x, gboolean up, gint *out_h,
                                  gint *out_w, GError **error);

/* Output rows (or columns) of LAYER on IN of them; below 1 when IN is too
 * few. */
static inline gint
vae_conv_transpose_output (const VaeConvTranspose *layer, gint in)
{
  return (in - 1) * layer->stride - 2 * layer->pad + layer->kernel;
}

/* The output size of LAYER on X, or an error when it would be empty. */
gboolean vae_conv_transpose_output_checked (const VaeConvTranspose *layer, const VaeTensor *x,
                                            gint *out_h, gint *out_w, GError **error);

/* A network half: encoder or decoder of some family. */
typedef struct _VaeNet VaeNet;
struct _VaeNet
{
  VaeTensor *(*forward) (VaeNet *net, const VaePass *pass, const VaeTensor *x, GError **error);
  void (*free) (VaeNet *net);
  gint in_channels;
  gint out_channels;
  gint factor; /* spatial down- (encoder) or upscale (decoder) */
};

void vae_net_free (VaeNet *net);

G_END_DECLS

#endif
