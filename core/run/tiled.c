/* The tiled executor: a backend that runs each layer of the wrapped backend
 * (the CPU's, or a device's for a pass too large for it) in bands of
 * full-width rows.  A band reads the rows of its input that its outputs
 * depend on (the halo), so every output row is computed from exactly the
 * values the plain run uses — no overlap blending is needed and there are
 * no seams.  GroupNorm gathers its statistics over all
 * bands first and leaves the normalisation pending, applied as the next
 * layer reads each band, so the normalised tensor is never stored.
 * Tensors larger than the settings' file_bytes live in an unlinked
 * temporary file, read and written with pread/pwrite (page cache, not
 * resident memory), so the peak is set by the band height.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"
#include "run/tiled.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  gint    ref_count;
  gint    channels, height, width;
  gfloat *memory; /* in memory, or */
  gsize   capacity;
  gint    fd; /* in an unlinked temporary file, else −1 */
} Store;

/* What a tiled tensor's `external` points to: a store and an optional
 * pending per-channel y = act(x·scale + shift), or a pending RMS norm. */
typedef struct
{
  VaeExternal    base;
  Store         *store;
  gfloat        *scale; /* NULL: no pending normalisation */
  gfloat        *shift;
  VaeAct         act;
  const VaeNorm *rms; /* NULL, or an RMS norm applied as rows are read */
} View;

typedef struct
{
  VaeBackend        base;
  const VaeBackend *inner;
  VaeTileSettings   settings;
  VaePass           outer; /* its progress hears of bands; its cancel flag is read between them */
  gint              bands_done;
} Tiled;

/* ---- stores ------------------------------------------------------------------- */

static void
store_unref (Store *s)
{
  if (--s->ref_count > 0)
    return;
  vae_scratch_free (s->memory, s->capacity);
  if (s->fd >= 0)
    close (s->fd);
  g_free (s);
}

static Store *
store_new (const Tiled *tb, gint channels, gint height, gint width, GError **error)
{
  const gsize bytes = (gsize) channels * height * width * sizeof (gfloat);
  Store      *s = g_new0 (Store, 1);
  GError     *tmp_error = NULL;
  gchar      *path = NULL;
  gboolean    ok;

  *s = (Store){ 1, channels, height, width, NULL, 0, -1 };
  if (bytes <= tb->settings.file_bytes)
    ok =
        (s->memory = vae_scratch_alloc (bytes, FALSE, &s->capacity, "a band store", error)) != NULL;
  else if (!(ok = (s->fd = g_file_open_tmp ("gegl-vae-XXXXXX", &path, &tmp_error)) >= 0))
    g_set_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY,
                 _ ("cannot create a temporary file for tiling: %s"), tmp_error->message);
  else if (!(ok = g_unlink (path) == 0 && ftruncate (s->fd, (off_t) bytes) == 0))
    g_set_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY,
                 _ ("cannot size the temporary file %s to %zu bytes: %s"), path, bytes,
                 g_strerror (errno));
  g_clear_error (&tmp_error);
  g_free (path);
  if (!ok)
    g_clear_pointer (&s, store_unref);
  return s;
}

/* Moves N bytes between a store's file at OFFSET and BUF. */
static gboolean
file_io (const Store *s, gboolean write, gpointer buf, gsize n, goffset offset, GError **error)
{
  guint8 *p = buf;

  while (n > 0)
    {
      gssize done = write ? pwrite (s->fd, p, n, offset) : pread (s->fd, p, n, offset);
      if (done < 0 && errno == EINTR)
        continue;
      if (done <= 0)
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY,
                       _ ("tiling's temporary file: %s failed: %s"), write ? "write" : "read",
                       done < 0 ? g_strerror (errno) : "end of file");
          return FALSE;
        }
      p += done;
      n -= (gsize) done;
      offset += done;
    }
  return TRUE;
}

/* Rows [y0, y0 + rows) of every channel between store S and DST, a plain
 * tensor of the same channels and width whose rows start at DST_Y. */
