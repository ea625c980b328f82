/* AutoencoderKL (SD1/2, SDXL, SD3, FLUX.1, FLUX.2) and VQModel (the same
 * halves around a codebook: diffusers' VQModel, LDM's vq-f4/vq-f8): weights
 * in diffusers or LDM/ComfyUI names, widths and depths read from the
 * weights themselves.  One frame of Qwen-Image's (Wan 2.1's) causal 3-D VAE
 * is the same graph with RMS norms; qwen.c maps its names, and the loaders
 * below take its 3-D kernels, gamma-only norms and fused q/k/v (see qwen.c).
 * Wan 2.2's adds a patchified image side and a fixed shortcut around each
 * level (wan22.c).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/nets.h"

#include <stdio.h>
#include <string.h>

#define KL_GROUPS 32
#define KL_EPS    1e-6f

typedef struct
{
  VaeNorm  norm1, norm2;
  VaeConv  conv1, conv2, shortcut;
  gboolean has_shortcut;
} Resnet;

/* One resnet of a level, with the attention that follows it in levels at
 * the resolutions an LDM config lists in attn_resolutions (kl-f16, kl-f32;
 * diffusers' AttnDownEncoderBlock2D / AttnUpDecoderBlock2D). */
typedef struct
{
  Resnet       resnet;
  gboolean     has_attention;
  VaeAttention attention;
} Layer;

/* A resolution level: its layers, then a down- or upsampler unless it is
 * the last level; Wan 2.2's adds its input, regrouped, to its output. */
typedef struct
{
  gint     n_layers;
  Layer   *layers;
  gboolean has_resample;
  VaeConv  resample;
  gboolean has_skip;
  VaeConv  skip; /* AvgDown3D, or DupUp3D before its pixel shuffle (wan22.c) */
} Level;

typedef struct
{
  VaeNet       net;
  gboolean     decoder;
  gboolean     has_quant; /* encoder: quant_conv after; decoder: post_quant_conv before */
  VaeConv      quant;
  VaeConv      conv_in;
  gint         n_levels;
  Level       *levels; /* diffusers order: as applied */
  Resnet       mid[2];
  gboolean     has_attention;
  VaeAttention attention;
  VaeNorm      norm_out;
  VaeConv      conv_out;
  gboolean     patchify; /* Wan 2.2: the image as 12 channels at 1/2 (wan22.c) */
  VaeConv      patch;    /* the encoder's patchify */
} KlNet;

/* Canonical (diffusers) name → file entry. */
typedef struct
{
  const VaeWeights *weights;
  GHashTable       *names;
  gboolean          causal3d; /* Qwen-Image / Wan 2.1 */
} KlNames;

/* ---- names --------------------------------------------------------------- */

static const gchar *const renames[][2] = {
  { ".mid.block_1.", ".mid_block.resnets.0." },
  { ".mid.block_2.", ".mid_block.resnets.1." },
  { ".mid.attn_1.", ".mid_block.attentions.0." },
  { ".nin_shortcut.", ".conv_shortcut." },
  { "encoder.norm_out.", "encoder.conv_norm_out." },
  { "decoder.norm_out.", "decoder.conv_norm_out." },
};

/* The parts of an attention block, LDM's and old diffusers' names first. */
static const gchar *const attention_parts[][2] = {
  { "norm.", "group_norm." },    { "q.", "to_q." },     { "k.", "to_k." },   { "v.", "to_v." },
  { "proj_out.", "to_out.0." },  { "query.", "to_q." }, { "key.", "to_k." }, { "value.", "to_v." },
  { "proj_attn.", "to_out.0." },
};

static gchar *
replace_once (gchar *name, const gchar *from, const gchar *to)
{
  gchar *at = strstr (name, from);
  gchar *out;

  if (!at)
    return name;
  out = g_strdup_printf ("%.*s%s%s", (int) (at - name), name, to, at + strlen (from));
  g_free (name);
  return out;
}

/* LDM numbers decoder levels from the top (up.0 is the last applied). */
static gint
count_ldm_up_levels (const VaeWeights *weights)
{
  gint n = 0;

  for (guint i = 0; i < vae_weights_count (weights); i++)
    {
      gint level;
      if (sscanf (vae_weights_name (weights, i), "decoder.up.%d.", &level) == 1 && level >= 0 &&
          level < 1024)
        n = MAX (n, level + 1);
    }
  return n;
}

/* NAME with its first LEN characters replaced by PREFIX (consumed). */
static gchar *
with_prefix (gchar *name, gint len, gchar *prefix)
{
  gchar *out = g_strconcat (prefix, name + len, NULL);

  g_free (prefix);
  g_free (name);
  return out;
}

