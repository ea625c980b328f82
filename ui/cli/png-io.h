/* PNG image files for the gegl-vae program.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_PNG_IO_H
#define VAE_PNG_IO_H

#include "vae.h"

/* Any PNG (1–16 bits, gray, RGB, palette, with or without alpha) as 3
 * channels of sRGB-encoded values in [0, 1]; alpha is dropped. */
VaeTensor *vae_png_read (const gchar *path, GError **error);
/* 8- or 16-bit RGB. */
gboolean vae_png_write (const gchar *path, const VaeTensor *image, gint depth, GError **error);

#endif
