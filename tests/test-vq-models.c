/* VQ models (issue 26) against PyTorch in float64 on small random-weight
 * models (tests/reference/make_vq_goldens.py): diffusers' VQModel in
 * diffusers names (safetensors) and in LDM names (.ckpt), and the seed's
 * small VQ-VAE (.pth, EMA codebook); odd sizes throughout.
 *   encode: the pre-quantisation latent, max |ours − ref| / max |ref| ≤ 1e-4
 *     (the house bar: float32 against float64);
 *   snap to the model's own codebook: the same index everywhere (the golden
 *     keeps every nearest entry ahead of the next by 1e-4 of ‖x‖² + ‖e‖²,
 *     25× what float32 distances and our latent's 1e-6 can move), the
 *     perplexity within 1e-6 (relative: the reference's log(p + 1e-10)
 *     differs from log p by under K·1e-10), the mean squared error within
 *     1e-4 (relative: it is computed from our float32 latent);
 *   decode: quantised first as the models' decode does, and with
 *     force_not_quantize, at the house bar;
 *   tiled equals untiled: encode and decode in 8-pixel bands within 1e-5 of
 *     the plain run (both float32; bands only regroup sums), the indices
 *     identical;
 *   the memory plan of a VQ-VAE decode under a budget it must tile for;
 *   and the errors: a codebook whose dimension is not the latent's, a
 *   spatially normalised (MoVQ) decoder, a codebook asked of a KL model.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#define HOUSE_BAR 1e-4

static const TestVariant variants[] = {
  { "vqmodel-diffusers", "vq_tiny.safetensors", "vq" },
  { "vqmodel-ldm-ckpt", "vq_ldm_tiny.ckpt", "vq" },
  { "vqvae-seed", "vqvae_seed.pth", "vqvae" },
};

static VaeTensor *
golden (const TestVariant *v, const gchar *name)
{
  g_autofree gchar *path = test_data_path ("vq", v->dir, name, NULL);

  return test_load_npy_latent (path);
}

static gdouble
stat (const TestVariant *v, const gchar *name)
{
  g_autofree gchar *path = test_data_path ("vq", v->dir, "stats.json", NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;

  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  return json_object_get_double_member (json_node_get_object (json_parser_get_root (parser)), name);
}

static VaeTensor *
encode (VaeModel *m, const TestVariant *v, const VaeRun *run)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) image = NULL;
  g_autofree gchar *path = test_data_path ("vq", v->dir, "image.npy", NULL);
  VaeTensor        *latent;

  image = test_load_npy_image (path);
  latent = vae_model_encode (m, image, VAE_ENCODE_MEAN, 0, run, &error);
  g_assert_no_error (error);
  return latent;
}

/* The nearest entry of each of LATENT's vectors in the model's codebook,
 * with the usage counts and squared error of snapping to it. */
static gint *
snap_indices (VaeModel *m, const VaeTensor *latent, guint64 **counts, gdouble *sq_error)
{
  const gsize plane = (gsize) latent->height * latent->width;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeCodebook) cb = vae_model_codebook (m, &error);
  g_autofree gfloat *vectors = g_new (gfloat, plane * latent->channels);
  gint              *indices = g_new (gint, plane);

  g_assert_no_error (error);
  g_assert_cmpint (cb->dim, ==, latent->channels);
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < latent->channels; c++)
      vectors[i * latent->channels + c] = latent->data[c * plane + i];
  vae_codebook_assign (cb, vectors, plane, indices);
  *counts = g_new0 (guint64, cb->size);
  *sq_error = 0;
  vae_codebook_snap (cb, vectors, vectors, plane, 1.0f, *counts, sq_error);
  return indices;
}

static void
test_encode (gconstpointer data)
{
  const TestVariant *v = data;
  g_autoptr (VaeModel) m = test_load_variant ("vq", v);
  g_autoptr (VaeTensor) want = golden (v, "encoded.npy");
  g_autoptr (VaeTensor) got = encode (m, v, NULL);

  test_assert_close (got, want, HOUSE_BAR, "encode (pre-quantisation latent)");
}

