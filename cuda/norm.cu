/* GroupNorm with its activation fused into the normalising pass, the RMS
 * norm over channels (Qwen-Image), and TAESD's soft clamp.  A group is a
 * contiguous run of channels × plane values; its sums are gathered in
 * double by many blocks at once (a group of a 1024² decode holds 4 M
 * values), then folded per group.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cuda-private.h"
#include "layout.h"

/* Values each block of the statistics pass sums. */
#define CHUNK ((size_t) 1 << 16)

/* PARTIAL[group × chunks + chunk] = (Σx, Σx²) over the chunk. */
__global__ static void
group_sums (const float *x, size_t group_size, int chunks, double2 *partial)
{
  __shared__ double sum[CUDA_THREADS], squares[CUDA_THREADS];
  const size_t      begin = (size_t) blockIdx.x * CHUNK, end = MIN (begin + CHUNK, group_size);
  const float      *g = x + (size_t) blockIdx.y * group_size;
  double            s = 0.0, q = 0.0;

  for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    {
      const double v = g[i];
      s += v;
      q += v * v;
    }
  sum[threadIdx.x] = s;
  squares[threadIdx.x] = q;
  __syncthreads ();
  for (int half = blockDim.x / 2; half > 0; half /= 2)
    {
      if ((int) threadIdx.x < half)
        {
          sum[threadIdx.x] += sum[threadIdx.x + half];
          squares[threadIdx.x] += squares[threadIdx.x + half];
        }
      __syncthreads ();
    }
  if (threadIdx.x == 0)
    partial[(size_t) blockIdx.y * chunks + blockIdx.x] = make_double2 (sum[0], squares[0]);
}

/* STATS[group] = (mean, 1/√(var + eps)), one thread per group. */
__global__ static void
group_stats (const double2 *partial, int groups, int chunks, size_t group_size, float eps,
             float2 *stats)
{
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  double    s = 0.0, q = 0.0, mean, var;

  if (g >= groups)
    return;
  for (int i = 0; i < chunks; i++)
    {
      s += partial[(size_t) g * chunks + i].x;
      q += partial[(size_t) g * chunks + i].y;
    }
  mean = s / (double) group_size;
  var = MAX (q / (double) group_size - mean * mean, 0.0);
  stats[g] = make_float2 ((float) mean, (float) (1.0 / sqrt (var + eps)));
}

__global__ static void
normalise (const float *x, const float2 *stats, const float *gamma, const float *beta,
           int channels_per_group, size_t plane, size_t n, int act, float *y)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    {
      const size_t c = i / plane;
      const float2 st = stats[c / channels_per_group];
      y[i] = layout_activate ((x[i] - st.x) * st.y * gamma[c] + beta[c], act);
    }
}

/* ---- RMS norm ---- */

/* RSTD[p] = 1/√(max(mean_c(x²), floor) + eps), one thread per position:
 * neighbouring threads read neighbouring values of each channel plane. */
__global__ static void
rms_stats (const float *x, int channels, size_t plane, float eps, float *rstd)
{
  for (size_t p = blockIdx.x * (size_t) blockDim.x + threadIdx.x; p < plane;
       p += (size_t) gridDim.x * blockDim.x)
    {
      double s = 0.0;
      for (int c = 0; c < channels; c++)
        {
          const double v = x[(size_t) c * plane + p];
          s += v * v;
        }
      rstd[p] = (float) (1.0 / sqrt (MAX (s / channels, VAE_RMS_FLOOR / channels) + eps));
    }
}

__global__ static void
rms_normalise (const float *x, const float *rstd, const float *gamma, const float *beta,
               size_t plane, size_t n, int act, float *y)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    {
      const size_t c = i / plane;
      y[i] = layout_activate (x[i] * rstd[i % plane] * gamma[c] + (beta ? beta[c] : 0.0f), act);
    }
}

