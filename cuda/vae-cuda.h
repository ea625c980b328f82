/* The CUDA backend's entry points, called from core (C).  Built only when
 * meson finds the CUDA toolkit; see core/compute.c for the dispatch.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_CUDA_H
#define VAE_CUDA_H

#include "backend.h"

G_BEGIN_DECLS

/* TRUE when a CUDA device answers (the first one is used). */
gboolean          vae_cuda_probe_device (gchar **device_name, GError **error);
/* The backend table for PRECISION; tensors it returns live on the device. */
const VaeBackend *vae_cuda_backend (VaePrecision precision);
/* Replaces a device tensor by a host copy (host tensors are left alone). */
gboolean          vae_cuda_to_host (VaeTensor **tensor, GError **error);
/* After a pass: waits for the device and returns pooled memory. */
void              vae_cuda_pass_end (void);
void              vae_cuda_weights_free (gpointer weights);

G_END_DECLS

#endif
