/* The small VQ-VAE of van den Oord et al. in the seed's layout (the state
 * dict of the well-known PyTorch notebook: _encoder, _pre_vq_conv,
 * _vq_vae._embedding, _decoder; tests/reference/make_vq_goldens.py writes
 * the model out).  Widths, depths and the number of strided layers are read
 * from the weights.
 *   encoder  _conv_1 … _conv_n (4×4 stride 2 pad 1, or odd k stride 1
 *            "same"), ReLU after each but the last; residual stack;
 *            _pre_vq_conv 1×1
 *   decoder  _conv_1 (odd k, "same"); residual stack; _conv_trans_1 … _m
 *            (4×4 stride 2 pad 1 transposed), ReLU between them
 *   stack    _residual_stack._layers.J._block.{1: 3×3, 3: 1×1}, no bias,
 *            then ReLU
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/nets.h"

#include <string.h>

#define MAX_LAYERS 64

/* relu(x) + 1×1(relu(3×3(relu(x)))) — see residual (). */
typedef struct
{
  VaeConv conv3, conv1;
} Residual;

typedef struct
{
  VaeNet            net;
  gint              n_convs;
  VaeConv          *convs; /* encoder: _conv_1 … _conv_n; decoder: _conv_1 */
  gint              n_residuals;
  Residual         *residuals;
  VaeConv           pre_vq; /* encoder */
  gint              n_transposed;
  VaeConvTranspose *transposed; /* decoder */
} VqvaeNet;

gboolean
vae_vqvae_detect (const VaeWeights *weights)
{
  return vae_weights_lookup (weights, "_vq_vae._embedding.weight") ||
         vae_weights_lookup (weights, "_encoder._conv_1.weight") ||
         vae_weights_lookup (weights, "_decoder._conv_1.weight");
}

/* ---- loading ------------------------------------------------------------- */

/* PREFIX.weight: 4-D, square kernels, IN channels (unless negative) in
 * dimension IN_AXIS (1 for a conv, 0 for a transposed conv), into *WEIGHT;
 * PREFIX.bias, when present, as long as the other channel dimension, into
 * *BIAS.  The weight's entry, or NULL with an error. */
static const VaeWeightEntry *
load_kernel (const VaeWeights *w, const gchar *prefix, gint in_axis, gint in, gfloat **weight,
             gfloat **bias, GError **error)
{
  g_autofree gchar     *name = g_strdup_printf ("%s.weight", prefix);
  g_autofree gchar     *bias_name = g_strdup_printf ("%s.bias", prefix);
  const VaeWeightEntry *e = vae_weights_lookup (w, name);
  const VaeWeightEntry *b = vae_weights_lookup (w, bias_name);
  const gint            out_axis = 1 - in_axis;

  if (!e)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL, _ ("%s: tensor '%s' is missing"),
                   vae_weights_get_path (w), name);
      return NULL;
    }
  if (e->ndim != 4 || e->shape[2] != e->shape[3] || e->shape[2] < 1 || e->shape[2] > 16 ||
      e->shape[out_axis] < 1 || e->shape[out_axis] > 65536 || e->shape[in_axis] < 1 ||
      (in >= 0 && e->shape[in_axis] != in))
    {
      g_autofree gchar *want = in_axis == 1 ? g_strdup_printf ("[out, %d, k, k]", in)
                                            : g_strdup_printf ("[%d, out, k, k]", in);
      vae_weights_wrong_shape (w, name, want, error);
      return NULL;
    }
  if (b && (b->ndim != 1 || b->shape[0] != e->shape[out_axis]))
    {
      vae_weights_wrong_shape (w, bias_name, "[out]", error);
      return NULL;
    }
  if (!(*weight = vae_weights_get_float (w, e->name, NULL, error)) ||
      (b && !(*bias = vae_weights_get_float (w, b->name, NULL, error))))
    return NULL;
  return e;
}

/* PREFIX as a conv from IN channels (any when negative): a 4×4 kernel is
 * stride 2 with padding 1 (half the size), an odd one stride 1 "same". */
