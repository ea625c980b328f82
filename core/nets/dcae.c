/* Sana's DC-AE (diffusers' AutoencoderDC, f32c32): stages of residual blocks
 * (ResBlock) and, deeper, EfficientViT blocks (ReLU linear attention with a
 * multi-scale projection, then GLUMBConv), RMS norms, and resamplers whose
 * shortcuts move pixels into channels and back.  Widths, depths and where
 * the EfficientViT stages begin are read from the weights (diffusers'
 * names).
 *
 * The fixed shortcuts run as convolutions with constant weights:
 *   down  (DCDownBlock2d): mean over groups of pixel_unshuffle(x), a 2×2
 *         stride-2 grouped convolution of weights 1/g;
 *   up    (DCUpBlock2d): pixel_shuffle(repeat_interleave(x, r)), a grouped
 *         1×1 convolution of weights 1 (the repeat), then the pixel shuffle;
 *   the encoder's out_shortcut (mean over channel groups) and the decoder's
 *   in_shortcut (repeat_interleave) are grouped 1×1 convolutions too.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/nets.h"

#include <stdio.h>
#include <string.h>

#define DC_EPS      1e-5f  /* every RMS norm's */
#define DC_ATTN_EPS 1e-15f /* the linear attention's denominator */
#define DC_HEAD_DIM 32     /* attention_head_dim of every released DC-AE */
#define MAX_STAGES  8
#define MAX_BLOCKS  64

/* x + RMS(conv2(SiLU(conv1(x)))) */
typedef struct
{
  VaeConv conv1, conv2;
  VaeNorm norm;
} ResBlock;

/* x += RMS(to_out(attn(qkv), attn(multiscale(qkv)))); then
 * x += RMS(point(gate(depth(SiLU(inverted(x)))))) */
typedef struct
{
  VaeConv qkv;      /* to_q, to_k, to_v stacked: C → 3C */
  VaeConv ms_depth; /* the multi-scale projection: depthwise 5×5 over 3C, */
  VaeConv ms_point; /* then 1×1 in groups of a head */
  VaeConv out[2];   /* to_out's halves: of the plain heads' output, of the multi-scale ones' */
  VaeNorm attn_norm;
  VaeConv inverted; /* GLUMBConv: 1×1 C → 8C */
  VaeConv depth;    /* depthwise 3×3 over 8C */
  VaeConv point;    /* 1×1 4C → C */
  VaeNorm mb_norm;
} VitBlock;

typedef struct
{
  gboolean vit;
  ResBlock res;
  VitBlock v;
} Block;

/* A stage: the encoder's blocks then its downsampler, or the decoder's
 * upsampler then its blocks (none at the deepest stage). */
typedef struct
{
  gint     n_blocks;
  Block   *blocks;
  gboolean has_resample;
  VaeConv  resample; /* encoder: 3×3 stride 2; decoder: nearest ×2, 3×3 */
  VaeConv  shortcut; /* encoder: the grouped mean; decoder: the repeat before the shuffle */
} Stage;

typedef struct
{
  VaeNet   net;
  gboolean decoder;
  VaeConv  conv_in;
  VaeConv  in_shortcut; /* decoder: the latent repeated */
  gint     n_stages;
  Stage    stages[MAX_STAGES]; /* as the widths run: stage 0 is the widest image */
  VaeNorm  norm_out;           /* decoder */
  VaeConv  conv_out;
  VaeConv  out_shortcut; /* encoder: channel groups averaged */
} DcaeNet;

typedef struct
{
  const VaeWeights *weights;
} DcNames;

static VaeTensor *dcae_encode (VaeNet *net, const VaePass *p, const VaeTensor *image,
                               GError **error);
static VaeTensor *dcae_decode (VaeNet *net, const VaePass *p, const VaeTensor *z, GError **error);

/* ---- loading ------------------------------------------------------------- */

gboolean
vae_dcae_detect (const VaeWeights *weights)
{
  for (guint i = 0; i < vae_weights_count (weights); i++)
    if (strstr (vae_weights_name (weights, i), ".attn.to_qkv_multiscale."))
      return TRUE;
  return FALSE;
}

