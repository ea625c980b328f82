/* Random-weight AutoencoderKL checkpoints from a seed, for tests and
 * benchmarks without PyTorch.  tests/reference/synth_weights.py implements
 * the same generator, so a reference can rebuild identical weights:
 *
 *   splitmix64(x): x += 0x9E3779B97F4A7C15; z = x;
 *                  z = (z ^ z >> 30) · 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) · 0x94D049BB133111EB;
 *                  return z ^ z >> 31
 *   stream  = fnv1a64(tensor name) ^ splitmix64(seed)
 *   u[j]    = (splitmix64(stream + j) >> 40) · 2⁻²³ − 1          exact in float32, in [−1, 1)
 *   weights of convs/projections: u · float32(√(3 / fan_in))     (variance 1/fan_in)
 *   GroupNorm weights, RMS gammas: 1 + 0.1·u; biases: 0.1·u; bn.running_var: 1 + 0.5·u
 *   (float32 arithmetic)
 *
 * Names and shapes are diffusers' AutoencoderKL, AutoencoderKLQwenImage,
 * AutoencoderKLWan (Wan 2.2), AutoencoderDC or AutoencoderKLHunyuanImage.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/vae-synth.h"

#include <math.h>
#include <string.h>

static guint64
splitmix64 (guint64 x)
{
  guint64 z = x + G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);

  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static guint64
fnv1a64 (const gchar *s)
{
  guint64 h = G_GUINT64_CONSTANT (0xcbf29ce484222325);

  for (; *s; s++)
    h = (h ^ (guchar) *s) * G_GUINT64_CONSTANT (0x100000001b3);
  return h;
}

static void
fill (const gchar *name, gint ndim, const gint64 *shape, guint64 seed, gfloat *out, gsize n)
{
  const guint64 stream = fnv1a64 (name) ^ splitmix64 (seed);
  gboolean      is_weight = g_str_has_suffix (name, ".weight");
  gboolean      is_norm = strstr (name, "norm") != NULL;
  gfloat        amp = 0.1f, base = 0.0f;

  if (is_weight && ndim >= 2)
    {
      gint64 fan_in = 1;
      for (gint d = 1; d < ndim; d++)
        fan_in *= shape[d];
      amp = (gfloat) sqrt (3.0 / (gdouble) fan_in);
    }
  else if ((is_weight && is_norm) || g_str_has_suffix (name, ".gamma"))
    base = 1.0f;
  else if (g_str_has_suffix (name, "running_var"))
    base = 1.0f, amp = 0.5f;
#pragma omp parallel for schedule(static)
  for (gsize j = 0; j < n; j++)
    {
      gfloat u = (gfloat) (splitmix64 (stream + j) >> 40) * (1.0f / 8388608.0f) - 1.0f;
      out[j] = base + amp * u;
    }
}

typedef struct
{
  GPtrArray *items; /* VaeSafetensorsItem* */
  guint64    seed;
  gboolean   failed;
  GError   **error;
} Builder;

static void
add_shape (Builder *b, const gchar *name, gint ndim, const gint64 *shape)
{
  VaeSafetensorsItem *item;
  gsize               n = 1;
  gfloat             *data;

  if (b->failed)
    return;
  item = g_new0 (VaeSafetensorsItem, 1);
  item->name = g_strdup (name);
  item->ndim = ndim;
  item->dtype = VAE_DTYPE_F32;
  memcpy (item->shape, shape, ndim * sizeof (gint64));
  for (gint d = 0; d < ndim; d++)
    n *= (gsize) item->shape[d];
  if (!(data = vae_try_alloc_floats (n, name, b->error)))
    {
      b->failed = TRUE;
      g_free ((gchar *) item->name);
      g_free (item);
      return;
    }
  fill (name, ndim, item->shape, b->seed, data, n);
  item->data = data;
  g_ptr_array_add (b->items, item);
}

static void
add (Builder *b, const gchar *name, gint ndim, gint64 d0, gint64 d1, gint64 d2, gint64 d3)
{
  const gint64 shape[] = { d0, d1, d2, d3 };

  add_shape (b, name, ndim, shape);
}

