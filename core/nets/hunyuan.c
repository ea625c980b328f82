/* HunyuanImage 2.1's VAE (diffusers' AutoencoderKLHunyuanImage): 64
 * latent channels at 1/32.  Each half is a flat list of blocks — resnets
 * (GroupNorm 32, eps 1e-6, SiLU, 3×3, twice, plus x) and resamplers — with
 * a mid block (resnet, single-head attention, resnet), and, as DC-AE, fixed
 * pixel shortcuts around its resamplers and at the latent side:
 *
 *   down (in → out):  h = conv3×3(x) to out/4, unshuffled; s = unshuffle(x)
 *                     averaged over groups of g = 4·in/out; h + s
 *   up   (in → out):  h = conv3×3(x) to 4·out, shuffled; s = x repeated
 *                     r = 4·out/in times (repeat_interleave), shuffled; h + s
 *   encoder head:     conv_out(SiLU(norm_out(x))) + x averaged over groups
 *                     of C/2Z channels (the 2Z moments, mean and logvar)
 *   decoder head:     conv_in(z) + z repeated C/Z times
 *
 * Its (un)shuffles order channels tap-major (tap·C + c, the tap 2·dy + dx)
 * where PyTorch's pixel_(un)shuffle order them channel-major (4c + tap), so
 * no grouped convolution of constant weights expresses its shortcuts as
 * DC-AE's are (see dcae.c).  Each shortcut reads the same input as the conv
 * beside it, so it is folded into that conv's weights instead:
 *   down: conv3×3 then unshuffle is a 4×4 stride-2 convolution (padding 1)
 *         whose tap-major output (tap, c) reads kernel rows and columns from
 *         the tap's offset on; the shortcut adds 1/g at the 2×2 centre taps;
 *   up:   the conv's outputs are reordered channel-major so that the
 *         backend's pixel shuffle applies, and the repeat adds 1 at the
 *         centre tap of the channel each output copies;
 *   decoder head: the repeat adds 1 at conv_in's centre taps.
 * Only the encoder head's shortcut reads a tensor other than its conv's
 * input; it is a grouped 1×1 convolution of weights 1/g.
 *
 * Names: diffusers' (encoder.down_blocks.K, K flat), or Tencent's original
 * ones (encoder.down.I.block.J, …downsample.conv, mid.block_1, mid.attn_1
 * with q/k/v/proj_out; 3-D kernels of one time slice), as diffusers'
 * scripts/convert_hunyuan_image_to_diffusers.py maps them.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/nets.h"

#include <stdio.h>
#include <string.h>

#define HY_GROUPS  32
#define HY_EPS     1e-6f
#define MAX_LEVELS 16
#define MAX_BLOCKS 256

typedef struct
{
  VaeNorm norm1, norm2;
  VaeConv conv1, conv2;
} Resnet;

/* A resnet, or a resampler (its shortcut folded in). */
typedef struct
{
  gboolean resample;
  Resnet   resnet;
  VaeConv  conv; /* down: 4×4 stride 2; up: 3×3 to 4·out, before the pixel shuffle */
} Block;

typedef struct
{
  VaeNet       net;
  gboolean     decoder;
  VaeConv      conv_in; /* decoder: the latent's repeat folded in */
  gint         n_blocks;
  Block       *blocks; /* as applied */
  Resnet       mid[2];
  VaeAttention attention;
  VaeNorm      norm_out;
  VaeConv      conv_out;
  VaeConv      out_shortcut; /* encoder: channel groups averaged */
} HyNet;

typedef struct
{
  const VaeWeights *weights;
  gboolean          original; /* Tencent's names */
} HyNames;

static VaeTensor *hy_encode (VaeNet *net, const VaePass *p, const VaeTensor *image, GError **error);
static VaeTensor *hy_decode (VaeNet *net, const VaePass *p, const VaeTensor *z, GError **error);

/* ---- names --------------------------------------------------------------- */

