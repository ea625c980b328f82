/* gegl-vae: the command-line front end of libvae.
 *
 *   gegl-vae info MODEL
 *   gegl-vae encode [--model M] [--mode mean|sample] [--seed N] IN OUT
 *   gegl-vae decode [--model M] [--force-not-quantize] IN OUT
 *   (encode, decode, preview and bench also take --memory-limit BYTES, --tile-size N,
 *    --backend auto|cpu|cuda and --precision auto|fp32|bf16|fp16)
 *   gegl-vae preview [--model M] [--strength S | --timestep T] [--schedule S] [--seed N] IN OUT
 *   gegl-vae bench [--model M] [--op encode|decode|roundtrip] [--size WxH] [--runs N] [--threads N]
 * [--json] gegl-vae synth --family F [--seed N] OUT.safetensors
 *
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cli.h"
#include "vae-config.h"

#include <glib/gi18n-lib.h>
#include "png-io.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gchar   *opt_model = NULL;
static gchar   *opt_mode = NULL;
static gchar   *opt_family = NULL;
static gchar   *opt_scale = NULL;
static gchar   *opt_shift = NULL;
static gint64   opt_seed = 0;
static gint     opt_depth = 8;
static gboolean opt_force_not_quantize = FALSE;
static gdouble  opt_strength = 0.5;
#define TIMESTEP_UNSET G_MININT /* so that a negative --timestep is seen, and refused */
static gint   opt_timestep = TIMESTEP_UNSET;
static gchar *opt_schedule = NULL;
static gchar *opt_form = NULL;
static gchar *opt_rng = NULL;
static gchar *opt_memory_limit = NULL;
static gint   opt_tile_size = 0;
static gchar *opt_backend = NULL;
static gchar *opt_precision = NULL;

static const GOptionEntry model_entries[] = {
  { "model", 'm', 0, G_OPTION_ARG_STRING, &opt_model,
    "Model file or preset name (default " DEFAULT_MODEL ")", "M" },
  { "family", 0, 0, G_OPTION_ARG_STRING, &opt_family,
    "Use this family's descriptor instead of detecting it", "NAME" },
  { "scale", 0, 0, G_OPTION_ARG_STRING, &opt_scale, "Override the family's latent scale", "S" },
  { "shift", 0, 0, G_OPTION_ARG_STRING, &opt_shift, "Override the family's latent shift", "H" },
  { NULL }
};

static const GOptionEntry encode_entries[] = {
  { "mode", 0, 0, G_OPTION_ARG_STRING, &opt_mode, "mean (default) or sample", "MODE" },
  { "seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed, "Seed of the sampling noise (default 0)", "N" },
  { NULL }
};

static const GOptionEntry decode_entries[] = {
  { "depth", 0, 0, G_OPTION_ARG_INT, &opt_depth,
    "Bits per channel of a PNG output: 8 (default) or 16", "BITS" },
  { "force-not-quantize", 0, 0, G_OPTION_ARG_NONE, &opt_force_not_quantize,
    "VQ models: decode the latent as it is (by default it is snapped to the model's codebook "
    "first, as diffusers' VQModel.decode does)",
    NULL },
  { NULL }
};

const GOptionEntry run_entries[] = {
  { "backend", 0, 0, G_OPTION_ARG_STRING, &opt_backend,
    "auto (default: CUDA when a device answers), cpu or cuda", "B" },
  { "precision", 0, 0, G_OPTION_ARG_STRING, &opt_precision,
    "auto (default: bf16 on a CPU with AMX, else fp32), fp32, bf16 (CUDA, or a CPU with "
    "AVX512-BF16) or fp16 (CUDA only; a pass that overflows is redone in fp32)",
    "P" },
  { "memory-limit", 0, 0, G_OPTION_ARG_STRING, &opt_memory_limit,
    "Plan the run to fit this many bytes (K/M/G suffixes; default: ¾ of the available memory)",
    "BYTES" },
  { "tile-size", 0, 0, G_OPTION_ARG_INT, &opt_tile_size,
    "Run in bands of this many image rows, needed or not", "N" },
  { NULL }
};

gboolean
cli_run_options (VaeRun *run, GError **error)
{
  VaeTiling  tiling = { 0, opt_tile_size };
  VaeCompute compute = { VAE_BACKEND_AUTO, VAE_PRECISION_AUTO };

  if (opt_backend && !vae_backend_from_name (opt_backend, &compute.backend))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--backend must be auto, cpu or cuda, not '%s'"), opt_backend);
      return FALSE;
    }
  if (opt_precision && !vae_precision_from_name (opt_precision, &compute.precision))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--precision must be auto, fp32, bf16 or fp16, not '%s'"), opt_precision);
      return FALSE;
    }

  if (opt_memory_limit && !vae_parse_bytes (opt_memory_limit, &tiling.memory_limit))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--memory-limit must be a size such as 800M or 2G, not '%s'"),
                   opt_memory_limit);
      return FALSE;
    }
  if (opt_tile_size < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--tile-size must not be negative"));
      return FALSE;
    }
  *run = (VaeRun){ .compute = compute, .tiling = tiling };
  return TRUE;
}

