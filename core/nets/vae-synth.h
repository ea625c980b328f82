/* Seeded random-weight checkpoints (see synth.c for the generator).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_SYNTH_H
#define VAE_SYNTH_H

#include "vae-private.h"

G_BEGIN_DECLS

typedef struct
{
  gint     n_levels;
  gint     widths[8];
  gint     layers;          /* resnets per encoder level (decoder: one more) */
  gint     latent_channels; /* Z */
  gboolean quant_convs;
  gboolean batch_norm;
} VaeSynthConfig;

/* The real architecture of a KL family (widths 128/256/512/512, 2 layers). */
gboolean vae_synth_config_for_family (const VaeFamily *family, VaeSynthConfig *config,
                                      GError **error);
/* Writes a diffusers-named safetensors file of float32 weights. */
gboolean vae_synth_kl (const gchar *path, const VaeSynthConfig *config, guint64 seed,
                       GError **error);

G_END_DECLS

#endif
