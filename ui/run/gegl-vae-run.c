/* gegl-vae-run: runs a GEGL graph — an XML graph file, or an op chain as
 * the `gegl` program takes it — over one picture or many, and fails loudly:
 *
 *   gegl-vae-run [OPTION…] INPUT… -o OUTPUT [-- OP [PROP=VALUE…]…]
 *   gegl-vae-run [OPTION…] INPUT… -o OUTPUT --graph GRAPH [-- PROP=VALUE…]
 *
 * The graph is built and checked once (its model loaded once), then pointed
 * at each input in turn; see README.md for the rest.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "runner.h"
#include "vae.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gchar   *opt_output, *opt_graph, *opt_manifest, *opt_shard, *opt_log;
static gint     opt_shards, opt_jobs, opt_depth;
static gint64   opt_seed;
static gboolean opt_resume, opt_dry_run, opt_quiet, opt_worker;
static gchar  **opt_inputs;

static const GOptionEntry entries[] = {
  { "output", 'o', 0, G_OPTION_ARG_FILENAME, &opt_output,
    "Output file, or a name with {stem}, {index}, {seed} for many (a folder: FOLDER/{stem}.png); "
    "the format follows the extension: .png .tif .exr .jpg .webp, .npy/.latent for latents",
    "OUTPUT" },
  { "graph", 'g', 0, G_OPTION_ARG_FILENAME, &opt_graph,
    "A GEGL XML graph file, or the name of one of ours (diffusion-preview, round-trip, …); the "
    "words after -- then set its properties",
    "GRAPH" },
  { "manifest", 'm', 0, G_OPTION_ARG_FILENAME, &opt_manifest,
    "Inputs listed in a file: one path per line, or .csv / .jsonl with a column 'input' and "
    "per-item properties (seed, strength, …)",
    "FILE" },
  { "seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed,
    "Base seed: each item's seed is a hash of it and the input's file name (default 0)", "N" },
  { "depth", 0, 0, G_OPTION_ARG_INT, &opt_depth, "Bits per channel: PNG 8 or 16, TIFF 8, 16 or 32",
    "BITS" },
  { "jobs", 'j', 0, G_OPTION_ARG_INT, &opt_jobs,
    "Worker processes, one thread each (default: one per core)", "N" },
  { "shard", 0, 0, G_OPTION_ARG_STRING, &opt_shard,
    "Take the I-th of N shards of the sorted inputs (default: from SLURM_ARRAY_TASK_ID or "
    "JOB_COMPLETION_INDEX)",
    "I/N" },
  { "shards", 0, 0, G_OPTION_ARG_INT, &opt_shards,
    "The number of shards, with the index from the environment (a Kubernetes Indexed Job)", "N" },
  { "resume", 0, 0, G_OPTION_ARG_NONE, &opt_resume,
    "Skip items whose output exists and whose record says the same input, graph, properties "
    "and model",
    NULL },
  { "log", 0, 0, G_OPTION_ARG_FILENAME, &opt_log, "Append a JSON line per item to FILE", "FILE" },
  { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &opt_dry_run, "List what would run, run nothing", NULL },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, "Say only what fails", NULL },
  { "worker", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_worker, NULL, NULL },
  { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_inputs, NULL, "INPUT…" },
  { NULL }
};

/* ---- where our module and graphs are ------------------------------------- */

/* From the build tree the module and graphs of this checkout, else the installed ones. */
static gboolean
from_build_tree (void)
{
  g_autofree gchar *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree gchar *dir = exe ? g_path_get_dirname (exe) : NULL;
  g_autofree gchar *build = realpath (RUN_BUILD_DIR, NULL);

  return dir && build && !strcmp (dir, build);
}

const gchar *
run_module_dir (void)
{
  return from_build_tree () ? RUN_BUILD_MODULE_DIR : VAE_GEGL_PLUGIN_DIR;
}

const gchar *
run_graphs_dir (void)
{
  return from_build_tree () ? RUN_SOURCE_GRAPHS_DIR : VAE_DATADIR "/graphs";
}

