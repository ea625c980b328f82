/* The memory plan: before a pass runs, the network is walked once with a
 * backend that computes nothing and only tallies the bytes the CPU backend
 * (or the tiled executor) would hold — tensors alive at each step plus the
 * step's scratch — to estimate the peak.  When the plain run's estimate
 * exceeds the budget, the band height is halved until the tiled run's
 * estimate fits.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"
#include "run/run.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Libraries, code and the allocator's slack, measured as the RSS of
 * `gegl-vae bench` on a 1×1 image, rounded up. */
#define BASELINE_BYTES            ((gsize) 48 << 20)
#define MIN_BAND_PIXELS           8
#define MIN_BAND_PIXELS_IN_MEMORY 64
/* The shares of the budget one tensor may take in memory before going to a
 * temporary file, tried in turn, and the shares the pool's spare blocks and
 * the Winograd cache may each take, tried in turn. */
static const guint FILE_SHARES[] = { 2, 4, 8, 16 };
static const guint SPARE_SHARES[] = { 4, 16 };
#define DEFAULT_POOL_HOLD  ((gsize) 768 << 20)
#define WINOGRAD_CACHE_CAP ((gsize) 384 << 20)

gboolean
vae_parse_bytes (const gchar *text, guint64 *bytes)
{
  gchar  *end;
  gdouble value, unit = 1.0;

  if (!text || !g_ascii_isdigit (*text))
    return FALSE;
  value = g_ascii_strtod (text, &end);
  switch (g_ascii_toupper (*end))
    {
    case 'K':
      unit = 1024.0;
      end++;
      break;
    case 'M':
      unit = 1024.0 * 1024;
      end++;
      break;
    case 'G':
      unit = 1024.0 * 1024 * 1024;
      end++;
      break;
    case 'T':
      unit = 1024.0 * 1024 * 1024 * 1024;
      end++;
      break;
    default:
      break;
    }
  if (g_ascii_toupper (*end) == 'B' ||
      (unit > 1.0 && g_ascii_toupper (*end) == 'I' && end[1] == 'B'))
    end += *end == 'B' || *end == 'b' ? 1 : 2;
  if (*end != '\0' || value * unit < 1.0 || value * unit > 1e18)
    return FALSE;
  *bytes = (guint64) (value * unit);
  return TRUE;
}

/* Three quarters of what the kernel reports available now. */
static guint64
default_budget (void)
{
  FILE   *f = fopen ("/proc/meminfo", "r");
  gchar   line[256];
  guint64 kb = 0;

  while (f && fgets (line, sizeof line, f))
    if (sscanf (line, "MemAvailable: %" SCNu64 " kB", &kb) == 1)
      break;
  if (f)
    fclose (f);
  if (kb == 0)
    kb = (guint64) sysconf (_SC_AVPHYS_PAGES) * (guint64) sysconf (_SC_PAGESIZE) / 1024;
  return kb * 1024 / 4 * 3;
}

/* ---- the tallying backend ------------------------------------------------------ */

typedef struct
{
  VaeBackend      base;
  gboolean        tiled;
  VaeTileSettings tiles;
  gsize           live; /* bytes of tensors alive */
  gsize           peak;
  gint            bands;
  GHashTable     *cached; /* convs whose transformed weights would be kept */
  gsize           cache_bytes;
} Planner;

/* The bytes a tensor holds, shared by the tiled executor's views of it
 * (a GroupNorm's output keeps its input's store alive). */
typedef struct
{
  Planner *planner;
  gsize    bytes;
  gint     holders;
} Tally;

typedef struct
{
  VaeExternal base;
  Tally      *tally;
} TallyRef;

static void
tally_release (VaeExternal *external)
{
  Tally *t = ((TallyRef *) external)->tally;

  if (--t->holders == 0)
    {
      t->planner->live -= t->bytes;
      g_free (t);
    }
  g_free (external);
}

static void
note (Planner *p, gsize transient)
{
  p->peak = MAX (p->peak, p->live + transient);
}

static VaeTensor *
tally_ref (Tally *tally, gint channels, gint height, gint width)
{
  VaeTensor *t = g_new0 (VaeTensor, 1);
  TallyRef  *ref = g_new0 (TallyRef, 1);

  *ref = (TallyRef){ { tally_release }, tally };
  *t = (VaeTensor){ channels, height, width, NULL, 0, ref };
  tally->holders++;
  return t;
}

