/* vae:diffusion-preview — what diffusion does to a picture: encode → add
 * noise at a timestep → optionally snap to a codebook → decode, cropped
 * back to the picture with its alpha.  An image → image filter of the same
 * size (vae-filter.h): GIMP 3's Filters → Generic → VAE → Forward Diffusion
 * Preview, GIMP 2.10's GEGL tool.
 * vae:inpaint-preview (inpaint-preview.c builds this file again with
 * VAE_INPAINT_PREVIEW) is the same with a mask on aux, the inpainting
 * preview: noise only where the mask, grown by `grow`, is (vae:inpaint-mask
 * into vae:latent-noise's aux), the masked pixels optionally grey before
 * encoding (vae:encode's aux).  Two ops, not one: GIMP 3 keeps no filter
 * with an aux pad on a layer ("effects with an 'aux' pad cannot be applied
 * non-destructively"), and the forward diffusion preview must stay editable.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-filter.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
GEGL_VAE_MODEL_PROPERTIES
property_double (strength, _ ("Strength"), 0.5)
  description (_ ("Denoising strength: 0 is a plain round trip through the VAE"))
  value_range (0.0, 1.0)
property_seed (seed, _ ("Seed"), rand)
  description (_ ("Seed of the noise (and of the codebook and the sampled encode)"))
property_int (timestep, _ ("Timestep"), -1)
  description (_ ("Timestep 0–999; −1 takes it from the strength"))
  value_range (-1, 999)
property_enum (schedule, _ ("Schedule"), GeglVaeSchedule, gegl_vae_schedule, GEGL_VAE_SCHEDULE_AUTO)
  description (_ ("Noise schedule; automatic is the one the model's family trains with"))
property_enum (form, _ ("Form"), GeglVaeForm, gegl_vae_form, GEGL_VAE_FORM_AUTO)
property_enum (rng, _ ("Random numbers"), GeglVaeRng, gegl_vae_rng, GEGL_VAE_RNG_PHILOX)
property_enum (mode, _ ("Encode mode"), GeglVaeMode, gegl_vae_mode, GEGL_VAE_MODE_MEAN)
property_boolean (vq, _ ("Snap to a codebook"), FALSE)
  description (_ ("Posterize the latent: snap it to a codebook before decoding"))
property_int (k, _ ("Codebook size"), 16)
  value_range (1, 4096) ui_range (2, 256)
  ui_meta ("visible", "vq")
property_double (vq_strength, _ ("Snap strength"), 1.0)
  value_range (0.0, 1.0)
  ui_meta ("visible", "vq")
#ifdef VAE_INPAINT_PREVIEW
property_int (grow, _ ("Grow the mask"), 6)
  description (_ ("With a mask on aux: grow it by this many pixels, as ComfyUI's grow_mask_by"))
  value_range (0, 64)
property_boolean (fill, _ ("Grey fill"), FALSE)
  description (_ ("With a mask on aux: fill the masked pixels with grey before encoding, as "
                  "ComfyUI's VAE Encode (for Inpainting)"))
#endif
GEGL_VAE_RUN_PROPERTIES
GEGL_VAE_ERROR_PROPERTY
GEGL_VAE_MODEL_FILE_PROPERTY
property_file_path (codebook, _ ("Codebook"), "")
  description (_ ("'model': a VQ model's own codebook; a codebook file; empty: learn k entries "
                  "from the picture"))
  ui_meta ("visible", "vq")
/* clang-format on */

#else

#define GEGL_OP_META
/* clang-format off */
#ifdef VAE_INPAINT_PREVIEW
#define GEGL_OP_NAME vae_inpaint_preview
#define GEGL_OP_C_SOURCE inpaint-preview.c
#else
#define GEGL_OP_NAME vae_diffusion_preview
#define GEGL_OP_C_SOURCE diffusion-preview.c
#endif
/* clang-format on */

#include "gegl-op.h"

#ifdef VAE_INPAINT_PREVIEW
/* The mask on aux reaches the noise through vae:inpaint-mask (grown); with
 * `fill`, the encode's aux as well. */
typedef struct
{
  GeglNode *mask, *grown;
} Mask;

