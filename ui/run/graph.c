/* The graph a run executes: an XML graph file or an op chain, built once,
 * its input node re-pointed at each picture, settings checked against the
 * nodes' properties, and a saver chosen by the output's extension.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "runner.h"

#include <gegl-plugin.h>
#include <glib/gstdio.h>
#include <string.h>

/* The path an XML graph gives its input node, for the runner to replace. */
#define INPUT_PLACEHOLDER "@INPUT@"

void
run_graph_free (RunGraph *graph)
{
  if (!graph)
    return;
  g_clear_object (&graph->gegl);
  g_free (graph->sink_ext);
  g_free (graph->spec);
  g_clear_pointer (&graph->nodes, g_ptr_array_unref);
  g_clear_pointer (&graph->restore, g_ptr_array_unref);
  g_free (graph);
}

/* A property value an item's setting replaced. */
typedef struct
{
  GeglNode *node;
  gchar    *property;
  GValue    value;
} Saved;

static void
saved_free (Saved *saved)
{
  g_free (saved->property);
  g_value_unset (&saved->value);
  g_free (saved);
}

static RunGraph *
graph_new (void)
{
  RunGraph *graph = g_new0 (RunGraph, 1);

  graph->nodes = g_ptr_array_new ();
  graph->restore = g_ptr_array_new_with_free_func ((GDestroyNotify) saved_free);
  return graph;
}

/* Where graph names are looked up: the user's, then ours. */
static gchar **
graph_dirs (void)
{
  GPtrArray *dirs = g_ptr_array_new ();

  g_ptr_array_add (dirs, g_build_filename (g_get_user_data_dir (), "gegl-vae", "graphs", NULL));
  g_ptr_array_add (dirs, g_strdup (run_graphs_dir ()));
  g_ptr_array_add (dirs, NULL);
  return (gchar **) g_ptr_array_free (dirs, FALSE);
}

static gchar *
find_graph (const gchar *name, GError **error)
{
  g_auto (GStrv) dirs = NULL;
  g_autofree gchar *where = NULL;

  if (g_file_test (name, G_FILE_TEST_IS_REGULAR))
    return g_strdup (name);
  dirs = graph_dirs ();
  if (!strchr (name, G_DIR_SEPARATOR))
    for (gchar **d = dirs; *d; d++)
      {
        g_autofree gchar *file =
            g_strconcat (name, g_str_has_suffix (name, ".xml") ? "" : ".xml", NULL);
        gchar *path = g_build_filename (*d, file, NULL);
        if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
          return path;
        g_free (path);
      }
  where = g_strjoinv (", ", dirs);
  g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
               _ ("graph %s is neither a file nor one of the graphs in %s"), name, where);
  return NULL;
}

static gboolean
is_proxy (GeglNode *node)
{
  return !g_strcmp0 (gegl_node_get_operation (node), "gegl:nop");
}

static gchar *
path_of (GeglNode *node)
{
  gchar *path = NULL;

  if (gegl_node_find_property (node, "path"))
    gegl_node_get (node, "path", &path, NULL);
  return path;
}

/* The node whose path is the placeholder, or the only gegl:load. */
static GeglNode *
find_input (GeglNode *gegl, const gchar *file, GError **error)
{
  GSList   *children = gegl_node_get_children (gegl);
  GeglNode *placeholder = NULL, *load = NULL;
  guint     n_placeholders = 0, n_loads = 0;

  for (GSList *l = children; l; l = l->next)
    {
      g_autofree gchar *path = path_of (l->data);
      g_autofree gchar *base = path ? g_path_get_basename (path) : NULL;

      if (base && !strcmp (base, INPUT_PLACEHOLDER))
        placeholder = l->data, n_placeholders++;
      if (!g_strcmp0 (gegl_node_get_operation (l->data), "gegl:load"))
        load = l->data, n_loads++;
    }
  g_slist_free (children);
  if (n_placeholders == 1)
    return placeholder;
  if (n_placeholders == 0 && n_loads == 1)
    return load;
  g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
               _ ("graph %s: give exactly one node the path %s (it has %u, and %u gegl:load "
                  "nodes)"),
               file, INPUT_PLACEHOLDER, n_placeholders, n_loads);
  return NULL;
}