/* A tensor without data that counts while alive: in memory unless the
 * tiled executor would put it in a file. */
static VaeTensor *
tally_tensor (Planner *p, gint channels, gint height, gint width)
{
  const gsize bytes = (gsize) channels * height * width * sizeof (gfloat);
  Tally      *tally = g_new0 (Tally, 1);

  *tally = (Tally){ p, p->tiled && bytes > p->tiles.file_bytes ? 0 : bytes, 0 };
  p->live += tally->bytes;
  note (p, 0);
  return tally_ref (tally, channels, height, width);
}

static gsize
band_bytes (const Planner *p, gint channels, gint height, gint width)
{
  return (gsize) channels * vae_tiled_band_rows (&p->tiles, height) * width * sizeof (gfloat);
}

static void
count_bands (Planner *p, gint height)
{
  const gint rows = vae_tiled_band_rows (&p->tiles, height);

  p->bands += (height + rows - 1) / rows;
}

/* CONV's transformed weights, counted once, where it would keep them. */
static void
note_cached (Planner *p, const VaeConv *conv, gint out_h, gint out_w)
{
  if (vae_winograd_caches (conv, out_h, out_w) && g_hash_table_add (p->cached, (gpointer) conv))
    p->cache_bytes += vae_winograd_weight_bytes (conv);
}

static VaeTensor *
plan_conv (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x, gboolean up,
           const VaeTensor *residual, VaeAct act, GError **error)
{
  Planner   *p = (Planner *) be;
  gint       out_h, out_w;
  VaeTensor *y;

  if (!vae_conv_output_checked (conv, x, up, &out_h, &out_w, error))
    return NULL;
  y = tally_tensor (p, conv->out_channels, out_h, out_w);
  note_cached (p, conv, p->tiled ? vae_tiled_band_rows (&p->tiles, out_h) : out_h, out_w);
  if (p->tiled)
    {
      note (p,
            vae_tiled_conv_band_bytes (&p->tiles, conv, x->height, x->width, up, residual != NULL));
      count_bands (p, out_h);
    }
  else
    note (p, vae_cpu_conv_scratch_bytes (conv, out_h, out_w));
  return y;
}

static VaeTensor *
plan_norm (const VaeBackend *be, const VaeNorm *norm, const VaeTensor *x, VaeAct act,
           GError **error)
{
  Planner *p = (Planner *) be;

  if (!p->tiled)
    return tally_tensor (p, x->channels, x->height, x->width);
  /* a view of x's store: nothing new but the band being summed (an RMS
   * norm sums nothing: it is applied as the next layer reads) */
  if (norm->kind != VAE_NORM_RMS)
    {
      note (p, band_bytes (p, x->channels, x->height, x->width));
      count_bands (p, x->height);
    }
  return tally_ref (((TallyRef *) x->external)->tally, x->channels, x->height, x->width);
}

/* In place: nothing new (only the plain CPU run does this; the tiled
 * executor's norm is a view already). */
static gboolean
plan_norm_in_place (const VaeBackend *be, const VaeNorm *norm, VaeTensor *x, VaeAct act,
                    GError **error)
{
  return TRUE;
}

static VaeTensor *
plan_attention (const VaeBackend *be, const VaeAttention *attn, const VaeTensor *x, GError **error)
{
  Planner    *p = (Planner *) be;
  const gint  n = x->height * x->width;
  const gsize whole = (gsize) x->channels * n * sizeof (gfloat);
  const gsize scores = vae_cpu_attend_scratch_floats (n) * sizeof (gfloat);

  if (!p->tiled)
    {
      note (p, 4 * whole + scores); /* h, q, k, v; then q, k, v, o and the scores */
      return tally_tensor (p, x->channels, x->height, x->width);
    }
  /* keys and values whole; per band: h, q, o, x and the output rows */
  note (p, 2 * whole + scores + 5 * band_bytes (p, x->channels, x->height, x->width));
  for (gint pass = 0; pass < 3; pass++) /* norm, keys and values, attention */
    count_bands (p, x->height);
  return tally_tensor (p, x->channels, x->height, x->width);
}

static VaeTensor *
plan_clamp (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  Planner *p = (Planner *) be;

  if (p->tiled)
    {
      note (p, 2 * band_bytes (p, x->channels, x->height, x->width));
      count_bands (p, x->height);
    }
  return tally_tensor (p, x->channels, x->height, x->width);
}

