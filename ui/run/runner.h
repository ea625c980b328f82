/* gegl-vae-run: a GEGL graph over one picture or many.  What the parts of
 * the runner share: the work items, the graph, the records and the report.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef GEGL_VAE_RUNNER_H
#define GEGL_VAE_RUNNER_H

#include <gegl.h>
#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define RUN_ERROR (run_error_quark ())
GQuark run_error_quark (void);

typedef enum
{
  RUN_ERROR_USAGE, /* what the command line asks cannot be done: exit 2 */
  RUN_ERROR_FAILED /* the run cannot start or an item failed: exit 1 */
} RunErrorCode;

/* A property setting: PROP=VALUE for every node that has PROP, or
 * NODE.PROP=VALUE for the nodes whose operation or name is NODE. */
typedef struct
{
  gchar *node; /* NULL: every node with the property */
  gchar *property;
  gchar *value;
} RunSetting;

RunSetting *run_setting_parse (const gchar *text, GError **error);
void        run_setting_free (RunSetting *setting);

/* ---- items (items.c) ----------------------------------------------------- */

typedef struct
{
  guint  index;        /* position among all inputs, the same in every shard */
  gchar *input;        /* a path */
  gchar *name;         /* the input's file name: keys the seed */
  gchar *output;       /* the final path */
  guint  seed;         /* the seed set on every node with a `seed` property */
  gboolean explicit;   /* the seed was given, not derived */
  GPtrArray *settings; /* RunSetting *: this item's own properties (a manifest's columns) */
  gchar     *record;   /* what its resume record says (record.c), once known */
} RunItem;

void run_item_free (RunItem *item);

/* Items from INPUTS (files, folders, globs) and MANIFEST (NULL, or a file:
 * one path per line, .csv or .jsonl with per-item properties), in order:
 * each folder and glob sorted by name, manifests in their own order. */
GPtrArray *run_items_collect (gchar **inputs, const gchar *manifest, GError **error);
/* Seeds (a hash of BASE_SEED and the file name, unless SEED_GIVEN, or the
 * item's own `seed`) and output paths from TEMPLATE ({stem}, {index},
 * {seed}; a folder means FOLDER/{stem}.png); fails when two items would write
 * the same file or an output folder does not exist. */
gboolean run_items_name (GPtrArray *items, const gchar *template, guint base_seed,
                         const gchar *seed_given, GError **error);
/* The shard (I, N): from SPEC ("I/N"), else SLURM_ARRAY_TASK_ID with _COUNT
 * (or _MIN/_MAX/_STEP), else JOB_COMPLETION_INDEX with SHARDS; (0, 1) when
 * none is set. */
gboolean run_shard (const gchar *spec, gint shards, guint *index, guint *count, GError **error);
guint    run_seed_for (guint base_seed, const gchar *name);

/* Our GEGL module's folder and our graphs' folder: this checkout's from its
 * build tree, the installed ones otherwise (gegl-vae-run.c). */
const gchar *run_module_dir (void);
const gchar *run_graphs_dir (void);

/* ---- the graph (graph.c, values.c) --------------------------------------- */

typedef struct
{
  GeglNode  *gegl;   /* owns every node */
  GeglNode  *source; /* re-pointed at each input (its `path`) */
  GeglNode  *output; /* whose output is saved */
  GeglNode  *sink;   /* the saver of the current output format */
  gchar     *sink_ext;
  gint       depth;   /* bits per channel for PNG and TIFF; 0: the saver's default */
  gboolean   latent;  /* the graph ends in a latent */
  gchar     *spec;    /* the graph's text and settings, for records */
  GPtrArray *nodes;   /* GeglNode *: the nodes settings apply to */
  GPtrArray *restore; /* the values item settings replaced (graph.c) */
} RunGraph;

/* GRAPH_FILE (a file, or the name of one of ours) or, without it, the op
 * chain in WORDS (OP [PROP=VALUE…]…); with a graph file WORDS are settings. */
RunGraph *run_graph_new (const gchar *graph_file, gchar **words, gint depth, GError **error);
void      run_graph_free (RunGraph *graph);
/* Sets a setting on the nodes it names; fails on unknown ones and bad values. */
gboolean run_graph_apply (RunGraph *graph, const RunSetting *setting, gboolean remember,
                          GError **error);
