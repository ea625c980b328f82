/* What the gegl-vae operations share: enums, error reporting, model loading
 * and moving tensors in and out of GeglBuffers.  No model math here.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef GEGL_VAE_OP_H
#define GEGL_VAE_OP_H

#include <gegl.h>
#include <gegl-plugin.h>
#include <glib/gi18n-lib.h>

#include "vae.h"

G_BEGIN_DECLS

typedef enum
{
  GEGL_VAE_BACKEND_AUTO,
  GEGL_VAE_BACKEND_CPU,
  GEGL_VAE_BACKEND_CUDA
} GeglVaeBackend;

typedef enum
{
  GEGL_VAE_MODE_MEAN,
  GEGL_VAE_MODE_SAMPLE
} GeglVaeMode;

typedef enum
{
  GEGL_VAE_SCHEDULE_AUTO, /* the model family's (diffusion-preview); SD's otherwise */
  GEGL_VAE_SCHEDULE_SD_SCALED_LINEAR,
  GEGL_VAE_SCHEDULE_LINEAR,
  GEGL_VAE_SCHEDULE_COSINE,
  GEGL_VAE_SCHEDULE_FLOW
} GeglVaeSchedule;

typedef enum
{
  GEGL_VAE_FORM_AUTO, /* flow for the flow schedule, diffusers otherwise */
  GEGL_VAE_FORM_DIFFUSERS,
  GEGL_VAE_FORM_EPS,
  GEGL_VAE_FORM_FLOW
} GeglVaeForm;

typedef enum
{
  GEGL_VAE_RNG_PHILOX,
  GEGL_VAE_RNG_TORCH_CPU
} GeglVaeRng;

/* The models the GIMP filters offer by name: families with an encoder and a
 * decoder (vae_family_lookup names them by the nick), and any other file.
 * The type holds only those installed when it is made (and TAEF2). */
typedef enum
{
  GEGL_VAE_PRESET_TAEF2,
  GEGL_VAE_PRESET_TAEF1,
  GEGL_VAE_PRESET_TAESD,
  GEGL_VAE_PRESET_TAESDXL,
  GEGL_VAE_PRESET_TAESD3,
  GEGL_VAE_PRESET_SD15,
  GEGL_VAE_PRESET_SDXL,
  GEGL_VAE_PRESET_SD3,
  GEGL_VAE_PRESET_FLUX1,
  GEGL_VAE_PRESET_FLUX2,
  GEGL_VAE_PRESET_FILE
} GeglVaePreset;

typedef enum /* the order of VaePrecision */
{
  GEGL_VAE_PRECISION_FP32,
  GEGL_VAE_PRECISION_BF16,
  GEGL_VAE_PRECISION_FP16,
  GEGL_VAE_PRECISION_AUTO
} GeglVaePrecision;

/* core's enums, as GEGL properties */
typedef VaeScaleMethod GeglVaeScaleMethod;
typedef VaeTransform   GeglVaeTransform;
typedef VaeBlendMode   GeglVaeBlendMode;

typedef enum
{
  GEGL_VAE_UNITS_LATENT,
  GEGL_VAE_UNITS_IMAGE
} GeglVaeUnits;

GType gegl_vae_scale_method_get_type (void);
GType gegl_vae_transform_get_type (void);
GType gegl_vae_blend_mode_get_type (void);
GType gegl_vae_units_get_type (void);
GType gegl_vae_backend_get_type (void);
GType gegl_vae_precision_get_type (void);
GType gegl_vae_mode_get_type (void);
GType gegl_vae_schedule_get_type (void);
GType gegl_vae_form_get_type (void);
GType gegl_vae_rng_get_type (void);
GType gegl_vae_preset_get_type (void);

#define GEGL_VAE_DEFAULT_MODEL "taef2"

/* The properties of every op that runs a model: where, in what precision
 * and within how much memory (read by gegl_vae_run). */