static void
add_conv (Builder *b, const gchar *prefix, gint out, gint in, gint k)
{
  g_autofree gchar *w = g_strdup_printf ("%s.weight", prefix);
  g_autofree gchar *bias = g_strdup_printf ("%s.bias", prefix);

  if (k == 0) /* attention projections are 2-D in diffusers */
    add (b, w, 2, out, in, 0, 0);
  else
    add (b, w, 4, out, in, k, k);
  add (b, bias, 1, out, 0, 0, 0);
}

static void
add_norm (Builder *b, const gchar *prefix, gint channels)
{
  g_autofree gchar *w = g_strdup_printf ("%s.weight", prefix);
  g_autofree gchar *bias = g_strdup_printf ("%s.bias", prefix);

  add (b, w, 1, channels, 0, 0, 0);
  add (b, bias, 1, channels, 0, 0, 0);
}

static void
add_resnet (Builder *b, const gchar *prefix, gint in, gint out)
{
  g_autofree gchar *n1 = g_strdup_printf ("%s.norm1", prefix),
                   *c1 = g_strdup_printf ("%s.conv1", prefix);
  g_autofree gchar *n2 = g_strdup_printf ("%s.norm2", prefix),
                   *c2 = g_strdup_printf ("%s.conv2", prefix);
  g_autofree gchar *sc = g_strdup_printf ("%s.conv_shortcut", prefix);

  add_norm (b, n1, in);
  add_conv (b, c1, out, in, 3);
  add_norm (b, n2, out);
  add_conv (b, c2, out, out, 3);
  if (in != out)
    add_conv (b, sc, out, in, 1);
}

/* A mid block: resnet, attention, resnet.  AutoencoderKL names the
 * attention's norm group_norm and its output to_out.0, its projections
 * Linear ([C, C]: K = 0); HunyuanImage's names them norm and proj, 1×1
 * Conv2d (K = 1). */
static void
add_mid (Builder *b, const gchar *half, gint c, const gchar *norm, const gchar *out, gint k)
{
  const gchar      *parts[] = { "to_q", "to_k", "to_v", out };
  g_autofree gchar *r0 = g_strdup_printf ("%s.mid_block.resnets.0", half);
  g_autofree gchar *r1 = g_strdup_printf ("%s.mid_block.resnets.1", half);
  g_autofree gchar *n = g_strdup_printf ("%s.mid_block.attentions.0.%s", half, norm);

  add_resnet (b, r0, c, c);
  add_norm (b, n, c);
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    {
      g_autofree gchar *p = g_strdup_printf ("%s.mid_block.attentions.0.%s", half, parts[i]);
      add_conv (b, p, c, c, k);
    }
  add_resnet (b, r1, c, c);
}

static void
add_encoder (Builder *b, const VaeSynthConfig *cfg)
{
  gint c = cfg->widths[0], last = cfg->widths[cfg->n_levels - 1];

  add_conv (b, "encoder.conv_in", c, 3, 3);
  for (gint i = 0; i < cfg->n_levels; i++)
    {
      for (gint j = 0; j < cfg->layers; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d.resnets.%d", i, j);
          add_resnet (b, p, c, cfg->widths[i]);
          c = cfg->widths[i];
        }
      if (i < cfg->n_levels - 1)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d.downsamplers.0.conv", i);
          add_conv (b, p, c, c, 3);
        }
    }
  add_mid (b, "encoder", last, "group_norm", "to_out.0", 0);
  add_norm (b, "encoder.conv_norm_out", last);
  add_conv (b, "encoder.conv_out", 2 * cfg->latent_channels, last, 3);
  if (cfg->quant_convs)
    add_conv (b, "quant_conv", 2 * cfg->latent_channels, 2 * cfg->latent_channels, 1);
}

