/* The tiled executor and the memory plan.
 *
 * Layer by layer, the tiled backend (bands of rows with halos, GroupNorm
 * statistics over all bands, tensors in memory or in a temporary file) must
 * equal the plain CPU backend on random shapes — odd sizes, 1-pixel images,
 * strides, asymmetric padding, upsampling, residuals — within 3e-5 of the
 * largest output: both are float32, and a band's Winograd tiles start at
 * other rows than the whole layer's, so rounding differs (the bar of
 * test-kernels).  Whole encodes and decodes at 1024² must stay ≥ 50 dB PSNR
 * from the untiled run (the bar); they land far above it.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "png-io.h"
#include "test-util.h"

#include <math.h>
#include <string.h>

static VaeTensor *
random_tensor (GRand *rand, gint c, gint h, gint w, gdouble amp)
{
  VaeTensor *t = vae_tensor_new (c, h, w, NULL);

  for (gsize i = 0; i < vae_tensor_n_elements (t); i++)
    t->data[i] = (gfloat) g_rand_double_range (rand, -amp, amp);
  return t;
}

static VaeBackend *
tiled_backend (gint image_height, gint band_pixels, gboolean in_files)
{
  VaeTileSettings s = { image_height, band_pixels, in_files ? 0 : G_MAXSIZE, 0 };
  return vae_backend_tiled_new (vae_backend_cpu (), &s, NULL);
}

/* The tiled result, made plain. */
static VaeTensor *
plain (VaeTensor *t)
{
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (t);
  g_assert_true (vae_tiled_materialize (&t, &error));
  g_assert_no_error (error);
  return t;
}

typedef struct
{
  gint     kernel, stride, pad_top, pad_left, pad_bottom, pad_right;
  gboolean up;
} ConvShape;

static void
test_conv (void)
{
  static const ConvShape shapes[] = {
    { 3, 1, 1, 1, 1, 1, FALSE }, /* same 3×3 (Winograd) */
    { 3, 1, 1, 1, 1, 1, TRUE },  /* upsample fused */
    { 3, 2, 0, 0, 1, 1, FALSE }, /* AutoencoderKL's downsampler */
    { 3, 2, 1, 1, 1, 1, FALSE }, /* TAESD's */
    { 4, 2, 1, 1, 1, 1, FALSE }, /* the small VQ-VAE's */
    { 1, 1, 0, 0, 0, 0, FALSE },
  };
  static const gint sizes[][2] = { { 1, 1 }, { 7, 5 }, { 16, 33 }, { 9, 64 } };
  GRand            *rand = g_rand_new_with_seed (7);
  gdouble           worst = 0;
  gint              cases = 0;

  for (guint a = 0; a < G_N_ELEMENTS (shapes); a++)
    for (guint b = 0; b < G_N_ELEMENTS (sizes); b++)
      for (gint band = 1; band <= 8; band *= 2)
        {
          const ConvShape *sh = &shapes[a];
          const gint       ci = g_rand_int_range (rand, 1, 20), co = g_rand_int_range (rand, 1, 12);
          const gint       h = sizes[b][1], w = sizes[b][0];
          const VaeAct     act = (VaeAct) g_rand_int_range (rand, 0, 3);
          VaeConv          conv = { co,          ci,           sh->kernel,     sh->stride,
                                    sh->pad_top, sh->pad_left, sh->pad_bottom, sh->pad_right };
          g_autoptr (VaeTensor) x = random_tensor (rand, ci, h, w, 1.0), residual = NULL,
                                want = NULL, got = NULL;
          g_autoptr (GError) error = NULL;
          VaeBackend *tiled = tiled_backend (h, band, band % 2 == 0);
          gint        out_h, out_w;

          vae_conv_output_size (&conv, h << sh->up, w << sh->up, &out_h, &out_w);
          if (out_h < 1 || out_w < 1)
            {
              vae_backend_tiled_free (tiled);
              continue;
            }
          conv.weight =
              test_random_floats (rand, (gsize) co * ci * sh->kernel * sh->kernel, -0.3, 0.3);
          conv.bias = test_random_floats (rand, co, -0.5, 0.5);
          if (g_rand_boolean (rand))
            residual = random_tensor (rand, co, out_h, out_w, 1.0);
          want = vae_backend_cpu ()->conv (vae_backend_cpu (), &conv, x, sh->up, residual, act,
                                           &error);
          got = plain (tiled->conv (tiled, &conv, x, sh->up, residual, act, &error));
          g_assert_no_error (error);
          worst = MAX (worst, test_max_rel_error (got, want));
          if (test_max_rel_error (got, want) > 3e-5)
            g_error ("k%d s%d pad %d/%d up %d %dx%d band %d: relative error %g", sh->kernel,
                     sh->stride, sh->pad_top, sh->pad_bottom, sh->up, w, h, band,
                     test_max_rel_error (got, want));
          vae_conv_clear (&conv);
          vae_backend_tiled_free (tiled);
          cases++;
        }
  g_test_message ("%d banded convolutions: worst relative error %.3g (bar 3e-5)", cases, worst);
  g_rand_free (rand);
}