/* A resampler conv of Tencent's naming, which AutoencoderKL's LDM names
 * share: its width changes (4·out or out/4 channels), an LDM one's does not. */
static gboolean
original_resampler (const VaeWeights *weights)
{
  for (guint i = 0; i < vae_weights_count (weights); i++)
    {
      const gchar          *name = vae_weights_name (weights, i);
      const VaeWeightEntry *e = vae_weights_lookup (weights, name);
      gint                  level, len = 0;
      if (((sscanf (name, "encoder.down.%d.downsample.conv.weight%n", &level, &len) == 1 &&
            len > 0) ||
           (sscanf (name, "decoder.up.%d.upsample.conv.weight%n", &level, &len) == 1 && len > 0)) &&
          name[len] == '\0' && e->ndim >= 4 && e->shape[0] != e->shape[1])
        return TRUE;
    }
  return FALSE;
}

/* Tencent's resamplers (its kernels may be 3-D of one time slice), or flat
 * lists of blocks with 2-D kernels (Qwen-Image's diffusers names are flat
 * lists too, of 3-D kernels). */
gboolean
vae_hunyuan_detect (const VaeWeights *weights)
{
  return original_resampler (weights) ||
         (!vae_qwen_detect (weights) &&
          (vae_weights_lookup (weights, "encoder.down_blocks.0.conv1.weight") ||
           vae_weights_lookup (weights, "decoder.up_blocks.0.conv1.weight")));
}

gsize
vae_hunyuan_net_elements (const VaeWeightEntry *e)
{
  if (g_str_has_prefix (e->name, "encoder.") && g_str_has_suffix (e->name, ".conv.weight"))
    return e->n_elements / 9 * 64;
  return e->n_elements;
}