static gboolean
load_conv (const VaeWeights *w, const gchar *prefix, gint in, VaeConv *c, GError **error)
{
  const VaeWeightEntry *e = load_kernel (w, prefix, 1, in, &c->weight, &c->bias, error);
  gint                  k;

  if (!e)
    return FALSE;
  k = (gint) e->shape[2];
  if (k != 4 && k % 2 == 0)
    return vae_weights_wrong_shape (w, e->name, _ ("a 4×4 or odd square kernel"), error);
  c->out_channels = (gint) e->shape[0];
  c->in_channels = (gint) e->shape[1];
  c->kernel = k;
  c->stride = k == 4 ? 2 : 1;
  c->pad_top = c->pad_left = c->pad_bottom = c->pad_right = k == 4 ? 1 : k / 2;
  c->cache = vae_layer_cache_new ();
  return TRUE;
}

/* PREFIX as a 4×4 stride-2 transposed conv from IN channels (twice the
 * size). */
static gboolean
load_transposed (const VaeWeights *w, const gchar *prefix, gint in, VaeConvTranspose *c,
                 GError **error)
{
  const VaeWeightEntry *e = load_kernel (w, prefix, 0, in, &c->weight, &c->bias, error);

  if (!e)
    return FALSE;
  if (e->shape[2] != 4)
    return vae_weights_wrong_shape (w, e->name, _ ("a 4×4 transposed kernel"), error);
  c->in_channels = (gint) e->shape[0];
  c->out_channels = (gint) e->shape[1];
  c->kernel = 4;
  c->stride = 2;
  c->pad = 1;
  c->cache = vae_layer_cache_new ();
  return TRUE;
}

/* How many of FORMAT (with one %d) exist, counting from FIRST. */
static gint
count_layers (const VaeWeights *w, const gchar *format, gint first)
{
  gint n = 0;

  while (n < MAX_LAYERS)
    {
      g_autofree gchar *name = g_strdup_printf (format, first + n);
      if (!vae_weights_lookup (w, name))
        break;
      n++;
    }
  return n;
}

/* HALF's residual stack on CHANNELS channels. */
static gboolean
load_stack (const VaeWeights *w, const gchar *half, gint channels, VqvaeNet *v, GError **error)
{
  g_autofree gchar *layers =
      g_strdup_printf ("%s._residual_stack._layers.%%d._block.1.weight", half);

  v->n_residuals = count_layers (w, layers, 0);
  v->residuals = g_new0 (Residual, v->n_residuals);
  for (gint j = 0; j < v->n_residuals; j++)
    {
      g_autofree gchar *conv3 = g_strdup_printf ("%s._residual_stack._layers.%d._block.1", half, j);
      g_autofree gchar *conv1 = g_strdup_printf ("%s._residual_stack._layers.%d._block.3", half, j);
      Residual         *r = &v->residuals[j];
      if (!load_conv (w, conv3, channels, &r->conv3, error) ||
          !load_conv (w, conv1, r->conv3.out_channels, &r->conv1, error))
        return FALSE;
      if (r->conv3.stride != 1 || r->conv1.kernel != 1 || r->conv1.out_channels != channels)
        return vae_weights_wrong_shape (
            w, conv1, _ ("a same-size block back to the stack's channels"), error);
    }
  return TRUE;
}

static void
vqvae_net_free (VaeNet *net)
{
  VqvaeNet *v = (VqvaeNet *) net;

  for (gint i = 0; v->convs && i < v->n_convs; i++)
    vae_conv_clear (&v->convs[i]);
  for (gint j = 0; v->residuals && j < v->n_residuals; j++)
    {
      vae_conv_clear (&v->residuals[j].conv3);
      vae_conv_clear (&v->residuals[j].conv1);
    }
  for (gint i = 0; v->transposed && i < v->n_transposed; i++)
    vae_conv_transpose_clear (&v->transposed[i]);
  vae_conv_clear (&v->pre_vq);
  g_free (v->convs);
  g_free (v->residuals);
  g_free (v->transposed);
  g_free (v);
}

static VaeTensor *vqvae_encode (VaeNet *net, const VaePass *p, const VaeTensor *image,
                                GError **error);
static VaeTensor *vqvae_decode (VaeNet *net, const VaePass *p, const VaeTensor *z, GError **error);

