/* vae:diffusion-preview — what diffusion does to a picture: encode → add
 * noise at a timestep → optionally snap to a codebook → decode, cropped
 * back to the picture with its alpha.  An image → image filter of the same
 * size, for GIMP's GEGL tool and the plug-in.  With a mask on aux, the
 * inpainting preview: noise only where the mask, grown by `grow`, is
 * (vae:inpaint-mask into vae:latent-noise's aux), the masked pixels
 * optionally grey before encoding (vae:encode's aux).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_string (model, _("Model"), GEGL_VAE_DEFAULT_MODEL)
  description (_("A model file, or a preset name looked up on the model path"))
property_double (strength, _("Strength"), 0.5)
  description (_("Denoising strength: 0 is a plain round trip through the VAE"))
  value_range (0.0, 1.0)
property_int (timestep, _("Timestep"), -1)
  description (_("Timestep 0–999; −1 takes it from the strength"))
  value_range (-1, 999)
property_enum (schedule, _("Schedule"), GeglVaeSchedule, gegl_vae_schedule, GEGL_VAE_SCHEDULE_AUTO)
  description (_("Noise schedule; automatic is the one the model's family trains with"))
property_enum (form, _("Form"), GeglVaeForm, gegl_vae_form, GEGL_VAE_FORM_AUTO)
property_seed (seed, _("Seed"), rand)
property_enum (rng, _("Random numbers"), GeglVaeRng, gegl_vae_rng, GEGL_VAE_RNG_PHILOX)
property_enum (mode, _("Encode mode"), GeglVaeMode, gegl_vae_mode, GEGL_VAE_MODE_MEAN)
property_boolean (vq, _("Snap to a codebook"), FALSE)
  description (_("Posterize the latent: snap it to a codebook before decoding"))
property_file_path (codebook, _("Codebook"), "")
  description (_("Codebook file; empty: learn k entries from the picture"))
property_int (k, _("Codebook size"), 16)
  value_range (1, 4096)
  ui_range (2, 256)
property_double (vq_strength, _("Snap strength"), 1.0)
  value_range (0.0, 1.0)
property_int (grow, _("Grow the mask"), 6)
  description (_("With a mask on aux: grow it by this many pixels, as ComfyUI's grow_mask_by"))
  value_range (0, 64)
property_boolean (fill, _("Grey fill"), FALSE)
  description (_("With a mask on aux: fill the masked pixels with grey before encoding, as "
                 "ComfyUI's VAE Encode (for Inpainting)"))
GEGL_VAE_RUN_PROPERTIES
property_string (error, _("Error"), "")
  description (_("Why the model cannot be used (read-only)"))
  ui_meta ("error", "true")
/* clang-format on */

#else

#define GEGL_OP_META
#define GEGL_OP_NAME vae_diffusion_preview
/* clang-format off */
#define GEGL_OP_C_SOURCE diffusion-preview.c
/* clang-format on */

#include "gegl-op.h"

typedef struct
{
  GeglNode *input, *mask, *output, *encode, *grown, *noise, *snap, *decode, *alpha;
} Nodes;