static void
add_decoder (Builder *b, const VaeSynthConfig *cfg)
{
  gint c = cfg->widths[cfg->n_levels - 1];

  if (cfg->quant_convs)
    add_conv (b, "post_quant_conv", cfg->latent_channels, cfg->latent_channels, 1);
  add_conv (b, "decoder.conv_in", c, cfg->latent_channels, 3);
  add_mid (b, "decoder", c, "group_norm", "to_out.0", 0);
  for (gint i = 0; i < cfg->n_levels; i++)
    {
      gint out = cfg->widths[cfg->n_levels - 1 - i];
      for (gint j = 0; j <= cfg->layers; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.resnets.%d", i, j);
          add_resnet (b, p, c, out);
          c = out;
        }
      if (i < cfg->n_levels - 1)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.upsamplers.0.conv", i);
          add_conv (b, p, c, c, 3);
        }
    }
  add_norm (b, "decoder.conv_norm_out", c);
  add_conv (b, "decoder.conv_out", 3, c, 3);
}

/* ---- Qwen-Image (AutoencoderKLQwenImage) ---- */

/* A causal 3-D conv, kernel KT × K × K (diffusers' QwenImageCausalConv3d). */
static void
add_conv3d (Builder *b, const gchar *prefix, gint out, gint in, gint kt, gint k)
{
  g_autofree gchar *w = g_strdup_printf ("%s.weight", prefix);
  g_autofree gchar *bias = g_strdup_printf ("%s.bias", prefix);
  const gint64      shape[] = { out, in, kt, k, k };

  add_shape (b, w, 5, shape);
  add (b, bias, 1, out, 0, 0, 0);
}

/* An RMS norm's gamma, [C, 1, 1, 1] (images=False) or [C, 1, 1]. */
static void
add_gamma (Builder *b, const gchar *prefix, gint channels, gint ndim)
{
  g_autofree gchar *name = g_strdup_printf ("%s.gamma", prefix);
  const gint64      shape[] = { channels, 1, 1, 1 };

  add_shape (b, name, ndim, shape);
}

static void
add_causal_resnet (Builder *b, const gchar *prefix, gint in, gint out)
{
  g_autofree gchar *n1 = g_strdup_printf ("%s.norm1", prefix),
                   *c1 = g_strdup_printf ("%s.conv1", prefix);
  g_autofree gchar *n2 = g_strdup_printf ("%s.norm2", prefix),
                   *c2 = g_strdup_printf ("%s.conv2", prefix);
  g_autofree gchar *sc = g_strdup_printf ("%s.conv_shortcut", prefix);

  add_gamma (b, n1, in, 4);
  add_conv3d (b, c1, out, in, 3, 3);
  add_gamma (b, n2, out, 4);
  add_conv3d (b, c2, out, out, 3, 3);
  if (in != out)
    add_conv3d (b, sc, out, in, 1, 1);
}

static void
add_causal_mid (Builder *b, const gchar *half, gint c)
{
  g_autofree gchar *r0 = g_strdup_printf ("%s.mid_block.resnets.0", half);
  g_autofree gchar *r1 = g_strdup_printf ("%s.mid_block.resnets.1", half);
  g_autofree gchar *norm = g_strdup_printf ("%s.mid_block.attentions.0.norm", half);
  g_autofree gchar *qkv = g_strdup_printf ("%s.mid_block.attentions.0.to_qkv", half);
  g_autofree gchar *proj = g_strdup_printf ("%s.mid_block.attentions.0.proj", half);

  add_causal_resnet (b, r0, c, c);
  add_gamma (b, norm, c, 3);
  add_conv (b, qkv, 3 * c, c, 1);
  add_conv (b, proj, c, c, 1);
  add_causal_resnet (b, r1, c, c);
}

/* A 2-D resampler's conv, and the time conv of a 3-D one (unused on one
 * frame, present in the checkpoints). */
static void
add_resample (Builder *b, const gchar *prefix, gint out, gint in, gint time_out)
{
  g_autofree gchar *conv = g_strdup_printf ("%s.resample.1", prefix);
  g_autofree gchar *time = g_strdup_printf ("%s.time_conv", prefix);

  add_conv (b, conv, out, in, 3);
  if (time_out)
    add_conv3d (b, time, time_out, in, 3, 1);
}

/* diffusers' temperal_downsample: every level but the first and the last. */
static gboolean
temporal_level (const VaeSynthConfig *cfg, gint i)
{
  return i > 0 && i < cfg->n_levels - 1;
}

