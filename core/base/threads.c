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
 * process took 13.0–14.9 s, against 8.6–9.7 s with OMP_WAIT_POLICY=passive
 * and the loops' dynamic schedules, and about 5 s alone either way
 * (docs/PERFORMANCE-NOTES.md).  libgomp reads its policy from the
 * environment once, as it loads, before main: so the program sets it and
 * starts itself again.  A policy the user set, or a spin count, is kept. */
void
vae_threads_wait_passively (gchar **argv)
{
#ifdef __linux__
  g_autofree gchar *self = NULL;

  if (g_getenv ("OMP_WAIT_POLICY") || g_getenv ("GOMP_SPINCOUNT") || !argv || !argv[0] ||
      !g_setenv ("OMP_WAIT_POLICY", "passive", TRUE))
    return;
  /* the program's own path, not the link: the process keeps its name, and
   * under valgrind the link is valgrind's tool while the target is ours */
  self = g_file_read_link ("/proc/self/exe", NULL);
  if (!self || g_str_has_suffix (self, " (deleted)"))
    {
      g_free (self);
      self = g_strdup ("/proc/self/exe");
    }
  execv (self, argv);
  /* not restarted (no /proc): the threads spin as before */
#else
  (void) argv;
#endif
}