/* GEGL's XML reader warns and carries on (an unknown property, an unknown
 * operation made a pass-through): here each is an error. */
static gboolean
xml_warnings_ok (GPtrArray *warnings, const gchar *file, GError **error)
{
  for (guint i = 0; i < warnings->len; i++)
    {
      const gchar *w = warnings->pdata[i];
      /* file paths that do not exist yet: the placeholder, a file the graph makes */
      if (strstr (w, "Unable to obtain absolute path"))
        continue;
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("graph %s: %s"), file, w);
      return FALSE;
    }
  return TRUE;
}

static GPtrArray *
parse_settings (gchar **words, GError **error)
{
  GPtrArray *settings = g_ptr_array_new_with_free_func ((GDestroyNotify) run_setting_free);

  for (gint i = 0; words && words[i]; i++)
    {
      RunSetting *s = run_setting_parse (words[i], error);
      if (!s)
        {
          g_ptr_array_unref (settings);
          return NULL;
        }
      g_ptr_array_add (settings, s);
    }
  return settings;
}

static RunGraph *
graph_from_file (const gchar *name, gchar **words, GError **error)
{
  g_autofree gchar *file = find_graph (name, error);
  g_autofree gchar *text = NULL, *dir = NULL, *absolute = NULL, *words_text = NULL;
  g_autoptr (GPtrArray) warnings = NULL;
  g_autoptr (GPtrArray) settings = NULL;
  RunGraph *graph;
  GSList   *children;

  if (!file || !g_file_get_contents (file, &text, NULL, error) ||
      !(settings = parse_settings (words, error)))
    return NULL;
  absolute = g_canonicalize_filename (file, NULL);
  dir = g_path_get_dirname (absolute);
  graph = graph_new ();
  run_capture_begin (warnings = g_ptr_array_new_with_free_func (g_free));
  graph->gegl = gegl_node_new_from_xml (text, dir);
  run_capture_end ();
  if (!graph->gegl)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("%s is not a GEGL XML graph%s%s"), file,
                   warnings->len ? ": " : "", warnings->len ? (gchar *) warnings->pdata[0] : "");
      run_graph_free (graph);
      return NULL;
    }
  if (!xml_warnings_ok (warnings, file, error) ||
      !(graph->source = find_input (graph->gegl, file, error)))
    {
      run_graph_free (graph);
      return NULL;
    }
  graph->output = gegl_node_get_output_proxy (graph->gegl, "output");
  children = gegl_node_get_children (graph->gegl);
  for (GSList *l = children; l; l = l->next)
    if (l->data != graph->source && !is_proxy (l->data))
      g_ptr_array_add (graph->nodes, l->data);
  g_slist_free (children);
  for (guint i = 0; i < settings->len; i++)
    if (!run_graph_apply (graph, settings->pdata[i], FALSE, error))
      {
        run_graph_free (graph);
        return NULL;
      }
  words_text = words ? g_strjoinv ("\n", words) : g_strdup ("");
  graph->spec = g_strconcat (text, "\n", words_text, NULL);
  return graph;
}

static gboolean
no_operation (const gchar *name, GError **error)
{
  guint              n = 0;
  g_autofree gchar **ops = gegl_list_operations (&n); /* the names are GEGL's */
  g_autofree gchar  *hint = run_suggest (name, ops);

  if (g_str_has_prefix (name, "vae:") && !gegl_has_operation ("vae:encode"))
    g_set_error (error, RUN_ERROR, RUN_ERROR_FAILED,
                 _ ("no GEGL operation %s: the gegl-vae module is not loaded (looked in %s; "
                    "GEGL_PATH names other folders)"),
                 name, run_module_dir ());
  else
    g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("no GEGL operation %s%s"), name, hint);
  return FALSE;
}

static gboolean apply_to (RunGraph *graph, GeglNode *node, const RunSetting *setting,
                          gboolean remember, GError **error);