static gfloat *
get (const DcNames *names, const VaeWeightEntry *e, GError **error)
{
  return vae_weights_get_float (names->weights, e->name, NULL, error);
}

/* A square K×K convolution from PREFIX.weight ([out, in/groups, k, k], or
 * [out, in] for a 1×1 Linear) and its bias when the file has one; OUT < 0
 * takes any width.  "Same" padding for stride 1, symmetric 1 for stride 2. */
static gboolean
load_conv (const DcNames *names, const gchar *prefix, gint in, gint out, gint k, gint stride,
           gint groups, VaeConv *conv, GError **error)
{
  g_autofree gchar     *wname = g_strdup_printf ("%s.weight", prefix);
  const VaeWeightEntry *w = vae_weights_lookup (names->weights, wname);
  const VaeWeightEntry *b = vae_weights_lookupf (names->weights, "%s.bias", prefix);
  const gint            pad = stride == 2 ? 1 : k / 2;

  if (!w)
    return vae_weights_missing_weight (names->weights, prefix, error);
  if (!((w->ndim == 4 && w->shape[2] == k && w->shape[3] == k) || (w->ndim == 2 && k == 1)) ||
      w->shape[1] * groups != in || (out >= 0 && w->shape[0] != out) || w->shape[0] < 1 ||
      w->shape[0] > 65536 || w->shape[0] % groups)
    {
      g_autofree gchar *o = out >= 0 ? g_strdup_printf ("%d", out) : g_strdup ("out");
      g_autofree gchar *want = g_strdup_printf ("[%s, %d, %d, %d]", o, in / groups, k, k);
      return vae_weights_wrong_shape (names->weights, wname, want, error);
    }
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return vae_weights_wrong_shape (names->weights, b->name, "[out]", error);
  *conv = (VaeConv){ (gint) w->shape[0], in, k, stride, pad, pad, pad, pad };
  conv->groups = groups;
  conv->cache = vae_layer_cache_new ();
  return (conv->weight = get (names, w, error)) && (!b || (conv->bias = get (names, b, error)));
}

static gboolean
load_norm (const DcNames *names, const gchar *prefix, gint channels, VaeNorm *norm, GError **error)
{
  const VaeWeightEntry *w = vae_weights_lookupf (names->weights, "%s.weight", prefix);
  const VaeWeightEntry *b = vae_weights_lookupf (names->weights, "%s.bias", prefix);

  if (!w || !b || w->ndim != 1 || b->ndim != 1 || w->shape[0] != channels ||
      b->shape[0] != channels)
    {
      g_autofree gchar *name = g_strdup_printf ("%s.weight", prefix);
      g_autofree gchar *want = g_strdup_printf ("[%d], with a bias of [%d]", channels, channels);
      return vae_weights_wrong_shape (names->weights, name, want, error);
    }
  *norm = (VaeNorm){ channels, 1, DC_EPS };
  norm->kind = VAE_NORM_RMS;
  norm->cache = vae_layer_cache_new ();
  return (norm->gamma = get (names, w, error)) && (norm->beta = get (names, b, error));
}

/* A constant convolution: K×K, STRIDE, GROUPS, of OUT channels from IN, its
 * weights from WEIGHT (out, input of the group, tap). */
static void
fixed_conv (VaeConv *conv, gint in, gint out, gint k, gint groups,
            gfloat (*weight) (gint o, gint ci, gint tap, gint in, gint out))
{
  const gint gi = in / groups, taps = k * k;

  *conv = (VaeConv){ out, in, k, k, 0, 0, 0, 0 }; /* stride k: 1×1, or 2×2 over 2×2 blocks */
  conv->groups = groups;
  conv->cache = vae_layer_cache_new ();
  conv->weight = g_new (gfloat, (gsize) out * gi * taps);
  for (gint o = 0; o < out; o++)
    for (gint ci = 0; ci < gi; ci++)
      for (gint t = 0; t < taps; t++)
        conv->weight[((gsize) o * gi + ci) * taps + t] = weight (o, ci, t, in, out);
}