static void
attach (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  GeglNode       *gegl = operation->node;
  Nodes          *n = g_new0 (Nodes, 1);

  o->user_data = n;
  n->input = gegl_node_get_input_proxy (gegl, "input");
  n->mask = gegl_node_get_input_proxy (gegl, "aux");
  n->output = gegl_node_get_output_proxy (gegl, "output");
  n->encode = gegl_node_new_child (gegl, "operation", "vae:encode", NULL);
  n->grown = gegl_node_new_child (gegl, "operation", "vae:inpaint-mask", NULL);
  n->noise = gegl_node_new_child (gegl, "operation", "vae:latent-noise", NULL);
  n->snap = gegl_node_new_child (gegl, "operation", "vae:vq-snap", NULL);
  n->decode = gegl_node_new_child (gegl, "operation", "vae:decode", NULL);
  n->alpha = gegl_node_new_child (gegl, "operation", "vae:apply-alpha", NULL);
  gegl_node_link_many (n->input, n->encode, n->noise, n->decode, n->alpha, n->output, NULL);
  gegl_node_link (n->noise, n->snap); /* always fed, so it never sees an empty input */
  gegl_node_connect_to (n->input, "output", n->alpha, "aux");
  /* no mask: an empty box, which vae:encode and vae:latent-noise ignore */
  gegl_node_link (n->mask, n->grown);
  gegl_node_connect_to (n->grown, "output", n->noise, "aux");
  gegl_operation_meta_redirect (operation, "grow", n->grown, "grow");
  gegl_operation_meta_redirect (operation, "model", n->encode, "model");
  gegl_operation_meta_redirect (operation, "model", n->decode, "model");
  gegl_operation_meta_redirect (operation, "backend", n->encode, "backend");
  gegl_operation_meta_redirect (operation, "backend", n->decode, "backend");
  gegl_operation_meta_redirect (operation, "precision", n->encode, "precision");
  gegl_operation_meta_redirect (operation, "precision", n->decode, "precision");
  gegl_operation_meta_redirect (operation, "memory-limit", n->encode, "memory-limit");
  gegl_operation_meta_redirect (operation, "memory-limit", n->decode, "memory-limit");
  gegl_operation_meta_redirect (operation, "mode", n->encode, "mode");
  gegl_operation_meta_redirect (operation, "seed", n->encode, "seed");
  gegl_operation_meta_redirect (operation, "strength", n->noise, "strength");
  gegl_operation_meta_redirect (operation, "timestep", n->noise, "timestep");
  gegl_operation_meta_redirect (operation, "form", n->noise, "form");
  gegl_operation_meta_redirect (operation, "seed", n->noise, "seed");
  gegl_operation_meta_redirect (operation, "rng", n->noise, "rng");
  gegl_operation_meta_redirect (operation, "codebook", n->snap, "codebook");
  gegl_operation_meta_redirect (operation, "k", n->snap, "k");
  gegl_operation_meta_redirect (operation, "seed", n->snap, "seed");
  gegl_operation_meta_redirect (operation, "vq-strength", n->snap, "strength");
}

static void update (GeglOperation *operation);

static void
attach_and_update (GeglOperation *operation)
{
  attach (operation);
  update (operation);
}

/* Rewires the optional snap, resolves the automatic schedule against the
 * model's family, and says at once when the model cannot be used. */
static void
update (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  Nodes          *n = o->user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) model = NULL;
  VaeSchedule schedule;

  if (!n)
    return;
  gegl_node_link_many (n->noise, o->vq ? n->snap : n->decode, NULL);
  if (o->vq)
    gegl_node_link (n->snap, n->decode);
  if (o->fill)
    gegl_node_connect_to (n->mask, "output", n->encode, "aux");
  else
    gegl_node_disconnect (n->encode, "aux");
  model = gegl_vae_load_model (o->model, o->backend, o->precision, &error);
  schedule = gegl_vae_schedule (o->schedule, model ? vae_model_get_family (model) : NULL);
  gegl_node_set (n->noise, "schedule", GEGL_VAE_SCHEDULE_SD_SCALED_LINEAR + (gint) schedule,
                 /* a mask of the picture lines up with the latent encode pads it to */
                 "factor", model ? vae_model_factor (model) : 0, NULL);
  if (!model)
    gegl_vae_report_error (operation, &o->error, error);
  else if (!vae_model_has_encoder (model) || !vae_model_has_decoder (model))
    gegl_vae_report (operation, &o->error, _ ("model %s lacks an encoder or a decoder"), o->model);
  else
    gegl_vae_clear_error (&o->error);
}

static void
finalize (GObject *object)
{
  GeglProperties *o = GEGL_PROPERTIES (object);

  g_clear_pointer (&o->user_data, g_free);
  G_OBJECT_CLASS (gegl_op_parent_class)->finalize (object);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass     *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationMetaClass *meta_class = GEGL_OPERATION_META_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = finalize;
  operation_class->attach = attach_and_update;
  meta_class->update = update;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:diffusion-preview", "title", _ ("Forward Diffusion Preview"),
      "categories", "generic:ai", "description",
      _ ("Shows what diffusion does to a picture: encodes it with a Stable Diffusion "
         "family VAE, adds the noise of a diffusion timestep, optionally snaps the "
         "latent to a codebook, and decodes it again. Strength 0 is a plain VAE round trip. "
         "With a mask on aux, noise goes only where the mask is (an inpainting preview)."),
      NULL);
}

#endif
