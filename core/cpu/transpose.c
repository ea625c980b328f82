/* Transposed convolution on the CPU, as a gather rather than PyTorch's
 * scatter (col2im): the outputs of one phase — rows oy ≡ ry and columns
 * ox ≡ rx modulo the stride — all read the same taps of the kernel, so each
 * phase is an ordinary correlation of the input with a sub-kernel of
 * ⌈k/stride⌉² taps (2×2 of the 4×4, stride-2 kernel): im2col and one
 * product per band of rows, every output value written once, with bias and
 * activation, and no sums shared between threads.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <string.h>

/* Bytes of im2col columns and products per band, as cpu.c's im2col. */
#define BAND_BYTES ((gsize) 24 << 20)

/* One axis of a phase: output r, r + s, r + 2s … (COUNT of them) reads
 * the input at q + SHIFT + u through tap FIRST + s·(TAPS − 1 − u), for
 * u < TAPS. */
typedef struct
{
  gint taps, first, shift, count;
} Axis;

static Axis
axis_of (const VaeConvTranspose *l, gint r, gint out)
{
  const gint s = l->stride, first = (r + l->pad) % s;
  Axis       a;

  a.taps = first < l->kernel ? (l->kernel - first + s - 1) / s : 0;
  a.first = first;
  a.shift = (r + l->pad) / s - (a.taps - 1);
  a.count = r < out ? (out - r + s - 1) / s : 0;
  return a;
}

/* Rows of a phase computed at once, so that its columns and products stay
 * within BAND_BYTES. */
static gint
band_rows (const VaeConvTranspose *l, const Axis *ay, const Axis *ax)
{
  const gsize row_bytes = ((gsize) l->in_channels * ay->taps * ax->taps + l->out_channels) *
                          ax->count * sizeof (gfloat);

  return (gint) CLAMP (BAND_BYTES / MAX (row_bytes, 1), 1, (gsize) MAX (ay->count, 1));
}

gsize
vae_cpu_conv_transpose_scratch_bytes (const VaeConvTranspose *l, gint out_h, gint out_w)
{
  gsize most = 0;

  for (gint ry = 0; ry < l->stride; ry++)
    for (gint rx = 0; rx < l->stride; rx++)
      {
        const Axis  ay = axis_of (l, ry, out_h), ax = axis_of (l, rx, out_w);
        const gsize k = (gsize) l->in_channels * ay.taps * ax.taps;
        most = MAX (most, ((gsize) l->out_channels * k +
                           (k + l->out_channels) * band_rows (l, &ay, &ax) * ax.count) *
                              sizeof (gfloat));
      }
  return most;
}

/* The phase's sub-kernels as an out × (in · taps_y · taps_x) matrix. */
static void
pack_weights (const VaeConvTranspose *l, const Axis *ay, const Axis *ax, gfloat *a)
{
  const gint k = l->kernel, s = l->stride;

  for (gint o = 0; o < l->out_channels; o++)
    for (gint i = 0; i < l->in_channels; i++)
      for (gint u = 0; u < ay->taps; u++)
        for (gint v = 0; v < ax->taps; v++)
          {
            const gint ky = ay->first + s * (ay->taps - 1 - u),
                       kx = ax->first + s * (ax->taps - 1 - v);
            *a++ = l->weight[(((gsize) i * l->out_channels + o) * k + ky) * k + kx];
          }
}

/* Columns of rows [q0, q0 + rows) of a phase: row (i, u, v) holds
 * x[i][q + shift_y + u][p + shift_x + v] for each output (q, p), zero
 * outside the input (a run of each input row, zeros either side). */
static VAE_HOT void
im2col (const VaeConvTranspose *l, const VaeTensor *x, const Axis *ay, const Axis *ax, gint q0,
        gint rows, gfloat *col)
{
  const gint  n_rows = l->in_channels * ay->taps * ax->taps;
  const gsize band = (gsize) rows * ax->count;

#pragma omp parallel for schedule(static) collapse(2)
  for (gint r = 0; r < n_rows; r++)
    for (gint q = q0; q < q0 + rows; q++)
      {
        const gint i = r / (ay->taps * ax->taps), u = r / ax->taps % ay->taps, v = r % ax->taps;
        const gint iy = q + ay->shift + u, x0 = ax->shift + v;
        /* p runs over [p0, p1) inside the input row */
        const gint p0 = CLAMP (-x0, 0, ax->count), p1 = CLAMP (x->width - x0, p0, ax->count);
        gfloat    *dst = col + (gsize) r * band + (gsize) (q - q0) * ax->count;
        if (iy < 0 || iy >= x->height)
          {
            memset (dst, 0, sizeof (gfloat) * ax->count);
            continue;
          }
        memset (dst, 0, sizeof (gfloat) * p0);
        memcpy (dst + p0, x->data + ((gsize) i * x->height + iy) * x->width + p0 + x0,
                sizeof (gfloat) * (p1 - p0));
        memset (dst + p1, 0, sizeof (gfloat) * (ax->count - p1));
      }
}