static gboolean
store_rows (Store *s, gboolean write, gint y0, gint rows, VaeTensor *dst, gint dst_y,
            GError **error)
{
  const gsize row_floats = (gsize) s->width;

  for (gint c = 0; c < s->channels; c++)
    {
      const gsize at = ((gsize) c * s->height + y0) * row_floats;
      gfloat     *band = dst->data + ((gsize) c * dst->height + dst_y) * row_floats;
      if (s->fd < 0)
        memcpy (write ? s->memory + at : band, write ? band : s->memory + at,
                rows * row_floats * sizeof (gfloat));
      else if (!file_io (s, write, band, rows * row_floats * sizeof (gfloat),
                         (goffset) (at * sizeof (gfloat)), error))
        return FALSE;
    }
  return TRUE;
}

/* ---- tiled tensors ------------------------------------------------------------- */

static void
view_release (VaeExternal *external)
{
  View *v = (View *) external;

  store_unref (v->store);
  g_free (v->scale);
  g_free (v->shift);
  g_free (v);
}

static VaeTensor *
view_tensor (Store *store, gfloat *scale, gfloat *shift, VaeAct act)
{
  VaeTensor *t = g_new0 (VaeTensor, 1);
  View      *v = g_new0 (View, 1);

  *v = (View){ { view_release }, store, scale, shift, act };
  store->ref_count++;
  t->channels = store->channels;
  t->height = store->height;
  t->width = store->width;
  t->external = v;
  return t;
}

static VaeTensor *
new_output (const Tiled *tb, gint channels, gint height, gint width, GError **error)
{
  Store     *s = store_new (tb, channels, height, width, error);
  VaeTensor *t;

  if (!s)
    return NULL;
  t = view_tensor (s, NULL, NULL, VAE_ACT_NONE);
  store_unref (s);
  return t;
}

static Store *
store_of (const VaeTensor *t)
{
  return ((View *) t->external)->store;
}

/* Rows [y0, y1) of T, plain or tiled (its pending normalisation applied),
 * as a plain tensor; rows outside T are zeros. */
static VaeTensor *
read_rows (const VaeTensor *t, gint y0, gint y1, GError **error)
{
  const gint  a = MAX (0, y0), b = MIN (t->height, y1);
  const gsize row_floats = (gsize) t->width;
  const View *v = t->external;
  g_autoptr (VaeTensor) band = NULL;

  if (!v)
    return vae_tensor_rows (t, y0, y1, error);
  band = vae_tensor_new_uninit (t->channels, y1 - y0, t->width, a != y0 || b != y1, error);
  if (!band || a >= b)
    return g_steal_pointer (&band);
  if (!store_rows (v->store, FALSE, a, b - a, band, a - y0, error))
    return NULL;
  if (v->rms) /* per position: the band's rows hold all it needs */
    vae_rms_norm_span (v->rms, band->data, band->data, (gsize) band->height * row_floats,
                       (a - y0) * row_floats, (b - a) * row_floats, v->act);
  if (v->scale)
#pragma omp parallel for schedule(static)
    for (gint c = 0; c < t->channels; c++)
      {
        gfloat *p = band->data + ((gsize) c * band->height + a - y0) * row_floats;
        vae_scale_shift_act (p, p, (b - a) * row_floats, v->scale[c], v->shift[c], v->act);
      }
  return g_steal_pointer (&band);
}

/* A tiled tensor with no pending normalisation, sharing T's store when it
 * has one; plain tensors are copied in. */
static VaeTensor *
stored (const Tiled *tb, const VaeTensor *t, GError **error)
{
  const View *v = t->external;
  VaeTensor  *out;
  g_autoptr (VaeTensor) all = NULL;

  if (v && !v->scale && !v->rms)
    return view_tensor (v->store, NULL, NULL, VAE_ACT_NONE);
  if (!(out = new_output (tb, t->channels, t->height, t->width, error)) ||
      !(all = read_rows (t, 0, t->height, error)) ||
      !store_rows (store_of (out), TRUE, 0, t->height, all, 0, error))
    g_clear_pointer (&out, vae_tensor_free);
  return out;
}

gboolean
vae_tiled_materialize (VaeTensor **t, GError **error)
{
  if (!(*t)->external)
    return TRUE;
  return vae_tensor_replace (t, read_rows (*t, 0, (*t)->height, error));
}

/* ---- bands ------------------------------------------------------------------- */

gint
vae_tiled_band_rows (const VaeTileSettings *s, gint height)
{
  gint64 rows = (gint64) s->band_pixels * height / MAX (1, s->image_height);

  return (gint) CLAMP (rows, 1, height);
}

