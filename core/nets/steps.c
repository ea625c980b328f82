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
