/* gegl-vae bench and synth: timing on random inputs, and random-weight
 * models of real architectures to time without downloading anything.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cli.h"
#include "vae-config.h"

#include <glib/gi18n-lib.h>

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static gchar   *opt_model = NULL;
static gchar   *opt_op = NULL;
static gchar   *opt_size = NULL;
static gchar   *opt_family = NULL;
static gint     opt_runs = 3;
static gint     opt_threads = 0;
static gint64   opt_seed = 1;
static gboolean opt_json = FALSE;

const GOptionEntry bench_entries[] = {
  { "model", 'm', 0, G_OPTION_ARG_STRING, &opt_model,
    "Model file or preset name (default " DEFAULT_MODEL ")", "M" },
  { "op", 0, 0, G_OPTION_ARG_STRING, &opt_op, "encode, decode (default) or roundtrip", "OP" },
  { "size", 0, 0, G_OPTION_ARG_STRING, &opt_size, "Image size (default 512x512)", "WxH" },
  { "runs", 0, 0, G_OPTION_ARG_INT, &opt_runs,
    "Timed runs after one warm-up (default 3); the median is reported", "N" },
  { "threads", 0, 0, G_OPTION_ARG_INT, &opt_threads,
    "Threads (default: GEGL_THREADS or all processors)", "N" },
  { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "Print one JSON object", NULL },
  { NULL }
};

const GOptionEntry synth_entries[] = {
  { "family", 0, 0, G_OPTION_ARG_STRING, &opt_family,
    "Family whose architecture to build (sd15, sdxl, sd3, flux1, flux2, qwen-image, wan21, wan22, "
    "dc-ae, hunyuan-image)",
    "F" },
  { "seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed, "Seed of the weights (default 1)", "N" },
  { NULL }
};

static gint
compare_doubles (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;
  return x < y ? -1 : x > y;
}

static gboolean
check_options (gint *width, gint *height, GError **error)
{
  if (opt_size && (sscanf (opt_size, "%dx%d", width, height) != 2 || *width < 1 || *height < 1))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--size must be WIDTHxHEIGHT, not '%s'"), opt_size);
      return FALSE;
    }
  if (opt_op && strcmp (opt_op, "encode") && strcmp (opt_op, "decode") &&
      strcmp (opt_op, "roundtrip"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--op must be encode, decode or roundtrip"));
      return FALSE;
    }
  if (opt_runs < 1 || opt_threads < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--runs must be ≥ 1 and --threads ≥ 0"));
      return FALSE;
    }
  /* before the input is made: 100000² took minutes to fill, then failed */
  return vae_check_image_size (*width, *height, "--size", error);
}

/* Deterministic inputs: a smooth image in [0,1], or a unit-normal latent. */
static VaeTensor *
make_input (VaeModel *model, gboolean decode, gint width, gint height, GError **error)
{
  const gint f = vae_model_factor (model);
  VaeTensor *t = decode ? vae_tensor_new (vae_model_latent_channels (model), (height + f - 1) / f,
                                          (width + f - 1) / f, error)
                        : vae_tensor_new (3, height, width, error);

  if (!t)
    return NULL;
  if (decode)
    vae_philox_fill ((guint64) opt_seed, 0, 0, t->data, vae_tensor_n_elements (t));
  else
    for (gsize i = 0; i < vae_tensor_n_elements (t); i++)
      t->data[i] = 0.5f + 0.25f * g_random_double_range (-1, 1) + 0.2f * (gfloat) ((i / 97) % 2);
  return t;
}

/* The first pass's planned peak (for a round trip, the encoder's). */
static gdouble
planned_mb (const VaeMemoryPlan *plan)
{
  return (plan->band_pixels ? plan->tiled_bytes : plan->untiled_bytes) / 1048576.0;
}

static gboolean
run_once (VaeModel *model, const VaeTensor *input, const gchar *op, const VaeRun *run,
          GError **error)
{
  g_autoptr (VaeTensor) a = NULL, b = NULL;

  if (strcmp (op, "decode") == 0)
    return (a = vae_model_decode (model, input, run, error)) != NULL;
  if (!(a = vae_model_encode (model, input, VAE_ENCODE_MEAN, 0, run, error)))
    return FALSE;
  return strcmp (op, "roundtrip") != 0 || (b = vae_model_decode (model, a, run, error)) != NULL;
}

/* The halves OP runs: a one-way bench holds only its half, as the encode
 * and decode commands do. */
