/* The tiled executor (tiled.c): a backend that runs every layer of another
 * in bands of rows, so a pass fits a memory budget.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_TILED_H
#define VAE_TILED_H

#include "backend.h"

G_BEGIN_DECLS

/* Every layer runs in bands of full-width rows, each band reading its input
 * rows plus the halo the kernel needs, so results equal the plain run's up to
 * float rounding.  GroupNorm statistics are gathered over all bands before
 * any band is normalised (the normalisation is then applied as the next
 * layer reads its band).  Tensors above FILE_BYTES live in an unlinked
 * temporary file ($TMPDIR), so memory is bounded by the band size. */
typedef struct
{
  gint  image_height; /* rows of the image the network reads or writes */
  gint  band_pixels;  /* band height in image rows */
  gsize file_bytes;   /* tensors larger than this go to a temporary file */
  gint  bands_total;  /* bands in the whole pass, for progress; 0: unknown */
  gsize spare_bytes;  /* the pool's spare blocks and the Winograd cache, each */
} VaeTileSettings;

/* INNER in bands of SETTINGS; OUTER's progress (when set) hears of each band
 * and its cancel flag is read between bands (its backend is not used). */
VaeBackend *vae_backend_tiled_new (const VaeBackend *inner, const VaeTileSettings *settings,
                                   const VaePass *outer);
/* One pass in bands of SETTINGS: the result plain, or NULL with an error. */
typedef VaeTensor *(*VaeBandedPass) (const VaeTileSettings *settings, gpointer data,
                                     GError **error);
/* PASS in bands of SETTINGS's height (in image rows), then of half that, and
 * so on down to MIN_ROWS, for as long as it runs out of memory; a device's
 * way to finish a pass too large for it.  SETTINGS ends with the height
 * that was tried last. */
VaeTensor *vae_tiled_while_out_of_memory (VaeTileSettings *settings, gint min_rows,
                                          VaeBandedPass pass, gpointer data, GError **error);
void       vae_backend_tiled_free (VaeBackend *backend);
/* Rows per band for a layer of HEIGHT rows. */
gint vae_tiled_band_rows (const VaeTileSettings *settings, gint height);
/* What the largest band of a convolution holds beyond its input and output
 * tensors: input rows with halo, output (and residual) rows, scratch. */
gsize vae_tiled_conv_band_bytes (const VaeTileSettings *settings, const VaeConv *conv, gint in_h,
                                 gint in_w, gboolean upsample, gboolean residual);
/* Turns a tensor made by the tiled executor into a plain one. */
gboolean vae_tiled_materialize (VaeTensor **tensor, GError **error);

G_END_DECLS

#endif
