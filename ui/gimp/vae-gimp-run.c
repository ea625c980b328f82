/* Values from the PDB, and running the filter chain on a drawable.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"

#include <glib/gi18n-lib.h>
#include <string.h>

#include "vae.h"
#include "vae-gimp.h"

void
vae_gimp_values_defaults (const gchar *procedure, VaeGimpValues *v)
{
  memset (v, 0, sizeof *v);
  g_strlcpy (v->model, "taef2", sizeof v->model);
  v->strength = 0.5;
  v->timestep = -1;
  v->k = strcmp (procedure, PROC_POSTERIZE) == 0 ? 8 : 16;
  v->vq_strength = 1.0;
  v->grow = 6;
}

static gboolean
bad_param (const gchar *what, GError **error)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("invalid argument: %s"), what);
  return FALSE;
}

gboolean
vae_gimp_values_from_params (const gchar *procedure, const GimpParam *param, gint n,
                             VaeGimpValues *v, GError **error)
{
  const gboolean inpaint = strcmp (procedure, PROC_INPAINT) == 0;
  const gint     expected = strcmp (procedure, PROC_PREVIEW) == 0 || inpaint ? 11
                            : strcmp (procedure, PROC_ROUND_TRIP) == 0       ? 6
                                                                             : 7;

  if (n != expected)
    return bad_param (_ ("wrong number of arguments"), error);
  if (param[3].data.d_string && *param[3].data.d_string)
    g_strlcpy (v->model, param[3].data.d_string, sizeof v->model);
  if (strcmp (procedure, PROC_PREVIEW) == 0 || inpaint)
    {
      v->strength = param[4].data.d_float;
      v->timestep = param[5].data.d_int32;
      v->schedule = param[6].data.d_int32;
      v->seed = param[7].data.d_int32;
      v->rng = param[8].data.d_int32;
      if (inpaint)
        v->grow = param[9].data.d_int32, v->fill = param[10].data.d_int32 != 0;
      else
        v->vq = param[9].data.d_int32 != 0, v->k = param[10].data.d_int32;
      if (v->strength < 0 || v->strength > 1 || v->timestep < -1 || v->timestep > 999 ||
          v->schedule < 0 || v->schedule > 4 || v->rng < 0 || v->rng > 1 || v->k < 1 ||
          v->k > 4096 || v->grow < 0 || v->grow > 64)
        return bad_param (
            _ ("strength 0–1, timestep −1–999, schedule 0–4, rng 0–1, k 1–4096, grow 0–64"), error);
    }
  else if (strcmp (procedure, PROC_ROUND_TRIP) == 0)
    {
      v->mode = param[4].data.d_int32;
      v->seed = param[5].data.d_int32;
      if (v->mode < 0 || v->mode > 1)
        return bad_param (_ ("mode is 0 (mean) or 1 (sample)"), error);
    }
  else
    {
      v->k = param[4].data.d_int32;
      if (param[5].data.d_string)
        g_strlcpy (v->codebook, param[5].data.d_string, sizeof v->codebook);
      v->vq_strength = param[6].data.d_float;
      if (v->k < 1 || v->k > 4096 || v->vq_strength < 0 || v->vq_strength > 1)
        return bad_param (_ ("k 1–4096, strength 0–1"), error);
    }
  return TRUE;
}

void
vae_gimp_load_operations (void)
{
  /* installed beside GEGL's own plug-ins; GEGL_PATH still wins for tests */
  if (!gegl_has_operation ("vae:encode"))
    gegl_load_module_directory (VAE_GEGL_PLUGIN_DIR);
}

/* Encode fills the first half of GIMP's progress bar, decode the second. */
static void
on_progress (GeglNode *node, gdouble fraction, gpointer base)
{
  gimp_progress_update (GPOINTER_TO_INT (base) / 2.0 + fraction / 2.0);
}

/* The first error a vae: node of the chain reported, or NULL. */
static gchar *
chain_error (GeglNode **nodes, gint n)
{
  for (gint i = 0; i < n; i++)
    {
      gchar *message = NULL;
      if (!gegl_node_find_property (nodes[i], "error"))
        continue;
      gegl_node_get (nodes[i], "error", &message, NULL);
      if (message && *message)
        return message;
      g_free (message);
    }
  return NULL;
}

/* The image's selection over the rectangle (X, Y, W, H) of DRAWABLE, as a
 * node of GEGL (its buffer in *BUFFER); NULL when nothing is selected. */
static GeglNode *
selection_mask (GeglNode *gegl, gint32 drawable, gint x, gint y, gint w, gint h,
                GeglBuffer **buffer)
{
  const gint32 image = gimp_item_get_image (drawable);
  GeglNode    *source, *moved, *cropped;
  gint         offset_x, offset_y;

  if (gimp_selection_is_empty (image))
    return NULL;
  gimp_drawable_offsets (drawable, &offset_x, &offset_y);
  *buffer = gimp_drawable_get_buffer (gimp_image_get_selection (image));
  source = gegl_node_new_child (gegl, "operation", "gegl:buffer-source", "buffer", *buffer, NULL);
  moved = gegl_node_new_child (gegl, "operation", "gegl:translate", "x", (gdouble) -offset_x, "y",
                               (gdouble) -offset_y, NULL);
  cropped = gegl_node_new_child (gegl, "operation", "gegl:crop", "x", (gdouble) x, "y", (gdouble) y,
                                 "width", (gdouble) w, "height", (gdouble) h, NULL);
  gegl_node_link_many (source, moved, cropped, NULL);
  return cropped;
}