/* pixel_unshuffle(x, 2) has channel 4c + tap; output o averages the g =
 * 4·in/out of them from o·g on.  With g ≥ 4 each group is g/4 whole input
 * channels, all taps; with g < 4, each input channel feeds 4/g outputs. */
static gfloat
down_weight (gint o, gint ci, gint tap, gint in, gint out)
{
  const gint g = 4 * in / out;

  if (g >= 4)
    return 1.0f / g;
  return tap / g == o % (4 / g) ? 1.0f / g : 0.0f;
}

static gfloat
ones (gint o, gint ci, gint tap, gint in, gint out)
{
  return 1.0f;
}

static gfloat
group_mean (gint o, gint ci, gint tap, gint in, gint out)
{
  return (gfloat) out / in;
}

static void
down_shortcut (VaeConv *conv, gint in, gint out)
{
  fixed_conv (conv, in, out, 2, 4 * in / out >= 4 ? out : in, down_weight);
}

/* The shortcuts between a stage of C channels and the next of NEXT: the
 * down one averages groups of 4C/NEXT unshuffled channels (whole input
 * channels, or parts of one), the up one repeats each channel 4C/NEXT
 * times before the shuffle. */
static gboolean
shortcut_fits (gint c, gint next)
{
  return c > 0 && next > 0 && (4 * c) % next == 0 && (c % next == 0 || next % c == 0) &&
         4 * c / next > 0;
}

static gboolean
load_res_block (const DcNames *names, const gchar *prefix, gint c, ResBlock *r, GError **error)
{
  g_autofree gchar *c1 = g_strdup_printf ("%s.conv1", prefix);
  g_autofree gchar *c2 = g_strdup_printf ("%s.conv2", prefix);
  g_autofree gchar *n = g_strdup_printf ("%s.norm", prefix);

  return load_conv (names, c1, c, c, 3, 1, 1, &r->conv1, error) &&
         load_conv (names, c2, c, c, 3, 1, 1, &r->conv2, error) &&
         load_norm (names, n, c, &r->norm, error);
}

/* q, k and v (diffusers' to_q, to_k, to_v, [C, C] each) as one 1×1 conv to
 * 3C, and to_out ([C, 2C]) as its two [C, C] halves. */
static gboolean
load_attention_projections (const DcNames *names, const gchar *prefix, gint c, VitBlock *v,
                            GError **error)
{
  static const gchar *parts[] = { "to_q", "to_k", "to_v" };
  const gsize         cc = (gsize) c * c;
  VaeConv             part = { 0 }, out = { 0 };
  g_autofree gchar   *to_out = g_strdup_printf ("%s.to_out", prefix);
  gboolean            ok = TRUE;

  v->qkv = (VaeConv){ 3 * c, c, 1, 1 };
  v->qkv.cache = vae_layer_cache_new ();
  v->qkv.weight = g_new (gfloat, 3 * cc);
  for (guint i = 0; ok && i < G_N_ELEMENTS (parts); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("%s.%s", prefix, parts[i]);
      if ((ok = load_conv (names, name, c, c, 1, 1, 1, &part, error)))
        memcpy (v->qkv.weight + i * cc, part.weight, cc * sizeof (gfloat));
      vae_conv_clear (&part);
    }
  if (!ok || !load_conv (names, to_out, 2 * c, c, 1, 1, 1, &out, error))
    {
      vae_conv_clear (&out);
      return FALSE;
    }
  for (gint h = 0; h < 2; h++)
    {
      v->out[h] = (VaeConv){ c, c, 1, 1 };
      v->out[h].cache = vae_layer_cache_new ();
      v->out[h].weight = g_new (gfloat, cc);
      for (gint o = 0; o < c; o++)
        memcpy (v->out[h].weight + (gsize) o * c, out.weight + (gsize) o * 2 * c + h * c,
                c * sizeof (gfloat));
    }
  vae_conv_clear (&out);
  return TRUE;
}

