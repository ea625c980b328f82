/* Convolutions that Winograd does not take (stride 2, or fewer than 8
 * input channels), in fp32: each thread takes runs of CHUNK output pixels,
 * gathers their im2col columns into its own cache, multiplies them by the
 * weights with vae_sgemm_small and writes act(product + bias + residual)
 * straight into Y.  The banded path (OpenBLAS over a 24 MB im2col band)
 * wrote every column to memory, read it back and packed it again: one
 * 64-channel stride-2 conv at 1024² took 0.336 s there and 0.297 s here on
 * one Zen 3 thread, TAESD's 3-input first conv 0.114 and 0.078 s, the SD1.5
 * encoder's downsamplers (1152 to 4608 terms) 10% less
 * (docs/PERFORMANCE-NOTES.md).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <omp.h>
#include <string.h>

/* Output pixels per chunk, in raster order (a chunk may end one row and
 * start the next), and the row stride of its columns and products: an
 * odd number of cache lines, as Winograd's chunks (64 floats put every
 * row of a chunk in a sixteenth of L1's sets). */
#define CHUNK    64
#define CHUNK_LD (CHUNK + 16)
/* Most terms per output (input channels × taps) taken here: the widest
 * measured (a 512-channel downsampler; its chunk's columns are 1.5 MB,
 * its weights 9 MB, and the products' slices of k still beat OpenBLAS's
 * blocking by 10%).  Wider convs stay with OpenBLAS, unmeasured. */
#define MAX_TERMS 4608
/* Widest kernel taken (TAESD's and the KL families' are 3; a run keeps
 * its bounds per tap across). */
#define MAX_KERNEL 7

gboolean
vae_direct_conv_applies (const VaeConv *conv)
{
  return vae_conv_groups (conv) == 1 && conv->kernel <= MAX_KERNEL &&
         vae_conv_terms (conv) <= MAX_TERMS && vae_cpu_has_small_sgemm ();
}

/* One thread's columns and products. */
static gsize
thread_floats (const VaeConv *conv)
{
  return ((gsize) vae_conv_terms (conv) + conv->out_channels) * CHUNK_LD;
}

gsize
vae_direct_conv_scratch_bytes (const VaeConv *conv)
{
  return (vae_sgemm_small_a_floats (conv->out_channels, vae_conv_terms (conv)) +
          thread_floats (conv) * omp_get_max_threads ()) *
         sizeof (gfloat);
}

/* DST[i] = SRC[2i] for N values, 8 at a time from 16, where SRC holds
 * AVAIL values (a stride-2 conv's row of one tap; one value at a time
 * this took a third of the conv). */
static inline void
every_other (const gfloat *restrict src, gint n, gint avail, gfloat *restrict dst)
{
  gint i = 0;

  for (; i + 8 <= n && 2 * i + 16 <= avail; i += 8)
    {
      Floats8 a, b, even;
      memcpy (&a, src + 2 * i, sizeof a);
      memcpy (&b, src + 2 * i + 8, sizeof b);
      even = __builtin_shufflevector (a, b, 0, 2, 4, 6, 8, 10, 12, 14);
      memcpy (dst + i, &even, sizeof even);
    }
  for (; i < n; i++)
    dst[i] = src[2 * i];
}

/* A stretch of output pixels [OX_A, OX_B) of row OY; per tap across, the
 * pixels [lo, hi) whose input lies inside the (upsampled) row, the first
 * of them reading (upsampled) column FIRST. */
typedef struct
{
  gint oy, ox_a, ox_b;
  gint lo[MAX_KERNEL], hi[MAX_KERNEL], first[MAX_KERNEL];
} Run;

static void
run_init (const VaeConv *conv, gint in_w, gint oy, gint ox_a, gint ox_b, Run *run)
{
  const gint s = conv->stride;

  run->oy = oy;
  run->ox_a = ox_a;
  run->ox_b = ox_b;
  for (gint kx = 0; kx < conv->kernel; kx++)
    {
      /* 0 <= ox·s - pad_left + kx < in_w */
      run->lo[kx] = CLAMP ((conv->pad_left - kx + s - 1) / s, ox_a, ox_b);
      run->hi[kx] =
          CLAMP (vae_floor_div (in_w - 1 + conv->pad_left - kx, s) + 1, run->lo[kx], ox_b);
      run->first[kx] = run->lo[kx] * s - conv->pad_left + kx;
    }
}

/* The columns of input channel CI, tap row KY for RUN: one row per tap
 * across, from DST on (rows CHUNK_LD apart); zero outside the input. */
