/* Files in and out.  Inputs are read, never mapped: a mapped file that
 * shrinks while it is read ends the process with SIGBUS; only regular files
 * are opened (a FIFO would block in open(), a directory cannot be read).
 * Outputs go to a temporary file beside the target, synced and renamed over
 * it only once whole, so a full disk or any other failure leaves the old
 * file as it was.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

static gboolean
io_error (GError **error, const gchar *format, const gchar *path, gint saved_errno)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_IO, format, path, g_strerror (saved_errno));
  return FALSE;
}

gint
vae_file_open (const gchar *path, gsize *size, GError **error)
{
  /* O_NONBLOCK: open() of a FIFO would wait for a writer; it is cleared
   * below, once the file is known to be regular */
  gint        fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
  struct stat st;

  if (fd < 0)
    {
      io_error (error, _ ("cannot read %s: %s"), path, errno);
      return -1;
    }
  if (fstat (fd, &st) != 0)
    {
      io_error (error, _ ("cannot read %s: %s"), path, errno);
      close (fd);
      return -1;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_IO,
          S_ISDIR (st.st_mode)
              ? _ ("%s is a folder, not a file")
              : _ ("%s is not a regular file (a FIFO, socket or device); refusing to read it"),
          path);
      close (fd);
      return -1;
    }
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
  *size = (gsize) st.st_size;
  return fd;
}

gboolean
vae_file_pread (gint fd, const gchar *path, gpointer buffer, gsize n, guint64 offset,
                GError **error)
{
  for (gsize done = 0; done < n;)
    {
      gssize got = pread (fd, (guint8 *) buffer + done, MIN (n - done, (gsize) 1 << 30),
                          (off_t) (offset + done));
      if (got < 0 && errno == EINTR)
        continue;
      if (got < 0)
        return io_error (error, _ ("cannot read %s: %s"), path, errno);
      if (got == 0)
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_IO,
                       _ ("%s ended after %" PRIu64 " bytes while it was being read (truncated by "
                          "someone else?)"),
                       path, offset + done);
          return FALSE;
        }
      done += (gsize) got;
    }
  return TRUE;
}

guint8 *
vae_file_read (const gchar *path, VaeLimit limit, gsize *size, GError **error)
{
  gint    fd = vae_file_open (path, size, error);
  guint8 *bytes;

  if (fd < 0)
    return NULL;
  if (*size > vae_limit (limit))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_LIMIT,
                   _ ("%s has %zu bytes, over the limit of %" PRIu64 " (%s raises it)"), path,
                   *size, vae_limit (limit), vae_limit_env (limit));
      close (fd);
      return NULL;
    }
  bytes = vae_try_alloc_uninit (*size, path, error);
  if (bytes && !vae_file_pread (fd, path, bytes, *size, 0, error))
    g_clear_pointer (&bytes, g_free);
  close (fd);
  return bytes;
}

/* ---- outputs ------------------------------------------------------------- */

struct _VaeOutput
{
  gchar *path;
  gchar *temporary;
  FILE  *file;
};

static void
output_free (VaeOutput *out)
{
  g_free (out->path);
  g_free (out->temporary);
  g_free (out);
}

VaeOutput *
vae_output_new (const gchar *path, GError **error)
{
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_autofree gchar *base = g_path_get_basename (path);
  g_autofree gchar *name = g_strdup_printf (".%s.XXXXXX", base);
  VaeOutput        *out = g_new0 (VaeOutput, 1);
  GStatBuf          st;
  gint              fd;

  out->path = g_strdup (path);
  out->temporary = g_build_filename (dir, name, NULL);
  /* 0666 less the umask, as fopen would create the file; a file replaced
   * keeps its permissions */
  fd = g_mkstemp_full (out->temporary, O_WRONLY | O_CLOEXEC, 0666);
  if (fd >= 0 && g_stat (path, &st) == 0)
    fchmod (fd, st.st_mode & 07777);
  if (fd < 0 || !(out->file = fdopen (fd, "wb")))
    {
      io_error (error, _ ("cannot write %s: %s"), path, errno);
      if (fd >= 0)
        {
          close (fd);
          g_unlink (out->temporary);
        }
      output_free (out);
      return NULL;
    }
  return out;
}

FILE *
vae_output_file (VaeOutput *out)
{
  return out->file;
}

/* fsync of the folder makes the rename itself durable; a failure there
 * loses nothing that is not already written, so it is not an error. */
static void
sync_folder (const gchar *path)
{
  g_autofree gchar *dir = g_path_get_dirname (path);
  gint              fd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

  if (fd >= 0)
    {
      fsync (fd);
      close (fd);
    }
}

gboolean
vae_output_close (VaeOutput *out, gboolean written, GError **error)
{
  gint     saved = errno;
  gboolean ok = written;

  if (ok && (fflush (out->file) != 0 || fsync (fileno (out->file)) != 0))
    {
      saved = errno;
      ok = FALSE;
    }
  if (fclose (out->file) != 0 && ok)
    {
      saved = errno;
      ok = FALSE;
    }
  if (ok && g_rename (out->temporary, out->path) != 0)
    {
      saved = errno;
      ok = FALSE;
    }
  if (ok)
    sync_folder (out->path);
  else
    {
      g_unlink (out->temporary);
      /* a writer that failed may have said why already (libpng's errors) */
      if (!error || !*error)
        io_error (error, _ ("cannot write %s: %s"), out->path, saved ? saved : EIO);
    }
  output_free (out);
  return ok;
}
