/* The CUDA backend against PyTorch's goldens and against the CPU backend:
 * the four small KL variants (SD1.5, SDXL, SD3, FLUX.2 with BatchNorm and
 * patchify), Qwen-Image's and DC-AE's small models and TAEF2, in fp32 (the house bar,
 * max relative error ≤ 1e-4: TF32 is off, so only summation order
 * differs) and in bf16/fp16 (PSNR
 * ≥ 40 dB against fp32: an 8- or 11-bit mantissa in what convolutions read).
 * Without a device (or without the CUDA build) these cases skip with the
 * reason; what runs everywhere is the choice of backend: `cuda` without a
 * device is an error, `auto` falls back to the CPU quietly, half precision
 * on the CPU is an error.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "png-io.h"
#include "test-util.h"

#ifdef VAE_HAVE_CUDA
#include "vae-config.h"
#include "vae-cuda.h"

#include <gmodule.h>
#endif

#define HOUSE_BAR    1e-4
#define HALF_PSNR_DB 40.0

typedef struct
{
  const gchar *dir, *file;
} Variant;

static const Variant variants[] = {
  { "sd15-diffusers", "sd15_tiny.safetensors" },
  { "sdxl-ldm-ckpt", "sdxl_tiny.ckpt" },
  { "sd3-old-names", "sd3_tiny.safetensors" },
  { "flux2-bfl", "flux2_tiny.safetensors" },
};

/* FALSE after marking the test skipped when no device answers. */
static gboolean
device_present (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *name = NULL;
  g_autofree gchar *why = NULL;

  if (vae_cuda_probe (&name, &error))
    {
      g_test_message ("CUDA device: %s", name);
      return TRUE;
    }
  why = g_strdup_printf ("no CUDA device: %s", error->message);
  g_test_skip (why);
  return FALSE;
}

/* The CUDA module core opens on demand loads with every symbol resolved
 * (cuBLAS, cuDNN, and what it calls back in core only through its table)
 * and exports its entry point; the programs themselves link none of it. */
static void
test_module_loads (void)
{
#ifdef VAE_HAVE_CUDA
  GModule *module = g_module_open (VAE_CUDA_MODULE_BUILT, 0); /* RTLD_NOW: every symbol now */
  gpointer entry = NULL;

  if (!module)
    g_error ("%s", g_module_error ());
  g_assert_true (g_module_symbol (module, VAE_CUDA_MODULE_SYMBOL, &entry));
  g_assert_nonnull (entry);
  g_module_close (module);
#else
  g_test_skip ("this build has no CUDA backend");
#endif
}

static VaeModel *
load (const gchar *path)
{
  g_autoptr (GError) error = NULL;
  VaeModel *m = vae_model_load (path, NULL, &error);

  g_assert_no_error (error);
  return m;
}

#define encode_on(m, image, backend, precision)                                                    \
  test_run_on (m, TEST_ENCODE, image, backend, precision)
#define decode_on(m, latent, backend, precision)                                                   \
  test_run_on (m, TEST_DECODE, latent, backend, precision)

static void
test_kl_fp32 (gconstpointer data)
{
  const Variant    *v = data;
  g_autofree gchar *path = test_data_path ("kl", v->dir, v->file, NULL);
  g_autofree gchar *image_path = test_data_path ("kl", v->dir, "image.npy", NULL);
  g_autofree gchar *encoded_path = test_data_path ("kl", v->dir, "encoded.npy", NULL);
  g_autofree gchar *latent_path = test_data_path ("kl", v->dir, "latent.npy", NULL);
  g_autofree gchar *decoded_path = test_data_path ("kl", v->dir, "decoded.npy", NULL);
  g_autoptr (VaeModel) m = NULL;
  g_autoptr (VaeTensor) image = NULL, encoded = NULL, latent = NULL, decoded = NULL, got = NULL,
                        cpu = NULL;

  if (!device_present ())
    return;
  m = load (path);
  image = test_load_npy_image (image_path);
  encoded = test_load_npy_latent (encoded_path);
  got = encode_on (m, image, VAE_BACKEND_CUDA, VAE_PRECISION_FP32);
  test_assert_close (got, encoded, HOUSE_BAR, "CUDA encode vs PyTorch");
  cpu = encode_on (m, image, VAE_BACKEND_CPU, VAE_PRECISION_FP32);
  test_assert_close (got, cpu, HOUSE_BAR, "CUDA encode vs CPU");
  g_clear_pointer (&got, vae_tensor_free);

  latent = test_load_npy_latent (latent_path);
  decoded = test_load_npy_latent (decoded_path);
  got = test_run_on (m, TEST_DECODE_RAW, latent, VAE_BACKEND_CUDA, VAE_PRECISION_FP32);
  test_assert_close (got, decoded, HOUSE_BAR, "CUDA decode vs PyTorch");
}