static gboolean
has_suffix (const gchar *path, const gchar *suffix)
{
  g_autofree gchar *lower = g_ascii_strdown (path, -1);
  return g_str_has_suffix (lower, suffix);
}

static gboolean
parse_number (const gchar *text, const gchar *what, gdouble *out, GError **error)
{
  gchar *end;

  *out = g_ascii_strtod (text, &end);
  if (end == text || *end)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("%s '%s' is not a number"), what, text);
      return FALSE;
    }
  return TRUE;
}

VaeModel *
cli_load_model (const gchar *name, VaeHalves halves, GError **error)
{
  VaeModelOptions options = { .family = opt_family, .halves = halves };

  if (opt_scale &&
      !(options.set_scale = parse_number (opt_scale, "--scale", &options.scale, error)))
    return NULL;
  if (opt_shift &&
      !(options.set_shift = parse_number (opt_shift, "--shift", &options.shift, error)))
    return NULL;
  return vae_model_load (name ? name : DEFAULT_MODEL, &options, error);
}

static VaeTensor *
read_image (const gchar *path, GError **error)
{
  if (has_suffix (path, ".npy"))
    return vae_npy_read_image (path, error);
  if (has_suffix (path, ".png"))
    return vae_png_read (path, error);
  /* a JPEG, a TIFF…: GEGL reads them, and writes the PNG this program reads */
  g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
               _ ("%s: images must be .png or .npy; convert it first, e.g. gegl %s -o picture.png "
                  "(or use the GEGL ops, which read any format GEGL does)"),
               path, path);
  return NULL;
}

static gboolean
write_image (const gchar *path, const VaeTensor *image, GError **error)
{
  if (has_suffix (path, ".npy"))
    return vae_npy_write_image (path, image, error);
  if (has_suffix (path, ".png"))
    {
      if (opt_depth != 8 && opt_depth != 16)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _ ("--depth must be 8 or 16, not %d"), opt_depth);
          return FALSE;
        }
      return vae_png_write (path, image, opt_depth, error);
    }
  g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
               _ ("%s: images must be written as .png or .npy"), path);
  return FALSE;
}

/* .latent files hold the raw latent; .npy the diffusion-scale one. */
static VaeTensor *
read_latent (VaeModel *model, const gchar *path, GError **error)
{
  VaeTensor *latent;

  if (has_suffix (path, ".npy"))
    return vae_npy_read_latent (path, error);
  if (!has_suffix (path, ".latent"))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: latents must be .npy or .latent"), path);
      return NULL;
    }
  if ((latent = vae_latent_file_read (path, error)))
    vae_model_latent_from_raw (model, latent);
  return latent;
}