/* An LDM level name (encoder.down.I.*, decoder.up.I.*) in diffusers' terms. */
static gchar *
canonical_level (gchar *out, gint n_up)
{
  gint a, b, len = 0;

  if (sscanf (out, "encoder.down.%d.block.%d.%n", &a, &b, &len) == 2 && len > 0)
    return with_prefix (out, len, g_strdup_printf ("encoder.down_blocks.%d.resnets.%d.", a, b));
  if (sscanf (out, "encoder.down.%d.attn.%d.%n", &a, &b, &len) == 2 && len > 0)
    return with_prefix (out, len, g_strdup_printf ("encoder.down_blocks.%d.attentions.%d.", a, b));
  if (sscanf (out, "encoder.down.%d.downsample.conv.%n", &a, &len) == 1 && len > 0)
    return with_prefix (out, len,
                        g_strdup_printf ("encoder.down_blocks.%d.downsamplers.0.conv.", a));
  if (sscanf (out, "decoder.up.%d.block.%d.%n", &a, &b, &len) == 2 && len > 0 && a < n_up)
    return with_prefix (out, len,
                        g_strdup_printf ("decoder.up_blocks.%d.resnets.%d.", n_up - 1 - a, b));
  if (sscanf (out, "decoder.up.%d.attn.%d.%n", &a, &b, &len) == 2 && len > 0 && a < n_up)
    return with_prefix (out, len,
                        g_strdup_printf ("decoder.up_blocks.%d.attentions.%d.", n_up - 1 - a, b));
  if (sscanf (out, "decoder.up.%d.upsample.conv.%n", &a, &len) == 1 && len > 0 && a < n_up)
    return with_prefix (out, len,
                        g_strdup_printf ("decoder.up_blocks.%d.upsamplers.0.conv.", n_up - 1 - a));
  return out;
}

static gchar *
canonical_name (const gchar *name, gint n_up)
{
  gchar *out = g_strdup (name);
  gchar *at;

  if (g_str_has_prefix (out, "encoder.quant_conv."))
    out = replace_once (out, "encoder.quant_conv.", "quant_conv.");
  if (g_str_has_prefix (out, "decoder.post_quant_conv."))
    out = replace_once (out, "decoder.post_quant_conv.", "post_quant_conv.");
  out = canonical_level (out, n_up);
  for (guint i = 0; i < G_N_ELEMENTS (renames); i++)
    out = replace_once (out, renames[i][0], renames[i][1]);
  /* what follows ".attentions.J." */
  if ((at = strstr (out, ".attentions.")) && (at = strchr (at + strlen (".attentions."), '.')))
    for (guint i = 0; i < G_N_ELEMENTS (attention_parts); i++)
      if (g_str_has_prefix (at + 1, attention_parts[i][0]))
        {
          gchar *renamed =
              g_strdup_printf ("%.*s%s%s", (int) (at + 1 - out), out, attention_parts[i][1],
                               at + 1 + strlen (attention_parts[i][0]));
          g_free (out);
          return renamed;
        }
  return out;
}

static void
names_init (KlNames *names, const VaeWeights *weights)
{
  gint n_up = count_ldm_up_levels (weights);

  names->weights = weights;
  if ((names->causal3d = vae_qwen_detect (weights)))
    {
      names->names = vae_qwen_names (weights);
      return;
    }
  names->names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < vae_weights_count (weights); i++)
    {
      const gchar *name = vae_weights_name (weights, i);
      g_hash_table_insert (names->names, canonical_name (name, n_up),
                           (gpointer) vae_weights_lookup (weights, name));
    }
}

static const VaeWeightEntry *find (const KlNames *names, const gchar *format, ...)
    G_GNUC_PRINTF (2, 3);

static const VaeWeightEntry *
find (const KlNames *names, const gchar *format, ...)
{
  g_autofree gchar *name = NULL;
  va_list           args;

  va_start (args, format);
  name = g_strdup_vprintf (format, args);
  va_end (args);
  return g_hash_table_lookup (names->names, name);
}

gboolean
vae_kl_detect (const VaeWeights *weights)
{
  return vae_weights_lookup (weights, "encoder.conv_in.weight") ||
         vae_weights_lookup (weights, "decoder.conv_in.weight") || vae_qwen_detect (weights);
}

/* ---- loading ------------------------------------------------------------- */

static gboolean
bad_shape (const KlNames *names, const VaeWeightEntry *e, const gchar *prefix, const gchar *want,
           GError **error)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: tensor '%s' (for %s) should be %s"),
               vae_weights_get_path (names->weights), e ? e->name : prefix, prefix, want);
  return FALSE;
}

static gfloat *
get (const KlNames *names, const VaeWeightEntry *e, GError **error)
{
  return vae_weights_get_float (names->weights, e->name, NULL, error);
}

/* A conv from PREFIX.weight ([o,i,k,k], or [o,i] for attention projections)
 * and the optional PREFIX.bias. */
