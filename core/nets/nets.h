/* The network families: AutoencoderKL (kl.c, and one frame of Qwen-Image's
 * VAE through qwen.c), Sana's DC-AE (dcae.c) and the tiny autoencoders
 * (tiny.c), built from the tensors of a weight file.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_NETS_H
#define VAE_NETS_H

#include "backend.h"

G_BEGIN_DECLS

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

/* Qwen-Image / Wan 2.1 (qwen.c): causal 3-D kernels in either naming;
 * vae_kl_build builds them as one-frame AutoencoderKL graphs. */
gboolean vae_qwen_detect (const VaeWeights *weights);
/* The file's tensors under the KL loader's diffusers names (name → entry). */
GHashTable *vae_qwen_names (const VaeWeights *weights);
/* The floats of E the one-frame net keeps: a 5-D kernel's last time slice,
 * no time_conv, all of anything else. */
gsize vae_qwen_frame_elements (const VaeWeightEntry *e);
/* The 2-D kernel [out, in, kh, kw] a causal 3-D kernel WEIGHT [out, in,
 * kt, kh, kw] applies to a single frame: its last time slice. */
gfloat *vae_causal_frame_kernel (const gfloat *weight, gint out_channels, gint in_channels, gint kt,
                                 gint kh, gint kw);

/* Sana's DC-AE (dcae.c), in diffusers' names. */
gboolean vae_dcae_detect (const VaeWeights *weights);
/* Builds the encoder (image in [−1, 1] → Z latent) and/or decoder held. */
gboolean vae_dcae_build (const VaeWeights *weights, VaeStructure *structure, VaeNet **encoder,
                         VaeNet **decoder, GError **error);

gboolean vae_tiny_detect (const VaeWeights *weights);
/* Builds the encoder (image in [0,1] → Z) and/or decoder (Z → image) held. */
gboolean vae_tiny_build (const VaeWeights *weights, VaeStructure *structure, VaeNet **encoder,
                         VaeNet **decoder, GError **error);

G_END_DECLS

#endif
