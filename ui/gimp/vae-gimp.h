/* The plug-in's values, dialog and processing.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_GIMP_H
#define VAE_GIMP_H

#include <libgimp/gimp.h>

#define PROC_PREVIEW    "plug-in-vae-diffusion-preview"
#define PROC_ROUND_TRIP "plug-in-vae-round-trip"
#define PROC_POSTERIZE  "plug-in-vae-latent-posterize"
#define PROC_INPAINT    "plug-in-vae-inpaint-preview"

/* Plain data: kept between runs with gimp_set_data. */
typedef struct
{
  gchar    model[1024];
  gdouble  strength;
  gint32   timestep;
  gint32   schedule;
  gint32   seed;
  gint32   rng;
  gboolean vq;
  gint32   k;
  gint32   mode;
  gchar    codebook[1024];
  gdouble  vq_strength;
  gint32   grow; /* inpainting: the selection grown by this many pixels */
  gboolean fill; /* inpainting: the selection grey before encoding */
} VaeGimpValues;

void     vae_gimp_values_defaults (const gchar *procedure, VaeGimpValues *values);
gboolean vae_gimp_values_from_params (const gchar *procedure, const GimpParam *param, gint n_params,
                                      VaeGimpValues *values, GError **error);
gboolean vae_gimp_dialog (const gchar *procedure, VaeGimpValues *values);
/* Loads our GEGL module from where it is installed (or GEGL_PATH). */
void     vae_gimp_load_operations (void);
gboolean vae_gimp_process (const gchar *procedure, gint32 drawable, const VaeGimpValues *values,
                           GError **error);

#endif