static gboolean
load_conv (const KlNames *names, const gchar *prefix, gint in_channels, gint stride, gint pad_lt,
           gint pad_rb, VaeConv *conv, GError **error)
{
  const VaeWeightEntry *w = find (names, "%s.weight", prefix);
  const VaeWeightEntry *b = find (names, "%s.bias", prefix);

  if (!w)
    return vae_weights_missing_weight (names->weights, prefix, error);
  if (!((w->ndim == 4 && w->shape[2] == w->shape[3] && w->shape[2] % 2 == 1) || w->ndim == 2 ||
        (names->causal3d && w->ndim == 5 && w->shape[2] % 2 == 1 && w->shape[2] <= 15 &&
         w->shape[3] == w->shape[4] && w->shape[3] % 2 == 1)) ||
      w->shape[0] < 1 || w->shape[0] > 65536 || (in_channels > 0 && w->shape[1] != in_channels))
    {
      g_autofree gchar *want = g_strdup_printf (
          names->causal3d ? "[out, %d, (t,) k, k] with odd t and k" : "[out, %d, k, k] with odd k",
          in_channels);
      return bad_shape (names, w, prefix, want, error);
    }
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return bad_shape (names, b, prefix, "[out]", error);
  conv->out_channels = (gint) w->shape[0];
  conv->in_channels = (gint) w->shape[1];
  conv->kernel = w->ndim >= 4 ? (gint) w->shape[w->ndim - 1] : 1;
  conv->stride = stride;
  if (pad_lt < 0) /* "same" padding */
    pad_lt = pad_rb = conv->kernel / 2;
  conv->pad_top = conv->pad_left = pad_lt;
  conv->pad_bottom = conv->pad_right = pad_rb;
  conv->cache = vae_layer_cache_new ();
  if (!(conv->weight = get (names, w, error)))
    return FALSE;
  if (w->ndim == 5) /* the time slice that meets the one frame (qwen.c) */
    {
      gfloat *w3 = conv->weight;
      conv->weight = vae_causal_frame_kernel (w3, conv->out_channels, conv->in_channels,
                                              (gint) w->shape[2], conv->kernel, conv->kernel);
      g_free (w3);
    }
  return !b || (conv->bias = get (names, b, error)) != NULL;
}

static gboolean
load_same_conv (const KlNames *names, const gchar *prefix, gint in_channels, VaeConv *conv,
                GError **error)
{
  return load_conv (names, prefix, in_channels, 1, -1, -1, conv, error);
}

/* ---- RMS norm ---- */

/* Qwen-Image's RMS norm: gamma alone, shaped [C] or [C, 1, 1(, 1)]. */
static gboolean
load_rms_norm (const KlNames *names, const gchar *prefix, gint channels, VaeNorm *norm,
               GError **error)
{
  const VaeWeightEntry *w = find (names, "%s.weight", prefix);

  if (!w || w->ndim < 1 || w->ndim > 4 || w->shape[0] != channels ||
      w->n_elements != (gsize) channels)
    {
      g_autofree gchar *want =
          g_strdup_printf ("gamma of [%d] or [%d, 1, 1(, 1)]", channels, channels);
      return bad_shape (names, w, prefix, want, error);
    }
  norm->kind = VAE_NORM_RMS;
  norm->channels = channels;
  norm->groups = 1;
  norm->eps = 0.0f;
  norm->cache = vae_layer_cache_new ();
  return (norm->gamma = get (names, w, error)) != NULL;
}

/* ---- end RMS norm ---- */

static gboolean
load_norm (const KlNames *names, const gchar *prefix, gint channels, VaeNorm *norm, GError **error)
{
  const VaeWeightEntry *w = find (names, "%s.weight", prefix);
  const VaeWeightEntry *b = find (names, "%s.bias", prefix);

  if (names->causal3d)
    return load_rms_norm (names, prefix, channels, norm, error);
  if (!w || !b || w->ndim != 1 || b->ndim != 1 || w->shape[0] != channels ||
      b->shape[0] != channels)
    {
      g_autofree gchar *want = g_strdup_printf ("weight and bias of [%d]", channels);
      return bad_shape (names, w, prefix, want, error);
    }
  if (channels % KL_GROUPS)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: %s has %d channels, not a multiple of %d groups"),
                   vae_weights_get_path (names->weights), prefix, channels, KL_GROUPS);
      return FALSE;
    }
  norm->channels = channels;
  norm->groups = KL_GROUPS;
  norm->eps = KL_EPS;
  norm->cache = vae_layer_cache_new ();
  return (norm->gamma = get (names, w, error)) && (norm->beta = get (names, b, error));
}

static gboolean
load_resnet (const KlNames *names, const gchar *prefix, gint in_channels, Resnet *r, GError **error)
{
  g_autofree gchar *norm1 = g_strdup_printf ("%s.norm1", prefix);
  g_autofree gchar *conv1 = g_strdup_printf ("%s.conv1", prefix);
  g_autofree gchar *norm2 = g_strdup_printf ("%s.norm2", prefix);
  g_autofree gchar *conv2 = g_strdup_printf ("%s.conv2", prefix);
  g_autofree gchar *shortcut = g_strdup_printf ("%s.conv_shortcut", prefix);

  if (!load_norm (names, norm1, in_channels, &r->norm1, error) ||
      !load_same_conv (names, conv1, in_channels, &r->conv1, error) ||
      !load_norm (names, norm2, r->conv1.out_channels, &r->norm2, error) ||
      !load_same_conv (names, conv2, r->conv1.out_channels, &r->conv2, error))
    return FALSE;
  r->has_shortcut = find (names, "%s.weight", shortcut) != NULL;
  if (r->has_shortcut)
    return load_conv (names, shortcut, in_channels, 1, 0, 0, &r->shortcut, error);
  if (in_channels != r->conv2.out_channels)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: %s changes %d to %d channels without a shortcut conv"),
                   vae_weights_get_path (names->weights), prefix, in_channels,
                   r->conv2.out_channels);
      return FALSE;
    }
  return TRUE;
}