static VaeTensor *
plan_conv_transpose (const VaeBackend *be, const VaeConvTranspose *l, const VaeTensor *x,
                     VaeAct act, GError **error)
{
  Planner   *p = (Planner *) be;
  gint       out_h, out_w;
  VaeTensor *y;

  if (!vae_conv_transpose_output_checked (l, x, &out_h, &out_w, error))
    return NULL;
  y = tally_tensor (p, l->out_channels, out_h, out_w);
  if (p->tiled)
    {
      note (p, vae_tiled_conv_transpose_band_bytes (&p->tiles, l, x->height, x->width));
      count_bands (p, out_h);
    }
  else
    note (p, vae_cpu_conv_transpose_scratch_bytes (l, out_h, out_w));
  return y;
}

/* ---- DC-AE layers ---- */

static VaeTensor *
plan_add (const VaeBackend *be, const VaeTensor *a, const VaeTensor *b, GError **error)
{
  Planner *p = (Planner *) be;

  if (p->tiled) /* a, b and the sum's band */
    {
      note (p, 3 * band_bytes (p, a->channels, a->height, a->width));
      count_bands (p, a->height);
    }
  return tally_tensor (p, a->channels, a->height, a->width);
}

static VaeTensor *
plan_gate (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  Planner *p = (Planner *) be;

  if (p->tiled)
    {
      note (p, band_bytes (p, x->channels + x->channels / 2, x->height, x->width));
      count_bands (p, x->height);
    }
  return tally_tensor (p, x->channels / 2, x->height, x->width);
}

static VaeTensor *
plan_linear_attention (const VaeBackend *be, const VaeTensor *x, gint head_dim, gfloat eps,
                       GError **error)
{
  Planner    *p = (Planner *) be;
  const gint  rows = p->tiled ? vae_tiled_band_rows (&p->tiles, x->height) : x->height;
  const gsize scratch =
      vae_linear_attention_scratch_floats (head_dim, (gsize) rows * x->width) * sizeof (gfloat) +
      vae_linear_attention_sums_size (x, head_dim) * sizeof (gdouble);
  VaeTensor *y = tally_tensor (p, x->channels / 3, x->height, x->width);

  if (!p->tiled)
    note (p, scratch);
  else /* the sums' pass, then each band's input and output */
    {
      note (p, scratch + band_bytes (p, x->channels + x->channels / 3, x->height, x->width));
      count_bands (p, x->height);
      count_bands (p, x->height);
    }
  return y;
}

static VaeTensor *
plan_pixel_shuffle (const VaeBackend *be, const VaeTensor *x, GError **error)
{
  Planner *p = (Planner *) be;

  if (p->tiled) /* an output band and the input rows it reads (one more) */
    {
      note (p, band_bytes (p, x->channels / 4, x->height * 2, x->width * 2) +
                   band_bytes (p, x->channels, x->height, x->width) +
                   (gsize) x->channels * x->width * sizeof (gfloat));
      count_bands (p, x->height * 2);
    }
  return tally_tensor (p, x->channels / 4, x->height * 2, x->width * 2);
}

/* ---- end DC-AE layers ---- */

/* The CPU's banded block holds its output and a band's tensors; a block it
 * runs whole goes layer by layer. */
static VaeTensor *
plan_residual_block (const VaeBackend *be, const VaeResidualBlock *b, const VaeTensor *x,
                     GError **error)
{
  Planner   *p = (Planner *) be;
  gsize      bands;
  gint       c, h, w;
  VaeTensor *out;

  if (vae_cpu_residual_block_banded (b, x, &bands))
    {
      VaeBandConv convs[VAE_BLOCK_CONVS];
      const gint  n = vae_cpu_residual_block_band_convs (b, x, convs);

      for (gint i = 0; i < n; i++)
        note_cached (p, convs[i].conv, convs[i].out_h, convs[i].out_w);
      vae_residual_block_output (b, x, &c, &h, &w);
      out = tally_tensor (p, c, h, w);
      note (p, bands);
      return out;
    }
  return vae_residual_block_layers (be, b, x, error);
}

/* The CPU's fused resnet holds conv1's output besides X, whose store it
 * writes the sum over (planned as for the bf16 backend, which fuses no
 * more often than the fp32 one). */
