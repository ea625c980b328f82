/* Which backend and precision a pass runs on, and running a pass on the
 * device backend (cuda/, when built): the retry in fp32 when half precision
 * produced non-finite values.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"
#include "run/run.h"

#include <math.h>

#ifdef VAE_HAVE_CUDA
#include "vae-config.h"
#include "vae-cuda.h"

#include <gmodule.h>
#endif

static const gchar *const backend_names[] = { "auto", "cpu", "cuda" };
static const gchar *const precision_names[] = { "fp32", "bf16", "fp16", "auto" };

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

#ifdef VAE_HAVE_CUDA
/* The CUDA module (see cuda/vae-cuda.h), opened the first time it is asked
 * for: GEGL_VAE_CUDA_MODULE names it, else the installed one, else the one
 * in the build tree (for the tests and the uninstalled CLI). */
static const VaeCudaModule *
cuda_module (GError **error)
{
  static const VaeCudaImports imports = {
    vae_backend_count_macs, vae_conv_output_checked, vae_error_quark, vae_precision_name,
    vae_tensor_new_uninit,  vae_tensor_n_elements,   vae_tensor_free,
  };
  static const VaeCudaModule *entry_points;
  static gchar               *why_not;
  static gsize                tried;

  if (g_once_init_enter (&tried))
    {
      const gchar      *env = g_getenv ("GEGL_VAE_CUDA_MODULE");
      const gchar      *path = env && *env ? env
                               : g_file_test (VAE_CUDA_MODULE, G_FILE_TEST_EXISTS)
                                   ? VAE_CUDA_MODULE
                                   : VAE_CUDA_MODULE_BUILT;
      GModule          *module = g_module_open (path, G_MODULE_BIND_LOCAL);
      VaeCudaModuleOpen open = NULL;

      if (module && g_module_symbol (module, VAE_CUDA_MODULE_SYMBOL, (gpointer *) &open) && open)
        {
          g_module_make_resident (module);
          entry_points = open (&imports);
        }
      else
        why_not = g_strdup (g_module_error ());
      g_once_init_leave (&tried, 1);
    }
  if (!entry_points)
    g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                 _ ("the CUDA backend could not be loaded: %s"), why_not);
  return entry_points;
}

/* Whether the NVIDIA driver counts a device, asked of the driver library
 * alone, so that a machine without one never loads the module and its
 * cuBLAS and cuDNN (the default backend, auto, asks on every run). */
static gboolean
driver_sees_device (GError **error)
{
  GModule *driver = g_module_open ("libcuda.so.1", G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
  gint (*init) (guint flags) = NULL, (*count_devices) (gint * count) = NULL;
  gint         count = 0, status = -1;
  const gchar *why = NULL;

  if (!driver)
    why = "the NVIDIA driver's libcuda.so.1 is not installed";
  else if (!g_module_symbol (driver, "cuInit", (gpointer *) &init) ||
           !g_module_symbol (driver, "cuDeviceGetCount", (gpointer *) &count_devices))
    why = "libcuda.so.1 lacks cuInit or cuDeviceGetCount";
  else if ((status = init (0)) != 0 || (status = count_devices (&count)) != 0)
    why = "the NVIDIA driver does not start";
  else if (count == 0)
    why = "the NVIDIA driver counts no device";
  if (driver)
    g_module_close (driver);
  if (why)
    {
      g_autofree gchar *detail =
          status > 0 ? g_strdup_printf ("%s, CUresult %d", why, status) : g_strdup (why);
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED, _ ("no CUDA device answers (%s)"),
                   detail);
    }
  return !why;
}
#endif

gboolean
vae_cuda_probe (gchar **device_name, GError **error)
{
#ifdef VAE_HAVE_CUDA
  const VaeCudaModule *cuda = NULL;

  if (device_name)
    *device_name = NULL;
  if (driver_sees_device (error))
    cuda = cuda_module (error);
  return cuda && cuda->probe_device (device_name, error);
#else
  if (device_name)
    *device_name = NULL;
  g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
               _ ("this build of gegl-vae has no CUDA backend (it was configured without the CUDA "
                  "toolkit)"));
  return FALSE;
#endif
}

/* What "auto" computes on the CPU: bf16 where AMX tiles run its
 * convolutions (direct products, or Winograd's split bf16 products), fp32
 * elsewhere.  On AMX, bf16 is 1.7–2.1× faster than fp32 and nearer float64
 * than OpenVINO's bf16 (docs/PERFORMANCE-NOTES.md); with AVX512-BF16 alone,
 * Winograd's single bf16 products cost an SD1.5 decode 43.5 dB PSNR, under
 * the 48 dB that OpenVINO's and PyTorch's bf16 reach, so fp32 stays. */
static VaePrecision
cpu_auto_precision (void)
{
  return vae_cpu_has_amx () ? VAE_PRECISION_BF16 : VAE_PRECISION_FP32;
}

