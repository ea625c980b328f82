/* The work items: inputs from files, folders, globs and manifests; their
 * seeds, output names and the shard a process takes.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "runner.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK (gegl - vae - run - error - quark, run_error)

/* What a folder contributes: the pictures GEGL's loaders read. */
static const gchar *const picture_extensions[] = { ".png", ".jpg",  ".jpeg", ".tif", ".tiff",
                                                   ".exr", ".webp", ".gif",  ".ppm", ".pgm",
                                                   ".pnm", ".hdr",  NULL };

RunSetting *
run_setting_parse (const gchar *text, GError **error)
{
  const gchar *eq = strchr (text, '=');
  RunSetting  *s;
  const gchar *dot;

  if (!eq || eq == text)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                   _ ("'%s' is not PROPERTY=VALUE (or NODE.PROPERTY=VALUE)"), text);
      return NULL;
    }
  s = g_new0 (RunSetting, 1);
  s->value = g_strdup (eq + 1);
  /* property names have no dots; operation names may (never a property's) */
  dot = g_strrstr_len (text, eq - text, ".");
  if (dot)
    {
      s->node = g_strndup (text, dot - text);
      s->property = g_strndup (dot + 1, eq - dot - 1);
    }
  else
    s->property = g_strndup (text, eq - text);
  return s;
}

void
run_setting_free (RunSetting *setting)
{
  g_free (setting->node);
  g_free (setting->property);
  g_free (setting->value);
  g_free (setting);
}

void
run_item_free (RunItem *item)
{
  g_free (item->input);
  g_free (item->name);
  g_free (item->output);
  g_free (item->record);
  g_clear_pointer (&item->settings, g_ptr_array_unref);
  g_free (item);
}

static RunItem *
item_new (const gchar *input)
{
  RunItem *item = g_new0 (RunItem, 1);

  item->input = g_strdup (input);
  item->name = g_path_get_basename (input);
  item->settings = g_ptr_array_new_with_free_func ((GDestroyNotify) run_setting_free);
  return item;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar *const *) a, *(const gchar *const *) b);
}

static gboolean
is_picture (const gchar *name)
{
  g_autofree gchar *lower = g_ascii_strdown (name, -1);

  for (gint i = 0; picture_extensions[i]; i++)
    if (g_str_has_suffix (lower, picture_extensions[i]))
      return TRUE;
  return FALSE;
}

/* The pictures in FOLDER (not below it), hidden files left out. */
static gboolean
add_folder (GPtrArray *items, const gchar *folder, GError **error)
{
  g_autoptr (GDir) dir = g_dir_open (folder, 0, error);
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  const gchar *name;

  if (!dir)
    return FALSE;
  while ((name = g_dir_read_name (dir)))
    {
      g_autofree gchar *path = g_build_filename (folder, name, NULL);
      if (name[0] != '.' && is_picture (name) && g_file_test (path, G_FILE_TEST_IS_REGULAR))
        g_ptr_array_add (paths, g_steal_pointer (&path));
    }
  g_ptr_array_sort (paths, compare_strings);
  for (guint i = 0; i < paths->len; i++)
    g_ptr_array_add (items, item_new (paths->pdata[i]));
  return TRUE;
}

static gboolean
add_glob (GPtrArray *items, const gchar *pattern, GError **error)
{
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  glob_t matches;

  /* sorted by byte, not by the locale: every machine makes the same list */
  if (glob (pattern, GLOB_NOSORT, NULL, &matches) == 0)
    for (gsize i = 0; i < matches.gl_pathc; i++)
      if (g_file_test (matches.gl_pathv[i], G_FILE_TEST_IS_REGULAR))
        g_ptr_array_add (paths, g_strdup (matches.gl_pathv[i]));
  globfree (&matches);
  if (paths->len == 0)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_FAILED, _ ("no file matches %s"), pattern);
      return FALSE;
    }
  g_ptr_array_sort (paths, compare_strings);
  for (guint i = 0; i < paths->len; i++)
    g_ptr_array_add (items, item_new (paths->pdata[i]));
  return TRUE;
}

/* ---- manifests ----------------------------------------------------------- */

/* A manifest's path, relative to the manifest's folder. */
static RunItem *
manifest_item (const gchar *manifest, const gchar *path)
{
  g_autofree gchar *dir = g_path_get_dirname (manifest);
  g_autofree gchar *full =
      g_path_is_absolute (path) ? g_strdup (path) : g_build_filename (dir, path, NULL);
  return item_new (full);
}