static gboolean
write_latent (VaeModel *model, const gchar *path, VaeTensor *latent, GError **error)
{
  if (has_suffix (path, ".npy"))
    return vae_npy_write_latent (path, latent, error);
  if (has_suffix (path, ".latent"))
    {
      vae_model_latent_to_raw (model, latent);
      return vae_latent_file_write (path, latent, error);
    }
  g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
               _ ("%s: latents must be written as .npy or .latent"), path);
  return FALSE;
}

static gboolean
cmd_info (gint argc, gchar **argv, GError **error)
{
  g_autoptr (VaeModel) model = NULL;
  g_autofree gchar *text = NULL;

  if (argc != 2)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("usage: gegl-vae info [OPTION…] MODEL"));
      return FALSE;
    }
  if (!(model = cli_load_model (argv[1], VAE_HALVES_BOTH, error)))
    return FALSE;
  text = vae_model_describe (model);
  fputs (text, stdout);
  return TRUE;
}

static gboolean
cmd_encode (gint argc, gchar **argv, GError **error)
{
  g_autoptr (VaeModel) model = NULL;
  g_autoptr (VaeTensor) image = NULL;
  g_autoptr (VaeTensor) latent = NULL;
  VaeEncodeMode mode = VAE_ENCODE_MEAN;
  VaeRun        run;

  if (argc != 3)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("usage: gegl-vae encode [OPTION…] IN OUT"));
      return FALSE;
    }
  if (opt_mode && strcmp (opt_mode, "sample") == 0)
    mode = VAE_ENCODE_SAMPLE;
  else if (opt_mode && strcmp (opt_mode, "mean") != 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--mode must be mean or sample, not '%s'"), opt_mode);
      return FALSE;
    }
  if (opt_seed < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--seed must not be negative"));
      return FALSE;
    }
  return cli_run_options (&run, error) &&
         (model = cli_load_model (opt_model, VAE_HALVES_ENCODER, error)) &&
         (image = read_image (argv[1], error)) &&
         (latent = vae_model_encode (model, image, mode, (guint64) opt_seed, &run, error)) &&
         write_latent (model, argv[2], latent, error);
}

static gboolean
cmd_decode (gint argc, gchar **argv, GError **error)
{
  g_autoptr (VaeModel) model = NULL;
  g_autoptr (VaeTensor) latent = NULL;
  g_autoptr (VaeTensor) image = NULL;
  VaeRun run;

  if (argc != 3)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("usage: gegl-vae decode [OPTION…] IN OUT"));
      return FALSE;
    }
  return cli_run_options (&run, error) &&
         (model = cli_load_model (opt_model, VAE_HALVES_DECODER, error)) &&
         (latent = read_latent (model, argv[1], error)) &&
         (image = vae_model_decode_vq (model, latent, opt_force_not_quantize, &run, error)) &&
         write_image (argv[2], image, error);
}