static void
test_snap (gconstpointer data)
{
  const TestVariant *v = data;
  g_autoptr (VaeModel) m = test_load_variant ("vq", v);
  g_autoptr (VaeTensor) want = golden (v, "indices.npy");
  g_autoptr (VaeTensor) latent = encode (m, v, NULL);
  g_autofree guint64 *counts = NULL;
  g_autofree gint    *indices = NULL;
  gdouble             sq_error, perplexity, mean_error;
  const gsize         n = (gsize) latent->height * latent->width;
  gint                used = 0;

  g_assert_cmpuint (vae_tensor_n_elements (want), ==, n);
  indices = snap_indices (m, latent, &counts, &sq_error);
  for (gsize i = 0; i < n; i++)
    if (indices[i] != (gint) want->data[i])
      g_error ("vector %" G_GSIZE_FORMAT ": entry %d, PyTorch's %d", i, indices[i],
               (gint) want->data[i]);
  for (gint k = 0; k < (gint) stat (v, "entries"); k++)
    used += counts[k] > 0;
  perplexity = vae_codebook_perplexity (counts, (gint) stat (v, "entries"));
  mean_error = sq_error / n;
  g_test_message ("%" G_GSIZE_FORMAT
                  " indices identical, %d of %.0f entries used; perplexity %.12g "
                  "(PyTorch %.12g, relative %.2g, bar 1e-6); mean squared error %.8g (PyTorch "
                  "%.8g, relative %.2g, bar 1e-4)",
                  n, used, stat (v, "entries"), perplexity, stat (v, "perplexity"),
                  fabs (perplexity / stat (v, "perplexity") - 1), mean_error,
                  stat (v, "mean_error"), fabs (mean_error / stat (v, "mean_error") - 1));
  g_assert_cmpint (used, ==, (gint) stat (v, "entries_used"));
  g_assert_cmpfloat (fabs (perplexity / stat (v, "perplexity") - 1), <=, 1e-6);
  g_assert_cmpfloat (fabs (mean_error / stat (v, "mean_error") - 1), <=, 1e-4);
}

static void
test_decode (gconstpointer data)
{
  const TestVariant *v = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) m = test_load_variant ("vq", v);
  g_autoptr (VaeTensor) latent = golden (v, "latent.npy");
  g_autoptr (VaeTensor) want = golden (v, "decoded.npy");
  g_autoptr (VaeTensor) want_plain = golden (v, "decoded-unquantized.npy");
  g_autoptr (VaeTensor) got = vae_model_decode_raw (m, latent, NULL, &error);
  g_autoptr (VaeTensor) got_plain = vae_model_decode_raw_vq (m, latent, TRUE, NULL, &error);
  g_autoptr (VaeTensor) image = vae_model_decode (m, latent, NULL, &error);
  const gboolean vqvae = vae_model_get_family (m)->kind == VAE_KIND_VQVAE;

  g_assert_no_error (error);
  test_assert_close (got, want, HOUSE_BAR, "decode (quantised first, raw decoder output)");
  test_assert_close (got_plain, want_plain, HOUSE_BAR, "decode with force_not_quantize");
  g_assert_cmpfloat (test_max_abs_error (got, got_plain), >, 1e-3); /* the snap matters */
  /* the public decode is the quantised output in [0, 1]: + 0.5 for the
   * VQ-VAE, (x + 1)/2 for VQModel */
  for (gsize i = 0; i < vae_tensor_n_elements (image); i++)
    g_assert_cmpfloat_with_epsilon (
        image->data[i], CLAMP (vqvae ? want->data[i] + 0.5f : (want->data[i] + 1) / 2, 0.0f, 1.0f),
        1e-4);
}

/* Encode and decode in 8-pixel bands (every transposed convolution and
 * 4×4 stride-2 conv of the VQ-VAE, every layer of VQModel) against the
 * plain run. */
