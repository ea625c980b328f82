/* The CUDA device: context and handles, status → GError, device tensors
 * (stream-ordered allocations behind a VaeTensor's `external`), and the
 * weights, uploaded once and kept with the model's layers.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cuda-private.h"
#include "layout.h"

#include <inttypes.h>
#include <string.h>

/* ---- statuses ------------------------------------------------------------------ */

/* WHAT failed with the library's STATUS text; out of memory when OOM. */
static gboolean
failed (gboolean oom, const char *what, const char *status, GError **error)
{
  g_set_error (error, VAE_ERROR, oom ? VAE_ERROR_NO_MEMORY : VAE_ERROR_UNSUPPORTED,
               _ ("CUDA device: %s failed: %s"), what, status);
  return FALSE;
}

gboolean
cuda_check (cudaError_t status, const char *what, GError **error)
{
  if (status == cudaSuccess)
    return TRUE;
  cudaGetLastError (); /* clear the sticky copy of a non-fatal error */
  return failed (status == cudaErrorMemoryAllocation, what, cudaGetErrorString (status), error);
}

gboolean
cudnn_check (cudnnStatus_t status, const char *what, GError **error)
{
  return status == CUDNN_STATUS_SUCCESS ||
         failed (status == CUDNN_STATUS_ALLOC_FAILED, what, cudnnGetErrorString (status), error);
}

gboolean
cublas_check (cublasStatus_t status, const char *what, GError **error)
{
  return status == CUBLAS_STATUS_SUCCESS ||
         failed (status == CUBLAS_STATUS_ALLOC_FAILED, what, cublasGetStatusString (status), error);
}

gboolean
cuda_launched (const char *kernel, GError **error)
{
  return cuda_check (cudaGetLastError (), kernel, error);
}

/* ---- context --------------------------------------------------------------------- */

static CudaContext *context;
static GError      *context_error;

/* Freed activations stay in the stream-ordered pool across
 * synchronisations, as PyTorch's caching allocator keeps them;
 * vae_cuda_pass_end returns them between passes. */
static gboolean
keep_pool_memory (GError **error)
{
  cudaMemPool_t pool;
  guint64       threshold = G_MAXUINT64;

  return cuda_check (cudaDeviceGetDefaultMemPool (&pool, 0), "cudaDeviceGetDefaultMemPool",
                     error) &&
         cuda_check (cudaMemPoolSetAttribute (pool, cudaMemPoolAttrReleaseThreshold, &threshold),
                     "cudaMemPoolSetAttribute", error);
}

static gboolean
context_init (CudaContext *c, GError **error)
{
  int devices = 0;

  cudaError_t found = cudaGetDeviceCount (&devices);

  if (found == cudaErrorNoDevice || found == cudaErrorInsufficientDriver ||
      (found == cudaSuccess && devices < 1))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED, _ ("no CUDA device answers (%s)"),
                   found == cudaSuccess ? "0 devices" : cudaGetErrorString (found));
      return FALSE;
    }
  if (!cuda_check (found, "looking for a device", error))
    return FALSE;
  return cuda_check (cudaSetDevice (0), "selecting device 0", error) &&
         cuda_check (cudaStreamCreateWithFlags (&c->stream, cudaStreamNonBlocking),
                     "creating a stream", error) &&
         cudnn_check (cudnnCreate (&c->cudnn), "starting cuDNN", error) &&
         cudnn_check (cudnnSetStream (c->cudnn, c->stream), "cudnnSetStream", error) &&
         cublas_check (cublasCreate (&c->cublas), "starting cuBLAS", error) &&
         cublas_check (cublasSetStream (c->cublas, c->stream), "cublasSetStream", error)
         /* no TF32: fp32 results must match the CPU's */
         && cublas_check (cublasSetMathMode (c->cublas, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode",
                          error) &&
         cuda_check (cudaMalloc ((void **) &c->nonfinite, sizeof (int)), "allocating a flag",
                     error) &&
         cuda_check (cudaMemset (c->nonfinite, 0, sizeof (int)), "clearing a flag", error) &&
         keep_pool_memory (error);
}

CudaContext *
cuda_context (GError **error)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      CudaContext *c = g_new0 (CudaContext, 1);
      if (context_init (c, &context_error))
        {
          c->algorithms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
          context = c;
        }
      else
        g_free (c); /* a half-made context is left to process exit */
      g_once_init_leave (&once, 1);
    }
  if (!context)
    g_propagate_error (error, g_error_copy (context_error));
  return context;
}

gboolean
vae_cuda_probe_device (gchar **device_name, GError **error)
{
  cudaDeviceProp props;

  if (device_name)
    *device_name = NULL;
  if (!cuda_context (error))
    return FALSE;
  if (device_name && cudaGetDeviceProperties (&props, 0) == cudaSuccess)
    *device_name = g_strdup (props.name);
  return TRUE;
}

