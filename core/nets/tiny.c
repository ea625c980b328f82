/* The TAESD family of tiny autoencoders: a plain sequence of convs and
 * residual blocks whose layout (strides, upsamples, ReLUs) is read from which
 * indices carry weights, never from a file name.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/nets.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define POOL_GROUPS 4
#define POOL_EPS    1e-5f
#define MAX_LAYERS  256

typedef enum
{
  LAYER_CONV,
  LAYER_BLOCK,
  LAYER_RELU,    /* folded into the conv before it */
  LAYER_CLAMP,   /* tanh(x / 3) · 3 */
  LAYER_UPSAMPLE /* nearest ×2, folded into the conv after it */
} LayerKind;

typedef struct
{
  LayerKind kind;
  VaeConv   conv;           /* CONV; BLOCK: first of three */
  gboolean  upsample_input; /* CONV after an UPSAMPLE */
  VaeAct    act;            /* CONV followed by RELU */
  VaeConv   conv2, conv3, skip;
  gboolean  has_skip;
  gboolean  has_pool; /* taef2: x += pool3(relu(GN(pool0(x)))) first */
  VaeConv   pool_in, pool_out;
  VaeNorm   pool_norm;
} Layer;

typedef struct
{
  VaeNet net;
  Layer *layers;
  gint   n_layers;
} TinyNet;

typedef struct
{
  const VaeWeights *weights;
  GHashTable       *names; /* "encoder.K.rest" / "decoder.K.rest" → entry */
} TinyNames;

/* ---- names --------------------------------------------------------------- */

/* A standalone .pth holds one half with bare indices: an encoder starts with
 * a conv from 3 channels at index 0, a decoder with a parameter-free clamp. */
static const gchar *
bare_half (const VaeWeights *weights)
{
  gint   ndim;
  gint64 shape[VAE_MAX_DIMS];

  if (vae_weights_shape (weights, "0.weight", &ndim, shape, NULL))
    return ndim == 4 && shape[1] == 3 ? "encoder" : NULL;
  if (vae_weights_shape (weights, "1.weight", &ndim, shape, NULL))
    return "decoder";
  return NULL;
}

static gchar *
canonical_name (const gchar *name, const gchar *bare)
{
  gint k, len = 0;

  if (sscanf (name, "encoder.layers.%d.%n", &k, &len) == 1 && len > 0)
    return g_strdup_printf ("encoder.%d.%s", k, name + len);
  if (sscanf (name, "decoder.layers.%d.%n", &k, &len) == 1 && len > 0)
    return g_strdup_printf ("decoder.%d.%s", k + 1, name + len);
  if (bare && g_ascii_isdigit (name[0]))
    return g_strdup_printf ("%s.%s", bare, name);
  return g_strdup (name);
}

gboolean
vae_tiny_detect (const VaeWeights *weights)
{
  if (bare_half (weights))
    return TRUE;
  for (guint i = 0; i < vae_weights_count (weights); i++)
    if (g_str_has_prefix (vae_weights_name (weights, i), "encoder.layers.") ||
        g_str_has_prefix (vae_weights_name (weights, i), "decoder.layers."))
      return TRUE;
  return FALSE;
}

static const VaeWeightEntry *
find (const TinyNames *names, const gchar *half, gint index, const gchar *rest)
{
  g_autofree gchar *name = g_strdup_printf ("%s.%d.%s", half, index, rest);
  return g_hash_table_lookup (names->names, name);
}

static gint
max_index (const TinyNames *names, const gchar *half)
{
  GHashTableIter iter;
  gpointer       key;
  gint           max = -1;
  gsize          len = strlen (half);

  g_hash_table_iter_init (&iter, names->names);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      gint k;
      if (strncmp (key, half, len) == 0 && ((gchar *) key)[len] == '.' &&
          sscanf ((gchar *) key + len + 1, "%d.", &k) == 1 && k >= 0 && k < MAX_LAYERS)
        max = MAX (max, k);
    }
  return max;
}

/* ---- loading ------------------------------------------------------------- */