static gboolean
load_vit_block (const DcNames *names, const gchar *prefix, gint c, VitBlock *v, GError **error)
{
  g_autofree gchar     *attn = g_strdup_printf ("%s.attn", prefix);
  g_autofree gchar     *ms_in = g_strdup_printf ("%s.attn.to_qkv_multiscale.0.proj_in", prefix);
  g_autofree gchar     *ms_out = g_strdup_printf ("%s.attn.to_qkv_multiscale.0.proj_out", prefix);
  g_autofree gchar     *attn_norm = g_strdup_printf ("%s.attn.norm_out", prefix);
  g_autofree gchar     *inverted = g_strdup_printf ("%s.conv_out.conv_inverted", prefix);
  g_autofree gchar     *depth = g_strdup_printf ("%s.conv_out.conv_depth", prefix);
  g_autofree gchar     *point = g_strdup_printf ("%s.conv_out.conv_point", prefix);
  g_autofree gchar     *mb_norm = g_strdup_printf ("%s.conv_out.norm", prefix);
  const VaeWeightEntry *ms = vae_weights_lookupf (names->weights, "%s.weight", ms_in);

  if (c % DC_HEAD_DIM)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: %s has %d channels, not a multiple of %d-channel heads"),
                   vae_weights_get_path (names->weights), prefix, c, DC_HEAD_DIM);
      return FALSE;
    }
  if (!ms || ms->ndim != 4)
    return vae_weights_wrong_shape (names->weights, ms_in, "[3C, 1, k, k]", error);
  return load_attention_projections (names, attn, c, v, error) &&
         load_conv (names, ms_in, 3 * c, 3 * c, (gint) ms->shape[3], 1, 3 * c, &v->ms_depth,
                    error) &&
         load_conv (names, ms_out, 3 * c, 3 * c, 1, 1, 3 * c / DC_HEAD_DIM, &v->ms_point, error) &&
         load_norm (names, attn_norm, c, &v->attn_norm, error) &&
         load_conv (names, inverted, c, -1, 1, 1, 1, &v->inverted, error) &&
         (v->inverted.out_channels % 2 == 0 ||
          vae_weights_wrong_shape (names->weights, inverted,
                                   "[an even number of channels, C, 1, 1]", error)) &&
         load_conv (names, depth, v->inverted.out_channels, v->inverted.out_channels, 3, 1,
                    v->inverted.out_channels, &v->depth, error) &&
         load_conv (names, point, v->inverted.out_channels / 2, c, 1, 1, 1, &v->point, error) &&
         load_norm (names, mb_norm, c, &v->mb_norm, error);
}

static void
block_clear (Block *b)
{
  VaeConv *convs[] = { &b->res.conv1, &b->res.conv2, &b->v.qkv,      &b->v.ms_depth, &b->v.ms_point,
                       &b->v.out[0],  &b->v.out[1],  &b->v.inverted, &b->v.depth,    &b->v.point };

  for (guint i = 0; i < G_N_ELEMENTS (convs); i++)
    vae_conv_clear (convs[i]);
  vae_norm_clear (&b->res.norm);
  vae_norm_clear (&b->v.attn_norm);
  vae_norm_clear (&b->v.mb_norm);
}

static void
dcae_net_free (VaeNet *net)
{
  DcaeNet *d = (DcaeNet *) net;

  for (gint i = 0; i < MAX_STAGES; i++)
    {
      for (gint j = 0; d->stages[i].blocks && j < d->stages[i].n_blocks; j++)
        block_clear (&d->stages[i].blocks[j]);
      g_free (d->stages[i].blocks);
      vae_conv_clear (&d->stages[i].resample);
      vae_conv_clear (&d->stages[i].shortcut);
    }
  vae_conv_clear (&d->conv_in);
  vae_conv_clear (&d->in_shortcut);
  vae_norm_clear (&d->norm_out);
  vae_conv_clear (&d->conv_out);
  vae_conv_clear (&d->out_shortcut);
  g_free (d);
}

/* The blocks of stage I: diffusers' HALF_blocks.I.J, J from FIRST on, while
 * J is a ResBlock (conv1) or an EfficientViT block (attn). */
static gint
count_blocks (const DcNames *names, const gchar *blocks, gint i, gint first)
{
  gint j = first;

  while (j - first < MAX_BLOCKS &&
         (vae_weights_lookupf (names->weights, "%s.%d.%d.conv1.weight", blocks, i, j) ||
          vae_weights_lookupf (names->weights, "%s.%d.%d.attn.to_q.weight", blocks, i, j)))
    j++;
  return j - first;
}