/* Progress after a band; FALSE with an error once the pass is stopped. */
static gboolean
band_done (Tiled *tb, GError **error)
{
  vae_pass_step (&tb->outer, ++tb->bands_done, tb->settings.bands_total);
  return !vae_pass_stopped (&tb->outer, error);
}

/* Y, which the inner backend returned (maybe a device's tensor), in host
 * memory. */
static VaeTensor *
on_host (const Tiled *tb, VaeTensor *y, GError **error)
{
  if (y && tb->inner->to_host && !tb->inner->to_host (tb->inner, &y, error))
    g_clear_pointer (&y, vae_tensor_free);
  return y;
}

static VaeTensor *
inner_conv (const Tiled *tb, const VaeConv *conv, const VaeTensor *x, gboolean up,
            const VaeTensor *residual, VaeAct act, GError **error)
{
  return on_host (tb, tb->inner->conv (tb->inner, conv, x, up, residual, act, error), error);
}

/* ---- layers ------------------------------------------------------------------ */

/* Band [o0, o1) of a convolution's output: the (virtual, upsampled) input
 * rows [a, b) it reads, a rounded down to the stride (and to even rows when
 * upsampling) so the band's own convolution — with the layer's padding —
 * lines up with the whole one; its output row j is the layer's row a/s + j. */
static void
conv_band_input (const VaeConv *conv, gint in_h, gboolean up, gint o0, gint o1, gint *a, gint *b)
{
  const gint s = conv->stride, v0 = o0 * s - conv->pad_top,
             v1 = (o1 - 1) * s - conv->pad_top + conv->kernel;
  const gint align = up ? 2 : s;

  *a = MAX (0, v0) / align * align;
  *b = MIN (in_h, v1);
  if (up)
    *b = MIN (in_h, (*b + 1) / 2 * 2);
}

gsize
vae_tiled_conv_band_bytes (const VaeTileSettings *settings, const VaeConv *conv, gint in_h,
                           gint in_w, gboolean up, gboolean residual)
{
  gint out_h, out_w, rows, o0, a, b, band_h, band_w;

  vae_conv_output_size (conv, in_h << up, in_w << up, &out_h, &out_w);
  rows = vae_tiled_band_rows (settings, out_h);
  o0 = out_h > rows ? rows : 0; /* an inner band: halos on both sides */
  conv_band_input (conv, in_h << up, up, o0, MIN (out_h, o0 + rows), &a, &b);
  vae_conv_output_size (conv, b - a, in_w << up, &band_h, &band_w);
  return sizeof (gfloat) * ((gsize) conv->in_channels * ((b - a) >> up) * in_w +
                            (gsize) conv->out_channels * band_h * band_w * (residual ? 2 : 1)) +
         vae_cpu_conv_scratch_bytes (conv, band_h, band_w);
}

static gboolean
conv_band (Tiled *tb, const VaeConv *conv, const VaeTensor *x, gboolean up,
           const VaeTensor *residual, VaeAct act, VaeTensor *y, gint o0, gint o1, GError **error)
{
  const gint in_h = x->height << up;
  gint       a, b, skip;
  g_autoptr (VaeTensor) xb = NULL, rb = NULL, yb = NULL;
  gint out_h, out_w;

  conv_band_input (conv, in_h, up, o0, o1, &a, &b);
  skip = o0 - a / conv->stride;
  vae_conv_output_size (conv, b - a, x->width << up, &out_h, &out_w);
  if (!(xb = read_rows (x, a >> up, b >> up, error)) ||
      (residual &&
       !(rb = read_rows (residual, a / conv->stride, a / conv->stride + out_h, error))) ||
      !(yb = inner_conv (tb, conv, xb, up, rb, act, error)))
    return FALSE;
  g_assert (skip >= 0 && skip + (o1 - o0) <= yb->height);
  return store_rows (store_of (y), TRUE, o0, o1 - o0, yb, skip, error);
}

static VaeTensor *
tiled_conv (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x, gboolean up,
            const VaeTensor *residual, VaeAct act, GError **error)
{
  Tiled     *tb = (Tiled *) be;
  gint       out_h, out_w, rows;
  VaeTensor *y;

  if (!vae_conv_output_checked (conv, x, up, &out_h, &out_w, error))
    return NULL;
  if (!(y = new_output (tb, conv->out_channels, out_h, out_w, error)))
    return NULL;
  rows = vae_tiled_band_rows (&tb->settings, out_h);
  for (gint o0 = 0; o0 < out_h; o0 += rows)
    {
      if (!conv_band (tb, conv, x, up, residual, act, y, o0, MIN (out_h, o0 + rows), error) ||
          !band_done (tb, error))
        {
          vae_tensor_free (y);
          return NULL;
        }
    }
  return y;
}