/* The small Qwen-Image, DC-AE and Wan 2.2 models (RMS norms, fused q/k/v; grouped
 * convolutions, linear attention, gate, pixel shuffle) in fp32 against
 * diffusers' float64 goldens: the latent of a 45×61 picture, a decode. */
static void
test_family_fp32 (gconstpointer data)
{
  const Variant    *v = data;
  g_autofree gchar *path = test_data_path (v->dir, "small", v->file, NULL);
  g_autofree gchar *image_path = test_data_path (v->dir, "small", "image.npy", NULL);
  g_autofree gchar *latent_path = test_data_path (v->dir, "small", "latent.npy", NULL);
  g_autofree gchar *d_path = test_data_path (v->dir, "small", "decode-latent.npy", NULL);
  g_autofree gchar *decoded_path = test_data_path (v->dir, "small", "decoded.npy", NULL);
  g_autoptr (VaeModel) m = NULL;
  g_autoptr (VaeTensor) image = NULL, latent = NULL, d = NULL, decoded = NULL, got = NULL;

  if (!device_present ())
    return;
  m = load (path);
  image = test_load_npy_image (image_path);
  latent = test_load_npy_latent (latent_path);
  got = encode_on (m, image, VAE_BACKEND_CUDA, VAE_PRECISION_FP32);
  test_assert_close (got, latent, HOUSE_BAR, "CUDA encode vs diffusers");
  g_clear_pointer (&got, vae_tensor_free);
  d = test_load_npy_latent (d_path);
  decoded = test_load_npy_latent (decoded_path);
  got = test_run_on (m, TEST_DECODE_RAW, d, VAE_BACKEND_CUDA, VAE_PRECISION_FP32);
  test_assert_close (got, decoded, HOUSE_BAR, "CUDA decode vs diffusers");
}

static const Variant families[] = {
  { "qwen-image", "qwen_small.safetensors" },
  { "dc-ae", "dcae_small.safetensors" },
  { "wan22", "wan22_small.safetensors" },
};

/* SD1.5's whole architecture (attention over 1024 positions, 83.6M
 * parameters) decoding a 32×32 latent. */
static void
test_sd15_full (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *weights = test_tmp_path ("sd15-synth.safetensors");
  g_autofree gchar *latent_path = test_data_path ("sd15-full", "latent.npy", NULL);
  g_autofree gchar *want_path = test_data_path ("sd15-full", "decoded.npy", NULL);
  g_autoptr (VaeTensor) latent = NULL, want = NULL, got = NULL, cpu = NULL, half = NULL;
  g_autoptr (VaeModel) m = NULL;

  if (!device_present ())
    return;
  g_assert_true (vae_synth_family ("sd15", 1, weights, &error));
  g_assert_no_error (error);
  m = load (weights);
  latent = test_load_npy_latent (latent_path);
  want = test_load_npy_latent (want_path);
  got = test_run_on (m, TEST_DECODE_RAW, latent, VAE_BACKEND_CUDA, VAE_PRECISION_FP32);
  test_assert_close (got, want, HOUSE_BAR, "CUDA SD1.5 decode vs PyTorch");

  cpu = decode_on (m, latent, VAE_BACKEND_CPU, VAE_PRECISION_FP32);
  for (VaePrecision p = VAE_PRECISION_BF16; p <= VAE_PRECISION_FP16; p++)
    {
      gdouble db;
      half = decode_on (m, latent, VAE_BACKEND_CUDA, p);
      db = test_psnr (half, cpu);
      g_test_message ("SD1.5 decode in %s: PSNR %.2f dB against the CPU's fp32",
                      vae_precision_name (p), db);
      g_assert_cmpfloat (db, >=, HALF_PSNR_DB);
      g_clear_pointer (&half, vae_tensor_free);
    }
}

/* TAEF2 on a photograph: the latent against PyTorch's, the round trip
 * against the CPU's, in every precision. */
