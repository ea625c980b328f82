/* Convolutions on the device through cuDNN: the input is prepared (nearest
 * ×2 upsample, one-sided padding, conversion to bf16/fp16 in the NHWC
 * layout tensor cores read) in one kernel when the layer needs any of
 * those, cuDNN convolves with fp32 accumulation (TF32 kept off in fp32),
 * and one epilogue kernel adds bias and residual, applies the activation
 * and writes planar float32, the layout every other layer reads.  The NHWC
 * kernels transpose through shared memory (cuda/layout.h).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cuda-private.h"
#include "layout.h"

#include <type_traits>

/* Workspace cuDNN may take for one convolution. */
#define MAX_WORKSPACE ((size_t) 2 << 30)

template <typename T> struct CudnnType;
template <> struct CudnnType<float>
{
  static const cudnnDataType_t value = CUDNN_DATA_FLOAT;
};
template <> struct CudnnType<__nv_bfloat16>
{
  static const cudnnDataType_t value = CUDNN_DATA_BFLOAT16;
};
template <> struct CudnnType<__half>
{
  static const cudnnDataType_t value = CUDNN_DATA_HALF;
};

static_assert (VAE_ACT_RELU == 1 && VAE_ACT_SILU == 2, "layout_activate's numbering");

/* The planar float32 prepared input, element-wise. */
__global__ static void
prepare_planar (const float *src, int channels, int h, int w, int up, int pt, int pl, int ph,
                int pw, float *dst)
{
  const size_t n = (size_t) channels * ph * pw;

  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    dst[i] = layout_prepared (src, i, h, w, up, pt, pl, ph, pw);
}

/* The NHWC prepared input in the half type T, through shared memory. */
template <typename T>
__global__ void
prepare_nhwc (const float *src, int channels, int h, int w, int up, int pt, int pl, int pw, T *dst)
{
  __shared__ LayoutTile tile;

  layout_prepare_nhwc<T> (0, blockIdx.x, blockIdx.y, threadIdx.x, threadIdx.y, tile, src, channels,
                          h, w, up, pt, pl, pw, dst);
  __syncthreads ();
  layout_prepare_nhwc<T> (1, blockIdx.x, blockIdx.y, threadIdx.x, threadIdx.y, tile, src, channels,
                          h, w, up, pt, pl, pw, dst);
}

/* OUT = act(CONV + bias + residual), all planar float32, in place allowed. */
__global__ static void
epilogue_planar (const float *conv, const float *bias, const float *residual, int act, int channels,
                 size_t plane, float *out, int *nonfinite)
{
  const size_t n = (size_t) channels * plane;

  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    layout_finish (conv[i], bias, residual, i / plane, i, act, out, nonfinite);
}

/* The same from CONV in NHWC and the half type T, through shared memory. */
template <typename T>
__global__ void
epilogue_nhwc (const T *conv, const float *bias, const float *residual, int act, int channels,
               size_t plane, float *out, int *nonfinite)
{
  __shared__ LayoutTile tile;

  layout_epilogue_nhwc<T> (0, blockIdx.x, blockIdx.y, threadIdx.x, threadIdx.y, tile, conv, bias,
                           residual, act, channels, plane, out, nonfinite);
  __syncthreads ();
  layout_epilogue_nhwc<T> (1, blockIdx.x, blockIdx.y, threadIdx.x, threadIdx.y, tile, conv, bias,
                           residual, act, channels, plane, out, nonfinite);
}

static const dim3 tile_threads (LAYOUT_TILE, LAYOUT_TILE_ROWS);

/* Queues the kernel that prepares X (upsampled when UP, padded) into DST. */
template <typename T>
static gboolean
launch_prepare (CudaContext *c, const VaeConv *conv, const float *src, const VaeTensor *x, int up,
                int ph, int pw, T *dst, GError **error)
{
  if constexpr (std::is_same<T, float>::value)
    prepare_planar<<<cuda_blocks ((size_t) conv->in_channels * ph * pw), CUDA_THREADS, 0,
                     c->stream>>> (src, conv->in_channels, x->height, x->width, up, conv->pad_top,
                                   conv->pad_left, ph, pw, dst);
  else
    prepare_nhwc<T><<<dim3 (layout_tiles (pw) * ph, layout_tiles (conv->in_channels)), tile_threads,
                      0, c->stream>>> (src, conv->in_channels, x->height, x->width, up,
                                       conv->pad_top, conv->pad_left, pw, dst);
  return cuda_launched ("preparing a convolution's input", error);
}

