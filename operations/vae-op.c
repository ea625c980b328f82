/* SPDX-License-Identifier: LGPL-3.0-or-later */
#include "vae-config.h"
#include "vae-op.h"

#include <math.h>
#include <string.h>

static gfloat *
try_floats (gsize n, GError **error)
{
  gfloat *p = g_try_new (gfloat, n);

  if (!p)
    g_set_error (error, VAE_ERROR, VAE_ERROR_NO_MEMORY, _ ("out of memory for %.0f pixels"),
                 (gdouble) n);
  return p;
}

#define DEFINE_ENUM(func, TypeName, ...)                                                           \
  GType func (void)                                                                                \
  {                                                                                                \
    static gsize type;                                                                             \
    if (g_once_init_enter (&type))                                                                 \
      {                                                                                            \
        static GEnumValue values[] = { __VA_ARGS__, { 0, NULL, NULL } };                           \
        for (guint i = 0; values[i].value_name; i++)                                               \
          values[i].value_name = g_dgettext (GETTEXT_PACKAGE, values[i].value_name);               \
        g_once_init_leave (&type, g_enum_register_static (TypeName, values));                      \
      }                                                                                            \
    return type;                                                                                   \
  }

DEFINE_ENUM (gegl_vae_backend_get_type, "GeglVaeBackend",
             { GEGL_VAE_BACKEND_AUTO, N_ ("Automatic"), "auto" },
             { GEGL_VAE_BACKEND_CPU, N_ ("CPU"), "cpu" },
             { GEGL_VAE_BACKEND_CUDA, N_ ("CUDA"), "cuda" })

DEFINE_ENUM (gegl_vae_precision_get_type, "GeglVaePrecision",
             { GEGL_VAE_PRECISION_AUTO, N_ ("Automatic"), "auto" },
             { GEGL_VAE_PRECISION_FP32, N_ ("fp32"), "fp32" },
             { GEGL_VAE_PRECISION_BF16, N_ ("bf16"), "bf16" },
             { GEGL_VAE_PRECISION_FP16, N_ ("fp16 (CUDA)"), "fp16" })

DEFINE_ENUM (gegl_vae_mode_get_type, "GeglVaeMode", { GEGL_VAE_MODE_MEAN, N_ ("Mean"), "mean" },
             { GEGL_VAE_MODE_SAMPLE, N_ ("Sample"), "sample" })

DEFINE_ENUM (gegl_vae_schedule_get_type, "GeglVaeSchedule",
             { GEGL_VAE_SCHEDULE_AUTO, N_ ("Automatic"), "auto" },
             { GEGL_VAE_SCHEDULE_SD_SCALED_LINEAR, N_ ("SD scaled linear"), "sd-scaled-linear" },
             { GEGL_VAE_SCHEDULE_LINEAR, N_ ("Linear"), "linear" },
             { GEGL_VAE_SCHEDULE_COSINE, N_ ("Cosine"), "cosine" },
             { GEGL_VAE_SCHEDULE_FLOW, N_ ("Flow"), "flow" })

DEFINE_ENUM (gegl_vae_form_get_type, "GeglVaeForm",
             { GEGL_VAE_FORM_AUTO, N_ ("Automatic"), "auto" },
             { GEGL_VAE_FORM_DIFFUSERS, N_ ("Diffusers (√ᾱ·x + √(1−ᾱ)·ε)"), "diffusers" },
             { GEGL_VAE_FORM_EPS, N_ ("EPS (x + σ·ε)"), "eps" },
             { GEGL_VAE_FORM_FLOW, N_ ("Flow ((1−σ)·x + σ·ε)"), "flow" })

DEFINE_ENUM (gegl_vae_rng_get_type, "GeglVaeRng",
             { GEGL_VAE_RNG_PHILOX, N_ ("Philox (A1111/sd.cpp GPU seeds)"), "philox" },
             { GEGL_VAE_RNG_TORCH_CPU, N_ ("Torch CPU (ComfyUI seeds)"), "torch-cpu" })