static VaeTensor *
plan_resnet (const VaeBackend *be, const VaeResnet *r, VaeTensor *x, GError **error)
{
  Planner   *p = (Planner *) be;
  VaeTensor *h;

  if (!vae_cpu_resnet_fuses (r, x, TRUE))
    return vae_resnet_layers (be, r, x, error);
  h = tally_tensor (p, r->conv1->out_channels, x->height, x->width);
  for (gint i = 0; i < 2; i++)
    {
      const VaeConv *conv = i ? r->conv2 : r->conv1;
      note_cached (p, conv, x->height, x->width);
      note (p, vae_cpu_conv_scratch_bytes (conv, x->height, x->width));
    }
  vae_tensor_free (h);
  return x;
}

/* The peak bytes of NET's pass over an input of C × H × W, its bands, and
 * the bytes of transformed weights it would cache. */
static gboolean
walk (VaeNet *net, gint channels, gint height, gint width, const VaeTileSettings *tiles,
      gsize *peak, gint *bands, gsize *cache_bytes, GError **error)
{
  Planner       planner = { { .name = "plan",
                              .conv = plan_conv,
                              .norm = plan_norm,
                              .attention = plan_attention,
                              .clamp = plan_clamp,
                              .norm_in_place = tiles ? NULL : plan_norm_in_place,
                              .conv_transpose = plan_conv_transpose,
                              .add = plan_add,
                              .gate = plan_gate,
                              .linear_attention = plan_linear_attention,
                              .pixel_shuffle = plan_pixel_shuffle,
                              /* the tiled executor runs blocks conv by conv */
                              .residual_block = tiles ? NULL : plan_residual_block,
                              .resnet = tiles ? NULL : plan_resnet },
                            tiles != NULL };
  const VaePass pass = { &planner.base }; /* no progress, never stopped */
  VaeTensor    *input, *output;

  if (tiles)
    planner.tiles = *tiles;
  planner.cached = g_hash_table_new (NULL, NULL);
  input = tally_tensor (&planner, channels, height, width);
  output = net->forward (net, &pass, input, error);
  vae_tensor_free (input);
  vae_tensor_free (output);
  g_hash_table_unref (planner.cached);
  *peak = planner.peak;
  *bands = planner.bands;
  *cache_bytes = planner.cache_bytes;
  return output != NULL;
}

/* ---- the plan ---------------------------------------------------------------- */

/* What every run holds besides the pass: weights, the image in and out, the
 * baseline.  (The pool's spare blocks add nothing: they make room for what
 * they cannot serve.) */
static guint64
fixed_bytes (const VaeModel *m, gint image_w, gint image_h)
{
  const guint64 weights = m->net_floats * sizeof (gfloat);
  const guint64 image = (guint64) 3 * image_w * image_h * sizeof (gfloat);

  return BASELINE_BYTES + weights + 2 * image;
}

/* FIXED + PEAK and the transformed weights kept of the CACHED bytes a pass
 * would keep (within the cache's limit), which PLAN->cached_bytes records. */
static guint64
with_cache (VaeMemoryPlan *plan, guint64 fixed, gsize peak, gsize cached,
            const VaeTileSettings *tiles)
{
  plan->cached_bytes = MIN (cached, vae_plan_winograd_cache (tiles));
  return fixed + peak + plan->cached_bytes;
}

/* Bands for a budget: tensors kept in memory as long as bands of
 * MIN_BAND_PIXELS_IN_MEMORY fit (temporary files cost far more time than
 * thin bands), then files and ever thinner bands. */
static gboolean
choose_bands (VaeNet *net, gint channels, gint height, gint width, guint64 fixed,
              VaeMemoryPlan *plan, VaeTileSettings *tiles, GError **error)
{
  const gint image_h = tiles->image_height;
  gsize      peak, cached;

  for (guint i = 0; i < G_N_ELEMENTS (FILE_SHARES); i++)
    {
      const gboolean last = i == G_N_ELEMENTS (FILE_SHARES) - 1;
      tiles->file_bytes = plan->budget / FILE_SHARES[i];
      for (tiles->band_pixels = MAX (MIN_BAND_PIXELS, image_h / 2);
           tiles->band_pixels >=
           (last ? MIN_BAND_PIXELS : MIN (image_h / 2, MIN_BAND_PIXELS_IN_MEMORY));
           tiles->band_pixels /= 2)
        {
          if (!walk (net, channels, height, width, tiles, &peak, &tiles->bands_total, &cached,
                     error))
            return FALSE;
          plan->band_pixels = tiles->band_pixels;
          plan->tiled_bytes = with_cache (plan, fixed, peak, cached, tiles);
          if (plan->tiled_bytes <= plan->budget)
            return TRUE;
        }
    }
  return FALSE;
}