/* ---- the run ------------------------------------------------------------- */

static gint
fail (const GError *error)
{
  g_printerr ("gegl-vae-run: %s\n", error->message);
  return error->domain == RUN_ERROR && error->code == RUN_ERROR_USAGE ? 2 : 1;
}

/* The cores the machine (or the Slurm allocation) gives this run. */
static gint
cores (void)
{
  const gchar *env = g_getenv ("SLURM_CPUS_PER_TASK");
  gint64       n;

  if (env && g_ascii_string_to_signed (env, 10, 1, 4096, &n, NULL))
    return (gint) n;
  return (gint) g_get_num_processors ();
}

/* What makes a picture come out the same however the work is split.
 * babl chooses among colour conversions that agree within a tolerance by
 * timing them, so under load the same run picks differently (a step of a
 * 16-bit PNG apart): tolerance 0 keeps the exact ones.  The fp32 engine
 * gives the same values on any thread count; in a batch each picture is
 * computed on one thread, in worker processes (an OpenMP runtime, once
 * started, keeps its count), and --jobs shares the machine, which is
 * faster; a single picture takes every core.  GEGL_THREADS, when set, wins. */
static void
set_determinism (gint threads)
{
  g_autofree gchar *n = g_strdup_printf ("%d", threads);

  g_setenv ("BABL_TOLERANCE", "0", FALSE);
  if (g_getenv ("GEGL_THREADS"))
    return;
  g_setenv ("GEGL_THREADS", n, TRUE);
  g_setenv ("OMP_NUM_THREADS", n, TRUE);
}

/* The seed the command line gives every item, if it does. */
static const gchar *
seed_given (gchar **words)
{
  const gchar *seed = NULL;

  for (gint i = 0; words && words[i]; i++)
    {
      RunSetting *s = strchr (words[i], '=') ? run_setting_parse (words[i], NULL) : NULL;
      if (s && !strcmp (s->property, "seed"))
        seed = strchr (words[i], '=') + 1;
      if (s)
        run_setting_free (s);
    }
  return seed;
}

/* Each item's own settings, tried on the graph before any work. */
static gboolean
check_items (RunGraph *graph, GPtrArray *items, GError **error)
{
  for (guint i = 0; i < items->len; i++)
    {
      RunItem *item = items->pdata[i];
      for (guint k = 0; k < item->settings->len; k++)
        {
          g_autoptr (GError) e = NULL;
          if (!run_graph_apply (graph, item->settings->pdata[k], TRUE, &e))
            {
              g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, "%s: %s", item->input, e->message);
              run_graph_restore (graph);
              return FALSE;
            }
        }
      run_graph_restore (graph);
      if (!run_graph_output_ok (graph, item->output, error))
        return FALSE;
    }
  return TRUE;
}

/* This process's share of ITEMS: every N-th from the I-th. */
static GPtrArray *
take_shard (GPtrArray *items, guint index, guint count)
{
  GPtrArray *mine = g_ptr_array_new ();

  for (guint i = 0; i < items->len; i++)
    if (i % count == index)
      g_ptr_array_add (mine, items->pdata[i]);
  return mine;
}