static gboolean
load_stage (const DcNames *names, DcaeNet *d, gint i, gint c, gint first, GError **error)
{
  const gchar *blocks = d->decoder ? "decoder.up_blocks" : "encoder.down_blocks";
  Stage       *s = &d->stages[i];

  s->n_blocks = count_blocks (names, blocks, i, first);
  s->blocks = g_new0 (Block, s->n_blocks);
  for (gint j = 0; j < s->n_blocks; j++)
    {
      g_autofree gchar *prefix = g_strdup_printf ("%s.%d.%d", blocks, i, first + j);
      Block            *b = &s->blocks[j];
      b->vit = vae_weights_lookupf (names->weights, "%s.attn.to_q.weight", prefix) != NULL;
      if (!(b->vit ? load_vit_block (names, prefix, c, &b->v, error)
                   : load_res_block (names, prefix, c, &b->res, error)))
        return FALSE;
    }
  return TRUE;
}

/* Stage widths from the resamplers (encoder: the last block of each stage
 * but the deepest; decoder: the first). */
static gboolean
load_half (const DcNames *names, gboolean decoder, DcaeNet **out, GError **error)
{
  const gchar      *half = decoder ? "decoder" : "encoder";
  const gchar      *blocks = decoder ? "decoder.up_blocks" : "encoder.down_blocks";
  DcaeNet          *d = g_new0 (DcaeNet, 1);
  g_autofree gchar *conv_in = g_strdup_printf ("%s.conv_in", half);
  g_autofree gchar *conv_out = g_strdup_printf ("%s.conv_out", half);
  gint              widths[MAX_STAGES + 1], latent;

  d->net.free = dcae_net_free;
  d->net.forward = decoder ? dcae_decode : dcae_encode;
  d->decoder = decoder;
  *out = d;
  while (d->n_stages < MAX_STAGES &&
         (count_blocks (names, blocks, d->n_stages, 0) ||
          vae_weights_lookupf (names->weights, "%s.%d.0.conv.weight", blocks, d->n_stages)))
    d->n_stages++;
  if (d->n_stages < 2)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: the %s has no DC-AE stages"),
                   vae_weights_get_path (names->weights), half);
      return FALSE;
    }
  for (gint i = 0; i < d->n_stages - 1; i++)
    {
      const gint            j = decoder ? 0 : count_blocks (names, blocks, i, 0);
      const VaeWeightEntry *r =
          vae_weights_lookupf (names->weights, "%s.%d.%d.conv.weight", blocks, i, j);
      if (!r || r->ndim != 4)
        {
          g_autofree gchar *name = g_strdup_printf ("%s.%d.%d.conv.weight", blocks, i, j);
          return vae_weights_wrong_shape (names->weights, name, "a resampler's 3×3 conv", error);
        }
      widths[i] = (gint) r->shape[decoder ? 0 : 1];
      widths[i + 1] = (gint) r->shape[decoder ? 1 : 0];
      if (!shortcut_fits (widths[i], widths[i + 1]))
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                       _ ("%s: DC-AE stages of %d and %d channels, which its pixel shortcuts "
                          "cannot join"),
                       vae_weights_get_path (names->weights), widths[i], widths[i + 1]);
          return FALSE;
        }
    }
  for (gint i = 0; i < d->n_stages; i++)
    {
      const gint c = widths[i];
      if (!load_stage (names, d, i, c, decoder && i < d->n_stages - 1 ? 1 : 0, error))
        return FALSE;
      if (d->stages[i].n_blocks == 0)
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                       _ ("%s: the %s's stage %d has no blocks (only DC-AE layouts with blocks "
                          "in every stage, as Sana's f32c32, are supported)"),
                       vae_weights_get_path (names->weights), half, i);
          return FALSE;
        }
      d->stages[i].has_resample = i < d->n_stages - 1;
      if (!d->stages[i].has_resample)
        continue;
      {
        const gint        next = widths[i + 1];
        const gint        j = decoder ? 0 : d->stages[i].n_blocks;
        g_autofree gchar *prefix = g_strdup_printf ("%s.%d.%d.conv", blocks, i, j);
        if (decoder) /* from the deeper stage's width to this one's */
          {
            if (!load_conv (names, prefix, next, c, 3, 1, 1, &d->stages[i].resample, error))
              return FALSE;
            fixed_conv (&d->stages[i].shortcut, next, 4 * c, 1, next, ones);
          }
        else
          {
            if (!load_conv (names, prefix, c, next, 3, 2, 1, &d->stages[i].resample, error))
              return FALSE;
            down_shortcut (&d->stages[i].shortcut, c, next);
          }
      }
    }
  if (!decoder)
    {
      const gint last = widths[d->n_stages - 1];
      if (!load_conv (names, conv_in, 3, widths[0], 3, 1, 1, &d->conv_in, error) ||
          !load_conv (names, conv_out, last, -1, 3, 1, 1, &d->conv_out, error))
        return FALSE;
      latent = d->conv_out.out_channels;
      if (last % latent)
        return vae_weights_wrong_shape (names->weights, conv_out,
                                        "a divisor of the last stage's width", error);
      fixed_conv (&d->out_shortcut, last, latent, 1, latent, group_mean);
      d->net.in_channels = 3;
      d->net.out_channels = latent;
    }
  else
    {
      const VaeWeightEntry *w = vae_weights_lookupf (names->weights, "%s.weight", conv_in);
      const gint            last = widths[d->n_stages - 1];
      g_autofree gchar     *norm_out = g_strdup_printf ("%s.norm_out", half);
      latent = w && w->ndim == 4 ? (gint) w->shape[1] : 0;
      if (latent < 1 || last % latent)
        return vae_weights_wrong_shape (names->weights, conv_in, "[last width, latent, 3, 3]",
                                        error);
      if (!load_conv (names, conv_in, latent, last, 3, 1, 1, &d->conv_in, error) ||
          !load_norm (names, norm_out, widths[0], &d->norm_out, error) ||
          !load_conv (names, conv_out, widths[0], 3, 3, 1, 1, &d->conv_out, error))
        return FALSE;
      fixed_conv (&d->in_shortcut, latent, last, 1, latent, ones);
      d->net.in_channels = latent;
      d->net.out_channels = 3;
    }
  d->net.factor = 1 << (d->n_stages - 1);
  return TRUE;
}