static void
test_taef2 (void)
{
  g_autofree gchar *models = test_models_dir ("taef2_encoder.pth");
  g_autofree gchar *photo_path = g_build_filename (SKIMAGE_DATA_DIR, "astronaut.png", NULL);
  g_autofree gchar *want_path = test_data_path ("tiny", "taef2-astronaut-latent.npy", NULL);
  g_autofree gchar *model_path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) m = NULL;
  g_autoptr (VaeTensor) image = NULL, latent = NULL, want = NULL, cpu_latent = NULL,
                        cpu_image = NULL;

  if (!models || !device_present ())
    return;
  if (!g_file_test (photo_path, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip ("python3-skimage's photographs are not installed");
      return;
    }
  model_path = g_build_filename (models, "taef2_encoder.pth", NULL);
  m = load (model_path);
  image = vae_png_read (photo_path, &error);
  g_assert_no_error (error);
  latent = encode_on (m, image, VAE_BACKEND_CUDA, VAE_PRECISION_FP32);
  want = test_load_npy_latent (want_path);
  test_assert_close (latent, want, HOUSE_BAR, "CUDA TAEF2 latent vs PyTorch");
  cpu_latent = encode_on (m, image, VAE_BACKEND_CPU, VAE_PRECISION_FP32);
  cpu_image = decode_on (m, cpu_latent, VAE_BACKEND_CPU, VAE_PRECISION_FP32);
  for (VaePrecision p = VAE_PRECISION_FP32; p <= VAE_PRECISION_FP16; p++)
    {
      g_autoptr (VaeTensor) z = encode_on (m, image, VAE_BACKEND_CUDA, p);
      g_autoptr (VaeTensor) out = decode_on (m, z, VAE_BACKEND_CUDA, p);
      gdouble db = test_psnr (out, cpu_image);
      g_test_message ("TAEF2 round trip in %s: PSNR %.2f dB against the CPU's fp32",
                      vae_precision_name (p), db);
      if (p == VAE_PRECISION_FP32)
        test_assert_close (out, cpu_image, HOUSE_BAR, "CUDA TAEF2 round trip vs CPU");
      else
        g_assert_cmpfloat (db, >=, HALF_PSNR_DB);
    }
}

/* A latent whose values overflow fp16 (above 65504): the fp16 pass gives
 * infinities, is redone in fp32 and matches the fp32 pass. */
static void
test_fp16_overflow_redone (void)
{
  g_autofree gchar *path = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autofree gchar *latent_path = test_data_path ("kl", "sd15-diffusers", "latent.npy", NULL);
  g_autoptr (VaeModel) m = NULL;
  g_autoptr (VaeTensor) latent = NULL, fp32 = NULL, fp16 = NULL;

  if (!device_present ())
    return;
  m = load (path);
  latent = test_load_npy_latent (latent_path);
  for (gsize i = 0; i < vae_tensor_n_elements (latent); i++)
    latent->data[i] *= 1e6f;
  fp32 = decode_on (m, latent, VAE_BACKEND_CUDA, VAE_PRECISION_FP32);
  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "*non-finite values*redone in fp32*");
  fp16 = decode_on (m, latent, VAE_BACKEND_CUDA, VAE_PRECISION_FP16);
  g_test_assert_expected_messages ();
  test_assert_close (fp16, fp32, HOUSE_BAR, "fp16 pass redone in fp32");
}

/* Device memory running out (here: an activation over
 * GEGL_VAE_CUDA_MAX_TENSOR, 4 MB, where a 512² decode's largest is 8× that):
 * the pass is redone in bands on the device, a message says so, and the
 * picture equals the CPU's within the house bar (float32 both; band edges
 * only change summation order). */
static void
test_out_of_memory_in_bands (void)
{
  g_autofree gchar *path = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autoptr (VaeModel) m = NULL;
  g_autoptr (VaeTensor) latent = NULL, cpu = NULL, banded = NULL;
  g_autoptr (GRand) rand = NULL;

  if (!device_present ())
    return;
  m = load (path);
  rand = g_rand_new_with_seed (5);
  latent = vae_tensor_new (4, 64, 64, NULL);
  for (gsize i = 0; i < vae_tensor_n_elements (latent); i++)
    latent->data[i] = (gfloat) g_rand_double_range (rand, -1.0, 1.0);
  cpu = decode_on (m, latent, VAE_BACKEND_CPU, VAE_PRECISION_FP32);
  g_setenv ("GEGL_VAE_CUDA_MAX_TENSOR", "4000000", TRUE);
  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE,
                         "*GEGL_VAE_CUDA_MAX_TENSOR*running in bands on the device instead*");
  banded = decode_on (m, latent, VAE_BACKEND_CUDA, VAE_PRECISION_FP32);
  g_test_assert_expected_messages ();
  g_unsetenv ("GEGL_VAE_CUDA_MAX_TENSOR");
  test_assert_close (banded, cpu, HOUSE_BAR, "CUDA decode in bands vs the CPU");
}

