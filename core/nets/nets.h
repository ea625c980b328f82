/* The network families, built from the tensors of a weight file:
 * AutoencoderKL and VQModel (kl.c, and one frame of Qwen-Image's VAE
 * through qwen.c), Sana's DC-AE (dcae.c), the tiny autoencoders (tiny.c),
 * the small VQ-VAE (vqvae.c); and the steps their passes are written in.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_NETS_H
#define VAE_NETS_H

#include "backend.h"

G_BEGIN_DECLS

/* The structure of the weights in a file. */
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

/* What a weight file holds: its structure, its halves, and what goes with
 * the latent (FLUX.2's BatchNorm statistics, a VQ model's codebook in the
 * raw scale). */
typedef struct
{
  VaeStructure structure;
  VaeNet      *encoder;
  VaeNet      *decoder;
  gfloat      *bn_mean;
  gfloat      *bn_var;
  VaeCodebook *codebook;
} VaeParts;

/* Frees what PARTS holds and zeroes it. */
void vae_parts_clear (VaeParts *parts);
/* For a build that has put the halves it loaded into PARTS: FALSE with an
 * error when the encoder gives other than MOMENTS times the decoder's latent
 * channels (2: mean and log-variance), or works at another scale. */
gboolean vae_parts_halves_match (const VaeParts *parts, const VaeWeights *weights, gint moments,
                                 GError **error);
/* FALSE with an error unless there is a half (named by its conv_in) and
 * the encoder reads RGB and the decoder writes it: the front ends hand over
 * RGB images and read RGB back. */
gboolean vae_parts_rgb (const VaeParts *parts, const VaeWeights *weights, GError **error);

gboolean vae_kl_detect (const VaeWeights *weights);
/* Builds what the file holds: encoder (image in [-1,1] → 2Z moments after
 * quant_conv, or a VQModel's latent) and/or decoder (Z latent → image in
 * [-1,1], post_quant_conv included); FLUX.2 BatchNorm statistics and a
 * VQModel's codebook (quantize.embedding) when present. */
gboolean vae_kl_build (const VaeWeights *weights, VaeParts *parts, GError **error);

/* Qwen-Image / Wan 2.1 / Wan 2.2 (qwen.c): causal 3-D kernels in either naming;
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

/* Wan 2.2 (wan22.c): its one-frame layers as fixed convolutions.  The
 * patchify of an RGB image into 12 channels (2×2, stride 2). */
void vae_wan22_patchify (VaeConv *conv);
/* Reorders the 12 outputs of CONV_OUT so that the pixel shuffle of them is
 * Wan 2.2's unpatchify. */
void vae_wan22_unpatchify_order (VaeConv *conv_out);
/* AvgDown3D(IN, OUT, FACTOR_T, FACTOR_S) on one frame: an fs×fs stride-fs
 * convolution; FALSE when IN·F is no multiple of OUT. */
gboolean vae_wan22_avg_down (VaeConv *conv, gint in, gint out, gint factor_t, gint factor_s);
/* DupUp3D(IN, OUT, FACTOR_T, 2) on a first frame: a 1×1 convolution to
 * 4·OUT channels, to be pixel-shuffled; FALSE when OUT·F is no multiple of
 * IN. */
gboolean vae_wan22_dup_up (VaeConv *conv, gint in, gint out, gint factor_t);

/* Sana's DC-AE (dcae.c), in diffusers' names. */
gboolean vae_dcae_detect (const VaeWeights *weights);
/* Builds the encoder (image in [−1, 1] → Z latent) and/or decoder held. */
gboolean vae_dcae_build (const VaeWeights *weights, VaeParts *parts, GError **error);

/* HunyuanImage 2.1's VAE (hunyuan.c), in diffusers' or Tencent's names. */
gboolean vae_hunyuan_detect (const VaeWeights *weights);
/* Builds the encoder (image in [−1, 1] → 2Z moments) and/or decoder held. */
gboolean vae_hunyuan_build (const VaeWeights *weights, VaeParts *parts, GError **error);
/* The floats of E the net keeps: a downsampler's 3×3 kernel becomes a 4×4
 * one of four times the outputs (64/9 of it). */
gsize vae_hunyuan_net_elements (const VaeWeightEntry *e);

gboolean vae_tiny_detect (const VaeWeights *weights);
/* Builds the encoder (image in [0,1] → Z) and/or decoder (Z → image) held. */
gboolean vae_tiny_build (const VaeWeights *weights, VaeParts *parts, GError **error);

gboolean vae_vqvae_detect (const VaeWeights *weights);
/* Builds the small VQ-VAE's encoder (image − 0.5 → D-channel latent) and/or
 * decoder (D → image − 0.5), and its codebook. */
gboolean vae_vqvae_build (const VaeWeights *weights, VaeParts *parts, GError **error);

/* ---- steps (steps.c) ----------------------------------------------------------
 * Each step consumes its input and returns its output; a NULL input (an
 * earlier step failed and set ERROR) passes straight through, so a pass
 * reads as the list of its layers.  A stopped pass fails at its next step. */

/* X when the step should run, else NULL (X freed). */
VaeTensor *vae_step_go_on (const VaePass *p, VaeTensor *x, GError **error);
/* act(conv(x)) of an input the pass does not own (the image, the latent). */
VaeTensor *vae_step_first_conv (const VaePass *p, const VaeConv *c, const VaeTensor *x, VaeAct act,
                                GError **error);
/* act(conv(up(x))), up being nearest ×2 when UPSAMPLE. */
VaeTensor *vae_step_conv (const VaePass *p, const VaeConv *c, VaeTensor *x, gboolean upsample,
                          VaeAct act, GError **error);
/* act(conv_transpose(x)). */
VaeTensor *vae_step_conv_transpose (const VaePass *p, const VaeConvTranspose *c, VaeTensor *x,
                                    VaeAct act, GError **error);
/* act(norm(x)), in place where the backend can. */
VaeTensor *vae_step_norm (const VaePass *p, const VaeNorm *n, VaeTensor *x, VaeAct act,
                          GError **error);
/* x + attention(x), A's norm included. */
VaeTensor *vae_step_attention (const VaePass *p, const VaeAttention *a, VaeTensor *x,
                               GError **error);
/* The ×2 pixel shuffle of x (4C channels → C at twice the size). */
VaeTensor *vae_step_pixel_shuffle (const VaePass *p, VaeTensor *x, GError **error);

G_END_DECLS

#endif
