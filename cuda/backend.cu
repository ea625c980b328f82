/* The CUDA backend table, one per precision.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cuda-private.h"

struct CudaBackend
{
  VaeBackend   base;
  VaePrecision precision;
};

static VaePrecision
precision_of (const VaeBackend *be)
{
  return ((const CudaBackend *) be)->precision;
}

static VaeTensor *
backend_conv (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x, gboolean upsample,
              const VaeTensor *residual, VaeAct act, GError **error)
{
  return cuda_conv (conv, precision_of (be), x, upsample, residual, act, error);
}

static VaeTensor *
backend_norm (const VaeBackend *be, const VaeNorm *norm, const VaeTensor *x, VaeAct act,
              GError **error)
{
  return cuda_norm (norm, x, act, error);
}

static VaeTensor *
backend_attention (const VaeBackend *be, const VaeAttention *attention, const VaeTensor *x,
                   GError **error)
{
  return cuda_attention (attention, precision_of (be), x, error);
}

static VaeTensor *
backend_clamp (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  return cuda_clamp (x, error);
}

static gboolean
backend_to_host (const VaeBackend *be, VaeTensor **tensor, GError **error)
{
  return cuda_to_host (tensor, error);
}

#define CUDA_BACKEND(precision)                                                                    \
  {                                                                                                \
    { /* no transposed convolution: vae_conv_transpose says so */                                  \
      "cuda",        backend_conv, backend_norm,    backend_attention,                             \
      backend_clamp, NULL,         backend_to_host, NULL                                           \
    },                                                                                             \
        precision                                                                                  \
  }

static const CudaBackend backends[] = {
  CUDA_BACKEND (VAE_PRECISION_FP32),
  CUDA_BACKEND (VAE_PRECISION_BF16),
  CUDA_BACKEND (VAE_PRECISION_FP16),
};

const VaeBackend *
vae_cuda_backend (VaePrecision precision)
{
  return &backends[CLAMP ((int) precision, 0, (int) G_N_ELEMENTS (backends) - 1)].base;
}