/* Undoes the item settings applied with REMEMBER. */
void run_graph_restore (RunGraph *graph);
void run_graph_set_seed (RunGraph *graph, guint seed);
/* Whether some node has a property of that name. */
gboolean run_graph_has_property (RunGraph *graph, const gchar *property);
/* Runs the graph on a picture of its own without saving: a model that cannot
 * load, or a graph that cannot work, is said here, before any input. */
gboolean run_graph_check (RunGraph *graph, GError **error);
/* Checks that PATH's format suits the graph (image or latent). */
gboolean run_graph_output_ok (RunGraph *graph, const gchar *path, GError **error);
/* The `model` properties of the nodes (NULL-terminated, sorted, unique). */
gchar **run_graph_models (RunGraph *graph);
/* Every error a node of the graph reports now (its `error` property). */
gchar *run_graph_node_error (RunGraph *graph);
void   run_graph_clear_errors (RunGraph *graph);
/* The saver for PATH's extension, fed by the graph's output. */
GeglNode *run_graph_sink (RunGraph *graph, const gchar *path, GError **error);

/* Parses TEXT into VALUE for PSPEC, checking the range; OWNER names the node. */
gboolean run_value_parse (GParamSpec *pspec, const gchar *owner, const gchar *text, GValue *value,
                          GError **error);
/* "did you mean 'X'?" when one of CANDIDATES is close to WORD, else "". */
gchar *run_suggest (const gchar *word, gchar **candidates);

/* ---- one item (process.c) ------------------------------------------------ */

typedef enum
{
  RUN_OK,
  RUN_SKIPPED,
  RUN_FAILED,
  RUN_STOPPED
} RunStatus;

/* Set from a signal handler: stop after the step in progress. */
extern volatile gint run_stop_signal;

/* Warnings and criticals are held back, never printed: between begin and
 * end they are added to INTO (an item fails with the first one).  Install
 * once, first. */
void run_capture_install (void);
void run_capture_begin (GPtrArray *into);
void run_capture_end (void);
/* Applies the item's settings and seed, runs the graph into a temporary
 * beside the output, checks every node's error, renames, writes the record. */
RunStatus run_item_process (RunGraph *graph, RunItem *item, gchar **error);
/* SIGINT and SIGTERM set run_stop_signal; a second one removes the
 * temporary being written and exits at once. */
void run_signals_install (void);
/* Removes the temporaries a killed run left for the outputs of ITEMS. */
void run_remove_stale (GPtrArray *items);
/* The temporary process PID writes OUTPUT to. */
gchar *run_temporary_name (const gchar *output, gint pid);

/* ---- records (record.c) -------------------------------------------------- */

/* What the record of ITEM must say: the hashes of its input, of the graph
 * with its settings and of the model files, and its own properties. */
gchar   *run_record_expect (RunGraph *graph, const RunItem *item, GError **error);
gboolean run_record_matches (const RunItem *item);
gboolean run_record_write (const RunItem *item, GError **error);
gchar   *run_sha256_file (const gchar *path, GError **error);
/* The files a model name means (a path, a file on the model path, or a
 * preset's files found there), as the ops resolve it. */
gchar **run_model_files (const gchar *model);

/* ---- report (report.c) --------------------------------------------------- */

typedef struct _RunReport RunReport;

RunReport *run_report_new (guint total, const gchar *log_path, gboolean quiet, GError **error);
void run_report_item (RunReport *report, const RunItem *item, RunStatus status, gdouble seconds,
                      const gchar *error);
/* The summary line; returns the exit status (0, 1, or 128 + signal). */
gint         run_report_finish (RunReport *report, gint stop_signal);
void         run_report_free (RunReport *report);
const gchar *run_status_name (RunStatus status);
RunStatus    run_status_from_name (const gchar *name);

/* JSON lines, the log's and those between the runner and its workers: an
 * object begun with the item's index, input, output and seed, members added,
 * then ended as one line of text (the builder freed). */
JsonBuilder *run_json_item (const RunItem *item);
void   run_json_result (JsonBuilder *b, RunStatus status, gdouble seconds, const gchar *error);
void   run_json_string (JsonBuilder *b, const gchar *name, const gchar *value);
gchar *run_json_line (JsonBuilder *b);

/* ---- worker processes (workers.c) ---------------------------------------- */

/* Runs ITEMS in JOBS worker processes (ARGV[0] --worker ARGV[1…], the
 * environment inherited), reporting each result. */
void run_workers (gchar **argv, GPtrArray *items, gint jobs, RunReport *report);
/* The worker's side: items in on stdin, results out on stdout. */
gint run_worker_serve (RunGraph *graph);

G_END_DECLS

#endif