/* Whether any tensor's name begins with FORMAT's expansion and a dot. */
static gboolean has_prefix (const HyNames *names, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
has_prefix (const HyNames *names, const gchar *format, ...)
{
  g_autofree gchar *prefix = NULL, *dotted = NULL;
  va_list           args;

  va_start (args, format);
  prefix = g_strdup_vprintf (format, args);
  va_end (args);
  dotted = g_strconcat (prefix, ".", NULL);
  for (guint i = 0; i < vae_weights_count (names->weights); i++)
    if (g_str_has_prefix (vae_weights_name (names->weights, i), dotted))
      return TRUE;
  return FALSE;
}

/* The prefixes of HALF's blocks in the order they run, and which are
 * resamplers (NULL-terminated; RESAMPLE as long).  A block is there when
 * any of its tensors is, so that a missing one is named when it loads. */
static GStrv
block_prefixes (const HyNames *names, const gchar *half, gboolean decoder, GArray *resample)
{
  GPtrArray *out = g_ptr_array_new ();
  gboolean   is_resample;

  if (!names->original)
    {
      const gchar *list = decoder ? "up_blocks" : "down_blocks";
      for (gint k = 0; k < MAX_BLOCKS && has_prefix (names, "%s.%s.%d", half, list, k); k++)
        {
          is_resample = has_prefix (names, "%s.%s.%d.conv", half, list, k);
          g_ptr_array_add (out, g_strdup_printf ("%s.%s.%d", half, list, k));
          g_array_append_val (resample, is_resample);
        }
    }
  else
    {
      const gchar *list = decoder ? "up" : "down", *sampler = decoder ? "upsample" : "downsample";
      for (gint i = 0; i < MAX_LEVELS && has_prefix (names, "%s.%s.%d", half, list, i); i++)
        {
          is_resample = FALSE;
          for (gint j = 0;
               j < MAX_BLOCKS && has_prefix (names, "%s.%s.%d.block.%d", half, list, i, j); j++)
            {
              g_ptr_array_add (out, g_strdup_printf ("%s.%s.%d.block.%d", half, list, i, j));
              g_array_append_val (resample, is_resample);
            }
          if ((is_resample = has_prefix (names, "%s.%s.%d.%s", half, list, i, sampler)))
            {
              g_ptr_array_add (out, g_strdup_printf ("%s.%s.%d.%s", half, list, i, sampler));
              g_array_append_val (resample, is_resample);
            }
        }
    }
  g_ptr_array_add (out, NULL);
  return (GStrv) g_ptr_array_free (out, FALSE);
}

/* ---- loading ------------------------------------------------------------- */

static gfloat *
get (const HyNames *names, const VaeWeightEntry *e, GError **error)
{
  return vae_weights_get_float (names->weights, e->name, NULL, error);
}

/* A K×K stride-1 "same" convolution from PREFIX.weight ([out, IN, k, k];
 * Tencent's [out, IN, 1, k, k]; [out, IN] for K = 1) and PREFIX.bias. */
static gboolean
load_conv (const HyNames *names, const gchar *prefix, gint in, gint k, VaeConv *conv,
           GError **error)
{
  g_autofree gchar     *wname = g_strdup_printf ("%s.weight", prefix);
  g_autofree gchar     *bname = g_strdup_printf ("%s.bias", prefix);
  const VaeWeightEntry *w = vae_weights_lookup (names->weights, wname);
  const VaeWeightEntry *b = vae_weights_lookup (names->weights, bname);
  gboolean              fits;

  if (!w)
    return vae_weights_missing_weight (names->weights, prefix, error);
  fits = w->ndim == 4   ? w->shape[2] == k && w->shape[3] == k
         : w->ndim == 5 ? w->shape[2] == 1 && w->shape[3] == k && w->shape[4] == k
                        : w->ndim == 2 && k == 1;
  if (!fits || w->shape[1] != in || w->shape[0] < 1 || w->shape[0] > 65536)
    {
      g_autofree gchar *want = g_strdup_printf ("[out, %d, %d, %d]", in, k, k);
      return vae_weights_wrong_shape (names->weights, wname, want, error);
    }
  if (!b || b->ndim != 1 || b->shape[0] != w->shape[0])
    return vae_weights_wrong_shape (names->weights, bname, "[out]", error);
  *conv = (VaeConv){ (gint) w->shape[0], in, k, 1, k / 2, k / 2, k / 2, k / 2 };
  conv->cache = vae_layer_cache_new ();
  return (conv->weight = get (names, w, error)) && (conv->bias = get (names, b, error));
}

static gboolean
load_norm (const HyNames *names, const gchar *prefix, gint channels, VaeNorm *norm, GError **error)
{
  const VaeWeightEntry *w = vae_weights_lookupf (names->weights, "%s.weight", prefix);
  const VaeWeightEntry *b = vae_weights_lookupf (names->weights, "%s.bias", prefix);

  if (!w || !b || w->ndim != 1 || b->ndim != 1 || w->shape[0] != channels ||
      b->shape[0] != channels || channels % HY_GROUPS)
    {
      g_autofree gchar *name = g_strdup_printf ("%s.weight", prefix);
      g_autofree gchar *want = g_strdup_printf ("[%d], with a bias of [%d], in groups of %d",
                                                channels, channels, HY_GROUPS);
      return vae_weights_wrong_shape (names->weights, name, want, error);
    }
  *norm = (VaeNorm){ channels, HY_GROUPS, HY_EPS };
  norm->cache = vae_layer_cache_new ();
  return (norm->gamma = get (names, w, error)) && (norm->beta = get (names, b, error));
}

/* x + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))) on C channels: every resnet
 * of the released model keeps its width (diffusers' conv_shortcut would be
 * applied to the wrong tensor, so a file with one cannot have run). */
static gboolean
load_resnet (const HyNames *names, const gchar *prefix, gint c, Resnet *r, GError **error)
{
  g_autofree gchar *n1 = g_strdup_printf ("%s.norm1", prefix);
  g_autofree gchar *c1 = g_strdup_printf ("%s.conv1", prefix);
  g_autofree gchar *n2 = g_strdup_printf ("%s.norm2", prefix);
  g_autofree gchar *c2 = g_strdup_printf ("%s.conv2", prefix);

  if (!load_norm (names, n1, c, &r->norm1, error) || !load_conv (names, c1, c, 3, &r->conv1, error))
    return FALSE;
  if (r->conv1.out_channels != c)
    {
      g_autofree gchar *want = g_strdup_printf ("[%d, %d, 3, 3] (resnets keep their width)", c, c);
      g_autofree gchar *name = g_strdup_printf ("%s.weight", c1);
      return vae_weights_wrong_shape (names->weights, name, want, error);
    }
  return load_norm (names, n2, c, &r->norm2, error) &&
         load_conv (names, c2, c, 3, &r->conv2, error) &&
         (r->conv2.out_channels == c ||
          vae_weights_wrong_shape (names->weights, c2, "a conv keeping the resnet's width", error));
}

static void
resnet_clear (Resnet *r)
{
  vae_norm_clear (&r->norm1);
  vae_norm_clear (&r->norm2);
  vae_conv_clear (&r->conv1);
  vae_conv_clear (&r->conv2);
}

/* The mid block's attention: GroupNorm and four 1×1 projections (Conv2d
 * weights [C, C, 1, 1]). */
static gboolean
load_attention (const HyNames *names, const gchar *prefix, gint c, VaeAttention *a, GError **error)
{
  static const gchar *diffusers[] = { "to_q", "to_k", "to_v", "proj" };
  static const gchar *original[] = { "q", "k", "v", "proj_out" };
  VaeConv            *convs[] = { &a->q, &a->k, &a->v, &a->proj };
  g_autofree gchar   *norm = g_strdup_printf ("%s.norm", prefix);

  if (!load_norm (names, norm, c, &a->norm, error))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (convs); i++)
    {
      g_autofree gchar *part =
          g_strdup_printf ("%s.%s", prefix, names->original ? original[i] : diffusers[i]);
      if (!load_conv (names, part, c, 1, convs[i], error))
        return FALSE;
      if (convs[i]->out_channels != c)
        return vae_weights_wrong_shape (names->weights, part, "a square 1×1 projection", error);
    }
  return TRUE;
}

