/* GIMP 2.10 plug-in: the gegl-vae filters under Filters → Generic → VAE, each
 * also a PDB procedure for scripts:
 *   plug-in-vae-diffusion-preview, plug-in-vae-round-trip, plug-in-vae-latent-posterize,
 *   plug-in-vae-inpaint-preview (the preview with noise only in the selection).
 * They run the vae:* GEGL operations on the drawable (or its selection) and
 * merge the result through the shadow buffer, so the selection mask and the
 * alpha channel are respected and every image precision works.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>
#include <string.h>

#include "vae.h"
#include "vae-gimp.h"

static void query (void);
static void run (const gchar *name, gint n_params, const GimpParam *param, gint *n_return,
                 GimpParam **ret);

const GimpPlugInInfo PLUG_IN_INFO = { NULL, NULL, query, run };

/* GIMP's MAIN (), after the engine's threads are told to wait without
 * spinning (the plug-in shares the machine with GIMP) */
int
main (int argc, char *argv[])
{
  vae_threads_wait_passively (argv);
  return gimp_main (&PLUG_IN_INFO, argc, argv);
}

static const GimpParamDef common_args[] = {
  { GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }" },
  { GIMP_PDB_IMAGE, "image", "Input image (unused)" },
  { GIMP_PDB_DRAWABLE, "drawable", "Input drawable" },
  { GIMP_PDB_STRING, "model", "Model file or preset name (e.g. taef2)" },
};

static const GimpParamDef preview_args[] = {
  { GIMP_PDB_FLOAT, "strength", "Denoising strength 0–1 (0: plain round trip)" },
  { GIMP_PDB_INT32, "timestep", "Timestep 0–999, or −1 to use the strength" },
  { GIMP_PDB_INT32, "schedule",
    "{ AUTO (0), SD-SCALED-LINEAR (1), LINEAR (2), COSINE (3), FLOW (4) }" },
  { GIMP_PDB_INT32, "seed", "Noise seed" },
  { GIMP_PDB_INT32, "rng", "{ PHILOX (0), TORCH-CPU (1) }" },
  { GIMP_PDB_INT32, "vq", "Snap the latent to a learned codebook (TRUE/FALSE)" },
  { GIMP_PDB_INT32, "k", "Codebook size when vq is TRUE" },
};

static const GimpParamDef inpaint_args[] = {
  { GIMP_PDB_FLOAT, "strength", "Denoising strength 0–1 inside the selection" },
  { GIMP_PDB_INT32, "timestep", "Timestep 0–999, or −1 to use the strength" },
  { GIMP_PDB_INT32, "schedule",
    "{ AUTO (0), SD-SCALED-LINEAR (1), LINEAR (2), COSINE (3), FLOW (4) }" },
  { GIMP_PDB_INT32, "seed", "Noise seed" },
  { GIMP_PDB_INT32, "rng", "{ PHILOX (0), TORCH-CPU (1) }" },
  { GIMP_PDB_INT32, "grow", "Grow the selection by this many pixels (0–64), as ComfyUI's mask" },
  { GIMP_PDB_INT32, "fill", "Grey under the selection before encoding (TRUE/FALSE)" },
};

static const GimpParamDef round_trip_args[] = {
  { GIMP_PDB_INT32, "mode", "{ MEAN (0), SAMPLE (1) }" },
  { GIMP_PDB_INT32, "seed", "Seed of the sampled encode" },
};

static const GimpParamDef posterize_args[] = {
  { GIMP_PDB_INT32, "k", "Codebook size to learn (ignored with a codebook file)" },
  { GIMP_PDB_STRING, "codebook", "Codebook file, or empty to learn one from the picture" },
  { GIMP_PDB_FLOAT, "strength", "Blend between original (0) and snapped (1) latents" },
};

static const GimpParamDef return_args[] = {
  { GIMP_PDB_STATUS, "status", "Success or the error" },
};

