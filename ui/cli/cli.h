/* Shared by the gegl-vae program's command files.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_CLI_H
#define VAE_CLI_H

#include "vae.h"

#define DEFAULT_MODEL "taef2"

/* The model named by NAME (NULL: the default) with --family/--scale/--shift,
 * built with the HALVES its command runs. */
VaeModel *cli_load_model (const gchar *name, VaeHalves halves, GError **error);

/* --memory-limit, --tile-size, --backend and --precision, applied to this
 * thread's runs; CHOSEN (may be NULL) receives the backend and precision. */
extern const GOptionEntry run_entries[];
gboolean                  cli_run_options (VaeRun *run, GError **error);

extern const GOptionEntry bench_entries[];
extern const GOptionEntry synth_entries[];
gboolean                  cmd_bench (gint argc, gchar **argv, GError **error);
gboolean                  cmd_synth (gint argc, gchar **argv, GError **error);

#endif