static VaeTensor *
rms_norm (CudaContext *c, const VaeNorm *norm, const VaeTensor *x, VaeAct act, GError **error)
{
  const size_t plane = (size_t) x->height * x->width;
  VaeTensor   *upload = NULL, *y = NULL;
  CudaWeights *w;
  const float *src;
  float       *rstd = NULL;
  gboolean     ok = FALSE;

  if (!(w = cuda_norm_weights (norm, error)) || !(src = cuda_tensor_input (x, &upload, error)) ||
      !(rstd = (float *) cuda_scratch (plane * sizeof (float), error)) ||
      !(y = cuda_tensor_new (x->channels, x->height, x->width, error)))
    goto out;
  rms_stats<<<cuda_blocks (plane), CUDA_THREADS, 0, c->stream>>> (src, norm->channels, plane,
                                                                  norm->eps, rstd);
  rms_normalise<<<cuda_blocks (vae_tensor_n_elements (x)), CUDA_THREADS, 0, c->stream>>> (
      src, rstd, w->first, w->second, plane, vae_tensor_n_elements (x), act, cuda_tensor_data (y));
  ok = cuda_launched ("RMS norm", error);
out:
  cuda_scratch_free (rstd);
  vae_tensor_free (upload);
  if (!ok)
    g_clear_pointer (&y, vae_tensor_free);
  return y;
}

/* ---- end RMS norm ---- */

VaeTensor *
cuda_norm (const VaeNorm *norm, const VaeTensor *x, VaeAct act, GError **error)
{
  CudaContext *c = cuda_context (error);
  const size_t plane = (size_t) x->height * x->width;
  const size_t group_size = plane * (norm->channels / norm->groups);
  const int    chunks = (int) ((group_size + CHUNK - 1) / CHUNK);
  VaeTensor   *upload = NULL, *y = NULL;
  CudaWeights *w;
  const float *src;
  double2     *partial = NULL;
  float2      *stats = NULL;
  gboolean     ok = FALSE;

  if (!c)
    return NULL;
  g_return_val_if_fail (x->channels == norm->channels, NULL);
  if (norm->kind == VAE_NORM_RMS)
    return rms_norm (c, norm, x, act, error);
  if (!(w = cuda_norm_weights (norm, error)) || !(src = cuda_tensor_input (x, &upload, error)) ||
      !(partial =
            (double2 *) cuda_scratch ((size_t) norm->groups * chunks * sizeof (double2), error)) ||
      !(stats = (float2 *) cuda_scratch ((size_t) norm->groups * sizeof (float2), error)) ||
      !(y = cuda_tensor_new (x->channels, x->height, x->width, error)))
    goto out;
  group_sums<<<dim3 (chunks, norm->groups), CUDA_THREADS, 0, c->stream>>> (src, group_size, chunks,
                                                                           partial);
  group_stats<<<cuda_blocks (norm->groups), CUDA_THREADS, 0, c->stream>>> (
      partial, norm->groups, chunks, group_size, norm->eps, stats);
  normalise<<<cuda_blocks (vae_tensor_n_elements (x)), CUDA_THREADS, 0, c->stream>>> (
      src, stats, w->first, w->second, norm->channels / norm->groups, plane,
      vae_tensor_n_elements (x), act, cuda_tensor_data (y));
  ok = cuda_launched ("GroupNorm", error);
out:
  cuda_scratch_free (partial);
  cuda_scratch_free (stats);
  vae_tensor_free (upload);
  if (!ok)
    g_clear_pointer (&y, vae_tensor_free);
  return y;
}

__global__ static void
soft_clamp (const float *x, size_t n, float *y)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    y[i] = 3.0f * tanhf (x[i] / 3.0f);
}

VaeTensor *
cuda_clamp (const VaeTensor *x, GError **error)
{
  CudaContext *c = cuda_context (error);
  VaeTensor   *upload = NULL, *y = NULL;
  const float *src;

  if (!c || !(src = cuda_tensor_input (x, &upload, error)) ||
      !(y = cuda_tensor_new (x->channels, x->height, x->width, error)))
    {
      vae_tensor_free (upload);
      return NULL;
    }
  soft_clamp<<<cuda_blocks (vae_tensor_n_elements (x)), CUDA_THREADS, 0, c->stream>>> (
      src, vae_tensor_n_elements (x), cuda_tensor_data (y));
  vae_tensor_free (upload);
  if (!cuda_launched ("soft clamp", error))
    g_clear_pointer (&y, vae_tensor_free);
  return y;
}
