/* SPDX-License-Identifier: LGPL-3.0-or-later */
#include "vae-config.h"
#include "vae-filter.h"

#include <gobject/gvaluecollector.h>
#include <string.h>

enum
{
  WIRED_NOT_YET,
  WIRED_CHAIN,
  WIRED_CHAIN_SNAP,
  WIRED_THROUGH
};

/* The encode fills the first half of the progress, the decode the second.
 * GIMP's filter tool listens to the filter's own node, starts its progress
 * bar on 0 and ends it on 1. */
static void
forward_progress (GeglVaeFilter *f, gdouble fraction, gdouble base)
{
  if (!f->progress)
    {
      gegl_operation_progress (f->operation, 0.0, (gchar *) "");
      f->progress = TRUE;
    }
  gegl_operation_progress (f->operation, base + fraction / 2, (gchar *) "");
  if (base > 0 && fraction >= 1.0)
    f->progress = FALSE;
}

static void
on_encode_progress (GeglNode *node, gdouble fraction, GeglVaeFilter *f)
{
  forward_progress (f, MIN (fraction, 0.999), 0.0);
}

static void
on_decode_progress (GeglNode *node, gdouble fraction, GeglVaeFilter *f)
{
  forward_progress (f, fraction, 0.5);
}

static void
filter_free (gpointer f)
{
  g_free (((GeglVaeFilter *) f)->logged);
  g_free (f);
}

void
gegl_vae_filter_attach (GeglOperation *operation, gboolean noise, gboolean snap)
{
  GeglNode      *gegl = operation->node;
  GeglVaeFilter *f = g_new0 (GeglVaeFilter, 1);

  g_object_set_data_full (G_OBJECT (operation), "gegl-vae-filter", f, filter_free);
  f->operation = operation;
  f->input = gegl_node_get_input_proxy (gegl, "input");
  f->output = gegl_node_get_output_proxy (gegl, "output");
  f->encode = gegl_node_new_child (gegl, "operation", "vae:encode", NULL);
  f->decode = gegl_node_new_child (gegl, "operation", "vae:decode", NULL);
  f->alpha = gegl_node_new_child (gegl, "operation", "vae:apply-alpha", NULL);
  if (noise)
    f->noise = gegl_node_new_child (gegl, "operation", "vae:latent-noise", NULL);
  if (snap) /* always fed, so that it never sees an empty input while unused */
    f->snap = gegl_node_new_child (gegl, "operation", "vae:vq-snap", NULL);
  gegl_node_link (f->input, f->encode);
  gegl_node_link (f->decode, f->alpha);
  gegl_vae_connect (f->input, f->alpha, "aux");
  if (f->snap)
    gegl_node_link (f->noise ? f->noise : f->encode, f->snap);
  if (f->noise)
    gegl_node_link (f->encode, f->noise);
  g_signal_connect (f->encode, "progress", G_CALLBACK (on_encode_progress), f);
  g_signal_connect (f->decode, "progress", G_CALLBACK (on_decode_progress), f);
}

GeglVaeFilter *
gegl_vae_filter_get (GeglOperation *operation)
{
  return g_object_get_data (G_OBJECT (operation), "gegl-vae-filter");
}

void
gegl_vae_filter_class_init (GeglOperationClass *klass, void (*attach) (GeglOperation *),
                            void (*update) (GeglOperation *), const gchar *name, const gchar *title,
                            const gchar *menu_label, const gchar *description)
{
  gegl_vae_accept_nan (G_OBJECT_CLASS (klass));
  klass->attach = attach;
  GEGL_OPERATION_META_CLASS (klass)->update = update;
  gegl_operation_class_set_keys (klass, "name", name, "title", title, "categories", "generic:ai",
                                 "description", description, NULL);
  if (menu_label)
    gegl_operation_class_set_keys (klass, "gimp:menu-path", "<Image>/Filters/Generic/VAE",
                                   "gimp:menu-label", menu_label, NULL);
}

/* GIMP shows what its GEGL filters say in the "GEGL" log domain as its own
 * messages (dialog or error console; stderr without a display), and the
 * error property in the filter's dialog, as the op notifies it.  Setting it
 * runs the update again, which finds it set. */
static void
report (GeglVaeFilter *f, const gchar *message)
{
  g_autofree gchar *now = NULL;

  g_object_get (f->operation, "error", &now, NULL);
  if (g_strcmp0 (now, message) == 0)
    return;
  if (*message && g_strcmp0 (f->logged, message) != 0)
    g_log ("GEGL", G_LOG_LEVEL_MESSAGE, "%s: %s", gegl_operation_get_name (f->operation), message);
  g_free (f->logged);
  f->logged = g_strdup (message);
  g_object_set (f->operation, "error", message, "failed", *message != '\0', NULL);
}

