/* Resume records: beside each output, in OUTPUT_FOLDER/.gegl-vae-run/NAME.json,
 * what made it (hashes of the input, of the graph with its settings and of
 * the model files, and the item's own properties).  --resume skips an item
 * only when its output exists and its record says exactly this.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "runner.h"
#include "vae.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#define RECORD_FOLDER ".gegl-vae-run"

gchar *
run_sha256_file (const gchar *path, GError **error)
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GFileInputStream) in = g_file_read (file, NULL, error);
  g_autofree guchar *buffer = g_malloc (1 << 20);
  gssize             n;

  if (!in)
    return NULL;
  while ((n = g_input_stream_read (G_INPUT_STREAM (in), buffer, 1 << 20, NULL, error)) > 0)
    g_checksum_update (sum, buffer, n);
  return n < 0 ? NULL : g_strdup (g_checksum_get_string (sum));
}

/* The encoder of a tiny model beside its decoder, and the other way round. */
static gchar *
other_half (const gchar *path)
{
  g_autofree gchar *copy = g_strdup (path);
  gchar            *at;

  if ((at = g_strrstr (copy, "encoder")))
    memcpy (at, "decoder", 7);
  else if ((at = g_strrstr (copy, "decoder")))
    memcpy (at, "encoder", 7);
  return at && g_file_test (copy, G_FILE_TEST_IS_REGULAR) ? g_steal_pointer (&copy) : NULL;
}

static gchar *
on_model_path (const gchar *file)
{
  g_auto (GStrv) dirs = vae_model_search_path ();

  for (gchar **d = dirs; *d; d++)
    {
      gchar *path = g_build_filename (*d, file, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return path;
      g_free (path);
    }
  return NULL;
}

gchar **
run_model_files (const gchar *model)
{
  GPtrArray       *files = g_ptr_array_new ();
  const VaeFamily *family;
  gchar           *found = NULL;

  /* libvae keeps this resolution to itself: the same order, from its parts */
  if (g_file_test (model, G_FILE_TEST_IS_REGULAR))
    found = g_strdup (model);
  else if (!strchr (model, G_DIR_SEPARATOR))
    found = on_model_path (model);
  if (found)
    {
      gchar *other = other_half (found);
      g_ptr_array_add (files, found);
      if (other)
        g_ptr_array_add (files, other);
    }
  else if ((family = vae_family_lookup (model)))
    for (gchar **f = family->files; *f; f++)
      if ((found = on_model_path (*f)))
        g_ptr_array_add (files, found);
  g_ptr_array_add (files, NULL);
  return (gchar **) g_ptr_array_free (files, FALSE);
}

/* Hashes of model files, each read once per process. */
static gchar *
model_hash (gchar **models)
{
  static GHashTable *known; /* path → sha256 */
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);

  if (!known)
    known = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (gint m = 0; models[m]; m++)
    {
      g_auto (GStrv) files = run_model_files (models[m]);
      g_checksum_update (sum, (const guchar *) models[m], -1);
      for (gint f = 0; files[f]; f++)
        {
          gchar *hash = g_hash_table_lookup (known, files[f]);
          if (!hash)
            {
              if (!(hash = run_sha256_file (files[f], NULL)))
                hash = g_strdup ("unreadable");
              g_hash_table_insert (known, g_strdup (files[f]), hash);
            }
          g_checksum_update (sum, (const guchar *) hash, -1);
        }
    }
  return g_strdup (g_checksum_get_string (sum));
}

gchar *
run_record_expect (RunGraph *graph, const RunItem *item, GError **error)
{
  g_autofree gchar *input = run_sha256_file (item->input, error);
  g_autofree gchar *graph_hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, graph->spec, -1);
  g_autofree gchar *models_hash = NULL;
  g_auto (GStrv) graph_models = run_graph_models (graph);
  g_autoptr (GStrvBuilder) models = g_strv_builder_new ();
  g_auto (GStrv) model_list = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  if (!input)
    return NULL;
  /* an item's own `model` setting names models too */
  g_strv_builder_addv (models, (const gchar **) graph_models);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "input");
  json_builder_add_string_value (b, input);
  json_builder_set_member_name (b, "graph");
  json_builder_add_string_value (b, graph_hash);
  json_builder_set_member_name (b, "properties");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "seed");
  json_builder_add_int_value (b, item->seed);
  for (guint i = 0; i < item->settings->len; i++)
    {
      const RunSetting *s = item->settings->pdata[i];
      g_autofree gchar *key =
          s->node ? g_strconcat (s->node, ".", s->property, NULL) : g_strdup (s->property);
      json_builder_set_member_name (b, key);
      json_builder_add_string_value (b, s->value);
      if (!strcmp (s->property, "model"))
        g_strv_builder_add (models, s->value);
    }
  json_builder_end_object (b);
  model_list = g_strv_builder_end (models);
  models_hash = model_hash (model_list);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, models_hash);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

static gchar *
record_path (const gchar *output)
{
  g_autofree gchar *dir = g_path_get_dirname (output);
  g_autofree gchar *base = g_path_get_basename (output);
  g_autofree gchar *name = g_strconcat (base, ".json", NULL);

  return g_build_filename (dir, RECORD_FOLDER, name, NULL);
}

gboolean
run_record_matches (const RunItem *item)
{
  g_autofree gchar *path = record_path (item->output);
  g_autofree gchar *text = NULL;

  return item->record && g_file_test (item->output, G_FILE_TEST_IS_REGULAR) &&
         g_file_get_contents (path, &text, NULL, NULL) && !strcmp (g_strchomp (text), item->record);
}

gboolean
run_record_write (const RunItem *item, GError **error)
{
  g_autofree gchar *path = record_path (item->output);
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_autofree gchar *text = g_strconcat (item->record, "\n", NULL);

  if (g_mkdir_with_parents (dir, 0777) != 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "%s: %s", dir,
                   g_strerror (errno));
      return FALSE;
    }
  /* written to a temporary and renamed, as the outputs */
  return g_file_set_contents (path, text, -1, error);
}