static gboolean
load_mid (const HyNames *names, const gchar *half, gint c, HyNet *hy, GError **error)
{
  g_autofree gchar *r0 =
      g_strdup_printf (names->original ? "%s.mid.block_1" : "%s.mid_block.resnets.0", half);
  g_autofree gchar *attn =
      g_strdup_printf (names->original ? "%s.mid.attn_1" : "%s.mid_block.attentions.0", half);
  g_autofree gchar *r1 =
      g_strdup_printf (names->original ? "%s.mid.block_2" : "%s.mid_block.resnets.1", half);

  return load_resnet (names, r0, c, &hy->mid[0], error) &&
         load_attention (names, attn, c, &hy->attention, error) &&
         load_resnet (names, r1, c, &hy->mid[1], error);
}

/* Adds STEP to the centre taps of a K×K kernel's (output O, input I) slice. */
static void
add_centre (VaeConv *conv, gint o, gint i, gint k, gint centre, gfloat step)
{
  conv->weight[(((gsize) o * conv->in_channels + i) * k + centre) * k + centre] += step;
}

/* The downsampler of IN channels to 4·C' from its 3×3 conv [C', IN] (C3):
 * one 4×4 stride-2 convolution of output (tap, c) = tap·C' + c, the kernel
 * rows and columns from the tap's (dy, dx) on, plus the shortcut's 1/g at
 * the centre 2×2 taps of the channels output o averages.  Its weights are
 * 7⅑ times C3's, so their allocation may fail (an error naming PREFIX). */
