/* Per-thread progress reporting: a GEGL op or a host sets a callback for
 * the thread that runs a model; the graphs report each layer.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "backend.h"

static _Thread_local VaeProgressFunc progress_func;
static _Thread_local gpointer        progress_data;
static _Thread_local VaeProgressMode progress_mode;

void
vae_set_progress (VaeProgressFunc func, gpointer data)
{
  progress_func = func;
  progress_data = data;
}

void
vae_progress_set_mode (VaeProgressMode mode)
{
  progress_mode = mode;
}

static void
report (gint done, gint total)
{
  if (progress_func && total > 0)
    progress_func (CLAMP ((gdouble) done / total, 0.0, 1.0), progress_data);
}

void
vae_progress_step (gint done, gint total)
{
  if (progress_mode == VAE_PROGRESS_LAYERS)
    report (done, total);
}

void
vae_progress_band (gint done, gint total)
{
  if (progress_mode == VAE_PROGRESS_BANDS)
    report (done, total);
}
