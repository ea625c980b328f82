/* AutoencoderKL (SD1/2, SDXL, SD3, FLUX.1, FLUX.2): weights in diffusers or
 * LDM/ComfyUI names, widths and depths read from the weights themselves.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "backend.h"

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

typedef struct
{
  VaeNet       net;
  gboolean     decoder;
  gint         n_levels;
  gint         n_res;     /* resnets per level */
  gboolean     has_quant; /* encoder: quant_conv after; decoder: post_quant_conv before */
  VaeConv      quant;
  VaeConv      conv_in;
  Resnet      *res;      /* n_levels × n_res, diffusers order */
  VaeConv     *resample; /* n_levels − 1 down- or upsamplers */
  Resnet       mid[2];
  gboolean     has_attention;
  VaeAttention attention;
  VaeNorm      norm_out;
  VaeConv      conv_out;
} KlNet;

/* Canonical (diffusers) name → file entry. */
typedef struct
{
  const VaeWeights *weights;
  GHashTable       *names;
} KlNames;

/* ---- names --------------------------------------------------------------- */

static const gchar *const renames[][2] = {
  { ".mid.block_1.", ".mid_block.resnets.0." },
  { ".mid.block_2.", ".mid_block.resnets.1." },
  { ".mid.attn_1.norm.", ".mid_block.attentions.0.group_norm." },
  { ".mid.attn_1.q.", ".mid_block.attentions.0.to_q." },
  { ".mid.attn_1.k.", ".mid_block.attentions.0.to_k." },
  { ".mid.attn_1.v.", ".mid_block.attentions.0.to_v." },
  { ".mid.attn_1.proj_out.", ".mid_block.attentions.0.to_out.0." },
  { ".attentions.0.query.", ".attentions.0.to_q." },
  { ".attentions.0.key.", ".attentions.0.to_k." },
  { ".attentions.0.value.", ".attentions.0.to_v." },
  { ".attentions.0.proj_attn.", ".attentions.0.to_out.0." },
  { ".nin_shortcut.", ".conv_shortcut." },
  { "encoder.norm_out.", "encoder.conv_norm_out." },
  { "decoder.norm_out.", "decoder.conv_norm_out." },
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

static gchar *
canonical_name (const gchar *name, gint n_up)
{
  gchar *out = g_strdup (name);
  gint   a, b, len = 0;

  if (g_str_has_prefix (out, "encoder.quant_conv."))
    out = replace_once (out, "encoder.quant_conv.", "quant_conv.");
  if (g_str_has_prefix (out, "decoder.post_quant_conv."))
    out = replace_once (out, "decoder.post_quant_conv.", "post_quant_conv.");
  if (sscanf (out, "encoder.down.%d.block.%d.%n", &a, &b, &len) == 2 && len > 0)
    {
      gchar *n = g_strdup_printf ("encoder.down_blocks.%d.resnets.%d.%s", a, b, out + len);
      g_free (out);
      out = n;
    }
  else if (sscanf (out, "encoder.down.%d.downsample.conv.%n", &a, &len) == 1 && len > 0)
    {
      gchar *n = g_strdup_printf ("encoder.down_blocks.%d.downsamplers.0.conv.%s", a, out + len);
      g_free (out);
      out = n;
    }
  else if (sscanf (out, "decoder.up.%d.block.%d.%n", &a, &b, &len) == 2 && len > 0 && a < n_up)
    {
      gchar *n = g_strdup_printf ("decoder.up_blocks.%d.resnets.%d.%s", n_up - 1 - a, b, out + len);
      g_free (out);
      out = n;
    }
  else if (sscanf (out, "decoder.up.%d.upsample.conv.%n", &a, &len) == 1 && len > 0 && a < n_up)
    {
      gchar *n =
          g_strdup_printf ("decoder.up_blocks.%d.upsamplers.0.conv.%s", n_up - 1 - a, out + len);
      g_free (out);
      out = n;
    }
  for (guint i = 0; i < G_N_ELEMENTS (renames); i++)
    out = replace_once (out, renames[i][0], renames[i][1]);
  return out;
}

static void
names_init (KlNames *names, const VaeWeights *weights)
{
  gint n_up = count_ldm_up_levels (weights);

  names->weights = weights;
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
         vae_weights_lookup (weights, "decoder.conv_in.weight");
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
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: tensor '%s.weight' is missing"),
                   vae_weights_get_path (names->weights), prefix);
      return FALSE;
    }
  if (!((w->ndim == 4 && w->shape[2] == w->shape[3] && w->shape[2] % 2 == 1) || w->ndim == 2 ||
        (w->ndim == 4 && w->shape[2] == 1 && w->shape[3] == 1)) ||
      w->shape[0] < 1 || w->shape[0] > 65536 || (in_channels > 0 && w->shape[1] != in_channels))
    {
      g_autofree gchar *want = g_strdup_printf ("[out, %d, k, k] with odd k", in_channels);
      return bad_shape (names, w, prefix, want, error);
    }
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return bad_shape (names, b, prefix, "[out]", error);
  conv->out_channels = (gint) w->shape[0];
  conv->in_channels = (gint) w->shape[1];
  conv->kernel = w->ndim == 4 ? (gint) w->shape[2] : 1;
  conv->stride = stride;
  if (pad_lt < 0) /* "same" padding */
    pad_lt = pad_rb = conv->kernel / 2;
  conv->pad_top = conv->pad_left = pad_lt;
  conv->pad_bottom = conv->pad_right = pad_rb;
  if (!(conv->weight = get (names, w, error)))
    return FALSE;
  return !b || (conv->bias = get (names, b, error)) != NULL;
}