gboolean
vae_gimp_process (const gchar *procedure, gint32 drawable, const VaeGimpValues *v, GError **error)
{
  const gboolean inpaint = strcmp (procedure, PROC_INPAINT) == 0;
  const gboolean preview = strcmp (procedure, PROC_PREVIEW) == 0 || inpaint;
  const gboolean posterize = strcmp (procedure, PROC_POSTERIZE) == 0;
  g_autoptr (VaeModel) model = NULL;
  GeglBuffer    *src, *shadow, *selection = NULL;
  GeglNode      *mask;
  GeglNode      *gegl, *nodes[8], *sink;
  GeglProcessor *processor;
  gdouble        progress;
  gchar         *message;
  gint           x, y, w, h, n = 0;
  gint           schedule;

  if (!gimp_drawable_mask_intersect (drawable, &x, &y, &w, &h))
    return TRUE; /* nothing selected on this drawable */
  if (!gegl_has_operation ("vae:encode"))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_NOT_FOUND,
                   _ ("the vae:* GEGL operations are not installed (looked in %s)"),
                   VAE_GEGL_PLUGIN_DIR);
      return FALSE;
    }
  /* a model that cannot load is said here, plainly, before any work */
  if (!(model = vae_model_load (v->model, NULL, error)))
    return FALSE;
  schedule = v->schedule ? v->schedule : 1 + (gint) vae_model_get_family (model)->schedule;

  src = gimp_drawable_get_buffer (drawable);
  shadow = gimp_drawable_get_shadow_buffer (drawable);
  gegl = gegl_node_new ();
  nodes[n++] = gegl_node_new_child (gegl, "operation", "gegl:buffer-source", "buffer", src, NULL);
  nodes[n++] = gegl_node_new_child (gegl, "operation", "gegl:crop", "x", (gdouble) x, "y",
                                    (gdouble) y, "width", (gdouble) w, "height", (gdouble) h, NULL);
  nodes[n++] = gegl_node_new_child (gegl, "operation", "vae:encode", "model", v->model, "mode",
                                    v->mode, "seed", (guint) v->seed, NULL);
  if (preview)
    nodes[n++] =
        gegl_node_new_child (gegl, "operation", "vae:latent-noise", "strength", v->strength,
                             "timestep", v->timestep, "schedule", schedule, "seed", (guint) v->seed,
                             "rng", v->rng, "factor", vae_model_factor (model), NULL);
  if (posterize || (preview && v->vq))
    nodes[n++] = gegl_node_new_child (gegl, "operation", "vae:vq-snap", "k", v->k, "codebook",
                                      v->codebook, "strength", posterize ? v->vq_strength : 1.0,
                                      "seed", (guint) v->seed, NULL);
  nodes[n++] = gegl_node_new_child (gegl, "operation", "vae:decode", "model", v->model, NULL);
  nodes[n++] = gegl_node_new_child (gegl, "operation", "vae:apply-alpha", NULL);
  for (gint i = 0; i + 1 < n; i++)
    gegl_node_link (nodes[i], nodes[i + 1]);
  gegl_node_connect_to (nodes[1], "output", nodes[n - 1], "aux");
  /* inpainting: noise only where the selection, grown, is; grey under it
   * before encoding when asked (without a selection: everywhere) */
  if (inpaint && (mask = selection_mask (gegl, drawable, x, y, w, h, &selection)))
    {
      GeglNode *grown =
          gegl_node_new_child (gegl, "operation", "vae:inpaint-mask", "grow", v->grow, NULL);
      gegl_node_link (mask, grown);
      gegl_node_connect_to (grown, "output", nodes[3], "aux");
      if (v->fill)
        gegl_node_connect_to (mask, "output", nodes[2], "aux");
    }
  sink = gegl_node_new_child (gegl, "operation", "gegl:write-buffer", "buffer", shadow, NULL);
  gegl_node_link (nodes[n - 1], sink);

  g_signal_connect (nodes[2], "progress", G_CALLBACK (on_progress), GINT_TO_POINTER (0));
  g_signal_connect (nodes[n - 2], "progress", G_CALLBACK (on_progress), GINT_TO_POINTER (1));
  gimp_progress_init (_ ("Running the VAE…"));
  processor = gegl_node_new_processor (sink, NULL);
  while (gegl_processor_work (processor, &progress))
    ;
  g_object_unref (processor);
  gimp_progress_update (1.0);

  message = chain_error (nodes, n);
  if (!message)
    {
      gegl_buffer_flush (shadow);
      gimp_drawable_merge_shadow (drawable, TRUE);
      gimp_drawable_update (drawable, x, y, w, h);
    }
  g_object_unref (gegl);
  g_object_unref (shadow);
  g_object_unref (src);
  g_clear_object (&selection);
  if (message)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, "%s", message);
      g_free (message);
      return FALSE;
    }
  return TRUE;
}