static void
add_qwen_encoder (Builder *b, const VaeSynthConfig *cfg)
{
  const gint last = cfg->widths[cfg->n_levels - 1];
  gint       c = cfg->widths[0], k = 0;

  add_conv3d (b, "encoder.conv_in", c, 3, 3, 3);
  for (gint i = 0; i < cfg->n_levels; i++)
    {
      for (gint j = 0; j < cfg->layers; j++, k++)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d", k);
          add_causal_resnet (b, p, c, cfg->widths[i]);
          c = cfg->widths[i];
        }
      if (i < cfg->n_levels - 1)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d", k++);
          add_resample (b, p, c, c, temporal_level (cfg, i) ? c : 0);
        }
    }
  add_causal_mid (b, "encoder", last);
  add_gamma (b, "encoder.norm_out", last, 4);
  add_conv3d (b, "encoder.conv_out", 2 * cfg->latent_channels, last, 3, 3);
  add_conv3d (b, "quant_conv", 2 * cfg->latent_channels, 2 * cfg->latent_channels, 1, 1);
}

/* Level I's resnets take I > 0 the half width of the upsampler before. */
static void
add_qwen_decoder (Builder *b, const VaeSynthConfig *cfg)
{
  const gint n = cfg->n_levels;
  gint       c = cfg->widths[n - 1];

  add_conv3d (b, "post_quant_conv", cfg->latent_channels, cfg->latent_channels, 1, 1);
  add_conv3d (b, "decoder.conv_in", c, cfg->latent_channels, 3, 3);
  add_causal_mid (b, "decoder", c);
  for (gint i = 0; i < n; i++)
    {
      const gint out = cfg->widths[n - 1 - i];
      for (gint j = 0; j <= cfg->layers; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.resnets.%d", i, j);
          add_causal_resnet (b, p, c, out);
          c = out;
        }
      if (i < n - 1)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.upsamplers.0", i);
          add_resample (b, p, out / 2, out, temporal_level (cfg, n - 2 - i) ? 2 * out : 0);
          c = out / 2;
        }
    }
  add_gamma (b, "decoder.norm_out", c, 4);
  add_conv3d (b, "decoder.conv_out", 3, c, 3, 3);
}

/* Wan 2.2 (AutoencoderKLWan, is_residual, patch_size 2): levels of
 * resnets and one resampler each (down_blocks.I.downsampler,
 * up_blocks.I.upsampler, keeping the width), 12 channels on the image
 * side, the decoder's own widths. */
static void
add_wan22_encoder (Builder *b, const VaeSynthConfig *cfg)
{
  const gint last = cfg->widths[cfg->n_levels - 1];
  gint       c = cfg->widths[0];

  add_conv3d (b, "encoder.conv_in", c, 12, 3, 3);
  for (gint i = 0; i < cfg->n_levels; i++)
    {
      for (gint j = 0; j < cfg->layers; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d.resnets.%d", i, j);
          add_causal_resnet (b, p, c, cfg->widths[i]);
          c = cfg->widths[i];
        }
      if (i < cfg->n_levels - 1)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d.downsampler", i);
          add_resample (b, p, c, c, temporal_level (cfg, i) ? c : 0);
        }
    }
  add_causal_mid (b, "encoder", last);
  add_gamma (b, "encoder.norm_out", last, 4);
  add_conv3d (b, "encoder.conv_out", 2 * cfg->latent_channels, last, 3, 3);
  add_conv3d (b, "quant_conv", 2 * cfg->latent_channels, 2 * cfg->latent_channels, 1, 1);
}