static void
resnet_clear (Resnet *r)
{
  vae_norm_clear (&r->norm1);
  vae_norm_clear (&r->norm2);
  vae_conv_clear (&r->conv1);
  vae_conv_clear (&r->conv2);
  vae_conv_clear (&r->shortcut);
}

/* q, k and v from the one 1×1 projection to 3C that Qwen-Image has, its
 * output channels in that order. */
static gboolean
load_fused_qkv (const KlNames *names, const gchar *prefix, gint channels, VaeAttention *a,
                GError **error)
{
  g_autofree gchar *part = g_strdup_printf ("%s.to_qkv", prefix);
  VaeConv          *convs[] = { &a->q, &a->k, &a->v };
  const gsize       per = (gsize) channels * channels;
  VaeConv           qkv = { 0 };
  gboolean          ok;

  ok = load_conv (names, part, channels, 1, 0, 0, &qkv, error);
  if (ok && (qkv.kernel != 1 || qkv.out_channels != 3 * channels))
    ok = bad_shape (names, NULL, part, "a 1×1 projection to 3 × channels", error);
  for (guint i = 0; ok && i < G_N_ELEMENTS (convs); i++)
    {
      *convs[i] = qkv;
      convs[i]->out_channels = channels;
      convs[i]->weight = g_memdup2 (qkv.weight + i * per, per * sizeof (gfloat));
      convs[i]->bias =
          qkv.bias ? g_memdup2 (qkv.bias + i * channels, channels * sizeof (gfloat)) : NULL;
      convs[i]->cache = vae_layer_cache_new ();
    }
  vae_conv_clear (&qkv);
  return ok;
}

/* An attention block at PREFIX (…attentions.J): its norm and four square
 * 1×1 projections (q, k and v fused in Qwen-Image's). */
static gboolean
load_attention (const KlNames *names, const gchar *prefix, gint channels, VaeAttention *a,
                GError **error)
{
  static const gchar *parts[] = { "to_q", "to_k", "to_v", "to_out.0" };
  VaeConv            *convs[] = { &a->q, &a->k, &a->v, &a->proj };
  g_autofree gchar   *norm = g_strdup_printf ("%s.group_norm", prefix);
  guint               first = 0;

  if (!load_norm (names, norm, channels, &a->norm, error))
    return FALSE;
  if (find (names, "%s.to_qkv.weight", prefix))
    {
      if (!load_fused_qkv (names, prefix, channels, a, error))
        return FALSE;
      first = 3;
    }
  for (guint i = first; i < G_N_ELEMENTS (parts); i++)
    {
      g_autofree gchar *part = g_strdup_printf ("%s.%s", prefix, parts[i]);
      if (!load_conv (names, part, channels, 1, 0, 0, convs[i], error))
        return FALSE;
      if (convs[i]->kernel != 1 || convs[i]->out_channels != channels)
        return bad_shape (names, NULL, part, "a square 1×1 projection", error);
    }
  return TRUE;
}

/* The attention at PREFIX when the file has one: *PRESENT says whether. */
static gboolean
load_optional_attention (const KlNames *names, const gchar *prefix, gint channels,
                         gboolean *present, VaeAttention *a, GError **error)
{
  *present = find (names, "%s.group_norm.weight", prefix) != NULL;
  return !*present || load_attention (names, prefix, channels, a, error);
}

static gint
count_prefixed (const KlNames *names, const gchar *format, gint fixed)
{
  gint n = 0;

  while (n < 64)
    {
      g_autofree gchar *name =
          fixed >= 0 ? g_strdup_printf (format, fixed, n) : g_strdup_printf (format, n);
      if (!g_hash_table_contains (names->names, name))
        break;
      n++;
    }
  return n;
}

static void
kl_net_free (VaeNet *net)
{
  KlNet *kl = (KlNet *) net;

  vae_conv_clear (&kl->quant);
  vae_conv_clear (&kl->conv_in);
  for (gint i = 0; kl->levels && i < kl->n_levels; i++)
    {
      Level *level = &kl->levels[i];
      for (gint j = 0; level->layers && j < level->n_layers; j++)
        {
          resnet_clear (&level->layers[j].resnet);
          vae_attention_clear (&level->layers[j].attention);
        }
      g_free (level->layers);
      vae_conv_clear (&level->resample);
      vae_conv_clear (&level->skip);
    }
  g_free (kl->levels);
  resnet_clear (&kl->mid[0]);
  resnet_clear (&kl->mid[1]);
  vae_attention_clear (&kl->attention);
  vae_norm_clear (&kl->norm_out);
  vae_conv_clear (&kl->conv_out);
  vae_conv_clear (&kl->patch);
  g_free (kl);
}

static VaeTensor *kl_encode (VaeNet *net, const VaePass *p, const VaeTensor *image, GError **error);
static VaeTensor *kl_decode (VaeNet *net, const VaePass *p, const VaeTensor *z, GError **error);

