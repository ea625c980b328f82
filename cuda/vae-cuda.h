/* The CUDA backend's entry points, called from core (C).  Built only when
 * meson finds the CUDA toolkit, as a module of its own that core opens the
 * first time a device is asked for (core/compute.c): linking cuBLAS and
 * cuDNN into every program would cost each of them some 200 MB of resident
 * memory (gegl-vae --help: 225 MB, 7.5 MB as a module), GIMP and every
 * gegl process included, on the CPU too.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_CUDA_H
#define VAE_CUDA_H

#include "backend.h"

G_BEGIN_DECLS

/* TRUE when a CUDA device answers (the first one is used). */
gboolean vae_cuda_probe_device (gchar **device_name, GError **error);
/* The backend table for PRECISION; tensors it returns live on the device
 * (its to_host copies them out). */
const VaeBackend *vae_cuda_backend (VaePrecision precision);
/* After a pass: waits for the device, returns pooled memory, and says
 * whether a convolution of the pass gave a non-finite value (an fp16
 * overflow a later ReLU or clamp could hide from the output). */
void vae_cuda_pass_end (gboolean *nonfinite);

/* What the module calls back in core (which it does not link). */
typedef struct
{
  void (*count_macs) (guint64 macs);
  gboolean (*conv_output_checked) (const VaeConv *conv, const VaeTensor *x, gboolean up,
                                   gint *out_h, gint *out_w, GError **error);
  GQuark (*error_quark) (void);
  const gchar *(*precision_name) (VaePrecision precision);
  VaeTensor *(*tensor_new_uninit) (gint channels, gint height, gint width, gboolean zeroed,
                                   GError **error);
  gsize (*tensor_n_elements) (const VaeTensor *tensor);
  void (*tensor_free) (VaeTensor *tensor);
} VaeCudaImports;

/* The entry points above, as the module hands them to core. */
typedef struct
{
  gboolean (*probe_device) (gchar **device_name, GError **error);
  const VaeBackend *(*backend) (VaePrecision precision);
  void (*pass_end) (gboolean *nonfinite);
} VaeCudaModule;

/* The one symbol core looks up in the module. */
#define VAE_CUDA_MODULE_SYMBOL "vae_cuda_module_open"
typedef const VaeCudaModule *(*VaeCudaModuleOpen) (const VaeCudaImports *imports);
const VaeCudaModule *vae_cuda_module_open (const VaeCudaImports *imports);

G_END_DECLS

#endif
