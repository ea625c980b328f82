/* TAESD's residual block, relu(conv3(relu(conv2(relu(conv1(h))))) + h),
 * with h the input or the output of the conv before it, and maybe the
 * conv after it, in bands of rows: each band's h and inner tensors are
 * computed from the rows of the input it reaches (three rows more each
 * side, four with the conv before) and stay in the caches, so only the
 * block's input and output are ever held whole: a full-resolution decoder
 * stage holds its 512² input and its 3-channel output instead of four
 * 64-channel 1024² tensors at once.  The convs of a band pad only at the
 * image's edges; inside, the rows they lose are the halo.  Where Winograd
 * takes them, the first conv reads the input's rows where they are and
 * the last adds h as it writes the sum (vae_cpu_conv_rows): no copies, no
 * pass of its own for the sum.  The conv after reads the sum band by band
 * too, each band with the last rows of the one before, which its next
 * output row's taps reach back to (docs/PERFORMANCE-NOTES.md has the
 * figures).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

/* Bytes of one band of an inner tensor: small enough that a band's
 * tensors stay in the last-level cache, large enough that the halo's 6
 * rows of recomputation (over 3 convs) stay a small share: 8 MB (32 rows
 * of TAEF2's 64 channels at 1024 wide, 6% recomputed) was faster than 4,
 * 16 or 32 MB on this project's VM. */
#define BAND_BYTES ((gsize) 8 << 20)
#define HALO       3 /* rows each side: one per 3×3 conv */
#define POST_CARRY 2 /* rows of the sum the post conv's next band reads again, at most */

/* CONV on a band of ROWS input rows from row *FIRST of the HEIGHT it
 * reads whole: padded only where the band meets that input's top or
 * bottom, so every output row is exact.  *FIRST becomes the output's first
 * row (the caller starts a band where an output row's taps start, which
 * matters only with stride 2), *OUT_ROWS its rows. */
static VaeConv
band_of (const VaeConv *conv, gint *first, gint rows, gint height, gint *out_rows)
{
  VaeConv band = *conv;

  band.pad_top = *first == 0 ? conv->pad_top : 0;
  band.pad_bottom = *first + rows == height ? conv->pad_bottom : 0;
  *first = (*first - band.pad_top + conv->pad_top) / conv->stride;
  *out_rows = (rows + band.pad_top + band.pad_bottom - conv->kernel) / conv->stride + 1;
  return band;
}

/* Conv of the band X (of up(X) when UP) from row *FIRST, as band_of:
 * X's rows read where they are where Winograd takes it. */
static VaeTensor *
band_conv (const VaeBackend *be, const VaeConv *conv, VaeRows x, gboolean up, gint *first,
           gint height, VaeAct act, GError **error)
{
  gint          rows;
  const VaeConv band = band_of (conv, first, x.rows << up, height, &rows);

  return vae_cpu_conv_band (be, &band, &x, up, act, error);
}

static gboolean
same_3x3 (const VaeConv *c)
{
  return c->kernel == 3 && c->stride == 1 && c->pad_top == 1 && c->pad_bottom == 1 &&
         c->pad_left == 1 && c->pad_right == 1 && vae_conv_groups (c) == 1;
}

/* The post conv reads the sum in bands too: a 3×3 conv of stride 1 or 2,
 * never padded by more than a row. */
static gboolean
banded_post (const VaeConv *c, gint channels)
{
  return c->kernel == 3 && (c->stride == 1 || c->stride == 2) && c->pad_top <= 1 &&
         c->pad_bottom <= 1 && vae_conv_groups (c) == 1 && c->in_channels == channels;
}

/* Output rows per band for the input X, or 0 where the block runs
 * whole. */
static gint
band_rows (const VaeResidualBlock *b, const VaeTensor *x)
{
  gint  hc, hh, hw, rows;
  gsize widest;

  vae_residual_block_h (b, x, &hc, &hh, &hw);
  widest = hc;
  if (b->pre && (!same_3x3 (b->pre) || b->pre->in_channels != x->channels))
    return 0;
  for (gint k = 0; k < 3; k++)
    if (!same_3x3 (b->conv[k]))
      return 0;
    else
      widest = MAX (widest, (gsize) b->conv[k]->out_channels);
  if (b->conv[2]->out_channels != hc || (b->post && !banded_post (b->post, hc)))
    return 0;
  rows = (gint) CLAMP (BAND_BYTES / (widest * hw * sizeof (gfloat)), 4 * HALO, (gsize) hh);
  return rows < hh ? rows : 0;
}

