/* Qwen-Image's VAE (Wan 2.1's) on one frame, against diffusers'
 * AutoencoderKLQwenImage in float64 (tests/reference/make_qwen_goldens.py):
 * the causal 3-D kernel's frame slice against the 3-D layer, the RMS norm
 * against its formula, a small model in both namings (diffusers
 * safetensors, Wan's .pth) and the full architecture (126.9M seeded
 * parameters from core/nets/synth.c), encode and decode at odd sizes,
 * untiled and in bands.  Tolerance: the house bar, max relative error
 * ≤ 1e-4 against float64.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <math.h>

#define BAR 1e-4

/* One frame through diffusers' QwenImageCausalConv3d (3×3×3, padding 1)
 * equals the 2-D convolution with the kernel's last time slice. */
static void
test_causal_slice (void)
{
  g_autofree gchar *path = test_data_path ("qwen-image", "causal_conv.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = vae_weights_load (path, &error);
  g_autoptr (VaeTensor) x = vae_tensor_new (4, 6, 7, NULL), want = vae_tensor_new (5, 6, 7, NULL);
  g_autoptr (VaeTensor) got = NULL;
  g_autofree gfloat *w3 = NULL, *in = NULL, *out = NULL;
  VaeConv            conv = { 5, 4, 3, 1, 1, 1, 1, 1 };
  gint               ndim;
  gint64             shape[VAE_MAX_DIMS];

  g_assert_no_error (error);
  g_assert_true (vae_weights_shape (w, "weight", &ndim, shape, NULL));
  g_assert_cmpint (ndim, ==, 5);
  w3 = vae_weights_get_float (w, "weight", NULL, &error);
  conv.bias = vae_weights_get_float (w, "bias", NULL, &error);
  in = vae_weights_get_float (w, "input", NULL, &error);
  out = vae_weights_get_float (w, "output", NULL, &error);
  g_assert_no_error (error);
  memcpy (x->data, in, vae_tensor_n_elements (x) * sizeof (gfloat));
  memcpy (want->data, out, vae_tensor_n_elements (want) * sizeof (gfloat));
  conv.weight = vae_causal_frame_kernel (w3, 5, 4, 3, 3, 3);
  got = vae_cpu_conv_reference (&conv, x, FALSE, NULL, VAE_ACT_NONE, &error);
  g_assert_no_error (error);
  test_assert_close (got, want, 1e-6, "2-D slice vs the causal 3-D conv on one frame");
  vae_conv_clear (&conv);
}

/* The RMS norm against F.normalize(x, dim=channels)·√C·γ in double, with
 * one position all zeros (0, as F.normalize gives, not NaN). */
static void
test_rms_norm (void)
{
  GRand      *rand = g_rand_new_with_seed (5);
  const gint  c = 12, h = 5, w = 9;
  const gsize plane = (gsize) h * w;
  VaeNorm norm = { c, 1, 0.0f, test_random_floats (rand, c, 0.5, 1.5), NULL, NULL, VAE_NORM_RMS };
  g_autoptr (VaeTensor) x = vae_tensor_new (c, h, w, NULL), want = vae_tensor_new (c, h, w, NULL);
  g_autoptr (VaeTensor) got = NULL;
  g_autoptr (GError) error = NULL;
  const VaeBackend *cpu = vae_backend_cpu ();

  for (gsize i = 0; i < vae_tensor_n_elements (x); i++)
    x->data[i] = (gfloat) g_rand_double_range (rand, -3, 3);
  for (gint k = 0; k < c; k++)
    x->data[k * plane + 7] = 0.0f;
  for (gsize p = 0; p < plane; p++)
    {
      gdouble sq = 0.0;
      for (gint k = 0; k < c; k++)
        sq += (gdouble) x->data[k * plane + p] * x->data[k * plane + p];
      for (gint k = 0; k < c; k++)
        {
          gdouble v = x->data[k * plane + p] / MAX (sqrt (sq), 1e-12) * sqrt (c) * norm.gamma[k];
          want->data[k * plane + p] = (gfloat) (v / (1.0 + exp (-v)));
        }
    }
  got = cpu->norm (cpu, &norm, x, VAE_ACT_SILU, &error);
  g_assert_no_error (error);
  test_assert_close (got, want, 1e-6, "RMS norm + SiLU");
  g_assert_cmpfloat (got->data[7], ==, 0.0f);
  g_free (norm.gamma);
  g_rand_free (rand);
}

/* Qwen-Image's and Wan 2.1's layouts: 16 latent channels at 1/8. */
static VaeModel *
load (const gchar *path, const gchar *family)
{
  return test_load_family (path, family, 16, 8);
}

static void
test_small (gconstpointer file)
{
  g_autofree gchar *path = test_data_path ("qwen-image", "small", file, NULL);
  g_autoptr (VaeModel) m = load (path, g_str_has_prefix (file, "wan") ? "wan21" : "qwen-image");

  test_check_goldens (m, "qwen-image", "small", TRUE, 8, BAR);
}

/* The full architecture: 194 tensors, 126,892,531 parameters, of which
 * one frame uses 44,599,603 (diffusers counts them, make_qwen_goldens.py). */
static void
test_full (void)
{
  g_autoptr (VaeModel) m = test_synth_family ("qwen-image", 16, 8, 194, 126892531);

  g_assert_cmpuint (m->net_floats, ==, 44599603); /* what one frame uses: the plan's weights */
  test_check_goldens (m, "qwen-image", "full", TRUE, 16, BAR);
  /* the planner walks the graph and bands it under a tight budget */
  test_assert_plan_bands (m, 128, 700);
}

/* ComfyUI's .latent holds the raw latent: diffusion·std + mean. */
static void
test_raw_latent (void)
{
  g_autofree gchar *path = test_data_path ("qwen-image", "small", "qwen_small.safetensors", NULL);
  g_autoptr (VaeModel) m = load (path, "qwen-image");

  /* channels 0 and 15: std 2.8184, 1.9160; mean −0.7571, −0.2921 */
  test_assert_raw_latent (m, 2.8184, -0.7571, 1.9160, -0.2921);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/qwen/causal-slice", test_causal_slice);
  g_test_add_func ("/qwen/rms-norm", test_rms_norm);
  g_test_add_data_func ("/qwen/small/diffusers-names", "qwen_small.safetensors", test_small);
  g_test_add_data_func ("/qwen/small/wan-names", "wan_small.pth", test_small);
  g_test_add_func ("/qwen/raw-latent", test_raw_latent);
  g_test_add_func ("/qwen/full-architecture", test_full);
  return g_test_run ();
}