/* Transposed convolutions in bands of their output rows (each band reading
 * the input rows whose taps reach it, with the layer's padding) against
 * the plain CPU backend, on the VQ-VAE's 4×4 stride-2 layer and shapes
 * whose halos differ: no padding, odd kernels, a stride of 3. */
static void
test_conv_transpose (void)
{
  static const gint shapes[][3] = {
    { 4, 2, 1 }, { 4, 2, 0 }, { 3, 2, 1 }, { 5, 3, 2 }, { 2, 2, 0 }
  };
  static const gint sizes[][2] = { { 1, 1 }, { 7, 5 }, { 16, 33 }, { 9, 64 } };
  GRand            *rand = g_rand_new_with_seed (26);
  gdouble           worst = 0;
  gint              cases = 0;

  for (guint a = 0; a < G_N_ELEMENTS (shapes); a++)
    for (guint b = 0; b < G_N_ELEMENTS (sizes); b++)
      for (gint band = 1; band <= 8; band *= 2)
        {
          const gint       h = sizes[b][1], w = sizes[b][0];
          VaeConvTranspose l = { g_rand_int_range (rand, 1, 12), g_rand_int_range (rand, 1, 20),
                                 shapes[a][0], shapes[a][1], shapes[a][2] };
          const VaeAct     act = g_rand_boolean (rand) ? VAE_ACT_RELU : VAE_ACT_NONE;
          VaeBackend      *tiled = tiled_backend (h, band, band % 2 == 0);
          g_autoptr (VaeTensor) x = random_tensor (rand, l.in_channels, h, w, 1.0), want = NULL,
                                got = NULL;
          g_autoptr (GError) error = NULL;

          l.weight = test_random_floats (
              rand, (gsize) l.in_channels * l.out_channels * l.kernel * l.kernel, -0.3, 0.3);
          l.bias = test_random_floats (rand, l.out_channels, -0.5, 0.5);
          want = vae_backend_cpu ()->conv_transpose (vae_backend_cpu (), &l, x, act, &error);
          got = plain (tiled->conv_transpose (tiled, &l, x, act, &error));
          g_assert_no_error (error);
          worst = MAX (worst, test_max_rel_error (got, want));
          if (test_max_rel_error (got, want) > 3e-5)
            g_error ("k%d s%d p%d %dx%d band %d: relative error %g", l.kernel, l.stride, l.pad, w,
                     h, band, test_max_rel_error (got, want));
          vae_conv_transpose_clear (&l);
          vae_backend_tiled_free (tiled);
          cases++;
        }
  g_test_message ("%d banded transposed convolutions: worst relative error %.3g (bar 3e-5)", cases,
                  worst);
  g_rand_free (rand);
}

/* GroupNorm (statistics merged over bands) and attention, and a conv that
 * reads the pending normalisation, against the plain backend. */
/* GroupNorm (statistics merged over bands) or RMS norm (KIND), attention
 * with that norm, and a conv that reads the pending normalisation, against
 * the plain backend. */
