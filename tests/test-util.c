/* SPDX-License-Identifier: LGPL-3.0-or-later */
#include "test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

gchar *
test_data_path (const gchar *first, ...)
{
  va_list      args;
  GString     *path = g_string_new (TEST_SOURCE_DIR "/data");
  const gchar *part = first;

  va_start (args, first);
  while (part)
    {
      g_string_append_c (path, G_DIR_SEPARATOR);
      g_string_append (path, part);
      part = va_arg (args, const gchar *);
    }
  va_end (args);
  return g_string_free (path, FALSE);
}

gchar *
test_models_dir (const gchar *needed_file)
{
  /* $GEGL_VAE_TEST_MODELS, else the weights that ship (TAEF2), else
   * ../shared/models beside the checkout */
  const gchar      *env = g_getenv ("GEGL_VAE_TEST_MODELS");
  const gchar      *dirs[] = { env && *env ? env : NULL, TEST_SOURCE_DIR "/../presets/models",
                          TEST_SOURCE_DIR "/../../shared/models" };
  g_autofree gchar *msg = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autofree gchar *file = dirs[i] ? g_build_filename (dirs[i], needed_file, NULL) : NULL;
      if (file && g_file_test (file, G_FILE_TEST_IS_REGULAR))
        return g_strdup (dirs[i]);
      if (dirs[i] && i == 0)
        break; /* an explicit folder is the only one looked in */
    }
  msg = g_strdup_printf ("real weights %s not found in %s (set GEGL_VAE_TEST_MODELS)", needed_file,
                         env && *env ? env
                                     : TEST_SOURCE_DIR "/../presets/models or " TEST_SOURCE_DIR
                                                       "/../../shared/models");
  g_test_skip (msg);
  return NULL;
}

gboolean
test_has_bf16 (void)
{
  if (vae_cpu_has_bf16 ())
    return TRUE;
  g_test_skip ("this CPU (or build) has no AVX512-BF16");
  return FALSE;
}

VaeTensor *
test_weights_tensor (VaeWeights *weights, const gchar *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree gfloat *data = NULL;
  gint64             shape[VAE_MAX_DIMS];
  gint               ndim;
  gsize              n;
  VaeTensor         *t;

  if (!vae_weights_shape (weights, name, &ndim, shape, NULL))
    g_error ("no tensor %s among the goldens", name);
  g_assert_cmpint (ndim, ==, 4);
  t = vae_tensor_new ((gint) shape[1], (gint) shape[2], (gint) shape[3], &error);
  g_assert_no_error (error);
  data = vae_weights_get_float (weights, name, &n, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, vae_tensor_n_elements (t));
  memcpy (t->data, data, n * sizeof (gfloat));
  return t;
}

VaeTensor *
test_load_npy_latent (const gchar *path)
{
  g_autoptr (GError) error = NULL;
  VaeTensor *t = vae_npy_read_latent (path, &error);

  g_assert_no_error (error);
  return t;
}

VaeTensor *
test_load_npy_image (const gchar *path)
{
  g_autoptr (GError) error = NULL;
  VaeTensor *t = vae_npy_read_image (path, &error);

  g_assert_no_error (error);
  return t;
}

gdouble
test_max_abs_error (const VaeTensor *a, const VaeTensor *b)
{
  gdouble max = 0.0;

  for (gsize i = 0; i < vae_tensor_n_elements (b); i++)
    max = MAX (max, fabs ((gdouble) a->data[i] - b->data[i]));
  return max;
}

gdouble
test_max_rel_error (const VaeTensor *a, const VaeTensor *b)
{
  gdouble ref = 0.0;

  for (gsize i = 0; i < vae_tensor_n_elements (b); i++)
    ref = MAX (ref, fabs (b->data[i]));
  return test_max_abs_error (a, b) / MAX (ref, 1e-30);
}