static gboolean
manifest_setting (RunItem *item, const gchar *key, const gchar *value, const gchar *manifest,
                  guint line, GError **error)
{
  g_autofree gchar *text = g_strdup_printf ("%s=%s", key, value);
  RunSetting       *s = run_setting_parse (text, NULL);

  if (!s)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("%s line %u: column '%s' is no property"),
                   manifest, line, key);
      return FALSE;
    }
  g_ptr_array_add (item->settings, s);
  return TRUE;
}

/* One CSV record (no line breaks inside fields): fields split at commas,
 * "quoted" fields with "" for a quote. */
static GPtrArray *
csv_fields (const gchar *line)
{
  GPtrArray *fields = g_ptr_array_new_with_free_func (g_free);
  GString   *field = g_string_new (NULL);
  gboolean   quoted = FALSE;

  for (const gchar *p = line;; p++)
    {
      if (quoted && *p == '"' && p[1] == '"')
        g_string_append_c (field, '"'), p++;
      else if (*p == '"' && (quoted || field->len == 0))
        quoted = !quoted;
      else if (*p == '\0' || (*p == ',' && !quoted))
        {
          g_ptr_array_add (fields, g_strdup (g_strstrip (field->str)));
          g_string_truncate (field, 0);
          if (*p == '\0')
            break;
        }
      else
        g_string_append_c (field, *p);
    }
  g_string_free (field, TRUE);
  return fields;
}

static gboolean
add_csv (GPtrArray *items, const gchar *manifest, gchar **lines, GError **error)
{
  g_autoptr (GPtrArray) header = NULL;
  gint input = -1;

  for (guint n = 0; lines[n]; n++)
    {
      g_autoptr (GPtrArray) fields = NULL;
      RunItem *item;

      if (!*g_strstrip (lines[n]))
        continue;
      fields = csv_fields (lines[n]);
      if (!header)
        {
          header = g_steal_pointer (&fields);
          for (guint i = 0; i < header->len; i++)
            if (!strcmp (header->pdata[i], "input") || !strcmp (header->pdata[i], "path"))
              input = (gint) i;
          if (input < 0)
            {
              g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                           _ ("%s: the first line names the columns, one of them 'input'"),
                           manifest);
              return FALSE;
            }
          continue;
        }
      if (fields->len != header->len)
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("%s line %u: %u fields, not %u"),
                       manifest, n + 1, fields->len, header->len);
          return FALSE;
        }
      item = manifest_item (manifest, fields->pdata[input]);
      g_ptr_array_add (items, item);
      for (guint i = 0; i < header->len; i++)
        if ((gint) i != input && *(gchar *) fields->pdata[i] &&
            !manifest_setting (item, header->pdata[i], fields->pdata[i], manifest, n + 1, error))
          return FALSE;
    }
  return TRUE;
}

static gchar *
json_scalar (JsonNode *node)
{
  GType type = json_node_get_value_type (node);

  if (type == G_TYPE_STRING)
    return g_strdup (json_node_get_string (node));
  if (type == G_TYPE_BOOLEAN)
    return g_strdup (json_node_get_boolean (node) ? "true" : "false");
  if (type == G_TYPE_INT64)
    return g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (node));
  if (type == G_TYPE_DOUBLE)
    {
      gchar buffer[G_ASCII_DTOSTR_BUF_SIZE];
      return g_strdup (g_ascii_dtostr (buffer, sizeof buffer, json_node_get_double (node)));
    }
  return NULL;
}

static gboolean
add_jsonl (GPtrArray *items, const gchar *manifest, gchar **lines, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();

  for (guint n = 0; lines[n]; n++)
    {
      JsonObject *object;
      JsonNode   *input;
      RunItem    *item;
      GList      *members;

      if (!*g_strstrip (lines[n]))
        continue;
      if (!json_parser_load_from_data (parser, lines[n], -1, NULL) ||
          !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)) ||
          !(input = json_object_get_member (
                object = json_node_get_object (json_parser_get_root (parser)), "input")) ||
          json_node_get_value_type (input) != G_TYPE_STRING)
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                       _ ("%s line %u: not a JSON object with an \"input\" string"), manifest,
                       n + 1);
          return FALSE;
        }
      item = manifest_item (manifest, json_node_get_string (input));
      g_ptr_array_add (items, item);
      members = json_object_get_members (object);
      for (GList *m = members; m; m = m->next)
        {
          JsonNode         *value = json_object_get_member (object, m->data);
          g_autofree gchar *text = NULL;

          if (!strcmp (m->data, "input"))
            continue;
          if (!JSON_NODE_HOLDS_VALUE (value) || !(text = json_scalar (value)))
            {
              g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                           _ ("%s line %u: \"%s\" is not a string, number or boolean"), manifest,
                           n + 1, (gchar *) m->data);
              g_list_free (members);
              return FALSE;
            }
          if (!manifest_setting (item, m->data, text, manifest, n + 1, error))
            {
              g_list_free (members);
              return FALSE;
            }
        }
      g_list_free (members);
    }
  return TRUE;
}