static void
add_wan22_decoder (Builder *b, const VaeSynthConfig *cfg)
{
  const gint  n = cfg->n_levels;
  const gint *widths = cfg->decoder_widths;
  gint        c = widths[n - 1];

  add_conv3d (b, "post_quant_conv", cfg->latent_channels, cfg->latent_channels, 1, 1);
  add_conv3d (b, "decoder.conv_in", c, cfg->latent_channels, 3, 3);
  add_causal_mid (b, "decoder", c);
  for (gint i = 0; i < n; i++)
    {
      const gint out = widths[n - 1 - i];
      for (gint j = 0; j <= cfg->layers; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.resnets.%d", i, j);
          add_causal_resnet (b, p, c, out);
          c = out;
        }
      if (i < n - 1)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.upsampler", i);
          add_resample (b, p, out, out, temporal_level (cfg, n - 2 - i) ? 2 * out : 0);
        }
    }
  add_gamma (b, "decoder.norm_out", c, 4);
  add_conv3d (b, "decoder.conv_out", 12, c, 3, 3);
}

/* ---- end Qwen-Image ---- */

/* ---- DC-AE (AutoencoderDC) ---- */

#define DCAE_HEAD_DIM 32

/* A ResBlock, or an EfficientViT block (linear attention, GLUMBConv). */
static void
add_dcae_block (Builder *b, const gchar *prefix, gint c, gboolean vit)
{
  g_autofree gchar *conv1 = g_strdup_printf ("%s.conv1", prefix),
                   *conv2 = g_strdup_printf ("%s.conv2.weight", prefix),
                   *norm = g_strdup_printf ("%s.norm", prefix);
  g_autofree gchar *q = g_strdup_printf ("%s.attn.to_q.weight", prefix),
                   *k = g_strdup_printf ("%s.attn.to_k.weight", prefix),
                   *v = g_strdup_printf ("%s.attn.to_v.weight", prefix),
                   *ms_in = g_strdup_printf ("%s.attn.to_qkv_multiscale.0.proj_in.weight", prefix),
                   *ms_out =
                       g_strdup_printf ("%s.attn.to_qkv_multiscale.0.proj_out.weight", prefix),
                   *out = g_strdup_printf ("%s.attn.to_out.weight", prefix),
                   *attn_norm = g_strdup_printf ("%s.attn.norm_out", prefix);
  g_autofree gchar *inverted = g_strdup_printf ("%s.conv_out.conv_inverted", prefix),
                   *depth = g_strdup_printf ("%s.conv_out.conv_depth", prefix),
                   *point = g_strdup_printf ("%s.conv_out.conv_point.weight", prefix),
                   *mb_norm = g_strdup_printf ("%s.conv_out.norm", prefix);

  if (!vit)
    {
      add_conv (b, conv1, c, c, 3);
      add (b, conv2, 4, c, c, 3, 3);
      add_norm (b, norm, c);
      return;
    }
  add (b, q, 2, c, c, 0, 0);
  add (b, k, 2, c, c, 0, 0);
  add (b, v, 2, c, c, 0, 0);
  add (b, ms_in, 4, 3 * c, 1, 5, 5);
  add (b, ms_out, 4, 3 * c, DCAE_HEAD_DIM, 1, 1);
  add (b, out, 2, c, 2 * c, 0, 0);
  add_norm (b, attn_norm, c);
  add_conv (b, inverted, 8 * c, c, 1);
  add_conv (b, depth, 8 * c, 1, 3);
  add (b, point, 4, c, 4 * c, 1, 1);
  add_norm (b, mb_norm, c);
}

static void
add_dcae_encoder (Builder *b, const VaeSynthConfig *cfg)
{
  const gint n = cfg->n_levels;

  add_conv (b, "encoder.conv_in", cfg->widths[0], 3, 3);
  for (gint i = 0; i < n; i++)
    {
      const gint c = cfg->widths[i];
      for (gint j = 0; j < cfg->encoder_layers[i]; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d.%d", i, j);
          add_dcae_block (b, p, c, i >= cfg->first_vit);
        }
      if (i < n - 1)
        {
          g_autofree gchar *p =
              g_strdup_printf ("encoder.down_blocks.%d.%d.conv", i, cfg->encoder_layers[i]);
          add_conv (b, p, cfg->widths[i + 1], c, 3);
        }
    }
  add_conv (b, "encoder.conv_out", cfg->latent_channels, cfg->widths[n - 1], 3);
}