void
test_assert_close (const VaeTensor *got, const VaeTensor *want, gdouble tol, const gchar *what)
{
  gdouble rel;

  g_assert_nonnull (got);
  g_assert_cmpint (got->channels, ==, want->channels);
  g_assert_cmpint (got->height, ==, want->height);
  g_assert_cmpint (got->width, ==, want->width);
  rel = test_max_rel_error (got, want);
  g_test_message ("%s: max relative error %.3g (tolerance %.3g)", what, rel, tol);
  g_assert_cmpfloat (rel, <=, tol);
}

static gchar *tmp_dir;

static void
remove_tmp_dir (void)
{
  g_autoptr (GDir) dir = g_dir_open (tmp_dir, 0, NULL);
  const gchar *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree gchar *path = g_build_filename (tmp_dir, name, NULL);
      g_remove (path);
    }
  g_rmdir (tmp_dir);
}

gchar *
test_tmp_path (const gchar *name)
{
  if (!tmp_dir)
    {
      tmp_dir = g_dir_make_tmp ("gegl-vae-test-XXXXXX", NULL);
      g_assert_nonnull (tmp_dir);
      atexit (remove_tmp_dir);
    }
  return g_build_filename (tmp_dir, name, NULL);
}

gchar *
test_write_tmp (const gchar *name, const void *bytes, gsize size)
{
  g_autoptr (GError) error = NULL;
  gchar *path = test_tmp_path (name);

  g_file_set_contents (path, bytes, (gssize) size, &error);
  g_assert_no_error (error);
  return path;
}

VaeTensor *
test_run_on (VaeModel *m, TestPass pass, const VaeTensor *input, VaeBackendKind backend,
             VaePrecision precision)
{
  g_autoptr (GError) error = NULL;
  const VaeRun run = { .compute = { backend, precision } };
  VaeTensor   *out;

  if (pass == TEST_ENCODE)
    out = vae_model_encode (m, input, VAE_ENCODE_MEAN, 0, &run, &error);
  else if (pass == TEST_DECODE)
    out = vae_model_decode (m, input, &run, &error);
  else
    out = vae_model_decode_raw (m, input, &run, &error);
  g_assert_no_error (error);
  return out;
}

VaeModel *
test_load_variant (const gchar *group, const TestVariant *v)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *path = test_data_path (group, v->dir, v->file, NULL);
  VaeModel         *m = vae_model_load (path, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (vae_model_get_family (m)->name, ==, v->family);
  return m;
}

void
test_assert_error (GError *error, const gchar *needle)
{
  g_assert_nonnull (error);
  g_assert_true (error->domain == VAE_ERROR);
  g_test_message ("error: %s", error->message);
  if (!strstr (error->message, needle))
    g_error ("message '%s' does not mention '%s'", error->message, needle);
}

gfloat *
test_random_floats (GRand *rand, gsize n, gdouble lo, gdouble hi)
{
  gfloat *p = g_new (gfloat, n);

  for (gsize i = 0; i < n; i++)
    p[i] = (gfloat) g_rand_double_range (rand, lo, hi);
  return p;
}

gdouble
test_psnr (const VaeTensor *a, const VaeTensor *b)
{
  gdouble sum = 0.0;
  gsize   n = vae_tensor_n_elements (a);

  g_assert_cmpuint (n, ==, vae_tensor_n_elements (b));
  for (gsize i = 0; i < n; i++)
    sum += ((gdouble) a->data[i] - b->data[i]) * ((gdouble) a->data[i] - b->data[i]);
  return sum == 0.0 ? INFINITY : 10.0 * log10 (n / sum);
}

gdouble
test_snr (const VaeTensor *got, const VaeTensor *want)
{
  gdouble signal = 0.0, noise = 0.0;
  gsize   n = vae_tensor_n_elements (want);

  g_assert_cmpuint (n, ==, vae_tensor_n_elements (got));
  for (gsize i = 0; i < n; i++)
    {
      signal += (gdouble) want->data[i] * want->data[i];
      noise += ((gdouble) got->data[i] - want->data[i]) * ((gdouble) got->data[i] - want->data[i]);
    }
  return noise == 0.0 ? INFINITY : 10.0 * log10 (signal / noise);
}

