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

/* ---- DC-AE layers ---- */

static VaeTensor *
backend_add (const VaeBackend *be, const VaeTensor *a, const VaeTensor *b, GError **error)
{
  return cuda_add (a, b, error);
}

static VaeTensor *
backend_gate (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  return cuda_gate (x, error);
}

static VaeTensor *
backend_linear_attention (const VaeBackend *be, const VaeTensor *x, gint head_dim, gfloat eps,
                          GError **error)
{
  return cuda_linear_attention (x, head_dim, eps, error);
}

static VaeTensor *
backend_pixel_shuffle (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  return cuda_pixel_shuffle (x, error);
}

/* ---- end DC-AE layers ---- */

#define CUDA_BACKEND(precision)                                                                    \
  {                                                                                                \
    { "cuda",                                                                                      \
      backend_conv,                                                                                \
      backend_norm,                                                                                \
      backend_attention,                                                                           \
      backend_clamp,                                                                               \
      NULL,                                                                                        \
      backend_to_host,                                                                             \
      NULL, /* no transposed convolution: vae_conv_transpose says so */                            \
      backend_add,                                                                                 \
      backend_gate,                                                                                \
      backend_linear_attention,                                                                    \
      backend_pixel_shuffle,                                                                       \
      NULL, /* residual blocks conv by conv */                                                     \
      NULL /* resnets layer by layer */ },                                                         \
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
