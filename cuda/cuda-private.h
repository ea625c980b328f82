/* Shared by the CUDA backend's files: the device context, device tensors,
 * uploaded weights and the error helpers that turn CUDA, cuDNN and cuBLAS
 * statuses into GErrors.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_CUDA_PRIVATE_H
#define VAE_CUDA_PRIVATE_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "vae-cuda.h"

/* One per process, made on first use; passes are serialised by core. */
struct CudaContext
{
  cudaStream_t   stream;
  cudnnHandle_t  cudnn;
  cublasHandle_t cublas;
  void          *workspace; /* cuDNN's, grown on demand */
  size_t         workspace_bytes;
  GHashTable    *algorithms; /* convolution shape → chosen algorithm */
  int           *nonfinite;  /* device flag: a convolution of this pass gave inf or NaN */
};

/* NULL with an error when no device answers. */
CudaContext *cuda_context (GError **error);

gboolean cuda_check (cudaError_t status, const char *what, GError **error);
gboolean cudnn_check (cudnnStatus_t status, const char *what, GError **error);
gboolean cublas_check (cublasStatus_t status, const char *what, GError **error);
/* The launch status of the kernel just queued. */
gboolean cuda_launched (const char *kernel, GError **error);

/* ---- device tensors ------------------------------------------------------ */

/* A float32 tensor in device memory (stream-ordered allocation). */
VaeTensor *cuda_tensor_new (int channels, int height, int width, GError **error);
gboolean   cuda_tensor_is_device (const VaeTensor *t);
float     *cuda_tensor_data (const VaeTensor *t);
/* T's values on the device: its own when it is a device tensor, else an
 * upload kept in *UPLOAD (free it after use). */
const float *cuda_tensor_input (const VaeTensor *t, VaeTensor **upload, GError **error);
/* Replaces a device tensor by a host copy (host tensors are left alone). */
gboolean cuda_to_host (VaeTensor **tensor, GError **error);
/* Stream-ordered scratch. */
void    *cuda_scratch (size_t bytes, GError **error);
void     cuda_scratch_free (void *p);
gboolean cuda_workspace (size_t bytes, GError **error);

/* ---- weights --------------------------------------------------------------- */

/* A convolution's or GroupNorm's parameters on the device, kept in the
 * device slot of its layer cache: weight or gamma in FIRST, bias or beta in
 * SECOND (NULL when absent); a convolution's weight again in LOW, in the
 * half type of LOW_PRECISION and cuDNN's NHWC filter order (made on first
 * use). */
struct CudaWeights
{
  VaeCached    base;
  float       *first;
  float       *second;
  void        *low;
  VaePrecision low_precision;
};

CudaWeights *cuda_conv_weights (const VaeConv *conv, VaePrecision precision, GError **error);
CudaWeights *cuda_norm_weights (const VaeNorm *norm, GError **error);

/* ---- layers ------------------------------------------------------------------ */

VaeTensor *cuda_conv (const VaeConv *conv, VaePrecision precision, const VaeTensor *x,
                      gboolean upsample, const VaeTensor *residual, VaeAct act, GError **error);
VaeTensor *cuda_norm (const VaeNorm *norm, const VaeTensor *x, VaeAct act, GError **error);
VaeTensor *cuda_attention (const VaeAttention *attention, VaePrecision precision,
                           const VaeTensor *x, GError **error);
VaeTensor *cuda_clamp (const VaeTensor *x, GError **error);
/* DC-AE's layers (dcae.cu). */
VaeTensor *cuda_add (const VaeTensor *a, const VaeTensor *b, GError **error);
VaeTensor *cuda_gate (const VaeTensor *x, GError **error);
VaeTensor *cuda_pixel_shuffle (const VaeTensor *x, GError **error);
VaeTensor *cuda_linear_attention (const VaeTensor *x, int head_dim, float eps, GError **error);

/* Threads per block of the element-wise kernels, and their grid for N. */
#define CUDA_THREADS 256
static inline unsigned
cuda_blocks (size_t n)
{
  return (unsigned) MIN ((n + CUDA_THREADS - 1) / CUDA_THREADS, (size_t) 1 << 30);
}

#endif