/* ---- forward ------------------------------------------------------------- */

/* The steps of nets.h, and these; steps named _keep leave their input to
 * the caller. */

/* act(conv(up(x)) + residual), X kept. */
static VaeTensor *
conv_keep (const VaePass *p, const VaeConv *c, const VaeTensor *x, gboolean up,
           const VaeTensor *residual, VaeAct act, GError **error)
{
  return x ? p->backend->conv (p->backend, c, x, up, residual, act, error) : NULL;
}

/* conv(x) + residual, both consumed. */
static VaeTensor *
conv_plus (const VaePass *p, const VaeConv *c, VaeTensor *x, gboolean up, VaeTensor *residual,
           GError **error)
{
  VaeTensor *y = (x = vae_step_go_on (p, x, error)) && residual
                     ? conv_keep (p, c, x, up, residual, VAE_ACT_NONE, error)
                     : NULL;

  vae_tensor_free (x);
  vae_tensor_free (residual);
  return y;
}

/* x + RMS(h), both consumed. */
static VaeTensor *
norm_plus (const VaePass *p, const VaeNorm *norm, VaeTensor *h, VaeTensor *x, GError **error)
{
  VaeTensor *y = NULL;

  if ((h = vae_step_go_on (p, h, error)) && x &&
      (h = vae_norm_consume (p->backend, norm, h, VAE_ACT_NONE, error)))
    y = p->backend->add (p->backend, h, x, error);
  vae_tensor_free (h);
  vae_tensor_free (x);
  return y;
}

static VaeTensor *
linear_attention (const VaePass *p, VaeTensor *x, GError **error)
{
  VaeTensor *y = (x = vae_step_go_on (p, x, error))
                     ? p->backend->linear_attention (p->backend, x, DC_HEAD_DIM, DC_ATTN_EPS, error)
                     : NULL;

  vae_tensor_free (x);
  return y;
}