static gboolean
load_conv (const TinyNames *names, const gchar *half, gint index, const gchar *part,
           gint in_channels, gint stride, VaeConv *conv, GError **error)
{
  g_autofree gchar     *wname = g_strdup_printf ("%s.weight", part);
  g_autofree gchar     *bname = g_strdup_printf ("%s.bias", part);
  const VaeWeightEntry *w = find (names, half, index, part[0] ? wname : "weight");
  const VaeWeightEntry *b = find (names, half, index, part[0] ? bname : "bias");
  const gchar          *path = vae_weights_get_path (names->weights);

  if (!w || w->ndim != 4 || w->shape[2] != w->shape[3] || w->shape[2] % 2 == 0 || w->shape[0] < 1 ||
      w->shape[0] > 65536 || (in_channels > 0 && w->shape[1] != in_channels) ||
      (b && (b->ndim != 1 || b->shape[0] != w->shape[0])))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: %s layer %d %s: expected a conv weight [out, %d, k, k] (odd k) and "
                      "optional bias [out]"),
                   path, half, index, part, in_channels);
      return FALSE;
    }
  conv->out_channels = (gint) w->shape[0];
  conv->in_channels = (gint) w->shape[1];
  conv->kernel = (gint) w->shape[2];
  conv->stride = stride;
  conv->pad_top = conv->pad_left = conv->pad_bottom = conv->pad_right = conv->kernel / 2;
  conv->cache = vae_layer_cache_new ();
  if (!(conv->weight = vae_weights_get_float (names->weights, w->name, NULL, error)))
    return FALSE;
  return !b || (conv->bias = vae_weights_get_float (names->weights, b->name, NULL, error));
}

static gboolean
load_pool (const TinyNames *names, const gchar *half, gint index, gint channels, Layer *l,
           GError **error)
{
  const VaeWeightEntry *g = find (names, half, index, "pool.1.weight");
  const VaeWeightEntry *b = find (names, half, index, "pool.1.bias");

  if (!load_conv (names, half, index, "pool.0", channels, 1, &l->pool_in, error) ||
      !load_conv (names, half, index, "pool.3", l->pool_in.out_channels, 1, &l->pool_out, error))
    return FALSE;
  if (!g || !b || g->ndim != 1 || b->ndim != 1 || g->shape[0] != l->pool_in.out_channels ||
      b->shape[0] != g->shape[0] || g->shape[0] % POOL_GROUPS ||
      l->pool_out.out_channels != channels)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: %s layer %d: malformed pool branch"),
                   vae_weights_get_path (names->weights), half, index);
      return FALSE;
    }
  l->pool_norm.channels = (gint) g->shape[0];
  l->pool_norm.groups = POOL_GROUPS;
  l->pool_norm.eps = POOL_EPS;
  l->pool_norm.cache = vae_layer_cache_new ();
  return (l->pool_norm.gamma = vae_weights_get_float (names->weights, g->name, NULL, error)) &&
         (l->pool_norm.beta = vae_weights_get_float (names->weights, b->name, NULL, error));
}

static gboolean
load_block (const TinyNames *names, const gchar *half, gint index, gint channels, Layer *l,
            GError **error)
{
  l->kind = LAYER_BLOCK;
  l->has_pool = find (names, half, index, "pool.0.weight") != NULL;
  if (l->has_pool && !load_pool (names, half, index, channels, l, error))
    return FALSE;
  if (!load_conv (names, half, index, "conv.0", channels, 1, &l->conv, error) ||
      !load_conv (names, half, index, "conv.2", l->conv.out_channels, 1, &l->conv2, error) ||
      !load_conv (names, half, index, "conv.4", l->conv2.out_channels, 1, &l->conv3, error))
    return FALSE;
  l->has_skip = find (names, half, index, "skip.weight") != NULL;
  if (l->has_skip)
    return load_conv (names, half, index, "skip", channels, 1, &l->skip, error);
  if (channels == l->conv3.out_channels)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
               _ ("%s: %s layer %d changes channels without a skip conv"),
               vae_weights_get_path (names->weights), half, index);
  return FALSE;
}