/* OP [PROP=VALUE…]…: each setting belongs to the operation before it. */
static RunGraph *
graph_from_chain (gchar **words, GError **error)
{
  RunGraph *graph = graph_new ();
  GeglNode *last;

  graph->gegl = gegl_node_new ();
  graph->source = last = gegl_node_new_child (graph->gegl, "operation", "gegl:load", NULL);
  for (gint i = 0; words && words[i]; i++)
    {
      RunSetting *s;
      gboolean    ok;

      if (!strchr (words[i], '='))
        {
          if (!gegl_has_operation (words[i]) && !no_operation (words[i], error))
            goto fail;
          last = gegl_node_new_child (graph->gegl, "operation", words[i], NULL);
          gegl_node_link (
              graph->nodes->len ? graph->nodes->pdata[graph->nodes->len - 1] : graph->source, last);
          g_ptr_array_add (graph->nodes, last);
          continue;
        }
      if (!(s = run_setting_parse (words[i], error)))
        goto fail;
      if (!graph->nodes->len && !s->node)
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                       _ ("%s comes before any operation: write OP PROPERTY=VALUE"), words[i]);
          run_setting_free (s);
          goto fail;
        }
      ok = s->node ? run_graph_apply (graph, s, FALSE, error)
                   : apply_to (graph, last, s, FALSE, error);
      run_setting_free (s);
      if (!ok)
        goto fail;
    }
  graph->output = last;
  graph->spec = words ? g_strjoinv (" ", words) : g_strdup ("");
  return graph;

fail:
  run_graph_free (graph);
  return NULL;
}

RunGraph *
run_graph_new (const gchar *graph_file, gchar **words, gint depth, GError **error)
{
  RunGraph *graph =
      graph_file ? graph_from_file (graph_file, words, error) : graph_from_chain (words, error);

  if (graph)
    {
      gchar *spec = g_strdup_printf ("%s\ndepth %d", graph->spec, depth);
      g_free (graph->spec);
      graph->spec = spec;
      graph->depth = depth;
    }
  return graph;
}

/* ---- settings ------------------------------------------------------------ */

static const gchar *
node_title (GeglNode *node)
{
  const gchar *op = gegl_node_get_operation (node);
  return op ? op : "?";
}

static gboolean
was_saved (RunGraph *graph, GeglNode *node, const gchar *property)
{
  for (guint i = 0; i < graph->restore->len; i++)
    {
      Saved *saved = graph->restore->pdata[i];
      if (saved->node == node && !strcmp (saved->property, property))
        return TRUE;
    }
  return FALSE;
}

static gboolean
apply_to (RunGraph *graph, GeglNode *node, const RunSetting *setting, gboolean remember,
          GError **error)
{
  GParamSpec *pspec = gegl_node_find_property (node, setting->property);
  GValue      value = G_VALUE_INIT;

  if (!pspec)
    {
      guint        n = 0;
      GParamSpec **specs = gegl_operation_list_properties (node_title (node), &n);
      g_autoptr (GPtrArray) names = g_ptr_array_new ();
      g_autofree gchar *hint = NULL;

      for (guint i = 0; i < n; i++)
        g_ptr_array_add (names, (gpointer) specs[i]->name);
      g_ptr_array_add (names, NULL);
      g_free (specs);
      hint = run_suggest (setting->property, (gchar **) names->pdata);
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("%s has no property '%s'%s"),
                   node_title (node), setting->property, hint);
      return FALSE;
    }
  if (!run_value_parse (pspec, node_title (node), setting->value, &value, error))
    return FALSE;
  if (remember && !was_saved (graph, node, pspec->name))
    {
      Saved *saved = g_new0 (Saved, 1);
      saved->node = node;
      saved->property = g_strdup (pspec->name);
      g_value_init (&saved->value, pspec->value_type);
      gegl_node_get_property (node, pspec->name, &saved->value);
      g_ptr_array_add (graph->restore, saved);
    }
  gegl_node_set_property (node, pspec->name, &value);
  g_value_unset (&value);
  return TRUE;
}