static gboolean
load_mid (const KlNames *names, const gchar *half, gint channels, KlNet *kl, GError **error)
{
  g_autofree gchar *r0 = g_strdup_printf ("%s.mid_block.resnets.0", half);
  g_autofree gchar *attn = g_strdup_printf ("%s.mid_block.attentions.0", half);
  g_autofree gchar *r1 = g_strdup_printf ("%s.mid_block.resnets.1", half);

  return load_resnet (names, r0, channels, &kl->mid[0], error) &&
         load_optional_attention (names, attn, channels, &kl->has_attention, &kl->attention,
                                  error) &&
         load_resnet (names, r1, channels, &kl->mid[1], error);
}

/* Wan 2.2's image side: 3 colours patchified 2×2 (wan22.c). */
#define WAN22_IMAGE_CHANNELS 12

/* The channels a causal 3-D half reads (encoder) or writes (decoder) on the
 * image side: 3, or Wan 2.2's 12; 0 when it has no such conv. */
static gint
image_channels (const KlNames *names, gboolean decoder)
{
  const VaeWeightEntry *e =
      find (names, decoder ? "decoder.conv_out.weight" : "encoder.conv_in.weight");

  return e && e->ndim >= 2 ? (gint) e->shape[decoder ? 0 : 1] : 0;
}

/* Wan 2.2's shortcut around level I, from IN to OUT channels: AvgDown3D
 * (encoder) or DupUp3D (decoder, resampling levels only), temporal where
 * the level's resampler has a time_conv (wan22.c). */
static gboolean
load_skip (const KlNames *names, const KlNet *kl, gint i, gint in, gint out, Level *level,
           GError **error)
{
  const gchar *blocks = kl->decoder ? "decoder.up_blocks" : "encoder.down_blocks";
  const gchar *sampler = kl->decoder ? "upsamplers" : "downsamplers";
  const gint   factor_t = find (names, "%s.%d.%s.0.time_conv.weight", blocks, i, sampler) ? 2 : 1;

  if (!kl->patchify || (kl->decoder && !level->has_resample))
    return TRUE;
  if (kl->decoder)
    level->has_skip = vae_wan22_dup_up (&level->skip, in, out, factor_t);
  else
    level->has_skip =
        vae_wan22_avg_down (&level->skip, in, out, factor_t, level->has_resample ? 2 : 1);
  if (level->has_skip)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
               _ ("%s: level %d of the %s goes from %d to %d channels, which its shortcut "
                  "cannot regroup"),
               vae_weights_get_path (names->weights), i, kl->decoder ? "decoder" : "encoder", in,
               out);
  return FALSE;
}

/* Level I's layers and resampler; CHANNELS follows them through. */
static gboolean
load_level (const KlNames *names, const KlNet *kl, gint i, Level *level, gint *channels,
            GError **error)
{
  const gchar      *blocks = kl->decoder ? "decoder.up_blocks" : "encoder.down_blocks";
  const gchar      *sampler = kl->decoder ? "upsamplers" : "downsamplers";
  g_autofree gchar *resample = g_strdup_printf ("%s.%d.%s.0.conv", blocks, i, sampler);
  const gint        in = *channels;

  level->layers = g_new0 (Layer, level->n_layers);
  for (gint j = 0; j < level->n_layers; j++)
    {
      g_autofree gchar *resnet = g_strdup_printf ("%s.%d.resnets.%d", blocks, i, j);
      g_autofree gchar *attention = g_strdup_printf ("%s.%d.attentions.%d", blocks, i, j);
      Layer            *layer = &level->layers[j];
      if (!load_resnet (names, resnet, *channels, &layer->resnet, error))
        return FALSE;
      *channels = layer->resnet.conv2.out_channels;
      if (!load_optional_attention (names, attention, *channels, &layer->has_attention,
                                    &layer->attention, error))
        return FALSE;
    }
  level->has_resample = i < kl->n_levels - 1;
  /* the downsampler pads one zero column right and one row below */
  if (level->has_resample &&
      !(kl->decoder ? load_same_conv (names, resample, *channels, &level->resample, error)
                    : load_conv (names, resample, *channels, 2, 0, 1, &level->resample, error)))
    return FALSE;
  if (level->has_resample)
    *channels = level->resample.out_channels;
  return load_skip (names, kl, i, in, *channels, level, error);
}

/* One half of the model.  Widths, depths and where attention sits come from
 * the weights; the order of the parts is kl_encode's and kl_decode's. */
