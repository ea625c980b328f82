/* The index arithmetic of the CUDA kernels, and the bodies of the kernels
 * that move values between layouts, for host and device alike, so that
 * tests/test-cuda-layout.cu runs them on machines without a GPU.
 * Planar (NCHW) float32 is the layout between layers; half-precision
 * convolutions read and write NHWC.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_CUDA_LAYOUT_H
#define VAE_CUDA_LAYOUT_H

#include <math.h>
#include <stddef.h>

/* The same activation as the CPU's vae_activate (VaeAct's values). */
__host__ __device__ static inline float
layout_activate (float v, int act)
{
  if (act == 1) /* VAE_ACT_RELU */
    return v > 0.0f ? v : 0.0f;
  if (act == 2) /* VAE_ACT_SILU */
    return v / (1.0f + expf (-v));
  return v;
}

/* Value (c, y, x) of a convolution's prepared input (channels × ph × pw):
 * the planar SRC (channels × h × w) upsampled ×2 when UP and placed at
 * (PT, PL), zero around it. */
__host__ __device__ static inline float
layout_prepared_at (const float *src, size_t c, int y, int x, int h, int w, int up, int pt, int pl)
{
  y -= pt;
  x -= pl;
  if (y < 0 || y >= (h << up) || x < 0 || x >= (w << up))
    return 0.0f;
  return src[(c * h + (y >> up)) * w + (x >> up)];
}

/* Element I of the planar prepared input. */
__host__ __device__ static inline float
layout_prepared (const float *src, size_t i, int h, int w, int up, int pt, int pl, int ph, int pw)
{
  return layout_prepared_at (src, i / ((size_t) pw * ph), (int) (i / pw % ph), (int) (i % pw), h, w,
                             up, pt, pl);
}

/* OUT[I] = act(V + bias[C] + residual[I]), the end of every convolution
 * (BIAS and RESIDUAL may be NULL); sets *NONFINITE where the sum is inf or
 * NaN, before the activation could hide it (ReLU turns −inf into 0). */
__host__ __device__ static inline void
layout_finish (float v, const float *bias, const float *residual, size_t c, size_t i, int act,
               float *out, int *nonfinite)
{
  if (bias)
    v += bias[c];
  if (residual)
    v += residual[i];
  if (!isfinite (v))
    *nonfinite = 1;
  out[i] = layout_activate (v, act);
}

/* Which element of a planar out × in × TAPS weight goes to element I of
 * cuDNN's NHWC filter (out × taps × in). */
__host__ __device__ static inline size_t
layout_filter_source (size_t i, int in, int taps)
{
  const size_t c = i % in, tap = i / in % taps, o = i / ((size_t) in * taps);
  return (o * in + c) * taps + tap;
}

/* ---- transposing kernels ----------------------------------------------------
 * Planar ↔ NHWC moves go through a TILE × TILE block of shared memory, so
 * that reads run along the source's fast axis and writes along the
 * destination's (an element-wise kernel would touch one value per 32-byte
 * sector on one side).  A block is TILE × TILE_ROWS threads; its kernel
 * calls the body with phase 0 (fill the tile), synchronises, then with
 * phase 1 (empty it).  The host test runs the same bodies block by block. */

#define LAYOUT_TILE      32
#define LAYOUT_TILE_ROWS 8

typedef float LayoutTile[LAYOUT_TILE][LAYOUT_TILE + 1]; /* +1: no bank conflicts */

__host__ __device__ static inline unsigned
layout_tiles (size_t n)
{
  return (unsigned) ((n + LAYOUT_TILE - 1) / LAYOUT_TILE);
}

/* The prepared input in NHWC (ph × pw × channels), for blocks
 * (layout_tiles (pw) · ph, layout_tiles (channels)): a block takes 32
 * channels of 32 columns of one row. */
template <typename T>
__host__ __device__ static inline void
layout_prepare_nhwc (int phase, unsigned bx, unsigned by, int tx, int ty, LayoutTile tile,
                     const float *src, int channels, int h, int w, int up, int pt, int pl, int pw,
                     T *dst)
{
  const unsigned tiles_x = layout_tiles (pw);
  const int      y = (int) (bx / tiles_x), x0 = (int) (bx % tiles_x) * LAYOUT_TILE,
            c0 = (int) by * LAYOUT_TILE;

  for (int r = ty; r < LAYOUT_TILE; r += LAYOUT_TILE_ROWS)
    if (phase == 0) /* channel c0 + r, column x0 + tx: along a source row */
      tile[r][tx] = c0 + r < channels && x0 + tx < pw
                        ? layout_prepared_at (src, (size_t) (c0 + r), y, x0 + tx, h, w, up, pt, pl)
                        : 0.0f;
    else if (x0 + r < pw &&
             c0 + tx < channels) /* column x0 + r, channel c0 + tx: along a pixel's channels */
      dst[((size_t) y * pw + x0 + r) * channels + c0 + tx] = (T) tile[tx][r];
}

/* layout_finish over CONV (NHWC) into OUT (planar, channels × plane), for
 * blocks (layout_tiles (plane), layout_tiles (channels)). */
template <typename T>
__host__ __device__ static inline void
layout_epilogue_nhwc (int phase, unsigned bx, unsigned by, int tx, int ty, LayoutTile tile,
                      const T *conv, const float *bias, const float *residual, int act,
                      int channels, size_t plane, float *out, int *nonfinite)
{
  const size_t p0 = (size_t) bx * LAYOUT_TILE;
  const int    c0 = (int) by * LAYOUT_TILE;

  for (int r = ty; r < LAYOUT_TILE; r += LAYOUT_TILE_ROWS)
    if (phase == 0) /* position p0 + r, channel c0 + tx: along a pixel's channels */
      tile[r][tx] =
          p0 + r < plane && c0 + tx < channels ? (float) conv[(p0 + r) * channels + c0 + tx] : 0.0f;
    else if (c0 + r < channels &&
             p0 + tx < plane) /* channel c0 + r, position p0 + tx: along a plane */
      layout_finish (tile[tx][r], bias, residual, (size_t) (c0 + r),
                     (size_t) (c0 + r) * plane + p0 + tx, act, out, nonfinite);
}

#endif