/* Band [o0, o1) of a transposed convolution's output: the input rows
 * [a, b) it reads.  Run on those rows alone, with the layer's padding, the
 * band's output row j is the layer's row a·s + j, so a ≤ o0/s; and it must
 * reach row o1 − 1, so (b − 1)·s ≥ o1 + 2·pad − k.  Rows beyond the ones
 * whose taps reach the band only add work, never values. */
static void
conv_transpose_band_input (const VaeConvTranspose *l, gint in_h, gint o0, gint o1, gint *a, gint *b)
{
  const gint s = l->stride, p = l->pad, k = l->kernel;

  *a = CLAMP (vae_floor_div (o0 + p - k, s) + 1, 0, o0 / s);
  *b = MIN (in_h, MAX (vae_floor_div (o1 - 1 + p, s), -vae_floor_div (k - o1 - 2 * p, s)) + 1);
}

gsize
vae_tiled_conv_transpose_band_bytes (const VaeTileSettings *settings, const VaeConvTranspose *l,
                                     gint in_h, gint in_w)
{
  const gint out_h = vae_conv_transpose_output (l, in_h),
             out_w = vae_conv_transpose_output (l, in_w);
  const gint rows = vae_tiled_band_rows (settings, out_h);
  const gint o0 = out_h > rows ? rows : 0; /* an inner band: halos on both sides */
  gint       a, b, band_h;

  conv_transpose_band_input (l, in_h, o0, MIN (out_h, o0 + rows), &a, &b);
  band_h = vae_conv_transpose_output (l, b - a);
  return sizeof (gfloat) *
             ((gsize) l->in_channels * (b - a) * in_w + (gsize) l->out_channels * band_h * out_w) +
         vae_cpu_conv_transpose_scratch_bytes (l, band_h, out_w);
}

static VaeTensor *
tiled_conv_transpose (const VaeBackend *be, const VaeConvTranspose *l, const VaeTensor *x,
                      VaeAct act, GError **error)
{
  Tiled     *tb = (Tiled *) be;
  gint       out_h, out_w, rows;
  VaeTensor *y;

  if (!vae_conv_transpose_output_checked (l, x, &out_h, &out_w, error) ||
      !(y = new_output (tb, l->out_channels, out_h, out_w, error)))
    return NULL;
  rows = vae_tiled_band_rows (&tb->settings, out_h);
  for (gint o0 = 0; o0 < out_h; o0 += rows)
    {
      const gint o1 = MIN (out_h, o0 + rows);
      gint       a, b;
      g_autoptr (VaeTensor) xb = NULL, yb = NULL;

      conv_transpose_band_input (l, x->height, o0, o1, &a, &b);
      if (!(xb = read_rows (x, a, b, error)) ||
          !(yb = on_host (tb, vae_conv_transpose (tb->inner, l, xb, act, error), error)) ||
          !store_rows (store_of (y), TRUE, o0, o1 - o0, yb, o0 - a * l->stride, error) ||
          !band_done (tb, error))
        {
          vae_tensor_free (y);
          return NULL;
        }
    }
  return y;
}

/* ---- RMS norm ---- */

/* An RMS norm needs no statistics over the image: it is left pending on
 * SOURCE's store and applied to each band as it is read. */
static VaeTensor *
rms_view (const VaeTensor *source, const VaeNorm *norm, VaeAct act)
{
  VaeTensor *t = view_tensor (store_of (source), NULL, NULL, act);

  ((View *) t->external)->rms = norm;
  return t;
}

/* ---- end RMS norm ---- */

/* Chan et al.'s merge of (count, mean, M2) for one group with a band's. */
static void
merge_stats (gdouble *n, gdouble *mean, gdouble *m2, gdouble bn, gdouble bmean, gdouble bm2)
{
  const gdouble total = *n + bn, delta = bmean - *mean;

  *mean += delta * bn / total;
  *m2 += bm2 + delta * delta * *n * bn / total;
  *n = total;
}

