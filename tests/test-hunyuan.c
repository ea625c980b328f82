/* HunyuanImage 2.1's VAE (diffusers' AutoencoderKLHunyuanImage) against
 * diffusers in float64 (tests/reference/make_hunyuan_goldens.py): a small
 * model (float16 weights, widths 32, 8 channels at 1/4, its family named by
 * a descriptor in the user's data folder as a user would add one), the
 * same model under Tencent's original names, and the full architecture
 * (64 channels at 1/32, 405.6M seeded parameters from core/nets/synth.c),
 * encode and decode at odd sizes, untiled and in bands.  Tolerance: the
 * house bar, max relative error ≤ 1e-4 against float64 (float32 sums of
 * a few thousand terms per layer, over 20-odd layers, stay near 1e-6).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <glib/gstdio.h>
#include <stdio.h>

#define BAR 1e-4

static const gchar small_family[] = "[Family]\n"
                                    "Name=hunyuan-image-small\n"
                                    "Title=HunyuanImage test model\n"
                                    "Kind=hunyuan-image\n"
                                    "RawChannels=8\n"
                                    "RawFactor=4\n"
                                    "QuantConvs=false\n"
                                    "Schedule=flow\n"
                                    "Scale=0.75289\n"
                                    "Shift=0\n";

static gchar *
small_path (void)
{
  return test_data_path ("hunyuan-image", "small", "hunyuan_small.safetensors", NULL);
}

static void
test_small (void)
{
  g_autofree gchar *path = small_path ();
  g_autoptr (VaeModel) m = test_load_family (path, "hunyuan-image-small", 8, 4);

  g_assert_cmpint (m->structure.kind, ==, VAE_KIND_HUNYUAN_IMAGE);
  /* the latent of a 45×61 picture and the decode of a 9×6 latent */
  test_check_goldens (m, "hunyuan-image", "small", FALSE, 8, BAR);
}

/* Each half alone (test_assert_one_half), here where the small model's
 * family is known. */
static void
test_one_half (void)
{
  g_autofree gchar *path = small_path ();
  GRand            *rand = g_rand_new_with_seed (5);

  test_assert_one_half (path, rand);
  g_rand_free (rand);
}

/* Tencent's name of a diffusers one in a flat list of blocks
 * (HALF.LIST.K…): level I's blocks J, then its resampler. */
static gchar *
original_name (const VaeWeights *w, const gchar *name)
{
  static const gchar *const renames[][2] = {
    { ".mid_block.resnets.0.", ".mid.block_1." },
    { ".mid_block.resnets.1.", ".mid.block_2." },
    { ".mid_block.attentions.0.to_q.", ".mid.attn_1.q." },
    { ".mid_block.attentions.0.to_k.", ".mid.attn_1.k." },
    { ".mid_block.attentions.0.to_v.", ".mid.attn_1.v." },
    { ".mid_block.attentions.0.proj.", ".mid.attn_1.proj_out." },
    { ".mid_block.attentions.0.norm.", ".mid.attn_1.norm." },
  };
  gchar half[16], list[16];
  gint  k, len = 0;

  for (guint i = 0; i < G_N_ELEMENTS (renames); i++)
    if (strstr (name, renames[i][0]))
      {
        g_auto (GStrv) parts = g_strsplit (name, renames[i][0], 2);
        return g_strconcat ("vae.", parts[0], renames[i][1], parts[1], NULL);
      }
  if (sscanf (name, "%15[a-z].%15[a-z_].%d.%n", half, list, &k, &len) == 3 && len > 0)
    {
      const gboolean decoder = g_str_equal (half, "decoder");
      gint           level = 0, j = 0;
      for (gint b = 0; b < k; b++)
        {
          g_autofree gchar *conv = g_strdup_printf ("%s.%s.%d.conv.weight", half, list, b);
          if (vae_weights_lookup (w, conv))
            level++, j = 0;
          else
            j++;
        }
      {
        g_autofree gchar *conv = g_strdup_printf ("%s.%s.%d.conv.weight", half, list, k);
        if (vae_weights_lookup (w, conv))
          return g_strdup_printf ("vae.%s.%s.%d.%s.%s", half, decoder ? "up" : "down", level,
                                  decoder ? "upsample" : "downsample", name + len);
        return g_strdup_printf ("vae.%s.%s.%d.block.%d.%s", half, decoder ? "up" : "down", level, j,
                                name + len);
      }
    }
  return g_strconcat ("vae.", name, NULL);
}

/* The small model under Tencent's names, its kernels 3-D of one time slice
 * ([out, in, 1, k, k], as pytorch_model.ckpt holds them) and its tensors
 * under "vae.": the same numbers out as in diffusers' names. */
