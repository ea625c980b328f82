/* Seeded random-weight checkpoints (see synth.c for the generator).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_SYNTH_H
#define VAE_SYNTH_H

#include "vae-private.h"

G_BEGIN_DECLS

typedef struct
{
  VaeKind  kind; /* VAE_KIND_KL, or VAE_KIND_QWEN_IMAGE (its decoder halves each upsampler) */
  gint     n_levels;
  gint     widths[8];
  gint     layers;          /* resnets per encoder level (decoder: one more) */
  gint     latent_channels; /* Z */
  gboolean quant_convs;
  gboolean batch_norm;
  /* DC-AE: blocks per stage, and the first stage of EfficientViT blocks */
  gint encoder_layers[8], decoder_layers[8];
  gint first_vit;
  /* Wan 2.2 (kind VAE_KIND_QWEN_IMAGE): the image patchified into 12
   * channels, residual levels, the decoder's widths (level order) */
  gboolean patchify;
  gint     decoder_widths[8];
} VaeSynthConfig;

/* The real architecture of a KL family (widths 128/256/512/512, 2 layers),
 * of Qwen-Image's (96/192/384/384, 2 layers), of Wan 2.2's (160/320/640/640,
 * decoder 256/512/1024/1024), of Sana's DC-AE (128/256/512/512/1024/1024,
 * EfficientViT blocks from the fourth stage) or of HunyuanImage 2.1's
 * (128/256/512/512/1024/1024, 2 layers). */
gboolean vae_synth_config_for_family (const VaeFamily *family, VaeSynthConfig *config,
                                      GError **error);
/* Writes a diffusers-named safetensors file of float32 weights (the names
 * of AutoencoderKL, AutoencoderKLQwenImage, AutoencoderKLWan (Wan 2.2),
 * AutoencoderDC or AutoencoderKLHunyuanImage). */
gboolean vae_synth_kl (const gchar *path, const VaeSynthConfig *config, guint64 seed,
                       GError **error);

G_END_DECLS

#endif
