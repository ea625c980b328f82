/* What a run tells: one JSON line per item in the log, a progress bar with
 * items/s and ETA on a terminal (plain lines otherwise), and a summary.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

struct _RunReport
{
  FILE    *log;
  gboolean terminal, quiet;
  guint    total, done, counts[4];
  gint64   start;
  gchar   *log_path;
};

const gchar *
run_status_name (RunStatus status)
{
  static const gchar *const names[] = { "ok", "skipped", "failed", "stopped" };
  return names[status];
}

RunReport *
run_report_new (guint total, const gchar *log_path, gboolean quiet, GError **error)
{
  RunReport *r = g_new0 (RunReport, 1);

  if (log_path && !(r->log = fopen (log_path, "a")))
    {
      g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("cannot write the log %s: %s"), log_path,
                   g_strerror (errno));
      g_free (r);
      return NULL;
    }
  r->total = total;
  r->terminal = isatty (STDERR_FILENO);
  r->quiet = quiet;
  r->start = g_get_monotonic_time ();
  r->log_path = g_strdup (log_path);
  return r;
}

void
run_report_free (RunReport *report)
{
  if (report->log)
    fclose (report->log);
  g_free (report->log_path);
  g_free (report);
}

/* ---- JSON lines: the log's, and those between the runner and its workers - */

void
run_json_string (JsonBuilder *b, const gchar *name, const gchar *value)
{
  json_builder_set_member_name (b, name);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

JsonBuilder *
run_json_item (const RunItem *item)
{
  JsonBuilder *b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "index");
  json_builder_add_int_value (b, item->index);
  run_json_string (b, "input", item->input);
  run_json_string (b, "output", item->output);
  json_builder_set_member_name (b, "seed");
  json_builder_add_int_value (b, item->seed);
  return b;
}

void
run_json_result (JsonBuilder *b, RunStatus status, gdouble seconds, const gchar *error)
{
  run_json_string (b, "status", run_status_name (status));
  json_builder_set_member_name (b, "seconds");
  json_builder_add_double_value (b, seconds);
  run_json_string (b, "error", error);
}

gchar *
run_json_line (JsonBuilder *b)
{
  g_autoptr (JsonNode) root = NULL;

  json_builder_end_object (b);
  root = json_builder_get_root (b);
  g_object_unref (b);
  return json_to_string (root, FALSE);
}

RunStatus
run_status_from_name (const gchar *name)
{
  for (RunStatus s = RUN_OK; s <= RUN_STOPPED; s++)
    if (!g_strcmp0 (name, run_status_name (s)))
      return s;
  return RUN_FAILED;
}

static void
log_item (RunReport *r, const RunItem *item, RunStatus status, gdouble seconds, const gchar *error)
{
  JsonBuilder      *b = run_json_item (item);
  g_autofree gchar *line = NULL;

  run_json_result (b, status, seconds, error);
  line = run_json_line (b);
  fprintf (r->log, "%s\n", line);
  fflush (r->log); /* whole lines, so that shards may share a log */
}

static void
draw_bar (RunReport *r)
{
  const guint   ran = r->counts[RUN_OK] + r->counts[RUN_FAILED];
  const gdouble elapsed = (g_get_monotonic_time () - r->start) / 1e6;
  const gdouble rate = ran && elapsed > 0 ? ran / elapsed : 0;
  const guint   width = 30, filled = r->total ? width * r->done / r->total : width;
  gchar         bar[64];
  gchar         eta[32] = "";

  for (guint i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '.';
  bar[width] = '\0';
  if (rate > 0 && r->done < r->total)
    {
      guint left = (guint) ((r->total - r->done) / rate + 0.5);
      g_snprintf (eta, sizeof eta, " ETA %u:%02u:%02u", left / 3600, left / 60 % 60, left % 60);
    }
  fprintf (stderr, "\r\033[K[%s] %u/%u  %.2f items/s%s", bar, r->done, r->total, rate, eta);
  if (r->counts[RUN_FAILED])
    fprintf (stderr, _ ("  %u failed"), r->counts[RUN_FAILED]);
  fflush (stderr);
}

void
run_report_item (RunReport *r, const RunItem *item, RunStatus status, gdouble seconds,
                 const gchar *error)
{
  r->counts[status]++;
  if (status != RUN_STOPPED)
    r->done++;
  if (r->log)
    log_item (r, item, status, seconds, error);
  if (r->terminal)
    {
      if (error)
        fprintf (stderr, "\r\033[K%s: %s\n", item->input, error);
      draw_bar (r);
    }
  else if (error)
    fprintf (stderr, "[%u/%u] %s %s: %s\n", r->done, r->total, run_status_name (status),
             item->input, error);
  else if (status == RUN_OK && !r->quiet)
    fprintf (stderr, "[%u/%u] ok %s → %s (%.2f s)\n", r->done, r->total, item->input, item->output,
             seconds);
  else if (!r->quiet)
    fprintf (stderr, "[%u/%u] %s %s\n", r->done, r->total, run_status_name (status), item->input);
}

gint
run_report_finish (RunReport *r, gint stop_signal)
{
  const guint failed = r->counts[RUN_FAILED];

  if (r->terminal)
    fprintf (stderr, "\n");
  if (stop_signal)
    fprintf (stderr,
             _ ("stopped by signal %d: %u written, %u left; run again with --resume to finish\n"),
             stop_signal, r->counts[RUN_OK], r->total - r->counts[RUN_OK] - r->counts[RUN_SKIPPED]);
  else if (r->total > 1) /* one item's line says it all */
    {
      fprintf (stderr, _ ("%u written, %u done before, %u failed, of %u"), r->counts[RUN_OK],
               r->counts[RUN_SKIPPED], failed, r->total);
      if (r->log_path)
        fprintf (stderr, _ ("; log: %s"), r->log_path);
      fprintf (stderr, "\n");
    }
  return stop_signal ? 128 + stop_signal : failed ? 1 : 0;
}
