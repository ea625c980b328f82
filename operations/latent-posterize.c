/* vae:latent-posterize — every latent vector of the picture snapped to one
 * of a few entries (learned from the picture by k-means++, or read from a
 * codebook file), then decoded.  An image → image filter (vae-filter.h):
 * GIMP 3's Filters → Generic → VAE → Latent Posterize.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-filter.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
GEGL_VAE_MODEL_PROPERTIES
property_int (k, _ ("Codebook size"), 8)
  description (_ ("Entries learned by k-means++ (without a codebook file)"))
  value_range (1, 4096) ui_range (2, 256)
property_double (strength, _ ("Strength"), 1.0)
  description (_ ("Blend between the original (0) and the snapped latent (1)"))
  value_range (0.0, 1.0)
property_seed (seed, _ ("Seed"), rand)
  description (_ ("Seed of the k-means++ start"))
property_int (iterations, _ ("Iterations"), 20)
  description (_ ("k-means iterations after k-means++ seeding"))
  value_range (0, 1000) ui_range (0, 50)
GEGL_VAE_RUN_PROPERTIES
GEGL_VAE_ERROR_PROPERTY
GEGL_VAE_MODEL_FILE_PROPERTY
property_file_path (codebook, _ ("Codebook"), "")
  description (_ ("Optional: a safetensors file with one [K, C] tensor; empty: learn one"))
/* clang-format on */

#else

#define GEGL_OP_META
#define GEGL_OP_NAME vae_latent_posterize
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-posterize.c
/* clang-format on */

#include "gegl-op.h"

static void
update (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  GeglVaeFilter  *f = gegl_vae_filter_get (operation);
  g_autoptr (VaeModel) model = NULL;

  if (!f)
    return;
  model = gegl_vae_filter_update (f, o->preset, o->model_file, o->model, o->backend, o->precision,
                                  o->memory_limit, TRUE);
  gegl_vae_filter_set (f->snap, "k", o->k, "strength", o->strength, "seed", o->seed, "iterations",
                       o->iterations, "codebook", o->codebook, NULL);
}

static void
attach (GeglOperation *operation)
{
  gegl_vae_filter_attach (operation, FALSE, TRUE);
  update (operation);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  gegl_vae_filter_class_init (GEGL_OPERATION_CLASS (klass), attach, update, "vae:latent-posterize",
                              _ ("Latent Posterize"), _ ("Latent Posterize…"),
                              _ ("Snaps every latent vector of the picture to a codebook learned "
                                 "from it by k-means++ (or read from a file), then decodes: a "
                                 "posterize in a VAE's latent space."));
}

#endif