static void
norm_attention_case (VaeNormKind kind)
{
  GRand       *rand = g_rand_new_with_seed (11);
  const gint   c = 32, h = 13, w = 11;
  VaeNorm      norm = { c, 8, 1e-6f, test_random_floats (rand, c, 0.5, 1.5),
                        test_random_floats (rand, c, -0.5, 0.5) };
  VaeAttention attn = { norm };
  VaeConv     *convs[] = { &attn.q, &attn.k, &attn.v, &attn.proj };
  g_autoptr (VaeTensor) x = random_tensor (rand, c, h, w, 2.0);
  g_autoptr (GError) error = NULL;
  const VaeBackend *cpu = vae_backend_cpu ();

  norm.kind = attn.norm.kind = kind;
  attn.norm.gamma = g_memdup2 (norm.gamma, c * sizeof (gfloat));
  attn.norm.beta = g_memdup2 (norm.beta, c * sizeof (gfloat));
  for (guint i = 0; i < G_N_ELEMENTS (convs); i++)
    *convs[i] = (VaeConv){ c,
                           c,
                           1,
                           1,
                           0,
                           0,
                           0,
                           0,
                           test_random_floats (rand, c * c, -0.2, 0.2),
                           test_random_floats (rand, c, -0.1, 0.1) };
  x->data[0] = 40.0f; /* an outlier stresses the merged variance */
  for (gint band = 1; band <= 16; band *= 4)
    {
      VaeBackend *tiled = tiled_backend (h, band, band > 1);
      g_autoptr (VaeTensor) n_want = cpu->norm (cpu, &norm, x, VAE_ACT_SILU, &error);
      g_autoptr (VaeTensor) a_want = cpu->attention (cpu, &attn, x, &error);
      g_autoptr (VaeTensor) n_got = plain (tiled->norm (tiled, &norm, x, VAE_ACT_SILU, &error));
      g_autoptr (VaeTensor) a_got = plain (tiled->attention (tiled, &attn, x, &error));
      g_autoptr (VaeTensor) lazy = tiled->norm (tiled, &norm, x, VAE_ACT_SILU, &error);
      g_autoptr (VaeTensor) c_want =
          cpu->conv (cpu, &attn.q, n_want, FALSE, NULL, VAE_ACT_NONE, &error);
      g_autoptr (VaeTensor) c_got =
          plain (tiled->conv (tiled, &attn.q, lazy, FALSE, NULL, VAE_ACT_NONE, &error));
      g_assert_no_error (error);
      test_assert_close (n_got, n_want, 1e-5, "norm + SiLU in bands");
      test_assert_close (a_got, a_want, 1e-5, "attention in bands");
      test_assert_close (c_got, c_want, 1e-5, "a conv reading the pending norm");
      vae_backend_tiled_free (tiled);
    }
  vae_norm_clear (&norm);
  vae_attention_clear (&attn);
  g_rand_free (rand);
}

static void
test_norm_attention (void)
{
  norm_attention_case (VAE_NORM_GROUP);
}

static void
test_rms_norm_attention (void)
{
  norm_attention_case (VAE_NORM_RMS);
}

/* DC-AE's layers in bands against the plain backend: grouped convolutions
 * (depthwise 5×5, grouped 1×1, the 2×2 stride-2 down shortcut), the sum,
 * the gate, the linear attention (sums over all bands) and the pixel
 * shuffle, each reading an input with a pending RMS norm. */