static void
add_dcae_decoder (Builder *b, const VaeSynthConfig *cfg)
{
  const gint n = cfg->n_levels;

  add_conv (b, "decoder.conv_in", cfg->widths[n - 1], cfg->latent_channels, 3);
  for (gint i = 0; i < n; i++)
    {
      const gint c = cfg->widths[i], first = i < n - 1 ? 1 : 0;
      if (i < n - 1)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.0.conv", i);
          add_conv (b, p, c, cfg->widths[i + 1], 3);
        }
      for (gint j = 0; j < cfg->decoder_layers[i]; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.%d", i, first + j);
          add_dcae_block (b, p, c, i >= cfg->first_vit);
        }
    }
  add_norm (b, "decoder.norm_out", cfg->widths[0]);
  add_conv (b, "decoder.conv_out", 3, cfg->widths[0], 3);
}

/* ---- end DC-AE ---- */

/* ---- HunyuanImage 2.1 (AutoencoderKLHunyuanImage) ---- */

/* Flat lists of blocks: LAYERS resnets per level (the decoder one more),
 * a resampler conv after each level but the last (down: to a quarter of the
 * next width, up: to four times it). */
static void
add_hunyuan (Builder *b, const VaeSynthConfig *cfg)
{
  const gint n = cfg->n_levels, last = cfg->widths[n - 1];
  gint       k = 0;

  add_conv (b, "encoder.conv_in", cfg->widths[0], 3, 3);
  for (gint i = 0; i < n; i++)
    {
      for (gint j = 0; j < cfg->layers; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d", k++);
          add_resnet (b, p, cfg->widths[i], cfg->widths[i]);
        }
      if (i < n - 1)
        {
          g_autofree gchar *p = g_strdup_printf ("encoder.down_blocks.%d.conv", k++);
          add_conv (b, p, cfg->widths[i + 1] / 4, cfg->widths[i], 3);
        }
    }
  add_mid (b, "encoder", last, "norm", "proj", 1);
  add_norm (b, "encoder.norm_out", last);
  add_conv (b, "encoder.conv_out", 2 * cfg->latent_channels, last, 3);

  add_conv (b, "decoder.conv_in", last, cfg->latent_channels, 3);
  add_mid (b, "decoder", last, "norm", "proj", 1);
  k = 0;
  for (gint i = n - 1; i >= 0; i--)
    {
      for (gint j = 0; j <= cfg->layers; j++)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d", k++);
          add_resnet (b, p, cfg->widths[i], cfg->widths[i]);
        }
      if (i > 0)
        {
          g_autofree gchar *p = g_strdup_printf ("decoder.up_blocks.%d.conv", k++);
          add_conv (b, p, 4 * cfg->widths[i - 1], cfg->widths[i], 3);
        }
    }
  add_norm (b, "decoder.norm_out", cfg->widths[0]);
  add_conv (b, "decoder.conv_out", 3, cfg->widths[0], 3);
}

/* ---- end HunyuanImage ---- */

static void
item_free (gpointer p)
{
  VaeSafetensorsItem *item = p;

  g_free ((gchar *) item->name);
  g_free ((gfloat *) item->data);
  g_free (item);
}

gboolean
vae_synth_kl (const gchar *path, const VaeSynthConfig *cfg, guint64 seed, GError **error)
{
  Builder             b = { g_ptr_array_new_with_free_func (item_free), seed, FALSE, error };
  VaeSafetensorsItem *flat;
  gboolean            ok;

  g_return_val_if_fail (cfg->n_levels >= 1 && cfg->n_levels <= 8, FALSE);
  if (cfg->kind == VAE_KIND_QWEN_IMAGE && cfg->patchify)
    {
      add_wan22_encoder (&b, cfg);
      add_wan22_decoder (&b, cfg);
    }
  else if (cfg->kind == VAE_KIND_QWEN_IMAGE)
    {
      add_qwen_encoder (&b, cfg);
      add_qwen_decoder (&b, cfg);
    }
  else if (cfg->kind == VAE_KIND_DCAE)
    {
      add_dcae_encoder (&b, cfg);
      add_dcae_decoder (&b, cfg);
    }
  else if (cfg->kind == VAE_KIND_HUNYUAN_IMAGE)
    add_hunyuan (&b, cfg);
  else
    {
      add_encoder (&b, cfg);
      add_decoder (&b, cfg);
    }
  if (cfg->batch_norm)
    {
      add (&b, "bn.running_mean", 1, 4 * cfg->latent_channels, 0, 0, 0);
      add (&b, "bn.running_var", 1, 4 * cfg->latent_channels, 0, 0, 0);
    }
  if (b.failed)
    {
      g_ptr_array_unref (b.items);
      return FALSE;
    }
  flat = g_new (VaeSafetensorsItem, b.items->len);
  for (guint i = 0; i < b.items->len; i++)
    flat[i] = *(VaeSafetensorsItem *) b.items->pdata[i];
  ok = vae_safetensors_write (path, flat, b.items->len, NULL, error);
  g_free (flat);
  g_ptr_array_unref (b.items);
  return ok;
}

