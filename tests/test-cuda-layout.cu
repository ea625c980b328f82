/* The CUDA kernels' index arithmetic and layout-moving bodies
 * (cuda/layout.h) run on the host and checked against plain loops, so that
 * the layouts of code no device here can run are still tested: the
 * prepared input (upsample, one-sided padding; planar element-wise, NHWC
 * through shared-memory tiles), the NHWC epilogue (bias, residual,
 * activation, the non-finite flag) and the NHWC filter order.  The tiled
 * bodies run as a device runs them: every block, phase 0 for all its
 * threads, then phase 1 (the kernel's __syncthreads between).  Exact
 * equality: these move values and do the same float operations.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include <glib.h>
#include <math.h>

#include "layout.h"

typedef struct
{
  int channels, h, w, up, pt, pl, pb, pr;
} Shape;

static const Shape shapes[] = {
  { 3, 5, 7, 0, 1, 1, 1, 1 },   /* 3×3 "same" */
  { 4, 6, 6, 0, 0, 0, 1, 1 },   /* AutoencoderKL's downsampler: right and bottom only */
  { 2, 3, 4, 1, 1, 1, 1, 1 },   /* nearest ×2, then 3×3 */
  { 5, 1, 1, 1, 1, 1, 1, 1 },   /* a 1-pixel image */
  { 1, 4, 9, 0, 0, 0, 0, 0 },   /* 1×1 */
  { 37, 3, 35, 0, 1, 1, 1, 1 }, /* more than one tile of channels and of columns */
  { 33, 2, 17, 1, 1, 1, 1, 1 }, /* the same after nearest ×2 */
};

static float *
ramp (size_t n)
{
  float *p = g_new (float, n);

  for (size_t i = 0; i < n; i++)
    p[i] = (float) i + 1.0f;
  return p;
}

/* Value (c, y, x) of shape SH's prepared input, by the definition. */
static float
prepared_want (const Shape *sh, const float *src, int c, int y, int x)
{
  const int uh = sh->h << sh->up, uw = sh->w << sh->up, vy = y - sh->pt, vx = x - sh->pl;

  if (vy < 0 || vy >= uh || vx < 0 || vx >= uw)
    return 0.0f;
  return src[((size_t) c * sh->h + vy / (1 << sh->up)) * sh->w + vx / (1 << sh->up)];
}

/* BODY (phase, bx, by, tx, ty, tile) over a GX × GY grid of tile blocks,
 * as the device orders it. */
template <typename Body>
static void
run_tiled (unsigned gx, unsigned gy, Body body)
{
  LayoutTile tile;

  for (unsigned by = 0; by < gy; by++)
    for (unsigned bx = 0; bx < gx; bx++)
      for (int phase = 0; phase < 2; phase++)
        for (int ty = 0; ty < LAYOUT_TILE_ROWS; ty++)
          for (int tx = 0; tx < LAYOUT_TILE; tx++)
            body (phase, bx, by, tx, ty, tile);
}

static void
test_prepared (void)
{
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      const Shape *sh = &shapes[s];
      const int ph = (sh->h << sh->up) + sh->pt + sh->pb, pw = (sh->w << sh->up) + sh->pl + sh->pr;
      float    *src = ramp ((size_t) sh->channels * sh->h * sh->w);

      for (int c = 0; c < sh->channels; c++)
        for (int y = 0; y < ph; y++)
          for (int x = 0; x < pw; x++)
            g_assert_cmpfloat (layout_prepared (src, ((size_t) c * ph + y) * pw + x, sh->h, sh->w,
                                                sh->up, sh->pt, sh->pl, ph, pw),
                               ==, prepared_want (sh, src, c, y, x));
      g_free (src);
    }
}

/* Every element of the NHWC prepared input written once, with its value:
 * the output starts as NaN, one guard element past its end stays NaN. */