static gboolean
on_model_path (const gchar *file)
{
  g_auto (GStrv) dirs = vae_model_search_path ();

  for (gchar **d = dirs; *d; d++)
    {
      g_autofree gchar *path = g_build_filename (*d, file, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return TRUE;
    }
  return FALSE;
}

/* A tiny model needs both of its files (encoder, decoder); the files of a
 * KL family are other names of one file. */
static gboolean
installed (const gchar *preset)
{
  const VaeFamily *family = vae_family_lookup (preset);
  gboolean         all = TRUE, any = FALSE;

  for (gchar **f = family ? family->files : NULL; f && *f; f++)
    {
      gboolean here = on_model_path (*f);
      all = all && here;
      any = any || here;
    }
  return family && (family->kind == VAE_KIND_TINY ? all : any);
}

/* Only the presets installed when the type is made (GIMP: when it starts),
 * so that GIMP's dialog offers those; the default and "another file" always. */
GType
gegl_vae_preset_get_type (void)
{
  static gsize type;

  if (g_once_init_enter (&type))
    {
      static const GEnumValue all[] = {
        { GEGL_VAE_PRESET_TAEF2, N_ ("TAEF2 (tiny, FLUX.2 latents)"), "taef2" },
        { GEGL_VAE_PRESET_TAEF1, N_ ("TAEF1 (tiny, FLUX.1 latents)"), "taef1" },
        { GEGL_VAE_PRESET_TAESD, N_ ("TAESD (tiny, SD 1/2 latents)"), "taesd" },
        { GEGL_VAE_PRESET_TAESDXL, N_ ("TAESDXL (tiny, SDXL latents)"), "taesdxl" },
        { GEGL_VAE_PRESET_TAESD3, N_ ("TAESD3 (tiny, SD3 latents)"), "taesd3" },
        { GEGL_VAE_PRESET_SD15, N_ ("Stable Diffusion 1/2 VAE"), "sd15" },
        { GEGL_VAE_PRESET_SDXL, N_ ("Stable Diffusion XL VAE"), "sdxl" },
        { GEGL_VAE_PRESET_SD3, N_ ("Stable Diffusion 3 VAE"), "sd3" },
        { GEGL_VAE_PRESET_FLUX1, N_ ("FLUX.1 VAE"), "flux1" },
        { GEGL_VAE_PRESET_FLUX2, N_ ("FLUX.2 VAE"), "flux2" },
        { GEGL_VAE_PRESET_FILE, N_ ("Another file…"), "file" },
      };
      static GEnumValue offered[G_N_ELEMENTS (all) + 1];
      guint             n = 0;

      for (guint i = 0; i < G_N_ELEMENTS (all); i++)
        if (all[i].value == GEGL_VAE_PRESET_TAEF2 || all[i].value == GEGL_VAE_PRESET_FILE ||
            installed (all[i].value_nick))
          {
            offered[n] = all[i];
            offered[n++].value_name = g_dgettext (GETTEXT_PACKAGE, all[i].value_name);
          }
      g_once_init_leave (&type, g_enum_register_static ("GeglVaePreset", offered));
    }
  return type;
}
DEFINE_ENUM (gegl_vae_scale_method_get_type, "GeglVaeScaleMethod",
             { VAE_SCALE_NEAREST_EXACT, N_ ("Nearest (exact)"), "nearest-exact" },
             { VAE_SCALE_BILINEAR, N_ ("Bilinear"), "bilinear" },
             { VAE_SCALE_AREA, N_ ("Area (average)"), "area" },
             { VAE_SCALE_BICUBIC, N_ ("Bicubic"), "bicubic" },
             { VAE_SCALE_BISLERP, N_ ("Bislerp (spherical)"), "bislerp" })

DEFINE_ENUM (gegl_vae_transform_get_type, "GeglVaeTransform",
             { VAE_TRANSFORM_FLIP_HORIZONTAL, N_ ("Flip horizontally"), "flip-horizontal" },
             { VAE_TRANSFORM_FLIP_VERTICAL, N_ ("Flip vertically"), "flip-vertical" },
             { VAE_TRANSFORM_ROTATE_90, N_ ("Rotate 90° clockwise"), "rotate-90" },
             { VAE_TRANSFORM_ROTATE_180, N_ ("Rotate 180°"), "rotate-180" },
             { VAE_TRANSFORM_ROTATE_270, N_ ("Rotate 270° clockwise"), "rotate-270" },
             { VAE_TRANSFORM_TRANSPOSE, N_ ("Transpose"), "transpose" })

DEFINE_ENUM (gegl_vae_blend_mode_get_type, "GeglVaeBlendMode",
             { VAE_BLEND_LERP, N_ ("Lerp"), "lerp" }, { VAE_BLEND_SLERP, N_ ("Slerp"), "slerp" },
             { VAE_BLEND_ADD, N_ ("Add"), "add" },
             { VAE_BLEND_SUBTRACT, N_ ("Subtract"), "subtract" },
             { VAE_BLEND_MULTIPLY, N_ ("Multiply"), "multiply" })

DEFINE_ENUM (gegl_vae_units_get_type, "GeglVaeUnits",
             { GEGL_VAE_UNITS_LATENT, N_ ("Latent pixels"), "latent" },
             { GEGL_VAE_UNITS_IMAGE, N_ ("Image pixels"), "image" })

const Babl *
gegl_vae_latent_format (gint channels)
{
  return babl_format_n (babl_type ("float"), MAX (channels, 1));
}

void
gegl_vae_latent_pads (GeglOperation *operation, gint channels)
{
  const Babl *format = gegl_vae_latent_format (channels);

  gegl_operation_set_format (operation, "input", format);
  gegl_operation_set_format (operation, "output", format);
  if (gegl_node_has_pad (operation->node, "aux"))
    gegl_operation_set_format (operation, "aux", format);
}

gint
gegl_vae_source_latent_channels (GeglOperation *operation, const gchar *pad, const gchar **what)
{
  GeglNode   *source = gegl_operation_get_source_node (operation, pad);
  const Babl *format;

  /* gegl:clone (XML's <clone ref=…/>) hands its input on untouched but
   * declares RGBA float: the format is its input's */
  for (gint depth = 0; source && depth < 64; depth++)
    {
      if (g_strcmp0 (gegl_node_get_operation (source), "gegl:clone") != 0)
        break;
      operation = gegl_node_get_gegl_operation (source);
      pad = "input";
      source = gegl_operation_get_source_node (operation, pad);
    }
  format = gegl_operation_get_source_format (operation, pad);

  *what = format ? babl_get_name (format) : "nothing";
  if (!format)
    return -1;
  if (!babl_format_is_format_n (format))
    return 0;
  return babl_format_get_n_components (format);
}

gint
gegl_vae_pad_latent (GeglOperation *operation, const gchar *pad, GError **error)
{
  const gchar *what;
  const gint   channels = gegl_vae_source_latent_channels (operation, pad, &what);

  if (channels == 0 && strcmp (pad, "input") == 0)
    g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                 _ ("the input is %s, not a latent (connect vae:encode)"), what);
  else if (channels == 0)
    g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                 _ ("aux is %s, not a latent (connect vae:encode)"), what);
  return MAX (channels, 0);
}

