/* Noise schedules and the forward-diffusion step x0 → x_t.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <math.h>

static gdouble
cosine_f (gdouble t)
{
  return pow (cos ((t + 0.008) / 1.008 * G_PI / 2), 2);
}

/* ᾱ for every timestep of the three β schedules, computed once in double. */
static const gdouble *
alpha_bars (VaeSchedule schedule)
{
  static gdouble table[3][VAE_TIMESTEPS];
  static gsize   once;

  if (g_once_init_enter (&once))
    {
      for (gint s = 0; s < 3; s++)
        {
          gdouble prod = 1.0;
          for (gint i = 0; i < VAE_TIMESTEPS; i++)
            {
              gdouble beta, f = (gdouble) i / (VAE_TIMESTEPS - 1);
              if (s == VAE_SCHEDULE_SD_SCALED_LINEAR)
                beta = pow (sqrt (0.00085) + f * (sqrt (0.012) - sqrt (0.00085)), 2);
              else if (s == VAE_SCHEDULE_LINEAR)
                beta = 1e-4 + f * (0.02 - 1e-4);
              else
                beta = MIN (1.0 - cosine_f ((i + 1.0) / VAE_TIMESTEPS) /
                                      cosine_f ((gdouble) i / VAE_TIMESTEPS),
                            0.999);
              prod *= 1.0 - beta;
              table[s][i] = prod;
            }
        }
      g_once_init_leave (&once, 1);
    }
  return table[schedule];
}

gdouble
vae_schedule_alpha_bar (VaeSchedule schedule, gint t)
{
  t = CLAMP (t, 0, VAE_TIMESTEPS - 1);
  if (schedule == VAE_SCHEDULE_FLOW)
    {
      /* the VP level whose flow form is (1−σ)x0 + σε */
      gdouble sigma = (t + 1.0) / VAE_TIMESTEPS;
      gdouble a = (1 - sigma) * (1 - sigma), b = sigma * sigma;
      return a / (a + b);
    }
  return alpha_bars (schedule)[t];
}

gint
vae_schedule_timestep_for_strength (gdouble strength)
{
  return CLAMP ((gint) lround (CLAMP (strength, 0.0, 1.0) * VAE_TIMESTEPS) - 1, 0,
                VAE_TIMESTEPS - 1);
}

void
vae_noise_coefficients (VaeSchedule schedule, gint timestep, VaeNoiseForm form, gdouble *x0_mul,
                        gdouble *eps_mul)
{
  const gdouble ab = vae_schedule_alpha_bar (schedule, timestep);
  const gdouble signal = sqrt (ab), noise = sqrt (1.0 - ab);

  switch (form)
    {
    case VAE_FORM_EPS:
      *x0_mul = 1.0;
      *eps_mul = noise / MAX (signal, 1e-6);
      break;
    case VAE_FORM_FLOW:
      *x0_mul = signal / (signal + noise);
      *eps_mul = noise / (signal + noise);
      break;
    case VAE_FORM_DIFFUSERS:
    default:
      *x0_mul = signal;
      *eps_mul = noise;
      break;
    }
}

gboolean
vae_add_noise (VaeTensor *latent, VaeSchedule schedule, gint timestep, VaeNoiseForm form,
               VaeRng rng, guint64 seed, GError **error)
{
  const gsize n = vae_tensor_n_elements (latent);
  gdouble     a, b;
  gfloat     *eps;

  if (timestep < 0 || timestep >= VAE_TIMESTEPS)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT, _ ("timestep %d is outside 0–%d"), timestep,
                   VAE_TIMESTEPS - 1);
      return FALSE;
    }
  if (!(eps = vae_try_alloc_floats (n, "noise", error)))
    return FALSE;
  if (rng == VAE_RNG_TORCH_CPU)
    vae_torch_randn (seed, eps, n);
  else
    vae_philox_fill (seed, 0, 0, eps, n);
  vae_noise_coefficients (schedule, timestep, form, &a, &b);
  for (gsize i = 0; i < n; i++)
    latent->data[i] = (gfloat) (a * latent->data[i] + b * eps[i]);
  g_free (eps);
  return TRUE;
}

void
vae_noise_window (gfloat *pixels, gint channels, const VaeRect *window, gint full_w, gint full_h,
                  gdouble a, gdouble b, guint64 seed, const gfloat *torch)
{
  const gsize plane = (gsize) full_w * full_h;

  if (b == 0.0)
    return;
  /* GEGL calls it from its own threads, a chunk each */
  for (gint y = 0; y < window->height; y++)
    for (gint x = 0; x < window->width; x++)
      {
        const gsize at = (gsize) (window->y + y) * full_w + (window->x + x);
        gfloat     *p = pixels + ((gsize) y * window->width + x) * channels;

        for (gint c = 0; c < channels; c++)
          {
            const gsize  index = (gsize) c * plane + at;
            const gfloat eps = torch ? torch[index] : vae_philox_normal (seed, 0, index);
            p[c] = (gfloat) (a * p[c] + b * eps);
          }
      }
}

gboolean
vae_schedule_from_name (const gchar *name, VaeSchedule *schedule)
{
  static const gchar *names[] = { "sd-scaled-linear", "linear", "cosine", "flow" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_strcmp0 (name, names[i]) == 0)
      {
        *schedule = (VaeSchedule) i;
        return TRUE;
      }
  return FALSE;
}