VaePrecision
vae_cpu_precision_for (VaePrecision asked)
{
  if (asked == VAE_PRECISION_AUTO)
    return cpu_auto_precision ();
  return asked == VAE_PRECISION_BF16 && vae_cpu_has_bf16 () ? VAE_PRECISION_BF16
                                                            : VAE_PRECISION_FP32;
}

gboolean
vae_compute_resolve (VaeCompute *compute, GError **error)
{
  g_autoptr (GError) probe_error = NULL;

  if (compute->backend == VAE_BACKEND_AUTO)
    {
      gboolean device = vae_cuda_probe (NULL, &probe_error);
      compute->backend = device ? VAE_BACKEND_CUDA : VAE_BACKEND_CPU;
      /* without a device: what the CPU has of what was asked, quietly */
      if (!device)
        compute->precision = vae_cpu_precision_for (compute->precision);
      else if (compute->precision == VAE_PRECISION_AUTO)
        compute->precision = VAE_PRECISION_FP32;
      return TRUE;
    }
  if (compute->backend == VAE_BACKEND_CUDA && !vae_cuda_probe (NULL, &probe_error))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("backend 'cuda' was asked for, but %s"), probe_error->message);
      return FALSE;
    }
  /* on the device "auto" stays fp32: its half precisions have not been
   * held to issue 22's accuracy bars on a device */
  if (compute->precision == VAE_PRECISION_AUTO)
    compute->precision =
        compute->backend == VAE_BACKEND_CPU ? cpu_auto_precision () : VAE_PRECISION_FP32;
  if (compute->backend == VAE_BACKEND_CPU && compute->precision == VAE_PRECISION_FP16)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("precision fp16 is implemented on the CUDA backend only; the CPU computes "
                      "fp32 or bf16"));
      return FALSE;
    }
  if (compute->backend == VAE_BACKEND_CPU && compute->precision == VAE_PRECISION_BF16 &&
      !vae_cpu_has_bf16 ())
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("precision bf16 on the CPU needs AVX512-BF16, which this processor (or this "
                      "build) lacks; "
                      "use fp32"));
      return FALSE;
    }
  return TRUE;
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

/* One pass on the device, in bands of TILES unless NULL; *NONFINITE says
 * whether one of its convolutions gave inf or NaN. */
static VaeTensor *
device_pass (VaeNet *net, const VaeTensor *x, VaePrecision precision, const VaeTileSettings *tiles,
             const VaePass *outer, gboolean *nonfinite, GError **error)
{
  static GMutex        device_lock; /* one pass at a time: the handles are shared */
  const VaeCudaModule *cuda = cuda_module (error);
  const VaeBackend    *device;
  VaeBackend          *tiled = NULL;
  VaePass              pass;
  VaeTensor           *y;

  *nonfinite = FALSE;
  if (!cuda)
    return NULL;
  device = cuda->backend (precision);
  if (tiles)
    tiled = vae_backend_tiled_new (device, tiles, outer);
  pass = (VaePass){ tiled ? tiled : device, tiled ? NULL : outer->progress, outer->progress_data,
                    outer->cancel };
  g_mutex_lock (&device_lock);
  y = net->forward (net, &pass, x, error);
  if (y && !(tiled ? vae_tiled_materialize (&y, error) : device->to_host (device, &y, error)))
    g_clear_pointer (&y, vae_tensor_free);
  cuda->pass_end (nonfinite);
  g_mutex_unlock (&device_lock);
  if (tiled)
    vae_backend_tiled_free (tiled);
  return y;
}

VaeTensor *
vae_device_forward (VaeNet *net, const VaeTensor *x, VaePrecision precision,
                    const VaeTileSettings *tiles, const VaePass *outer, GError **error)
{
  static gsize warned;
  gboolean     nonfinite;
  VaeTensor   *y = device_pass (net, x, precision, tiles, outer, &nonfinite, error);

  /* the output is checked on the host too: the device flag covers convolutions only */
  if (!y || precision == VAE_PRECISION_FP32 || (!nonfinite && all_finite (y)))
    return y;
  /* SDXL's VAE overflows fp16: never hand back a black or NaN picture. */
  if (g_once_init_enter (&warned))
    {
      g_message (_ ("the %s pass on the CUDA device gave non-finite values; it was redone in fp32"),
                 vae_precision_name (precision));
      g_once_init_leave (&warned, 1);
    }
  vae_tensor_free (y);
  return device_pass (net, x, VAE_PRECISION_FP32, tiles, outer, &nonfinite, error);
}

#else

VaeTensor *
vae_device_forward (VaeNet *net, const VaeTensor *x, VaePrecision precision,
                    const VaeTileSettings *tiles, const VaePass *outer, GError **error)
{
  vae_cuda_probe (NULL, error);
  return NULL;
}

#endif
