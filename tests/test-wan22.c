/* Wan 2.2's VAE on one frame, against diffusers' AutoencoderKLWan (Wan 2.2
 * configuration) in float64 (tests/reference/make_wan22_goldens.py): the
 * one-frame parts (patchify, unpatchify, AvgDown3D and DupUp3D of several
 * shapes) against the 3-D modules, a small model in both namings (diffusers
 * safetensors, Wan's .pth) and the full architecture (seeded parameters
 * from core/nets/synth.c), encode and decode of an odd-sized picture,
 * untiled and in bands, the memory plan, and the two refusals (an image
 * side of neither 3 nor 12 channels, a level its shortcut cannot regroup).
 * Tolerance: the house bar, max
 * relative error ≤ 1e-4 against float64 (float32 arithmetic over a few
 * dozen layers stays far below it); the fixed parts, 1e-6 (sums of at most
 * 16 float32 terms).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include "nets/vae-synth.h"

#define BAR 1e-4

/* diffusers' AutoencoderKLWan in the Wan 2.2 configuration, counted by
 * make_wan22_goldens.py: tensors, parameters, and the floats one frame uses
 * (a causal kernel's last time slice, no time_conv) */
#define WAN22_TENSORS      196
#define WAN22_PARAMS       704688668
#define WAN22_FRAME_PARAMS 252125020

static VaeTensor *
part (VaeWeights *w, const gchar *name, const gchar *io)
{
  g_autofree gchar *full = g_strdup_printf ("%s.%s", name, io);

  return test_weights_tensor (w, full);
}

/* CONV, then the pixel shuffle when SHUFFLE, on NAME's input against its
 * output. */
static void
check_part (VaeWeights *w, const gchar *name, VaeConv *conv, gboolean shuffle)
{
  const VaeBackend *cpu = vae_backend_cpu ();
  g_autoptr (VaeTensor) x = part (w, name, "input"), want = part (w, name, "output");
  g_autoptr (VaeTensor) got = NULL;
  g_autoptr (GError) error = NULL;

  got = vae_cpu_conv_reference (conv, x, FALSE, NULL, VAE_ACT_NONE, &error);
  g_assert_no_error (error);
  if (shuffle)
    g_assert_true (vae_tensor_replace (&got, cpu->pixel_shuffle (cpu, got, &error)));
  g_assert_no_error (error);
  test_assert_close (got, want, 1e-6, name);
  vae_conv_clear (conv);
}

static void
test_parts (void)
{
  static const gint avg[][4] = {
    { 4, 4, 1, 2 }, { 4, 8, 2, 2 }, { 8, 4, 2, 2 }, { 6, 6, 1, 1 }, { 4, 2, 2, 2 }
  };
  static const gint dup[][3] = { { 8, 8, 2 }, { 8, 4, 1 }, { 4, 8, 2 }, { 8, 4, 2 } };
  g_autofree gchar *path = test_data_path ("wan22", "shortcuts.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = vae_weights_load (path, &error);
  VaeConv conv = { 0 };

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (avg); i++)
    {
      g_autofree gchar *name =
          g_strdup_printf ("avg_down.%d.%d.%d.%d", avg[i][0], avg[i][1], avg[i][2], avg[i][3]);
      g_assert_true (vae_wan22_avg_down (&conv, avg[i][0], avg[i][1], avg[i][2], avg[i][3]));
      check_part (w, name, &conv, FALSE);
    }
  for (guint i = 0; i < G_N_ELEMENTS (dup); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("dup_up.%d.%d.%d", dup[i][0], dup[i][1], dup[i][2]);
      g_assert_true (vae_wan22_dup_up (&conv, dup[i][0], dup[i][1], dup[i][2]));
      check_part (w, name, &conv, TRUE);
    }
  vae_wan22_patchify (&conv);
  g_assert_cmpint (conv.groups, ==, 3);
  check_part (w, "patchify", &conv, FALSE);
  /* unpatchify: an identity 1×1 conv reordered, then the shuffle */
  conv = (VaeConv){ 12, 12, 1, 1 };
  conv.weight = g_new0 (gfloat, 144);
  for (gint c = 0; c < 12; c++)
    conv.weight[c * 12 + c] = 1.0f;
  vae_wan22_unpatchify_order (&conv);
  check_part (w, "unpatchify", &conv, TRUE);
  /* channel counts a shortcut cannot regroup */
  g_assert_false (vae_wan22_avg_down (&conv, 3, 5, 2, 2));
  g_assert_false (vae_wan22_dup_up (&conv, 5, 3, 1));
}