static void
update_mask (GeglOperation *operation, GeglVaeFilter *f, VaeModel *model)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  Mask           *m = g_object_get_data (G_OBJECT (operation), "gegl-vae-mask");

  if (!m)
    return;
  gegl_vae_filter_set (m->grown, "grow", o->grow, NULL);
  /* a mask of the picture lines up with the latent encode pads it to */
  gegl_vae_filter_set (f->noise, "factor", model ? vae_model_factor (model) : 0, NULL);
  /* (re)connecting would throw the encode's latent away */
  if (o->fill && gegl_node_get_producer (f->encode, "aux", NULL) != m->mask)
    gegl_vae_connect (m->mask, f->encode, "aux");
  else if (!o->fill && gegl_node_get_producer (f->encode, "aux", NULL))
    gegl_node_disconnect (f->encode, "aux");
}

static void
attach_mask (GeglOperation *operation, GeglVaeFilter *f)
{
  Mask *m = g_new0 (Mask, 1);

  g_object_set_data_full (G_OBJECT (operation), "gegl-vae-mask", m, g_free);
  /* no mask: an empty box, which vae:encode and vae:latent-noise ignore */
  m->mask = gegl_node_get_input_proxy (operation->node, "aux");
  m->grown = gegl_node_new_child (operation->node, "operation", "vae:inpaint-mask", NULL);
  gegl_node_link (m->mask, m->grown);
  gegl_vae_connect (m->grown, f->noise, "aux");
}
#endif

/* Only the nodes whose settings change are touched: the encode keeps its
 * latent unless the model, the encode mode or (sampling) the seed changes. */
static void
update (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  GeglVaeFilter  *f = gegl_vae_filter_get (operation);
  g_autoptr (VaeModel) model = NULL;
  VaeSchedule schedule;

  if (!f)
    return;
  model = gegl_vae_filter_update (f, o->preset, o->model_file, o->model, o->backend, o->precision,
                                  o->memory_limit, o->vq);
  schedule = gegl_vae_schedule (o->schedule, model ? vae_model_get_family (model) : NULL);
  gegl_vae_filter_set (f->encode, "mode", o->mode, NULL);
  if (o->mode == GEGL_VAE_MODE_SAMPLE)
    gegl_vae_filter_set (f->encode, "seed", o->seed, NULL);
  gegl_vae_filter_set (f->noise, "strength", o->strength, "timestep", o->timestep, "schedule",
                       GEGL_VAE_SCHEDULE_SD_SCALED_LINEAR + (gint) schedule, "form", o->form,
                       "seed", o->seed, "rng", o->rng, NULL);
  gegl_vae_filter_set (f->snap, "codebook", o->codebook, "k", o->k, "seed", o->seed, "strength",
                       o->vq_strength, NULL);
#ifdef VAE_INPAINT_PREVIEW
  update_mask (operation, f, model);
#endif
}

static void
attach (GeglOperation *operation)
{
  gegl_vae_filter_attach (operation, TRUE, TRUE);
#ifdef VAE_INPAINT_PREVIEW
  attach_mask (operation, gegl_vae_filter_get (operation));
#endif
  update (operation);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
#ifdef VAE_INPAINT_PREVIEW
  /* no menu entry: GIMP 3 would apply it destructively only (above) */
  gegl_vae_filter_class_init (GEGL_OPERATION_CLASS (klass), attach, update, "vae:inpaint-preview",
                              _ ("Inpainting Noise Preview"), NULL,
                              _ ("The forward diffusion preview with a mask on aux: noise only "
                                 "where the mask, grown by some pixels, is, as inpainting starts "
                                 "from; optionally grey under the mask before encoding."));
#else
  gegl_vae_filter_class_init (GEGL_OPERATION_CLASS (klass), attach, update, "vae:diffusion-preview",
                              _ ("Forward Diffusion Preview"), _ ("Forward Diffusion Preview…"),
                              _ ("Shows what diffusion does to a picture: encodes it with a Stable "
                                 "Diffusion family VAE, adds the noise of a diffusion timestep, "
                                 "optionally snaps the latent to a codebook, and decodes it again. "
                                 "Strength 0 is a plain VAE round trip. A VQ model snaps the "
                                 "noisy latent to its own codebook as it decodes."));
#endif
}

#endif
