/* What the three image → image filters share (vae:diffusion-preview,
 * vae:round-trip, vae:latent-posterize; GIMP 3 lists them under Filters →
 * Generic → VAE): each is a meta op whose child nodes run
 *   input → vae:encode → [vae:latent-noise] → [vae:vq-snap] → vae:decode
 *         → vae:apply-alpha (alpha and extent of the input) → output,
 * so GEGL's node caches keep the latent: a change of strength or seed
 * re-runs only the nodes after the encode.  When the model cannot be used
 * the input passes through unchanged (a host such as GIMP never gets a blank
 * layer) and the `error` property says why.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef GEGL_VAE_FILTER_H
#define GEGL_VAE_FILTER_H

#include "vae-op.h"

G_BEGIN_DECLS

/* The model of a filter: an installed preset or another file, or (graphs and
 * scripts) any model name, which wins when set.  GIMP's dialog shows a
 * choice of the installed presets and, for "another file", a file chooser.
 * File paths come last among a filter's properties: GIMP 3.0.4's libgimp
 * cannot pass a GeglParamFilePath and, for scripts, drops every property
 * from the first one on (a later GIMP passes them as strings). */
/* clang-format off */
#define GEGL_VAE_MODEL_PROPERTIES                                                                  \
  property_enum (preset, _ ("Model"), GeglVaePreset, gegl_vae_preset, GEGL_VAE_PRESET_TAEF2)       \
    description (_ ("A model installed on the model path, or another file"))                       \
  property_string (model, _ ("Model name or file"), "")                                            \
    description (_ ("A preset name or a model file; when set, it is used instead of the "          \
                    "preset (for scripts and graphs)"))                                            \
    ui_meta ("visible", "0")
#define GEGL_VAE_MODEL_FILE_PROPERTY                                                               \
  property_file_path (model_file, _ ("Model file"), "")                                            \
    description (_ ("A VAE in .safetensors, .pth or .ckpt form"))                                  \
    ui_meta ("visible", "preset {file}")
/* clang-format on */

/* Why the model cannot be used.  GIMP's dialog shows the message while
 * `failed` is set (its message box is shown even when empty otherwise). */
/* clang-format off */
#define GEGL_VAE_ERROR_PROPERTY                                                                    \
  property_boolean (failed, _ ("Failed"), FALSE)                                                   \
    description (_ ("Whether the model cannot be used (read-only)"))                               \
    ui_meta ("visible", "0")                                                                       \
  property_string (error, _ ("Error"), "")                                                         \
    description (_ ("Why the model cannot be used (read-only)"))                                   \
    ui_meta ("error", "true") ui_meta ("visible", "failed")
/* clang-format on */

typedef struct
{
  GeglOperation *operation;
  GeglNode      *input, *output, *encode, *noise, *snap, *decode, *alpha;
  gint           wiring;   /* how input reaches output now (vae-filter.c) */
  gboolean       progress; /* a run is being reported (0 sent, 1 not yet) */
  gchar         *logged;   /* the last message logged: GIMP's scripts reset
                              `error` on each update, which sets it again */
} GeglVaeFilter;

/* The class of a filter: its attach and update, and its keys (name, title,
 * GIMP's menu label under Filters → Generic → VAE or NULL for none,
 * description). */
void gegl_vae_filter_class_init (GeglOperationClass *klass, void (*attach) (GeglOperation *),
                                 void (*update) (GeglOperation *), const gchar *name,
                                 const gchar *title, const gchar *menu_label,
                                 const gchar *description);

/* Builds the children of OPERATION (attach); NOISE and SNAP say whether the
 * chain has those nodes. */
void gegl_vae_filter_attach (GeglOperation *operation, gboolean noise, gboolean snap);
/* The children, or NULL before attach. */
GeglVaeFilter *gegl_vae_filter_get (GeglOperation *operation);

/* Loads the model the properties name, sets it and the run properties on the
 * encode and decode nodes, and wires input → chain → output (through the
 * snap when SNAP), or input → output with the reason in `error` when the
 * model cannot be used.  Returns the model, or NULL. */
VaeModel *gegl_vae_filter_update (GeglVaeFilter *filter, GeglVaePreset preset,
                                  const gchar *model_file, const gchar *model,
                                  GeglVaeBackend backend, GeglVaePrecision precision,
                                  gint memory_limit, gboolean snap);

/* gegl_node_set for a child, leaving alone the properties whose value stays:
 * any set invalidates the node and all after it, so setting the encode's
 * unchanged model again would throw its cached latent away. */
void gegl_vae_filter_set (GeglNode *node, const gchar *first_property, ...) G_GNUC_NULL_TERMINATED;

G_END_DECLS

#endif