gchar *
test_kl_with_channels (const gchar *tensor, gint dim, gint channels)
{
  g_autofree gchar *kl = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autoptr (VaeWeights) w = vae_weights_load (kl, NULL);
  const guint         n = vae_weights_count (w);
  VaeSafetensorsItem *items = g_new0 (VaeSafetensorsItem, n);
  GPtrArray          *data = g_ptr_array_new_with_free_func (g_free);
  g_autofree gchar   *file = g_strdup_printf ("%s%d-%d.safetensors", tensor, dim, channels);
  gchar              *path = test_tmp_path (file);
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < n; i++)
    {
      const gchar *name = vae_weights_name (w, i);
      gfloat      *v = vae_weights_get_float (w, name, NULL, &error);
      g_assert_no_error (error);
      items[i].name = name;
      items[i].dtype = VAE_DTYPE_F32;
      vae_weights_shape (w, name, &items[i].ndim, items[i].shape, NULL);
      if (g_str_has_prefix (name, tensor))
        {
          /* inner: the elements of one row (dim 0) or of one input channel (dim 1) */
          gsize   inner = 1, rows = (gsize) items[i].shape[0], old = (gsize) items[i].shape[dim];
          gfloat *nv;
          for (gint d = dim + 1; d < items[i].ndim; d++)
            inner *= (gsize) items[i].shape[d];
          if (dim == 0)
            rows = 1;
          nv = g_new0 (gfloat, rows * channels * inner);
          for (gsize r = 0; r < rows; r++)
            for (gsize c = 0; c < (gsize) channels; c++)
              if (dim == 0 || c < old)
                memcpy (nv + (r * channels + c) * inner, v + (r * old + c % old) * inner,
                        inner * sizeof (gfloat));
          g_free (v);
          v = nv;
          items[i].shape[dim] = channels;
        }
      items[i].data = v;
      g_ptr_array_add (data, v);
    }
  g_assert_true (vae_safetensors_write (path, items, n, NULL, &error));
  g_assert_no_error (error);
  g_ptr_array_unref (data);
  g_free (items);
  return path;
}

VaeModel *
test_load_family (const gchar *path, const gchar *family, gint latent_channels, gint factor)
{
  g_autoptr (GError) error = NULL;
  VaeModel *m = vae_model_load (path, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (vae_model_get_family (m)->name, ==, family);
  g_assert_cmpint (vae_model_latent_channels (m), ==, latent_channels);
  g_assert_cmpint (vae_model_factor (m), ==, factor);
  return m;
}

VaeModel *
test_synth_family (const gchar *family, gint latent_channels, gint factor, guint n_tensors,
                   guint64 n_params)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *file = g_strdup_printf ("%s-synth.safetensors", family);
  g_autofree gchar *weights = test_tmp_path (file);
  VaeModel         *m;

  g_assert_true (vae_synth_family (family, 1, weights, &error));
  g_assert_no_error (error);
  m = test_load_family (weights, family, latent_channels, factor);
  /* the model holds its weights now: the file's hundreds of MB go back
   * before the goldens run */
  g_remove (weights);
  g_assert_cmpuint (m->n_tensors, ==, n_tensors);
  g_assert_cmpuint (m->n_params, ==, n_params);
  return m;
}