static void
install (const gchar *name, const gchar *blurb, const gchar *help, const gchar *label,
         const GimpParamDef *extra, gint n_extra)
{
  GimpParamDef *args = g_new (GimpParamDef, G_N_ELEMENTS (common_args) + n_extra);

  memcpy (args, common_args, sizeof common_args);
  memcpy (args + G_N_ELEMENTS (common_args), extra, sizeof (GimpParamDef) * n_extra);
  gimp_install_procedure (name, blurb, help, "gegl-vae", "LGPL-3.0-or-later", "2026", label,
                          "RGB*, GRAY*", GIMP_PLUGIN, G_N_ELEMENTS (common_args) + n_extra, 0, args,
                          NULL);
  gimp_plugin_menu_register (name, "<Image>/Filters/Generic/VAE");
  g_free (args);
}

static void
query (void)
{
  gimp_plugin_domain_register (GETTEXT_PACKAGE, VAE_LOCALEDIR);
  install (PROC_PREVIEW, N_ ("Show what diffusion does to a picture"),
           "Encodes the drawable with a Stable Diffusion family VAE, adds the noise of a diffusion "
           "timestep, optionally snaps the latent to a codebook, and decodes it again.",
           N_ ("_Forward diffusion preview…"), preview_args, G_N_ELEMENTS (preview_args));
  install (
      PROC_ROUND_TRIP, N_ ("Round-trip the picture through a VAE"),
      "Encodes the drawable into a VAE's latent space and decodes it again: what the VAE keeps and "
      "what it loses.",
      N_ ("VAE _round trip…"), round_trip_args, G_N_ELEMENTS (round_trip_args));
  install (PROC_POSTERIZE, N_ ("Posterize the picture in latent space"),
           "Snaps every latent vector of the drawable to a codebook learned from it by k-means++ "
           "(or read "
           "from a file), then decodes.",
           N_ ("_Latent posterize…"), posterize_args, G_N_ELEMENTS (posterize_args));
  install (PROC_INPAINT, N_ ("Show the noise inpainting starts from, in the selection"),
           "Encodes the drawable, adds the noise of a diffusion timestep only where the selection "
           "(grown by some pixels) is, as ComfyUI's inpainting does, optionally with the selection "
           "grey before encoding, and decodes it again. Without a selection: everywhere.",
           N_ ("_Inpainting noise preview…"), inpaint_args, G_N_ELEMENTS (inpaint_args));
  (void) return_args;
}

static void
set_status (GimpParam *ret, gint *n_return, GimpPDBStatusType status, const gchar *message)
{
  static gchar *last_message;

  ret[0].type = GIMP_PDB_STATUS;
  ret[0].data.d_status = status;
  *n_return = 1;
  if (message)
    {
      g_free (last_message);
      last_message = g_strdup (message);
      ret[1].type = GIMP_PDB_STRING;
      ret[1].data.d_string = last_message;
      *n_return = 2;
    }
}

static void
run (const gchar *name, gint n_params, const GimpParam *param, gint *n_return, GimpParam **ret_out)
{
  static GimpParam ret[2];
  GimpRunMode      mode = param[0].data.d_int32;
  gint32           drawable = param[2].data.d_drawable;
  VaeGimpValues    values;
  g_autoptr (GError) error = NULL;

  *ret_out = ret;
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, VAE_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  gegl_init (NULL, NULL);
  vae_gimp_load_operations ();

  vae_gimp_values_defaults (name, &values);
  switch (mode)
    {
    case GIMP_RUN_INTERACTIVE:
      gimp_get_data (name, &values);
      if (!vae_gimp_dialog (name, &values))
        {
          set_status (ret, n_return, GIMP_PDB_CANCEL, NULL);
          return;
        }
      break;
    case GIMP_RUN_NONINTERACTIVE:
      if (!vae_gimp_values_from_params (name, param, n_params, &values, &error))
        {
          set_status (ret, n_return, GIMP_PDB_CALLING_ERROR, error->message);
          return;
        }
      break;
    case GIMP_RUN_WITH_LAST_VALS:
    default:
      gimp_get_data (name, &values);
      break;
    }

  if (!vae_gimp_process (name, drawable, &values, &error))
    {
      if (mode == GIMP_RUN_INTERACTIVE)
        gimp_message (error->message);
      set_status (ret, n_return, GIMP_PDB_EXECUTION_ERROR, error->message);
      return;
    }
  if (mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();
  if (mode == GIMP_RUN_INTERACTIVE)
    gimp_set_data (name, &values, sizeof values);
  set_status (ret, n_return, GIMP_PDB_SUCCESS, NULL);
}