void
vae_cuda_pass_end (gboolean *nonfinite)
{
  cudaMemPool_t pool;
  int           seen = 0;

  *nonfinite = FALSE;
  if (!context)
    return;
  /* in stream order: after the pass's kernels, cleared for the next pass */
  cudaMemcpyAsync (&seen, context->nonfinite, sizeof seen, cudaMemcpyDeviceToHost, context->stream);
  cudaMemsetAsync (context->nonfinite, 0, sizeof seen, context->stream);
  cudaStreamSynchronize (context->stream);
  *nonfinite = seen != 0;
  /* give the pass's activations back to the device between passes */
  if (cudaDeviceGetDefaultMemPool (&pool, 0) == cudaSuccess)
    cudaMemPoolTrimTo (pool, context->workspace_bytes);
}

/* ---- scratch ------------------------------------------------------------------------ */

void *
cuda_scratch (size_t bytes, GError **error)
{
  void *p = NULL;

  if (!cuda_check (cudaMallocAsync (&p, MAX (bytes, (size_t) 1), context->stream),
                   "allocating device memory", error))
    return NULL;
  return p;
}

void
cuda_scratch_free (void *p)
{
  if (p)
    cudaFreeAsync (p, context->stream);
}

gboolean
cuda_workspace (size_t bytes, GError **error)
{
  if (bytes <= context->workspace_bytes)
    return TRUE;
  cuda_scratch_free (context->workspace);
  context->workspace = NULL;
  context->workspace_bytes = 0;
  if (!(context->workspace = cuda_scratch (bytes, error)))
    return FALSE;
  context->workspace_bytes = bytes;
  return TRUE;
}

/* ---- device tensors ------------------------------------------------------------------ */

struct DeviceStore
{
  VaeExternal base;
  float      *data;
};

static void
device_store_release (VaeExternal *external)
{
  cuda_scratch_free (((DeviceStore *) external)->data);
  g_free (external);
}

/* GEGL_VAE_CUDA_MAX_TENSOR (bytes): larger activations count as out of
 * memory, so that the banded fallback can be tried on any device. */
static gboolean
over_test_cap (size_t bytes, GError **error)
{
  const gchar  *env = g_getenv ("GEGL_VAE_CUDA_MAX_TENSOR");
  const guint64 cap = env ? g_ascii_strtoull (env, NULL, 10) : 0;

  if (cap == 0 || bytes <= cap)
    return FALSE;
  g_set_error (
      error, VAE_ERROR, VAE_ERROR_NO_MEMORY,
      _ ("CUDA device: a tensor of %zu bytes is over GEGL_VAE_CUDA_MAX_TENSOR (%" PRIu64 ")"),
      bytes, cap);
  return TRUE;
}

VaeTensor *
cuda_tensor_new (int channels, int height, int width, GError **error)
{
  const size_t bytes = (size_t) channels * height * width * sizeof (float);
  DeviceStore *store;
  VaeTensor   *t;
  void        *data;

  if (over_test_cap (bytes, error) || !(data = cuda_scratch (bytes, error)))
    return NULL;
  store = g_new0 (DeviceStore, 1);
  store->base.release = device_store_release;
  store->data = (float *) data;
  t = g_new0 (VaeTensor, 1);
  t->channels = channels;
  t->height = height;
  t->width = width;
  t->external = store;
  return t;
}

gboolean
cuda_tensor_is_device (const VaeTensor *t)
{
  return t->external && ((VaeExternal *) t->external)->release == device_store_release;
}

float *
cuda_tensor_data (const VaeTensor *t)
{
  return ((DeviceStore *) t->external)->data;
}

const float *
cuda_tensor_input (const VaeTensor *t, VaeTensor **upload, GError **error)
{
  *upload = NULL;
  if (cuda_tensor_is_device (t))
    return cuda_tensor_data (t);
  if (!t->data)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("CUDA device: a tensor's values are not in memory"));
      return NULL;
    }
  if (!(*upload = cuda_tensor_new (t->channels, t->height, t->width, error)))
    return NULL;
  if (!cuda_check (cudaMemcpyAsync (cuda_tensor_data (*upload), t->data,
                                    vae_tensor_n_elements (t) * sizeof (float),
                                    cudaMemcpyHostToDevice, context->stream),
                   "copying a tensor to the device", error))
    {
      g_clear_pointer (upload, vae_tensor_free);
      return NULL;
    }
  return cuda_tensor_data (*upload);
}