/* One path per line (blank lines and # comments left out), .csv or .jsonl. */
static gboolean
add_manifest (GPtrArray *items, const gchar *manifest, GError **error)
{
  g_autofree gchar *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents (manifest, &text, NULL, error))
    return FALSE;
  lines = g_strsplit (text, "\n", -1);
  if (g_str_has_suffix (manifest, ".csv"))
    return add_csv (items, manifest, lines, error);
  if (g_str_has_suffix (manifest, ".jsonl") || g_str_has_suffix (manifest, ".ndjson"))
    return add_jsonl (items, manifest, lines, error);
  for (guint n = 0; lines[n]; n++)
    if (*g_strstrip (lines[n]) && lines[n][0] != '#')
      g_ptr_array_add (items, manifest_item (manifest, lines[n]));
  return TRUE;
}

GPtrArray *
run_items_collect (gchar **inputs, const gchar *manifest, GError **error)
{
  g_autoptr (GPtrArray) items = g_ptr_array_new_with_free_func ((GDestroyNotify) run_item_free);

  for (gint i = 0; inputs && inputs[i]; i++)
    {
      const gchar *in = inputs[i];
      gboolean     ok = TRUE;

      if (g_file_test (in, G_FILE_TEST_IS_DIR))
        ok = add_folder (items, in, error);
      else if (g_file_test (in, G_FILE_TEST_EXISTS))
        g_ptr_array_add (items, item_new (in));
      else if (strpbrk (in, "*?["))
        ok = add_glob (items, in, error);
      else
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_FAILED,
                       _ ("input %s does not exist: give a picture, a folder or a glob"), in);
          ok = FALSE;
        }
      if (!ok)
        return NULL;
    }
  if (manifest && !add_manifest (items, manifest, error))
    return NULL;
  if (items->len == 0)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_FAILED, _ ("no input: the folders hold no picture"));
      return NULL;
    }
  for (guint i = 0; i < items->len; i++)
    ((RunItem *) items->pdata[i])->index = i;
  return g_steal_pointer (&items);
}

/* ---- seeds, names, shards ------------------------------------------------ */

guint
run_seed_for (guint base_seed, const gchar *name)
{
  guint64 h = 0xcbf29ce484222325u; /* FNV-1a of the name … */

  for (const guchar *p = (const guchar *) name; *p; p++)
    h = (h ^ *p) * 0x100000001b3u;
  h ^= (guint64) base_seed * 0x9e3779b97f4a7c15u; /* … mixed with the base by splitmix64 */
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
  h ^= h >> 31;
  return (guint) (h & 0x7fffffff); /* what every seed property holds */
}

static gboolean
parse_seed (const gchar *text, guint *seed, GError **error)
{
  guint64 v;

  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXINT32, &v, NULL))
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("seed=%s: a seed is 0 to %d"), text,
                   G_MAXINT32);
      return FALSE;
    }
  *seed = (guint) v;
  return TRUE;
}

/* The item's `seed` setting, taken out of its settings. */
static gboolean
take_item_seed (RunItem *item, GError **error)
{
  for (guint i = 0; i < item->settings->len; i++)
    {
      RunSetting *s = item->settings->pdata[i];
      if (!s->node && !strcmp (s->property, "seed"))
        {
          if (!parse_seed (s->value, &item->seed, error))
            return FALSE;
          item->explicit = TRUE;
          g_ptr_array_remove_index (item->settings, i);
          return TRUE;
        }
    }
  return TRUE;
}

static gchar *
expand (const gchar *template, const RunItem *item, GError **error)
{
  GString          *out = g_string_new (NULL);
  g_autofree gchar *stem = g_strdup (item->name);
  gchar            *dot = strrchr (stem, '.');

  if (dot && dot != stem)
    *dot = '\0';
  for (const gchar *p = template; *p; p++)
    {
      if (*p != '{')
        {
          g_string_append_c (out, *p);
          continue;
        }
      if (g_str_has_prefix (p, "{stem}"))
        g_string_append (out, stem), p += 5;
      else if (g_str_has_prefix (p, "{index}"))
        g_string_append_printf (out, "%u", item->index), p += 6;
      else if (g_str_has_prefix (p, "{seed}"))
        g_string_append_printf (out, "%u", item->seed), p += 5;
      else
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                       _ ("output name %s: unknown placeholder at '%s'; use {stem}, {index} or "
                          "{seed}"),
                       template, p);
          g_string_free (out, TRUE);
          return NULL;
        }
    }
  return g_string_free (out, FALSE);
}