gint
gegl_vae_pad_latents (GeglOperation *operation, gboolean *with_aux, GError **error)
{
  const GeglRectangle *aux = gegl_operation_source_get_bounding_box (operation, "aux");
  const gchar         *what;
  gint                 channels = gegl_vae_pad_latent (operation, "input", error), aux_channels;

  *with_aux = FALSE;
  if (!channels || gegl_vae_source_latent_channels (operation, "aux", &what) < 0)
    return channels;
  if (!(aux_channels = gegl_vae_pad_latent (operation, "aux", error)))
    return 0;
  if (aux_channels != channels)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("aux has %d channels but the input has %d"), aux_channels, channels);
      return 0;
    }
  *with_aux = aux && aux->width > 0 && aux->height > 0;
  return channels;
}

gboolean
gegl_vae_pad_mask (GeglOperation *operation, const gchar *pad, GeglRectangle *box, GError **error)
{
  const gchar         *what;
  const gint           channels = gegl_vae_source_latent_channels (operation, pad, &what);
  const GeglRectangle *source = gegl_operation_source_get_bounding_box (operation, pad);

  if (channels > 0)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the mask on %s is a latent (%d channels), not an image"), pad, channels);
      return FALSE;
    }
  if (channels < 0 || !source || source->width <= 0 || source->height <= 0)
    return FALSE;
  *box = *source;
  return TRUE;
}