static void
test_dcae_layers (void)
{
  GRand            *rand = g_rand_new_with_seed (12);
  const gint        c = 24, h = 13, w = 10;
  const VaeBackend *cpu = vae_backend_cpu ();
  VaeNorm           norm = { c,
                             1,
                             1e-5f,
                             test_random_floats (rand, c, 0.5, 1.5),
                             test_random_floats (rand, c, -0.5, 0.5),
                             NULL,
                             VAE_NORM_RMS };
  VaeConv           convs[] = {
              { c, c, 5, 1, 2, 2, 2, 2, NULL, NULL, NULL, c },
              { c, c, 1, 1, 0, 0, 0, 0, NULL, NULL, NULL, 3 },
              { 2 * c, c, 2, 1, 0, 0, 0, 0, NULL, NULL, NULL, c },
  };
  g_autoptr (VaeTensor) x = random_tensor (rand, c, h, w, 2.0),
                        b = random_tensor (rand, c, h, w, 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) normed = cpu->norm (cpu, &norm, x, VAE_ACT_NONE, &error);

  convs[2].stride = 2; /* a 2×2 stride-2 kernel reads even rows: 12 of the 13 */
  for (guint i = 0; i < G_N_ELEMENTS (convs); i++)
    {
      convs[i].weight = test_random_floats (rand,
                                            (gsize) convs[i].out_channels * c / convs[i].groups *
                                                convs[i].kernel * convs[i].kernel,
                                            -0.3, 0.3);
      convs[i].bias = test_random_floats (rand, convs[i].out_channels, -0.1, 0.1);
    }
  for (gint band = 1; band <= 16; band *= 4)
    {
      VaeBackend *tiled = tiled_backend (h, band, band > 1);
      g_autoptr (VaeTensor) lazy = tiled->norm (tiled, &norm, x, VAE_ACT_NONE, &error);
      for (guint i = 0; i < G_N_ELEMENTS (convs); i++)
        {
          g_autoptr (VaeTensor) want =
              cpu->conv (cpu, &convs[i], normed, FALSE, b, VAE_ACT_SILU, &error);
          g_autoptr (VaeTensor) got = NULL;
          if (convs[i].stride == 2) /* no residual of another size */
            {
              g_clear_pointer (&want, vae_tensor_free);
              want = cpu->conv (cpu, &convs[i], normed, FALSE, NULL, VAE_ACT_NONE, &error);
              got = plain (tiled->conv (tiled, &convs[i], lazy, FALSE, NULL, VAE_ACT_NONE, &error));
            }
          else
            got = plain (tiled->conv (tiled, &convs[i], lazy, FALSE, b, VAE_ACT_SILU, &error));
          g_assert_no_error (error);
          test_assert_close (got, want, 1e-5, "a grouped conv in bands");
        }
      {
        g_autoptr (VaeTensor) sum_want = cpu->add (cpu, normed, b, &error);
        g_autoptr (VaeTensor) sum_got = plain (tiled->add (tiled, lazy, b, &error));
        g_autoptr (VaeTensor) gate_want = cpu->gate (cpu, normed, &error);
        g_autoptr (VaeTensor) gate_got = plain (tiled->gate (tiled, lazy, &error));
        g_autoptr (VaeTensor) la_want = cpu->linear_attention (cpu, normed, 4, 1e-15f, &error);
        g_autoptr (VaeTensor) la_got =
            plain (tiled->linear_attention (tiled, lazy, 4, 1e-15f, &error));
        g_autoptr (VaeTensor) ps_want = cpu->pixel_shuffle (cpu, normed, &error);
        g_autoptr (VaeTensor) ps_got = plain (tiled->pixel_shuffle (tiled, lazy, &error));
        g_assert_no_error (error);
        test_assert_close (sum_got, sum_want, 1e-6, "a sum in bands");
        test_assert_close (gate_got, gate_want, 1e-6, "the gate in bands");
        test_assert_close (la_got, la_want, 1e-5, "linear attention in bands");
        test_assert_close (ps_got, ps_want, 0.0, "the pixel shuffle in bands");
      }
      vae_backend_tiled_free (tiled);
    }
  for (guint i = 0; i < G_N_ELEMENTS (convs); i++)
    vae_conv_clear (&convs[i]);
  vae_norm_clear (&norm);
  g_rand_free (rand);
}

static void
progress_count (gdouble fraction, gpointer data)
{
  gdouble *last = data;

  g_assert_cmpfloat (fraction, >=, last[0]);
  last[0] = fraction;
  last[1] += 1;
}

/* Astronaut, each pixel doubled to 1024², or NULL after a skip. */
static VaeTensor *
photo_1024 (void)
{
  g_autofree gchar *path = g_build_filename (SKIMAGE_DATA_DIR, "astronaut.png", NULL);
  g_autoptr (VaeTensor) photo = NULL;
  g_autoptr (GError) error = NULL;
  VaeTensor *image;

  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip ("python3-skimage's photographs are not installed");
      return NULL;
    }
  photo = vae_png_read (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (photo->width, ==, 512);
  image = vae_tensor_new (3, 1024, 1024, NULL);
  for (gint c = 0; c < 3; c++)
    for (gint y = 0; y < 1024; y++)
      for (gint x = 0; x < 1024; x++)
        image->data[((gsize) c * 1024 + y) * 1024 + x] =
            photo->data[((gsize) c * 512 + y / 2) * 512 + x / 2];
  return image;
}

static VaeTensor *
encode (VaeModel *model, const VaeTensor *image, const VaeRun *run)
{
  g_autoptr (GError) error = NULL;
  VaeTensor *latent = vae_model_encode (model, image, VAE_ENCODE_MEAN, 0, run, &error);

  g_assert_no_error (error);
  return latent;
}

static VaeTensor *
decode (VaeModel *model, const VaeTensor *latent, const VaeRun *run)
{
  g_autoptr (GError) error = NULL;
  VaeTensor *image = vae_model_decode (model, latent, run, &error);

  g_assert_no_error (error);
  return image;
}