static const GOptionEntry preview_entries[] = {
  { "strength", 's', 0, G_OPTION_ARG_DOUBLE, &opt_strength, "Denoising strength 0–1 (default 0.5)",
    "S" },
  { "timestep", 't', 0, G_OPTION_ARG_INT, &opt_timestep, "Timestep 0–999 (overrides --strength)",
    "T" },
  { "schedule", 0, 0, G_OPTION_ARG_STRING, &opt_schedule,
    "sd-scaled-linear, linear, cosine or flow (default: the family's)", "S" },
  { "form", 0, 0, G_OPTION_ARG_STRING, &opt_form,
    "diffusers, eps or flow (default: flow for flow schedules, else diffusers)", "F" },
  { "rng", 0, 0, G_OPTION_ARG_STRING, &opt_rng, "philox (default) or torch-cpu", "R" },
  { "seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed, "Noise seed (default 0)", "N" },
  { "depth", 0, 0, G_OPTION_ARG_INT, &opt_depth,
    "Bits per channel of a PNG output: 8 (default) or 16", "BITS" },
  { NULL }
};

static gboolean
parse_noise_options (const VaeFamily *family, VaeSchedule *schedule, VaeNoiseForm *form,
                     VaeRng *rng, gint *timestep, GError **error)
{
  *schedule = family->schedule;
  if (opt_schedule && !vae_schedule_from_name (opt_schedule, schedule))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("unknown --schedule '%s'"), opt_schedule);
      return FALSE;
    }
  *form = *schedule == VAE_SCHEDULE_FLOW ? VAE_FORM_FLOW : VAE_FORM_DIFFUSERS;
  if (opt_form)
    {
      if (g_strcmp0 (opt_form, "diffusers") == 0)
        *form = VAE_FORM_DIFFUSERS;
      else if (g_strcmp0 (opt_form, "eps") == 0)
        *form = VAE_FORM_EPS;
      else if (g_strcmp0 (opt_form, "flow") == 0)
        *form = VAE_FORM_FLOW;
      else
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("unknown --form '%s'"), opt_form);
          return FALSE;
        }
    }
  *rng = g_strcmp0 (opt_rng, "torch-cpu") == 0 ? VAE_RNG_TORCH_CPU : VAE_RNG_PHILOX;
  if (opt_rng && *rng == VAE_RNG_PHILOX && g_strcmp0 (opt_rng, "philox") != 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("unknown --rng '%s'"), opt_rng);
      return FALSE;
    }
  /* written so that NaN fails too: "--strength nan" added no noise */
  if (!(opt_strength >= 0.0 && opt_strength <= 1.0))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--strength must lie in 0–1, not %g"), opt_strength);
      return FALSE;
    }
  if (opt_timestep != TIMESTEP_UNSET && (opt_timestep < 0 || opt_timestep >= VAE_TIMESTEPS))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--timestep must lie in 0–%d, not %d"), VAE_TIMESTEPS - 1, opt_timestep);
      return FALSE;
    }
  if (opt_seed < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("--seed must not be negative"));
      return FALSE;
    }
  *timestep = opt_timestep != TIMESTEP_UNSET ? opt_timestep
                                             : vae_schedule_timestep_for_strength (opt_strength);
  return TRUE;
}

/* The top-left WIDTH × HEIGHT of IMAGE (decoders return padded sizes). */
static VaeTensor *
crop_image (const VaeTensor *image, gint width, gint height, GError **error)
{
  VaeTensor *out = vae_tensor_new (image->channels, height, width, error);

  for (gint c = 0; out && c < image->channels; c++)
    for (gint y = 0; y < height; y++)
      memcpy (out->data + ((gsize) c * height + y) * width,
              image->data + ((gsize) c * image->height + y) * image->width,
              sizeof (gfloat) * width);
  return out;
}

static gboolean
cmd_preview (gint argc, gchar **argv, GError **error)
{
  g_autoptr (VaeModel) model = NULL;
  g_autoptr (VaeTensor) image = NULL, latent = NULL, decoded = NULL, out = NULL;
  VaeSchedule  schedule;
  VaeNoiseForm form;
  VaeRng       rng;
  gint         timestep;
  VaeRun       run;

  if (argc != 3)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("usage: gegl-vae preview [OPTION…] IN OUT"));
      return FALSE;
    }
  if (!cli_run_options (&run, error) ||
      !(model = cli_load_model (opt_model, VAE_HALVES_BOTH, error)) ||
      !parse_noise_options (vae_model_get_family (model), &schedule, &form, &rng, &timestep,
                            error) ||
      !(image = read_image (argv[1], error)) ||
      !(latent = vae_model_encode (model, image, VAE_ENCODE_MEAN, 0, &run, error)))
    return FALSE;
  if (opt_strength > 0.0 || opt_timestep != TIMESTEP_UNSET)
    if (!vae_add_noise (latent, schedule, timestep, form, rng, (guint64) opt_seed, error))
      return FALSE;
  return (decoded = vae_model_decode (model, latent, &run, error)) &&
         (out = crop_image (decoded, image->width, image->height, error)) &&
         write_image (argv[2], out, error);
}