static gboolean
load_same_conv (const KlNames *names, const gchar *prefix, gint in_channels, VaeConv *conv,
                GError **error)
{
  return load_conv (names, prefix, in_channels, 1, -1, -1, conv, error);
}

static gboolean
load_norm (const KlNames *names, const gchar *prefix, gint channels, VaeNorm *norm, GError **error)
{
  const VaeWeightEntry *w = find (names, "%s.weight", prefix);
  const VaeWeightEntry *b = find (names, "%s.bias", prefix);

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

static gboolean
load_attention (const KlNames *names, const gchar *half, gint channels, VaeAttention *a,
                GError **error)
{
  static const gchar *parts[] = { "to_q", "to_k", "to_v", "to_out.0" };
  VaeConv            *convs[] = { &a->q, &a->k, &a->v, &a->proj };
  g_autofree gchar   *norm = g_strdup_printf ("%s.mid_block.attentions.0.group_norm", half);

  if (!load_norm (names, norm, channels, &a->norm, error))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    {
      g_autofree gchar *prefix = g_strdup_printf ("%s.mid_block.attentions.0.%s", half, parts[i]);
      if (!load_conv (names, prefix, channels, 1, 0, 0, convs[i], error))
        return FALSE;
      if (convs[i]->kernel != 1 || convs[i]->out_channels != channels)
        return bad_shape (names, NULL, prefix, "a square 1×1 projection", error);
    }
  return TRUE;
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
  for (gint i = 0; kl->res && i < kl->n_levels * kl->n_res; i++)
    resnet_clear (&kl->res[i]);
  for (gint i = 0; kl->resample && i < kl->n_levels - 1; i++)
    vae_conv_clear (&kl->resample[i]);
  g_free (kl->res);
  g_free (kl->resample);
  resnet_clear (&kl->mid[0]);
  resnet_clear (&kl->mid[1]);
  vae_attention_clear (&kl->attention);
  vae_norm_clear (&kl->norm_out);
  vae_conv_clear (&kl->conv_out);
  g_free (kl);
}

static VaeTensor *kl_forward (VaeNet *net, const VaeBackend *be, const VaeTensor *x,
                              GError **error);

static gboolean
load_mid (const KlNames *names, const gchar *half, gint channels, KlNet *kl, GError **error)
{
  g_autofree gchar *r0 = g_strdup_printf ("%s.mid_block.resnets.0", half);
  g_autofree gchar *r1 = g_strdup_printf ("%s.mid_block.resnets.1", half);

  if (!load_resnet (names, r0, channels, &kl->mid[0], error))
    return FALSE;
  kl->has_attention = find (names, "%s.mid_block.attentions.0.group_norm.weight", half) != NULL;
  if (kl->has_attention && !load_attention (names, half, channels, &kl->attention, error))
    return FALSE;
  return load_resnet (names, r1, channels, &kl->mid[1], error);
}

/* Resnets and resamplers of every level; CHANNELS follows them through. */
static gboolean
load_levels (const KlNames *names, KlNet *kl, gint *channels, GError **error)
{
  const gchar *blocks = kl->decoder ? "decoder.up_blocks" : "encoder.down_blocks";
  const gchar *sampler = kl->decoder ? "upsamplers" : "downsamplers";

  for (gint level = 0; level < kl->n_levels; level++)
    {
      for (gint j = 0; j < kl->n_res; j++)
        {
          g_autofree gchar *prefix = g_strdup_printf ("%s.%d.resnets.%d", blocks, level, j);
          Resnet           *r = &kl->res[level * kl->n_res + j];
          if (!load_resnet (names, prefix, *channels, r, error))
            return FALSE;
          *channels = r->conv2.out_channels;
        }
      if (level < kl->n_levels - 1)
        {
          g_autofree gchar *prefix = g_strdup_printf ("%s.%d.%s.0.conv", blocks, level, sampler);
          /* the downsampler pads one zero column right and one row below */
          gboolean ok =
              kl->decoder
                  ? load_same_conv (names, prefix, *channels, &kl->resample[level], error)
                  : load_conv (names, prefix, *channels, 2, 0, 1, &kl->resample[level], error);
          if (!ok)
            return FALSE;
          *channels = kl->resample[level].out_channels;
        }
    }
  return TRUE;
}

static KlNet *
load_half (const KlNames *names, gboolean decoder, GError **error)
{
  const gchar      *half = decoder ? "decoder" : "encoder";
  const gchar      *blocks = decoder ? "decoder.up_blocks.%d.resnets.%d.conv1.weight"
                                     : "encoder.down_blocks.%d.resnets.%d.conv1.weight";
  g_autofree gchar *conv_in = g_strdup_printf ("%s.conv_in", half);
  g_autofree gchar *norm_out = g_strdup_printf ("%s.conv_norm_out", half);
  g_autofree gchar *conv_out = g_strdup_printf ("%s.conv_out", half);
  KlNet            *kl = g_new0 (KlNet, 1);
  gint              channels;

  kl->net.free = kl_net_free;
  kl->net.forward = kl_forward;
  kl->decoder = decoder;
  for (kl->n_levels = 0; count_prefixed (names, blocks, kl->n_levels) > 0; kl->n_levels++)
    ;
  kl->n_res = count_prefixed (names, blocks, 0);
  if (kl->n_levels == 0 || kl->n_levels > 16)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: the %s has no resnet levels"),
                   vae_weights_get_path (names->weights), half);
      goto fail;
    }
  kl->res = g_new0 (Resnet, kl->n_levels * kl->n_res);
  kl->resample = g_new0 (VaeConv, kl->n_levels);
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
  if (!load_levels (names, kl, &channels, error))
    goto fail;
  if (!decoder && !load_mid (names, half, channels, kl, error))
    goto fail;
  if (!load_norm (names, norm_out, channels, &kl->norm_out, error) ||
      !load_same_conv (names, conv_out, channels, &kl->conv_out, error))
    goto fail;
  if (!decoder && kl->has_quant &&
      !load_conv (names, "quant_conv", kl->conv_out.out_channels, 1, 0, 0, &kl->quant, error))
    goto fail;
  kl->net.in_channels = decoder && kl->has_quant ? kl->quant.in_channels : kl->conv_in.in_channels;
  kl->net.out_channels =
      !decoder && kl->has_quant ? kl->quant.out_channels : kl->conv_out.out_channels;
  kl->net.factor = 1 << (kl->n_levels - 1);
  return kl;