static void
test_prepared_nhwc (void)
{
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      const Shape *sh = &shapes[s];
      const int ph = (sh->h << sh->up) + sh->pt + sh->pb, pw = (sh->w << sh->up) + sh->pl + sh->pr;
      const size_t n = (size_t) sh->channels * ph * pw;
      float       *src = ramp ((size_t) sh->channels * sh->h * sh->w);
      float       *dst = g_new (float, n + 1);

      for (size_t i = 0; i <= n; i++)
        dst[i] = NAN;
      run_tiled (layout_tiles (pw) * ph, layout_tiles (sh->channels),
                 [&] (int phase, unsigned bx, unsigned by, int tx, int ty, LayoutTile tile) {
                   layout_prepare_nhwc<float> (phase, bx, by, tx, ty, tile, src, sh->channels,
                                               sh->h, sh->w, sh->up, sh->pt, sh->pl, pw, dst);
                 });
      for (int c = 0; c < sh->channels; c++)
        for (int y = 0; y < ph; y++)
          for (int x = 0; x < pw; x++)
            g_assert_cmpfloat (dst[((size_t) y * pw + x) * sh->channels + c], ==,
                               prepared_want (sh, src, c, y, x));
      g_assert_true (isnan (dst[n]));
      g_free (src);
      g_free (dst);
    }
}

/* The NHWC epilogue against the definition for each activation, with and
 * without bias and residual; then a −inf that ReLU turns into 0 still sets
 * the flag.  Channel and position counts off the tile size on purpose. */
static void
test_epilogue_nhwc (void)
{
  const int    channels = 37;
  const size_t plane = 45; /* 5 × 9 */
  const size_t n = channels * plane;
  float *conv = g_new (float, n), *bias = g_new (float, channels), *residual = g_new (float, n);
  float *out = g_new (float, n + 1);
  int    nonfinite = 0;
  auto   epilogue = [&] (const float *b, const float *r, int act) {
    for (size_t i = 0; i <= n; i++)
      out[i] = NAN;
    run_tiled (layout_tiles (plane), layout_tiles (channels),
                 [&] (int phase, unsigned bx, unsigned by, int tx, int ty, LayoutTile tile) {
                 layout_epilogue_nhwc<float> (phase, bx, by, tx, ty, tile, conv, b, r, act,
                                              channels, plane, out, &nonfinite);
               });
    g_assert_true (isnan (out[n]));
  };

  for (size_t i = 0; i < n; i++)
    {
      conv[i] = (float) ((i * 7919) % 23) - 11.0f;
      residual[i] = 0.25f * (float) (i % 5);
    }
  for (int c = 0; c < channels; c++)
    bias[c] = 0.5f * (float) (c % 3) - 0.5f;
  for (int act = 0; act <= 2; act++)
    for (int with = 0; with < 2; with++)
      {
        epilogue (with ? bias : NULL, with ? residual : NULL, act);
        for (int c = 0; c < channels; c++)
          for (size_t p = 0; p < plane; p++)
            {
              float v = conv[p * channels + c];
              if (with)
                v = v + bias[c] + residual[c * plane + p];
              v = act == 1 ? MAX (v, 0.0f) : act == 2 ? v / (1.0f + expf (-v)) : v;
              g_assert_cmpfloat (out[c * plane + p], ==, v);
            }
      }
  g_assert_cmpint (nonfinite, ==, 0);
  conv[3 * channels + 5] = -INFINITY;
  epilogue (NULL, NULL, 1);
  g_assert_cmpfloat (out[5 * plane + 3], ==, 0.0f);
  g_assert_cmpint (nonfinite, ==, 1);
  g_free (conv);
  g_free (bias);
  g_free (residual);
  g_free (out);
}

static void
test_filter_order (void)
{
  const int out = 4, in = 3, taps = 9;

  for (int o = 0; o < out; o++)
    for (int t = 0; t < taps; t++)
      for (int c = 0; c < in; c++)
        {
          const size_t nhwc = ((size_t) o * taps + t) * in + c,
                       planar = ((size_t) o * in + c) * taps + t;
          g_assert_cmpuint (layout_filter_source (nhwc, in, taps), ==, planar);
        }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cuda-layout/prepared-input", test_prepared);
  g_test_add_func ("/cuda-layout/prepared-input-nhwc", test_prepared_nhwc);
  g_test_add_func ("/cuda-layout/epilogue-nhwc", test_epilogue_nhwc);
  g_test_add_func ("/cuda-layout/filter-order", test_filter_order);
  return g_test_run ();
}