/* Round trip at 1024² untiled, then in 128-pixel bands with every large
 * tensor in a temporary file; the bands report progress.  The images must
 * stay ≥ 50 dB PSNR apart, and the latents within LATENT_BAR (max relative
 * error) and LATENT_SNR dB of each other.  (TAEF2's encoder amplifies
 * rounding in places of this doubled photo, so that where bands change the
 * order of a Winograd product's sums, single values move by up to 6e-3 of
 * the largest; measured on an AVX2 CPU without AVX-512: 88.1 dB with the
 * per-thread chunks, 70 dB when the band products went through OpenBLAS
 * (before sgemm.c's AVX2 kernel).  Untiled, our float32 latent of it is 75.6
 * dB from PyTorch's float64 one.  So its tiled latent is held to 60 dB
 * here, and to the house bar beyond float32's own spread against the
 * float64 golden, in 64-pixel bands too, in test-tiny.) */
static void
check_round_trip (VaeModel *model, const gchar *what, gdouble latent_bar, gdouble latent_snr)
{
  g_autoptr (VaeTensor) image = photo_1024 ();
  g_autoptr (VaeTensor) latent = NULL, tiled_latent = NULL, out = NULL, tiled_out = NULL;
  gdouble      progress[2] = { 0, 0 }, err;
  const VaeRun forced = { .tiling = { 64 << 20, 128 },
                          .progress = progress_count,
                          .progress_data = progress };

  if (!image)
    return;
  latent = encode (model, image, NULL);
  out = decode (model, latent, NULL);
  tiled_latent = encode (model, image, &forced);
  g_assert_cmpfloat (progress[0], ==, 1.0);
  progress[0] = 0; /* the decode reports from 0 again */
  tiled_out = decode (model, tiled_latent, &forced);
  err = test_max_rel_error (tiled_latent, latent);
  g_test_message ("%s: tiled latent max relative error %.3g (bar %g), SNR %.1f dB (bar %g dB); "
                  "tiled round trip %.1f dB PSNR from untiled (bar 50 dB); %.0f progress reports",
                  what, err, latent_bar, test_snr (tiled_latent, latent), latent_snr,
                  test_psnr (tiled_out, out), progress[1]);
  g_assert_cmpfloat (err, <=, latent_bar);
  g_assert_cmpfloat (test_snr (tiled_latent, latent), >=, latent_snr);
  g_assert_cmpfloat (test_psnr (tiled_out, out), >=, 50.0);
  g_assert_cmpfloat (progress[0], ==, 1.0);
  g_assert_cmpfloat (progress[1], >, 40.0); /* per band, not per layer */
}

static void
test_kl_1024 (void)
{
  g_autofree gchar *path = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = vae_model_load (path, NULL, &error);

  g_assert_no_error (error);
  check_round_trip (model, "KL (sd15 architecture, small widths)", 1e-4, 100.0);
}

static void
test_tiny_1024 (void)
{
  g_autofree gchar *dir = test_models_dir ("taef2_decoder.pth");
  g_autofree gchar *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = NULL;

  if (!dir)
    return;
  path = g_build_filename (dir, "taef2_encoder.pth", NULL);
  model = vae_model_load (path, NULL, &error);
  g_assert_no_error (error);
  check_round_trip (model, "TAEF2", 1.0, 60.0);
}

/* ---- a pass too large for a device ------------------------------------------
 * A stand-in for a device backend: the CPU's convolutions, handed out as
 * tensors whose values are not in `data` (as a device's are not; to_host
 * brings them over), and out of memory for inputs of more than MAX_ROWS
 * rows.  Its norm and attention always run out of memory: in bands the
 * executor computes those on the host and must not call them. */
typedef struct
{
  VaeBackend base;
  gint       max_rows;
  gint       refused; /* inputs too tall */
  gint       tallest; /* tallest input served */
} FakeDevice;

typedef struct
{
  VaeExternal base;
  VaeTensor  *values;
} Hidden;

static void
hidden_release (VaeExternal *external)
{
  vae_tensor_free (((Hidden *) external)->values);
  g_free (external);
}

static gboolean
is_hidden (const VaeTensor *t)
{
  return t && t->external && ((VaeExternal *) t->external)->release == hidden_release;
}

static const VaeTensor *
values_of (const VaeTensor *t)
{
  return is_hidden (t) ? ((Hidden *) t->external)->values : t;
}