static KlNet *
load_half (const KlNames *names, gboolean decoder, GError **error)
{
  const gchar      *half = decoder ? "decoder" : "encoder";
  const gchar      *resnets = decoder ? "decoder.up_blocks.%d.resnets.%d.conv1.weight"
                                      : "encoder.down_blocks.%d.resnets.%d.conv1.weight";
  g_autofree gchar *conv_in = g_strdup_printf ("%s.conv_in", half);
  g_autofree gchar *norm_out = g_strdup_printf ("%s.conv_norm_out", half);
  g_autofree gchar *conv_out = g_strdup_printf ("%s.conv_out", half);
  KlNet            *kl = g_new0 (KlNet, 1);
  gint              channels;

  kl->net.free = kl_net_free;
  kl->net.forward = decoder ? kl_decode : kl_encode;
  kl->decoder = decoder;
  kl->patchify = names->causal3d && image_channels (names, decoder) == WAN22_IMAGE_CHANNELS;
  if (kl->patchify && !decoder)
    vae_wan22_patchify (&kl->patch);
  while (count_prefixed (names, resnets, kl->n_levels) > 0)
    kl->n_levels++;
  if (kl->n_levels == 0 || kl->n_levels > 16)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: the %s has no resnet levels"),
                   vae_weights_get_path (names->weights), half);
      goto fail;
    }
  kl->levels = g_new0 (Level, kl->n_levels);
  for (gint i = 0; i < kl->n_levels; i++)
    kl->levels[i].n_layers = count_prefixed (names, resnets, i);
  kl->has_quant = find (names, decoder ? "post_quant_conv.weight" : "quant_conv.weight") != NULL;

  if (decoder && kl->has_quant &&
      !load_conv (names, "post_quant_conv", -1, 1, 0, 0, &kl->quant, error))
    goto fail;
  if (!load_same_conv (names, conv_in, decoder && kl->has_quant ? kl->quant.out_channels : -1,
                       &kl->conv_in, error))
    goto fail;
  channels = kl->conv_in.out_channels;
  if (decoder && !load_mid (names, half, channels, kl, error))
    goto fail;
  for (gint i = 0; i < kl->n_levels; i++)
    if (!load_level (names, kl, i, &kl->levels[i], &channels, error))
      goto fail;
  if (!decoder && !load_mid (names, half, channels, kl, error))
    goto fail;
  if (!load_norm (names, norm_out, channels, &kl->norm_out, error) ||
      !load_same_conv (names, conv_out, channels, &kl->conv_out, error))
    goto fail;
  if (!decoder && kl->has_quant &&
      !load_conv (names, "quant_conv", kl->conv_out.out_channels, 1, 0, 0, &kl->quant, error))
    goto fail;
  if (kl->patchify && decoder)
    vae_wan22_unpatchify_order (&kl->conv_out);

  kl->net.in_channels = decoder && kl->has_quant ? kl->quant.in_channels : kl->conv_in.in_channels;
  kl->net.out_channels =
      !decoder && kl->has_quant ? kl->quant.out_channels : kl->conv_out.out_channels;
  kl->net.factor = 1 << (kl->n_levels - 1);
  if (kl->patchify) /* RGB on the outside, twice the scale */
    {
      if (decoder)
        kl->net.out_channels = 3;
      else
        kl->net.in_channels = 3;
      kl->net.factor *= 2;
    }
  return kl;

fail:
  kl_net_free (&kl->net);
  return NULL;
}

/* ---- forward ------------------------------------------------------------- */

/* The steps of nets.h, and these. */

/* shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))))).  With a
 * shortcut conv, X is read by it first and then normalised in place, so at
 * most X and two half-size tensors are alive; without one the backend may
 * fuse the whole (vae_resnet). */
static VaeTensor *
resnet (const VaePass *p, const Resnet *r, VaeTensor *x, GError **error)
{
  const VaeBackend *be = p->backend;
  const VaeResnet   layers = { &r->norm1, &r->conv1, &r->norm2, &r->conv2 };
  VaeTensor        *shortcut, *h = NULL, *out = NULL;

  if (!(x = vae_step_go_on (p, x, error)))
    return NULL;
  if (!r->has_shortcut)
    return vae_resnet (be, &layers, x, error);
  if ((shortcut = be->conv (be, &r->shortcut, x, FALSE, NULL, VAE_ACT_NONE, error)))
    h = vae_norm_consume (be, &r->norm1, g_steal_pointer (&x), VAE_ACT_SILU, error);
  h = vae_step_conv (p, &r->conv1, h, FALSE, VAE_ACT_NONE, error);
  h = vae_step_norm (p, &r->norm2, h, VAE_ACT_SILU, error);
  if (h)
    out = be->conv (be, &r->conv2, h, FALSE, shortcut, VAE_ACT_NONE, error);
  vae_tensor_free (x);
  vae_tensor_free (h);
  vae_tensor_free (shortcut);
  return out;
}

/* Wan 2.2's shortcut of a level's input H (kept): AvgDown3D as its conv,
 * or DupUp3D as its conv and the pixel shuffle; NULL on failure. */
static VaeTensor *
skip (const VaePass *p, const Level *l, gboolean decoder, const VaeTensor *h, GError **error)
{
  const VaeBackend *be = p->backend;
  VaeTensor        *s = be->conv (be, &l->skip, h, FALSE, NULL, VAE_ACT_NONE, error);

  if (s && decoder && !vae_tensor_replace (&s, be->pixel_shuffle (be, s, error)))
    return NULL;
  return s;
}

/* A level: its resnets (each with its attention, where it has one), then
 * the stride-2 downsampler or the ×2 upsampler and its conv; in Wan 2.2's,
 * plus the shortcut of the level's input. */