/* Queues the kernel that finishes the convolution OUT into Y. */
template <typename T>
static gboolean
launch_epilogue (CudaContext *c, const VaeConv *conv, const T *out, const float *bias,
                 const float *residual, VaeAct act, VaeTensor *y, GError **error)
{
  const size_t plane = (size_t) y->height * y->width;

  if constexpr (std::is_same<T, float>::value)
    epilogue_planar<<<cuda_blocks (vae_tensor_n_elements (y)), CUDA_THREADS, 0, c->stream>>> (
        out, bias, residual, act, conv->out_channels, plane, cuda_tensor_data (y), c->nonfinite);
  else
    epilogue_nhwc<T><<<dim3 (layout_tiles (plane), layout_tiles (conv->out_channels)), tile_threads,
                       0, c->stream>>> (out, bias, residual, act, conv->out_channels, plane,
                                        cuda_tensor_data (y), c->nonfinite);
  return cuda_launched ("convolution epilogue", error);
}

/* The descriptors of one convolution call. */
struct ConvCall
{
  cudnnTensorDescriptor_t      x, y;
  cudnnFilterDescriptor_t      w;
  cudnnConvolutionDescriptor_t conv;
};

static void
call_clear (ConvCall *call)
{
  if (call->x)
    cudnnDestroyTensorDescriptor (call->x);
  if (call->y)
    cudnnDestroyTensorDescriptor (call->y);
  if (call->w)
    cudnnDestroyFilterDescriptor (call->w);
  if (call->conv)
    cudnnDestroyConvolutionDescriptor (call->conv);
}

static gboolean
call_init (ConvCall *call, const VaeConv *conv, cudnnDataType_t type, int in_h, int in_w, int pad_h,
           int pad_w, int out_h, int out_w, GError **error)
{
  const int                 k = conv->kernel;
  const cudnnTensorFormat_t layout =
      type == CUDNN_DATA_FLOAT ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;

  return cudnn_check (cudnnCreateTensorDescriptor (&call->x), "cudnnCreateTensorDescriptor",
                      error) &&
         cudnn_check (cudnnCreateTensorDescriptor (&call->y), "cudnnCreateTensorDescriptor",
                      error) &&
         cudnn_check (cudnnCreateFilterDescriptor (&call->w), "cudnnCreateFilterDescriptor",
                      error) &&
         cudnn_check (cudnnCreateConvolutionDescriptor (&call->conv),
                      "cudnnCreateConvolutionDescriptor", error) &&
         cudnn_check (
             cudnnSetTensor4dDescriptor (call->x, layout, type, 1, conv->in_channels, in_h, in_w),
             "describing a convolution's input", error) &&
         cudnn_check (cudnnSetTensor4dDescriptor (call->y, layout, type, 1, conv->out_channels,
                                                  out_h, out_w),
                      "describing a convolution's output", error) &&
         cudnn_check (cudnnSetFilter4dDescriptor (call->w, type, layout, conv->out_channels,
                                                  vae_conv_group_inputs (conv), k, k),
                      "describing a convolution's weights", error) &&
         cudnn_check (cudnnSetConvolution2dDescriptor (call->conv, pad_h, pad_w, conv->stride,
                                                       conv->stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                       CUDNN_DATA_FLOAT),
                      "describing a convolution", error) &&
         cudnn_check (cudnnSetConvolutionGroupCount (call->conv, vae_conv_groups (conv)),
                      "cudnnSetConvolutionGroupCount", error);
}

/* The fastest algorithm for this shape, measured once (as PyTorch's
 * cudnn.benchmark does); in fp32 only FMA kernels qualify (no TF32). */
static gboolean
choose_algorithm (CudaContext *c, ConvCall *call, gboolean fp32, const char *key,
                  cudnnConvolutionFwdAlgoPerf_t *chosen, GError **error)
{
  cudnnConvolutionFwdAlgoPerf_t  results[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  cudnnConvolutionFwdAlgoPerf_t *known =
      (cudnnConvolutionFwdAlgoPerf_t *) g_hash_table_lookup (c->algorithms, key);
  int returned = 0;

  if (known)
    {
      *chosen = *known;
      return TRUE;
    }
  if (!cudnn_check (
          cudnnSetConvolutionMathType (call->conv, fp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH),
          "cudnnSetConvolutionMathType", error) ||
      !cudnn_check (cudnnFindConvolutionForwardAlgorithm (c->cudnn, call->x, call->w, call->conv,
                                                          call->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                          &returned, results),
                    "choosing a convolution algorithm", error))
    return FALSE;
  for (int i = 0; i < returned; i++) /* sorted fastest first */
    if (results[i].status == CUDNN_STATUS_SUCCESS && results[i].memory <= MAX_WORKSPACE &&
        (!fp32 || results[i].mathType == CUDNN_FMA_MATH ||
         results[i].mathType == CUDNN_DEFAULT_MATH))
      {
        *chosen = results[i];
        g_hash_table_insert (c->algorithms, g_strdup (key), g_memdup2 (chosen, sizeof *chosen));
        return TRUE;
      }
  g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
               _ ("CUDA device: cuDNN has no algorithm for the convolution %s"), key);
  return FALSE;
}