static VaeTensor *
tiled_norm (const VaeBackend *be, const VaeNorm *norm, const VaeTensor *x, VaeAct act,
            GError **error)
{
  Tiled     *tb = (Tiled *) be;
  const gint per_group = x->channels / norm->groups,
             rows = vae_tiled_band_rows (&tb->settings, x->height);
  g_autofree gdouble *n = g_new0 (gdouble, norm->groups), *mean = g_new0 (gdouble, norm->groups),
                     *m2 = g_new0 (gdouble, norm->groups);
  g_autoptr (VaeTensor) source = stored (tb, x, error);
  gfloat *scale, *shift;

  if (!source)
    return NULL;
  if (norm->kind == VAE_NORM_RMS)
    return rms_view (source, norm, act);
  for (gint y0 = 0; y0 < x->height; y0 += rows)
    {
      g_autoptr (VaeTensor) band = read_rows (source, y0, MIN (x->height, y0 + rows), error);
      if (!band)
        return NULL;
#pragma omp parallel for schedule(static)
      for (gint g = 0; g < norm->groups; g++)
        {
          const gsize n_group = (gsize) per_group * band->height * band->width;
          gdouble     bmean, bm2;
          vae_moments (band->data + g * n_group, n_group, &bmean, &bm2);
          merge_stats (&n[g], &mean[g], &m2[g], (gdouble) n_group, bmean, bm2);
        }
      if (!band_done (tb, error))
        return NULL;
    }
  scale = g_new (gfloat, x->channels);
  shift = g_new (gfloat, x->channels);
  for (gint c = 0; c < x->channels; c++)
    {
      const gint    g = c / per_group;
      const gdouble rstd = 1.0 / sqrt (m2[g] / n[g] + norm->eps);
      scale[c] = (gfloat) (rstd * norm->gamma[c]);
      shift[c] = (gfloat) (norm->beta[c] - mean[g] * rstd * norm->gamma[c]);
    }
  return view_tensor (store_of (source), scale, shift, act);
}

/* Rows of BAND into plain tensor DST from row DST_Y on. */
static void
copy_rows (const VaeTensor *band, VaeTensor *dst, gint dst_y)
{
  const gsize rows = (gsize) band->height * band->width;

  for (gint c = 0; c < band->channels; c++)
    memcpy (dst->data + ((gsize) c * dst->height + dst_y) * dst->width, band->data + c * rows,
            rows * sizeof (gfloat));
}

/* Keys and values, whole, from one read of each band of the normalised H. */
static gboolean
keys_values (Tiled *tb, const VaeAttention *attn, const VaeTensor *h, VaeTensor **k, VaeTensor **v,
             GError **error)
{
  const gint rows = vae_tiled_band_rows (&tb->settings, h->height);

  if (!(*k = vae_tensor_new_uninit (h->channels, h->height, h->width, FALSE, error)) ||
      !(*v = vae_tensor_new_uninit (h->channels, h->height, h->width, FALSE, error)))
    return FALSE;
  for (gint y0 = 0; y0 < h->height; y0 += rows)
    {
      g_autoptr (VaeTensor) hb = read_rows (h, y0, MIN (h->height, y0 + rows), error), kb = NULL,
                            vb = NULL;
      if (!hb || !(kb = inner_conv (tb, &attn->k, hb, FALSE, NULL, VAE_ACT_NONE, error)) ||
          !(vb = inner_conv (tb, &attn->v, hb, FALSE, NULL, VAE_ACT_NONE, error)))
        return FALSE;
      copy_rows (kb, *k, y0);
      copy_rows (vb, *v, y0);
      if (!band_done (tb, error))
        return FALSE;
    }
  return TRUE;
}

/* Keys and values are held whole (2·C·N floats); queries, the output and
 * the projection run in bands. */