fail:
  kl_net_free (&kl->net);
  return NULL;
}

/* ---- forward ------------------------------------------------------------- */

/* X is consumed.  With a shortcut conv, X is read by it first and then
 * normalised in place, so at most X and two half-size tensors are alive. */
static VaeTensor *
resnet_forward (const VaeBackend *be, const Resnet *r, VaeTensor *x, GError **error)
{
  VaeTensor *shortcut = NULL, *h = NULL, *out = NULL;

  if (r->has_shortcut)
    {
      if ((shortcut = be->conv (be, &r->shortcut, x, FALSE, NULL, VAE_ACT_NONE, error)))
        h = vae_norm_consume (be, &r->norm1, g_steal_pointer (&x), VAE_ACT_SILU, error);
    }
  else
    h = be->norm (be, &r->norm1, x, VAE_ACT_SILU, error);
  if (h && vae_tensor_replace (&h, be->conv (be, &r->conv1, h, FALSE, NULL, VAE_ACT_NONE, error)) &&
      (h = vae_norm_consume (be, &r->norm2, h, VAE_ACT_SILU, error)))
    out = be->conv (be, &r->conv2, h, FALSE, shortcut ? shortcut : x, VAE_ACT_NONE, error);
  vae_tensor_free (x);
  vae_tensor_free (h);
  vae_tensor_free (shortcut);
  return out;
}

static gboolean
mid_forward (const VaeBackend *be, const KlNet *kl, VaeTensor **h, GError **error)
{
  return (*h = resnet_forward (be, &kl->mid[0], *h, error)) &&
         (!kl->has_attention ||
          vae_tensor_replace (h, be->attention (be, &kl->attention, *h, error))) &&
         (*h = resnet_forward (be, &kl->mid[1], *h, error));
}

