/* Running a model: image ↔ diffusion latent, with replicate padding, each
 * kind's pixel range, the KL posterior, FLUX.2 patchify and BatchNorm, a VQ
 * model's quantisation, the family's per-channel latents_mean/std
 * (Qwen-Image) and its scale/shift.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"
#include "run/run.h"

#include <math.h>
#include <string.h>

#define BN_EPS 1e-4

/* What a kind of network sees of a pixel value v in [0, 1]: v·MUL + ADD.
 * AutoencoderKL, VQModel, Qwen-Image and DC-AE: [−1, 1]; TAESD: [0, 1];
 * the small VQ-VAE: v − 0.5 (its CIFAR-10 normalisation, mean 0.5 and
 * std 1). */
static void
pixel_range (VaeKind kind, gfloat *mul, gfloat *add)
{
  const gboolean is_signed = kind != VAE_KIND_TINY && kind != VAE_KIND_VQVAE;

  *mul = is_signed ? 2.0f : 1.0f;
  *add = is_signed ? -1.0f : kind == VAE_KIND_VQVAE ? -0.5f : 0.0f;
}

/* Edge-replicated copy of IMAGE at the next multiple of F, in KIND's pixel
 * range. */
static VaeTensor *
pad_image (const VaeTensor *image, gint f, VaeKind kind, GError **error)
{
  const gint h = (image->height + f - 1) / f * f, w = (image->width + f - 1) / f * f;
  VaeTensor *out = vae_tensor_new (image->channels, h, w, error);
  gfloat     mul, add;

  if (!out)
    return NULL;
  pixel_range (kind, &mul, &add);
#pragma omp parallel for schedule(static)
  for (gint row = 0; row < image->channels * h; row++)
    {
      const gint    c = row / h, y = row % h;
      const gfloat *src =
          image->data + ((gsize) c * image->height + MIN (y, image->height - 1)) * image->width;
      gfloat *dst = out->data + (gsize) row * w;
      for (gint x = 0; x < w; x++)
        dst[x] = src[MIN (x, image->width - 1)] * mul + add;
    }
  return out;
}

static const VaeRun default_run;

/* Whether M's encoder gives 2Z moments of a Gaussian posterior
 * (AutoencoderKL, Qwen-Image, HunyuanImage), not the latent itself. */
static gboolean
gaussian (const VaeModel *m)
{
  return m->structure.kind == VAE_KIND_KL || m->structure.kind == VAE_KIND_QWEN_IMAGE ||
         m->structure.kind == VAE_KIND_HUNYUAN_IMAGE;
}

/* What the pass's layers report to and stop on. */
static VaePass
pass_of (const VaeBackend *backend, const VaeRun *run, gboolean per_layer)
{
  return (VaePass){ backend, per_layer ? run->progress : NULL, run->progress_data, run->cancel };
}

/* One network pass on the CPU in PRECISION (fp32 or bf16), its scratch
 * blocks recycled among its layers; in bands when the memory plan says so
 * (the bands then report progress, not the layers). */
static VaeTensor *
forward_cpu (VaeModel *m, VaeNet *net, const VaeTensor *x, VaePrecision precision,
             const VaeRun *run, GError **error)
{
  const VaeBackend *cpu =
      precision == VAE_PRECISION_BF16 ? vae_backend_cpu_bf16 () : vae_backend_cpu ();
  const VaePass   outer = pass_of (cpu, run, TRUE);
  VaeMemoryPlan   plan;
  VaeTileSettings tiles;
  VaeBackend     *tiled = NULL;
  VaePass         pass;
  VaeTensor      *y;

  if (!vae_model_plan_pass (m, net, x->channels, x->height, x->width, &run->tiling, &plan, &tiles,
                            error))
    return NULL;
  vae_pool_set_hold (vae_plan_pool_hold (&tiles));
  vae_winograd_set_cache_limit (vae_plan_winograd_cache (&tiles));
  if (plan.band_pixels > 0)
    tiled = vae_backend_tiled_new (cpu, &tiles, &outer);
  pass = pass_of (tiled ? tiled : cpu, run, !tiled);
  vae_pool_begin ();
  y = net->forward (net, &pass, x, error);
  if (y && !vae_tiled_materialize (&y, error))
    g_clear_pointer (&y, vae_tensor_free);
  vae_pool_end ();
  if (tiled)
    vae_backend_tiled_free (tiled);
  return y;
}

/* Bands thinner than this (in image rows) are mostly halo. */
#define DEVICE_MIN_BAND_ROWS 16