static VaeTensor *
level (const VaePass *p, const Level *l, gboolean decoder, VaeTensor *h, GError **error)
{
  const VaeBackend *be = p->backend;
  VaeTensor        *s = NULL;

  if (l->has_skip && (h = vae_step_go_on (p, h, error)) && !(s = skip (p, l, decoder, h, error)))
    g_clear_pointer (&h, vae_tensor_free);
  for (gint j = 0; j < l->n_layers; j++)
    {
      h = resnet (p, &l->layers[j].resnet, h, error);
      if (l->layers[j].has_attention)
        h = vae_step_attention (p, &l->layers[j].attention, h, error);
    }
  if (l->has_resample && s && (h = vae_step_go_on (p, h, error)))
    vae_tensor_replace (&h, be->conv (be, &l->resample, h, decoder, s, VAE_ACT_NONE, error));
  else if (l->has_resample)
    h = vae_step_conv (p, &l->resample, h, decoder, VAE_ACT_NONE, error);
  else if (s && (h = vae_step_go_on (p, h, error)))
    vae_tensor_replace (&h, be->add (be, h, s, error));
  vae_tensor_free (s);
  return h;
}

/* Progress after STEP of the pass's n_levels + 2 steps (conv_in and mid
 * block, each level, norm_out and conv_out). */
static VaeTensor *
reached (const VaePass *p, const KlNet *kl, gint step, VaeTensor *h)
{
  if (h)
    vae_pass_step (p, step, kl->n_levels + 2);
  return h;
}

/* The encoder: image in [−1, 1] (3 × H × W) → 2Z moments (mean, logvar) at
 * 1/2^(levels − 1), or a VQModel's latent (Z, then E after quant_conv); B is
 * block_out_channels, Bn the last. */
static VaeTensor *
kl_encode (VaeNet *net, const VaePass *p, const VaeTensor *image, GError **error)
{
  KlNet     *kl = (KlNet *) net;
  VaeTensor *h;

  if (kl->patchify) /* Wan 2.2: 12 × H/2 × W/2, then B0 × H/2 × W/2 */
    h = vae_step_conv (p, &kl->conv_in,
                       vae_step_first_conv (p, &kl->patch, image, VAE_ACT_NONE, error), FALSE,
                       VAE_ACT_NONE, error);
  else
    h = vae_step_first_conv (p, &kl->conv_in, image, VAE_ACT_NONE, error); /* B0 × H × W */
  for (gint i = 0; i < kl->n_levels; i++)
    h = reached (p, kl, i + 1, level (p, &kl->levels[i], FALSE, h, error)); /* Bi × H/2^(i+1) */
  h = resnet (p, &kl->mid[0], h, error);                                    /* Bn × h × w */
  if (kl->has_attention)
    h = vae_step_attention (p, &kl->attention, h, error);
  h = resnet (p, &kl->mid[1], h, error);
  h = vae_step_norm (p, &kl->norm_out, h, VAE_ACT_SILU, error);
  h = vae_step_conv (p, &kl->conv_out, h, FALSE, VAE_ACT_NONE, error); /* 2Z (VQ: Z) × h × w */
  if (kl->has_quant)
    h = vae_step_conv (p, &kl->quant, h, FALSE, VAE_ACT_NONE, error); /* quant_conv, 1×1 */
  return reached (p, kl, kl->n_levels + 2, h);
}

/* The decoder: latent z (Z × h × w, raw scale) → image in [−1, 1]. */
static VaeTensor *
kl_decode (VaeNet *net, const VaePass *p, const VaeTensor *z, GError **error)
{
  KlNet     *kl = (KlNet *) net;
  VaeTensor *h;

  if (kl->has_quant) /* post_quant_conv 1×1, then conv_in: Bn × h × w */
    h = vae_step_conv (p, &kl->conv_in, vae_step_first_conv (p, &kl->quant, z, VAE_ACT_NONE, error),
                       FALSE, VAE_ACT_NONE, error);
  else
    h = vae_step_first_conv (p, &kl->conv_in, z, VAE_ACT_NONE, error);
  h = resnet (p, &kl->mid[0], h, error);
  if (kl->has_attention)
    h = vae_step_attention (p, &kl->attention, h, error);
  h = reached (p, kl, 1, resnet (p, &kl->mid[1], h, error));
  for (gint i = 0; i < kl->n_levels; i++)
    h = reached (p, kl, i + 2, level (p, &kl->levels[i], TRUE, h, error)); /* ×2 but the last */
  h = vae_step_norm (p, &kl->norm_out, h, VAE_ACT_SILU, error);
  h = vae_step_conv (p, &kl->conv_out, h, FALSE, VAE_ACT_NONE, error); /* 3 × H × W */
  if (kl->patchify) /* Wan 2.2: 12 × H/2 × W/2 unpatchified */
    h = vae_step_pixel_shuffle (p, h, error);
  return reached (p, kl, kl->n_levels + 2, h);
}

/* ---- building ------------------------------------------------------------ */

