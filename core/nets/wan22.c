/* Wan 2.2's VAE (diffusers' AutoencoderKLWan with is_residual and
 * patch_size 2: Wan2.2_VAE.pth, the TI2V-5B model's) on one frame: the
 * layers it adds to Wan 2.1's, as fixed 2-D convolutions.  kl.c builds
 * the rest as for Qwen-Image (qwen.c: one time slice of each causal
 * kernel; time_conv never runs on a first frame).
 *
 *   patchify (image → 12 channels): channel 4c + 2·pw + ph of a patch
 *     holds colour c at row ph, column pw (einops' "c (h q) (w r) →
 *     (c r q)"): a 2×2 stride-2 convolution grouped by colour, weights 1.
 *   unpatchify: the inverse; conv_out's channels 4c + 1 and 4c + 2 swapped
 *     make it the pixel shuffle (out[c, 2i + dy, 2j + dx] = x[4c + 2dy + dx]).
 *   AvgDown3D (the encoder level's shortcut, added after its downsampler):
 *     the input padded in time to a multiple of factor_t with zero frames
 *     before it, then channel c, frame slot t and pixel (sh, sw) of each
 *     fs×fs cell become channel c·F + t·fs² + sh·fs + sw (F = ft·fs²), and
 *     each output channel is the mean of g = in·F/out of them in turn.  One
 *     frame sits in slot ft − 1 after ft − 1 zero frames, so half the
 *     entries of a temporal level are zeros: an fs×fs stride-fs convolution
 *     of weights 1/g (or 0).
 *   DupUp3D (the decoder level's shortcut, added after its upsampler):
 *     each input channel repeated r = out·F/in times, read as channel
 *     o·F + t·fs² + sh·fs + sw of output o at frame slot t, pixel (sh, sw);
 *     the first chunk keeps the frames from slot ft − 1 on, and one frame
 *     has only that slot: a 1×1 convolution that picks input channel
 *     (o·F + (ft − 1)·4 + 2sh + sw) / r for channel 4o + 2sh + sw, then the
 *     pixel shuffle.
 * Each kernel is written out dense from these definitions, then kept
 * grouped when every weight falls inside a group (as all of Wan 2.2's do).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/nets.h"

#include <string.h>

/* Whether every non-zero weight of the dense kernel D (out × in × taps)
 * joins an output to an input of the same one of GROUPS groups. */
static gboolean
inside_groups (const gfloat *d, gint out, gint in, gint taps, gint groups)
{
  if (in % groups || out % groups)
    return FALSE;
  for (gint o = 0; o < out; o++)
    for (gint c = 0; c < in; c++)
      for (gint t = 0; t < taps; t++)
        if (d[((gsize) o * in + c) * taps + t] != 0.0f && o / (out / groups) != c / (in / groups))
          return FALSE;
  return TRUE;
}

/* CONV from a dense kernel D (out × in × k × k, stride k, no padding),
 * grouped by min(in, out) when no weight crosses a group, else dense; D is
 * consumed. */
static void
from_dense (VaeConv *conv, gfloat *d, gint out, gint in, gint k)
{
  const gint taps = k * k;
  const gint groups = inside_groups (d, out, in, taps, MIN (in, out)) ? MIN (in, out) : 1;
  gsize      n = 0;

  memset (conv, 0, sizeof *conv);
  conv->out_channels = out;
  conv->in_channels = in;
  conv->kernel = k;
  conv->stride = k;
  conv->groups = groups;
  conv->cache = vae_layer_cache_new ();
  conv->weight = g_new (gfloat, (gsize) out * (in / groups) * taps);
  for (gint o = 0; o < out; o++)
    {
      const gint first = o / (out / groups) * (in / groups);
      for (gint c = first; c < first + in / groups; c++)
        for (gint t = 0; t < taps; t++)
          conv->weight[n++] = d[((gsize) o * in + c) * taps + t];
    }
  g_free (d);
}

void
vae_wan22_patchify (VaeConv *conv)
{
  gfloat *d = g_new0 (gfloat, 12 * 3 * 4);

  for (gint c = 0; c < 3; c++)
    for (gint ph = 0; ph < 2; ph++)
      for (gint pw = 0; pw < 2; pw++)
        d[((4 * c + 2 * pw + ph) * 3 + c) * 4 + 2 * ph + pw] = 1.0f;
  from_dense (conv, d, 12, 3, 2);
}

void
vae_wan22_unpatchify_order (VaeConv *conv_out)
{
  const gsize row = (gsize) vae_conv_group_inputs (conv_out) * conv_out->kernel * conv_out->kernel;
  gfloat     *tmp = g_new (gfloat, row);

  for (gint c = 0; c < conv_out->out_channels / 4; c++)
    {
      gfloat *a = conv_out->weight + (4 * c + 1) * row, *b = conv_out->weight + (4 * c + 2) * row;
      memcpy (tmp, a, row * sizeof (gfloat));
      memcpy (a, b, row * sizeof (gfloat));
      memcpy (b, tmp, row * sizeof (gfloat));
      if (conv_out->bias)
        {
          gfloat v = conv_out->bias[4 * c + 1];
          conv_out->bias[4 * c + 1] = conv_out->bias[4 * c + 2];
          conv_out->bias[4 * c + 2] = v;
        }
    }
  g_free (tmp);
}

gboolean
vae_wan22_avg_down (VaeConv *conv, gint in, gint out, gint factor_t, gint factor_s)
{
  const gint F = factor_t * factor_s * factor_s, taps = factor_s * factor_s;
  gfloat    *d;
  gint       g;

  if (in < 1 || out < 1 || (in * F) % out)
    return FALSE;
  g = in * F / out;
  d = g_new0 (gfloat, (gsize) out * in * taps);
  for (gint o = 0; o < out; o++)
    for (gint k = 0; k < g; k++)
      {
        const gint idx = o * g + k, c = idx / F, r = idx % F;
        if (r / taps == factor_t - 1) /* the frame's slot; the others are padding */
          d[((gsize) o * in + c) * taps + r % taps] += 1.0f / g;
      }
  from_dense (conv, d, out, in, factor_s);
  return TRUE;
}

gboolean
vae_wan22_dup_up (VaeConv *conv, gint in, gint out, gint factor_t)
{
  const gint F = factor_t * 4;
  gfloat    *d;
  gint       r;

  if (in < 1 || out < 1 || (out * F) % in)
    return FALSE;
  r = out * F / in;
  d = g_new0 (gfloat, (gsize) 4 * out * in);
  for (gint o = 0; o < out; o++)
    for (gint s = 0; s < 4; s++) /* s = 2sh + sw */
      d[(gsize) (4 * o + s) * in + (o * F + (factor_t - 1) * 4 + s) / r] = 1.0f;
  from_dense (conv, d, 4 * out, in, 1);
  return TRUE;
}
