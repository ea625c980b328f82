/* Shared by the libFuzzer harnesses: path-based readers get the input
 * through a memfd, so nothing touches the disk.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_FUZZ_UTIL_H
#define VAE_FUZZ_UTIL_H

#include <glib.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* /proc/self/fd/N holding exactly DATA; SUFFIX is ignored by the readers
 * that check content, kept for those that look at the name. */
static inline const char *
fuzz_path (const uint8_t *data, size_t size)
{
  static int  fd = -1;
  static char path[64];

  if (fd < 0)
    {
      fd = memfd_create ("fuzz-input", 0);
      g_assert (fd >= 0);
      g_snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    }
  g_assert (ftruncate (fd, 0) == 0);
  g_assert (pwrite (fd, data, size, 0) == (ssize_t) size);
  return path;
}

#endif
