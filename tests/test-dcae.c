/* Sana's DC-AE (diffusers' AutoencoderDC): its layers on the CPU against
 * direct float64 sums — grouped and depthwise convolutions, GLUMBConv's
 * gate, EfficientViT's ReLU linear attention, the pixel shuffle (1e-6
 * relative: float32 sums of at most a few hundred terms) — and a small
 * model and the full f32c32 architecture (312.3M seeded parameters from
 * core/nets/synth.c) against diffusers in float64
 * (tests/reference/make_dcae_goldens.py), encode and decode at odd sizes,
 * untiled and in bands, at the house bar (1e-4).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <math.h>

static VaeTensor *
random_tensor (GRand *rand, gint c, gint h, gint w)
{
  VaeTensor *t = vae_tensor_new (c, h, w, NULL);

  for (gsize i = 0; i < vae_tensor_n_elements (t); i++)
    t->data[i] = (gfloat) g_rand_double_range (rand, -1.5, 1.5);
  return t;
}

/* conv(up(x)) + bias, grouped, by its definition. */
static VaeTensor *
naive_conv (const VaeConv *conv, const VaeTensor *x, gboolean up)
{
  const gint groups = vae_conv_groups (conv), gi = vae_conv_group_inputs (conv),
             go = conv->out_channels / groups, k = conv->kernel;
  const gint in_h = x->height << up, in_w = x->width << up;
  gint       out_h, out_w;
  VaeTensor *y;

  vae_conv_output_size (conv, in_h, in_w, &out_h, &out_w);
  y = vae_tensor_new (conv->out_channels, out_h, out_w, NULL);
  for (gint o = 0; o < conv->out_channels; o++)
    for (gint oy = 0; oy < out_h; oy++)
      for (gint ox = 0; ox < out_w; ox++)
        {
          gdouble sum = conv->bias ? conv->bias[o] : 0.0;
          for (gint ci = 0; ci < gi; ci++)
            for (gint ky = 0; ky < k; ky++)
              for (gint kx = 0; kx < k; kx++)
                {
                  const gint iy = oy * conv->stride - conv->pad_top + ky,
                             ix = ox * conv->stride - conv->pad_left + kx;
                  const gint c = o / go * gi + ci;
                  if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w)
                    continue;
                  sum += (gdouble) conv->weight[((gsize) o * gi + ci) * k * k + ky * k + kx] *
                         x->data[((gsize) c * x->height + (iy >> up)) * x->width + (ix >> up)];
                }
          y->data[((gsize) o * out_h + oy) * out_w + ox] = (gfloat) sum;
        }
  return y;
}

typedef struct
{
  gint     in, out, groups, kernel, stride, pad_lt, pad_rb;
  gboolean up;
} GroupedShape;

static void
test_grouped_conv (void)
{
  static const GroupedShape shapes[] = {
    { 12, 12, 12, 5, 1, 2, 2, FALSE }, /* the multiscale projection's depthwise 5×5 */
    { 16, 16, 16, 3, 1, 1, 1, TRUE },  /* depthwise 3×3 on an upsampled input */
    { 12, 12, 3, 1, 1, 0, 0, FALSE },  /* its grouped 1×1 */
    { 8, 16, 8, 2, 2, 0, 0, FALSE },   /* the down shortcut: 2×2 stride 2, 2 outputs a group */
    { 16, 8, 8, 2, 2, 0, 0, FALSE },   /* … 2 inputs a group */
    { 9, 6, 3, 3, 2, 1, 1, FALSE },    /* grouped 3×3 stride 2 */
    { 16, 24, 2, 3, 1, 1, 1, FALSE },  /* groups of 8 inputs: Winograd per group */
  };
  GRand            *rand = g_rand_new_with_seed (7);
  const VaeBackend *cpu = vae_backend_cpu ();

  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    {
      const GroupedShape *s = &shapes[i];
      VaeConv             conv = { s->out,    s->in,     s->kernel, s->stride, s->pad_lt, s->pad_lt,
                                   s->pad_rb, s->pad_rb, NULL,      NULL,      NULL,      s->groups };
      g_autoptr (VaeTensor) x = random_tensor (rand, s->in, 9, 11), want = NULL, got = NULL;
      g_autoptr (GError) error = NULL;
      g_autofree gchar *what =
          g_strdup_printf ("grouped conv %d→%d, %d groups, k%d s%d%s", s->in, s->out, s->groups,
                           s->kernel, s->stride, s->up ? ", upsampled" : "");

      conv.weight = test_random_floats (
          rand, (gsize) s->out * s->in / s->groups * s->kernel * s->kernel, -0.5, 0.5);
      conv.bias = test_random_floats (rand, s->out, -0.2, 0.2);
      want = naive_conv (&conv, x, s->up);
      got = cpu->conv (cpu, &conv, x, s->up, NULL, VAE_ACT_NONE, &error);
      g_assert_no_error (error);
      test_assert_close (got, want, 1e-6, what);
      vae_conv_clear (&conv);
    }
  g_rand_free (rand);
}

static void
test_gate_and_shuffle (void)
{
  GRand            *rand = g_rand_new_with_seed (8);
  const VaeBackend *cpu = vae_backend_cpu ();
  g_autoptr (VaeTensor) x = random_tensor (rand, 8, 5, 7), gate = NULL, shuffled = NULL;
  g_autoptr (GError) error = NULL;
  const gsize plane = 5 * 7;

  gate = cpu->gate (cpu, x, &error);
  shuffled = cpu->pixel_shuffle (cpu, x, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gate->channels, ==, 4);
  for (gsize i = 0; i < 4 * plane; i++)
    {
      const gdouble b = x->data[4 * plane + i];
      g_assert_cmpfloat_with_epsilon (gate->data[i], x->data[i] * b / (1 + exp (-b)), 1e-6);
    }
  g_assert_cmpint (shuffled->channels, ==, 2);
  g_assert_cmpint (shuffled->height, ==, 10);
  for (gint c = 0; c < 2; c++)
    for (gint y = 0; y < 10; y++)
      for (gint xx = 0; xx < 14; xx++)
        g_assert_cmpfloat (shuffled->data[(c * 10 + y) * 14 + xx], ==,
                           x->data[((4 * c + 2 * (y % 2) + xx % 2) * 5 + y / 2) * 7 + xx / 2]);
  g_rand_free (rand);
}