static VaeTensor *
gate (const VaePass *p, VaeTensor *x, GError **error)
{
  VaeTensor *y =
      (x = vae_step_go_on (p, x, error)) ? p->backend->gate (p->backend, x, error) : NULL;

  vae_tensor_free (x);
  return y;
}

/* x + RMS(conv2(SiLU(conv1(x)))), on C channels. */
static VaeTensor *
res_block (const VaePass *p, const ResBlock *r, VaeTensor *x, GError **error)
{
  VaeTensor *h = (x = vae_step_go_on (p, x, error))
                     ? conv_keep (p, &r->conv1, x, FALSE, NULL, VAE_ACT_SILU, error)
                     : NULL;

  h = vae_step_conv (p, &r->conv2, h, FALSE, VAE_ACT_NONE, error);
  return norm_plus (p, &r->norm, h, x, error);
}

/* The linear attention of the plain heads and of the multi-scale ones,
 * to_out of both, its norm and the residual; then GLUMBConv. */
static VaeTensor *
vit_block (const VaePass *p, const VitBlock *v, VaeTensor *x, GError **error)
{
  VaeTensor *qkv, *ms = NULL, *a, *h;

  /* each step runs only once the one before it succeeded: after a failure
   * the other branch is dropped, not computed */
  qkv = (x = vae_step_go_on (p, x, error))
            ? conv_keep (p, &v->qkv, x, FALSE, NULL, VAE_ACT_NONE, error)
            : NULL; /* 3C */
  if (qkv)
    ms = conv_keep (p, &v->ms_depth, qkv, FALSE, NULL, VAE_ACT_NONE, error);   /* 3C, 5×5 */
  if (!(ms = vae_step_conv (p, &v->ms_point, ms, FALSE, VAE_ACT_NONE, error))) /* 3C, per head */
    g_clear_pointer (&qkv, vae_tensor_free);
  if (!(a = vae_step_conv (p, &v->out[0], linear_attention (p, qkv, error), FALSE, VAE_ACT_NONE,
                           error))) /* C */
    g_clear_pointer (&ms, vae_tensor_free);
  a = conv_plus (p, &v->out[1], linear_attention (p, ms, error), FALSE, a, error); /* C */
  x = norm_plus (p, &v->attn_norm, a, x, error);
  h = x ? conv_keep (p, &v->inverted, x, FALSE, NULL, VAE_ACT_SILU, error) : NULL;  /* 8C */
  h = gate (p, vae_step_conv (p, &v->depth, h, FALSE, VAE_ACT_NONE, error), error); /* 4C */
  h = vae_step_conv (p, &v->point, h, FALSE, VAE_ACT_NONE, error);                  /* C */
  return norm_plus (p, &v->mb_norm, h, x, error);
}

static VaeTensor *
blocks (const VaePass *p, const Stage *s, VaeTensor *h, GError **error)
{
  for (gint j = 0; j < s->n_blocks; j++)
    h = s->blocks[j].vit ? vit_block (p, &s->blocks[j].v, h, error)
                         : res_block (p, &s->blocks[j].res, h, error);
  return h;
}

/* Progress after STEP of the pass's n_stages + 1 steps. */
static VaeTensor *
reached (const VaePass *p, const DcaeNet *d, gint step, VaeTensor *h)
{
  if (h)
    vae_pass_step (p, step, d->n_stages + 1);
  return h;
}

/* The encoder: image in [−1, 1] (3 × H × W) → latent (Z × H/2^(n−1)); B_i
 * is stage i's width. */