static VaeTensor *
hide (VaeTensor *values)
{
  VaeTensor *t = g_new0 (VaeTensor, 1);
  Hidden    *h = g_new0 (Hidden, 1);

  h->base.release = hidden_release;
  h->values = values;
  *t = (VaeTensor){
    .channels = values->channels, .height = values->height, .width = values->width, .external = h
  };
  return t;
}

static gboolean
fake_out_of_memory (GError **error)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY, "fake device: out of memory");
  return FALSE;
}

static VaeTensor *
fake_conv (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x, gboolean up,
           const VaeTensor *residual, VaeAct act, GError **error)
{
  FakeDevice *device = (FakeDevice *) be;
  VaeTensor  *y;

  if (x->height > device->max_rows)
    {
      device->refused++;
      fake_out_of_memory (error);
      return NULL;
    }
  device->tallest = MAX (device->tallest, x->height);
  y = vae_backend_cpu ()->conv (vae_backend_cpu (), conv, values_of (x), up, values_of (residual),
                                act, error);
  return y ? hide (y) : NULL;
}

static VaeTensor *
fake_norm (const VaeBackend *be, const VaeNorm *norm, const VaeTensor *x, VaeAct act,
           GError **error)
{
  fake_out_of_memory (error);
  return NULL;
}

static VaeTensor *
fake_attention (const VaeBackend *be, const VaeAttention *attention, const VaeTensor *x,
                GError **error)
{
  fake_out_of_memory (error);
  return NULL;
}

static VaeTensor *
fake_clamp (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  VaeTensor *y = vae_backend_cpu ()->clamp (vae_backend_cpu (), values_of (x), error);

  return y ? hide (y) : NULL;
}

static gboolean
fake_to_host (const VaeBackend *be, VaeTensor **t, GError **error)
{
  VaeTensor *copy;

  if (!is_hidden (*t))
    return TRUE;
  copy = vae_tensor_new ((*t)->channels, (*t)->height, (*t)->width, error);
  memcpy (copy->data, values_of (*t)->data, vae_tensor_n_elements (copy) * sizeof (gfloat));
  return vae_tensor_replace (t, copy);
}

typedef struct
{
  VaeNet           *net;
  const VaeBackend *device;
  const VaeTensor  *x;
} FakePass;

static VaeTensor *
fake_pass_in_bands (const VaeTileSettings *tiles, gpointer data, GError **error)
{
  const FakePass *pass = data;
  VaeBackend     *tiled = vae_backend_tiled_new (pass->device, tiles, NULL);
  const VaePass   run = { tiled };
  VaeTensor      *y = pass->net->forward (pass->net, &run, pass->x, error);

  if (y && !vae_tiled_materialize (&y, error))
    g_clear_pointer (&y, vae_tensor_free);
  vae_backend_tiled_free (tiled);
  return y;
}

/* A decode too large for the device (inputs of half the image's rows, a
 * 128×96 image): whole, it runs out of memory; in bands (halved from the
 * image's height until they fit, halos included) it equals the CPU's
 * within the tiled executor's bar (3e-5 of the largest value per layer,
 * 1e-4 over the network); bands it cannot fit at all end in its error. */
static void
check_device_bands (const gchar *what, const gchar *model_dir, const gchar *model_file)
{
  g_autofree gchar *path = test_data_path (model_dir, model_file, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = vae_model_load (path, NULL, &error);
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);
  VaeNet *net = model->decoder;
  g_autoptr (VaeTensor) latent = random_tensor (rand, net->in_channels, 16, 12, 1.0), want = NULL,
                        got = NULL, none = NULL;
  const gint      image_h = latent->height * net->factor;
  FakeDevice      device = { { .name = "fake device",
                               .conv = fake_conv,
                               .norm = fake_norm,
                               .attention = fake_attention,
                               .clamp = fake_clamp,
                               .to_host = fake_to_host },
                             image_h / 2,
                             0,
                             0 };
  FakePass        pass = { net, &device.base, latent };
  VaeTileSettings tiles = { image_h, image_h, G_MAXSIZE, 0, 0 };
  const VaePass   cpu = { vae_backend_cpu () }, on_device = { &device.base };

  g_assert_no_error (error);
  want = net->forward (net, &cpu, latent, &error);
  g_assert_no_error (error);
  none = net->forward (net, &on_device, latent, &error);
  g_assert_null (none);
  g_assert_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY);
  g_clear_error (&error);

  got = vae_tiled_while_out_of_memory (&tiles, 8, fake_pass_in_bands, &pass, &error);
  g_assert_no_error (error);
  g_test_message ("%s: decode of %d image rows in %d-row bands after %d refusals; tallest input %d "
                  "rows (limit %d); "
                  "max relative error %.3g",
                  what, image_h, tiles.band_pixels, device.refused, device.tallest, device.max_rows,
                  test_max_rel_error (got, want));
  g_assert_cmpint (tiles.band_pixels, <, image_h / 2);
  g_assert_cmpint (device.refused, >, 0);
  g_assert_cmpint (device.tallest, <=, device.max_rows);
  test_assert_close (got, want, 1e-4, "decode in bands on a fake device vs the CPU");

  device.max_rows = 0; /* nothing fits */
  tiles.band_pixels = image_h;
  g_assert_null (vae_tiled_while_out_of_memory (&tiles, 8, fake_pass_in_bands, &pass, &error));
  g_assert_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY);
  g_assert_cmpint (tiles.band_pixels, >=, 8);
  g_assert_cmpint (tiles.band_pixels / 2, <, 8);
}