static void
test_tiled (gconstpointer data)
{
  const TestVariant *v = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) m = test_load_variant ("vq", v);
  g_autoptr (VaeTensor) latent = golden (v, "latent.npy");
  const VaeRun bands = { .tiling = { 0, 8 } };
  g_autoptr (VaeTensor) enc = encode (m, v, NULL), enc_tiled = encode (m, v, &bands);
  g_autoptr (VaeTensor) dec = vae_model_decode_raw (m, latent, NULL, &error);
  g_autoptr (VaeTensor) dec_tiled = vae_model_decode_raw (m, latent, &bands, &error);
  g_autofree guint64 *counts = NULL, *tiled_counts = NULL;
  g_autofree gint    *indices = NULL, *tiled_indices = NULL;
  gdouble             sq_error;
  VaeMemoryPlan       plan;

  g_assert_no_error (error);
  g_assert_true (vae_model_plan (m, FALSE, latent->width, latent->height, &bands, &plan, &error));
  g_assert_cmpint (plan.band_pixels, ==, 8);
  test_assert_close (enc_tiled, enc, 1e-5, "encode in 8-pixel bands vs plain");
  test_assert_close (dec_tiled, dec, 1e-5, "decode in 8-pixel bands vs plain");
  indices = snap_indices (m, enc, &counts, &sq_error);
  tiled_indices = snap_indices (m, enc_tiled, &tiled_counts, &sq_error);
  g_assert_cmpmem (indices, enc->height * enc->width * sizeof (gint), tiled_indices,
                   enc->height * enc->width * sizeof (gint));
}

/* The memory plan of the VQ-VAE's decode (transposed convolutions
 * included) at 4096²: under three quarters of its untiled estimate it runs
 * in bands that fit. */
static void
test_plan (void)
{
  g_autoptr (VaeModel) m = test_load_variant ("vq", &variants[2]);
  g_autoptr (GError) error = NULL;
  VaeMemoryPlan roomy, tight;
  VaeRun        run = { .tiling = { (guint64) 64 << 30, 0 } };

  g_assert_true (vae_model_plan (m, FALSE, 1024, 1024, &run, &roomy, &error));
  g_assert_cmpint (roomy.band_pixels, ==, 0);
  run.tiling.memory_limit = roomy.untiled_bytes / 4 * 3;
  g_assert_true (vae_model_plan (m, FALSE, 1024, 1024, &run, &tight, &error));
  g_assert_no_error (error);
  g_test_message ("4096² decode: untiled %" PRIu64 " MiB; under %" PRIu64
                  " MiB: %d-pixel bands, %" PRIu64 " MiB",
                  roomy.untiled_bytes >> 20, tight.budget >> 20, tight.band_pixels,
                  tight.tiled_bytes >> 20);
  g_assert_cmpint (tight.band_pixels, >, 0);
  g_assert_cmpuint (tight.tiled_bytes, <=, tight.budget);
}

/* A copy of the file of variant V with tensor NAME replaced by a [K, D]
 * codebook of zeros. */
static gchar *
with_codebook (const TestVariant *v, const gchar *name, gint k, gint d)
{
  g_autofree gchar *path = test_data_path ("vq", v->dir, v->file, NULL);
  g_autofree gchar *out = g_strdup_printf ("%s-codebook-%d.safetensors", v->dir, d);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = vae_weights_load (path, &error);
  g_autoptr (GPtrArray) data = g_ptr_array_new_with_free_func (g_free);
  const guint         n = vae_weights_count (w);
  VaeSafetensorsItem *items = g_new0 (VaeSafetensorsItem, n);
  gchar              *tmp = test_tmp_path (out);

  for (guint i = 0; i < n; i++)
    {
      VaeSafetensorsItem *item = &items[i];
      item->name = vae_weights_name (w, i);
      item->dtype = VAE_DTYPE_F32;
      if (strcmp (item->name, name) == 0)
        {
          item->ndim = 2;
          item->shape[0] = k;
          item->shape[1] = d;
          item->data = g_new0 (gfloat, k * d);
        }
      else
        {
          g_assert_true (vae_weights_shape (w, item->name, &item->ndim, item->shape, NULL));
          item->data = vae_weights_get_float (w, item->name, NULL, &error);
          g_assert_no_error (error);
        }
      g_ptr_array_add (data, (gpointer) item->data);
    }
  g_assert_true (vae_safetensors_write (tmp, items, n, NULL, &error));
  g_assert_no_error (error);
  g_free (items);
  return tmp;
}

