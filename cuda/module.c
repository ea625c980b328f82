/* The CUDA backend as a module core opens on demand (see vae-cuda.h): its
 * one exported entry point, and the few core functions the kernels' host
 * code calls, forwarded to core through the table it hands over.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-cuda.h"

#include <gmodule.h>

static const VaeCudaImports *core;

static const VaeCudaModule entry_points = {
  vae_cuda_probe_device,
  vae_cuda_backend,
  vae_cuda_pass_end,
};

G_MODULE_EXPORT const VaeCudaModule *
vae_cuda_module_open (const VaeCudaImports *imports)
{
  core = imports;
  return &entry_points;
}

void
vae_backend_count_macs (guint64 macs)
{
  core->count_macs (macs);
}

gboolean
vae_conv_output_checked (const VaeConv *conv, const VaeTensor *x, gboolean up, gint *out_h,
                         gint *out_w, GError **error)
{
  return core->conv_output_checked (conv, x, up, out_h, out_w, error);
}

GQuark
vae_error_quark (void)
{
  return core->error_quark ();
}

const gchar *
vae_precision_name (VaePrecision precision)
{
  return core->precision_name (precision);
}

VaeTensor *
vae_tensor_new_uninit (gint channels, gint height, gint width, gboolean zeroed, GError **error)
{
  return core->tensor_new_uninit (channels, height, width, zeroed, error);
}

gsize
vae_tensor_n_elements (const VaeTensor *tensor)
{
  return core->tensor_n_elements (tensor);
}

void
vae_tensor_free (VaeTensor *tensor)
{
  core->tensor_free (tensor);
}