gboolean
run_items_name (GPtrArray *items, const gchar *template, guint base_seed, const gchar *seed_given,
                GError **error)
{
  g_autoptr (GHashTable) outputs = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) folders = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree gchar *pattern = NULL;
  guint             given = 0;

  if (seed_given && !parse_seed (seed_given, &given, error))
    return FALSE;
  if (g_file_test (template, G_FILE_TEST_IS_DIR) || g_str_has_suffix (template, "/"))
    pattern = g_build_filename (template, "{stem}.png", NULL);
  else
    pattern = g_strdup (template);
  for (guint i = 0; i < items->len; i++)
    {
      RunItem          *item = items->pdata[i];
      RunItem          *other;
      g_autofree gchar *folder = NULL;
      g_autofree gchar *in = NULL, *out = NULL;

      item->seed = seed_given ? given : run_seed_for (base_seed, item->name);
      item->explicit = seed_given != NULL;
      if (!take_item_seed (item, error) || !(item->output = expand (pattern, item, error)))
        return FALSE;
      if ((other = g_hash_table_lookup (outputs, item->output)))
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                       _ ("%s and %s would both be written to %s: put {stem} or {index} in the "
                          "output name"),
                       other->input, item->input, item->output);
          return FALSE;
        }
      g_hash_table_insert (outputs, item->output, item);
      in = g_canonicalize_filename (item->input, NULL);
      out = g_canonicalize_filename (item->output, NULL);
      if (!strcmp (in, out))
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                       _ ("%s would be written over itself: choose another output name"),
                       item->input);
          return FALSE;
        }
      folder = g_path_get_dirname (item->output);
      if (!g_hash_table_contains (folders, folder))
        {
          if (!g_file_test (folder, G_FILE_TEST_IS_DIR))
            {
              g_set_error (error, RUN_ERROR, RUN_ERROR_FAILED,
                           _ ("output folder %s does not exist: create it (mkdir -p %s)"), folder,
                           folder);
              return FALSE;
            }
          g_hash_table_add (folders, g_steal_pointer (&folder));
        }
    }
  return TRUE;
}

static gboolean
env_number (const gchar *name, gint64 *value)
{
  const gchar *text = g_getenv (name);
  return text && *text && g_ascii_string_to_signed (text, 10, 0, G_MAXINT32, value, NULL);
}

gboolean
run_shard (const gchar *spec, gint shards, guint *index, guint *count, GError **error)
{
  gint64 id, n = shards, min = 0, max, step = 1;

  if (spec)
    {
      g_auto (GStrv) parts = g_strsplit (spec, "/", 2);
      guint64 i, c;
      if (!parts[0] || !parts[1] ||
          !g_ascii_string_to_unsigned (parts[1], 10, 1, G_MAXINT32, &c, NULL) ||
          !g_ascii_string_to_unsigned (parts[0], 10, 0, c - 1, &i, NULL))
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                       _ ("--shard %s: give I/N with 0 ≤ I < N, e.g. 0/4"), spec);
          return FALSE;
        }
      *index = (guint) i, *count = (guint) c;
      return TRUE;
    }
  if (env_number ("SLURM_ARRAY_TASK_ID", &id))
    {
      env_number ("SLURM_ARRAY_TASK_MIN", &min);
      env_number ("SLURM_ARRAY_TASK_STEP", &step);
      if (n <= 0 && !env_number ("SLURM_ARRAY_TASK_COUNT", &n) &&
          env_number ("SLURM_ARRAY_TASK_MAX", &max))
        n = (max - min) / MAX (step, 1) + 1;
      id = (id - min) / MAX (step, 1);
    }
  else if (env_number ("JOB_COMPLETION_INDEX", &id))
    {
      if (n <= 0)
        {
          g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                       _ ("JOB_COMPLETION_INDEX is set: give the number of shards (the Job's "
                          "completions) with --shards N"));
          return FALSE;
        }
    }
  else if (shards > 0)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                   _ ("--shards needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX; outside a job "
                      "array give --shard I/N"));
      return FALSE;
    }
  else
    {
      *index = 0, *count = 1;
      return TRUE;
    }
  if (n <= 0 || id < 0 || id >= n)
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
                   _ ("array task %d is not one of %d shards (set --shards N, or submit with "
                      "--array=0-M)"),
                   (gint) id, (gint) n);
      return FALSE;
    }
  *index = (guint) id, *count = (guint) n;
  return TRUE;
}