/* What holds on every machine: the backend choice and its errors. */
static void
test_choice (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *path = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autofree gchar *latent_path = test_data_path ("kl", "sd15-diffusers", "latent.npy", NULL);
  g_autoptr (VaeModel) m = load (path);
  g_autoptr (VaeTensor) latent = test_load_npy_latent (latent_path);
  g_autoptr (VaeTensor) cpu = decode_on (m, latent, VAE_BACKEND_CPU, VAE_PRECISION_FP32);
  g_autoptr (VaeTensor) got = NULL;
  gboolean     device = vae_cuda_probe (NULL, NULL);
  VaeCompute   compute = { VAE_BACKEND_CPU, VAE_PRECISION_FP16 };
  const VaeRun on_cuda = { .compute = { VAE_BACKEND_CUDA, VAE_PRECISION_FP32 } };

  g_assert_false (vae_compute_resolve (&compute, &error));
  test_assert_error (error, "precision fp16 is implemented on the CUDA backend only");
  g_clear_error (&error);
  /* bf16 on the CPU where it has AVX512-BF16, else an error saying so */
  compute = (VaeCompute){ VAE_BACKEND_CPU, VAE_PRECISION_BF16 };
  g_assert_cmpint (vae_compute_resolve (&compute, &error), ==, vae_cpu_has_bf16 ());
  if (!vae_cpu_has_bf16 ())
    test_assert_error (error, "precision bf16 on the CPU needs AVX512-BF16");
  g_clear_error (&error);
  /* the precision "auto": bf16 on a CPU with AMX (the accurate bf16 path),
   * else fp32; fp32 on the device */
  compute = (VaeCompute){ VAE_BACKEND_CPU, VAE_PRECISION_AUTO };
  g_assert_true (vae_compute_resolve (&compute, &error));
  g_assert_cmpint (compute.precision, ==,
                   vae_cpu_has_amx () ? VAE_PRECISION_BF16 : VAE_PRECISION_FP32);
  compute = (VaeCompute){ VAE_BACKEND_AUTO, VAE_PRECISION_AUTO };
  g_assert_true (vae_compute_resolve (&compute, &error));
  g_assert_cmpint (compute.precision, ==,
                   device || !vae_cpu_has_amx () ? VAE_PRECISION_FP32 : VAE_PRECISION_BF16);
  g_assert_true (vae_precision_from_name ("auto", &compute.precision));
  g_assert_cmpint (compute.precision, ==, VAE_PRECISION_AUTO);

  got = vae_model_decode (m, latent, &on_cuda, &error);
  if (device)
    {
      g_assert_no_error (error);
      g_assert_nonnull (got);
    }
  else
    {
      /* cuda without a device: an error naming why, no output */
      g_assert_null (got);
      test_assert_error (error, "backend 'cuda' was asked for, but ");
      g_clear_error (&error);
      /* auto without a device: the CPU's result, in fp32 for fp16 ... */
      got = decode_on (m, latent, VAE_BACKEND_AUTO, VAE_PRECISION_FP16);
      test_assert_close (got, cpu, 0.0, "auto without a device is the CPU");
      g_clear_pointer (&got, vae_tensor_free);
      /* ... and for bf16 unless this CPU has AVX512-BF16 */
      got = decode_on (m, latent, VAE_BACKEND_AUTO, VAE_PRECISION_BF16);
      if (vae_cpu_has_bf16 ())
        {
          g_autoptr (VaeTensor) cpu_bf16 =
              decode_on (m, latent, VAE_BACKEND_CPU, VAE_PRECISION_BF16);
          test_assert_close (got, cpu_bf16, 0.0,
                             "auto in bf16 without a device is the CPU in bf16");
        }
      else
        test_assert_close (got, cpu, 0.0,
                           "auto in bf16 without a device or AVX512-BF16 is the CPU in fp32");
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cuda/module-loads", test_module_loads);
  g_test_add_func ("/cuda/backend-choice", test_choice);
  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("/cuda/kl/%s/fp32", variants[i].dir);
      g_test_add_data_func (name, &variants[i], test_kl_fp32);
    }
  for (guint i = 0; i < G_N_ELEMENTS (families); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("/cuda/%s/fp32", families[i].dir);
      g_test_add_data_func (name, &families[i], test_family_fp32);
    }
  g_test_add_func ("/cuda/sd15-full/every-precision", test_sd15_full);
  g_test_add_func ("/cuda/taef2/every-precision", test_taef2);
  g_test_add_func ("/cuda/fp16-overflow-redone-in-fp32", test_fp16_overflow_redone);
  g_test_add_func ("/cuda/out-of-memory-in-bands", test_out_of_memory_in_bands);
  return g_test_run ();
}
