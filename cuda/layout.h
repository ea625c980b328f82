/* The index arithmetic of the CUDA kernels, for host and device alike, so
 * that tests/test-cuda-layout.cu checks it on machines without a GPU.
 * Planar (NCHW) float32 is the layout between layers; half-precision
 * convolutions read and write NHWC.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_CUDA_LAYOUT_H
#define VAE_CUDA_LAYOUT_H

#include <stddef.h>

/* Element I of a C × H × W tensor: (c, y, x). */
__host__ __device__ static inline void
layout_unravel (bool nhwc, size_t i, int channels, int h, int w, size_t *c, int *y, int *x)
{
  if (nhwc)
    {
      *c = i % channels;
      *x = (int) (i / channels % w);
      *y = (int) (i / ((size_t) channels * w));
    }
  else
    {
      *x = (int) (i % w);
      *y = (int) (i / w % h);
      *c = i / ((size_t) w * h);
    }
}

/* Element I of a convolution's prepared input (channels × ph × pw): the
 * planar SRC (channels × h × w) upsampled ×2 when UP and placed at (PT, PL),
 * zero around it. */
__host__ __device__ static inline float
layout_prepared (const float *src, bool nhwc, size_t i, int channels, int h, int w, int up, int pt, int pl, int ph,
                 int pw)
{
  size_t c;
  int    y, x;

  layout_unravel (nhwc, i, channels, ph, pw, &c, &y, &x);
  y -= pt;
  x -= pl;
  if (y < 0 || y >= (h << up) || x < 0 || x >= (w << up))
    return 0.0f;
  return src[(c * h + (y >> up)) * w + (x >> up)];
}

/* Where planar element I of a C × PLANE output sits in the layout. */
__host__ __device__ static inline size_t
layout_output_index (bool nhwc, size_t i, int channels, size_t plane)
{
  return nhwc ? i % plane * channels + i / plane : i;
}

/* Which element of a planar out × in × TAPS weight goes to element I of
 * cuDNN's NHWC filter (out × taps × in). */
__host__ __device__ static inline size_t
layout_filter_source (size_t i, int in, int taps)
{
  const size_t c = i % in, tap = i / in % taps, o = i / ((size_t) in * taps);
  return (o * in + c) * taps + tap;
}

#endif
