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

/* The filter's own progress: the encode fills the first half, the decode
 * the second (vae-filter.c). */
static void
on_progress (GeglNode *node, gdouble fraction, gpointer data)
{
  gimp_progress_update (fraction);
}

/* The first error the filter or one of its nodes reported, or NULL. */
static gchar *
filter_error (GeglNode *filter)
{
  GSList *nodes = g_slist_prepend (gegl_node_get_children (filter), filter);
  gchar  *found = NULL;

  for (GSList *n = nodes; n && !found; n = n->next)
    if (gegl_node_find_property (n->data, "error"))
      {
        gegl_node_get (n->data, "error", &found, NULL);
        if (found && !*found)
          g_clear_pointer (&found, g_free);
      }
  g_slist_free (nodes);
  return found;
}

/* The filter op of PROCEDURE with the plug-in's values: the same graph as
 * GIMP 3's filters of the same names. */
static GeglNode *
new_filter (GeglNode *gegl, const gchar *procedure, const VaeGimpValues *v)
{
  if (strcmp (procedure, PROC_PREVIEW) == 0)
    return gegl_node_new_child (gegl, "operation", "vae:diffusion-preview", "model", v->model,
                                "strength", v->strength, "timestep", v->timestep, "schedule",
                                v->schedule, "seed", v->seed, "rng", v->rng, "vq", v->vq, "k", v->k,
                                NULL);
  if (strcmp (procedure, PROC_INPAINT) == 0)
    return gegl_node_new_child (gegl, "operation", "vae:inpaint-preview", "model", v->model,
                                "strength", v->strength, "timestep", v->timestep, "schedule",
                                v->schedule, "seed", v->seed, "rng", v->rng, "vq", v->vq, "k", v->k,
                                "grow", v->grow, "fill", v->fill, NULL);
  if (strcmp (procedure, PROC_ROUND_TRIP) == 0)
    return gegl_node_new_child (gegl, "operation", "vae:round-trip", "model", v->model, "mode",
                                v->mode, "seed", v->seed, NULL);
  return gegl_node_new_child (gegl, "operation", "vae:latent-posterize", "model", v->model, "k",
                              v->k, "codebook", v->codebook, "strength", v->vq_strength, "seed",
                              v->seed, NULL);
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
  g_autoptr (VaeModel) model = NULL;
  GeglBuffer    *src, *shadow, *selection = NULL;
  GeglNode      *gegl, *filter, *mask, *sink;
  GeglProcessor *processor;
  gdouble        progress;
  gchar         *message;
  gint           x, y, w, h;

  if (!gimp_drawable_mask_intersect (drawable, &x, &y, &w, &h))
    return TRUE; /* nothing selected on this drawable */
  if (!gegl_has_operation ("vae:round-trip"))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_NOT_FOUND,
                   _ ("the vae:* GEGL operations are not installed (looked in %s)"),
                   VAE_GEGL_PLUGIN_DIR);
      return FALSE;
    }
  /* a model that cannot load is said here, plainly, before any work */
  if (!(model = vae_model_load (v->model, NULL, error)))
    return FALSE;

  /* the selection's box moved to the origin, where the latent grid starts,
   * and the result moved back */
  src = gimp_drawable_get_buffer (drawable);
  shadow = gimp_drawable_get_shadow_buffer (drawable);
  gegl = gegl_node_new ();
  filter = new_filter (gegl, procedure, v);
  /* inpainting: noise only where the selection, grown, is (moved as the
   * picture is); without a selection, everywhere */
  if (inpaint && (mask = selection_mask (gegl, drawable, x, y, w, h, &selection)))
    {
      GeglNode *moved = gegl_node_new_child (gegl, "operation", "gegl:translate", "x", (gdouble) -x,
                                             "y", (gdouble) -y, NULL);
      gegl_node_link (mask, moved);
      gegl_node_connect_to (moved, "output", filter, "aux");
    }
  sink = gegl_node_new_child (gegl, "operation", "gegl:write-buffer", "buffer", shadow, NULL);
  gegl_node_link_many (
      gegl_node_new_child (gegl, "operation", "gegl:buffer-source", "buffer", src, NULL),
      gegl_node_new_child (gegl, "operation", "gegl:crop", "x", (gdouble) x, "y", (gdouble) y,
                           "width", (gdouble) w, "height", (gdouble) h, NULL),
      gegl_node_new_child (gegl, "operation", "gegl:translate", "x", (gdouble) -x, "y",
                           (gdouble) -y, NULL),
      filter,
      gegl_node_new_child (gegl, "operation", "gegl:translate", "x", (gdouble) x, "y", (gdouble) y,
                           NULL),
      sink, NULL);

  g_signal_connect (filter, "progress", G_CALLBACK (on_progress), NULL);
  gimp_progress_init (_ ("Running the VAE…"));
  processor = gegl_node_new_processor (sink, NULL);
  while (gegl_processor_work (processor, &progress))
    ;
  g_object_unref (processor);
  gimp_progress_update (1.0);

  message = filter_error (filter);
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