static gboolean
node_is (GeglNode *node, const gchar *name)
{
  g_autofree gchar *node_name = NULL;

  gegl_node_get (node, "name", &node_name, NULL);
  return !g_strcmp0 (gegl_node_get_operation (node), name) || !g_strcmp0 (node_name, name);
}

gboolean
run_graph_apply (RunGraph *graph, const RunSetting *setting, gboolean remember, GError **error)
{
  GeglNode *only = NULL;
  guint     named = 0, applied = 0;

  for (guint i = 0; i < graph->nodes->len; i++)
    {
      GeglNode *node = graph->nodes->pdata[i];
      if (setting->node && !node_is (node, setting->node))
        continue;
      named++, only = node;
      if (!gegl_node_find_property (node, setting->property))
        continue;
      if (!apply_to (graph, node, setting, remember, error))
        return FALSE;
      applied++;
    }
  if (applied)
    return TRUE;
  if (named == 1) /* that node's own message, with its properties' names */
    return apply_to (graph, only, setting, remember, error);
  if (setting->node && !named)
    g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                 _ ("the graph has no node %s (a node is named by its operation or name)"),
                 setting->node);
  else
    g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("no node of the graph has a property '%s'"),
                 setting->property);
  return FALSE;
}

void
run_graph_restore (RunGraph *graph)
{
  for (guint i = 0; i < graph->restore->len; i++)
    {
      Saved *saved = graph->restore->pdata[i];
      gegl_node_set_property (saved->node, saved->property, &saved->value);
    }
  g_ptr_array_set_size (graph->restore, 0);
}

gboolean
run_graph_has_property (RunGraph *graph, const gchar *property)
{
  for (guint i = 0; i < graph->nodes->len; i++)
    if (gegl_node_find_property (graph->nodes->pdata[i], property))
      return TRUE;
  return FALSE;
}

void
run_graph_set_seed (RunGraph *graph, guint seed)
{
  for (guint i = 0; i < graph->nodes->len; i++)
    {
      GParamSpec *pspec = gegl_node_find_property (graph->nodes->pdata[i], "seed");
      if (pspec && pspec->value_type == G_TYPE_UINT)
        gegl_node_set (graph->nodes->pdata[i], "seed", seed, NULL);
      else if (pspec && pspec->value_type == G_TYPE_INT)
        gegl_node_set (graph->nodes->pdata[i], "seed", (gint) seed, NULL);
    }
}

/* ---- every node, meta ops' insides included ------------------------------ */

typedef void (*NodeFunc) (GeglNode *node, gpointer data);

static void
each_node (GeglNode *parent, NodeFunc func, gpointer data)
{
  GSList *children = gegl_node_get_children (parent);

  for (GSList *l = children; l; l = l->next)
    {
      func (l->data, data);
      each_node (l->data, func, data);
    }
  g_slist_free (children);
}

static void
collect_model (GeglNode *node, gpointer data)
{
  GParamSpec *pspec = gegl_node_find_property (node, "model");
  gchar      *model = NULL;

  if (!pspec || pspec->value_type != G_TYPE_STRING || !g_str_has_prefix (node_title (node), "vae:"))
    return;
  gegl_node_get (node, "model", &model, NULL);
  if (model && *model && !g_ptr_array_find_with_equal_func (data, model, g_str_equal, NULL))
    g_ptr_array_add (data, model);
  else
    g_free (model);
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar *const *) a, *(const gchar *const *) b);
}

gchar **
run_graph_models (RunGraph *graph)
{
  GPtrArray *models = g_ptr_array_new ();

  each_node (graph->gegl, collect_model, models);
  g_ptr_array_sort (models, compare_strings);
  g_ptr_array_add (models, NULL);
  return (gchar **) g_ptr_array_free (models, FALSE);
}

static void
first_error (GeglNode *node, gpointer data)
{
  gchar **found = data;
  gchar  *message = NULL;

  if (*found || !gegl_node_find_property (node, "error"))
    return;
  gegl_node_get (node, "error", &message, NULL);
  if (message && *message)
    *found = g_strdup_printf ("%s: %s", node_title (node), message);
  g_free (message);
}