/* clang-format off */
#define GEGL_VAE_RUN_PROPERTIES                                                                    \
  property_enum (backend, _ ("Backend"), GeglVaeBackend, gegl_vae_backend, GEGL_VAE_BACKEND_AUTO)  \
    description (_ ("Automatic: the CUDA device when one answers, else the CPU"))                  \
  property_enum (precision, _ ("Precision"), GeglVaePrecision, gegl_vae_precision,                 \
                 GEGL_VAE_PRECISION_AUTO)                                                          \
    description (_ ("Automatic: bf16 on a CPU with AMX, else fp32; bf16 on the CPU needs "         \
                    "AVX512-BF16, fp16 the CUDA device; a half-precision pass that overflows on "  \
                    "the device is redone in fp32"))                                               \
  property_int (memory_limit, _ ("Memory limit (MiB)"), 0)                                         \
    description (_ ("Plan the run to fit this much memory, in bands of rows when needed; "         \
                    "0: three quarters of what is available"))                                     \
    value_range (0, 1048576) ui_range (0, 65536)
/* clang-format on */

/* The last property of the ops that are not filters (vae-filter.h has
 * theirs): why the last run failed, empty after one that did not
 * (gegl-vae-run and the GIMP plug-ins read it; GEGL cannot say). */
/* clang-format off */
#define GEGL_VAE_LAST_ERROR_PROPERTY                                                               \
  property_string (error, _ ("Error"), "")                                                         \
    description (_ ("Why the last run failed (read-only)"))                                        \
    ui_meta ("error", "true")

/* A read-only report of the ops that map latents to codebook entries. */
#define GEGL_VAE_PERPLEXITY_PROPERTY                                                               \
  property_double (perplexity, _ ("Codebook perplexity"), 0.0)                                     \
    description (_ ("exp(entropy) of entry usage in the last run (read-only)"))                    \
    value_range (0.0, G_MAXDOUBLE)
/* clang-format on */

/* The properties of the ops that choose a codebook (vq-snap,
 * codebook-usage), read by gegl_vae_codebook. */
/* clang-format off */
#define GEGL_VAE_CODEBOOK_PROPERTIES                                                               \
  property_file_path (codebook, _ ("Codebook"), "")                                                \
    description (_ ("'model': the model's own codebook (a VQ model); a VQ model's file or preset " \
                    "name; a safetensors/.pth file with one [K, C] tensor; empty: learn one from " \
                    "the input"))                                                                  \
  property_string (model, _ ("Model"), GEGL_VAE_DEFAULT_MODEL)                                     \
    description (_ ("The VQ model whose codebook 'model' means"))                                  \
  property_int (k, _ ("Codebook size"), 16)                                                        \
    description (_ ("Entries to learn when no codebook is given"))                                 \
    value_range (1, 4096) ui_range (2, 256)                                                        \
  property_int (iterations, _ ("Iterations"), 10)                                                  \
    description (_ ("k-means iterations after k-means++ seeding"))                                 \
    value_range (0, 1000) ui_range (0, 50)                                                         \
  property_seed (seed, _ ("Seed"), rand)
/* clang-format on */

/* The format latents travel in: C float components. */
const Babl *gegl_vae_latent_format (gint channels);
/* A latent op's "input", "output" and, when it has one, "aux" in that
 * format. */
void gegl_vae_latent_pads (GeglOperation *operation, gint channels);
/* Components of the latent on PAD; 0 when it carries an image (*what then
 * names its format), −1 while nothing is connected. */
gint gegl_vae_source_latent_channels (GeglOperation *operation, const gchar *pad,
                                      const gchar **what);

/* The latent on PAD: its channel count; 0 when PAD carries an image (ERROR
 * says so, naming its format) or nothing (no error: not wired yet). */
gint gegl_vae_pad_latent (GeglOperation *operation, const gchar *pad, GError **error);
/* The latents on "input" and "aux" (a composer's): the input's channel
 * count, *WITH_AUX telling whether aux has pixels; 0 with ERROR when aux
 * carries an image or another channel count. */
gint gegl_vae_pad_latents (GeglOperation *operation, gboolean *with_aux, GError **error);
/* The mask on PAD, an ordinary image: TRUE with its box when it has pixels;
 * FALSE when nothing or an empty box is connected, or, with ERROR, when PAD
 * carries a latent. */
