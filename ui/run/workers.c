/* --jobs N: N worker processes, each the runner itself with --worker, its
 * graph built and model loaded once.  The parent hands out one item at a
 * time (pictures differ in size, so a fixed split would leave workers idle)
 * as a JSON line on the worker's stdin, and reads the result line back.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "runner.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the lines between them ---------------------------------------------- */

static gchar *
item_to_line (const RunItem *item)
{
  JsonBuilder *b = run_json_item (item);

  json_builder_set_member_name (b, "explicit");
  json_builder_add_boolean_value (b, item->explicit);
  json_builder_set_member_name (b, "settings");
  json_builder_begin_array (b);
  for (guint i = 0; i < item->settings->len; i++)
    {
      const RunSetting *s = item->settings->pdata[i];
      g_autofree gchar *text = g_strdup_printf ("%s%s%s=%s", s->node ? s->node : "",
                                                s->node ? "." : "", s->property, s->value);
      json_builder_add_string_value (b, text);
    }
  json_builder_end_array (b);
  run_json_string (b, "record", item->record);
  return run_json_line (b);
}

static RunItem *
item_from_line (const gchar *line)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *o;
  JsonArray  *settings;
  RunItem    *item;

  if (!json_parser_load_from_data (parser, line, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;
  o = json_node_get_object (json_parser_get_root (parser));
  item = g_new0 (RunItem, 1);
  item->index = (guint) json_object_get_int_member (o, "index");
  item->input = g_strdup (json_object_get_string_member (o, "input"));
  item->name = g_path_get_basename (item->input);
  item->output = g_strdup (json_object_get_string_member (o, "output"));
  item->seed = (guint) json_object_get_int_member (o, "seed");
  item->explicit = json_object_get_boolean_member (o, "explicit");
  item->record = g_strdup (json_object_get_string_member_with_default (o, "record", NULL));
  item->settings = g_ptr_array_new_with_free_func ((GDestroyNotify) run_setting_free);
  settings = json_object_get_array_member (o, "settings");
  for (guint i = 0; i < json_array_get_length (settings); i++)
    {
      RunSetting *s = run_setting_parse (json_array_get_string_element (settings, i), NULL);
      if (s)
        g_ptr_array_add (item->settings, s);
    }
  return item;
}

/* ---- the worker ---------------------------------------------------------- */

gint
run_worker_serve (RunGraph *graph)
{
  /* only result lines on the pipe: anything a library prints goes to stderr */
  FILE  *results = fdopen (dup (STDOUT_FILENO), "w");
  gchar *line = NULL;
  gsize  size = 0;

  dup2 (STDERR_FILENO, STDOUT_FILENO);
  while (!run_stop_signal && getline (&line, &size, stdin) > 0)
    {
      RunItem          *item = item_from_line (line);
      g_autofree gchar *error = NULL, *result = NULL;
      gint64            start = g_get_monotonic_time ();
      JsonBuilder      *b;
      RunStatus         status;

      if (!item)
        break;
      status = run_item_process (graph, item, &error);
      b = run_json_item (item); /* the log's line */
      run_json_result (b, status, (g_get_monotonic_time () - start) / 1e6, error);
      result = run_json_line (b);
      fprintf (results, "%s\n", result);
      fflush (results);
      run_item_free (item);
    }
  free (line);
  fclose (results);
  return 0;
}

/* ---- the parent ---------------------------------------------------------- */

typedef struct
{
  GPid     pid;
  gint     in, out; /* its stdin, its stdout */
  GString *pending; /* what came without its line end yet */
  RunItem *item;    /* in flight */
} Worker;

typedef struct
{
  gchar    **argv;
  GPtrArray *items;
  guint      next;
  RunReport *report;
} Pool;

static gboolean
start (Pool *pool, Worker *w)
{
  g_autoptr (GError) error = NULL;

  memset (w, 0, sizeof *w);
  w->in = w->out = -1;
  if (!g_spawn_async_with_pipes (NULL, pool->argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                 &w->pid, &w->in, &w->out, NULL, &error))
    {
      g_printerr ("gegl-vae-run: %s\n", error->message);
      return FALSE;
    }
  w->pending = g_string_new (NULL);
  return TRUE;
}

/* The next item to W, or the end of its input. */
static void
feed (Pool *pool, Worker *w)
{
  w->item = NULL;
  if (pool->next < pool->items->len && !run_stop_signal)
    {
      g_autofree gchar *line = NULL, *text = NULL;
      w->item = pool->items->pdata[pool->next++];
      text = item_to_line (w->item);
      line = g_strconcat (text, "\n", NULL);
      for (gsize done = 0, n = strlen (line); done < n;)
        {
          gssize written = write (w->in, line + done, n - done);
          if (written < 0 && errno == EINTR)
            continue;
          if (written <= 0)
            return; /* it ended: its end of file says so */
          done += written;
        }
    }
  else if (w->in >= 0)
    {
      close (w->in);
      w->in = -1;
    }
}

static void
take_result (Pool *pool, Worker *w, const gchar *line)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *o;

  if (!w->item || !json_parser_load_from_data (parser, line, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return;
  o = json_node_get_object (json_parser_get_root (parser));
  run_report_item (pool->report, w->item,
                   run_status_from_name (json_object_get_string_member (o, "status")),
                   json_object_get_double_member (o, "seconds"),
                   json_object_get_string_member_with_default (o, "error", NULL));
  feed (pool, w);
}

/* W's end: an item still in flight died with it (its temporary goes too). */
static void
finish (Pool *pool, Worker *w)
{
  gint status = 0;

  waitpid (w->pid, &status, 0);
  g_spawn_close_pid (w->pid);
  if (w->item)
    {
      g_autofree gchar *why =
          WIFSIGNALED (status)
              ? g_strdup_printf (_ ("the worker process died of signal %d on this item"),
                                 WTERMSIG (status))
              : g_strdup_printf (_ ("the worker process exited (%d) on this item"),
                                 WEXITSTATUS (status));
      g_autofree gchar *temporary = run_temporary_name (w->item->output, w->pid);

      g_unlink (temporary);
      run_report_item (pool->report, w->item, run_stop_signal ? RUN_STOPPED : RUN_FAILED, 0, why);
    }
  if (w->in >= 0)
    close (w->in);
  close (w->out);
  g_string_free (w->pending, TRUE);
  w->out = -1;
}

void
run_workers (gchar **argv, GPtrArray *items, gint jobs, RunReport *report)
{
  g_autoptr (GStrvBuilder) args = g_strv_builder_new ();
  g_autofree Worker        *workers = g_new0 (Worker, jobs);
  g_autofree struct pollfd *fds = g_new0 (struct pollfd, jobs);
  g_auto (GStrv) worker_argv = NULL;
  Pool     pool = { 0 };
  gboolean forwarded = FALSE;
  gint     alive = 0;

  signal (SIGPIPE, SIG_IGN); /* a worker that died is seen at its end of file */
  g_strv_builder_add (args, argv[0]);
  g_strv_builder_add (args, "--worker");
  g_strv_builder_addv (args, (const gchar **) argv + 1);
  pool.argv = worker_argv = g_strv_builder_end (args);
  pool.items = items;
  pool.report = report;
  for (gint j = 0; j < jobs; j++)
    if (start (&pool, &workers[j]))
      {
        alive++;
        feed (&pool, &workers[j]);
      }
  while (alive > 0)
    {
      gint n = 0;

      if (run_stop_signal && !forwarded)
        {
          /* a signal the workers did not get themselves (a terminal's reaches all) */
          for (gint j = 0; j < jobs; j++)
            if (workers[j].out >= 0)
              kill (workers[j].pid, SIGTERM);
          forwarded = TRUE;
        }
      for (gint j = 0; j < jobs; j++)
        if (workers[j].out >= 0)
          fds[n++] = (struct pollfd){ .fd = workers[j].out, .events = POLLIN };
      if (poll (fds, n, -1) < 0)
        continue; /* EINTR: a signal */
      for (gint j = 0; j < jobs; j++)
        {
          Worker *w = &workers[j];
          gchar   buffer[4096], *end;
          gssize  got;

          if (w->out < 0)
            continue;
          for (gint k = 0; k < n; k++)
            if (fds[k].fd == w->out && !fds[k].revents)
              goto next;
          got = read (w->out, buffer, sizeof buffer);
          if (got < 0 && errno == EINTR)
            continue;
          if (got <= 0)
            {
              finish (&pool, w);
              alive--;
              /* a worker a bad item killed is replaced, so one item never stops the rest */
              if (pool.next < items->len && !run_stop_signal && start (&pool, w))
                {
                  alive++;
                  feed (&pool, w);
                }
              continue;
            }
          g_string_append_len (w->pending, buffer, got);
          while ((end = strchr (w->pending->str, '\n')))
            {
              g_autofree gchar *line = g_strndup (w->pending->str, end - w->pending->str);
              g_string_erase (w->pending, 0, end - w->pending->str + 1);
              take_result (&pool, w, line);
            }
        next:;
        }
    }
}