typedef struct
{
  VaeNet          *net;
  const VaeTensor *x;
  VaePrecision     precision;
  VaePass          outer;
} DevicePass;

static VaeTensor *
device_in_bands (const VaeTileSettings *tiles, gpointer data, GError **error)
{
  const DevicePass *pass = data;

  return vae_device_forward (pass->net, pass->x, pass->precision, tiles, &pass->outer, error);
}

/* A pass too large for the device at once, in bands there: the host holds
 * the whole tensors as the CPU's memory plan says (in files when large),
 * the device one band of a layer at a time, bands halved while it runs out
 * of memory. */
static VaeTensor *
forward_device_banded (VaeModel *m, VaeNet *net, const VaeTensor *x, VaePrecision precision,
                       const VaeRun *run, GError **error)
{
  DevicePass      pass = { net, x, precision, pass_of (NULL, run, TRUE) };
  VaeMemoryPlan   plan;
  VaeTileSettings tiles;

  if (!vae_model_plan_pass (m, net, x->channels, x->height, x->width, &run->tiling, &plan, &tiles,
                            error))
    return NULL;
  if (tiles.band_pixels <= 0)
    tiles.band_pixels = MAX (DEVICE_MIN_BAND_ROWS, tiles.image_height / 2);
  return vae_tiled_while_out_of_memory (&tiles, DEVICE_MIN_BAND_ROWS, device_in_bands, &pass,
                                        error);
}

/* TRUE when DEVICE_ERROR is CODE (the device ran out of memory, or cannot
 * run a layer): then it is cleared, and the first time MESSAGE (a format
 * for the error's message) says what runs instead. */
static gboolean
device_gave_up (GError **device_error, VaeError code, gsize *said, const gchar *message)
{
  if (!g_error_matches (*device_error, VAE_ERROR, code))
    return FALSE;
  if (g_once_init_enter (said))
    {
      g_message (message, (*device_error)->message);
      g_once_init_leave (said, 1);
    }
  g_clear_error (device_error);
  return TRUE;
}

/* One network pass on RUN's backend; when the device runs out of memory,
 * in bands there, and failing that on the CPU (in bands if the memory plan
 * needs them); with the automatic backend, on the CPU too when the device
 * cannot run one of the network's layers. */
static VaeTensor *
forward (VaeModel *m, VaeNet *net, const VaeTensor *x, const VaeRun *run, GError **error)
{
  static gsize banded_said, cpu_said, unsupported_said;
  VaeCompute   compute;
  VaePass      outer;
  GError      *device_error = NULL;
  VaeTensor   *y;

  run = run ? run : &default_run;
  compute = run->compute;
  if (!vae_compute_resolve (&compute, error))
    return NULL;
  if (compute.backend == VAE_BACKEND_CPU)
    return forward_cpu (m, net, x, compute.precision, run, error);
  outer = pass_of (NULL, run, TRUE);
  if (!(y = vae_device_forward (net, x, compute.precision, NULL, &outer, &device_error)) &&
      device_gave_up (&device_error, VAE_ERROR_NO_MEMORY, &banded_said,
                      _ ("%s; running in bands on the device instead")))
    y = forward_device_banded (m, net, x, compute.precision, run, &device_error);
  if (!y && (device_gave_up (&device_error, VAE_ERROR_NO_MEMORY, &cpu_said,
                             _ ("%s; running on the CPU instead")) ||
             (run->compute.backend == VAE_BACKEND_AUTO &&
              device_gave_up (&device_error, VAE_ERROR_UNSUPPORTED, &unsupported_said,
                              _ ("%s; running on the CPU instead")))))
    return forward_cpu (m, net, x, vae_cpu_precision_for (run->compute.precision), run, error);
  if (device_error)
    g_propagate_error (error, device_error);
  return y;
}

VaeTensor *
vae_model_encode_raw (VaeModel *m, const VaeTensor *image, const VaeRun *run, GError **error)
{
  g_autoptr (VaeTensor) padded = NULL;

  if (!m->encoder)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s has no encoder"), m->files);
      return NULL;
    }
  if (image->channels != 3)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the encoder takes an RGB image, not %d channels"), image->channels);
      return NULL;
    }
  if (!vae_check_image_size (image->width, image->height, "image", error) ||
      !vae_tensor_check_finite (image, "the input image", error))
    return NULL;
  padded = pad_image (image, vae_family_factor (m->family), m->structure.kind, error);
  if (!padded)
    return NULL;
  return forward (m, m->encoder, padded, run, error);
}

