/* Single-head self-attention streamed over blocks of queries, so that no
 * N×N score matrix exists: for each block, S = qᵀk/√c by cuBLAS, a
 * row softmax kernel, O = S·vᵀ by cuBLAS.  The head is the VAE's 512
 * channels wide, past what fused flash kernels keep on chip; the scores of a
 * block are bounded by SCORES_BYTES instead.  Values stay float32; in the
 * half precisions the two products let cuBLAS round their inputs to bf16 or
 * fp16 for the tensor cores: a 1024² decode's attention is 5.5% of its
 * multiply-adds, but at fp32's rate (about a twelfth of bf16 tensor cores'
 * on Hopper) it would be, by that estimate, a third of the pass.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cuda-private.h"

#include <math.h>

#define SCORES_BYTES ((size_t) 256 << 20)

/* The block's reduction of V (max or sum) left in every thread. */
template <bool IS_MAX>
__device__ static float
block_reduce (float v, float *shared)
{
  shared[threadIdx.x] = v;
  __syncthreads ();
  for (int half = blockDim.x / 2; half > 0; half /= 2)
    {
      if ((int) threadIdx.x < half)
        shared[threadIdx.x] = IS_MAX ? fmaxf (shared[threadIdx.x], shared[threadIdx.x + half])
                                     : shared[threadIdx.x] + shared[threadIdx.x + half];
      __syncthreads ();
    }
  v = shared[0];
  __syncthreads ();
  return v;
}

/* Each block turns one row of N scores into probabilities, in place. */
__global__ static void
softmax_rows (float *scores, int n)
{
  __shared__ float shared[CUDA_THREADS];
  float           *row = scores + (size_t) blockIdx.x * n;
  float            top = -INFINITY, sum = 0.0f;

  for (int i = threadIdx.x; i < n; i += blockDim.x)
    top = fmaxf (top, row[i]);
  top = block_reduce<true> (top, shared);
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    {
      const float e = expf (row[i] - top);
      row[i] = e;
      sum += e;
    }
  sum = block_reduce<false> (sum, shared);
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    row[i] /= sum;
}

/* How cuBLAS may compute a float32 product in PRECISION: exactly as
 * specified in fp32 (the handle's pedantic mode, no TF32), on tensor cores
 * from inputs rounded to bf16 or fp16 otherwise (fp32 accumulation). */
static cublasComputeType_t
compute_type (VaePrecision precision)
{
  if (precision == VAE_PRECISION_BF16)
    return CUBLAS_COMPUTE_32F_FAST_16BF;
  if (precision == VAE_PRECISION_FP16)
    return CUBLAS_COMPUTE_32F_FAST_16F;
  return CUBLAS_COMPUTE_32F_PEDANTIC;
}

/* C = ALPHA·op(A)·op(B), column-major float32 (cublasSgemm's arguments). */
static gboolean
gemm (CudaContext *c, VaePrecision precision, cublasOperation_t op_a, cublasOperation_t op_b, int m,
      int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float *out,
      int ldc, const char *what, GError **error)
{
  const float zero = 0.0f;

  return cublas_check (cublasGemmEx (c->cublas, op_a, op_b, m, n, k, &alpha, a, CUDA_R_32F, lda, b,
                                     CUDA_R_32F, ldb, &zero, out, CUDA_R_32F, ldc,
                                     compute_type (precision), CUBLAS_GEMM_DEFAULT),
                       what, error);
}

/* O[:, q0 : q0 + rows] for planar Q, K, V, O of C × N.  In cuBLAS's
 * column-major terms a planar C × N tensor is an N × C matrix (ld N). */
static gboolean
attend_block (CudaContext *c, VaePrecision precision, const float *q, const float *k,
              const float *v, float *o, int channels, int n, int q0, int rows, float *scores,
              GError **error)
{
  const float scale = 1.0f / sqrtf ((float) channels);

  /* scores (N × rows, column-major): S[j, i] = Σ_c k[c, j] q[c, q0 + i] */
  if (!gemm (c, precision, CUBLAS_OP_N, CUBLAS_OP_T, n, rows, channels, scale, k, n, q + q0, n,
             scores, n, "attention scores", error))
    return FALSE;
  softmax_rows<<<rows, CUDA_THREADS, 0, c->stream>>> (scores, n);
  if (!cuda_launched ("softmax_rows", error))
    return FALSE;
  /* O[q0 + i, c] = Σ_j S[j, i] v[j, c] */
  return gemm (c, precision, CUBLAS_OP_T, CUBLAS_OP_N, rows, channels, n, 1.0f, scores, n, v, n,
               o + q0, n, "attention output", error);
}

VaeTensor *
cuda_attention (const VaeAttention *attn, VaePrecision precision, const VaeTensor *x,
                GError **error)
{
  CudaContext *c = cuda_context (error);
  const int    n = x->height * x->width;
  const int    block = (int) MAX ((size_t) 1, MIN ((size_t) n, SCORES_BYTES / sizeof (float) / n));
  VaeTensor   *h = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL, *out = NULL;
  float       *scores = NULL;
  gboolean     ok = TRUE;

  if (!c)
    return NULL;
  if (!(h = cuda_norm (&attn->norm, x, VAE_ACT_NONE, error)) ||
      !(q = cuda_conv (&attn->q, precision, h, FALSE, NULL, VAE_ACT_NONE, error)) ||
      !(k = cuda_conv (&attn->k, precision, h, FALSE, NULL, VAE_ACT_NONE, error)) ||
      !(v = cuda_conv (&attn->v, precision, h, FALSE, NULL, VAE_ACT_NONE, error)) ||
      !(o = cuda_tensor_new (x->channels, x->height, x->width, error)) ||
      !(scores = (float *) cuda_scratch ((size_t) block * n * sizeof (float), error)))
    goto out;
  g_clear_pointer (&h, vae_tensor_free);
  for (int q0 = 0; ok && q0 < n; q0 += block)
    ok = attend_block (c, precision, cuda_tensor_data (q), cuda_tensor_data (k),
                       cuda_tensor_data (v), cuda_tensor_data (o), x->channels, n, q0,
                       MIN (block, n - q0), scores, error);
  vae_backend_count_macs ((guint64) 2 * n * n * x->channels);
  if (ok)
    out = cuda_conv (&attn->proj, precision, o, FALSE, x, VAE_ACT_NONE, error);
out:
  cuda_scratch_free (scores);
  vae_tensor_free (h);
  vae_tensor_free (q);
  vae_tensor_free (k);
  vae_tensor_free (v);
  vae_tensor_free (o);
  return out;
}