static gboolean
load_batch_norm (const KlNames *names, gint channels, gfloat **mean, gfloat **var, GError **error)
{
  const VaeWeightEntry *m = find (names, "bn.running_mean");
  const VaeWeightEntry *v = find (names, "bn.running_var");

  if (!m || !v || m->ndim != 1 || v->ndim != 1 || m->shape[0] != channels ||
      v->shape[0] != channels)
    {
      g_autofree gchar *want = g_strdup_printf ("running_mean and running_var of [%d]", channels);
      return bad_shape (names, m, "bn", want, error);
    }
  return (*mean = get (names, m, error)) && (*var = get (names, v, error));
}

/* An encoder reads RGB and gives MOMENTS tensors (KL: mean and log-variance,
 * an even count; VQ: the latent); a decoder writes RGB.  Anything else, once loaded, read past the
 * image buffers the front ends hand over. */
static gboolean
check_rgb (const VaeWeights *weights, const KlNet *enc, const KlNet *dec, gint moments,
           GError **error)
{
  const gchar *path = vae_weights_get_path (weights);

  if (enc && enc->net.in_channels != 3)
    g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                 _ ("%s: 'encoder.conv_in' takes %d channels; an RGB encoder takes 3"), path,
                 enc->net.in_channels);
  else if (enc && enc->net.out_channels % moments)
    g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                 _ ("%s: the encoder gives %d channels, not mean and log-variance (an even "
                    "number)"),
                 path, enc->net.out_channels);
  else if (dec && dec->net.out_channels != 3)
    g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                 _ ("%s: 'decoder.conv_out' gives %d channels; an RGB decoder gives 3"), path,
                 dec->net.out_channels);
  else
    return TRUE;
  return FALSE;
}

/* A decoder with MoVQ's spatial normalisation (Kandinsky 2.x/3: norms
 * conditioned on the quantised latent, diffusers' SpatialNorm), which this
 * engine does not run. */
static gboolean
spatial_norm (const KlNames *names)
{
  GHashTableIter iter;
  gpointer       key;

  g_hash_table_iter_init (&iter, names->names);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (g_str_has_prefix (key, "decoder.") && strstr (key, ".conv_y."))
      return TRUE;
  return FALSE;
}

/* FALSE with an error for a causal 3-D VAE whose image side is neither
 * RGB nor Wan 2.2's patchified 12 channels. */
static gboolean
causal3d_supported (const KlNames *names, GError **error)
{
  const gint image =
      image_channels (names, FALSE) ? image_channels (names, FALSE) : image_channels (names, TRUE);

  if (image == 0 || image == 3 || image == WAN22_IMAGE_CHANNELS)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
               _ ("%s: a causal 3-D VAE whose image side has %d channels, neither 3 nor Wan "
                  "2.2's 12 (its image patchified 2×2)"),
               vae_weights_get_path (names->weights), image);
  return FALSE;
}

gboolean
vae_kl_build (const VaeWeights *weights, VaeParts *parts, GError **error)
{
  VaeStructure         *s = &parts->structure;
  KlNames               names;
  KlNet                *enc = NULL, *dec = NULL;
  const VaeWeightEntry *codebook;
  gboolean              ok;
  gint                  moments;

  names_init (&names, weights);
  memset (parts, 0, sizeof *parts);
  codebook = find (&names, "quantize.embedding.weight");
  s->kind = codebook ? VAE_KIND_VQ : names.causal3d ? VAE_KIND_QWEN_IMAGE : VAE_KIND_KL;
  moments = codebook ? 1 : 2; /* a VQ encoder gives the latent, a KL one mean and logvar */
  s->encoder_present = find (&names, "encoder.conv_in.weight") != NULL;
  s->decoder_present = find (&names, "decoder.conv_in.weight") != NULL;
  ok = !names.causal3d || causal3d_supported (&names, error); /* HunyuanImage: hunyuan.c */
  if (ok && spatial_norm (&names))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: a decoder with spatial normalisation (MoVQ: Kandinsky 2.x/3) is not "
                      "supported"),
                   vae_weights_get_path (weights));
      ok = FALSE;
    }
  if (ok && s->encoder_present && !(enc = load_half (&names, FALSE, error)))
    ok = FALSE;
  if (ok && s->decoder_present && !(dec = load_half (&names, TRUE, error)))
    ok = FALSE;
  parts->encoder = enc ? &enc->net : NULL;
  parts->decoder = dec ? &dec->net : NULL;
  if (ok)
    {
      s->raw_channels = dec ? dec->net.in_channels : enc->net.out_channels / moments;
      s->raw_factor = dec ? dec->net.factor : enc->net.factor;
      s->quant_convs = dec ? dec->has_quant : enc->has_quant;
      s->batch_norm = find (&names, "bn.running_mean") != NULL;
      ok = vae_parts_halves_match (parts, weights, moments, error) &&
           check_rgb (weights, enc, dec, moments, error);
      if (ok && s->batch_norm)
        ok = load_batch_norm (&names, s->raw_channels * 4, &parts->bn_mean, &parts->bn_var, error);
      if (ok && codebook)
        ok = (parts->codebook = vae_codebook_from_weights (weights, codebook->name, error)) != NULL;
    }
  g_hash_table_unref (names.names);
  if (!ok)
    vae_parts_clear (parts);
  return ok;
}