/* The node that really feeds PAD, looking through gegl:nop proxies into
 * the graphs that enclose them; NULL while nothing does. */
static GeglNode *
real_producer (GeglOperation *operation, const gchar *pad)
{
  GeglNode    *node = operation->node;
  const gchar *pad_name = pad;

  for (gint depth = 0; depth < 64; depth++)
    {
      GeglNode *producer = gegl_node_get_producer (node, pad_name, NULL);

      if (!producer)
        {
          GeglNode *graph = gegl_node_get_parent (node);
          if (!graph || g_strcmp0 (gegl_node_get_operation (node), "gegl:nop") != 0)
            return NULL;
          node = graph;
        }
      else if (g_strcmp0 (gegl_node_get_operation (producer), "gegl:nop") != 0)
        return producer;
      else
        node = producer;
      pad_name = "input";
    }
  return NULL;
}

gboolean
gegl_vae_report_empty_input (GeglOperation *operation, const gchar *pad)
{
  GeglNode            *producer = real_producer (operation, pad);
  const GeglRectangle *box = gegl_operation_source_get_bounding_box (operation, pad);
  GeglNode            *parent = gegl_node_get_parent (operation->node);
  const gchar         *filter = parent ? gegl_node_get_operation (parent) : NULL;

  if (!producer || g_str_has_prefix (gegl_node_get_operation (producer), "vae:"))
    return FALSE;
  if (filter && g_str_has_prefix (filter, "vae:"))
    return FALSE;
  return !box || box->width <= 0 || box->height <= 0;
}

static const gchar *
op_name (GeglOperation *operation)
{
  const gchar *name = gegl_operation_get_name (operation);
  return name ? name : G_OBJECT_TYPE_NAME (operation);
}

void
gegl_vae_report (GeglOperation *operation, gchar **error_property, const gchar *format, ...)
{
  g_autofree gchar *message = NULL;
  va_list           args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  if (g_strcmp0 (*error_property, message) != 0)
    {
      g_warning ("%s: %s", op_name (operation), message);
      g_free (*error_property);
      *error_property = g_steal_pointer (&message);
    }
}

void
gegl_vae_report_error (GeglOperation *operation, gchar **error_property, const GError *error)
{
  /* every failing path sets an error; a bug that does not must not take
   * the host program down with it */
  gegl_vae_report (operation, error_property, "%s",
                   error ? error->message : _ ("failed without saying why (a bug in gegl-vae)"));
}

gboolean
gegl_vae_finish_latent (GeglOperation *operation, gchar **error_property, GeglBuffer *output,
                        const GeglRectangle *area, const VaeTensor *result, const GError *error)
{
  g_autoptr (GError) write_error = NULL;

  if (result && gegl_vae_write_latent (output, area, result, &write_error))
    return TRUE;
  gegl_vae_report_error (operation, error_property, result ? write_error : error);
  return TRUE;
}

void
gegl_vae_accept_nan (GObjectClass *klass)
{
  guint        n;
  GParamSpec **pspecs = g_object_class_list_properties (klass, &n);

  for (guint i = 0; i < n; i++)
    if (G_IS_PARAM_SPEC_DOUBLE (pspecs[i]) && (pspecs[i]->flags & G_PARAM_WRITABLE))
      pspecs[i]->flags |= G_PARAM_LAX_VALIDATION;
  g_free (pspecs);
}

const gchar *
gegl_vae_nan_property (GeglOperation *operation)
{
  guint        n;
  GParamSpec **pspecs = g_object_class_list_properties (G_OBJECT_GET_CLASS (operation), &n);
  const gchar *name = NULL;

  for (guint i = 0; i < n && !name; i++)
    if (G_IS_PARAM_SPEC_DOUBLE (pspecs[i]) && (pspecs[i]->flags & G_PARAM_WRITABLE))
      {
        gdouble value;
        g_object_get (operation, pspecs[i]->name, &value, NULL);
        if (isnan (value))
          name = pspecs[i]->name;
      }
  g_free (pspecs);
  return name;
}