static VaeTensor *
kl_forward (VaeNet *net, const VaeBackend *be, const VaeTensor *x, GError **error)
{
  KlNet     *kl = (KlNet *) net;
  VaeTensor *h = NULL;
  gboolean   ok;

  if (kl->decoder && kl->has_quant)
    ok = (h = be->conv (be, &kl->quant, x, FALSE, NULL, VAE_ACT_NONE, error)) != NULL &&
         vae_tensor_replace (&h, be->conv (be, &kl->conv_in, h, FALSE, NULL, VAE_ACT_NONE, error));
  else
    ok = (h = be->conv (be, &kl->conv_in, x, FALSE, NULL, VAE_ACT_NONE, error)) != NULL;
  if (ok && kl->decoder)
    ok = mid_forward (be, kl, &h, error);
  vae_progress_step (kl->decoder ? 1 : 0, kl->n_levels + 2);
  for (gint level = 0; ok && level < kl->n_levels; level++)
    {
      for (gint j = 0; ok && j < kl->n_res; j++)
        ok = (h = resnet_forward (be, &kl->res[level * kl->n_res + j], h, error)) != NULL;
      if (ok && level < kl->n_levels - 1)
        ok = vae_tensor_replace (
            &h, be->conv (be, &kl->resample[level], h, kl->decoder, NULL, VAE_ACT_NONE, error));
      vae_progress_step (level + 1 + kl->decoder, kl->n_levels + 2);
    }
  if (ok && !kl->decoder)
    ok = mid_forward (be, kl, &h, error);
  ok = ok && (h = vae_norm_consume (be, &kl->norm_out, h, VAE_ACT_SILU, error)) &&
       vae_tensor_replace (&h, be->conv (be, &kl->conv_out, h, FALSE, NULL, VAE_ACT_NONE, error));
  if (ok && !kl->decoder && kl->has_quant)
    ok = vae_tensor_replace (&h, be->conv (be, &kl->quant, h, FALSE, NULL, VAE_ACT_NONE, error));
  if (ok)
    vae_progress_step (kl->n_levels + 2, kl->n_levels + 2);
  if (!ok)
    {
      vae_tensor_free (h);
      return NULL;
    }
  return h;
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

/* An encoder reads RGB and gives mean and log-variance (an even count); a
 * decoder writes RGB.  Anything else, once loaded, read past the image
 * buffers the front ends hand over. */
static gboolean
check_rgb (const VaeWeights *weights, const KlNet *enc, const KlNet *dec, GError **error)
{
  const gchar *path = vae_weights_get_path (weights);

  if (enc && enc->net.in_channels != 3)
    g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                 _ ("%s: 'encoder.conv_in' takes %d channels; an RGB encoder takes 3"), path,
                 enc->net.in_channels);
  else if (enc && enc->net.out_channels % 2)
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

gboolean
vae_kl_build (const VaeWeights *weights, VaeStructure *s, VaeNet **encoder, VaeNet **decoder,
              gfloat **bn_mean, gfloat **bn_var, GError **error)
{
  KlNames  names;
  KlNet   *enc = NULL, *dec = NULL;
  gboolean ok = TRUE;

  names_init (&names, weights);
  memset (s, 0, sizeof *s);
  s->kind = VAE_KIND_KL;
  s->encoder_present = find (&names, "encoder.conv_in.weight") != NULL;
  s->decoder_present = find (&names, "decoder.conv_in.weight") != NULL;
  if (s->encoder_present && !(enc = load_half (&names, FALSE, error)))
    ok = FALSE;
  if (ok && s->decoder_present && !(dec = load_half (&names, TRUE, error)))
    ok = FALSE;
  if (ok)
    {
      s->raw_channels = dec ? dec->net.in_channels : enc->net.out_channels / 2;
      s->raw_factor = dec ? dec->net.factor : enc->net.factor;
      s->quant_convs = dec ? dec->has_quant : enc->has_quant;
      s->batch_norm = find (&names, "bn.running_mean") != NULL;
      if (enc && dec &&
          (enc->net.out_channels != 2 * dec->net.in_channels || enc->net.factor != dec->net.factor))
        {
          g_set_error (
              error, VAE_ERROR, VAE_ERROR_MODEL,
              _ ("%s: encoder (%d moments, /%d) and decoder (%d channels, ×%d) do not match"),
              vae_weights_get_path (weights), enc->net.out_channels, enc->net.factor,
              dec->net.in_channels, dec->net.factor);
          ok = FALSE;
        }
      if (ok)
        ok = check_rgb (weights, enc, dec, error);
      if (ok && s->batch_norm)
        ok = load_batch_norm (&names, s->raw_channels * 4, bn_mean, bn_var, error);
    }
  g_hash_table_unref (names.names);
  if (!ok)
    {
      if (enc)
        kl_net_free (&enc->net);
      if (dec)
        kl_net_free (&dec->net);
      return FALSE;
    }
  *encoder = enc ? &enc->net : NULL;
  *decoder = dec ? &dec->net : NULL;
  return TRUE;
}