void
test_assert_raw_latent (VaeModel *m, gdouble std0, gdouble mean0, gdouble std_last,
                        gdouble mean_last)
{
  const gint channels = vae_model_latent_channels (m);
  const gint last = 2 * channels - 1; /* the last channel's second value */
  g_autoptr (VaeTensor) z = vae_tensor_new (channels, 1, 2, NULL);

  for (gint c = 0; c < channels; c++)
    z->data[2 * c] = 1.0f, z->data[2 * c + 1] = -0.5f;
  vae_model_latent_to_raw (m, z);
  g_assert_cmpfloat_with_epsilon (z->data[0], std0 + mean0, 1e-5);
  g_assert_cmpfloat_with_epsilon (z->data[last], -0.5 * std_last + mean_last, 1e-5);
  vae_model_latent_from_raw (m, z);
  g_assert_cmpfloat_with_epsilon (z->data[0], 1.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (z->data[last], -0.5, 1e-6);
}

static VaeTensor *
golden (const gchar *group, const gchar *dir, const gchar *name)
{
  g_autofree gchar *path = test_data_path (group, dir, name, NULL);

  return test_load_npy_latent (path);
}

void
test_check_goldens (VaeModel *m, const gchar *group, const gchar *dir, gboolean moments, gint band,
                    gdouble tol)
{
  g_autofree gchar *image_path = test_data_path (group, dir, "image.npy", NULL);
  g_autoptr (VaeTensor) image = test_load_npy_image (image_path);
  g_autoptr (VaeTensor) want_moments = moments ? golden (group, dir, "moments.npy") : NULL;
  g_autoptr (VaeTensor) latent = golden (group, dir, "latent.npy");
  g_autoptr (VaeTensor) d = golden (group, dir, "decode-latent.npy");
  g_autoptr (VaeTensor) decoded = golden (group, dir, "decoded.npy");
  VaeRun runs[2];

  memset (runs, 0, sizeof runs);
  runs[1].compute.backend = runs[0].compute.backend = VAE_BACKEND_CPU;
  runs[1].tiling.tile_size = band;
  for (guint r = 0; r < G_N_ELEMENTS (runs); r++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (VaeTensor) got_latent = NULL, got_decoded = NULL;
      g_autofree gchar *what = g_strdup_printf ("%s, %s", dir, r ? "in bands" : "untiled");

      if (moments)
        {
          g_autoptr (VaeTensor) got = vae_model_encode_raw (m, image, &runs[r], &error);
          g_autofree gchar *w =
              g_strdup_printf ("%s: encoder moments of %d×%d", what, image->height, image->width);
          g_assert_no_error (error);
          test_assert_close (got, want_moments, tol, w);
        }
      got_latent = vae_model_encode (m, image, VAE_ENCODE_MEAN, 0, &runs[r], &error);
      g_assert_no_error (error);
      {
        g_autofree gchar *w =
            g_strdup_printf ("%s: diffusion latent of %d×%d", what, image->height, image->width);
        test_assert_close (got_latent, latent, tol, w);
      }
      got_decoded = vae_model_decode_raw (m, d, &runs[r], &error);
      g_assert_no_error (error);
      {
        g_autofree gchar *w =
            g_strdup_printf ("%s: decode of a %d×%d latent", what, d->height, d->width);
        test_assert_close (got_decoded, decoded, tol, w);
      }
    }
}

void
test_assert_plan_bands (VaeModel *m, gint side, guint limit_mib)
{
  g_autoptr (GError) error = NULL;
  VaeMemoryPlan plan;
  VaeRun        run = { 0 };

  run.tiling.memory_limit = (guint64) limit_mib << 20;
  g_assert_true (vae_model_plan (m, FALSE, side, side, &run, &plan, &error));
  g_assert_no_error (error);
  g_test_message ("decode plan of a %d² latent under %u MiB: untiled %" G_GUINT64_FORMAT
                  " MiB, bands of %d px, %" G_GUINT64_FORMAT " MiB",
                  side, limit_mib, plan.untiled_bytes >> 20, plan.band_pixels,
                  plan.tiled_bytes >> 20);
  g_assert_cmpint (plan.band_pixels, >, 0);
}

gchar *
test_weights_copy (const gchar *path, const gchar *name, const gchar *drop, const gchar *reshape,
                   gint64 rows)
{
  gchar *out = test_tmp_path (name);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = vae_weights_load (path, &error);
  g_autoptr (GPtrArray) data = g_ptr_array_new_with_free_func (g_free);
  g_autofree VaeSafetensorsItem *items = NULL;
  guint                          n = 0;

  g_assert_no_error (error);
  items = g_new0 (VaeSafetensorsItem, vae_weights_count (w));
  for (guint i = 0; i < vae_weights_count (w); i++)
    {
      const gchar *tensor = vae_weights_name (w, i);
      if (drop && g_str_equal (tensor, drop))
        continue;
      items[n].name = tensor;
      items[n].dtype = VAE_DTYPE_F32;
      g_assert_true (vae_weights_shape (w, tensor, &items[n].ndim, items[n].shape, NULL));
      if (reshape && g_str_has_prefix (tensor, reshape))
        items[n].shape[0] = rows; /* the first rows of the weight or bias */
      items[n].data = vae_weights_get_float (w, tensor, NULL, &error);
      g_assert_no_error (error);
      g_ptr_array_add (data, (gpointer) items[n++].data);
    }
  /* a DROP the file does not hold would test nothing */
  g_assert_cmpuint (n, ==, vae_weights_count (w) - (drop ? 1 : 0));
  g_assert_true (vae_safetensors_write (out, items, n, NULL, &error));
  g_assert_no_error (error);
  return out;
}

void
test_assert_one_half (const gchar *path, GRand *rand)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) both = vae_model_load (path, NULL, &error);
  g_autoptr (VaeTensor) image = NULL;
  g_autoptr (VaeTensor) latent = NULL;

  g_assert_no_error (error);
  image = vae_tensor_new (3, 2 * vae_model_factor (both), 2 * vae_model_factor (both), NULL);
  latent = vae_tensor_new (vae_model_latent_channels (both), 2, 2, NULL);
  g_assert_true (vae_model_has_encoder (both) && vae_model_has_decoder (both));
  for (gsize k = 0; k < vae_tensor_n_elements (image); k++)
    image->data[k] = (gfloat) g_rand_double (rand);
  for (gsize k = 0; k < vae_tensor_n_elements (latent); k++)
    latent->data[k] = (gfloat) g_rand_double_range (rand, -1, 1);
  vae_model_cache_clear (); /* else the cached whole model serves a load of one half */
  for (gint encoder = 0; encoder < 2; encoder++)
    {
      const VaeModelOptions options = { .halves =
                                            encoder ? VAE_HALVES_ENCODER : VAE_HALVES_DECODER };
      g_autoptr (VaeModel) one = vae_model_load (path, &options, &error);
      g_autoptr (VaeTensor) want = NULL, got = NULL;

      g_assert_no_error (error);
      g_assert_true (one != both); /* a model of its own */
      g_assert_cmpstr (vae_model_get_family (one)->name, ==, vae_model_get_family (both)->name);
      g_assert_true (vae_model_has_encoder (one) == encoder);
      g_assert_true (vae_model_has_decoder (one) == !encoder);
      g_assert_cmpuint (one->n_params, <, both->n_params);
      if (encoder)
        {
          want = vae_model_encode (both, image, VAE_ENCODE_MEAN, 0, NULL, &error);
          got = vae_model_encode (one, image, VAE_ENCODE_MEAN, 0, NULL, &error);
          g_assert_null (vae_model_decode (one, latent, NULL, &error));
          test_assert_error (error, "has no decoder");
        }
      else
        {
          want = vae_model_decode (both, latent, NULL, &error);
          got = vae_model_decode (one, latent, NULL, &error);
          g_assert_null (vae_model_encode (one, image, VAE_ENCODE_MEAN, 0, NULL, &error));
          test_assert_error (error, "has no encoder");
        }
      g_clear_error (&error);
      g_assert_nonnull (want);
      g_assert_nonnull (got);
      g_test_message ("%s, %s alone: %u of %u parameters, output identical", path,
                      encoder ? "encoder" : "decoder", (guint) one->n_params,
                      (guint) both->n_params);
      g_assert_cmpmem (want->data, vae_tensor_n_elements (want) * sizeof (gfloat), got->data,
                       vae_tensor_n_elements (got) * sizeof (gfloat));
    }
}