static void
test_original_names (void)
{
  g_autofree gchar *path = small_path ();
  g_autofree gchar *renamed = test_tmp_path ("hunyuan_original.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = vae_weights_load (path, &error);
  g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
  g_autofree VaeSafetensorsItem *items = g_new0 (VaeSafetensorsItem, vae_weights_count (w));
  g_autoptr (VaeModel) a = NULL, b = NULL;
  g_autofree gchar *image_path = test_data_path ("hunyuan-image", "small", "image.npy", NULL);
  g_autoptr (VaeTensor) image = test_load_npy_image (image_path);
  g_autofree gchar *d_path = test_data_path ("hunyuan-image", "small", "decode-latent.npy", NULL);
  g_autoptr (VaeTensor) d = test_load_npy_latent (d_path);
  const VaeRun run = { .compute = { VAE_BACKEND_CPU } };

  g_assert_no_error (error);
  for (guint i = 0; i < vae_weights_count (w); i++)
    {
      const gchar *name = vae_weights_name (w, i);
      gint64       shape[VAE_MAX_DIMS];
      g_assert_true (vae_weights_shape (w, name, &items[i].ndim, shape, NULL));
      items[i].name = original_name (w, name);
      g_ptr_array_add (owned, (gpointer) items[i].name);
      items[i].dtype = VAE_DTYPE_F32;
      memcpy (items[i].shape, shape, sizeof shape);
      if (items[i].ndim == 4)
        {
          const gint64 five[] = { shape[0], shape[1], 1, shape[2], shape[3] };
          items[i].ndim = 5;
          memcpy (items[i].shape, five, sizeof five);
        }
      items[i].data = vae_weights_get_float (w, name, NULL, &error);
      g_assert_no_error (error);
      g_ptr_array_add (owned, (gpointer) items[i].data);
    }
  g_assert_true (vae_safetensors_write (renamed, items, vae_weights_count (w), NULL, &error));
  g_assert_no_error (error);
  a = test_load_family (path, "hunyuan-image-small", 8, 4);
  b = test_load_family (renamed, "hunyuan-image-small", 8, 4);
  {
    g_autoptr (VaeTensor) la = vae_model_encode (a, image, VAE_ENCODE_MEAN, 0, &run, &error);
    g_autoptr (VaeTensor) lb = vae_model_encode (b, image, VAE_ENCODE_MEAN, 0, &run, &error);
    g_autoptr (VaeTensor) da = vae_model_decode_raw (a, d, &run, &error);
    g_autoptr (VaeTensor) db = vae_model_decode_raw (b, d, &run, &error);
    g_assert_no_error (error);
    test_assert_close (lb, la, 0.0, "latent, Tencent's names vs diffusers'");
    test_assert_close (db, da, 0.0, "decode, Tencent's names vs diffusers'");
  }
}

/* The small model written to NAME without tensor DROP, and with the tensors
 * whose names begin with RESHAPE (when given) cut to their first ROWS
 * outputs. */
static gchar *
altered_small (const gchar *name, const gchar *drop, const gchar *reshape, gint64 rows)
{
  g_autofree gchar *path = small_path ();

  return test_weights_copy (path, name, drop, reshape, rows);
}

/* The small model less one tensor: an error naming it, no model. */
static void
test_missing_tensor (void)
{
  g_autofree gchar *cut =
      altered_small ("hunyuan_cut.safetensors", "decoder.up_blocks.2.conv.weight", NULL, 0);
  g_autoptr (GError) error = NULL;

  g_assert_null (vae_model_load (cut, NULL, &error));
  /* the block's bias alone is left: a resampler missing its weight */
  test_assert_error (error, "decoder.up_blocks.2.conv.weight");
}

/* An upsampler to 48 channels (12 after the shuffle) from 32: no repeat of
 * whole channels gives 48, so the pixel shortcut cannot join them. */
static void
test_shortcut_mismatch (void)
{
  g_autofree gchar *bad =
      altered_small ("hunyuan_bad_up.safetensors", NULL, "decoder.up_blocks.2.conv.", 48);
  g_autoptr (GError) error = NULL;

  g_assert_null (vae_model_load (bad, NULL, &error));
  test_assert_error (error, "decoder.up_blocks.2 joins 32 channels to 12");
  g_assert_true (g_error_matches (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED));
}

/* HunyuanImage 2.1's architecture: 324 tensors, 405,575,491 parameters. */
static void
test_full (void)
{
  g_autoptr (VaeModel) m = test_synth_family ("hunyuan-image", 64, 32, 324, 405575491);

  test_check_goldens (m, "hunyuan-image", "full", FALSE, 32, BAR);
  /* the planner walks the graph and bands it under a tight budget */
  test_assert_plan_bands (m, 64, 2500);
}

int
main (int argc, char **argv)
{
  g_autofree gchar *data_home = g_dir_make_tmp ("gegl-vae-hunyuan-XXXXXX", NULL);
  g_autofree gchar *gegl_vae = g_build_filename (data_home, "gegl-vae", NULL);
  g_autofree gchar *families = g_build_filename (gegl_vae, "families", NULL);
  g_autofree gchar *ini = g_build_filename (families, "hunyuan-image-small.ini", NULL);
  gint              status;

  /* before anything reads the user's data folder (GLib keeps it) */
  g_assert_nonnull (data_home);
  g_setenv ("XDG_DATA_HOME", data_home, TRUE);
  g_assert_cmpint (g_mkdir_with_parents (families, 0700), ==, 0);
  g_assert_true (g_file_set_contents (ini, small_family, -1, NULL));
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/hunyuan/small", test_small);
  g_test_add_func ("/hunyuan/one-half", test_one_half);
  g_test_add_func ("/hunyuan/original-names", test_original_names);
  g_test_add_func ("/hunyuan/missing-tensor", test_missing_tensor);
  g_test_add_func ("/hunyuan/shortcut-mismatch", test_shortcut_mismatch);
  g_test_add_func ("/hunyuan/full-architecture", test_full);
  status = g_test_run ();
  g_remove (ini);
  g_rmdir (families);
  g_rmdir (gegl_vae);
  g_rmdir (data_home);
  return status;
}