gboolean
vae_synth_config_for_family (const VaeFamily *family, VaeSynthConfig *cfg, GError **error)
{
  static const gint sd_widths[] = { 128, 256, 512, 512 };
  static const gint qwen_widths[] = { 96, 192, 384, 384 }; /* base_dim 96, dim_mult 1, 2, 4, 4 */

  if (family->kind == VAE_KIND_TINY)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("synthetic weights are made for AutoencoderKL, Qwen-Image and DC-AE "
                      "families only, not '%s'"),
                   family->name);
      return FALSE;
    }
  /* all five KL families share the SD architecture (VAE-SPEC.md) */
  memset (cfg, 0, sizeof *cfg);
  cfg->kind = family->kind;
  if (family->kind == VAE_KIND_DCAE) /* Sana's f32c32 */
    {
      static const VaeSynthConfig sana = { VAE_KIND_DCAE,
                                           6,
                                           { 128, 256, 512, 512, 1024, 1024 },
                                           0,
                                           32,
                                           FALSE,
                                           FALSE,
                                           { 2, 2, 2, 3, 3, 3 },
                                           { 3, 3, 3, 3, 3, 3 },
                                           3 };
      *cfg = sana;
      cfg->latent_channels = family->raw_channels;
      return TRUE;
    }
  if (family->kind == VAE_KIND_HUNYUAN_IMAGE) /* block_out_channels of HunyuanImage 2.1 */
    {
      static const gint hy_widths[] = { 128, 256, 512, 512, 1024, 1024 };
      cfg->n_levels = G_N_ELEMENTS (hy_widths);
      memcpy (cfg->widths, hy_widths, sizeof hy_widths);
      cfg->layers = 2;
      cfg->latent_channels = family->raw_channels;
      return TRUE;
    }
  cfg->n_levels = G_N_ELEMENTS (sd_widths);
  memcpy (cfg->widths, family->kind == VAE_KIND_QWEN_IMAGE ? qwen_widths : sd_widths,
          sizeof sd_widths);
  cfg->layers = 2;
  if (family->kind == VAE_KIND_QWEN_IMAGE && family->raw_channels == 48) /* Wan 2.2 */
    {
      static const gint wan22_widths[] = { 160, 320, 640, 640 }; /* base_dim 160 */
      static const gint wan22_decoder_widths[] = { 256, 512, 1024,
                                                   1024 }; /* decoder_base_dim 256 */
      memcpy (cfg->widths, wan22_widths, sizeof wan22_widths);
      memcpy (cfg->decoder_widths, wan22_decoder_widths, sizeof wan22_decoder_widths);
      cfg->patchify = TRUE;
    }
  cfg->latent_channels = family->raw_channels;
  cfg->quant_convs = family->quant_convs;
  cfg->batch_norm = family->batch_norm;
  return TRUE;
}

gboolean
vae_synth_family (const gchar *family, guint64 seed, const gchar *path, GError **error)
{
  const VaeFamily *f = vae_family_lookup (family);
  VaeSynthConfig   cfg;

  if (!f)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_NOT_FOUND, _ ("unknown family '%s'"), family);
      return FALSE;
    }
  return vae_synth_config_for_family (f, &cfg, error) && vae_synth_kl (path, &cfg, seed, error);
}