static VaeTensor *
dcae_encode (VaeNet *net, const VaePass *p, const VaeTensor *image, GError **error)
{
  DcaeNet   *d = (DcaeNet *) net;
  VaeTensor *h, *s;

  h = conv_keep (p, &d->conv_in, image, FALSE, NULL, VAE_ACT_NONE, error); /* B0 × H × W */
  for (gint i = 0; i < d->n_stages; i++)
    {
      const Stage *st = &d->stages[i];
      h = blocks (p, st, h, error);
      if (st->has_resample) /* mean of unshuffled groups + 3×3 stride 2: B(i+1) × H/2^(i+1) */
        {
          s = (h = vae_step_go_on (p, h, error))
                  ? conv_keep (p, &st->shortcut, h, FALSE, NULL, VAE_ACT_NONE, error)
                  : NULL;
          h = conv_plus (p, &st->resample, h, FALSE, s, error);
        }
      h = reached (p, d, i + 1, h);
    }
  s = (h = vae_step_go_on (p, h, error))
          ? conv_keep (p, &d->out_shortcut, h, FALSE, NULL, VAE_ACT_NONE, error)
          : NULL;
  return reached (p, d, d->n_stages + 1, conv_plus (p, &d->conv_out, h, FALSE, s, error)); /* Z */
}

/* The decoder: latent (Z × h × w) → image in [−1, 1], the deepest stage
 * first. */
static VaeTensor *
dcae_decode (VaeNet *net, const VaePass *p, const VaeTensor *z, GError **error)
{
  DcaeNet   *d = (DcaeNet *) net;
  VaeTensor *h, *s;

  s = conv_keep (p, &d->in_shortcut, z, FALSE, NULL, VAE_ACT_NONE, error);     /* Z repeated */
  h = s ? conv_keep (p, &d->conv_in, z, FALSE, s, VAE_ACT_NONE, error) : NULL; /* Bn × h × w */
  vae_tensor_free (s);
  for (gint i = d->n_stages - 1; i >= 0; i--)
    {
      const Stage *st = &d->stages[i];
      if (st->has_resample) /* channels repeated and shuffled + nearest ×2, 3×3: Bi × 2·… */
        {
          s = (h = vae_step_go_on (p, h, error))
                  ? conv_keep (p, &st->shortcut, h, FALSE, NULL, VAE_ACT_NONE, error)
                  : NULL;
          if (s && !vae_tensor_replace (&s, p->backend->pixel_shuffle (p->backend, s, error)))
            s = NULL;
          h = conv_plus (p, &st->resample, h, TRUE, s, error);
        }
      h = reached (p, d, d->n_stages - i, blocks (p, st, h, error));
    }
  h = vae_step_norm (p, &d->norm_out, h, VAE_ACT_RELU, error);
  return reached (p, d, d->n_stages + 1,
                  vae_step_conv (p, &d->conv_out, h, FALSE, VAE_ACT_NONE, error)); /* 3 */
}

/* ---- building ------------------------------------------------------------ */

gboolean
vae_dcae_build (const VaeWeights *weights, VaeParts *parts, GError **error)
{
  VaeStructure *s = &parts->structure;
  const DcNames names = { weights };
  DcaeNet      *enc = NULL, *dec = NULL;
  gboolean      ok = TRUE;

  memset (parts, 0, sizeof *parts);
  s->kind = VAE_KIND_DCAE;
  s->encoder_present = vae_weights_lookupf (weights, "encoder.conv_in.weight") != NULL;
  s->decoder_present = vae_weights_lookupf (weights, "decoder.conv_in.weight") != NULL;
  if (s->encoder_present)
    ok = load_half (&names, FALSE, &enc, error);
  if (ok && s->decoder_present)
    ok = load_half (&names, TRUE, &dec, error);
  parts->encoder = enc ? &enc->net : NULL;
  parts->decoder = dec ? &dec->net : NULL;
  /* not vae_parts_halves_match: this message, translated in po/, has its
   * own wording */
  if (ok && enc && dec &&
      (enc->net.out_channels != dec->net.in_channels || enc->net.factor != dec->net.factor))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: encoder (%d channels, /%d) and decoder (%d channels, ×%d) do not match"),
                   vae_weights_get_path (weights), enc->net.out_channels, enc->net.factor,
                   dec->net.in_channels, dec->net.factor);
      ok = FALSE;
    }
  if (!ok || !vae_parts_rgb (parts, weights, error))
    {
      vae_parts_clear (parts);
      return FALSE;
    }
  s->raw_channels = dec ? dec->net.in_channels : enc->net.out_channels;
  s->raw_factor = dec ? dec->net.factor : enc->net.factor;
  return TRUE;
}