/* Wan 2.2's layout: 48 latent channels at 1/16. */
static VaeModel *
load (const gchar *path)
{
  return test_load_family (path, "wan22", 48, 16);
}

static void
test_small (gconstpointer file)
{
  g_autofree gchar *path = test_data_path ("wan22", "small", file, NULL);
  g_autoptr (VaeModel) m = load (path);

  test_check_goldens (m, "wan22", "small", TRUE, 32, BAR);
}

/* The full architecture (Wan2.2-TI2V-5B's VAE: base_dim 160,
 * decoder_base_dim 256); the counts are diffusers' (make_wan22_goldens.py). */
static void
test_full (void)
{
  g_autoptr (VaeModel) m = test_synth_family ("wan22", 48, 16, WAN22_TENSORS, WAN22_PARAMS);

  g_assert_cmpuint (m->net_floats, ==, WAN22_FRAME_PARAMS); /* what one frame uses */
  test_check_goldens (m, "wan22", "full", TRUE, 32, BAR);
  /* the planner walks the graph and bands it under a tight budget (a 64²
   * latent: a 1024² picture) */
  test_assert_plan_bands (m, 64, 1500);
}

/* ComfyUI's .latent holds the raw latent: diffusion·std + mean (channels 0
 * and 47 of Wan2.2's statistics). */
static void
test_raw_latent (void)
{
  g_autofree gchar *path = test_data_path ("wan22", "small", "wan22_small.safetensors", NULL);
  g_autoptr (VaeModel) m = load (path);

  /* channels 0 and 47: std 0.4765, 0.7744; mean −0.2289, −0.0667 */
  test_assert_raw_latent (m, 0.4765, -0.2289, 0.7744, -0.0667);
}

/* A causal 3-D VAE whose image side is neither RGB nor 12 channels is
 * refused with what it has. */
static void
test_refused (void)
{
  static const gfloat             zeros[8 * 5 * 27];
  static const VaeSafetensorsItem item = {
    "encoder.conv1.weight", 5, { 8, 5, 3, 3, 3 }, VAE_DTYPE_F32, zeros
  };
  g_autofree gchar *path = test_tmp_path ("five.safetensors");
  g_autoptr (GError) error = NULL;

  g_assert_true (vae_safetensors_write (path, &item, 1, NULL, &error));
  g_assert_null (vae_model_load (path, NULL, &error));
  test_assert_error (error, "image side has 5 channels, neither 3 nor Wan 2.2's 12");
  g_assert_true (g_error_matches (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED));
}

/* A Wan 2.2 layout whose last encoder level goes from 3 to 5 channels: its
 * AvgDown3D cannot regroup them, and loading says where. */
static void
test_shortcut_refused (void)
{
  VaeSynthConfig    cfg = { VAE_KIND_QWEN_IMAGE, 2, { 3, 5 }, 1, 48 };
  g_autofree gchar *path = test_tmp_path ("wan22-bad.safetensors");
  g_autoptr (GError) error = NULL;

  cfg.patchify = TRUE;
  cfg.decoder_widths[0] = 4, cfg.decoder_widths[1] = 8;
  g_assert_true (vae_synth_kl (path, &cfg, 1, &error));
  g_assert_null (vae_model_load (path, NULL, &error));
  test_assert_error (error, "level 1 of the encoder goes from 3 to 5 channels, which its shortcut "
                            "cannot regroup");
  g_assert_true (g_error_matches (error, VAE_ERROR, VAE_ERROR_MODEL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/wan22/one-frame-parts", test_parts);
  g_test_add_data_func ("/wan22/small/diffusers-names", "wan22_small.safetensors", test_small);
  g_test_add_data_func ("/wan22/small/wan-names", "wan2.2_small.pth", test_small);
  g_test_add_func ("/wan22/raw-latent", test_raw_latent);
  g_test_add_func ("/wan22/refused", test_refused);
  g_test_add_func ("/wan22/shortcut-refused", test_shortcut_refused);
  g_test_add_func ("/wan22/full-architecture", test_full);
  return g_test_run ();
}
