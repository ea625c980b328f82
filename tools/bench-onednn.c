/* oneDNN's convolution primitives against our CPU kernels (issue 22: "measure
 * oneDNN for the layers where we trail, primitive against our kernel; use it
 * where it wins and keeps the memory plan, and say why where it does not").
 *
 *   bash tools/bench-onednn.sh BUILD_DIR [--quick] [--runs N]   (builds and runs this)
 *
 * For each convolution shape (NCHW planar float32 in and out, batch 1, bias,
 * no activation) it times:
 *  - ours, through the CPU backend's conv function, the path a real pass
 *    takes: bf16 (vae_backend_cpu_bf16: the direct AMX kernel of amx-conv.c
 *    where vae_amx_conv_applies, otherwise what the backend falls back to)
 *    and fp32 (vae_backend_cpu).  The layer has a weight cache, as in a
 *    model, so Winograd's transformed weights are kept after the first call.
 *  - oneDNN's convolution forward primitive (forward_inference; algorithm
 *    convolution_direct, and separately convolution_auto) with source,
 *    weights and destination descriptors of format_tag any, so that oneDNN
 *    picks its own layouts as OpenVINO's CPU plugin lets it (2.6's brgconv
 *    takes NHWC activations and blocked weights); in f32, in bf16 with an
 *    f32 destination and in bf16 with a bf16 destination.  Two figures each:
 *      "kernel"    the primitive alone, on memory already in its layouts:
 *                  kernel against kernel;
 *      "+reorders" our planar f32 input reordered into its layout, the
 *                  primitive, its output reordered back to planar f32: what
 *                  it would cost inside gegl-vae, whose tensors are planar
 *                  f32 between layers.
 *    The weights are reordered once, outside the timing (a cache would keep
 *    them, as ours keeps Winograd's).
 *
 * Every runtime's output is checked before it is timed: against our fp32
 * output (all values; the f32 runtimes must be within 1e-4 of the largest),
 * and against float64 sums at a few hundred output points, of the fp32
 * operands (fp32 runtimes within 1e-4, bf16 ones within 2e-2) and of the
 * bf16-rounded operands (shown, not checked).  Timing: one warm-up call (the
 * checked one), then the median of --runs calls (5), wall time.
 *
 * Writes three Markdown tables (time, accuracy, memory) to stdout and the
 * progress to stderr; exits 1 when a check or a call fails.  Threads: our
 * code takes GEGL_THREADS (vae_threads), oneDNN's OpenMP runtime
 * OMP_NUM_THREADS; the script sets both.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "backend.h"
#include "cpu/cpu.h"
#include "vae.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <glib.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tolerances of the checks, relative to the largest |value| (-D may
 * tighten them, to see a check fail). */
#ifndef FP32_TOLERANCE
#define FP32_TOLERANCE 1e-4 /* the house bar against float64 */
#endif
#ifndef BF16_TOLERANCE
#define BF16_TOLERANCE 2e-2 /* bf16 keeps 8 bits of each operand: ~4e-3 a product */
#endif
#define SAMPLES 320 /* output points summed in float64 */

GQuark bench_error_quark (void);

/* clang-format off */
G_DEFINE_QUARK (bench-onednn-error, bench_error)
/* clang-format on */

/* ---- the shapes ---------------------------------------------------------------- */

enum
{
  IN_FULL = 1, /* the default run */
  IN_QUICK = 2 /* --quick: outputs of 64×64, every code path at a small size */
};

typedef struct
{
  const gchar *name;
  gint         cin, cout, kernel, stride;
  gint         size;           /* input height and width */
  gint         pad_lo, pad_hi; /* top and left; bottom and right */
  gint         sets;
} Shape;

static const Shape shapes[] = {
  { "3×3 64→64 1024² (TAEF2 full res.)", 64, 64, 3, 1, 1024, 1, 1, IN_FULL },
  { "3×3 128→128 512² (SD1.5)", 128, 128, 3, 1, 512, 1, 1, IN_FULL },
  { "3×3 256→256 256² (SD1.5)", 256, 256, 3, 1, 256, 1, 1, IN_FULL },
  { "3×3 512→512 128² (SD1.5)", 512, 512, 3, 1, 128, 1, 1, IN_FULL },
  { "3×3 512→512 64² (SD1.5)", 512, 512, 3, 1, 64, 1, 1, IN_FULL | IN_QUICK },
  { "1×1 512→512 64²", 512, 512, 1, 1, 64, 0, 0, IN_FULL | IN_QUICK },
  /* AutoencoderKL's downsampler pads only the right and bottom */
  { "3×3/2 128→128 512²→256² (downsampler)", 128, 128, 3, 2, 512, 0, 1, IN_FULL },
  /* the first and last shapes' code paths at 64² outputs, for --quick */
  { "3×3 64→64 64²", 64, 64, 3, 1, 64, 1, 1, IN_QUICK },
  { "3×3/2 128→128 128²→64²", 128, 128, 3, 2, 128, 0, 1, IN_QUICK },
};

/* One shape's layer, input, float64 samples and our fp32 output. */
typedef struct
{
  const Shape *shape;
  VaeConv      conv;
  VaeTensor   *x;
  gint         out_h, out_w;
  gdouble      flop;             /* 2 · multiply-adds */
  gsize        sample[SAMPLES];  /* indices into the planar output */
  gdouble      exact[SAMPLES];   /* float64 sums of the fp32 operands */
  gdouble      rounded[SAMPLES]; /* of the bf16-rounded operands */
  gdouble      exact_max, rounded_max;
  VaeTensor   *ours_fp32;    /* what the others are compared with (all values) */
  gdouble      ours_bf16_ms; /* < 0 until timed */
} Case;

