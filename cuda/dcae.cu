/* DC-AE's layers on the device (Sana's AutoencoderDC): a sum, GLUMBConv's
 * gate, the ×2 pixel shuffle, and EfficientViT's ReLU linear attention —
 * each group's (d + 1) × d sums gathered in double over all positions by
 * one block per row, then each position's output from them.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cuda-private.h"
#include "layout.h"

/* Head widths the attention's kernels keep in registers. */
#define MAX_HEAD_DIM 64

__global__ static void
add_kernel (const float *a, const float *b, size_t n, float *y)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    y[i] = a[i] + b[i];
}

/* y = x[:half] · SiLU(x[half:]), N = half the elements. */
__global__ static void
gate_kernel (const float *x, size_t n, float *y)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    y[i] = x[i] * layout_activate (x[n + i], VAE_ACT_SILU);
}

/* out[c, Y, X] = x[4c + 2(Y % 2) + X % 2, Y / 2, X / 2], planar. */
__global__ static void
pixel_shuffle_kernel (const float *x, int channels, int h, int w, float *y)
{
  const size_t n = (size_t) channels * 4 * h * w;

  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    {
      const size_t xx = i % (2 * w), yy = i / (2 * w) % (2 * h), c = i / ((size_t) 4 * h * w);
      y[i] = x[((4 * c + 2 * (yy % 2) + xx % 2) * h + yy / 2) * w + xx / 2];
    }
}

/* Block (g, i): SUMS[g][i][j] = Σ_m v_i(m)·ReLU(k_j(m)) for j < d, with
 * v_d = 1 (the keys' sums). */
__global__ static void
attention_sums (const float *x, int d, size_t n, double *sums)
{
  __shared__ double part[CUDA_THREADS];
  const int         g = blockIdx.x, i = blockIdx.y;
  const float      *k = x + ((size_t) g * 3 * d + d) * n, *v = x + ((size_t) g * 3 * d + 2 * d) * n;

  for (int j = 0; j < d; j++)
    {
      double acc = 0.0;
      for (size_t m = threadIdx.x; m < n; m += blockDim.x)
        {
          const float key = k[(size_t) j * n + m];
          acc += (double) (key > 0.0f ? key : 0.0f) * (i < d ? v[(size_t) i * n + m] : 1.0f);
        }
      part[threadIdx.x] = acc;
      __syncthreads ();
      for (int half = blockDim.x / 2; half > 0; half /= 2)
        {
          if ((int) threadIdx.x < half)
            part[threadIdx.x] += part[threadIdx.x + half];
          __syncthreads ();
        }
      if (threadIdx.x == 0)
        sums[((size_t) g * (d + 1) + i) * d + j] = part[0];
      __syncthreads ();
    }
}

/* Position m of group blockIdx.y: out_i = Σ_j S[i][j] q'_j / (Σ_j S[d][j] q'_j + eps). */
__global__ static void
attention_apply (const float *x, int d, size_t n, float eps, const double *sums, float *out)
{
  const int     g = blockIdx.y;
  const double *s = sums + (size_t) g * (d + 1) * d;
  const float  *q = x + (size_t) g * 3 * d * n;

  for (size_t m = blockIdx.x * (size_t) blockDim.x + threadIdx.x; m < n;
       m += (size_t) gridDim.x * blockDim.x)
    {
      float  qm[MAX_HEAD_DIM];
      double den = 0.0;
      for (int j = 0; j < d; j++)
        {
          const float v = q[(size_t) j * n + m];
          qm[j] = v > 0.0f ? v : 0.0f;
          den += s[(size_t) d * d + j] * qm[j];
        }
      for (int i = 0; i < d; i++)
        {
          double acc = 0.0;
          for (int j = 0; j < d; j++)
            acc += s[(size_t) i * d + j] * qm[j];
          out[((size_t) g * d + i) * n + m] = (float) (acc / (den + eps));
        }
    }
}