static gboolean
fold_down (const VaeConv *c3, const gchar *prefix, VaeConv *down, GError **error)
{
  const gint  in = c3->in_channels, part = c3->out_channels, out = 4 * part, g = 4 * in / out;
  const gsize n = (gsize) out * in * 16;

  *down = (VaeConv){ out, in, 4, 2, 1, 1, 1, 1 };
  down->cache = vae_layer_cache_new ();
  if (!(down->weight = vae_try_alloc_floats (n, prefix, error)))
    return FALSE;
  memset (down->weight, 0, n * sizeof (gfloat));
  down->bias = g_new (gfloat, out);
  for (gint tap = 0; tap < 4; tap++)
    for (gint c = 0; c < part; c++)
      {
        const gint o = tap * part + c, dy = tap / 2, dx = tap % 2;
        down->bias[o] = c3->bias[c];
        for (gint i = 0; i < in; i++)
          for (gint ky = 0; ky < 3; ky++)
            for (gint kx = 0; kx < 3; kx++)
              down->weight[(((gsize) o * in + i) * 4 + dy + ky) * 4 + dx + kx] =
                  c3->weight[(((gsize) c * in + i) * 3 + ky) * 3 + kx];
      }
  /* shortcut: output o averages unshuffled channels o·g … o·g + g − 1, each
   * the input channel m % in at tap m / in, read at kernel tap (1 + dy, 1 + dx) */
  for (gint o = 0; o < out; o++)
    for (gint j = 0; j < g; j++)
      {
        const gint m = o * g + j, tap = m / in, i = m % in;
        down->weight[(((gsize) o * in + i) * 4 + 1 + tap / 2) * 4 + 1 + tap % 2] += 1.0f / g;
      }
  return TRUE;
}

/* The upsampler of IN channels to OUT from its 3×3 conv [4·OUT, IN] in
 * place: outputs reordered from tap·OUT + c to 4c + tap (the backend's pixel
 * shuffle), plus the repeat's 1 at the centre tap of input (tap·OUT + c)/r. */
static void
fold_up (VaeConv *conv)
{
  const gint  in = conv->in_channels, out = conv->out_channels / 4, r = 4 * out / in;
  const gsize per = (gsize) in * 9;
  gfloat     *w = g_new (gfloat, (gsize) 4 * out * per), *b = g_new (gfloat, 4 * out);

  for (gint tap = 0; tap < 4; tap++)
    for (gint c = 0; c < out; c++)
      {
        memcpy (w + (gsize) (4 * c + tap) * per, conv->weight + (gsize) (tap * out + c) * per,
                per * sizeof (gfloat));
        b[4 * c + tap] = conv->bias[tap * out + c];
      }
  g_free (conv->weight);
  g_free (conv->bias);
  conv->weight = w;
  conv->bias = b;
  for (gint tap = 0; tap < 4; tap++)
    for (gint c = 0; c < out; c++)
      add_centre (conv, 4 * c + tap, (tap * out + c) / r, 3, 1, 1.0f);
}

/* Whether a resampler's pixel shortcut can join C channels to NEXT: the
 * down one averages 4C/NEXT unshuffled channels, the up one repeats each
 * channel 4·NEXT/C times. */
static gboolean
shortcut_fits (gboolean decoder, gint c, gint next)
{
  return decoder ? (4 * next) % c == 0 : next % 4 == 0 && (4 * c) % next == 0;
}

/* Block K, a resampler at PREFIX taking *C channels (then the new width). */
static gboolean
load_resampler (const HyNames *names, gboolean decoder, const gchar *prefix, gint *c, Block *b,
                GError **error)
{
  g_autofree gchar *conv = g_strdup_printf ("%s.conv", prefix);
  VaeConv           c3 = { 0 };
  gint              next;

  b->resample = TRUE;
  if (!load_conv (names, conv, *c, 3, decoder ? &b->conv : &c3, error))
    {
      vae_conv_clear (&c3);
      return FALSE;
    }
  next = decoder ? b->conv.out_channels / 4 : 4 * c3.out_channels;
  if ((decoder && b->conv.out_channels % 4) || !shortcut_fits (decoder, *c, next))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: %s joins %d channels to %d, which its pixel shortcut cannot"),
                   vae_weights_get_path (names->weights), prefix, *c, next);
      vae_conv_clear (&c3);
      return FALSE;
    }
  if (decoder)
    fold_up (&b->conv);
  else if (!fold_down (&c3, prefix, &b->conv, error))
    {
      vae_conv_clear (&c3);
      return FALSE;
    }
  vae_conv_clear (&c3);
  *c = next;
  return TRUE;
}

