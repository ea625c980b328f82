/* Qwen-Image's VAE (diffusers' AutoencoderKLQwenImage), which is Wan 2.1's
 * video VAE fine-tuned, on one frame.  For a still image only the first
 * frame passes, and on it the network is an AutoencoderKL graph
 * (kl_encode/kl_decode) with three differences the KL loader handles when
 * names->causal3d is set: RMS norms over channels, fused q/k/v projections,
 * and causal 3-D kernels, of which one time slice touches the frame:
 *
 *   A CausalConv3d of time kernel kt pads time with kt − 1 zero frames
 *   before its input and none after (2·p for padding p = kt/2, odd kt).
 *   With one input frame x its one output frame is
 *     Σ_t w[:, :, t] ⊛ frame(t − (kt − 1)),
 *   and every t < kt − 1 reads a padding frame of zeros: the layer is the
 *   2-D convolution of x with w[:, :, kt − 1] and the same spatial padding.
 *
 * The other time-only parts never run on a first frame: the encoder's
 * downsample3d applies its time_conv from the second chunk on, the
 * decoder's upsample3d from the second frame on (its first call only marks
 * the cache), so both are the 2-D resamplers alone.
 *
 * This file maps the two namings (diffusers', and Wan's own as in
 * Wan2.1_VAE.pth and ComfyUI's qwen_image_vae.safetensors) onto the KL
 * loader's diffusers names, and slices the kernels.  Wan 2.2's VAE
 * (wan22.c) is named the same way but for its levels: Wan's nest them
 * (encoder.downsamples.I.downsamples.J, decoder.upsamples.I.upsamples.J,
 * the resampler last), diffusers' give each level one resampler
 * (down_blocks.I.downsampler, up_blocks.I.upsampler).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/nets.h"

#include <stdio.h>
#include <string.h>

static gboolean
has_5d (const VaeWeights *weights, const gchar *name)
{
  const VaeWeightEntry *e = vae_weights_lookup (weights, name);

  return e && e->ndim == 5;
}

gboolean
vae_qwen_detect (const VaeWeights *weights)
{
  return has_5d (weights, "encoder.conv_in.weight") || has_5d (weights, "decoder.conv_in.weight") ||
         has_5d (weights, "encoder.conv1.weight") || has_5d (weights, "decoder.conv1.weight");
}

gsize
vae_qwen_frame_elements (const VaeWeightEntry *e)
{
  if (strstr (e->name, "time_conv."))
    return 0;
  return e->ndim == 5 && e->shape[2] > 0 ? e->n_elements / (gsize) e->shape[2] : e->n_elements;
}

gfloat *
vae_causal_frame_kernel (const gfloat *weight, gint out_channels, gint in_channels, gint kt,
                         gint kh, gint kw)
{
  const gsize taps = (gsize) kh * kw;
  gfloat     *w2 = g_new (gfloat, (gsize) out_channels * in_channels * taps);

  for (gsize oi = 0; oi < (gsize) out_channels * in_channels; oi++)
    memcpy (w2 + oi * taps, weight + (oi * kt + kt - 1) * taps, taps * sizeof (gfloat));
  return w2;
}

/* ---- names --------------------------------------------------------------- */

typedef enum
{
  BLOCK_NONE,
  BLOCK_RESNET,
  BLOCK_ATTENTION,
  BLOCK_RESAMPLE
} BlockKind;