static VaeTensor *
tiled_attention (const VaeBackend *be, const VaeAttention *attn, const VaeTensor *x, GError **error)
{
  Tiled     *tb = (Tiled *) be;
  const gint rows = vae_tiled_band_rows (&tb->settings, x->height), n = x->height * x->width;
  g_autoptr (VaeTensor) h = NULL, k = NULL, v = NULL;
  VaeTensor *y = NULL;
  gfloat    *scores = NULL;
  gsize      scores_capacity = 0;
  gboolean   ok;

  ok = (h = tiled_norm (be, &attn->norm, x, VAE_ACT_NONE, error)) &&
       keys_values (tb, attn, h, &k, &v, error) &&
       (y = new_output (tb, x->channels, x->height, x->width, error)) &&
       (scores = vae_scratch_alloc (vae_cpu_attend_scratch_floats (n) * sizeof (gfloat), FALSE,
                                    &scores_capacity, "attention scores", error));
  for (gint y0 = 0; ok && y0 < x->height; y0 += rows)
    {
      const gint y1 = MIN (x->height, y0 + rows), m = (y1 - y0) * x->width;
      g_autoptr (VaeTensor) hb = read_rows (h, y0, y1, error), xb = NULL, qb = NULL, ob = NULL,
                            yb = NULL;
      ok = hb && (qb = inner_conv (tb, &attn->q, hb, FALSE, NULL, VAE_ACT_NONE, error)) &&
           (ob = vae_tensor_new (x->channels, y1 - y0, x->width, error));
      if (ok)
        vae_cpu_attend (qb->data, m, m, k, v, ob->data, m, scores);
      ok = ok && (xb = read_rows (x, y0, y1, error)) &&
           (yb = inner_conv (tb, &attn->proj, ob, FALSE, xb, VAE_ACT_NONE, error)) &&
           store_rows (store_of (y), TRUE, y0, y1 - y0, yb, 0, error) && band_done (tb, error);
    }
  vae_scratch_free (scores, scores_capacity);
  if (!ok)
    g_clear_pointer (&y, vae_tensor_free);
  return y;
}

static VaeTensor *
tiled_clamp (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  Tiled     *tb = (Tiled *) be;
  const gint rows = vae_tiled_band_rows (&tb->settings, x->height);
  VaeTensor *y = new_output (tb, x->channels, x->height, x->width, error);

  for (gint y0 = 0; y && y0 < x->height; y0 += rows)
    {
      const gint y1 = MIN (x->height, y0 + rows);
      g_autoptr (VaeTensor) xb = read_rows (x, y0, y1, error), yb = NULL;
      if (!xb || !(yb = on_host (tb, tb->inner->clamp (tb->inner, xb, error), error)) ||
          !store_rows (store_of (y), TRUE, y0, y1 - y0, yb, 0, error) || !band_done (tb, error))
        g_clear_pointer (&y, vae_tensor_free);
    }
  return y;
}

/* ---- DC-AE layers ---- */

/* DC-AE's layers other than convolutions and norms run on the host with
 * the CPU's kernels, whatever the inner backend: they move memory, and a
 * band's values are on the host already. */

/* A per-position layer (A + B when B is set, else the gate of A), band by
 * band. */
static VaeTensor *
per_position (Tiled *tb, const VaeTensor *a, const VaeTensor *b, GError **error)
{
  const gint rows = vae_tiled_band_rows (&tb->settings, a->height);
  VaeTensor *y = new_output (tb, b ? a->channels : a->channels / 2, a->height, a->width, error);

  for (gint y0 = 0; y && y0 < a->height; y0 += rows)
    {
      const gint y1 = MIN (a->height, y0 + rows);
      g_autoptr (VaeTensor) ab = read_rows (a, y0, y1, error), bb = NULL, yb = NULL;
      if (!ab || (b && !(bb = read_rows (b, y0, y1, error))) ||
          !(yb = vae_tensor_new_uninit (y->channels, y1 - y0, a->width, FALSE, error)))
        g_clear_pointer (&y, vae_tensor_free);
      else
        {
          if (b)
            vae_cpu_add (ab, bb, yb);
          else
            vae_cpu_gate (ab, yb);
          if (!store_rows (store_of (y), TRUE, y0, y1 - y0, yb, 0, error) || !band_done (tb, error))
            g_clear_pointer (&y, vae_tensor_free);
        }
    }
  return y;
}

static VaeTensor *
tiled_add (const VaeBackend *be, const VaeTensor *a, const VaeTensor *b, GError **error)
{
  return per_position ((Tiled *) be, a, b, error);
}

static VaeTensor *
tiled_gate (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  return per_position ((Tiled *) be, x, NULL, error);
}