gchar *
run_graph_node_error (RunGraph *graph)
{
  gchar *found = NULL;

  each_node (graph->gegl, first_error, &found);
  return found;
}

static void
clear_error (GeglNode *node, gpointer data)
{
  GParamSpec *pspec = gegl_node_find_property (node, "error");
  gchar      *message = NULL;

  if (!pspec || pspec->value_type != G_TYPE_STRING)
    return;
  gegl_node_get (node, "error", &message, NULL);
  if (message && *message)
    gegl_node_set (node, "error", "", NULL);
  g_free (message);
}

void
run_graph_clear_errors (RunGraph *graph)
{
  each_node (graph->gegl, clear_error, NULL);
}

/* ---- the check before any input ------------------------------------------ */

/* A 64×64 grey picture in a temporary file. */
static gchar *
probe_picture (GError **error)
{
  g_autofree gchar *dir = g_dir_make_tmp ("gegl-vae-run-XXXXXX", error);
  gchar            *path;
  GeglNode         *gegl, *color, *crop, *save;
  GeglColor        *grey;

  if (!dir)
    return NULL;
  path = g_build_filename (dir, "probe.png", NULL);
  gegl = gegl_node_new ();
  grey = gegl_color_new ("rgb(0.5, 0.5, 0.5)");
  color = gegl_node_new_child (gegl, "operation", "gegl:color", "value", grey, NULL);
  crop = gegl_node_new_child (gegl, "operation", "gegl:crop", "width", 64.0, "height", 64.0, NULL);
  save = gegl_node_new_child (gegl, "operation", "gegl:png-save", "path", path, NULL);
  gegl_node_link_many (color, crop, save, NULL);
  gegl_node_process (save);
  g_object_unref (gegl);
  g_object_unref (grey);
  return path;
}

static GeglNode *
real_output (GeglNode *node)
{
  while (node && is_proxy (node))
    node = gegl_node_get_producer (node, "input", NULL);
  return node;
}

/* The files the graph reads besides its input (latent-blend's node 'second'):
 * one that is not there is named, not left to what GEGL makes of a missing
 * picture (a small stand-in, then a size mismatch further down). */
static gboolean
loads_exist (RunGraph *graph, GError **error)
{
  for (guint i = 0; i < graph->nodes->len; i++)
    {
      GeglNode         *node = graph->nodes->pdata[i];
      g_autofree gchar *path = NULL, *name = NULL;

      if (!g_str_has_suffix (node_title (node), "load") || !(path = path_of (node)) ||
          g_file_test (path, G_FILE_TEST_IS_REGULAR))
        continue;
      gegl_node_get (node, "name", &name, NULL);
      if (name && *name)
        g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                     _ ("the graph's node %s reads %s, which does not exist (give it a picture: -- "
                        "%s.path=FILE)"),
                     name, path, name);
      else
        g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                     _ ("the graph's %s reads %s, which does not exist"), node_title (node), path);
      return FALSE;
    }
  return TRUE;
}

gboolean
run_graph_check (RunGraph *graph, GError **error)
{
  g_autofree gchar *probe = NULL, *message = NULL, *probe_dir = NULL;
  GeglNode         *last;
  GeglOperation    *op;
  const Babl       *format;
  GeglRectangle     box;

  if (!loads_exist (graph, error) || !(probe = probe_picture (error)))
    return FALSE;
  run_graph_clear_errors (graph);
  gegl_node_set (graph->source, "path", probe, NULL);
  box = gegl_node_get_bounding_box (graph->output);
  message = run_graph_node_error (graph);
  last = real_output (graph->output);
  op = last ? gegl_node_get_gegl_operation (last) : NULL;
  format = op ? gegl_operation_get_format (op, "output") : NULL;
  graph->latent = format && babl_format_is_format_n (format);
  g_unlink (probe);
  probe_dir = g_path_get_dirname (probe);
  g_rmdir (probe_dir);
  if (message)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_FAILED, "%s", message);
      return FALSE;
    }
  if (box.width <= 0 || box.height <= 0)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_FAILED,
                   _ ("the graph makes nothing of a 64×64 picture: is its input connected?"));
      return FALSE;
    }
  return TRUE;
}