GeglRectangle
gegl_vae_box_unless_nan (GeglOperation *operation)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");

  return in && !gegl_vae_nan_property (operation) ? *in : (GeglRectangle){ 0 };
}

gboolean
gegl_vae_report_nan (GeglOperation *operation, gchar **error_property)
{
  const gchar *name = gegl_vae_nan_property (operation);

  if (name)
    gegl_vae_report (operation, error_property,
                     _ ("property '%s' is not a number (NaN); nothing is computed until it is"),
                     name);
  return name != NULL;
}

void
gegl_vae_report_outcome (GeglOperation *operation, gchar **error_property, const GError *error)
{
  if (error)
    gegl_vae_report_error (operation, error_property, error);
  else
    gegl_vae_clear_error (error_property);
}

void
gegl_vae_clear_error (gchar **error_property)
{
  if (*error_property && **error_property)
    {
      g_free (*error_property);
      *error_property = g_strdup ("");
    }
}

static VaeCompute
compute_of (GeglVaeBackend backend, GeglVaePrecision precision)
{
  return (VaeCompute){ (VaeBackendKind) backend, (VaePrecision) precision };
}

/* The model an op instance holds between its calls (prepare, bounding box,
 * process each ask): loaded again only when the name, halves, backend or
 * precision changes, not found again on the model path for every call.  A
 * failure is not kept, so a model file that appears later is found. */
typedef struct
{
  gchar           *name;
  VaeHalves        halves;
  GeglVaeBackend   backend;
  GeglVaePrecision precision;
  VaeModel        *model;
} HeldModel;

static void
held_free (gpointer data)
{
  HeldModel *held = data;

  g_free (held->name);
  vae_model_unref (held->model);
  g_free (held);
}

const gchar *
gegl_vae_model_or_default (const gchar *model)
{
  return model && *model ? model : GEGL_VAE_DEFAULT_MODEL;
}

VaeModel *
gegl_vae_load_model (GeglOperation *operation, const gchar *model, VaeHalves halves,
                     GeglVaeBackend backend, GeglVaePrecision precision, GError **error)
{
  static GMutex         lock;
  const gchar          *name = gegl_vae_model_or_default (model);
  const VaeModelOptions options = { .halves = halves };
  HeldModel            *held;
  VaeModel             *loaded = NULL;
  VaeCompute            compute = compute_of (backend, precision);

  g_mutex_lock (&lock);
  held = g_object_get_data (G_OBJECT (operation), "gegl-vae-model");
  if (held && held->halves == halves && held->backend == backend && held->precision == precision &&
      strcmp (held->name, name) == 0)
    loaded = vae_model_ref (held->model);
  else if (vae_compute_resolve (&compute, error) &&
           (loaded = vae_model_load (name, &options, error)))
    {
      held = g_new0 (HeldModel, 1);
      held->name = g_strdup (name);
      held->halves = halves;
      held->backend = backend;
      held->precision = precision;
      held->model = vae_model_ref (loaded);
      g_object_set_data_full (G_OBJECT (operation), "gegl-vae-model", held, held_free);
    }
  g_mutex_unlock (&lock);
  return loaded;
}

VaeModel *
gegl_vae_load_any_half (const gchar *model, GError **error)
{
  const VaeModelOptions any = { .halves = VAE_HALVES_ANY };

  return vae_model_load (model, &any, error);
}

gboolean
gegl_vae_raw_scale (const gchar *model, gdouble *scale, gdouble *shift, gboolean *identity,
                    GError **error)
{
  const gchar     *name = gegl_vae_model_or_default (model);
  const VaeFamily *family = vae_family_lookup (name);
  g_autoptr (VaeModel) loaded = NULL;

  if (!family)
    {
      if (!(loaded = gegl_vae_load_any_half (name, error)))
        return FALSE;
      family = vae_model_get_family (loaded);
    }
  *scale = loaded ? vae_model_scale (loaded) : family->scale;
  *shift = loaded ? vae_model_shift (loaded) : family->shift;
  *identity = family->batch_norm; /* FLUX.2 keeps its normalised latents */
  return TRUE;
}

