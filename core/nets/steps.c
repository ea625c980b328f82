/* The steps forward passes are written in (see nets.h).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/nets.h"

VaeTensor *
vae_step_go_on (const VaePass *p, VaeTensor *x, GError **error)
{
  if (x && vae_pass_stopped (p, error))
    g_clear_pointer (&x, vae_tensor_free);
  return x;
}

VaeTensor *
vae_step_first_conv (const VaePass *p, const VaeConv *c, const VaeTensor *x, VaeAct act,
                     GError **error)
{
  return p->backend->conv (p->backend, c, x, FALSE, NULL, act, error);
}

VaeTensor *
vae_step_conv (const VaePass *p, const VaeConv *c, VaeTensor *x, gboolean upsample, VaeAct act,
               GError **error)
{
  VaeTensor *y = (x = vae_step_go_on (p, x, error))
                     ? p->backend->conv (p->backend, c, x, upsample, NULL, act, error)
                     : NULL;

  vae_tensor_free (x);
  return y;
}

VaeTensor *
vae_step_conv_transpose (const VaePass *p, const VaeConvTranspose *c, VaeTensor *x, VaeAct act,
                         GError **error)
{
  VaeTensor *y =
      (x = vae_step_go_on (p, x, error)) ? vae_conv_transpose (p->backend, c, x, act, error) : NULL;

  vae_tensor_free (x);
  return y;
}

VaeTensor *
vae_step_norm (const VaePass *p, const VaeNorm *n, VaeTensor *x, VaeAct act, GError **error)
{
  return (x = vae_step_go_on (p, x, error)) ? vae_norm_consume (p->backend, n, x, act, error)
                                            : NULL;
}

VaeTensor *
vae_step_attention (const VaePass *p, const VaeAttention *a, VaeTensor *x, GError **error)
{
  VaeTensor *y =
      (x = vae_step_go_on (p, x, error)) ? p->backend->attention (p->backend, a, x, error) : NULL;

  vae_tensor_free (x);
  return y;
}

VaeTensor *
vae_step_pixel_shuffle (const VaePass *p, VaeTensor *x, GError **error)
{
  VaeTensor *y =
      (x = vae_step_go_on (p, x, error)) ? p->backend->pixel_shuffle (p->backend, x, error) : NULL;

  vae_tensor_free (x);
  return y;
}
