/* Which backend and precision a pass runs on, and running a pass on the
 * device backend (cuda/, when built): the retry in fp32 when half precision
 * produced non-finite values.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "backend.h"

#include <math.h>

#ifdef VAE_HAVE_CUDA
#include "vae-cuda.h"
#endif

static GPrivate compute_key = G_PRIVATE_INIT (g_free);

void
vae_set_compute (const VaeCompute *compute)
{
  g_private_replace (&compute_key, compute ? g_memdup2 (compute, sizeof *compute) : NULL);
}

static VaeCompute
current_compute (void)
{
  const VaeCompute *c = g_private_get (&compute_key);

  return c ? *c : (VaeCompute) { VAE_BACKEND_AUTO, VAE_PRECISION_FP32 };
}

static const gchar *const backend_names[] = { "auto", "cpu", "cuda" };
static const gchar *const precision_names[] = { "fp32", "bf16", "fp16" };

/* Index of NAME in NAMES (N entries), or −1. */
static gint
index_of (const gchar *const *names, guint n, const gchar *name)
{
  for (guint i = 0; i < n; i++)
    if (g_strcmp0 (name, names[i]) == 0)
      return (gint) i;
  return -1;
}

gboolean
vae_backend_from_name (const gchar *name, VaeBackendKind *backend)
{
  gint i = index_of (backend_names, G_N_ELEMENTS (backend_names), name);

  if (i >= 0)
    *backend = (VaeBackendKind) i;
  return i >= 0;
}

gboolean
vae_precision_from_name (const gchar *name, VaePrecision *precision)
{
  gint i = index_of (precision_names, G_N_ELEMENTS (precision_names), name);

  if (i >= 0)
    *precision = (VaePrecision) i;
  return i >= 0;
}

const gchar *
vae_precision_name (VaePrecision precision)
{
  return precision_names[CLAMP ((gint) precision, 0, (gint) G_N_ELEMENTS (precision_names) - 1)];
}

gboolean
vae_cuda_probe (gchar **device_name, GError **error)
{
#ifdef VAE_HAVE_CUDA
  return vae_cuda_probe_device (device_name, error);
#else
  if (device_name)
    *device_name = NULL;
  g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
               _("this build of gegl-vae has no CUDA backend (it was configured without the CUDA toolkit)"));
  return FALSE;
#endif
}

void
vae_device_weights_free (gpointer weights)
{
#ifdef VAE_HAVE_CUDA
  vae_cuda_weights_free (weights);
#else
  g_return_if_fail (weights == NULL);
#endif
}

gboolean
vae_compute_resolve (VaeCompute *compute, GError **error)
{
  g_autoptr (GError) probe_error = NULL;

  if (compute->backend == VAE_BACKEND_AUTO)
    {
      gboolean device = vae_cuda_probe (NULL, &probe_error);
      compute->backend = device ? VAE_BACKEND_CUDA : VAE_BACKEND_CPU;
      /* without a device: bf16 where this CPU has it, else fp32, quietly */
      if (!device && !(compute->precision == VAE_PRECISION_BF16 && vae_cpu_has_bf16 ()))
        compute->precision = VAE_PRECISION_FP32;
      return TRUE;
    }
  if (compute->backend == VAE_BACKEND_CUDA && !vae_cuda_probe (NULL, &probe_error))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED, _("backend 'cuda' was asked for, but %s"),
                   probe_error->message);
      return FALSE;
    }
  if (compute->backend == VAE_BACKEND_CPU && compute->precision == VAE_PRECISION_FP16)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _("precision fp16 is implemented on the CUDA backend only; the CPU computes fp32 or bf16"));
      return FALSE;
    }
  if (compute->backend == VAE_BACKEND_CPU && compute->precision == VAE_PRECISION_BF16 && !vae_cpu_has_bf16 ())
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _("precision bf16 on the CPU needs AVX512-BF16, which this processor (or this build) lacks; "
                     "use fp32"));
      return FALSE;
    }
  return TRUE;
}

gboolean
vae_compute_choose (VaeCompute *chosen, GError **error)
{
  *chosen = current_compute ();
  return vae_compute_resolve (chosen, error);
}

#ifdef VAE_HAVE_CUDA

static gboolean
all_finite (const VaeTensor *t)
{
  const gsize n = vae_tensor_n_elements (t);
  gboolean    finite = TRUE;

#pragma omp parallel for schedule(static) reduction(&& : finite)
  for (gsize i = 0; i < n; i++)
    finite = finite && isfinite (t->data[i]);
  return finite;
}

static VaeTensor *
device_pass (VaeNet *net, const VaeTensor *x, VaePrecision precision, GError **error)
{
  static GMutex device_lock; /* one pass at a time: the handles are shared */
  VaeTensor    *y;

  g_mutex_lock (&device_lock);
  y = net->forward (net, vae_cuda_backend (precision), x, error);
  if (y && !vae_cuda_to_host (&y, error))
    g_clear_pointer (&y, vae_tensor_free);
  vae_cuda_pass_end ();
  g_mutex_unlock (&device_lock);
  return y;
}

VaeTensor *
vae_device_forward (VaeNet *net, const VaeTensor *x, VaePrecision precision, GError **error)
{
  static gsize warned;
  VaeTensor   *y = device_pass (net, x, precision, error);

  if (!y || precision == VAE_PRECISION_FP32 || all_finite (y))
    return y;
  /* SDXL's VAE overflows fp16: never hand back a black or NaN picture. */
  if (g_once_init_enter (&warned))
    {
      g_message (_("the %s pass on the CUDA device gave non-finite values; it was redone in fp32"),
                 vae_precision_name (precision));
      g_once_init_leave (&warned, 1);
    }
  vae_tensor_free (y);
  return device_pass (net, x, VAE_PRECISION_FP32, error);
}

#else

VaeTensor *
vae_device_forward (VaeNet *net, const VaeTensor *x, VaePrecision precision, GError **error)
{
  vae_cuda_probe (NULL, error);
  return NULL;
}

#endif