/* mean, or mean + std·ε with ε from Philox (position-keyed); logvar is
 * clamped to [−30, 20] as the reference does. */
static VaeTensor *
posterior (const VaeTensor *moments, VaeEncodeMode mode, guint64 seed, GError **error)
{
  const gint  z = moments->channels / 2;
  const gsize n = (gsize) z * moments->height * moments->width;
  VaeTensor  *out = vae_tensor_new (z, moments->height, moments->width, error);

  if (!out)
    return NULL;
  memcpy (out->data, moments->data, n * sizeof (gfloat));
  if (mode == VAE_ENCODE_SAMPLE)
#pragma omp parallel for schedule(static)
    for (gsize i = 0; i < n; i++)
      {
        gfloat logvar = CLAMP (moments->data[n + i], -30.0f, 20.0f);
        out->data[i] += expf (0.5f * logvar) * vae_philox_normal (seed, 0, i);
      }
  return out;
}

/* P[c·4 + 2·py + px, i, j] = m[c, 2i + py, 2j + px], or its inverse. */
static VaeTensor *
patchify (const VaeTensor *x, gboolean inverse, GError **error)
{
  VaeTensor *y = inverse ? vae_tensor_new (x->channels / 4, x->height * 2, x->width * 2, error)
                         : vae_tensor_new (x->channels * 4, x->height / 2, x->width / 2, error);
  const VaeTensor *small = inverse ? x : y, *big = inverse ? y : x;

  if (!y)
    return NULL;
  for (gint c = 0; c < big->channels; c++)
    for (gint p = 0; p < 4; p++)
      for (gint i = 0; i < small->height; i++)
        for (gint j = 0; j < small->width; j++)
          {
            gsize s = ((gsize) (c * 4 + p) * small->height + i) * small->width + j;
            gsize b = ((gsize) c * big->height + 2 * i + p / 2) * big->width + 2 * j + p % 2;
            if (inverse)
              big->data[b] = small->data[s];
            else
              small->data[s] = big->data[b];
          }
  return y;
}

/* The statistics channel C is normalised by before shift and scale:
 * FLUX.2's BatchNorm, or the family's latents_mean/std; else 0 and 1. */
static void
channel_stats (const VaeModel *m, gint c, gdouble *mean, gdouble *std)
{
  const VaeFamily *f = m->family;

  *mean = 0.0;
  *std = 1.0;
  if (m->bn_mean)
    {
      *mean = m->bn_mean[c];
      *std = sqrt ((gdouble) m->bn_var[c] + BN_EPS);
      return;
    }
  if (f->latents_mean)
    *mean = f->latents_mean[c];
  if (f->latents_std)
    *std = f->latents_std[c];
}

/* Each channel of Z as z·mul + add, in place. */
static void
channel_affine (VaeTensor *z, const gdouble *mul, const gdouble *add)
{
  const gsize plane = (gsize) z->height * z->width;

  for (gint c = 0; c < z->channels; c++)
    for (gsize i = 0; i < plane; i++)
      z->data[c * plane + i] = (gfloat) (z->data[c * plane + i] * mul[c] + add[c]);
}

/* Diffusion scale: ((z − mean_c)/std_c − shift)·scale, or its inverse. */
static void
diffusion_scale (const VaeModel *m, VaeTensor *z, gboolean inverse)
{
  g_autofree gdouble *mul = g_new (gdouble, z->channels), *add = g_new (gdouble, z->channels);

  for (gint c = 0; c < z->channels; c++)
    {
      gdouble mean, std;
      channel_stats (m, c, &mean, &std);
      mul[c] = inverse ? std / m->scale : m->scale / std;
      add[c] = inverse ? m->shift * std + mean : -(mean / std + m->shift) * m->scale;
    }
  channel_affine (z, mul, add);
}

static void
to_diffusion (const VaeModel *m, VaeTensor *z)
{
  diffusion_scale (m, z, FALSE);
}

static void
from_diffusion (const VaeModel *m, VaeTensor *z)
{
  diffusion_scale (m, z, TRUE);
}

