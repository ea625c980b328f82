/* One item: the graph pointed at its input, run into a temporary beside the
 * output, every node's error checked, then renamed into place (an output
 * either is complete or does not exist) and its record written.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "runner.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

volatile gint run_stop_signal;

/* ---- GEGL's and our ops' warnings ---------------------------------------- */

static GMutex     capture_lock;
static GPtrArray *capture_into;

static GLogWriterOutput
writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  const gchar *message = NULL, *domain = "";

  for (gsize i = 0; i < n_fields; i++)
    if (!strcmp (fields[i].key, "MESSAGE"))
      message = fields[i].value;
    else if (!strcmp (fields[i].key, "GLIB_DOMAIN") && fields[i].value)
      domain = fields[i].value;
  /* our filters say why they pass a picture through as a message in GEGL's
   * domain (GIMP shows those): an item's failure like any warning */
  if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) &&
      !((level & G_LOG_LEVEL_MESSAGE) && !strcmp (domain, "GEGL")))
    return g_log_writer_default (level, fields, n_fields, data);
  g_mutex_lock (&capture_lock);
  if (capture_into && message)
    g_ptr_array_add (capture_into, g_strstrip (g_strdup (message)));
  g_mutex_unlock (&capture_lock);
  return G_LOG_WRITER_HANDLED;
}

void
run_capture_install (void)
{
  g_log_set_writer_func (writer, NULL, NULL);
}

void
run_capture_begin (GPtrArray *into)
{
  g_mutex_lock (&capture_lock);
  capture_into = into;
  g_mutex_unlock (&capture_lock);
}

void
run_capture_end (void)
{
  run_capture_begin (NULL);
}

/* ---- temporaries --------------------------------------------------------- */

/* The temporary being written, for a second signal to remove at once. */
static gchar in_flight[4096];

static void
on_signal (int signal_number)
{
  if (run_stop_signal)
    {
      if (in_flight[0])
        unlink (in_flight);
      _exit (128 + signal_number);
    }
  run_stop_signal = signal_number;
}

void
run_signals_install (void)
{
  struct sigaction action = { 0 };

  action.sa_handler = on_signal;
  sigemptyset (&action.sa_mask);
  sigaction (SIGINT, &action, NULL);
  sigaction (SIGTERM, &action, NULL);
}

/* DIR/.NAME.tmpPID.EXT: hidden, and with the extension the saver goes by. */
gchar *
run_temporary_name (const gchar *output, gint pid)
{
  g_autofree gchar *dir = g_path_get_dirname (output);
  g_autofree gchar *base = g_path_get_basename (output);
  const gchar      *dot = strrchr (base, '.');
  g_autofree gchar *name =
      g_strdup_printf (".%s.tmp%d%s", base, pid, dot && dot != base ? dot : "");

  return g_build_filename (dir, name, NULL);
}

/* The output name whose temporary NAME is (.BASE.tmpDIGITS[EXT]), or NULL. */
static gchar *
temporary_of (const gchar *name)
{
  const gchar      *tmp = name[0] == '.' ? g_strrstr (name, ".tmp") : NULL;
  const gchar      *p, *dot;
  g_autofree gchar *base = NULL;

  if (!tmp || tmp == name)
    return NULL;
  for (p = tmp + 4; g_ascii_isdigit (*p); p++)
    ;
  if (p == tmp + 4)
    return NULL;
  base = g_strndup (name + 1, tmp - name - 1);
  dot = strrchr (base, '.');
  /* what follows the digits is the output's own extension */
  return !strcmp (p, dot && dot != base ? dot : "") ? g_steal_pointer (&base) : NULL;
}

void
run_remove_stale (GPtrArray *items)
{
  g_autoptr (GHashTable) dirs =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_hash_table_unref);
  GHashTableIter iter;
  gpointer       dir, names;

  for (guint i = 0; i < items->len; i++)
    {
      const RunItem *item = items->pdata[i];
      gchar         *d = g_path_get_dirname (item->output);
      GHashTable    *set = g_hash_table_lookup (dirs, d);

      if (!set)
        g_hash_table_insert (dirs, d,
                             set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL));
      else
        g_free (d);
      g_hash_table_add (set, g_path_get_basename (item->output));
    }
  g_hash_table_iter_init (&iter, dirs);
  while (g_hash_table_iter_next (&iter, &dir, &names))
    {
      g_autoptr (GDir) listing = g_dir_open (dir, 0, NULL);
      const gchar *name;

      while (listing && (name = g_dir_read_name (listing)))
        {
          g_autofree gchar *base = temporary_of (name);
          if (base && g_hash_table_contains (names, base))
            {
              g_autofree gchar *path = g_build_filename (dir, name, NULL);
              g_unlink (path);
            }
        }
    }
}