/* out_n = Σ_m v_m (k'_m·q'_n) / (Σ_m k'_m·q'_n + eps), per group, in double. */
static VaeTensor *
naive_linear_attention (const VaeTensor *x, gint d, gdouble eps)
{
  const gint n = x->height * x->width, groups = x->channels / (3 * d);
  VaeTensor *y = vae_tensor_new (groups * d, x->height, x->width, NULL);

  for (gint g = 0; g < groups; g++)
    for (gint p = 0; p < n; p++)
      {
        const gfloat *q = x->data + (gsize) g * 3 * d * n, *k = q + (gsize) d * n,
                     *v = k + (gsize) d * n;
        gdouble den = 0.0, num[64] = { 0 };
        for (gint m = 0; m < n; m++)
          {
            gdouble dot = 0.0;
            for (gint j = 0; j < d; j++)
              dot += MAX (k[(gsize) j * n + m], 0.0f) * (gdouble) MAX (q[(gsize) j * n + p], 0.0f);
            den += dot;
            for (gint i = 0; i < d; i++)
              num[i] += v[(gsize) i * n + m] * dot;
          }
        for (gint i = 0; i < d; i++)
          y->data[((gsize) g * d + i) * n + p] = (gfloat) (num[i] / (den + eps));
      }
  return y;
}

static void
test_linear_attention (void)
{
  GRand            *rand = g_rand_new_with_seed (9);
  const VaeBackend *cpu = vae_backend_cpu ();
  g_autoptr (VaeTensor) x = random_tensor (rand, 3 * 8 * 3, 6, 9), want = NULL, got = NULL;
  g_autoptr (GError) error = NULL;

  want = naive_linear_attention (x, 8, 1e-15);
  got = cpu->linear_attention (cpu, x, 8, 1e-15f, &error);
  g_assert_no_error (error);
  test_assert_close (got, want, 1e-6, "ReLU linear attention, 3 groups of 8");
  g_rand_free (rand);
}

/* The house bar against float64 (the header says why it holds). */
#define BAR 1e-4

/* f32c32's layout: 32 latent channels at 1/32. */
static VaeModel *
load (const gchar *path)
{
  return test_load_family (path, "dc-ae", 32, 32);
}

static void
test_small (void)
{
  g_autofree gchar *path = test_data_path ("dc-ae", "small", "dcae_small.safetensors", NULL);
  g_autoptr (VaeModel) m = load (path);

  /* the latent of a 45×61 picture and the decode of a 3×2 latent */
  test_check_goldens (m, "dc-ae", "small", FALSE, 8, BAR);
}

/* The small model less one tensor: an error naming it, no model. */
static void
test_missing_tensor (void)
{
  static const gchar *missing = "decoder.up_blocks.3.1.attn.to_out.weight";
  g_autofree gchar   *path = test_data_path ("dc-ae", "small", "dcae_small.safetensors", NULL);
  g_autofree gchar   *cut = test_weights_copy (path, "dcae_cut.safetensors", missing, NULL, 0);
  g_autoptr (GError) error = NULL;

  g_assert_null (vae_model_load (cut, NULL, &error));
  test_assert_error (error, missing);
}

/* A file DC-AE's attention names mark, with neither half's conv_in: an
 * error saying so, not a model of no halves (which once crashed). */
static void
test_no_halves (void)
{
  static const gfloat             zeros[4];
  static const VaeSafetensorsItem item = {
    "encoder.down_blocks.3.1.attn.to_qkv_multiscale.0.proj_in.weight",
    2,
    { 2, 2 },
    VAE_DTYPE_F32,
    zeros
  };
  g_autofree gchar *path = test_tmp_path ("dcae-no-halves.safetensors");
  g_autoptr (GError) error = NULL;

  g_assert_true (vae_safetensors_write (path, &item, 1, NULL, &error));
  g_assert_null (vae_model_load (path, NULL, &error));
  test_assert_error (error, "neither 'encoder.conv_in' nor 'decoder.conv_in' is present");
  g_assert_true (g_error_matches (error, VAE_ERROR, VAE_ERROR_MODEL));
}

/* Sana's f32c32 architecture: 375 tensors, 312,250,275 parameters. */
static void
test_full (void)
{
  g_autoptr (VaeModel) m = test_synth_family ("dc-ae", 32, 32, 375, 312250275);

  test_check_goldens (m, "dc-ae", "full", FALSE, 32, BAR);
  /* the planner walks the graph and bands it under a tight budget */
  test_assert_plan_bands (m, 64, 1800);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/dcae/grouped-conv", test_grouped_conv);
  g_test_add_func ("/dcae/gate-and-shuffle", test_gate_and_shuffle);
  g_test_add_func ("/dcae/linear-attention", test_linear_attention);
  g_test_add_func ("/dcae/small", test_small);
  g_test_add_func ("/dcae/missing-tensor", test_missing_tensor);
  g_test_add_func ("/dcae/no-halves", test_no_halves);
  g_test_add_func ("/dcae/full-architecture", test_full);
  return g_test_run ();
}