static gboolean
needs_preparing (const VaeConv *conv, gboolean up, gboolean fp32)
{
  return up || !fp32 || conv->pad_top != conv->pad_bottom || conv->pad_left != conv->pad_right;
}

template <typename T>
static VaeTensor *
conv_typed (CudaContext *c, const VaeConv *conv, VaePrecision precision, const VaeTensor *x,
            gboolean up, const VaeTensor *residual, VaeAct act, GError **error)
{
  const gboolean fp32 = precision == VAE_PRECISION_FP32;
  const gboolean prepare = needs_preparing (conv, up, fp32);
  const int      in_h = x->height << up, in_w = x->width << up;
  /* prepared inputs carry their padding; cuDNN then pads nothing */
  const int                     ph = prepare ? in_h + conv->pad_top + conv->pad_bottom : in_h;
  const int                     pw = prepare ? in_w + conv->pad_left + conv->pad_right : in_w;
  ConvCall                      call = {};
  cudnnConvolutionFwdAlgoPerf_t algo;
  VaeTensor                    *upload = NULL, *residual_upload = NULL, *y = NULL;
  const float                  *src, *res = NULL;
  CudaWeights                  *w;
  T                            *prepared = NULL, *out = NULL;
  const float                   one = 1.0f, zero = 0.0f;
  int                           out_h, out_w;
  gchar                        *key = NULL;
  gboolean                      ok = FALSE;

  if (!vae_conv_output_checked (conv, x, up, &out_h, &out_w, error) ||
      !(w = cuda_conv_weights (conv, precision, error)) ||
      !(src = cuda_tensor_input (x, &upload, error)) ||
      (residual && !(res = cuda_tensor_input (residual, &residual_upload, error))) ||
      !(y = cuda_tensor_new (conv->out_channels, out_h, out_w, error)))
    goto out;
  if (prepare)
    {
      if (!(prepared =
                (T *) cuda_scratch ((size_t) conv->in_channels * ph * pw * sizeof (T), error)) ||
          !launch_prepare<T> (c, conv, src, x, up, ph, pw, prepared, error))
        goto out;
    }
  out = fp32 ? (T *) cuda_tensor_data (y)
             : (T *) cuda_scratch ((size_t) conv->out_channels * out_h * out_w * sizeof (T), error);
  key = g_strdup_printf ("%d→%d g%d k%d s%d %d×%d pad %d,%d %s", conv->in_channels,
                         conv->out_channels, vae_conv_groups (conv), conv->kernel, conv->stride, pw,
                         ph, prepare ? 0 : conv->pad_left, prepare ? 0 : conv->pad_top,
                         vae_precision_name (precision));
  if (!out ||
      !call_init (&call, conv, CudnnType<T>::value, ph, pw, prepare ? 0 : conv->pad_top,
                  prepare ? 0 : conv->pad_left, out_h, out_w, error) ||
      !choose_algorithm (c, &call, fp32, key, &algo, error) ||
      !cudnn_check (cudnnSetConvolutionMathType (call.conv, algo.mathType),
                    "cudnnSetConvolutionMathType", error) ||
      !cuda_workspace (algo.memory, error) ||
      !cudnn_check (
          cudnnConvolutionForward (c->cudnn, &one, call.x, prepare ? (const void *) prepared : src,
                                   call.w, fp32 ? (const void *) w->first : w->low, call.conv,
                                   algo.algo, c->workspace, algo.memory, &zero, call.y, out),
          "cudnnConvolutionForward", error))
    goto out;
  ok = launch_epilogue<T> (c, conv, out, w->second, res, act, y, error);
  vae_backend_count_macs ((guint64) conv->out_channels * vae_conv_group_inputs (conv) *
                          conv->kernel * conv->kernel * out_h * out_w);
out:
  call_clear (&call);
  g_free (key);
  cuda_scratch_free (prepared);
  if (!fp32)
    cuda_scratch_free (out);
  vae_tensor_free (upload);
  vae_tensor_free (residual_upload);
  if (!ok)
    g_clear_pointer (&y, vae_tensor_free);
  return y;
}

VaeTensor *
cuda_conv (const VaeConv *conv, VaePrecision precision, const VaeTensor *x, gboolean upsample,
           const VaeTensor *residual, VaeAct act, GError **error)
{
  CudaContext *c = cuda_context (error);

  if (!c)
    return NULL;
  g_return_val_if_fail (x->channels == conv->in_channels, NULL);
  switch (precision)
    {
    case VAE_PRECISION_BF16:
      return conv_typed<__nv_bfloat16> (c, conv, precision, x, upsample, residual, act, error);
    case VAE_PRECISION_FP16:
      return conv_typed<__half> (c, conv, precision, x, upsample, residual, act, error);
    default:
      return conv_typed<float> (c, conv, precision, x, upsample, residual, act, error);
    }
}