static void
layer_clear (Layer *l)
{
  vae_conv_clear (&l->conv);
  vae_conv_clear (&l->conv2);
  vae_conv_clear (&l->conv3);
  vae_conv_clear (&l->skip);
  vae_conv_clear (&l->pool_in);
  vae_conv_clear (&l->pool_out);
  vae_norm_clear (&l->pool_norm);
}

static void
tiny_net_free (VaeNet *net)
{
  TinyNet *t = (TinyNet *) net;

  for (gint i = 0; i < t->n_layers; i++)
    layer_clear (&t->layers[i]);
  g_free (t->layers);
  g_free (t);
}

/* Which layer each index is.  Parameter-free layers are ReLUs in an
 * encoder; in a decoder index 0 is the clamp, the one right after the first
 * conv a ReLU, and the others nearest-neighbour upsamples. */
static void
classify (const TinyNames *names, const gchar *half, gint n, Layer *layers)
{
  gboolean decoder = strcmp (half, "decoder") == 0;
  gint     first_conv = -1;

  for (gint k = 0; k < n; k++)
    {
      if (find (names, half, k, "conv.0.weight"))
        layers[k].kind = LAYER_BLOCK;
      else if (find (names, half, k, "weight"))
        {
          layers[k].kind = LAYER_CONV;
          if (first_conv < 0)
            first_conv = k;
        }
      else if (!decoder)
        layers[k].kind = LAYER_RELU;
      else if (k == 0)
        layers[k].kind = LAYER_CLAMP;
      else if (k == first_conv + 1)
        layers[k].kind = LAYER_RELU;
      else
        layers[k].kind = LAYER_UPSAMPLE;
    }
}

/* Encoder convs other than the last downsample by 2 when they have no bias
 * (taesd) or feed a ReLU (taesana's stem); the last conv maps to latents. */
static gint
conv_stride (const TinyNames *names, const gchar *half, const Layer *layers, gint k, gint n)
{
  gboolean last = TRUE;

  if (strcmp (half, "encoder") != 0)
    return 1;
  for (gint j = k + 1; j < n; j++)
    if (layers[j].kind == LAYER_CONV || layers[j].kind == LAYER_BLOCK)
      last = FALSE;
  if (last)
    return 1;
  return !find (names, half, k, "bias") || (k + 1 < n && layers[k + 1].kind == LAYER_RELU) ? 2 : 1;
}

static gboolean
structure_error (const TinyNames *names, const gchar *half, gint index, const gchar *what,
                 GError **error)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: %s layer %d: %s"),
               vae_weights_get_path (names->weights), half, index, what);
  return FALSE;
}

static TinyNet *
load_half (const TinyNames *names, const gchar *half, GError **error)
{
  TinyNet *t = g_new0 (TinyNet, 1);
  gint     n = max_index (names, half) + 1;
  gint     channels = -1, scale = 1;
  gboolean upsample_pending = FALSE;

  t->net.free = tiny_net_free;
  t->n_layers = n;
  t->layers = g_new0 (Layer, n);
  classify (names, half, n, t->layers);
  for (gint k = 0; k < n; k++)
    {
      Layer   *l = &t->layers[k];
      gboolean ok = TRUE;
      switch (l->kind)
        {
        case LAYER_CONV:
          l->conv.stride = conv_stride (names, half, t->layers, k, n);
          ok = load_conv (names, half, k, "", channels, l->conv.stride, &l->conv, error);
          if (ok && channels < 0)
            t->net.in_channels = l->conv.in_channels;
          channels = l->conv.out_channels;
          l->upsample_input = upsample_pending;
          l->act = k + 1 < n && t->layers[k + 1].kind == LAYER_RELU ? VAE_ACT_RELU : VAE_ACT_NONE;
          scale *= l->conv.stride;
          upsample_pending = FALSE;
          break;
        case LAYER_BLOCK:
          if (channels < 0)
            ok = structure_error (names, half, k, "starts with a block, not a conv", error);
          else
            ok = load_block (names, half, k, channels, l, error);
          channels = l->conv3.out_channels;
          break;
        case LAYER_UPSAMPLE:
          upsample_pending = TRUE;
          scale *= 2;
          break;
        case LAYER_RELU:
        case LAYER_CLAMP:
          break;
        }
      if (ok && upsample_pending && (l->kind != LAYER_UPSAMPLE || k == n - 1))
        ok = structure_error (names, half, k, "an upsample is not followed by a conv", error);
      if (!ok)
        {
          tiny_net_free (&t->net);
          return NULL;
        }
    }
  t->net.out_channels = channels;
  t->net.factor = scale;
  return t;
}

