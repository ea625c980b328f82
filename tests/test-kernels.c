/* The fast CPU kernels against the plain reference (im2col + SGEMM) on
 * random shapes: odd channel counts, 1-pixel images, sizes that are not
 * multiples of the Winograd tile, with upsampling, residuals and every
 * activation.  Tolerance 3e-5 of the largest output: both are float32, and
 * F(4×4,3×3)'s transform constants (up to 8 in A, 1/24 in G) amplify
 * rounding — still well inside the 1e-4 house bar against float64.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <math.h>

static void
test_conv_fast_vs_reference (void)
{
  static const gint in_channels[] = { 8, 13, 64 };
  static const gint out_channels[] = { 1, 7, 32 };
  static const gint sizes[][2] = { { 1, 1 }, { 5, 3 }, { 17, 9 }, { 33, 31 }, { 4, 8 } };
  GRand *rand = g_rand_new_with_seed (2024);
  const VaeBackend *cpu = vae_backend_cpu ();
  gdouble worst = 0;
  gint cases = 0;

  for (guint a = 0; a < G_N_ELEMENTS (in_channels); a++)
    for (guint b = 0; b < G_N_ELEMENTS (out_channels); b++)
      for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
        {
          const gint ci = in_channels[a], co = out_channels[b], up = g_rand_boolean (rand);
          const VaeAct act = (VaeAct) g_rand_int_range (rand, 0, 3);
          VaeConv conv = { co, ci, 3, 1, 1, 1, 1, 1, NULL, NULL, NULL };
          g_autoptr (VaeTensor) x = vae_tensor_new (ci, sizes[s][1], sizes[s][0], NULL);
          g_autoptr (VaeTensor) residual = NULL, fast = NULL, ref = NULL;
          g_autoptr (GError) error = NULL;
          gdouble err;

          conv.weight = test_random_floats (rand, (gsize) co * ci * 9, -1.0 / sqrt (ci * 9.0), 1.0 / sqrt (ci * 9.0));
          conv.bias = g_rand_boolean (rand) ? test_random_floats (rand, co, -0.5, 0.5) : NULL;
          g_free (x->data);
          x->data = test_random_floats (rand, vae_tensor_n_elements (x), -1.0, 1.0);
          x->capacity = 0;
          if (g_rand_boolean (rand))
            {
              residual = vae_tensor_new (co, sizes[s][1] << up, sizes[s][0] << up, NULL);
              for (gsize i = 0; i < vae_tensor_n_elements (residual); i++)
                residual->data[i] = (gfloat) g_rand_double_range (rand, -1, 1);
            }
          g_assert_true (vae_winograd_applies (&conv));
          fast = cpu->conv (cpu, &conv, x, up, residual, act, &error);
          ref = vae_cpu_conv_reference (&conv, x, up, residual, act, &error);
          g_assert_no_error (error);
          err = test_max_rel_error (fast, ref);
          worst = MAX (worst, err);
          if (err > 3e-5)
            g_error ("ci %d co %d %dx%d up %d act %d residual %d: relative error %g", ci, co, sizes[s][0],
                     sizes[s][1], up, act, residual != NULL, err);
          vae_conv_clear (&conv);
          cases++;
        }
  g_test_message ("%d random convolutions: worst relative error %.3g (bar 3e-5)", cases, worst);
  g_rand_free (rand);
}

static void
test_expf (void)
{
  gdouble worst = 0;

  for (gdouble x = -87.0; x <= 87.0; x += 0.0173)
    {
      gdouble want = exp ((gfloat) x), got = vae_expf ((gfloat) x);
      worst = MAX (worst, fabs (got - want) / want);
    }
  g_test_message ("vae_expf: worst relative error %.3g over [-87, 87]", worst);
  g_assert_cmpfloat (worst, <=, 1e-6);
  g_assert_cmpfloat (vae_expf (-1000.0f), <, 1e-37);
  g_assert_cmpfloat (vae_expf (0.0f), ==, 1.0f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/conv3x3-fast-vs-reference", test_conv_fast_vs_reference);
  g_test_add_func ("/kernels/expf", test_expf);
  return g_test_run ();
}