gint
vae_cpu_residual_block_band_convs (const VaeResidualBlock *b, const VaeTensor *x,
                                   VaeBandConv *convs)
{
  const gint rows = band_rows (b, x);
  gint       hc, hh, hw, fewest, n = 0;

  if (!rows)
    return 0;
  vae_residual_block_h (b, x, &hc, &hh, &hw);
  /* every conv of a band makes at least the band's own rows, and the last
   * band may have fewer than the others */
  fewest = MIN (rows, hh - (hh - 1) / rows * rows);
  if (b->pre)
    convs[n++] = (VaeBandConv){ b->pre, fewest, hw };
  for (gint k = 0; k < 3; k++)
    convs[n++] = (VaeBandConv){ b->conv[k], fewest, hw };
  if (b->post)
    {
      convs[n].conv = b->post;
      vae_conv_output_size (b->post, fewest, hw, &convs[n].out_h, &convs[n].out_w);
      n++;
    }
  return n;
}

gboolean
vae_cpu_residual_block_banded (const VaeResidualBlock *b, const VaeTensor *x, gsize *band_bytes)
{
  const gint rows = band_rows (b, x);
  gint       hc, hh, hw;
  gsize      row, in_rows, h_held, sum, peak = 0;

  if (!rows)
    return FALSE;
  vae_residual_block_h (b, x, &hc, &hh, &hw);
  row = (gsize) hw * sizeof (gfloat);
  in_rows = rows + 2 * HALO; /* the band of h the convs read */
  /* the pre conv's output, two rows more where ×2 rounds, kept for the
   * sum; without a pre conv the band of h is X's own rows */
  h_held = b->pre ? hc * (in_rows + 2) * row : 0;
  /* the sum's band, and the rows of the one before that the post conv
   * reads again, live through the band */
  sum = b->post ? hc * (rows + 2 * POST_CARRY) * row : 0;
  /* Each conv's input and output bands and scratch, in fp32.  An upper
   * bound: Winograd reads the pre conv's and conv[0]'s input in place and
   * conv[2] writes the sum itself; the other kernels read a copy of X's
   * rows, and conv[2] there writes its own output (vae_cpu_conv_rows); on
   * AMX the inner bands are packed bf16, about half. */
  if (b->pre)
    peak = (gsize) x->channels * ((in_rows >> b->up) + 4) * x->width * sizeof (gfloat) + h_held +
           vae_cpu_conv_scratch_bytes (b->pre, in_rows + 2, hw);
  /* conv k's input and output bands are two rows fewer each conv */
  for (gint k = 0; k < 3; k++)
    {
      const gsize rows_in = in_rows - 2 * k, rows_out = rows_in - 2;
      peak = MAX (peak, h_held + b->conv[k]->in_channels * rows_in * row +
                            b->conv[k]->out_channels * rows_out * row +
                            vae_cpu_conv_scratch_bytes (b->conv[k], rows_out, hw));
    }
  peak += sum;
  if (b->post) /* then the post conv's output and scratch */
    {
      gint post_h, post_w;
      vae_conv_output_size (b->post, rows + POST_CARRY, hw, &post_h, &post_w);
      peak = MAX (peak, sum + (gsize) b->post->out_channels * post_h * post_w * sizeof (gfloat) +
                            vae_cpu_conv_scratch_bytes (b->post, post_h, post_w));
    }
  *band_bytes = peak;
  return TRUE;
}

/* The rows [*LO, *HI) of h (HEIGHT in all) that output rows [Y0, Y1) of
 * the three convs reach. */
static void
h_rows (gint y0, gint y1, gint height, gint *lo, gint *hi)
{
  *lo = MAX (0, y0 - HALO);
  *hi = MIN (height, y1 + HALO);
}

/* The pre conv's output over (at least) h's rows [LO, HI) (of HEIGHT),
 * reading X's rows in place, and in *FIRST the row of h it starts at. */