/* ---- forward ------------------------------------------------------------- */

/* Block L, followed by POST's conv where it is not NULL. */
static VaeTensor *
block_forward (const VaeBackend *be, const Layer *l, const Layer *post, const VaeTensor *input,
               GError **error)
{
  VaeTensor       *pooled = NULL, *h = NULL, *skip = NULL, *out = NULL;
  const VaeTensor *x = input;

  if (l->has_pool)
    {
      if (!(h = be->conv (be, &l->pool_in, x, FALSE, NULL, VAE_ACT_NONE, error)) ||
          !vae_tensor_replace (&h, be->norm (be, &l->pool_norm, h, VAE_ACT_RELU, error)) ||
          !(pooled = be->conv (be, &l->pool_out, h, FALSE, x, VAE_ACT_NONE, error)))
        goto done;
      x = pooled;
      g_clear_pointer (&h, vae_tensor_free);
    }
  if (!l->has_skip)
    {
      const VaeResidualBlock b = { .conv = { &l->conv, &l->conv2, &l->conv3 },
                                   .post = post ? &post->conv : NULL,
                                   .post_act = post ? post->act : VAE_ACT_NONE };
      out = vae_residual_block (be, &b, x, error);
      goto done;
    }
  g_return_val_if_fail (post == NULL, NULL);
  if (!(h = be->conv (be, &l->conv, x, FALSE, NULL, VAE_ACT_RELU, error)) ||
      !vae_tensor_replace (&h, be->conv (be, &l->conv2, h, FALSE, NULL, VAE_ACT_RELU, error)) ||
      !(skip = be->conv (be, &l->skip, x, FALSE, NULL, VAE_ACT_NONE, error)))
    goto done;
  out = be->conv (be, &l->conv3, h, FALSE, skip, VAE_ACT_RELU, error);
done:
  vae_tensor_free (pooled);
  vae_tensor_free (h);
  vae_tensor_free (skip);
  return out;
}

/* The index of the block that conv K feeds (past its ReLU) where the two
 * run as one VaeResidualBlock: a stride-1 conv, a block without a skip
 * conv or a pool branch; else -1. */
static gint
block_after (const TinyNet *t, gint k)
{
  gint next = k + 1;

  if (next < t->n_layers && t->layers[next].kind == LAYER_RELU)
    next++;
  if (t->layers[k].conv.stride != 1 || next >= t->n_layers || t->layers[next].kind != LAYER_BLOCK ||
      t->layers[next].has_skip || t->layers[next].has_pool)
    return -1;
  return next;
}

/* The conv that block K feeds where it runs in the block's call (as its
 * post conv): a block without a skip conv, a conv not upsampled and not
 * itself run with the block after it; else NULL. */
static const Layer *
conv_after (const TinyNet *t, gint k)
{
  const gint next = k + 1;

  if (t->layers[k].has_skip || next >= t->n_layers || t->layers[next].kind != LAYER_CONV ||
      t->layers[next].upsample_input || block_after (t, next) >= 0)
    return NULL;
  return &t->layers[next];
}