static void
wire (GeglVaeFilter *f, gint wiring)
{
  if (wiring == f->wiring)
    return;
  f->wiring = wiring;
  if (wiring == WIRED_THROUGH)
    {
      gegl_node_link (f->input, f->output);
      return;
    }
  gegl_node_link (f->noise ? f->noise : f->encode,
                  wiring == WIRED_CHAIN_SNAP ? f->snap : f->decode);
  if (wiring == WIRED_CHAIN_SNAP)
    gegl_node_link (f->snap, f->decode);
  gegl_node_link (f->alpha, f->output);
}

static const gchar *
model_name (GeglVaePreset preset, const gchar *model_file, const gchar *model)
{
  GEnumClass  *presets;
  const gchar *nick;

  if (model && *model)
    return model;
  if (preset == GEGL_VAE_PRESET_FILE)
    return model_file ? model_file : "";
  presets = g_type_class_ref (gegl_vae_preset_get_type ());
  nick = g_enum_get_value (presets, preset)->value_nick; /* static strings */
  g_type_class_unref (presets);
  return nick;
}

VaeModel *
gegl_vae_filter_update (GeglVaeFilter *f, GeglVaePreset preset, const gchar *model_file,
                        const gchar *model, GeglVaeBackend backend, GeglVaePrecision precision,
                        gint memory_limit, gboolean snap)
{
  const gchar *name = model_name (preset, model_file, model);
  const gchar *nan = gegl_vae_nan_property (f->operation);
  g_autoptr (GError) error = NULL;
  VaeModel *loaded = NULL;

  if (nan)
    g_set_error (&error, VAE_ERROR, VAE_ERROR_INPUT,
                 _ ("property '%s' is not a number (NaN); nothing is computed until it is"), nan);
  else if (!*name)
    g_set_error (&error, VAE_ERROR, VAE_ERROR_INPUT, _ ("no model file is chosen"));
  else if ((loaded = gegl_vae_load_model (f->operation, name, VAE_HALVES_BOTH, backend, precision,
                                          &error)) &&
           (!vae_model_has_encoder (loaded) || !vae_model_has_decoder (loaded)))
    {
      g_set_error (&error, VAE_ERROR, VAE_ERROR_INPUT, _ ("model %s lacks an encoder or a decoder"),
                   name);
      g_clear_pointer (&loaded, vae_model_unref);
    }
  if (!loaded)
    {
      wire (f, WIRED_THROUGH);
      report (f, error->message);
      return NULL;
    }
  for (GeglNode **n = (GeglNode *[]){ f->encode, f->decode, NULL }; *n; n++)
    gegl_vae_filter_set (*n, "model", name, "backend", backend, "precision", precision,
                         "memory-limit", memory_limit, NULL);
  /* codebook "model" is the model's own; a VQ model's decode snaps to it
   * unless the snap node has done the snapping */
  if (f->snap)
    gegl_vae_filter_set (f->snap, "model", name, NULL);
  gegl_vae_filter_set (f->decode, "force-not-quantize", snap, NULL);
  wire (f, snap ? WIRED_CHAIN_SNAP : WIRED_CHAIN);
  report (f, "");
  return loaded;
}

void
gegl_vae_filter_set (GeglNode *node, const gchar *first_property, ...)
{
  va_list args;

  va_start (args, first_property);
  for (const gchar *name = first_property; name; name = va_arg (args, const gchar *))
    {
      GParamSpec *pspec = gegl_node_find_property (node, name);
      GValue      value = G_VALUE_INIT, now = G_VALUE_INIT;
      gchar      *error = NULL;

      if (!pspec)
        {
          g_critical ("%s: %s has no property %s", G_STRFUNC, gegl_node_get_operation (node), name);
          break; /* the arguments after it cannot be read */
        }
      G_VALUE_COLLECT_INIT (&value, pspec->value_type, args, 0, &error);
      if (error)
        {
          g_critical ("%s: %s", G_STRFUNC, error);
          g_free (error);
          break;
        }
      g_value_init (&now, pspec->value_type);
      gegl_node_get_property (node, name, &now);
      if (g_param_values_cmp (pspec, &value, &now) != 0)
        gegl_node_set_property (node, name, &value);
      g_value_unset (&value);
      g_value_unset (&now);
    }
  va_end (args);
}