gboolean
gegl_vae_codebook_learns (const gchar *codebook)
{
  return !codebook || !*codebook;
}

GeglRectangle
gegl_vae_codebook_region (GeglOperation *operation, const gchar *codebook, const GeglRectangle *roi)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");

  if (gegl_vae_codebook_learns (codebook))
    return in ? *in : (GeglRectangle){ 0 };
  return *roi;
}

/* A model's own codebook when NAME loads as a model; else NULL, with an
 * error only when it loads but has none. */
static VaeCodebook *
model_codebook (const gchar *name, gboolean *is_model, GError **error)
{
  g_autoptr (VaeModel) model = gegl_vae_load_any_half (name, NULL);

  *is_model = model != NULL;
  return model ? vae_model_codebook (model, error) : NULL;
}

VaeCodebook *
gegl_vae_codebook (const gchar *codebook, const gchar *model, gint k, gint iterations, guint64 seed,
                   const gfloat *vectors, gsize n, gint dim, GError **error)
{
  VaeCodebook *cb = NULL;
  gboolean     is_model = FALSE;

  if (gegl_vae_codebook_learns (codebook))
    return vae_codebook_learn (vectors, n, dim, k, iterations, seed, error);
  if (g_strcmp0 (codebook, "model") == 0)
    {
      g_autoptr (VaeModel) m = gegl_vae_load_any_half (gegl_vae_model_or_default (model), error);
      cb = m ? vae_model_codebook (m, error) : NULL;
    }
  else if (!(cb = model_codebook (codebook, &is_model, error)) && !is_model)
    cb = vae_codebook_load (codebook, error);
  if (cb && cb->dim != dim)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("the codebook's entries have %d channels but the latent has %d"), cb->dim,
                   dim);
      g_clear_pointer (&cb, vae_codebook_free);
    }
  return cb;
}

GeglVaeUsage *
gegl_vae_usage_of (gpointer *user_data)
{
  if (!*user_data)
    {
      GeglVaeUsage *usage = g_new0 (GeglVaeUsage, 1);
      g_mutex_init (&usage->lock);
      *user_data = usage;
    }
  return *user_data;
}

void
gegl_vae_usage_free (GeglVaeUsage *usage)
{
  g_mutex_clear (&usage->lock);
  g_free (usage->counts);
  g_free (usage);
}

void
gegl_vae_usage_reset (GeglVaeUsage *usage)
{
  g_mutex_lock (&usage->lock);
  g_clear_pointer (&usage->counts, g_free);
  usage->sq_error = 0.0;
  usage->vectors = 0;
  g_mutex_unlock (&usage->lock);
}

void
gegl_vae_usage_add (GeglVaeUsage *usage, const guint64 *counts, gint size, gdouble sq_error,
                    gsize n, gdouble *perplexity, gdouble *mean_error, gint *used)
{
  g_mutex_lock (&usage->lock);
  if (!usage->counts || usage->size != size)
    {
      g_free (usage->counts);
      usage->counts = g_new0 (guint64, size);
      usage->size = size;
    }
  *used = 0;
  for (gint k = 0; k < size; k++)
    *used += (usage->counts[k] += counts[k]) > 0;
  usage->sq_error += sq_error;
  usage->vectors += n;
  *perplexity = vae_codebook_perplexity (usage->counts, size);
  *mean_error = usage->sq_error / MAX (usage->vectors, 1);
  g_mutex_unlock (&usage->lock);
}

VaeTensor *
gegl_vae_read_latent (GeglBuffer *buffer, const GeglRectangle *rect, gint channels, GError **error)
{
  const gsize plane = (gsize) rect->width * rect->height;
  VaeTensor  *t = vae_tensor_new (channels, rect->height, rect->width, error);
  gfloat     *pixels;

  if (!t)
    return NULL;
  if (!(pixels = try_floats (plane * channels, error)))
    {
      vae_tensor_free (t);
      return NULL;
    }
  gegl_buffer_get (buffer, rect, 1.0, gegl_vae_latent_format (channels), pixels,
                   GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < channels; c++)
      t->data[c * plane + i] = pixels[i * channels + c];
  g_free (pixels);
  return t;
}