/* The encoder: _conv_1 … _conv_n, the stack, _pre_vq_conv. */
static VqvaeNet *
load_encoder (const VaeWeights *w, GError **error)
{
  VqvaeNet *v = g_new0 (VqvaeNet, 1);
  gint      channels = 3;

  v->net.free = vqvae_net_free;
  v->net.forward = vqvae_encode;
  v->net.factor = 1;
  v->n_convs = count_layers (w, "_encoder._conv_%d.weight", 1);
  v->convs = g_new0 (VaeConv, v->n_convs);
  for (gint i = 0; i < v->n_convs; i++)
    {
      g_autofree gchar *prefix = g_strdup_printf ("_encoder._conv_%d", i + 1);
      if (!load_conv (w, prefix, channels, &v->convs[i], error))
        goto fail;
      channels = v->convs[i].out_channels;
      v->net.factor *= v->convs[i].stride;
    }
  if (!load_stack (w, "_encoder", channels, v, error) ||
      !load_conv (w, "_pre_vq_conv", channels, &v->pre_vq, error))
    goto fail;
  if (v->pre_vq.kernel != 1)
    {
      vae_weights_wrong_shape (w, "_pre_vq_conv.weight", _ ("a 1×1 conv"), error);
      goto fail;
    }
  v->net.in_channels = 3;
  v->net.out_channels = v->pre_vq.out_channels;
  return v;

fail:
  vqvae_net_free (&v->net);
  return NULL;
}

/* The decoder: _conv_1, the stack, _conv_trans_1 … _conv_trans_m. */
static VqvaeNet *
load_decoder (const VaeWeights *w, GError **error)
{
  VqvaeNet *v = g_new0 (VqvaeNet, 1);
  gint      channels;

  v->net.free = vqvae_net_free;
  v->net.forward = vqvae_decode;
  v->net.factor = 1;
  v->n_convs = 1;
  v->convs = g_new0 (VaeConv, 1);
  if (!load_conv (w, "_decoder._conv_1", -1, &v->convs[0], error))
    goto fail;
  if (v->convs[0].stride != 1)
    {
      vae_weights_wrong_shape (w, "_decoder._conv_1.weight", _ ("an odd square kernel"), error);
      goto fail;
    }
  channels = v->convs[0].out_channels;
  if (!load_stack (w, "_decoder", channels, v, error))
    goto fail;
  v->n_transposed = count_layers (w, "_decoder._conv_trans_%d.weight", 1);
  v->transposed = g_new0 (VaeConvTranspose, v->n_transposed);
  for (gint i = 0; i < v->n_transposed; i++)
    {
      g_autofree gchar *prefix = g_strdup_printf ("_decoder._conv_trans_%d", i + 1);
      if (!load_transposed (w, prefix, channels, &v->transposed[i], error))
        goto fail;
      channels = v->transposed[i].out_channels;
      v->net.factor *= v->transposed[i].stride;
    }
  v->net.in_channels = v->convs[0].in_channels;
  v->net.out_channels = channels;
  return v;

fail:
  vqvae_net_free (&v->net);
  return NULL;
}

/* ---- forward ------------------------------------------------------------- */

/* One block of the stack: x + _block(x), where _block starts with an
 * in-place ReLU that rectifies x itself before the sum reads it, so the
 * block gives relu(x) + 1×1(relu(3×3(relu(x)))) (make_vq_goldens.py checks
 * this against the module).  X arrives rectified: the layer before ends in
 * a ReLU.  And the output is returned rectified: whatever reads it next,
 * the next block or the stack's closing ReLU, rectifies it first. */
static VaeTensor *
residual (const VaePass *p, const Residual *r, VaeTensor *x, GError **error)
{
  const VaeBackend *be = p->backend;
  VaeTensor        *h, *out = NULL;

  if (!(x = vae_step_go_on (p, x, error)))
    return NULL;
  if ((h = be->conv (be, &r->conv3, x, FALSE, NULL, VAE_ACT_RELU, error)))
    out = be->conv (be, &r->conv1, h, FALSE, x, VAE_ACT_RELU, error);
  vae_tensor_free (h);
  vae_tensor_free (x);
  return out;
}

/* The residual stack, its closing ReLU folded into the blocks (residual). */
static VaeTensor *
stack (const VaePass *p, const VqvaeNet *v, VaeTensor *h, GError **error)
{
  for (gint j = 0; j < v->n_residuals; j++)
    h = residual (p, &v->residuals[j], h, error);
  return h;
}

/* Progress counts the convs, blocks and transposed convs. */
static gint
steps (const VqvaeNet *v)
{
  return v->n_convs + v->n_residuals + v->n_transposed + (v->pre_vq.weight != NULL);
}