/* The layers in order; the first reads X. */
static VaeTensor *
tiny_forward (VaeNet *net, const VaePass *pass, const VaeTensor *x, GError **error)
{
  const VaeBackend *be = pass->backend;
  TinyNet          *t = (TinyNet *) net;
  VaeTensor        *h = NULL;
  gboolean          ok = TRUE;

  for (gint k = 0; ok && k < t->n_layers; k++)
    {
      const Layer     *l = &t->layers[k];
      const VaeTensor *in = h ? h : x;
      gint             next;
      if (vae_pass_stopped (pass, error))
        {
          ok = FALSE;
          break;
        }
      switch (l->kind)
        {
        case LAYER_CONV:
          if ((next = block_after (t, k)) > 0)
            {
              const Layer           *b = &t->layers[next], *post = conv_after (t, next);
              const VaeResidualBlock fused = { &l->conv,
                                               l->upsample_input,
                                               l->act,
                                               { &b->conv, &b->conv2, &b->conv3 },
                                               post ? &post->conv : NULL,
                                               post ? post->act : VAE_ACT_NONE };
              k = next + (post != NULL);
              ok = vae_tensor_replace (&h, vae_residual_block (be, &fused, in, error));
            }
          else
            ok = vae_tensor_replace (
                &h, be->conv (be, &l->conv, in, l->upsample_input, NULL, l->act, error));
          break;
        case LAYER_BLOCK:
          {
            const Layer *post = conv_after (t, k);
            ok = vae_tensor_replace (&h, block_forward (be, l, post, in, error));
            k += post != NULL;
          }
          break;
        case LAYER_CLAMP:
          ok = vae_tensor_replace (&h, be->clamp (be, in, error));
          break;
        case LAYER_RELU:     /* folded into the conv before */
        case LAYER_UPSAMPLE: /* folded into the conv after */
          break;
        }
      vae_pass_step (pass, k + 1, t->n_layers);
    }
  if (!ok)
    g_clear_pointer (&h, vae_tensor_free);
  return h;
}

gboolean
vae_tiny_build (const VaeWeights *weights, VaeParts *parts, GError **error)
{
  VaeStructure *s = &parts->structure;
  const gchar  *bare = bare_half (weights);
  TinyNames     names = { weights, g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL) };
  TinyNet      *enc = NULL, *dec = NULL;
  gboolean      ok = TRUE;

  for (guint i = 0; i < vae_weights_count (weights); i++)
    {
      const gchar *name = vae_weights_name (weights, i);
      g_hash_table_insert (names.names, canonical_name (name, bare),
                           (gpointer) vae_weights_lookup (weights, name));
    }
  memset (parts, 0, sizeof *parts);
  s->kind = VAE_KIND_TINY;
  if (max_index (&names, "encoder") >= 0 && !(enc = load_half (&names, "encoder", error)))
    ok = FALSE;
  if (ok && max_index (&names, "decoder") >= 0 && !(dec = load_half (&names, "decoder", error)))
    ok = FALSE;
  if (ok && (enc || dec))
    {
      s->encoder_present = enc != NULL;
      s->decoder_present = dec != NULL;
      s->raw_channels = enc ? enc->net.out_channels : dec->net.in_channels;
      s->raw_factor = enc ? enc->net.factor : dec->net.factor;
      for (gint i = 0; enc && i < enc->n_layers; i++)
        s->pool_branch |= enc->layers[i].has_pool;
      for (gint i = 0; dec && i < dec->n_layers; i++)
        s->pool_branch |= dec->layers[i].has_pool;
      if ((enc && enc->net.in_channels != 3) || (dec && dec->net.out_channels != 3) ||
          (enc && dec &&
           (enc->net.out_channels != dec->net.in_channels || enc->net.factor != dec->net.factor)))
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                       _ ("%s: not an RGB tiny autoencoder, or its halves disagree on latent "
                          "channels or scale"),
                       vae_weights_get_path (weights));
          ok = FALSE;
        }
    }
  else if (ok)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: no TAESD encoder or decoder layers"),
                   vae_weights_get_path (weights));
      ok = FALSE;
    }
  g_hash_table_unref (names.names);
  if (!ok)
    {
      if (enc)
        tiny_net_free (&enc->net);
      if (dec)
        tiny_net_free (&dec->net);
      return FALSE;
    }
  if (enc)
    enc->net.forward = tiny_forward;
  if (dec)
    dec->net.forward = tiny_forward;
  parts->encoder = enc ? &enc->net : NULL;
  parts->decoder = dec ? &dec->net : NULL;
  return TRUE;
}