/* ---- the item ------------------------------------------------------------ */

static gboolean
input_ok (const gchar *input, gchar **error)
{
  if (!g_file_test (input, G_FILE_TEST_EXISTS))
    *error = g_strdup_printf (_ ("input %s does not exist"), input);
  else if (!g_file_test (input, G_FILE_TEST_IS_REGULAR))
    *error = g_strdup_printf (_ ("input %s is not a file"), input);
  else if (access (input, R_OK) != 0)
    *error = g_strdup_printf (_ ("cannot read %s: %s"), input, g_strerror (errno));
  return *error == NULL;
}

static gboolean
apply_item (RunGraph *graph, RunItem *item, gchar **error)
{
  g_autoptr (GError) e = NULL;

  run_graph_restore (graph);
  for (guint i = 0; i < item->settings->len; i++)
    if (!run_graph_apply (graph, item->settings->pdata[i], TRUE, &e))
      {
        *error = g_strdup (e->message);
        return FALSE;
      }
  if (!item->explicit)
    run_graph_set_seed (graph, item->seed);
  return TRUE;
}

/* Runs SINK step by step, so that a signal stops it between steps. */
static gboolean
run_sink (GeglNode *sink)
{
  GeglProcessor *processor = gegl_node_new_processor (sink, NULL);

  while (!run_stop_signal && gegl_processor_work (processor, NULL))
    ;
  g_object_unref (processor);
  return !run_stop_signal;
}

RunStatus
run_item_process (RunGraph *graph, RunItem *item, gchar **error)
{
  g_autofree gchar *temporary = run_temporary_name (item->output, getpid ());
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) e = NULL;
  GeglNode     *sink;
  GeglRectangle box;
  gboolean      finished;

  *error = NULL;
  if (!input_ok (item->input, error) || !apply_item (graph, item, error))
    return RUN_FAILED;
  if (!(sink = run_graph_sink (graph, item->output, &e)))
    {
      *error = g_strdup (e->message);
      return RUN_FAILED;
    }
  gegl_node_set (sink, "path", temporary, NULL);
  run_capture_begin (warnings);
  gegl_node_set (graph->source, "path", item->input, NULL);
  box = gegl_node_get_bounding_box (graph->source);
  if (box.width <= 0 || box.height <= 0)
    {
      run_capture_end ();
      *error = g_strdup_printf (_ ("%s is not a picture GEGL can read%s%s"), item->input,
                                warnings->len ? ": " : "",
                                warnings->len ? (gchar *) warnings->pdata[0] : "");
      return RUN_FAILED;
    }
  run_graph_clear_errors (graph);
  g_strlcpy (in_flight, temporary, sizeof in_flight);
  finished = run_sink (sink);
  run_capture_end ();
  if (!finished)
    {
      g_unlink (temporary);
      in_flight[0] = '\0';
      return RUN_STOPPED;
    }
  /* our ops' own message first: it names the op and the cause */
  if (!(*error = run_graph_node_error (graph)) && warnings->len)
    *error = g_strdup (warnings->pdata[0]);
  if (!*error && !g_file_test (temporary, G_FILE_TEST_IS_REGULAR))
    *error = g_strdup_printf (_ ("%s was not written"), item->output);
  if (!*error && g_rename (temporary, item->output) != 0)
    *error = g_strdup_printf (_ ("cannot rename %s to %s: %s"), temporary, item->output,
                              g_strerror (errno));
  if (*error)
    g_unlink (temporary);
  in_flight[0] = '\0';
  if (*error)
    return RUN_FAILED;
  if ((!item->record && !(item->record = run_record_expect (graph, item, &e))) ||
      !run_record_write (item, &e))
    {
      *error = g_strdup_printf (_ ("%s is written, but not its record (%s): --resume will redo "
                                   "it"),
                                item->output, e->message);
      return RUN_FAILED;
    }
  return RUN_OK;
}