static void
test_device_bands (void)
{
  check_device_bands ("KL (sd15 architecture, small widths)", "kl/sd15-diffusers",
                      "sd15_tiny.safetensors");
  check_device_bands ("TAESD (small widths)", "tiny", "taesd_diffusers_tiny.safetensors");
}

/* The plan: untiled under a generous budget, bands under a tight one, and
 * a clear error when even the thinnest bands cannot fit. */
static void
test_plan (void)
{
  g_autofree gchar *path = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = vae_model_load (path, NULL, &error);
  VaeMemoryPlan roomy, tight;
  VaeRun        run = { .tiling = { (guint64) 8 << 30, 0 } };

  g_assert_no_error (error);
  g_assert_true (vae_model_plan (model, FALSE, 256, 256, &run, &roomy, &error));
  g_assert_cmpint (roomy.band_pixels, ==, 0);
  run.tiling.memory_limit = roomy.untiled_bytes / 2;
  g_assert_true (vae_model_plan (model, FALSE, 256, 256, &run, &tight, &error));
  g_assert_no_error (error);
  g_test_message ("2048x2048 decode: untiled %" PRIu64 " MiB; under %" PRIu64
                  " MiB: %d-pixel bands, %" PRIu64 " MiB",
                  roomy.untiled_bytes >> 20, tight.budget >> 20, tight.band_pixels,
                  tight.tiled_bytes >> 20);
  g_assert_cmpint (tight.band_pixels, >, 0);
  g_assert_cmpuint (tight.tiled_bytes, <=, tight.budget);
  run.tiling.memory_limit = 1 << 20;
  g_assert_false (vae_model_plan (model, FALSE, 256, 256, &run, &tight, &error));
  test_assert_error (error, "memory limit of 1 MiB is too small");
}

static void
test_parse_bytes (void)
{
  static const struct
  {
    const gchar *text;
    guint64      bytes;
  } good[] = {
    { "1000", 1000 },
    { "64K", 65536 },
    { "1.5G", 3 << 29 },
    { "800M", 800 << 20 },
    { "2GiB", (guint64) 2 << 30 },
    { "512mb", 512 << 20 },
  };
  static const gchar *bad[] = { "", "G", "-1G", "1X", "1.5.2M", "0", "1 G" };
  guint64             bytes;

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_assert_true (vae_parse_bytes (good[i].text, &bytes));
      g_assert_cmpuint (bytes, ==, good[i].bytes);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    g_assert_false (vae_parse_bytes (bad[i], &bytes));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/tiled/conv", test_conv);
  g_test_add_func ("/tiled/conv-transpose", test_conv_transpose);
  g_test_add_func ("/tiled/norm-attention", test_norm_attention);
  g_test_add_func ("/tiled/rms-norm-attention", test_rms_norm_attention);
  g_test_add_func ("/tiled/dcae-layers", test_dcae_layers);
  g_test_add_func ("/tiled/device-bands", test_device_bands);
  g_test_add_func ("/tiled/plan", test_plan);
  g_test_add_func ("/tiled/parse-bytes", test_parse_bytes);
  g_test_add_func ("/tiled/kl-1024", test_kl_1024);
  g_test_add_func ("/tiled/taef2-1024", test_tiny_1024);
  return g_test_run ();
}