/* What block K of a flat list (FLAT.K.…) is, in either naming. */
static BlockKind
block_kind (const VaeWeights *weights, const gchar *flat, gint k)
{
  static const struct
  {
    const gchar *tensor;
    BlockKind    kind;
  } marks[] = {
    { "residual.0.gamma", BLOCK_RESNET },
    { "norm1.gamma", BLOCK_RESNET },
    { "to_qkv.weight", BLOCK_ATTENTION },
    { "resample.1.weight", BLOCK_RESAMPLE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (marks); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("%s.%d.%s", flat, k, marks[i].tensor);
      if (vae_weights_lookup (weights, name))
        return marks[i].kind;
    }
  return BLOCK_NONE;
}

/* The KL prefixes of a flat list's blocks (…down_blocks.I.resnets.J.,
 * ….attentions.J., ….downsamplers.0. for the encoder): residual blocks are
 * level I's resnets J = 0, 1, …, an attention follows resnet J − 1, a
 * resampler closes level I.  NULL-terminated. */
static GStrv
flat_prefixes (const VaeWeights *weights, const gchar *flat, gboolean decoder)
{
  const gchar *blocks = decoder ? "decoder.up_blocks" : "encoder.down_blocks";
  const gchar *sampler = decoder ? "upsamplers" : "downsamplers";
  GPtrArray   *out = g_ptr_array_new ();
  gint         level = 0, j = 0;
  BlockKind    kind;

  for (gint k = 0; k < 1024 && (kind = block_kind (weights, flat, k)) != BLOCK_NONE; k++)
    {
      if (kind == BLOCK_RESNET)
        g_ptr_array_add (out, g_strdup_printf ("%s.%d.resnets.%d.", blocks, level, j++));
      else if (kind == BLOCK_ATTENTION)
        g_ptr_array_add (out, g_strdup_printf ("%s.%d.attentions.%d.", blocks, level, j - 1));
      else
        {
          g_ptr_array_add (out, g_strdup_printf ("%s.%d.%s.0.", blocks, level++, sampler));
          j = 0;
        }
    }
  g_ptr_array_add (out, NULL);
  return (GStrv) g_ptr_array_free (out, FALSE);
}

/* Whole-prefix renames, Wan's names and diffusers' Qwen-Image names to the
 * KL loader's (decoder.up_blocks.I.resnets.J. is the same in both). */
static const gchar *const prefixes[][2] = {
  { "conv1.", "quant_conv." },
  { "conv2.", "post_quant_conv." },
  { "encoder.conv1.", "encoder.conv_in." },
  { "decoder.conv1.", "decoder.conv_in." },
  { "encoder.head.0.", "encoder.conv_norm_out." },
  { "decoder.head.0.", "decoder.conv_norm_out." },
  { "encoder.head.2.", "encoder.conv_out." },
  { "decoder.head.2.", "decoder.conv_out." },
  { "encoder.norm_out.", "encoder.conv_norm_out." },
  { "decoder.norm_out.", "decoder.conv_norm_out." },
  { "encoder.middle.0.", "encoder.mid_block.resnets.0." },
  { "encoder.middle.1.", "encoder.mid_block.attentions.0." },
  { "encoder.middle.2.", "encoder.mid_block.resnets.1." },
  { "decoder.middle.0.", "decoder.mid_block.resnets.0." },
  { "decoder.middle.1.", "decoder.mid_block.attentions.0." },
  { "decoder.middle.2.", "decoder.mid_block.resnets.1." },
};

/* Renames inside a block: Wan's residual Sequential, the resamplers' conv
 * (a level's one resampler in diffusers' Wan 2.2 names), the attention's
 * parts, and every RMS norm's gamma as a weight. */
static const gchar *const parts[][2] = {
  { ".residual.0.", ".norm1." },           { ".residual.2.", ".conv1." },
  { ".residual.3.", ".norm2." },           { ".residual.6.", ".conv2." },
  { ".shortcut.", ".conv_shortcut." },     { ".resample.1.", ".conv." },
  { ".norm.gamma", ".group_norm.gamma" },  { ".proj.", ".to_out.0." },
  { ".downsampler.", ".downsamplers.0." }, { ".upsampler.", ".upsamplers.0." },
};

static gchar *
replace_part (gchar *name, const gchar *from, const gchar *to)
{
  gchar *at = strstr (name, from);
  gchar *out;

  if (!at)
    return name;
  out = g_strdup_printf ("%.*s%s%s", (int) (at - name), name, to, at + strlen (from));
  g_free (name);
  return out;
}

/* NAME with a flat list's block prefix FLAT.K. replaced by its KL prefix. */
static gchar *
rename_flat (const gchar *name, const gchar *flat, GStrv kl_prefixes)
{
  gint              k, len = 0;
  g_autofree gchar *format = g_strdup_printf ("%s.%%d.%%n", flat);

  if (!g_str_has_prefix (name, flat) || sscanf (name, format, &k, &len) != 1 || len == 0 || k < 0 ||
      k >= (gint) g_strv_length (kl_prefixes))
    return NULL;
  return g_strconcat (kl_prefixes[k], name + len, NULL);
}

/* Wan 2.2's own names nest a level's blocks: OUTER.I.INNER.J.rest is
 * resnet J of level I, or its resampler (resample.1, time_conv). */
static gchar *
rename_nested (const gchar *name, const gchar *outer, const gchar *inner, const gchar *blocks,
               const gchar *sampler)
{
  gint              i, j, len = 0;
  g_autofree gchar *format = g_strdup_printf ("%s.%%d.%s.%%d.%%n", outer, inner);

  if (!g_str_has_prefix (name, outer) || sscanf (name, format, &i, &j, &len) != 2 || len == 0 ||
      i < 0 || j < 0)
    return NULL;
  if (g_str_has_prefix (name + len, "resample.") || g_str_has_prefix (name + len, "time_conv."))
    return g_strdup_printf ("%s.%d.%s.0.%s", blocks, i, sampler, name + len);
  return g_strdup_printf ("%s.%d.resnets.%d.%s", blocks, i, j, name + len);
}

static gchar *
canonical (const gchar *name, GStrv down, GStrv wan_up)
{
  gchar *out = rename_nested (name, "encoder.downsamples", "downsamples", "encoder.down_blocks",
                              "downsamplers");

  if (!out)
    out = rename_nested (name, "decoder.upsamples", "upsamples", "decoder.up_blocks", "upsamplers");
  if (!out)
    out = rename_flat (name, "encoder.down_blocks", down);
  if (!out)
    out = rename_flat (name, "encoder.downsamples", down);
  if (!out)
    out = rename_flat (name, "decoder.upsamples", wan_up);
  for (guint i = 0; !out && i < G_N_ELEMENTS (prefixes); i++)
    if (g_str_has_prefix (name, prefixes[i][0]))
      out = g_strconcat (prefixes[i][1], name + strlen (prefixes[i][0]), NULL);
  if (!out)
    out = g_strdup (name);
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    out = replace_part (out, parts[i][0], parts[i][1]);
  if (g_str_has_suffix (out, ".gamma"))
    {
      gchar *weight =
          g_strdup_printf ("%.*s.weight", (int) (strlen (out) - strlen (".gamma")), out);
      g_free (out);
      out = weight;
    }
  return out;
}

GHashTable *
vae_qwen_names (const VaeWeights *weights)
{
  GHashTable *names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_auto (GStrv) down = NULL, wan_up = NULL;

  /* the encoder's list is flat in both namings, the decoder's in Wan's */
  down =
      flat_prefixes (weights,
                     vae_weights_lookup (weights, "encoder.conv1.weight") ? "encoder.downsamples"
                                                                          : "encoder.down_blocks",
                     FALSE);
  wan_up = flat_prefixes (weights, "decoder.upsamples", TRUE);
  for (guint i = 0; i < vae_weights_count (weights); i++)
    {
      const gchar *name = vae_weights_name (weights, i);
      g_hash_table_insert (names, canonical (name, down, wan_up),
                           (gpointer) vae_weights_lookup (weights, name));
    }
  return names;
}
