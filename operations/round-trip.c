/* vae:round-trip — the picture through a VAE and back: what the VAE keeps
 * and what it loses.  An image → image filter (vae-filter.h): GIMP 3's
 * Filters → Generic → VAE → VAE Round Trip.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-filter.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
GEGL_VAE_MODEL_PROPERTIES
property_enum (mode, _ ("Encode mode"), GeglVaeMode, gegl_vae_mode, GEGL_VAE_MODE_MEAN)
  description (_ ("Mean of the posterior, or a sample of it drawn with the seed"))
property_seed (seed, _ ("Seed"), rand)
  description (_ ("Seed of the sampled encode"))
  ui_meta ("visible", "mode {sample}")
GEGL_VAE_RUN_PROPERTIES
GEGL_VAE_ERROR_PROPERTY
GEGL_VAE_MODEL_FILE_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_META
#define GEGL_OP_NAME vae_round_trip
/* clang-format off */
#define GEGL_OP_C_SOURCE round-trip.c
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
                                  o->memory_limit, FALSE);
  gegl_vae_filter_set (f->encode, "mode", o->mode, NULL);
  if (o->mode == GEGL_VAE_MODE_SAMPLE)
    gegl_vae_filter_set (f->encode, "seed", o->seed, NULL);
}

static void
attach (GeglOperation *operation)
{
  gegl_vae_filter_attach (operation, FALSE, FALSE);
  update (operation);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  gegl_vae_filter_class_init (GEGL_OPERATION_CLASS (klass), attach, update, "vae:round-trip",
                              _ ("VAE Round Trip"), _ ("VAE Round Trip…"),
                              _ ("Encodes the picture into the latent space of a Stable Diffusion "
                                 "family VAE and decodes it again: what the VAE keeps and what it "
                                 "loses."));
}

#endif