/* The sums over all bands first, then each band's output from them. */
static VaeTensor *
tiled_linear_attention (const VaeBackend *be, const VaeTensor *x, gint head_dim, gfloat eps,
                        GError **error)
{
  Tiled              *tb = (Tiled *) be;
  const gint          rows = vae_tiled_band_rows (&tb->settings, x->height);
  g_autofree gdouble *sums = g_new0 (gdouble, vae_linear_attention_sums_size (x, head_dim));
  VaeTensor          *y = NULL;
  gsize               capacity;
  gfloat             *scratch = vae_scratch_alloc (
                  vae_linear_attention_scratch_floats (head_dim, (gsize) rows * x->width) * sizeof (gfloat),
                  FALSE, &capacity, "linear attention", error);
  gboolean ok = scratch != NULL;

  for (gint y0 = 0; ok && y0 < x->height; y0 += rows)
    {
      g_autoptr (VaeTensor) xb = read_rows (x, y0, MIN (x->height, y0 + rows), error);
      if ((ok = xb != NULL))
        vae_linear_attention_sums (xb, head_dim, sums, scratch);
      ok = ok && band_done (tb, error);
    }
  ok = ok && (y = new_output (tb, x->channels / 3, x->height, x->width, error));
  for (gint y0 = 0; ok && y0 < x->height; y0 += rows)
    {
      const gint y1 = MIN (x->height, y0 + rows);
      g_autoptr (VaeTensor) xb = read_rows (x, y0, y1, error), ob = NULL;
      ok = xb && (ob = vae_tensor_new_uninit (y->channels, y1 - y0, x->width, FALSE, error));
      if (ok)
        vae_linear_attention_apply (xb, head_dim, eps, sums, ob, scratch);
      ok =
          ok && store_rows (store_of (y), TRUE, y0, y1 - y0, ob, 0, error) && band_done (tb, error);
    }
  vae_scratch_free (scratch, capacity);
  if (!ok)
    g_clear_pointer (&y, vae_tensor_free);
  return y;
}

/* Output rows [o0, o1) read input rows [o0/2, (o1 + 1)/2). */
static VaeTensor *
tiled_pixel_shuffle (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  Tiled     *tb = (Tiled *) be;
  const gint out_h = x->height * 2, rows = vae_tiled_band_rows (&tb->settings, out_h);
  VaeTensor *y = new_output (tb, x->channels / 4, out_h, x->width * 2, error);

  for (gint o0 = 0; y && o0 < out_h; o0 += rows)
    {
      const gint o1 = MIN (out_h, o0 + rows);
      g_autoptr (VaeTensor) xb = read_rows (x, o0 / 2, (o1 + 1) / 2, error), yb = NULL;
      if (!xb || !(yb = vae_tensor_new_uninit (y->channels, o1 - o0, y->width, FALSE, error)))
        g_clear_pointer (&y, vae_tensor_free);
      else
        {
          vae_pixel_shuffle_rows (xb, o0 / 2, yb, o0);
          if (!store_rows (store_of (y), TRUE, o0, o1 - o0, yb, 0, error) || !band_done (tb, error))
            g_clear_pointer (&y, vae_tensor_free);
        }
    }
  return y;
}

/* ---- end DC-AE layers ---- */

VaeBackend *
vae_backend_tiled_new (const VaeBackend *inner, const VaeTileSettings *settings,
                       const VaePass *outer)
{
  Tiled *tb = g_new0 (Tiled, 1);

  tb->base = (VaeBackend){
    .name = "tiled",
    .conv = tiled_conv,
    .norm = tiled_norm,
    .attention = tiled_attention,
    .clamp = tiled_clamp,
    .conv_transpose = tiled_conv_transpose,
    .add = tiled_add,
    .gate = tiled_gate,
    .linear_attention = tiled_linear_attention,
    .pixel_shuffle = tiled_pixel_shuffle,
  };
  tb->inner = inner;
  tb->settings = *settings;
  if (outer)
    tb->outer = *outer;
  return &tb->base;
}

void
vae_backend_tiled_free (VaeBackend *backend)
{
  g_free (backend);
}

VaeTensor *
vae_tiled_while_out_of_memory (VaeTileSettings *settings, gint min_rows, VaeBandedPass pass,
                               gpointer data, GError **error)
{
  for (;;)
    {
      GError    *pass_error = NULL;
      VaeTensor *y = pass (settings, data, &pass_error);

      if (y || !g_error_matches (pass_error, VAE_ERROR, VAE_ERROR_NO_MEMORY) ||
          settings->band_pixels / 2 < min_rows)
        {
          if (pass_error)
            g_propagate_error (error, pass_error);
          return y;
        }
      g_error_free (pass_error);
      settings->band_pixels /= 2;
      settings->bands_total = 0; /* unknown for the new height */
    }
}