static VAE_HOT void
gather (const VaeConv *conv, const VaeTensor *x, gboolean up, gint ci, gint ky, const Run *run,
        gfloat *restrict dst)
{
  const gint    k = conv->kernel, s = conv->stride, in_w = x->width << up;
  const gint    iy = run->oy * s - conv->pad_top + ky, width = run->ox_b - run->ox_a;
  const gfloat *src;

  if (iy < 0 || iy >= x->height << up)
    {
      for (gint kx = 0; kx < k; kx++, dst += CHUNK_LD)
        memset (dst, 0, sizeof (gfloat) * width);
      return;
    }
  src = x->data + ((gsize) ci * x->height + (iy >> up)) * x->width;
  for (gint kx = 0; kx < k; kx++, dst += CHUNK_LD)
    {
      const gint lo = run->lo[kx] - run->ox_a, n = run->hi[kx] - run->lo[kx];
      const gint first = run->first[kx];
      memset (dst, 0, sizeof (gfloat) * lo);
      if (n == 0)
        {
          memset (dst + lo, 0, sizeof (gfloat) * (width - lo));
          continue;
        }
      if (up)
        for (gint i = 0; i < n; i++)
          dst[lo + i] = src[(first + i * s) >> 1];
      else if (s == 1)
        memcpy (dst + lo, src + first, sizeof (gfloat) * n);
      else if (s == 2)
        every_other (src + first, n, in_w - first, dst + lo);
      else
        for (gint i = 0; i < n; i++)
          dst[lo + i] = src[first + i * s];
      memset (dst + lo + n, 0, sizeof (gfloat) * (width - lo - n));
    }
}

/* y[o][p0 + j] = act(c[o][j] + bias + residual), N pixels. */
static void
store (const VaeConv *conv, const gfloat *c, gsize p0, gint n, const VaeTensor *residual,
       VaeAct act, VaeTensor *y)
{
  const gsize plane = (gsize) y->height * y->width;

  for (gint o = 0; o < conv->out_channels; o++)
    vae_cpu_epilogue (c + (gsize) o * CHUNK_LD, residual ? residual->data + o * plane + p0 : NULL,
                      n, conv->bias ? conv->bias[o] : 0.0f, act, y->data + o * plane + p0);
}

/* Output pixels [P0, P0 + N) of every channel. */
static void
chunk (const VaeConv *conv, const gfloat *a, const VaeTensor *x, gboolean up,
       const VaeTensor *residual, VaeAct act, VaeTensor *y, gsize p0, gint n, gfloat *col,
       gfloat *c)
{
  const gint k = conv->kernel;

  for (gsize p = p0; p < p0 + n;)
    {
      const gint oy = (gint) (p / y->width), ox = (gint) (p % y->width);
      const gint width = (gint) MIN ((gsize) (y->width - ox), p0 + n - p);
      Run        run;
      run_init (conv, x->width << up, oy, ox, ox + width, &run);
      for (gint ci = 0; ci < conv->in_channels; ci++)
        for (gint ky = 0; ky < k; ky++)
          gather (conv, x, up, ci, ky, &run,
                  col + ((gsize) (ci * k + ky) * k) * CHUNK_LD + (p - p0));
      p += width;
    }
  vae_sgemm_small (conv->out_channels, n, vae_conv_terms (conv), a, col, CHUNK_LD, c, CHUNK_LD);
  store (conv, c, p0, n, residual, act, y);
}

gboolean
vae_direct_conv (const VaeConv *conv, const VaeTensor *x, gboolean up, const VaeTensor *residual,
                 VaeAct act, VaeTensor *y, GError **error)
{
  const gint  k = vae_conv_terms (conv);
  const gsize pixels = (gsize) y->height * y->width;
  const gsize a_floats = vae_sgemm_small_a_floats (conv->out_channels, k);
  gsize       capacity;
  gfloat     *scratch = vae_scratch_alloc (vae_direct_conv_scratch_bytes (conv), FALSE, &capacity,
                                           "convolution workspace", error);

  if (!scratch)
    return FALSE;
  vae_sgemm_small_pack_a (conv->out_channels, k, conv->weight, (gsize) k, scratch);
#pragma omp parallel
  {
    gfloat *col = scratch + a_floats + thread_floats (conv) * omp_get_thread_num ();
    gfloat *c = col + (gsize) k * CHUNK_LD;
    /* dynamic, as the Winograd chunks: a thread that shares its core
     * takes fewer */
#pragma omp for schedule(dynamic)
    for (gsize p0 = 0; p0 < pixels; p0 += CHUNK)
      chunk (conv, scratch, x, up, residual, act, y, p0, (gint) MIN (CHUNK, pixels - p0), col, c);
  }
  vae_scratch_free (scratch, capacity);
  return TRUE;
}
