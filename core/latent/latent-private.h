/* What the latent operations (core/latent/) share: resampling taps, the
 * slerp of ComfyUI's bislerp, and their input checks.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_LATENT_PRIVATE_H
#define VAE_LATENT_PRIVATE_H

#include "vae-private.h"

G_BEGIN_DECLS

/* Where one output position reads along an axis, and with what weights. */
typedef struct
{
  gint   n;
  gint   index[4];
  gfloat weight[4];
} VaeTaps;

/* torch's interpolate (nearest-exact, bilinear, bicubic; align_corners
 * False) from IN_SIZE to OUT_SIZE along one axis: the taps of position DST. */
void vae_axis_taps (VaeScaleMethod method, gint in_size, gint out_size, gint dst, VaeTaps *taps);

/* The rectangle AREA of the IN_W×IN_H plane interpolated to OUT_W×OUT_H,
 * from IN, which holds the rectangle at (IN_X, IN_Y) of the whole input and
 * covers every tap AREA reads. */
VaeTensor *vae_interpolate (const VaeTensor *in, gint in_x, gint in_y, gint in_w, gint in_h,
                            gint out_w, gint out_h, const VaeRect *area, VaeScaleMethod method,
                            GError **error);

/* The slerp inside comfy.utils.bislerp for one pair of channel vectors
 * (their channels STRIDE apart), ratio R, into OUT (OUT_STRIDE apart); OUT
 * may be B1. */
void vae_slerp (const gfloat *b1, const gfloat *b2, gsize stride, gfloat r, gint channels,
                gfloat *out, gsize out_stride);

/* Errors that say which input is wrong. */
gboolean vae_latent_check_channels (const VaeTensor *latent, const VaeTensor *other,
                                    const gchar *what, GError **error);
gboolean vae_latent_check_mask (const VaeTensor *mask, GError **error);
gboolean vae_latent_check_size (gint width, gint height, GError **error);
gboolean vae_latent_check_same_size (const VaeTensor *a, const VaeTensor *b, const gchar *what_a,
                                     const gchar *what_b, GError **error);

G_END_DECLS

#endif