gboolean gegl_vae_pad_mask (GeglOperation *operation, const gchar *pad, GeglRectangle *box,
                            GError **error);

/* TRUE when PAD is fed an empty box by something that is not a vae: op.
 * Only the first vae: op of a chain reports an empty input (the others get
 * theirs from an op that says why), an op prepared before its graph is
 * wired does not complain, nor does one inside a filter (vae-filter.h): an
 * empty layer or selection in GIMP is nothing to filter, not an error. */
gboolean gegl_vae_report_empty_input (GeglOperation *operation, const gchar *pad);

/* Error reporting: one g_warning naming the op (when the message is new for
 * this op), and the `error` property set; gegl_vae_clear_error on success. */
void gegl_vae_report (GeglOperation *operation, gchar **error_property, const gchar *format, ...)
    G_GNUC_PRINTF (3, 4);
void gegl_vae_report_error (GeglOperation *operation, gchar **error_property, const GError *error);
void gegl_vae_clear_error (gchar **error_property);
/* ERROR reported, or the property cleared when it is NULL: a check's outcome. */
void gegl_vae_report_outcome (GeglOperation *operation, gchar **error_property,
                              const GError *error);
/* The end of a latent op's process(): RESULT written over AREA, or ERROR
 * (RESULT is NULL where the op failed) or the write's reported.  Returns
 * TRUE either way, as process() does: a failure is the op's to report. */
gboolean gegl_vae_finish_latent (GeglOperation *operation, gchar **error_property,
                                 GeglBuffer *output, const GeglRectangle *area,
                                 const VaeTensor *result, const GError *error);

/* GObject refuses NaN for a double property with a warning and keeps the
 * old value, so the op could not tell; the double properties of KLASS take
 * it (out-of-range numbers are then clamped to the range), and the op
 * refuses it: gegl_vae_nan_property names the first property holding NaN
 * (NULL when none does), gegl_vae_report_nan reports it and says whether. */
void         gegl_vae_accept_nan (GObjectClass *klass);
const gchar *gegl_vae_nan_property (GeglOperation *operation);
gboolean     gegl_vae_report_nan (GeglOperation *operation, gchar **error_property);
/* The input's box, or an empty one while a property is NaN, so that nothing
 * downstream computes (a filter's get_bounding_box). */
GeglRectangle gegl_vae_box_unless_nan (GeglOperation *operation);

/* MODEL, or the default model where the property is empty. */
const gchar *gegl_vae_model_or_default (const gchar *model);
/* vae_model_load for OPERATION's `model`, `backend` and `precision`
 * properties, with the HALVES it runs, kept with the op instance until one
 * of them changes; fails when the backend cannot be had.  A new
 * reference. */
VaeModel *gegl_vae_load_model (GeglOperation *operation, const gchar *model, VaeHalves halves,
                               GeglVaeBackend backend, GeglVaePrecision precision, GError **error);
/* MODEL for what every half knows (family, scale, shift, codebook): a
 * cached load with either half or both, else the decoder alone
 * (VAE_HALVES_ANY).  A new reference. */
VaeModel *gegl_vae_load_any_half (const gchar *model, GError **error);
/* Latent scale/shift of a family name or model file, for .latent files. */
gboolean gegl_vae_raw_scale (const gchar *model, gdouble *scale, gdouble *shift, gboolean *identity,
                             GError **error);

/* ---- codebooks (vq-snap, codebook-usage) ---------------------------------- */

/* Whether CODEBOOK (the property) asks to learn one from the whole input. */
gboolean gegl_vae_codebook_learns (const gchar *codebook);
/* The input box while learning (k-means needs all of it), else ROI. */
GeglRectangle gegl_vae_codebook_region (GeglOperation *operation, const gchar *codebook,
                                        const GeglRectangle *roi);
/* The codebook a vq op names: CODEBOOK empty learns K entries from the N
 * interleaved VECTORS (k-means++ seeded by SEED, then ITERATIONS steps);
 * "model" is MODEL's own codebook; a VQ model's file or preset name gives
 * its own (in the diffusion scale of its latents); another file must hold a
 * codebook (vae_codebook_load).  An error when its entries do not have the
 * latent's DIM channels. */