/* ---- savers -------------------------------------------------------------- */

typedef struct
{
  const gchar *extension;
  const gchar *image_op; /* NULL: not for pictures */
  const gchar *latent_op;
  gint         depths[3]; /* bit depths its `bitdepth` takes */
} Saver;

static const Saver savers[] = {
  { ".png", "gegl:png-save", NULL, { 8, 16 } },
  { ".tif", "gegl:tiff-save", NULL, { 8, 16, 32 } },
  { ".tiff", "gegl:tiff-save", NULL, { 8, 16, 32 } },
  { ".exr", "gegl:exr-save", NULL, { 0 } },
  { ".jpg", "gegl:jpg-save", NULL, { 0 } },
  { ".jpeg", "gegl:jpg-save", NULL, { 0 } },
  { ".webp", "gegl:webp-save", NULL, { 0 } },
  { ".npy", "gegl:npy-save", "vae:latent-save", { 0 } },
  { ".latent", NULL, "vae:latent-save", { 0 } },
};

static const Saver *
saver_for (const gchar *path)
{
  g_autofree gchar *lower = g_ascii_strdown (path, -1);

  for (guint i = 0; i < G_N_ELEMENTS (savers); i++)
    if (g_str_has_suffix (lower, savers[i].extension))
      return &savers[i];
  return NULL;
}

gboolean
run_graph_output_ok (RunGraph *graph, const gchar *path, GError **error)
{
  const Saver *saver = saver_for (path);
  const gchar *op;
  gboolean     depth_ok = graph->depth == 0;

  if (!saver)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                   _ ("%s: unknown output format; write .png, .tif, .exr, .jpg, .webp, .npy or "
                      ".latent"),
                   path);
      return FALSE;
    }
  op = graph->latent ? saver->latent_op : saver->image_op;
  if (!op)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                   graph->latent
                       ? _ ("%s: the graph ends in a latent; write .latent or .npy")
                       : _ ("%s: the graph ends in a picture; .latent files hold latents"),
                   path);
      return FALSE;
    }
  if (!gegl_has_operation (op))
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                   _ ("%s: this GEGL has no %s to write %s files"), path, op, saver->extension);
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (saver->depths); i++)
    depth_ok |= saver->depths[i] != 0 && saver->depths[i] == graph->depth;
  if (!depth_ok || (graph->depth && graph->latent))
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                   _ ("--depth %d does not apply to %s (PNG: 8 or 16, TIFF: 8, 16 or 32)"),
                   graph->depth, path);
      return FALSE;
    }
  return TRUE;
}

GeglNode *
run_graph_sink (RunGraph *graph, const gchar *path, GError **error)
{
  const Saver *saver;

  if (!run_graph_output_ok (graph, path, error))
    return NULL;
  saver = saver_for (path);
  if (graph->sink && !g_strcmp0 (graph->sink_ext, saver->extension))
    return graph->sink;
  if (graph->sink)
    gegl_node_remove_child (graph->gegl, graph->sink);
  graph->sink = gegl_node_new_child (graph->gegl, "operation",
                                     graph->latent ? saver->latent_op : saver->image_op, NULL);
  g_free (graph->sink_ext);
  graph->sink_ext = g_strdup (saver->extension);
  if (graph->depth)
    gegl_node_set (graph->sink, "bitdepth", graph->depth, NULL);
  if (graph->depth && gegl_node_find_property (graph->sink, "fp")) /* TIFF: integers below 32 */
    gegl_node_set (graph->sink, "fp", graph->depth == 32, NULL);
  if (graph->latent)
    {
      g_auto (GStrv) models = run_graph_models (graph);
      if (models[0]) /* the family whose scale turns a .latent raw */
        gegl_node_set (graph->sink, "model", models[0], NULL);
    }
  gegl_node_link (graph->output, graph->sink);
  return graph->sink;
}
