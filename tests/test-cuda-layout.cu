/* The CUDA kernels' index arithmetic (cuda/layout.h) run on the host and
 * checked against plain loops, so that the layouts of code no device here
 * can run are still tested: the prepared input (upsample, one-sided
 * padding, NCHW and NHWC), where the epilogue finds an output element, and
 * the NHWC filter order.  Exact equality: these only move values.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include <glib.h>

#include "layout.h"

typedef struct
{
  int channels, h, w, up, pt, pl, pb, pr;
} Shape;

static const Shape shapes[] = {
  { 3, 5, 7, 0, 1, 1, 1, 1 },  /* 3×3 "same" */
  { 4, 6, 6, 0, 0, 0, 1, 1 },  /* AutoencoderKL's downsampler: right and bottom only */
  { 2, 3, 4, 1, 1, 1, 1, 1 },  /* nearest ×2, then 3×3 */
  { 5, 1, 1, 1, 1, 1, 1, 1 },  /* a 1-pixel image */
  { 1, 4, 9, 0, 0, 0, 0, 0 },  /* 1×1 */
};

static float *
ramp (size_t n)
{
  float *p = g_new (float, n);

  for (size_t i = 0; i < n; i++)
    p[i] = (float) i + 1.0f;
  return p;
}

static void
test_prepared (void)
{
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      const Shape *sh = &shapes[s];
      const int    uh = sh->h << sh->up, uw = sh->w << sh->up;
      const int    ph = uh + sh->pt + sh->pb, pw = uw + sh->pl + sh->pr;
      float       *src = ramp ((size_t) sh->channels * sh->h * sh->w);

      for (int c = 0; c < sh->channels; c++)
        for (int y = 0; y < ph; y++)
          for (int x = 0; x < pw; x++)
            {
              const int vy = y - sh->pt, vx = x - sh->pl;
              const float want = vy >= 0 && vy < uh && vx >= 0 && vx < uw
                                   ? src[((size_t) c * sh->h + vy / (1 << sh->up)) * sh->w + vx / (1 << sh->up)]
                                   : 0.0f;
              const size_t planar = ((size_t) c * ph + y) * pw + x, nhwc = ((size_t) y * pw + x) * sh->channels + c;
              g_assert_cmpfloat (layout_prepared (src, false, planar, sh->channels, sh->h, sh->w, sh->up, sh->pt,
                                                  sh->pl, ph, pw), ==, want);
              g_assert_cmpfloat (layout_prepared (src, true, nhwc, sh->channels, sh->h, sh->w, sh->up, sh->pt, sh->pl,
                                                  ph, pw), ==, want);
            }
      g_free (src);
    }
}

static void
test_output_index (void)
{
  const int    channels = 3;
  const size_t plane = 10; /* 2 × 5 */

  for (size_t c = 0; c < (size_t) channels; c++)
    for (size_t p = 0; p < plane; p++)
      {
        g_assert_cmpuint (layout_output_index (false, c * plane + p, channels, plane), ==, c * plane + p);
        g_assert_cmpuint (layout_output_index (true, c * plane + p, channels, plane), ==, p * channels + c);
      }
}

static void
test_filter_order (void)
{
  const int out = 4, in = 3, taps = 9;

  for (int o = 0; o < out; o++)
    for (int t = 0; t < taps; t++)
      for (int c = 0; c < in; c++)
        {
          const size_t nhwc = ((size_t) o * taps + t) * in + c, planar = ((size_t) o * in + c) * taps + t;
          g_assert_cmpuint (layout_filter_source (nhwc, in, taps), ==, planar);
        }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cuda-layout/prepared-input", test_prepared);
  g_test_add_func ("/cuda-layout/output-index", test_output_index);
  g_test_add_func ("/cuda-layout/filter-order", test_filter_order);
  return g_test_run ();
}
