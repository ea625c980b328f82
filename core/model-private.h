/* The model object, shared by model.c (loading) and codec.c (running).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_MODEL_PRIVATE_H
#define VAE_MODEL_PRIVATE_H

#include "backend.h"

G_BEGIN_DECLS

struct _VaeModel
{
  gint             ref_count;
  gchar           *cache_key;
  const VaeFamily *family;
  VaeFamily       *generic; /* owned: the family when no descriptor fits */
  VaeStructure     structure;
  gdouble          scale;
  gdouble          shift;
  VaeNet          *encoder;
  VaeNet          *decoder;
  gfloat          *bn_mean;
  gfloat          *bn_var;
  gchar           *files; /* for messages: "a.pth + b.pth" */
  guint            n_tensors;
  guint64          n_params;
  gchar           *dtypes;
};

/* The networks' own outputs, before posterior, scale, patchify or clamp
 * (KL encoder: 2Z moments; KL decoder: image in [-1, 1]); for tests. */
VaeTensor *vae_model_encode_raw (VaeModel *model, const VaeTensor *image, GError **error);
VaeTensor *vae_model_decode_raw (VaeModel *model, const VaeTensor *raw_latent, GError **error);

/* The memory plan of one pass of NET (plan.c): fills PLAN and, when it
 * tiles, TILES (band_pixels > 0). */
gboolean vae_model_plan_pass (VaeModel *model, VaeNet *net, gint channels, gint height, gint width,
                              VaeMemoryPlan *plan, VaeTileSettings *tiles, GError **error);
/* Spare scratch the pool may hold and the Winograd cache size the plan
 * chose. */
gsize vae_plan_pool_hold (const VaeTileSettings *tiles);
gsize vae_plan_winograd_cache (const VaeTileSettings *tiles);

G_END_DECLS

#endif