/* The three tables, row by row, and whether every check passed. */
typedef struct
{
  GString *time, *accuracy, *memory;
  gboolean all_passed;
  gint     runs;
} Report;

/* ---- small helpers ------------------------------------------------------------- */

/* xorshift64*: fast enough for a quarter of a gigabyte of input. */
static gdouble
uniform (guint64 *state, gdouble lo, gdouble hi)
{
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return lo + (hi - lo) * (gdouble) ((*state * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-53;
}

static gdouble
now_seconds (void)
{
  return (gdouble) g_get_monotonic_time () / G_USEC_PER_SEC;
}

static gint
compare_doubles (gconstpointer a, gconstpointer b)
{
  const gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;
  return (x > y) - (x < y);
}

static gdouble
median (gdouble *values, gint n)
{
  qsort (values, (gsize) n, sizeof *values, compare_doubles);
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

/* Progress on stderr, as UTF-8 (g_printerr converts to the locale's
 * charset, which turns × and ² into ? under the C locale). */
static void G_GNUC_PRINTF (1, 2) progress (const gchar *format, ...)
{
  va_list args;

  va_start (args, format);
  vfprintf (stderr, format, args);
  va_end (args);
}

/* Spaces that pad TEXT (UTF-8) to 34 characters in the progress lines. */
static gint
padding (const gchar *text)
{
  return MAX (0, 34 - (gint) g_utf8_strlen (text, -1));
}

static gchar *
megabytes (gsize bytes)
{
  return g_strdup_printf ("%.1f MB", (gdouble) bytes / 1e6);
}

/* ---- the case: layer, input, float64 reference --------------------------------- */

/* The float64 sums at output value INDEX of the fp32 operands (*EXACT) and
 * of the same operands rounded to bf16 (*ROUNDED); the bias stays fp32, as
 * both runtimes add it in fp32. */
static void
reference_value (const Case *c, gsize index, gdouble *exact, gdouble *rounded)
{
  const VaeConv *conv = &c->conv;
  const gint     k = conv->kernel, h = c->x->height, w = c->x->width;
  const gint     o = (gint) (index / ((gsize) c->out_h * c->out_w));
  const gint     oy = (gint) (index / c->out_w % c->out_h), ox = (gint) (index % c->out_w);
  gdouble        e = 0, r = 0;

  for (gint i = 0; i < conv->in_channels; i++)
    for (gint ky = 0; ky < k; ky++)
      for (gint kx = 0; kx < k; kx++)
        {
          const gint iy = oy * conv->stride - conv->pad_top + ky,
                     ix = ox * conv->stride - conv->pad_left + kx;
          gfloat wv, xv;

          if (iy < 0 || iy >= h || ix < 0 || ix >= w)
            continue;
          wv = conv->weight[(((gsize) o * conv->in_channels + i) * k + ky) * k + kx];
          xv = c->x->data[((gsize) i * h + iy) * w + ix];
          e += (gdouble) wv * xv;
          r +=
              (gdouble) vae_bf16_value (vae_bf16_round (wv)) * vae_bf16_value (vae_bf16_round (xv));
        }
  *exact = e + conv->bias[o];
  *rounded = r + conv->bias[o];
}

/* SHAPE's layer with seeded weights (scaled so outputs are about ±1), bias
 * and input, and the float64 values at the four corners of the first and
 * last output channels (where the padding is) and at random points. */
static gboolean
case_init (Case *c, const Shape *shape, GError **error)
{
  const gint  k = shape->kernel;
  const gsize n_weights = (gsize) shape->cout * shape->cin * k * k;
  gsize       plane_out;
  guint64     state = 0x9e3779b97f4a7c15ull ^ (guint64) (shape - shapes);
  gdouble     scale = sqrt (3.0 / (shape->cin * k * k));

  memset (c, 0, sizeof *c);
  c->shape = shape;
  c->ours_bf16_ms = -1;
  c->conv = (VaeConv){ .out_channels = shape->cout,
                       .in_channels = shape->cin,
                       .kernel = k,
                       .stride = shape->stride,
                       .pad_top = shape->pad_lo,
                       .pad_left = shape->pad_lo,
                       .pad_bottom = shape->pad_hi,
                       .pad_right = shape->pad_hi,
                       .weight = g_new (gfloat, n_weights),
                       .bias = g_new (gfloat, shape->cout),
                       .cache = vae_layer_cache_new (),
                       .groups = 1 };
  for (gsize i = 0; i < n_weights; i++)
    c->conv.weight[i] = (gfloat) uniform (&state, -scale, scale);
  for (gint o = 0; o < shape->cout; o++)
    c->conv.bias[o] = (gfloat) uniform (&state, -0.5, 0.5);
  c->x = vae_tensor_new (shape->cin, shape->size, shape->size, error);
  if (!c->x)
    return FALSE;
  for (gsize i = 0, n = vae_tensor_n_elements (c->x); i < n; i++)
    c->x->data[i] = (gfloat) uniform (&state, -1, 1);
  vae_conv_output_size (&c->conv, shape->size, shape->size, &c->out_h, &c->out_w);
  c->flop = 2.0 * shape->cout * shape->cin * k * k * c->out_h * c->out_w;

  plane_out = (gsize) c->out_h * c->out_w;
  for (gint s = 0; s < SAMPLES; s++)
    {
      if (s < 8)
        {
          const gsize channel = s < 4 ? 0 : (gsize) shape->cout - 1;
          const gint  oy = (s & 1) ? c->out_h - 1 : 0, ox = (s & 2) ? c->out_w - 1 : 0;
          c->sample[s] = channel * plane_out + (gsize) oy * c->out_w + ox;
        }
      else
        c->sample[s] = (gsize) (uniform (&state, 0, 1) * (gdouble) (plane_out * shape->cout)) %
                       (plane_out * shape->cout);
      reference_value (c, c->sample[s], &c->exact[s], &c->rounded[s]);
      c->exact_max = MAX (c->exact_max, fabs (c->exact[s]));
      c->rounded_max = MAX (c->rounded_max, fabs (c->rounded[s]));
    }
  return TRUE;
}

static void
case_clear (Case *c)
{
  g_clear_pointer (&c->x, vae_tensor_free);
  g_clear_pointer (&c->ours_fp32, vae_tensor_free);
  g_clear_pointer (&c->conv.cache, vae_layer_cache_free);
  g_clear_pointer (&c->conv.weight, g_free);
  g_clear_pointer (&c->conv.bias, g_free);
}

/* ---- checks ----------------------------------------------------------------------- */

typedef struct
{
  gdouble vs_ours_fp32; /* max |y − ours| / max |ours| over all values; < 0: not compared */
  gdouble vs_exact;     /* over the samples, of max |float64| there */
  gdouble vs_rounded;
} Errors;

static Errors
measure (const Case *c, const gfloat *y, gboolean is_ours_fp32)
{
  Errors e = { -1, 0, 0 };

  if (!is_ours_fp32)
    {
      const gfloat *ref = c->ours_fp32->data;
      gdouble       diff = 0, largest = 0;
      for (gsize i = 0, n = vae_tensor_n_elements (c->ours_fp32); i < n; i++)
        {
          diff = MAX (diff, fabs ((gdouble) y[i] - ref[i]));
          largest = MAX (largest, fabs ((gdouble) ref[i]));
        }
      e.vs_ours_fp32 = diff / MAX (largest, 1e-30);
    }
  for (gint s = 0; s < SAMPLES; s++)
    {
      e.vs_exact = MAX (e.vs_exact, fabs (y[c->sample[s]] - c->exact[s]));
      e.vs_rounded = MAX (e.vs_rounded, fabs (y[c->sample[s]] - c->rounded[s]));
    }
  e.vs_exact /= MAX (c->exact_max, 1e-30);
  e.vs_rounded /= MAX (c->rounded_max, 1e-30);
  return e;
}

/* Adds RUNTIME's accuracy row; whether it passes, so that it may be timed. */
static gboolean
check (Report *report, const Case *c, const gchar *runtime, const Errors *e, gboolean bf16)
{
  const gdouble  tolerance = bf16 ? BF16_TOLERANCE : FP32_TOLERANCE;
  const gboolean ok = e->vs_exact <= tolerance && e->vs_ours_fp32 <= tolerance;
  gchar          vs_ours[32] = "—";

  if (e->vs_ours_fp32 >= 0)
    g_snprintf (vs_ours, sizeof vs_ours, "%.1e", e->vs_ours_fp32);
  g_string_append_printf (report->accuracy, "| %s | %s | %s | %.1e | %.1e | %s (≤ %.0e) |\n",
                          c->shape->name, runtime, vs_ours, e->vs_exact, e->vs_rounded,
                          ok ? "ok" : "**FAIL**", tolerance);
  progress ("  %s%*s error vs ours-fp32 %s, vs float64 %.1e, vs float64 of bf16 operands %.1e: "
            "%s\n",
            runtime, padding (runtime), "", vs_ours, e->vs_exact, e->vs_rounded,
            ok ? "ok" : "FAIL");
  if (!ok)
    report->all_passed = FALSE;
  return ok;
}

/* Adds a timing row (MS < 0: not timed, NOTE says why). */
static void
time_row (Report *report, Case *c, const gchar *runtime, const gchar *impl, gdouble ms,
          const gchar *note)
{
  if (ms < 0)
    {
      g_string_append_printf (report->time, "| %s | %s | %s | — | — | %s |\n", c->shape->name,
                              runtime, impl, note);
      return;
    }
  g_string_append_printf (report->time, "| %s | %s | %s | %.2f | %.0f | ", c->shape->name, runtime,
                          impl, ms, c->flop / (ms * 1e-3) / 1e9);
  if (c->ours_bf16_ms > 0)
    g_string_append_printf (report->time, "%.2f× |\n", ms / c->ours_bf16_ms);
  else
    g_string_append (report->time, "— |\n");
  progress ("  %s%*s %9.2f ms  %6.0f GFLOP/s  (%s)\n", runtime, padding (runtime), "", ms,
            c->flop / (ms * 1e-3) / 1e9, impl);
}

/* ---- ours -------------------------------------------------------------------------- */

/* The path the CPU backend's convolve (core/cpu/cpu.c) takes for CONV. */
static const gchar *
our_path (const VaeConv *conv, gboolean bf16)
{
  const gboolean plain_1x1 = conv->kernel == 1 && conv->stride == 1 && conv->pad_top == 0 &&
                             conv->pad_left == 0 && conv->pad_bottom == 0 && conv->pad_right == 0;

  if (bf16 && vae_amx_conv_applies (conv))
    return "amx-conv: direct on AMX tiles";
  if (vae_winograd_applies (conv))
    return bf16 ? (vae_cpu_has_amx () ? "Winograd F(4,3), bf16 products on AMX (or direct)"
                                      : "Winograd F(4,3), bf16 products")
                : "Winograd F(4,3), fp32 products";
  if (plain_1x1)
    return bf16 ? (vae_cpu_has_amx () ? "1×1: one bf16 product (AMX)" : "1×1: one bf16 product")
                : "1×1: one OpenBLAS sgemm";
  return bf16 ? (vae_cpu_has_amx () ? "im2col + bf16 product (AMX)" : "im2col + bf16 product")
              : "im2col + OpenBLAS sgemm";
}

/* Ours through the backend's conv, as a real pass calls it: the output is
 * a fresh tensor each call (from the scratch arena), freed untimed. */
static gboolean
run_ours (Report *report, Case *c, gboolean bf16, GError **error)
{
  const VaeBackend *be = bf16 ? vae_backend_cpu_bf16 () : vae_backend_cpu ();
  const gchar      *runtime = bf16 ? "ours-bf16" : "ours-fp32", *impl = our_path (&c->conv, bf16);
  gdouble           seconds[64];
  VaeTensor        *y;
  Errors            e;
  gchar            *scratch, *planned, *weights;

  if (bf16 && !vae_cpu_has_bf16 ())
    {
      time_row (report, c, runtime, impl, -1, "not run: this CPU has no AVX512-BF16");
      return TRUE;
    }
  /* the warm-up call, checked (it also fills the layer's Winograd cache) */
  y = be->conv (be, &c->conv, c->x, FALSE, NULL, VAE_ACT_NONE, error);
  if (!y)
    return FALSE;
  if (!bf16)
    c->ours_fp32 = y; /* what everything else is compared with */
  e = measure (c, y->data, !bf16);
  if (bf16)
    vae_tensor_free (y);
  if (!check (report, c, runtime, &e, bf16))
    {
      time_row (report, c, runtime, impl, -1, "not timed: check failed");
      return TRUE;
    }
  for (gint r = 0; r < report->runs; r++)
    {
      const gdouble t0 = now_seconds ();
      y = be->conv (be, &c->conv, c->x, FALSE, NULL, VAE_ACT_NONE, error);
      seconds[r] = now_seconds () - t0;
      if (!y)
        return FALSE;
      vae_tensor_free (y);
    }
  if (bf16)
    c->ours_bf16_ms = median (seconds, report->runs) * 1e3;
  time_row (report, c, runtime, impl, median (seconds, report->runs) * 1e3, NULL);

  /* The scratch this path takes, what the memory plan reserves for the
   * layer (the larger of either precision's path), and Winograd's
   * transformed weights where the layer cache keeps them. */
  if (bf16 && vae_amx_conv_applies (&c->conv))
    scratch = megabytes (vae_amx_conv_scratch_bytes (&c->conv, c->out_h, c->out_w));
  else if (vae_winograd_applies (&c->conv))
    scratch = megabytes (vae_winograd_scratch_bytes (&c->conv, c->out_h, c->out_w));
  else
    scratch = megabytes (vae_cpu_conv_scratch_bytes (&c->conv, c->out_h, c->out_w));
  planned = megabytes (vae_cpu_conv_scratch_bytes (&c->conv, c->out_h, c->out_w));
  if (vae_winograd_applies (&c->conv) && !(bf16 && vae_amx_conv_applies (&c->conv)) &&
      vae_winograd_caches (&c->conv, c->out_h, c->out_w))
    weights = g_strdup_printf ("%.1f MB (Winograd's, fp32 size)",
                               (gdouble) vae_winograd_weight_bytes (&c->conv) / 1e6);
  else
    weights = g_strdup ("none (transformed or packed per call, in the scratch)");
  g_string_append_printf (report->memory,
                          "| %s | %s | %s | planar f32 | %s (plan: %s) | none | %s |\n",
                          c->shape->name, runtime, impl, scratch, planned, weights);
  g_free (scratch);
  g_free (planned);
  g_free (weights);
  return TRUE;
}

/* ---- oneDNN ------------------------------------------------------------------------ */

static dnnl_engine_t engine;
static dnnl_stream_t stream;

typedef struct
{
  const gchar     *name;
  dnnl_data_type_t operands; /* source and weights */
  dnnl_data_type_t dst;
} Precision;

static const Precision precisions[] = {
  { "f32", dnnl_f32, dnnl_f32 },
  { "bf16→f32", dnnl_bf16, dnnl_f32 },
  { "bf16→bf16", dnnl_bf16, dnnl_bf16 },
};

/* One convolution primitive with its memory: SRC, WEIGHTS and DST in the
 * layouts it chose, USER_SRC and USER_DST our planar f32 tensors; the
 * reorders are NULL where its layout is planar f32 already (SRC is then
 * USER_SRC). */
typedef struct
{
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t      conv, src_reorder, dst_reorder;
  dnnl_memory_t         user_src, user_dst, src, weights, bias, dst, scratchpad;
  gpointer              scratchpad_data;
  gsize                 scratchpad_bytes;
  gfloat               *out; /* planar f32, what USER_DST holds */
  gchar                 impl[128];
} Primitive;

#define DNNL_TRY(call)                                                                             \
  do                                                                                               \
    {                                                                                              \
      const dnnl_status_t status_ = (call);                                                        \
      if (status_ != dnnl_success)                                                                 \
        {                                                                                          \
          g_set_error (error, bench_error_quark (), status_, "%s: %s", #call,                      \
                       dnnl_status2str (status_));                                                 \
          return FALSE;                                                                            \
        }                                                                                          \
    }                                                                                              \
  while (0)

/* MD's layout as oneDNN's verbose mode writes it: the dimensions a, b, c, d
 * outermost first, those that are blocked in capitals, then the inner
 * blocks ("aBcd32b": channels in blocks of 32 innermost). */
static void
layout_name (const dnnl_memory_desc_t *md, gchar *buf, gsize size)
{
  const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
  gint                        order[DNNL_MAX_NDIMS];
  GString                    *s = g_string_new (dnnl_dt2str (md->data_type));

  g_string_append_c (s, ':');
  if (md->format_kind != dnnl_blocked)
    g_string_append (s, dnnl_fmt_kind2str (md->format_kind));
  else
    {
      for (gint i = 0; i < md->ndims; i++)
        order[i] = i;
      for (gint i = 1; i < md->ndims; i++) /* by stride, largest first */
        for (gint j = i; j > 0 && b->strides[order[j]] > b->strides[order[j - 1]]; j--)
          {
            const gint t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
          }
      for (gint i = 0; i < md->ndims; i++)
        {
          gboolean blocked = FALSE;
          for (gint j = 0; j < b->inner_nblks; j++)
            blocked |= b->inner_idxs[j] == order[i];
          g_string_append_c (s, (gchar) ((blocked ? 'A' : 'a') + order[i]));
        }
      for (gint j = 0; j < b->inner_nblks; j++)
        g_string_append_printf (s, "%" G_GINT64_FORMAT "%c", (gint64) b->inner_blks[j],
                                (gchar) ('a' + b->inner_idxs[j]));
    }
  g_strlcpy (buf, s->str, size);
  g_string_free (s, TRUE);
}

static gboolean
reorder_create (dnnl_primitive_t *reorder, const dnnl_memory_desc_t *from,
                const dnnl_memory_desc_t *to, GError **error)
{
  dnnl_primitive_desc_t pd;

  DNNL_TRY (dnnl_reorder_primitive_desc_create (&pd, from, engine, to, engine, NULL));
  DNNL_TRY (dnnl_primitive_create (reorder, pd));
  dnnl_primitive_desc_destroy (pd);
  return TRUE;
}

static gboolean
reorder_run (dnnl_primitive_t reorder, dnnl_memory_t from, dnnl_memory_t to, GError **error)
{
  const dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };

  DNNL_TRY (dnnl_primitive_execute (reorder, stream, 2, args));
  return TRUE;
}

static void
primitive_clear (Primitive *p)
{
  dnnl_memory_t *memories[] = { &p->weights, &p->bias, &p->scratchpad, &p->user_dst };

  if (p->src && p->src != p->user_src)
    dnnl_memory_destroy (p->src);
  if (p->dst && p->dst != p->user_dst)
    dnnl_memory_destroy (p->dst);
  if (p->user_src)
    dnnl_memory_destroy (p->user_src);
  for (guint i = 0; i < G_N_ELEMENTS (memories); i++)
    if (*memories[i])
      dnnl_memory_destroy (*memories[i]);
  if (p->conv)
    dnnl_primitive_destroy (p->conv);
  if (p->src_reorder)
    dnnl_primitive_destroy (p->src_reorder);
  if (p->dst_reorder)
    dnnl_primitive_destroy (p->dst_reorder);
  if (p->pd)
    dnnl_primitive_desc_destroy (p->pd);
  free (p->scratchpad_data);
  g_free (p->out);
  memset (p, 0, sizeof *p);
}

/* The primitive for C in precision PREC with algorithm ALG, as OpenVINO's
 * CPU plugin sets one up: every layout "any", its scratchpad ours (user
 * mode, so that we know and hold its size), its weights reordered once.
 * FALSE with *UNIMPLEMENTED set where oneDNN has no implementation. */
static gboolean
primitive_init (Primitive *p, const Case *c, const Precision *prec, dnnl_alg_kind_t alg,
                gboolean *unimplemented, GError **error)
{
  const VaeConv    *conv = &c->conv;
  const dnnl_dims_t src_dims = { 1, conv->in_channels, c->x->height, c->x->width },
                    weight_dims = { conv->out_channels, conv->in_channels, conv->kernel,
                                    conv->kernel },
                    dst_dims = { 1, conv->out_channels, c->out_h, c->out_w },
                    bias_dims = { conv->out_channels }, strides = { conv->stride, conv->stride },
                    pad_l = { conv->pad_top, conv->pad_left },
                    pad_r = { conv->pad_bottom, conv->pad_right };
  dnnl_memory_desc_t user_src_md, user_weights_md, user_dst_md, src_md, weights_md, dst_md, bias_md;
  const dnnl_memory_desc_t *md;
  dnnl_convolution_desc_t   desc;
  dnnl_primitive_attr_t     attr;
  dnnl_memory_t             user_weights;
  dnnl_primitive_t          weights_reorder;
  dnnl_status_t             status;

  memset (p, 0, sizeof *p);
  *unimplemented = FALSE;
  DNNL_TRY (dnnl_memory_desc_init_by_tag (&user_src_md, 4, src_dims, dnnl_f32, dnnl_nchw));
  DNNL_TRY (dnnl_memory_desc_init_by_tag (&user_weights_md, 4, weight_dims, dnnl_f32, dnnl_oihw));
  DNNL_TRY (dnnl_memory_desc_init_by_tag (&user_dst_md, 4, dst_dims, dnnl_f32, dnnl_nchw));
  DNNL_TRY (
      dnnl_memory_desc_init_by_tag (&src_md, 4, src_dims, prec->operands, dnnl_format_tag_any));
  DNNL_TRY (dnnl_memory_desc_init_by_tag (&weights_md, 4, weight_dims, prec->operands,
                                          dnnl_format_tag_any));
  DNNL_TRY (dnnl_memory_desc_init_by_tag (&dst_md, 4, dst_dims, prec->dst, dnnl_format_tag_any));
  DNNL_TRY (dnnl_memory_desc_init_by_tag (&bias_md, 1, bias_dims, dnnl_f32, dnnl_x));
  DNNL_TRY (dnnl_convolution_forward_desc_init (&desc, dnnl_forward_inference, alg, &src_md,
                                                &weights_md, &bias_md, &dst_md, strides, pad_l,
                                                pad_r));
  DNNL_TRY (dnnl_primitive_attr_create (&attr));
  DNNL_TRY (dnnl_primitive_attr_set_scratchpad_mode (attr, dnnl_scratchpad_mode_user));
  status = dnnl_primitive_desc_create (&p->pd, &desc, attr, engine, NULL);
  dnnl_primitive_attr_destroy (attr);
  if (status == dnnl_unimplemented)
    {
      *unimplemented = TRUE;
      return FALSE;
    }
  DNNL_TRY (status);
  {
    const char *impl = "?";
    DNNL_TRY (dnnl_primitive_desc_query (p->pd, dnnl_query_impl_info_str, 0, &impl));
    g_strlcpy (p->impl, impl, sizeof p->impl);
  }
  DNNL_TRY (dnnl_primitive_create (&p->conv, p->pd));

  /* the scratchpad: ours to allocate, oneDNN's to size */
  md = dnnl_primitive_desc_query_md (p->pd, dnnl_query_scratchpad_md, 0);
  p->scratchpad_bytes = md ? dnnl_memory_desc_get_size (md) : 0;
  if (p->scratchpad_bytes)
    {
      if (posix_memalign (&p->scratchpad_data, 64, p->scratchpad_bytes))
        {
          g_set_error (error, bench_error_quark (), 0, "out of memory for the scratchpad");
          return FALSE;
        }
      DNNL_TRY (dnnl_memory_create (&p->scratchpad, md, engine, p->scratchpad_data));
    }

  /* source: our planar tensor, reordered into a buffer of its layout unless
   * that is planar f32 */
  DNNL_TRY (dnnl_memory_create (&p->user_src, &user_src_md, engine, c->x->data));
  md = dnnl_primitive_desc_query_md (p->pd, dnnl_query_src_md, 0);
  if (dnnl_memory_desc_equal (md, &user_src_md))
    p->src = p->user_src;
  else
    {
      DNNL_TRY (dnnl_memory_create (&p->src, md, engine, DNNL_MEMORY_ALLOCATE));
      if (!reorder_create (&p->src_reorder, &user_src_md, md, error))
        return FALSE;
    }
  /* destination likewise, back into a planar f32 buffer */
  p->out = g_try_new (gfloat, (gsize) conv->out_channels * c->out_h * c->out_w);
  if (!p->out)
    {
      g_set_error (error, bench_error_quark (), 0, "out of memory for the output");
      return FALSE;
    }
  DNNL_TRY (dnnl_memory_create (&p->user_dst, &user_dst_md, engine, p->out));
  md = dnnl_primitive_desc_query_md (p->pd, dnnl_query_dst_md, 0);
  if (dnnl_memory_desc_equal (md, &user_dst_md))
    p->dst = p->user_dst;
  else
    {
      DNNL_TRY (dnnl_memory_create (&p->dst, md, engine, DNNL_MEMORY_ALLOCATE));
      if (!reorder_create (&p->dst_reorder, md, &user_dst_md, error))
        return FALSE;
    }
  /* weights: reordered once, untimed (what a cache would keep) */
  md = dnnl_primitive_desc_query_md (p->pd, dnnl_query_weights_md, 0);
  DNNL_TRY (dnnl_memory_create (&user_weights, &user_weights_md, engine, conv->weight));
  DNNL_TRY (dnnl_memory_create (&p->weights, md, engine, DNNL_MEMORY_ALLOCATE));
  if (!reorder_create (&weights_reorder, &user_weights_md, md, error) ||
      !reorder_run (weights_reorder, user_weights, p->weights, error))
    return FALSE;
  DNNL_TRY (dnnl_stream_wait (stream));
  dnnl_primitive_destroy (weights_reorder);
  dnnl_memory_destroy (user_weights);
  DNNL_TRY (dnnl_memory_create (&p->bias, &bias_md, engine, conv->bias));
  return TRUE;
}

/* The primitive alone, on memory already in its layouts. */
static gboolean
primitive_run (Primitive *p, GError **error)
{
  dnnl_exec_arg_t args[5] = { { DNNL_ARG_SRC, p->src },
                              { DNNL_ARG_WEIGHTS, p->weights },
                              { DNNL_ARG_BIAS, p->bias },
                              { DNNL_ARG_DST, p->dst },
                              { DNNL_ARG_SCRATCHPAD, p->scratchpad } };

  DNNL_TRY (dnnl_primitive_execute (p->conv, stream, p->scratchpad ? 5 : 4, args));
  DNNL_TRY (dnnl_stream_wait (stream));
  return TRUE;
}

/* Planar f32 in, the primitive, planar f32 out: the layer as gegl-vae
 * would run it. */
static gboolean
primitive_run_planar (Primitive *p, GError **error)
{
  if (p->src_reorder && !reorder_run (p->src_reorder, p->user_src, p->src, error))
    return FALSE;
  if (!primitive_run (p, error))
    return FALSE;
  if (p->dst_reorder && !reorder_run (p->dst_reorder, p->dst, p->user_dst, error))
    return FALSE;
  DNNL_TRY (dnnl_stream_wait (stream));
  return TRUE;
}

/* Median milliseconds of RUNS calls of RUN (warmed up already). */
static gboolean
time_calls (gboolean (*run) (Primitive *, GError **), Primitive *p, gint runs, gdouble *ms,
            GError **error)
{
  gdouble seconds[64];

  for (gint r = 0; r < runs; r++)
    {
      const gdouble t0 = now_seconds ();
      if (!run (p, error))
        return FALSE;
      seconds[r] = now_seconds () - t0;
    }
  *ms = median (seconds, runs) * 1e3;
  return TRUE;
}

/* oneDNN in PREC with ALG on case C: checked, then timed as the kernel
 * alone and with the reorders.  *IMPL (allocated) says what it picked; with
 * SAME_AS (the direct algorithm's implementation) the auto algorithm is not
 * timed again when it picked that same implementation. */
static gboolean
run_onednn (Report *report, Case *c, const Precision *prec, dnnl_alg_kind_t alg,
            const gchar *same_as, gchar **impl, GError **error)
{
  const gboolean bf16 = prec->operands == dnnl_bf16;
  gchar         *runtime = g_strdup_printf ("onednn %s %s", prec->name,
                                    alg == dnnl_convolution_auto ? "auto" : "direct");
  gchar         *runtime_planar = g_strconcat (runtime, " +reorders", NULL);
  gchar         *kernel_runtime = g_strconcat (runtime, " kernel", NULL);
  gchar          src[48], weights[48], dst[48];
  gchar         *blocked, *blocked_weights;
  gsize          blocked_bytes = 0, scratch_bytes;
  gdouble        kernel_ms, planar_ms;
  Primitive      p;
  gboolean       unimplemented, ok = FALSE;
  Errors         e;

  *impl = NULL;
  if (!primitive_init (&p, c, prec, alg, &unimplemented, error))
    {
      if (unimplemented)
        {
          time_row (report, c, runtime, "—", -1, "oneDNN: unimplemented");
          ok = TRUE;
        }
      goto out;
    }
  *impl = g_strdup (p.impl);

  /* the warm-up call, planar in and out, checked */
  if (!primitive_run_planar (&p, error))
    goto out;
  e = measure (c, p.out, FALSE);
  if (!check (report, c, runtime, &e, bf16))
    {
      time_row (report, c, runtime, p.impl, -1, "not timed: check failed");
      ok = TRUE;
      goto out;
    }

  /* memory: its scratchpad, the blocked copies of input and output a layer
   * would need beside our planar tensors, the weights it keeps */
  layout_name (dnnl_primitive_desc_query_md (p.pd, dnnl_query_src_md, 0), src, sizeof src);
  layout_name (dnnl_primitive_desc_query_md (p.pd, dnnl_query_weights_md, 0), weights,
               sizeof weights);
  layout_name (dnnl_primitive_desc_query_md (p.pd, dnnl_query_dst_md, 0), dst, sizeof dst);
  if (p.src != p.user_src)
    blocked_bytes +=
        dnnl_memory_desc_get_size (dnnl_primitive_desc_query_md (p.pd, dnnl_query_src_md, 0));
  if (p.dst != p.user_dst)
    blocked_bytes +=
        dnnl_memory_desc_get_size (dnnl_primitive_desc_query_md (p.pd, dnnl_query_dst_md, 0));
  {
    /* in user scratchpad mode the scratchpad is its descriptor's size and
     * memory_consumption_s64 leaves it out (in library mode it is the other
     * way round); either way, the larger is what the primitive needs */
    gint64 consumption = 0;
    dnnl_primitive_desc_query (p.pd, dnnl_query_memory_consumption_s64, 0, &consumption);
    scratch_bytes = MAX (p.scratchpad_bytes, (gsize) MAX (consumption, 0));
  }
  blocked = megabytes (blocked_bytes);
  blocked_weights = megabytes (
      dnnl_memory_desc_get_size (dnnl_primitive_desc_query_md (p.pd, dnnl_query_weights_md, 0)));
  g_string_append_printf (report->memory, "| %s | %s | %s | %s / %s / %s | %.1f MB | %s | %s |\n",
                          c->shape->name, runtime, p.impl, src, weights, dst,
                          (gdouble) scratch_bytes / 1e6, blocked, blocked_weights);
  g_free (blocked);
  g_free (blocked_weights);

  if (same_as && strcmp (same_as, p.impl) == 0)
    {
      time_row (report, c, runtime, p.impl, -1, "same implementation as direct: not timed again");
      ok = TRUE;
      goto out;
    }
  if (!primitive_run (&p, error) || /* the kernel's own warm-up */
      !time_calls (primitive_run, &p, report->runs, &kernel_ms, error) ||
      !time_calls (primitive_run_planar, &p, report->runs, &planar_ms, error))
    goto out;
  time_row (report, c, kernel_runtime, p.impl, kernel_ms, NULL);
  time_row (report, c, runtime_planar, p.impl, planar_ms, NULL);
  ok = TRUE;

out:
  primitive_clear (&p);
  g_free (runtime);
  g_free (runtime_planar);
  g_free (kernel_runtime);
  return ok;
}

/* ---- main ---------------------------------------------------------------------------- */

static gboolean
run_case (Report *report, const Shape *shape, GError **error)
{
  Case     c;
  gboolean ok = FALSE;

  progress ("%s: input %d×%d, output %d channels\n", shape->name, shape->size, shape->size,
            shape->cout);
  if (!case_init (&c, shape, error))
    goto out;
  /* ours-fp32 first: its output is what the others are compared with */
  if (!run_ours (report, &c, FALSE, error) || !c.ours_fp32 || !run_ours (report, &c, TRUE, error))
    goto out;
  for (guint i = 0; i < G_N_ELEMENTS (precisions); i++)
    {
      gchar *direct_impl = NULL, *auto_impl = NULL;
      ok = run_onednn (report, &c, &precisions[i], dnnl_convolution_direct, NULL, &direct_impl,
                       error) &&
           run_onednn (report, &c, &precisions[i], dnnl_convolution_auto, direct_impl, &auto_impl,
                       error);
      g_free (direct_impl);
      g_free (auto_impl);
      if (!ok)
        goto out;
    }
  ok = TRUE;
out:
  case_clear (&c);
  return ok;
}

int
main (int argc, char **argv)
{
  gboolean           quick = FALSE;
  gint               runs = 5;
  const GOptionEntry entries[] = { { "quick", 0, 0, G_OPTION_ARG_NONE, &quick,
                                     "Only shapes with 64×64 outputs (a smoke run)", NULL },
                                   { "runs", 0, 0, G_OPTION_ARG_INT, &runs,
                                     "Timed calls after the warm-up (median; 5)", "N" },
                                   G_OPTION_ENTRY_NULL };
  g_autoptr (GOptionContext) options = g_option_context_new ("— oneDNN against our convolutions");
  g_autoptr (GError) error = NULL;
  const dnnl_version_t *version = dnnl_version ();
  Report report = { g_string_new (NULL), g_string_new (NULL), g_string_new (NULL), TRUE, 0 };

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      progress ("bench-onednn: %s\n", error->message);
      return 2;
    }
  if (runs < 1 || runs > 64)
    {
      progress ("bench-onednn: --runs must be 1 to 64\n");
      return 2;
    }
  report.runs = runs;

  /* Ask for the AMX tiles through our code first (it asks Linux for them),
   * so that both runtimes start from the same state. */
  (void) vae_cpu_has_amx ();
  if (dnnl_engine_create (&engine, dnnl_cpu, 0) != dnnl_success ||
      dnnl_stream_create (&stream, engine, dnnl_stream_default_flags) != dnnl_success)
    {
      progress ("bench-onednn: cannot create oneDNN's CPU engine\n");
      return 1;
    }
  printf ("oneDNN %d.%d.%d (%s runtime), ISA %s; threads: ours %d (GEGL_THREADS), OpenMP %d "
          "(OMP_NUM_THREADS); ours: AVX512-BF16 %s, AMX %s; median of %d calls after one "
          "warm-up\n\n",
          version->major, version->minor, version->patch,
          version->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other",
          dnnl_cpu_isa2str (dnnl_get_effective_cpu_isa ()), vae_threads (), omp_get_max_threads (),
          vae_cpu_has_bf16 () ? "yes" : "no", vae_cpu_has_amx () ? "yes" : "no", runs);
  if (vae_threads () != omp_get_max_threads ())
    progress ("bench-onednn: warning: GEGL_THREADS and OMP_NUM_THREADS differ: the runtimes "
              "run on different thread counts\n");

  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    if (shapes[i].sets & (quick ? IN_QUICK : IN_FULL))
      if (!run_case (&report, &shapes[i], &error))
        {
          progress ("bench-onednn: %s: %s\n", shapes[i].name, error ? error->message : "failed");
          return 1;
        }

  printf ("| shape | runtime | impl | median ms | GFLOP/s | time ÷ ours-bf16 |\n"
          "|---|---|---|---|---|---|\n%s\n",
          report.time->str);
  printf ("Accuracy (checked before timing): max |y − ref| / max |ref|; \"vs ours-fp32\" over all "
          "values, \"vs float64\" over %d output points (corners included) of the fp32 operands, "
          "\"bf16 operands\" of the same operands rounded to bf16.\n\n"
          "| shape | runtime | vs ours-fp32 | vs float64 | vs float64, bf16 operands | check |\n"
          "|---|---|---|---|---|---|\n%s\n",
          SAMPLES, report.accuracy->str);
  printf (
      "Memory beyond our planar f32 input and output: the layouts of src / weights / dst "
      "(oneDNN's verbose notation: acdb is NHWC, capitals blocked, e.g. AcdB16b32a2b); "
      "scratch (oneDNN's scratchpad, dnnl_query_scratchpad_md in user mode; ours: this "
      "path's, and what the memory plan reserves for the layer); the copies of src and dst "
      "in oneDNN's layout a layer would need beside our planar tensors; weights kept "
      "between calls.\n\n"
      "| shape | runtime | impl | layouts | scratch | src + dst in its layout | weights kept |\n"
      "|---|---|---|---|---|---|---|\n%s",
      report.memory->str);
  g_string_free (report.time, TRUE);
  g_string_free (report.accuracy, TRUE);
  g_string_free (report.memory, TRUE);
  dnnl_stream_destroy (stream);
  dnnl_engine_destroy (engine);
  if (!report.all_passed)
    {
      progress ("bench-onednn: a check failed (see the accuracy table)\n");
      return 1;
    }
  return 0;
}