static void
hy_net_free (VaeNet *net)
{
  HyNet *hy = (HyNet *) net;

  for (gint k = 0; hy->blocks && k < hy->n_blocks; k++)
    {
      resnet_clear (&hy->blocks[k].resnet);
      vae_conv_clear (&hy->blocks[k].conv);
    }
  g_free (hy->blocks);
  resnet_clear (&hy->mid[0]);
  resnet_clear (&hy->mid[1]);
  vae_attention_clear (&hy->attention);
  vae_conv_clear (&hy->conv_in);
  vae_norm_clear (&hy->norm_out);
  vae_conv_clear (&hy->conv_out);
  vae_conv_clear (&hy->out_shortcut);
  g_free (hy);
}

/* The blocks of a half, from C channels on; C follows them through. */
static gboolean
load_blocks (const HyNames *names, HyNet *hy, const gchar *half, gint *c, GError **error)
{
  g_autoptr (GArray) resample = g_array_new (FALSE, FALSE, sizeof (gboolean));
  g_auto (GStrv) prefixes = block_prefixes (names, half, hy->decoder, resample);
  gint n_resample = 0;

  hy->n_blocks = (gint) resample->len;
  hy->blocks = g_new0 (Block, hy->n_blocks);
  for (gint k = 0; k < hy->n_blocks; k++)
    if (g_array_index (resample, gboolean, k))
      {
        if (!load_resampler (names, hy->decoder, prefixes[k], c, &hy->blocks[k], error))
          return FALSE;
        n_resample++;
      }
    else if (!load_resnet (names, prefixes[k], *c, &hy->blocks[k].resnet, error))
      return FALSE;
  if (hy->n_blocks == 0 || n_resample > 10)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: the %s has no resnets, or more than 10 resamplers"),
                   vae_weights_get_path (names->weights), half);
      return FALSE;
    }
  hy->net.factor = 1 << n_resample;
  return TRUE;
}

/* HALF's conv_in, of the input width its weight gives (WANT, its shape
 * for a message, says which). */
static gboolean
load_conv_in (const HyNames *names, const gchar *half, const gchar *want, VaeConv *conv,
              GError **error)
{
  g_autofree gchar     *prefix = g_strdup_printf ("%s.conv_in", half);
  g_autofree gchar     *wname = g_strdup_printf ("%s.weight", prefix);
  const VaeWeightEntry *w = vae_weights_lookup (names->weights, wname);

  if (!w || w->ndim < 4 || w->shape[1] < 1 || w->shape[1] > 65536)
    return vae_weights_wrong_shape (names->weights, wname, want, error);
  return load_conv (names, prefix, (gint) w->shape[1], 3, conv, error);
}

/* The encoder: conv_in, blocks, mid, then the head and its shortcut. */
static gboolean
load_encoder (const HyNames *names, HyNet *hy, GError **error)
{
  gint c, moments, g;

  if (!load_conv_in (names, "encoder", "[width, 3, 3, 3]", &hy->conv_in, error))
    return FALSE;
  c = hy->conv_in.out_channels;
  if (!load_blocks (names, hy, "encoder", &c, error) ||
      !load_mid (names, "encoder", c, hy, error) ||
      !load_norm (names, "encoder.norm_out", c, &hy->norm_out, error) ||
      !load_conv (names, "encoder.conv_out", c, 3, &hy->conv_out, error))
    return FALSE;
  moments = hy->conv_out.out_channels;
  if (moments % 2 || c % moments)
    return vae_weights_wrong_shape (names->weights, "encoder.conv_out.weight",
                                    "[2Z, width, 3, 3], 2Z dividing the width", error);
  /* out_shortcut: output o averages channels o·g … o·g + g − 1 */
  g = c / moments;
  hy->out_shortcut = (VaeConv){ moments, c, 1, 1 };
  hy->out_shortcut.groups = moments;
  hy->out_shortcut.cache = vae_layer_cache_new ();
  hy->out_shortcut.weight = g_new (gfloat, c);
  for (gint i = 0; i < c; i++)
    hy->out_shortcut.weight[i] = 1.0f / g;
  hy->net.in_channels = hy->conv_in.in_channels;
  hy->net.out_channels = moments;
  return TRUE;
}