static VaeTensor *
reached (const VaePass *p, const VqvaeNet *v, gint step, VaeTensor *h)
{
  if (h)
    vae_pass_step (p, step, steps (v));
  return h;
}

/* The encoder: image − 0.5 (3 × H × W) → the pre-quantisation latent
 * (D × H/f × W/f).  Every conv ends in a ReLU: its own, or for the last one
 * the ReLU the stack's first block (or the stack's close) applies to it. */
static VaeTensor *
vqvae_encode (VaeNet *net, const VaePass *p, const VaeTensor *image, GError **error)
{
  VqvaeNet  *v = (VqvaeNet *) net;
  VaeTensor *h;

  h = vae_step_first_conv (p, &v->convs[0], image, VAE_ACT_RELU, error); /* H/2 × H/2 × W/2 */
  for (gint i = 1; i < v->n_convs; i++)
    h = reached (p, v, i, vae_step_conv (p, &v->convs[i], h, FALSE, VAE_ACT_RELU, error));
  h = reached (p, v, steps (v) - 1, stack (p, v, h, error));        /* H × H/4 × W/4 */
  h = vae_step_conv (p, &v->pre_vq, h, FALSE, VAE_ACT_NONE, error); /* D × H/4 × W/4 */
  return reached (p, v, steps (v), h);
}

/* The decoder: the (quantised) latent, D × h × w → image − 0.5 at f×. */
static VaeTensor *
vqvae_decode (VaeNet *net, const VaePass *p, const VaeTensor *z, GError **error)
{
  VqvaeNet  *v = (VqvaeNet *) net;
  VaeTensor *h;

  h = vae_step_first_conv (p, &v->convs[0], z, VAE_ACT_RELU, error); /* H × h × w, ReLU as above */
  h = reached (p, v, 1 + v->n_residuals, stack (p, v, h, error));
  for (gint i = 0; i < v->n_transposed; i++) /* ×2 each, ReLU between them */
    h = reached (p, v, 2 + v->n_residuals + i,
                 vae_step_conv_transpose (p, &v->transposed[i], h,
                                          i < v->n_transposed - 1 ? VAE_ACT_RELU : VAE_ACT_NONE,
                                          error));
  return h;
}

/* ---- building ------------------------------------------------------------ */

gboolean
vae_vqvae_build (const VaeWeights *w, VaeParts *parts, GError **error)
{
  VaeStructure *s = &parts->structure;
  VqvaeNet     *enc = NULL, *dec = NULL;
  gboolean      ok = TRUE;

  memset (parts, 0, sizeof *parts);
  s->kind = VAE_KIND_VQVAE;
  s->encoder_present = vae_weights_lookup (w, "_encoder._conv_1.weight") != NULL;
  s->decoder_present = vae_weights_lookup (w, "_decoder._conv_1.weight") != NULL;
  if (s->encoder_present && !(enc = load_encoder (w, error)))
    ok = FALSE;
  if (ok && s->decoder_present && !(dec = load_decoder (w, error)))
    ok = FALSE;
  parts->encoder = enc ? &enc->net : NULL;
  parts->decoder = dec ? &dec->net : NULL;
  if (ok && !enc && !dec)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: a VQ-VAE codebook (_vq_vae._embedding) without _encoder or _decoder"),
                   vae_weights_get_path (w));
      ok = FALSE;
    }
  if (ok)
    {
      s->raw_channels = enc ? enc->net.out_channels : dec->net.in_channels;
      s->raw_factor = enc ? enc->net.factor : dec->net.factor;
      if ((dec && dec->net.out_channels != 3) ||
          (enc && dec &&
           (enc->net.out_channels != dec->net.in_channels || enc->net.factor != dec->net.factor)))
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                       _ ("%s: not an RGB VQ-VAE, or its halves disagree on latent channels or "
                          "scale"),
                       vae_weights_get_path (w));
          ok = FALSE;
        }
    }
  if (ok && !vae_weights_lookup (w, "_vq_vae._embedding.weight"))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: a VQ-VAE without its codebook (_vq_vae._embedding.weight)"),
                   vae_weights_get_path (w));
      ok = FALSE;
    }
  if (ok)
    ok = (parts->codebook = vae_codebook_from_weights (w, "_vq_vae._embedding.weight", error)) !=
         NULL;
  if (!ok)
    vae_parts_clear (parts);
  return ok;
}