typedef struct
{
  const gchar *name;
  const gchar *args;
  const gchar *summary;
  gboolean (*run) (gint argc, gchar **argv, GError **error);
  const GOptionEntry *entries;
} Command;

static const Command commands[] = {
  { "info", "MODEL", "Describe a model: family, latent channels, factor, scale, parameters",
    cmd_info, NULL },
  { "encode", "IN OUT", "Encode an image (.png, .npy) to a latent (.npy, .latent)", cmd_encode,
    encode_entries },
  { "decode", "IN OUT", "Decode a latent (.npy, .latent) to an image (.png, .npy)", cmd_decode,
    decode_entries },
  { "preview", "IN OUT", "Forward-diffusion preview: encode, add noise at a timestep, decode",
    cmd_preview, preview_entries },
  { "bench", "", "Time encode/decode on random input: median seconds, GFLOP/s, peak RSS", cmd_bench,
    bench_entries },
  { "synth", "OUT", "Write a random-weight model of a family's full architecture", cmd_synth,
    synth_entries },
};

static void
usage (FILE *to)
{
  fprintf (to, "Usage: gegl-vae COMMAND [OPTION…] ARGS\n\nCommands:\n");
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (to, "  %-8s %-8s %s\n", commands[i].name, commands[i].args, commands[i].summary);
  fprintf (to, "\nRun 'gegl-vae COMMAND --help' for a command's options.\n");
}

/* The engine's notices (a generic family, a fallback) as plain lines. */
static void
print_notice (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
  fprintf (stderr, "gegl-vae: %s\n", message);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GOptionContext) context = NULL;
  const Command *command = NULL;

  vae_threads_wait_passively (argv);
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, VAE_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  g_log_set_handler (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO, print_notice, NULL);
  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      usage (argc < 2 ? stderr : stdout);
      return argc < 2 ? 2 : 0;
    }
  if (strcmp (argv[1], "--version") == 0)
    {
      printf ("gegl-vae %s\n", VAE_VERSION);
      return 0;
    }
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (argv[1], commands[i].name) == 0)
      command = &commands[i];
  if (!command)
    {
      fprintf (stderr, "gegl-vae: unknown command '%s'\n", argv[1]);
      usage (stderr);
      return 2;
    }
  {
    g_autofree gchar *summary = g_strdup_printf ("%s — %s", command->args, command->summary);
    context = g_option_context_new (summary);
  }
  if (command->run != cmd_bench && command->run != cmd_synth)
    g_option_context_add_main_entries (context, model_entries, NULL);
  if (command->entries)
    g_option_context_add_main_entries (context, command->entries, NULL);
  if (command->run != cmd_info && command->run != cmd_synth)
    g_option_context_add_main_entries (context, run_entries, NULL);
  {
    /* "gegl-vae preview --help" shows "Usage: gegl-vae preview …" */
    g_autofree gchar *name = g_strdup_printf ("gegl-vae %s", command->name);
    g_set_prgname (name);
  }
  argv[1] = argv[0];
  argc--;
  argv++;
  if (!g_option_context_parse (context, &argc, &argv, &error) || !command->run (argc, argv, &error))
    {
      /* every failure sets an error; the fallback only keeps a bug readable */
      fprintf (stderr, "gegl-vae %s: %s\n", command->name,
               error ? error->message : _ ("failed without saying why (a bug in gegl-vae)"));
      /* usage errors (options, their values, the arguments) exit 2 */
      return error && error->domain == G_OPTION_ERROR ? 2 : 1;
    }
  return 0;
}