static void
test_errors (void)
{
  g_autofree gchar  *vq = with_codebook (&variants[0], "quantize.embedding.weight", 48, 5);
  g_autofree gchar  *vqvae = with_codebook (&variants[2], "_vq_vae._embedding.weight", 64, 7);
  g_autofree gchar  *kl = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autofree gchar  *movq = test_tmp_path ("movq.safetensors");
  const gfloat       zeros[16] = { 0 };
  VaeSafetensorsItem spatial[] = {
    { "encoder.conv_in.weight", 4, { 1, 3, 1, 1 }, VAE_DTYPE_F32, zeros },
    { "decoder.conv_in.weight", 4, { 1, 3, 1, 1 }, VAE_DTYPE_F32, zeros },
    { "quantize.embedding.weight", 2, { 2, 3 }, VAE_DTYPE_F32, zeros },
    { "decoder.mid_block.resnets.0.norm1.conv_y.weight", 4, { 1, 3, 1, 1 }, VAE_DTYPE_F32, zeros },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = NULL;

  g_assert_null (vae_model_load (vq, NULL, &error));
  test_assert_error (error, "the codebook's entries have 5 channels but the latent has 3");
  g_clear_error (&error);
  g_assert_null (vae_model_load (vqvae, NULL, &error));
  test_assert_error (error, "the codebook's entries have 7 channels but the latent has 8");
  g_clear_error (&error);
  g_assert_true (vae_safetensors_write (movq, spatial, G_N_ELEMENTS (spatial), NULL, &error));
  g_assert_null (vae_model_load (movq, NULL, &error));
  g_assert_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED);
  test_assert_error (error, "spatial normalisation (MoVQ");
  g_clear_error (&error);
  model = vae_model_load (kl, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (vae_model_codebook (model, &error));
  test_assert_error (error, "has no codebook: it is not a VQ model");
}

/* `info` names the codebook; a VQ descriptor takes the size of any VQ
 * model, and a KL model is no VQ family. */
static void
test_family (void)
{
  g_autoptr (VaeModel) m = test_load_variant ("vq", &variants[2]);
  g_autofree gchar     *info = vae_model_describe (m);
  g_autofree gchar     *kl = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  const VaeModelOptions as_vqvae = { "vqvae" };
  g_autoptr (GError) error = NULL;

  g_test_message ("%s", info);
  g_assert_nonnull (strstr (info, "codebook:   64 entries of 8 channels"));
  g_assert_nonnull (strstr (info, "latent:     8 channels at 1/4"));
  g_assert_cmpint (vae_model_latent_channels (m), ==, 8);
  g_assert_cmpint (vae_model_factor (m), ==, 4);
  g_assert_cmpint (vae_family_lookup ("vq")->raw_channels, ==, 0); /* any size */
  g_assert_null (vae_model_load (kl, &as_vqvae, &error));
  test_assert_error (error, "family 'vqvae' describes a VQ-VAE");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      static const struct
      {
        const gchar  *name;
        GTestDataFunc func;
      } cases[] = {
        { "encode", test_encode },
        { "snap", test_snap },
        { "decode", test_decode },
        { "tiled", test_tiled },
      };
      for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
        {
          g_autofree gchar *path =
              g_strdup_printf ("/vq-models/%s/%s", variants[i].dir, cases[c].name);
          g_test_add_data_func (path, &variants[i], cases[c].func);
        }
    }
  g_test_add_func ("/vq-models/plan", test_plan);
  g_test_add_func ("/vq-models/errors", test_errors);
  g_test_add_func ("/vq-models/family", test_family);
  return g_test_run ();
}