static VaeHalves
halves_for (const gchar *op)
{
  return strcmp (op, "encode") == 0   ? VAE_HALVES_ENCODER
         : strcmp (op, "decode") == 0 ? VAE_HALVES_DECODER
                                      : VAE_HALVES_BOTH;
}

gboolean
cmd_bench (gint argc, gchar **argv, GError **error)
{
  const gchar *op = opt_op ? opt_op : "decode";
  gint         width = 512, height = 512;
  g_autoptr (VaeModel) model = NULL;
  g_autoptr (VaeTensor) input = NULL;
  g_autofree gdouble *seconds = NULL;
  guint64             macs = 0;
  struct rusage       usage;
  gdouble             median;
  VaeMemoryPlan       plan;
  VaeRun              run;
  VaeCompute          compute;
  const gchar        *backend;
  g_autofree gchar   *device = NULL;
  gint64              load_start;
  gdouble             first_call; /* load, plan and the warm-up pass: what a one-off call waits */

  if (argc != 1)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("usage: gegl-vae bench [OPTION…]"));
      return FALSE;
    }
  if (!check_options (&width, &height, error) || !cli_run_options (&run, error))
    return FALSE;
  compute = run.compute;
  if (!vae_compute_resolve (&compute, error))
    return FALSE;
  if (compute.backend == VAE_BACKEND_CUDA)
    vae_cuda_probe (&device, NULL);
  backend = compute.backend == VAE_BACKEND_CUDA ? "cuda" : "cpu";
  if (opt_threads > 0)
    {
      g_autofree gchar *n = g_strdup_printf ("%d", opt_threads);
      g_setenv ("GEGL_THREADS", n, TRUE);
      g_setenv ("OMP_NUM_THREADS", n, TRUE);
    }
  load_start = g_get_monotonic_time ();
  if (!(model = cli_load_model (opt_model, halves_for (op), error)) ||
      !(input = make_input (model, strcmp (op, "decode") == 0, width, height, error)) ||
      !vae_model_plan (model, strcmp (op, "decode") != 0, input->width, input->height, &run, &plan,
                       error) ||
      !run_once (model, input, op, &run, error))
    return FALSE;
  first_call = (g_get_monotonic_time () - load_start) / 1e6;
  seconds = g_new (gdouble, opt_runs);
  for (gint r = 0; r < opt_runs; r++)
    {
      gint64 start;
      vae_macs_reset ();
      start = g_get_monotonic_time ();
      if (!run_once (model, input, op, &run, error))
        return FALSE;
      seconds[r] = (g_get_monotonic_time () - start) / 1e6;
      macs = vae_macs_counted ();
    }
  qsort (seconds, opt_runs, sizeof (gdouble), compare_doubles);
  median = seconds[opt_runs / 2];
  getrusage (RUSAGE_SELF, &usage);
  if (opt_json)
    printf ("{\"op\": \"%s\", \"width\": %d, \"height\": %d, \"backend\": \"%s\", \"precision\": "
            "\"%s\", "
            "\"device\": \"%s\", \"threads\": %d, \"seconds\": %.4f, \"gflops\": %.1f, "
            "\"peak_rss_mb\": %.1f, "
            "\"band_pixels\": %d, \"planned_peak_mb\": %.1f, \"first_call_seconds\": %.4f}\n",
            op, width, height, backend, vae_precision_name (compute.precision),
            device ? device : "cpu", vae_threads (), median, 2.0 * macs / median / 1e9,
            usage.ru_maxrss / 1024.0, plan.band_pixels, planned_mb (&plan), first_call);
  else
    printf ("%s %dx%d on %s (%s, %s%s%d threads): %.3f s (median of %d), %.1f GFLOP/s, peak RSS "
            "%.0f MB "
            "(%s, planned %.0f MB); first call (load + pass) %.3f s\n",
            op, width, height, backend, vae_precision_name (compute.precision),
            device ? device : "", device ? ", " : "", vae_threads (), median, opt_runs,
            2.0 * macs / median / 1e9, usage.ru_maxrss / 1024.0,
            plan.band_pixels ? "tiled" : "untiled", planned_mb (&plan), first_call);
  return TRUE;
}

gboolean
cmd_synth (gint argc, gchar **argv, GError **error)
{
  if (argc != 2 || !opt_family)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("usage: gegl-vae synth --family F [--seed N] OUT.safetensors"));
      return FALSE;
    }
  return vae_synth_family (opt_family, (guint64) opt_seed, argv[1], error);
}