/* MiB, or bytes below one ("--memory-limit 1" was "0 MiB"). */
static gchar *
size_text (guint64 bytes)
{
  return bytes >= (1 << 20) ? g_strdup_printf ("%" PRIu64 " MiB", bytes >> 20)
                            : g_strdup_printf ("%" PRIu64 " bytes", bytes);
}

gboolean
vae_model_plan_pass (VaeModel *m, VaeNet *net, gint channels, gint height, gint width,
                     const VaeTiling *tiling, VaeMemoryPlan *plan, VaeTileSettings *tiles,
                     GError **error)
{
  const gint    image_h = net == m->decoder ? height * net->factor : height;
  const gint    image_w = net == m->decoder ? width * net->factor : width;
  const guint64 fixed = fixed_bytes (m, image_w, image_h);
  gsize         peak, cached;
  gint          bands;

  memset (plan, 0, sizeof *plan);
  plan->budget = tiling->memory_limit ? tiling->memory_limit : default_budget ();
  *tiles = (VaeTileSettings){ image_h, tiling->tile_size,
                              plan->budget / FILE_SHARES[G_N_ELEMENTS (FILE_SHARES) - 1], 0 };
  if (!walk (net, channels, height, width, NULL, &peak, &bands, &cached, error))
    return FALSE;
  /* generous spare blocks and Winograd cache first (they save time), then lean */
  for (guint i = 0; i < G_N_ELEMENTS (SPARE_SHARES); i++)
    {
      tiles->spare_bytes = plan->budget / SPARE_SHARES[i];
      plan->untiled_bytes = with_cache (plan, fixed, peak, cached, tiles);
      if (tiling->tile_size > 0)
        return walk (net, channels, height, width, tiles, &peak, &tiles->bands_total, &cached,
                     error) &&
               (plan->band_pixels = tiles->band_pixels,
                plan->tiled_bytes = with_cache (plan, fixed, peak, cached, tiles));
      if (plan->untiled_bytes <= plan->budget)
        return TRUE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (SPARE_SHARES); i++)
    {
      tiles->spare_bytes = plan->budget / SPARE_SHARES[i];
      if (choose_bands (net, channels, height, width, fixed, plan, tiles, error))
        return TRUE;
      if (error && *error)
        return FALSE;
    }
  {
    g_autofree gchar *budget = size_text (plan->budget);
    g_set_error (error, VAE_ERROR, VAE_ERROR_LIMIT,
                 _ ("a memory limit of %s is too small for this %d×%d image: even %d-pixel bands "
                    "need about %" PRIu64 " MiB"),
                 budget, image_w, image_h, plan->band_pixels, plan->tiled_bytes >> 20);
  }
  return FALSE;
}

gsize
vae_plan_pool_hold (const VaeTileSettings *tiles)
{
  return MIN (DEFAULT_POOL_HOLD, tiles->spare_bytes);
}

gsize
vae_plan_winograd_cache (const VaeTileSettings *tiles)
{
  return MIN (WINOGRAD_CACHE_CAP, tiles->spare_bytes);
}

gboolean
vae_model_plan (VaeModel *m, gboolean encode, gint width, gint height, const VaeRun *run,
                VaeMemoryPlan *plan, GError **error)
{
  static const VaeTiling defaults;
  const VaeTiling       *tiling = run ? &run->tiling : &defaults;
  const gint             f = vae_family_factor (m->family),
             p = m->family->patchify > 1 ? m->family->patchify : 1;
  VaeNet         *net = encode ? m->encoder : m->decoder;
  VaeTileSettings tiles;

  if (!net || width < 1 || height < 1 || width > VAE_MAX_IMAGE_SIDE || height > VAE_MAX_IMAGE_SIDE)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("no %s plan for %d×%d with %s"),
                   encode ? "encode" : "decode", width, height, m->files);
      return FALSE;
    }
  if (encode)
    return vae_model_plan_pass (m, net, 3, (height + f - 1) / f * f, (width + f - 1) / f * f,
                                tiling, plan, &tiles, error);
  return vae_model_plan_pass (m, net, net->in_channels, height * p, width * p, tiling, plan, &tiles,
                              error);
}