gboolean
cuda_to_host (VaeTensor **tensor, GError **error)
{
  VaeTensor *host;

  if (!cuda_tensor_is_device (*tensor))
    return TRUE;
  host = vae_tensor_new_uninit ((*tensor)->channels, (*tensor)->height, (*tensor)->width, FALSE,
                                error);
  if (!host)
    return FALSE;
  if (!cuda_check (cudaMemcpyAsync (host->data, cuda_tensor_data (*tensor),
                                    vae_tensor_n_elements (host) * sizeof (float),
                                    cudaMemcpyDeviceToHost, context->stream),
                   "copying a tensor from the device", error) ||
      !cuda_check (cudaStreamSynchronize (context->stream), "finishing the pass", error))
    {
      vae_tensor_free (host);
      return FALSE;
    }
  return vae_tensor_replace (tensor, host);
}

/* ---- weights --------------------------------------------------------------------------- */

G_LOCK_DEFINE_STATIC (weights);

static float *
upload_floats (const float *src, size_t n, GError **error)
{
  void *p = NULL;

  if (!src)
    return NULL;
  if (!cuda_check (cudaMalloc (&p, n * sizeof (float)), "allocating weights", error))
    return NULL;
  if (!cuda_check (cudaMemcpy (p, src, n * sizeof (float), cudaMemcpyHostToDevice),
                   "uploading weights", error))
    {
      cudaFree (p);
      return NULL;
    }
  return (float *) p;
}

static void
weights_free (VaeCached *cached)
{
  CudaWeights *w = (CudaWeights *) cached;

  if (!w)
    return;
  cudaFree (w->first);
  cudaFree (w->second);
  cudaFree (w->low);
  g_free (w);
}

/* Uploads FIRST (N1 floats) and SECOND (N2, may be NULL) once, into the
 * device slot of the layer's CACHE. */
static CudaWeights *
weights_in (VaeLayerCache *cache, const float *first, size_t n1, const float *second, size_t n2,
            GError **error)
{
  CudaWeights *w;

  if (!cache)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   "a layer without a cache cannot keep its weights on the device");
      return NULL;
    }
  G_LOCK (weights);
  if (!(w = (CudaWeights *) cache->slot[VAE_CACHE_DEVICE]))
    {
      w = g_new0 (CudaWeights, 1);
      w->base.free = weights_free;
      if ((w->first = upload_floats (first, n1, error)) &&
          (!second || (w->second = upload_floats (second, n2, error))))
        cache->slot[VAE_CACHE_DEVICE] = &w->base;
      else
        {
          weights_free (&w->base);
          w = NULL;
        }
    }
  G_UNLOCK (weights);
  return w;
}

/* DST = SRC in the half type and cuDNN's NHWC filter order. */
template <typename Half>
__global__ void
to_half_nhwc (const float *src, int in, int taps, size_t n, Half *dst)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    dst[i] = (Half) src[layout_filter_source (i, in, taps)];
}

/* CONV's weights in PRECISION's half type, made once. */
static gboolean
ensure_low (CudaWeights *w, const VaeConv *conv, VaePrecision precision, GError **error)
{
  const int    taps = conv->kernel * conv->kernel, in = vae_conv_group_inputs (conv);
  const size_t n = (size_t) conv->out_channels * in * taps;
  gboolean     ok = TRUE;

  G_LOCK (weights);
  if (!w->low || w->low_precision != precision)
    {
      cudaFree (w->low);
      w->low = NULL;
      ok = cuda_check (cudaMalloc (&w->low, n * 2), "allocating half-precision weights", error);
      if (ok && precision == VAE_PRECISION_BF16)
        to_half_nhwc<<<cuda_blocks (n), CUDA_THREADS>>> (w->first, in, taps, n,
                                                         (__nv_bfloat16 *) w->low);
      else if (ok)
        to_half_nhwc<<<cuda_blocks (n), CUDA_THREADS>>> (w->first, in, taps, n, (__half *) w->low);
      ok = ok && cuda_launched ("converting weights", error) &&
           cuda_check (cudaDeviceSynchronize (), "converting weights", error);
      w->low_precision = precision;
      if (!ok)
        {
          cudaFree (w->low);
          w->low = NULL;
        }
    }
  G_UNLOCK (weights);
  return ok;
}

CudaWeights *
cuda_conv_weights (const VaeConv *conv, VaePrecision precision, GError **error)
{
  const size_t n =
      (size_t) conv->out_channels * vae_conv_group_inputs (conv) * conv->kernel * conv->kernel;
  CudaWeights *w =
      weights_in (conv->cache, conv->weight, n, conv->bias, (size_t) conv->out_channels, error);

  if (w && precision != VAE_PRECISION_FP32 && !ensure_low (w, conv, precision, error))
    return NULL;
  return w;
}

CudaWeights *
cuda_norm_weights (const VaeNorm *norm, GError **error)
{
  return weights_in (norm->cache, norm->gamma, (size_t) norm->channels, norm->beta,
                     (size_t) norm->channels, error);
}
