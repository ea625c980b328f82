/* How many threads the engine runs, and how they wait.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#ifdef __linux__
#include <unistd.h>
#endif

gint
vae_threads (void)
{
  const gchar *env = g_getenv ("GEGL_THREADS");

  if (env && *env)
    {
      gint64 n = g_ascii_strtoll (env, NULL, 10);
      if (n >= 1 && n <= 1024)
        return (gint) n;
    }
  return MAX (1, (gint) g_get_num_processors ());
}

/* libgomp's threads spin before they sleep, at every barrier and between
 * parallel regions (300000 turns unless told).  When another process
 * takes a core, a spinning thread holds the core that its partner or that
 * process needs: a TAEF2 round trip at 1024² on 2 cores beside one busy
 * process took 13.4–15.0 s, against 9.0–9.6 s with OMP_WAIT_POLICY=passive,
 * and 4.7–5.3 s alone either way (docs/PERFORMANCE-NOTES.md).  libgomp reads
 * its policy from the environment once, as it loads, before main: so the
 * program sets it and starts itself again.  A policy the user set, or a
 * spin count, is kept. */
void
vae_threads_wait_passively (gchar **argv)
{
#ifdef __linux__
  if (g_getenv ("OMP_WAIT_POLICY") || g_getenv ("GOMP_SPINCOUNT") || !argv || !argv[0])
    return;
  g_setenv ("OMP_WAIT_POLICY", "passive", TRUE);
  execv ("/proc/self/exe", argv);
  /* not restarted (no /proc): the threads spin as before */
#else
  (void) argv;
#endif
}