VaeTensor *
gegl_vae_read_mask (GeglBuffer *buffer, const GeglRectangle *rect, GError **error)
{
  VaeTensor *t = vae_tensor_new (1, rect->height, rect->width, error);

  if (t)
    gegl_buffer_get (buffer, rect, 1.0, babl_format ("Y float"), t->data, GEGL_AUTO_ROWSTRIDE,
                     GEGL_ABYSS_NONE);
  return t;
}

/* babl picks its conversion path at run time, by timing the candidates
 * within its tolerance, so an 8-bit picture read as floats could come out
 * a unit in the last place apart from one run to the next (a CI run's
 * latent moved by 1.2e-7 between two `gegl` processes).  So 8- and 16-bit
 * sRGB-encoded pixels are read in their own format, which converts
 * nothing, and divided here as the CLI divides them: the same picture gives
 * the same latent.  (Asking babl for R'G'B'A u8 instead made it time its
 * lookup tables first: 0.3 s and 256 MB more for the main job.)  The
 * full-scale value, or 0 to read floats. */
static gint
exact_integers (const Babl *format)
{
  /* by name, not by model and type: cairo-RGB24 is R'G'B' u8 too, stored
   * B'G'R' with a pad.  babl interns formats, and an sRGB profile's space
   * is babl's sRGB, so one pointer stands for each. */
  static const gchar *names[] = { "R'G'B' u8",  "R'G'B'A u8",  "Y' u8",  "Y'A u8",
                                  "R'G'B' u16", "R'G'B'A u16", "Y' u16", "Y'A u16" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (format == babl_format (names[i]))
      return i < 4 ? 255 : 65535;
  return 0;
}

VaeTensor *
gegl_vae_read_rgb (GeglBuffer *buffer, const GeglRectangle *rect, GError **error)
{
  const gsize plane = (gsize) rect->width * rect->height;
  const Babl *own = gegl_buffer_get_format (buffer);
  const gint  full_scale = exact_integers (own);
  const Babl *format = full_scale ? own : babl_format ("R'G'B'A float");
  const gint  n = babl_format_get_n_components (format), gray = n < 3;
  const gsize bytes = plane * babl_format_get_bytes_per_pixel (format);
  VaeTensor  *t = vae_tensor_new (3, rect->height, rect->width, error);
  gfloat     *pixels; /* or bytes or 16-bit words, as FORMAT says */

  if (!t)
    return NULL;
  if (!(pixels = try_floats ((bytes + sizeof (gfloat) - 1) / sizeof (gfloat), error)))
    {
      vae_tensor_free (t);
      return NULL;
    }
  gegl_buffer_get (buffer, rect, 1.0, format, pixels, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < 3; c++)
      {
        const gsize at = i * n + (gray ? 0 : c);
        t->data[c * plane + i] = full_scale == 255     ? ((guint8 *) pixels)[at] / 255.0f
                                 : full_scale == 65535 ? ((guint16 *) pixels)[at] / 65535.0f
                                                       : pixels[at];
      }
  g_free (pixels);
  return t;
}

/* Rows of a band written at once: about 4 MB of interleaved pixels, so
 * that writing a big image needs no second copy of it (16384² RGBA floats
 * took 4 GB, and g_new aborted when they were not there). */
static gint
band_rows (gint width, gint components)
{
  return (gint) CLAMP (((gsize) 4 << 20) / ((gsize) width * components * sizeof (gfloat)), 1,
                       G_MAXINT);
}

/* RECT of BUFFER from the top-left of T, COMPONENTS interleaved (the
 * tensor's channels, then alpha 1 when there is one more). */
static gboolean
write_planar (GeglBuffer *buffer, const GeglRectangle *rect, const VaeTensor *t, gint components,
              const Babl *format, GError **error)
{
  const gsize        tensor_plane = (gsize) t->width * t->height;
  gint               rows;
  g_autofree gfloat *pixels = NULL;

  if (rect->width <= 0 || rect->height <= 0)
    return TRUE;
  rows = MIN (band_rows (rect->width, components), rect->height);
  if (!(pixels = try_floats ((gsize) rect->width * rows * components, error)))
    return FALSE;
  for (gint y0 = 0; y0 < rect->height; y0 += rows)
    {
      const GeglRectangle band = { rect->x, rect->y + y0, rect->width,
                                   MIN (rows, rect->height - y0) };
      for (gint y = 0; y < band.height; y++)
        for (gint x = 0; x < band.width; x++)
          {
            gfloat     *p = pixels + ((gsize) y * band.width + x) * components;
            const gsize src = (gsize) (y0 + y) * t->width + x;
            for (gint c = 0; c < components; c++)
              p[c] = c < t->channels ? t->data[c * tensor_plane + src] : 1.0f;
          }
      gegl_buffer_set (buffer, &band, 0, format, pixels, GEGL_AUTO_ROWSTRIDE);
    }
  return TRUE;
}

gboolean
gegl_vae_write_latent (GeglBuffer *buffer, const GeglRectangle *rect, const VaeTensor *latent,
                       GError **error)
{
  return write_planar (buffer, rect, latent, latent->channels,
                       gegl_vae_latent_format (latent->channels), error);
}

gboolean
gegl_vae_write_rgb (GeglBuffer *buffer, const GeglRectangle *rect, const VaeTensor *image,
                    GError **error)
{
  return write_planar (buffer, rect, image, 4, babl_format ("R'G'B'A float"), error);
}

VaeSchedule
gegl_vae_schedule (GeglVaeSchedule schedule, const VaeFamily *family)
{
  if (schedule == GEGL_VAE_SCHEDULE_AUTO)
    return family ? family->schedule : VAE_SCHEDULE_SD_SCALED_LINEAR;
  return (VaeSchedule) (schedule - GEGL_VAE_SCHEDULE_SD_SCALED_LINEAR);
}

VaeNoiseForm
gegl_vae_form (GeglVaeForm form, VaeSchedule schedule)
{
  if (form == GEGL_VAE_FORM_AUTO)
    return schedule == VAE_SCHEDULE_FLOW ? VAE_FORM_FLOW : VAE_FORM_DIFFUSERS;
  return (VaeNoiseForm) (form - GEGL_VAE_FORM_DIFFUSERS);
}

static void
report_progress (gdouble fraction, gpointer operation)
{
  gegl_operation_progress (operation, fraction, (gchar *) "");
}

VaeRun
gegl_vae_run (GeglOperation *operation, gint memory_limit_mib, GeglVaeBackend backend,
              GeglVaePrecision precision)
{
  /* G_MESSAGES_DEBUG=gegl-vae shows each pass (the GIMP 3 tests count them) */
  g_debug ("%s: a pass of the model", op_name (operation));
  return (VaeRun){ .compute = compute_of (backend, precision),
                   .tiling = { (guint64) memory_limit_mib << 20, 0 },
                   .progress = report_progress,
                   .progress_data = operation };
}

GeglRectangle
gegl_vae_whole_input (GeglOperation *operation, const gchar *input_pad, const GeglRectangle *roi)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, input_pad);
  return in ? *in : (GeglRectangle){ 0 };
}

GeglRectangle
gegl_vae_whole_output (GeglOperation *operation, const gchar *input_pad,
                       const GeglRectangle *input_region)
{
  /* not the box: asking for it prepares the nodes before, and GEGL asks
   * while it takes a graph apart */
  return gegl_rectangle_infinite_plane ();
}

VaeRect
gegl_vae_rect_in (const GeglRectangle *rect, const GeglRectangle *origin)
{
  return (VaeRect){ rect->x - origin->x, rect->y - origin->y, rect->width, rect->height };
}

GeglRectangle
gegl_vae_rect_out (const VaeRect *rect, const GeglRectangle *origin)
{
  return (GeglRectangle){ rect->x + origin->x, rect->y + origin->y, rect->width, rect->height };
}

gint
gegl_vae_floor_div (gint a, gint b)
{
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
