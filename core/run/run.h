/* Running passes: which backend and how (codec.c, compute.c), the device's
 * passes, the memory plan (plan.c).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_RUN_H
#define VAE_RUN_H

#include "nets/model-private.h"
#include "run/tiled.h"

G_BEGIN_DECLS

/* What the CPU computes when PRECISION was asked for and no device runs
 * it: AUTO's choice, bf16 where the CPU has it, else fp32. */
VaePrecision vae_cpu_precision_for (VaePrecision asked);

/* NET on X on the CUDA device, in bands of TILES unless NULL (the band
 * tensors cross to the host between layers), the result in host memory; a
 * half-precision pass that gives non-finite values is redone in fp32.
 * OUTER's progress and cancel flag reach the pass (its backend is not
 * used).  Device memory running out is VAE_ERROR_NO_MEMORY. */
VaeTensor *vae_device_forward (VaeNet *net, const VaeTensor *x, VaePrecision precision,
                               const VaeTileSettings *tiles, const VaePass *outer, GError **error);

/* The networks' own outputs, before posterior, scale, patchify or clamp
 * (KL encoder: 2Z moments; KL decoder: image in [-1, 1]); for tests.  The
 * decoders take diffusion latents, a VQ model's quantised first unless
 * FORCE_NOT_QUANTIZE. */
VaeTensor *vae_model_encode_raw (VaeModel *model, const VaeTensor *image, const VaeRun *run,
                                 GError **error);
VaeTensor *vae_model_decode_raw (VaeModel *model, const VaeTensor *latent, const VaeRun *run,
                                 GError **error);
VaeTensor *vae_model_decode_raw_vq (VaeModel *model, const VaeTensor *latent,
                                    gboolean force_not_quantize, const VaeRun *run, GError **error);

/* The memory plan of one pass of NET under TILING (plan.c): fills PLAN and,
 * when it tiles, TILES (band_pixels > 0). */
gboolean vae_model_plan_pass (VaeModel *model, VaeNet *net, gint channels, gint height, gint width,
                              const VaeTiling *tiling, VaeMemoryPlan *plan, VaeTileSettings *tiles,
                              GError **error);
/* Spare scratch the pool may hold and the Winograd cache size the plan
 * chose. */
gsize vae_plan_pool_hold (const VaeTileSettings *tiles);
gsize vae_plan_winograd_cache (const VaeTileSettings *tiles);

G_END_DECLS

#endif