/* ARGV: the whole command line, for the workers; WORDS: what follows --. */
static gint
run (gchar **argv, gchar **words, RunGraph *graph, GPtrArray *items, GError **error)
{
  g_autoptr (GPtrArray) mine = NULL, todo = g_ptr_array_new ();
  RunReport *report;
  guint      shard, shards, done_before = 0;
  gint       status, jobs;

  if (!run_shard (opt_shard, opt_shards, &shard, &shards, error) ||
      !run_items_name (items, opt_output, (guint) opt_seed, seed_given (words), error) ||
      !run_graph_check (graph, error) || !check_items (graph, items, error))
    return -1;
  mine = take_shard (items, shard, shards);
  run_remove_stale (mine);
  for (guint i = 0; i < mine->len; i++)
    {
      RunItem *item = mine->pdata[i];
      if (opt_resume && (item->record = run_record_expect (graph, item, NULL)) &&
          run_record_matches (item))
        done_before++;
      else
        g_ptr_array_add (todo, item);
    }
  if (opt_dry_run)
    {
      for (guint i = 0; i < mine->len; i++)
        {
          RunItem *item = mine->pdata[i];
          printf ("%u\t%s\t%s\tseed %u%s\n", item->index, item->input, item->output, item->seed,
                  g_ptr_array_find (todo, item, NULL) ? "" : _ ("\tdone before"));
        }
      printf (_ ("shard %u of %u: %u items, %u to run, %u done before\n"), shard, shards, mine->len,
              todo->len, done_before);
      return 0;
    }
  if (!(report = run_report_new (mine->len, opt_log, opt_quiet, error)))
    return -1;
  for (guint i = 0; i < mine->len; i++)
    if (!g_ptr_array_find (todo, mine->pdata[i], NULL))
      run_report_item (report, mine->pdata[i], RUN_SKIPPED, 0, NULL);
  jobs = MAX (1, MIN (opt_jobs, (gint) todo->len));
  if (items->len > 1 && todo->len)
    run_workers (argv, todo, jobs, report);
  else
    for (guint i = 0; i < todo->len && !run_stop_signal; i++)
      {
        g_autofree gchar *message = NULL;
        gint64            start = g_get_monotonic_time ();
        RunStatus         s = run_item_process (graph, todo->pdata[i], &message);

        run_report_item (report, todo->pdata[i], s, (g_get_monotonic_time () - start) / 1e6,
                         message);
      }
  status = run_report_finish (report, run_stop_signal);
  run_report_free (report);
  return status;
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) items = NULL;
  g_auto (GStrv) args = NULL, words = NULL;
  RunGraph *graph = NULL;
  gint      status, split;

  vae_threads_wait_passively (argv);
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, VAE_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  /* the words after -- are the op chain or the graph's settings */
  for (split = 1; split < argc && strcmp (argv[split], "--"); split++)
    ;
  words = split < argc ? g_strdupv (argv + split + 1) : NULL;
  args = g_new0 (gchar *, split + 1);
  for (gint i = 0; i < split; i++)
    args[i] = g_strdup (argv[i]);
  context =
      g_option_context_new ("INPUT… -o OUTPUT [-- OP [PROP=VALUE…]… | --graph G [-- PROP=VALUE…]]");
  g_option_context_set_summary (
      context, "Runs a GEGL graph over pictures: a file, folders, globs ('photos/*.png', quoted) "
               "or a manifest.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse_strv (context, &args, &error))
    {
      g_printerr ("gegl-vae-run: %s\n", error->message);
      return 2;
    }
  if (!opt_worker && (!opt_output || (!opt_inputs && !opt_manifest)))
    {
      g_printerr (_ ("usage: gegl-vae-run INPUT… -o OUTPUT [-- OP [PROP=VALUE…]…] (--help says "
                     "more)\n"));
      return 2;
    }
  if (opt_seed < 0 || opt_seed > G_MAXINT32 || opt_jobs < 0)
    {
      g_printerr (_ ("gegl-vae-run: --seed takes 0 to %d, --jobs 1 or more\n"), G_MAXINT32);
      return 2;
    }
  if (!opt_jobs)
    opt_jobs = cores ();
  run_signals_install (); /* from the start: a stop before any work still says so */
  if (!opt_worker && !(items = run_items_collect (opt_inputs, opt_manifest, &error)))
    return fail (error);
  if (items)
    set_determinism (items->len == 1 ? cores () : 1);

  run_capture_install ();
  gegl_init (NULL, NULL);
  if (!gegl_has_operation ("vae:encode")) /* GEGL_PATH may name it already */
    gegl_load_module_directory (run_module_dir ());
  if (!(graph = run_graph_new (opt_graph, words, opt_depth, &error)))
    status = fail (error);
  else if (opt_worker)
    status = run_worker_serve (graph);
  else if ((status = run (argv, words, graph, items, &error)) < 0)
    status = fail (error);
  g_clear_pointer (&items, g_ptr_array_unref);
  run_graph_free (graph);
  gegl_exit ();
  return status;
}