/* Y = a new device tensor of C × H × W, and X's values on the device. */
static gboolean
begin (CudaContext **c, const VaeTensor *x, VaeTensor **upload, const float **src, int channels,
       int h, int w, VaeTensor **y, GError **error)
{
  return (*c = cuda_context (error)) && (*src = cuda_tensor_input (x, upload, error)) &&
         (*y = cuda_tensor_new (channels, h, w, error));
}

static VaeTensor *
finish (VaeTensor *y, VaeTensor *upload, const char *kernel, GError **error)
{
  vae_tensor_free (upload);
  if (y && !cuda_launched (kernel, error))
    g_clear_pointer (&y, vae_tensor_free);
  return y;
}

VaeTensor *
cuda_add (const VaeTensor *a, const VaeTensor *b, GError **error)
{
  CudaContext *c;
  VaeTensor   *upload = NULL, *upload_b = NULL, *y = NULL;
  const float *src, *src_b;

  if (begin (&c, a, &upload, &src, a->channels, a->height, a->width, &y, error) &&
      (src_b = cuda_tensor_input (b, &upload_b, error)))
    add_kernel<<<cuda_blocks (vae_tensor_n_elements (a)), CUDA_THREADS, 0, c->stream>>> (
        src, src_b, vae_tensor_n_elements (a), cuda_tensor_data (y));
  else
    g_clear_pointer (&y, vae_tensor_free);
  vae_tensor_free (upload_b);
  return finish (y, upload, "sum", error);
}

VaeTensor *
cuda_gate (const VaeTensor *x, GError **error)
{
  CudaContext *c;
  VaeTensor   *upload = NULL, *y = NULL;
  const float *src;

  if (begin (&c, x, &upload, &src, x->channels / 2, x->height, x->width, &y, error))
    gate_kernel<<<cuda_blocks (vae_tensor_n_elements (y)), CUDA_THREADS, 0, c->stream>>> (
        src, vae_tensor_n_elements (y), cuda_tensor_data (y));
  return finish (y, upload, "gate", error);
}

VaeTensor *
cuda_pixel_shuffle (const VaeTensor *x, GError **error)
{
  CudaContext *c;
  VaeTensor   *upload = NULL, *y = NULL;
  const float *src;

  if (begin (&c, x, &upload, &src, x->channels / 4, x->height * 2, x->width * 2, &y, error))
    pixel_shuffle_kernel<<<cuda_blocks (vae_tensor_n_elements (y)), CUDA_THREADS, 0, c->stream>>> (
        src, x->channels / 4, x->height, x->width, cuda_tensor_data (y));
  return finish (y, upload, "pixel shuffle", error);
}

VaeTensor *
cuda_linear_attention (const VaeTensor *x, int head_dim, float eps, GError **error)
{
  const int    groups = x->channels / (3 * head_dim);
  const size_t n = (size_t) x->height * x->width;
  CudaContext *c;
  VaeTensor   *upload = NULL, *y = NULL;
  const float *src;
  double      *sums = NULL;

  if (head_dim > MAX_HEAD_DIM)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   "CUDA device: linear attention heads of %d channels (at most %d)", head_dim,
                   MAX_HEAD_DIM);
      return NULL;
    }
  if (begin (&c, x, &upload, &src, x->channels / 3, x->height, x->width, &y, error) &&
      (sums = (double *) cuda_scratch (
           (size_t) groups * (head_dim + 1) * head_dim * sizeof (double), error)))
    {
      attention_sums<<<dim3 (groups, head_dim + 1), CUDA_THREADS, 0, c->stream>>> (src, head_dim, n,
                                                                                   sums);
      attention_apply<<<dim3 (cuda_blocks (n), groups), CUDA_THREADS, 0, c->stream>>> (
          src, head_dim, n, eps, sums, cuda_tensor_data (y));
    }
  else
    g_clear_pointer (&y, vae_tensor_free);
  y = finish (y, upload, "linear attention", error);
  cuda_scratch_free (sums);
  if (y)
    vae_backend_count_macs (2 * (guint64) groups * (head_dim + 1) * head_dim * n);
  return y;
}