VaeTensor *
vae_model_encode (VaeModel *m, const VaeTensor *image, VaeEncodeMode mode, guint64 seed,
                  const VaeRun *run, GError **error)
{
  g_autoptr (VaeTensor) raw = vae_model_encode_raw (m, image, run, error);

  if (!raw)
    return NULL;
  if (gaussian (m) && !vae_tensor_replace (&raw, posterior (raw, mode, seed, error)))
    return NULL;
  if (m->family->patchify > 1 && !vae_tensor_replace (&raw, patchify (raw, FALSE, error)))
    return NULL;
  to_diffusion (m, raw);
  /* weights that overflow float (or a scale that does) would otherwise give
   * a latent of infinities or NaN without a word */
  if (!vae_tensor_check_finite (raw, _ ("the encoded latent"), error))
    return NULL;
  return g_steal_pointer (&raw);
}

/* The decoder's input from a diffusion latent (a new tensor); a VQ model's
 * snapped to its codebook when QUANTIZE. */
static VaeTensor *
to_network (const VaeModel *m, const VaeTensor *latent, gboolean quantize, GError **error)
{
  const gint f = vae_family_factor (m->family);
  VaeTensor *z;

  if (!m->decoder)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s has no decoder"), m->files);
      return NULL;
    }
  if (latent->channels != vae_family_latent_channels (m->family))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the latent has %d channels but model %s (%s) takes %d"), latent->channels,
                   m->family->name, m->files, vae_family_latent_channels (m->family));
      return NULL;
    }
  if (latent->width > VAE_MAX_IMAGE_SIDE / f || latent->height > VAE_MAX_IMAGE_SIDE / f)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("a latent of %d×%d decodes to more than %d pixels a side"), latent->width,
                   latent->height, VAE_MAX_IMAGE_SIDE);
      return NULL;
    }
  if (!vae_check_image_size ((gint64) latent->width * f, (gint64) latent->height * f,
                             "the decoded image", error))
    return NULL;
  if (!vae_tensor_check_finite (latent, "the latent", error) ||
      !(z = vae_tensor_new (latent->channels, latent->height, latent->width, error)))
    return NULL;
  memcpy (z->data, latent->data, vae_tensor_n_elements (z) * sizeof (gfloat));
  from_diffusion (m, z);
  if (m->family->patchify > 1)
    vae_tensor_replace (&z, patchify (z, TRUE, error));
  if (z && quantize && m->codebook && !vae_codebook_quantize (m->codebook, z, error))
    g_clear_pointer (&z, vae_tensor_free);
  return z;
}

VaeTensor *
vae_model_decode_raw_vq (VaeModel *m, const VaeTensor *latent, gboolean force_not_quantize,
                         const VaeRun *run, GError **error)
{
  g_autoptr (VaeTensor) z = to_network (m, latent, !force_not_quantize, error);

  if (!z)
    return NULL;
  return forward (m, m->decoder, z, run, error);
}

VaeTensor *
vae_model_decode_raw (VaeModel *m, const VaeTensor *latent, const VaeRun *run, GError **error)
{
  return vae_model_decode_raw_vq (m, latent, FALSE, run, error);
}

VaeTensor *
vae_model_decode_vq (VaeModel *m, const VaeTensor *latent, gboolean force_not_quantize,
                     const VaeRun *run, GError **error)
{
  VaeTensor *out = vae_model_decode_raw_vq (m, latent, force_not_quantize, run, error);
  gsize      n;
  gfloat     mul, add;

  if (!out)
    return NULL;
  /* before the clamp: NaN would pass it and show as black */
  if (!vae_tensor_check_finite (out, _ ("the decoded image"), error))
    {
      vae_tensor_free (out);
      return NULL;
    }
  n = vae_tensor_n_elements (out);
  pixel_range (m->structure.kind, &mul, &add);
#pragma omp parallel for schedule(static)
  for (gsize i = 0; i < n; i++)
    out->data[i] = CLAMP ((out->data[i] - add) / mul, 0.0f, 1.0f);
  return out;
}

VaeTensor *
vae_model_decode (VaeModel *m, const VaeTensor *latent, const VaeRun *run, GError **error)
{
  return vae_model_decode_vq (m, latent, FALSE, run, error);
}

/* BatchNorm-normalised families (FLUX.2) keep their normalised latents in
 * ComfyUI's files; the others the network's own (Qwen-Image's too: ComfyUI
 * applies latents_mean/std as it samples). */
void
vae_model_latent_to_raw (const VaeModel *m, VaeTensor *latent)
{
  if (!m->bn_mean)
    from_diffusion (m, latent);
}

void
vae_model_latent_from_raw (const VaeModel *m, VaeTensor *latent)
{
  if (!m->bn_mean)
    to_diffusion (m, latent);
}