static VaeTensor *
pre_band (const VaeBackend *be, const VaeResidualBlock *b, const VaeTensor *x, gint lo, gint hi,
          gint height, gint *first, GError **error)
{
  /* the rows of X under rows [lo − 1, hi + 1) of up(X), which it reads */
  const gint s0 = MAX (0, (lo - 1) >> b->up), s1 = MIN (x->height, (hi >> b->up) + 1);

  *first = s0 << b->up;
  return band_conv (be, b->pre, (VaeRows){ x, s0, s1 - s0 }, b->up, first, height, b->pre_act,
                    error);
}

/* Whether BE runs the block's inner convs on AMX tiles, each writing the
 * next one's packed input: the bf16 CPU backend. */
static gboolean
packed_inner (const VaeBackend *be, const VaeResidualBlock *b)
{
  return be == vae_backend_cpu_bf16 () && vae_amx_acts_apply (b->conv[0], b->conv[1]) &&
         vae_amx_acts_apply (b->conv[1], b->conv[2]);
}

/* The sum relu(conv[2](relu(conv[1](relu(conv[0](HB))))) + HB) over rows
 * [Y0, Y1) (of HEIGHT) into DST from its row AT, for the band HB of h
 * whose rows start at FIRST_H: the two inner tensors are packed bf16
 * activations, rounded as the convs reading them would round them, and
 * conv[2] adds HB and writes DST itself, so the sum is the one the layers
 * give. */
static gboolean
sum_packed (const VaeResidualBlock *b, const VaeRows *hb, gint first_h, gint y0, gint y1,
            gint height, VaeTensor *dst, gint at, GError **error)
{
  const gint    w = hb->t->width;
  gint          first = first_h, rows[3];
  const VaeConv c0 = band_of (b->conv[0], &first, hb->rows, height, &rows[0]);
  const VaeConv c1 = band_of (b->conv[1], &first, rows[0], height, &rows[1]);
  const VaeConv c2 = band_of (b->conv[2], &first, rows[1], height, &rows[2]);
  const VaeRows h = { hb->t, hb->first + y0 - first_h, y1 - y0 };
  VaeAmxActs   *a1 = vae_amx_acts_new (&c1, rows[0], w, error), *a2 = NULL;
  gboolean ok = a1 && vae_amx_conv_packed (&c0, hb, NULL, 0, NULL, VAE_ACT_RELU, rows[0], w, NULL,
                                           0, a1, error);

  ok = ok && (a2 = vae_amx_acts_new (&c2, rows[1], w, error)) &&
       vae_amx_conv_packed (&c1, NULL, a1, 0, NULL, VAE_ACT_RELU, rows[1], w, NULL, 0, a2, error);
  vae_amx_acts_free (a1);
  /* conv[2]'s rows from FIRST: those of [y0, y1) only */
  ok = ok && vae_amx_conv_packed (&c2, NULL, a2, y0 - first, &h, VAE_ACT_RELU, y1 - y0, w, dst, at,
                                  NULL, error);
  vae_amx_acts_free (a2);
  return ok;
}

/* The same sum in fp32 tensors (or bf16 products): conv[0] reads HB where
 * it is, and conv[2] adds HB as it writes DST.  HB is h's rows
 * [Y0 − HALO, Y1 + HALO) inside the image, so conv[2]'s rows start at Y0;
 * where HB reaches the image's bottom they would go on to it, and only
 * [Y0, Y1) are made. */
static gboolean
sum_convs (const VaeBackend *be, const VaeResidualBlock *b, const VaeRows *hb, gint first_h,
           gint y0, gint y1, gint height, VaeTensor *dst, gint at, GError **error)
{
  gint          first = first_h, rows;
  const VaeRows h = { hb->t, hb->first + y0 - first_h, y1 - y0 };
  VaeTensor    *t0 = band_conv (be, b->conv[0], *hb, FALSE, &first, height, VAE_ACT_RELU, error);
  VaeTensor    *t1 = NULL;
  gboolean      ok = t0 != NULL;

  ok = ok && (t1 = band_conv (be, b->conv[1], vae_rows_all (t0), FALSE, &first, height,
                              VAE_ACT_RELU, error));
  vae_tensor_free (t0);
  if (ok)
    {
      const VaeRows t1_rows = vae_rows_all (t1);
      const VaeConv c2 = band_of (b->conv[2], &first, t1->height, height, &rows);
      ok = vae_cpu_conv_rows (be, &c2, &t1_rows, FALSE, &h, VAE_ACT_RELU, dst, at, y1 - y0, error);
    }
  vae_tensor_free (t1);
  return ok;
}