VaeCodebook *gegl_vae_codebook (const gchar *codebook, const gchar *model, gint k, gint iterations,
                                guint64 seed, const gfloat *vectors, gsize n, gint dim,
                                GError **error);

/* Which entries the chunks of one run used, and how far from them. */
typedef struct
{
  GMutex   lock;
  guint64 *counts;
  gint     size;
  gdouble  sq_error;
  guint64  vectors;
} GeglVaeUsage;

/* The usage kept in an op's USER_DATA, made on first use. */
GeglVaeUsage *gegl_vae_usage_of (gpointer *user_data);
void          gegl_vae_usage_free (GeglVaeUsage *usage);
/* Forgets the last run. */
void gegl_vae_usage_reset (GeglVaeUsage *usage);
/* Adds a chunk of N vectors (COUNTS of SIZE entries, SQ_ERROR); gives the
 * run's perplexity, mean squared error and entries used so far. */
void gegl_vae_usage_add (GeglVaeUsage *usage, const guint64 *counts, gint size, gdouble sq_error,
                         gsize n, gdouble *perplexity, gdouble *mean_error, gint *used);

/* Whole rectangles between buffers and planar tensors. */
VaeTensor *gegl_vae_read_rgb (GeglBuffer *buffer, const GeglRectangle *rect, GError **error);
VaeTensor *gegl_vae_read_latent (GeglBuffer *buffer, const GeglRectangle *rect, gint channels,
                                 GError **error);
/* A few MB at a time; an error only when even that cannot be had. */
gboolean gegl_vae_write_latent (GeglBuffer *buffer, const GeglRectangle *rect,
                                const VaeTensor *latent, GError **error);
/* A mask as a 1-channel tensor of "Y float" (an image read as its luminance). */
VaeTensor *gegl_vae_read_mask (GeglBuffer *buffer, const GeglRectangle *rect, GError **error);
/* Writes R'G'B'A float with alpha 1, the tensor's top-left at rect's origin. */
gboolean gegl_vae_write_rgb (GeglBuffer *buffer, const GeglRectangle *rect, const VaeTensor *image,
                             GError **error);

VaeSchedule  gegl_vae_schedule (GeglVaeSchedule schedule, const VaeFamily *family);
VaeNoiseForm gegl_vae_form (GeglVaeForm form, VaeSchedule schedule);

/* How the op runs its model: on BACKEND in PRECISION, planned to fit
 * MEMORY_LIMIT_MIB (0: the default), its progress (per layer, or per band
 * when tiled) reaching the op's node ("progress" signal), where hosts such
 * as the GIMP plug-in listen. */
VaeRun gegl_vae_run (GeglOperation *operation, gint memory_limit_mib, GeglVaeBackend backend,
                     GeglVaePrecision precision);

/* Whole-image ops (encode, decode, latent-scale) need all of an input pad
 * for any output, and change all of their output when any input changes. */
GeglRectangle gegl_vae_whole_input (GeglOperation *operation, const gchar *input_pad,
                                    const GeglRectangle *roi);
GeglRectangle gegl_vae_whole_output (GeglOperation *operation, const gchar *input_pad,
                                     const GeglRectangle *input_region);

/* A GEGL rectangle as core's, relative to ORIGIN's corner, and back. */
VaeRect       gegl_vae_rect_in (const GeglRectangle *rect, const GeglRectangle *origin);
GeglRectangle gegl_vae_rect_out (const VaeRect *rect, const GeglRectangle *origin);

/* Connects SOURCE's output to SINK's PAD: gegl_node_connect from GEGL 0.4.46
 * on (it deprecates gegl_node_connect_to), gegl_node_connect_to before. */
#if GEGL_MINOR_VERSION > 4 || GEGL_MICRO_VERSION >= 46
#define gegl_vae_connect(source, sink, pad) gegl_node_connect (source, "output", sink, pad)
#else
#define gegl_vae_connect(source, sink, pad) gegl_node_connect_to (source, "output", sink, pad)
#endif

/* floor(a / b) for the latent grid of images not anchored at 0. */
gint gegl_vae_floor_div (gint a, gint b);

G_END_DECLS

#endif