/* act(c + bias) into the phase's places in Y: row s·q + ry, column
 * s·p + rx.  C is NULL for a phase no tap reaches (only the bias). */
static VAE_HOT void
scatter (const VaeConvTranspose *l, const gfloat *c, const Axis *ax, gint ry, gint rx, gint q0,
         gint rows, VaeAct act, VaeTensor *y)
{
  const gsize band = (gsize) rows * ax->count;

#pragma omp parallel for schedule(static) collapse(2)
  for (gint o = 0; o < l->out_channels; o++)
    for (gint q = q0; q < q0 + rows; q++)
      {
        const gfloat  b = l->bias ? l->bias[o] : 0.0f;
        const gfloat *src = c ? c + o * band + (gsize) (q - q0) * ax->count : NULL;
        gfloat       *dst =
            y->data + ((gsize) o * y->height + (gsize) q * l->stride + ry) * y->width + rx;
        for (gint p = 0; p < ax->count; p++)
          dst[(gsize) p * l->stride] = vae_activate ((src ? src[p] : 0.0f) + b, act);
      }
}

/* Phase (ry, rx) of Y, a band of rows at a time. */
static gboolean
phase (const VaeConvTranspose *l, const VaeTensor *x, gint ry, gint rx, VaeAct act, VaeTensor *y,
       GError **error)
{
  const Axis  ay = axis_of (l, ry, y->height), ax = axis_of (l, rx, y->width);
  const gint  k = l->in_channels * ay.taps * ax.taps, rows = band_rows (l, &ay, &ax);
  const gsize band = (gsize) rows * ax.count; /* the largest */
  gsize       capacity;
  gfloat     *a, *col, *c;

  if (ay.count == 0 || ax.count == 0)
    return TRUE;
  if (k == 0)
    {
      for (gint q0 = 0; q0 < ay.count; q0 += rows)
        scatter (l, NULL, &ax, ry, rx, q0, MIN (rows, ay.count - q0), act, y);
      return TRUE;
    }
  if (!(a = vae_scratch_alloc (((gsize) l->out_channels * k + (k + l->out_channels) * band) *
                                   sizeof (gfloat),
                               FALSE, &capacity, "transposed convolution workspace", error)))
    return FALSE;
  col = a + (gsize) l->out_channels * k;
  c = col + (gsize) k * band;
  pack_weights (l, &ay, &ax, a);
  for (gint q0 = 0; q0 < ay.count; q0 += rows)
    {
      const gint n = MIN (rows, ay.count - q0);
      im2col (l, x, &ay, &ax, q0, n, col);
      vae_sgemm (FALSE, FALSE, l->out_channels, n * ax.count, k, 1.0f, a, (gsize) k, col,
                 (gsize) n * ax.count, c, (gsize) n * ax.count);
      scatter (l, c, &ax, ry, rx, q0, n, act, y);
    }
  vae_backend_count_macs ((guint64) l->out_channels * k * ay.count * ax.count);
  vae_scratch_free (a, capacity);
  return TRUE;
}

VaeTensor *
vae_cpu_conv_transpose (const VaeConvTranspose *l, const VaeTensor *x, VaeAct act, GError **error)
{
  gint       out_h, out_w;
  VaeTensor *y;

  g_return_val_if_fail (x->channels == l->in_channels, NULL);
  if (!vae_conv_transpose_output_checked (l, x, &out_h, &out_w, error) ||
      !(y = vae_tensor_new_uninit (l->out_channels, out_h, out_w, FALSE, error)))
    return NULL;
  /* the phases tile Y: every value is written once */
  for (gint ry = 0; ry < l->stride; ry++)
    for (gint rx = 0; rx < l->stride; rx++)
      if (!phase (l, x, ry, rx, act, y, error))
        {
          vae_tensor_free (y);
          return NULL;
        }
  return y;
}