/* The sum s = relu(conv[2](…) + h) over rows [Y0, Y1) (of HEIGHT), into
 * DST from its row AT. */
static gboolean
sum_band (const VaeBackend *be, const VaeResidualBlock *b, const VaeTensor *x, gint y0, gint y1,
          gint height, VaeTensor *dst, gint at, GError **error)
{
  gint       lo, hi, pre_first = 0;
  VaeTensor *pre = NULL;
  VaeRows    hb;
  gboolean   ok;

  /* h's rows [lo, hi): X's own where there is no pre conv, read in place */
  h_rows (y0, y1, height, &lo, &hi);
  if (b->pre && !(pre = pre_band (be, b, x, lo, hi, height, &pre_first, error)))
    return FALSE;
  hb = (VaeRows){ pre ? pre : x, lo - pre_first, hi - lo };
  ok = packed_inner (be, b) ? sum_packed (b, &hb, lo, y0, y1, height, dst, at, error)
                            : sum_convs (be, b, &hb, lo, y0, y1, height, dst, at, error);
  vae_tensor_free (pre);
  return ok;
}

/* The post conv's output rows whose taps all fall in SUM, the sum's rows
 * from FIRST (of HEIGHT), into OUT; *CARRY becomes the rows of SUM from
 * where the next output row's taps start, which the next band reads
 * again (none after the last band). */
static gboolean
post_band (const VaeBackend *be, const VaeResidualBlock *b, const VaeTensor *sum, gint first,
           gint height, VaeTensor *out, VaeTensor **carry, GError **error)
{
  gint       row = first, next;
  VaeTensor *p =
      band_conv (be, b->post, vae_rows_all (sum), FALSE, &row, height, b->post_act, error);

  if (!p)
    return FALSE;
  vae_tensor_put_rows (out, row, p);
  next = b->post->stride * (row + p->height) - b->post->pad_top - first;
  vae_tensor_free (p);
  g_clear_pointer (carry, vae_tensor_free);
  return first + sum->height == height ||
         (*carry = vae_tensor_rows (sum, next, sum->height, error)) != NULL;
}

VaeTensor *
vae_cpu_residual_block (const VaeBackend *be, const VaeResidualBlock *b, const VaeTensor *x,
                        GError **error)
{
  const gint rows = band_rows (b, x);
  gint       hc, h, w, oc, oh, ow;
  VaeTensor *out, *carry = NULL;
  gboolean   ok = TRUE;

  if (!rows)
    return vae_residual_block_layers (be, b, x, error);
  vae_residual_block_h (b, x, &hc, &h, &w);
  vae_residual_block_output (b, x, &oc, &oh, &ow);
  if (!(out = vae_tensor_new_uninit (oc, oh, ow, FALSE, error)))
    return NULL;
  for (gint y0 = 0; ok && y0 < h; y0 += rows)
    {
      const gint y1 = MIN (h, y0 + rows), first = y0 - (carry ? carry->height : 0);
      VaeTensor *sum;

      if (!b->post)
        {
          ok = sum_band (be, b, x, y0, y1, h, out, y0, error);
          continue;
        }
      /* the post conv reads the sum's rows [first, y1): the carried ones,
       * then the band's */
      ok = (sum = vae_tensor_new_uninit (hc, y1 - first, w, FALSE, error)) != NULL;
      if (ok && carry)
        vae_tensor_put_rows (sum, 0, carry);
      ok = ok && sum_band (be, b, x, y0, y1, h, sum, y0 - first, error) &&
           post_band (be, b, sum, first, h, out, &carry, error);
      vae_tensor_free (sum);
    }
  vae_tensor_free (carry);
  if (!ok)
    g_clear_pointer (&out, vae_tensor_free);
  return out;
}
