/* The gegl-vae module: registers every vae:* operation and the latent
 * formats, so .gegl buffer files holding latents reload.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#include <gegl-plugin.h>

static const GeglModuleInfo modinfo = { GEGL_MODULE_ABI_VERSION };

G_MODULE_EXPORT const GeglModuleInfo *gegl_module_query (GTypeModule *module);
G_MODULE_EXPORT gboolean              gegl_module_register (GTypeModule *module);

/* clang-format off */
#define OPS(X) \
  X (vae_encode) X (vae_decode) X (vae_latent_noise) X (vae_vq_snap) X (vae_diffusion_preview) \
  X (vae_inpaint_preview) X (vae_round_trip) X (vae_latent_posterize) X (vae_apply_alpha) X (vae_latent_save) \
  X (vae_latent_load) X (vae_latent_preview) \
  X (vae_codebook_usage) \
  X (vae_latent_scale) X (vae_latent_transform) X (vae_latent_composite) X (vae_latent_blend) \
  X (vae_inpaint_mask)
/* clang-format on */
#define DECLARE(name) void gegl_op_##name##_register_type (GTypeModule *module);
OPS (DECLARE)

G_MODULE_EXPORT const GeglModuleInfo *
gegl_module_query (GTypeModule *module)
{
  return &modinfo;
}

G_MODULE_EXPORT gboolean
gegl_module_register (GTypeModule *module)
{
  static const gint latent_channels[] = { 4, 16, 32, 128 };

  /* before any class initialises (titles and enum labels are translated);
   * GEGL_VAE_LOCALEDIR points at uninstalled catalogues (tests) */
  bindtextdomain (GETTEXT_PACKAGE, g_getenv ("GEGL_VAE_LOCALEDIR") ? g_getenv ("GEGL_VAE_LOCALEDIR")
                                                                   : VAE_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  for (guint i = 0; i < G_N_ELEMENTS (latent_channels); i++)
    gegl_vae_latent_format (latent_channels[i]);
#define REGISTER(name) gegl_op_##name##_register_type (module);
  OPS (REGISTER)
  return TRUE;
}