/* The decoder: conv_in with the latent's repeat, mid, blocks, head. */
static gboolean
load_decoder (const HyNames *names, HyNet *hy, GError **error)
{
  gint z, c, r;

  if (!load_conv_in (names, "decoder", "[width, Z, 3, 3]", &hy->conv_in, error))
    return FALSE;
  z = hy->conv_in.in_channels;
  c = hy->conv_in.out_channels;
  if (c % z)
    return vae_weights_wrong_shape (names->weights, "decoder.conv_in.weight",
                                    "[width, Z, 3, 3], Z dividing the width", error);
  r = c / z; /* output o copies latent channel o / r */
  for (gint o = 0; o < c; o++)
    add_centre (&hy->conv_in, o, o / r, 3, 1, 1.0f);
  if (!load_mid (names, "decoder", c, hy, error) ||
      !load_blocks (names, hy, "decoder", &c, error) ||
      !load_norm (names, "decoder.norm_out", c, &hy->norm_out, error) ||
      !load_conv (names, "decoder.conv_out", c, 3, &hy->conv_out, error))
    return FALSE;
  hy->net.in_channels = z;
  hy->net.out_channels = hy->conv_out.out_channels;
  return TRUE;
}

static HyNet *
load_half (const HyNames *names, gboolean decoder, GError **error)
{
  HyNet *hy = g_new0 (HyNet, 1);

  hy->net.free = hy_net_free;
  hy->net.forward = decoder ? hy_decode : hy_encode;
  hy->decoder = decoder;
  if (decoder ? load_decoder (names, hy, error) : load_encoder (names, hy, error))
    return hy;
  hy_net_free (&hy->net);
  return NULL;
}

/* ---- forward ------------------------------------------------------------- */

/* x + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))). */
static VaeTensor *
resnet (const VaePass *p, const Resnet *r, VaeTensor *x, GError **error)
{
  const VaeBackend *be = p->backend;
  VaeTensor        *h, *out = NULL;

  if (!(x = vae_step_go_on (p, x, error)))
    return NULL;
  h = be->norm (be, &r->norm1, x, VAE_ACT_SILU, error);
  h = vae_step_conv (p, &r->conv1, h, FALSE, VAE_ACT_NONE, error);
  h = vae_step_norm (p, &r->norm2, h, VAE_ACT_SILU, error);
  if (h)
    out = be->conv (be, &r->conv2, h, FALSE, x, VAE_ACT_NONE, error);
  vae_tensor_free (x);
  vae_tensor_free (h);
  return out;
}

static VaeTensor *
mid (const VaePass *p, const HyNet *hy, VaeTensor *h, GError **error)
{
  h = resnet (p, &hy->mid[0], h, error);
  h = vae_step_attention (p, &hy->attention, h, error);
  return resnet (p, &hy->mid[1], h, error);
}

/* Progress after STEP of the pass's n_blocks + 2 steps. */
static VaeTensor *
reached (const VaePass *p, const HyNet *hy, gint step, VaeTensor *h)
{
  if (h)
    vae_pass_step (p, step, hy->n_blocks + 2);
  return h;
}

/* The encoder: image in [−1, 1] (3 × H × W) → 2Z moments (mean, logvar) at
 * 1/2^resamplers. */
static VaeTensor *
hy_encode (VaeNet *net, const VaePass *p, const VaeTensor *image, GError **error)
{
  HyNet     *hy = (HyNet *) net;
  VaeTensor *h, *s = NULL, *out = NULL;

  h = vae_step_first_conv (p, &hy->conv_in, image, VAE_ACT_NONE, error); /* B0 × H × W */
  for (gint k = 0; k < hy->n_blocks; k++)
    {
      const Block *b = &hy->blocks[k];
      h = b->resample ? vae_step_conv (p, &b->conv, h, FALSE, VAE_ACT_NONE, error) /* ½ size */
                      : resnet (p, &b->resnet, h, error);
      h = reached (p, hy, k + 1, h);
    }
  h = mid (p, hy, h, error); /* Bn × h × w */
  if ((h = vae_step_go_on (p, h, error)))
    s = p->backend->conv (p->backend, &hy->out_shortcut, h, FALSE, NULL, VAE_ACT_NONE, error);
  if (!s)
    g_clear_pointer (&h, vae_tensor_free);
  h = vae_step_norm (p, &hy->norm_out, h, VAE_ACT_SILU, error);
  if (h)
    out = p->backend->conv (p->backend, &hy->conv_out, h, FALSE, s, VAE_ACT_NONE, error); /* 2Z */
  vae_tensor_free (h);
  vae_tensor_free (s);
  return reached (p, hy, hy->n_blocks + 2, out);
}

/* The decoder: latent z (Z × h × w, raw scale) → image in [−1, 1]. */
static VaeTensor *
hy_decode (VaeNet *net, const VaePass *p, const VaeTensor *z, GError **error)
{
  HyNet     *hy = (HyNet *) net;
  VaeTensor *h;

  h = vae_step_first_conv (p, &hy->conv_in, z, VAE_ACT_NONE, error); /* Bn × h × w */
  h = reached (p, hy, 1, mid (p, hy, h, error));
  for (gint k = 0; k < hy->n_blocks; k++)
    {
      const Block *b = &hy->blocks[k];
      h = b->resample
              ? vae_step_pixel_shuffle (
                    p, vae_step_conv (p, &b->conv, h, FALSE, VAE_ACT_NONE, error), error) /* ×2 */
              : resnet (p, &b->resnet, h, error);
      h = reached (p, hy, k + 2, h);
    }
  h = vae_step_norm (p, &hy->norm_out, h, VAE_ACT_SILU, error);
  h = vae_step_conv (p, &hy->conv_out, h, FALSE, VAE_ACT_NONE, error); /* 3 × H × W */
  return reached (p, hy, hy->n_blocks + 2, h);
}

/* ---- building ------------------------------------------------------------ */

gboolean
vae_hunyuan_build (const VaeWeights *weights, VaeParts *parts, GError **error)
{
  VaeStructure *s = &parts->structure;
  HyNames       names = { weights, FALSE };
  HyNet        *enc = NULL, *dec = NULL;
  gboolean      ok = TRUE;

  memset (parts, 0, sizeof *parts);
  names.original = !vae_weights_lookup (weights, "encoder.down_blocks.0.conv1.weight") &&
                   !vae_weights_lookup (weights, "decoder.up_blocks.0.conv1.weight");
  s->kind = VAE_KIND_HUNYUAN_IMAGE;
  s->encoder_present = vae_weights_lookupf (weights, "encoder.conv_in.weight") != NULL;
  s->decoder_present = vae_weights_lookupf (weights, "decoder.conv_in.weight") != NULL;
  if (s->encoder_present && !(enc = load_half (&names, FALSE, error)))
    ok = FALSE;
  if (ok && s->decoder_present && !(dec = load_half (&names, TRUE, error)))
    ok = FALSE;
  parts->encoder = enc ? &enc->net : NULL;
  parts->decoder = dec ? &dec->net : NULL;
  /* the encoder gives mean and log-variance */
  if (!ok || !vae_parts_rgb (parts, weights, error) ||
      !vae_parts_halves_match (parts, weights, 2, error))
    {
      vae_parts_clear (parts);
      return FALSE;
    }
  s->raw_channels = dec ? dec->net.in_channels : enc->net.out_channels / 2;
  s->raw_factor = dec ? dec->net.factor : enc->net.factor;
  return TRUE;
}
