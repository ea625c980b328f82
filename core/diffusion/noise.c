/* Seeded Gaussian noise that matches the diffusion front ends bit for bit
 * (up to libm rounding): Philox "GPU" seeds as A1111/sd.cpp draw them, and
 * torch's CPU randn (MT19937) as ComfyUI draws them.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void
philox4x32_10 (guint32 c[4], guint32 k0, guint32 k1)
{
  for (gint round = 0; round < 10; round++)
    {
      guint64 p0 = (guint64) PHILOX_M0 * c[0];
      guint64 p1 = (guint64) PHILOX_M1 * c[2];
      guint32 next[4] = { (guint32) (p1 >> 32) ^ c[1] ^ k0, (guint32) p1,
                          (guint32) (p0 >> 32) ^ c[3] ^ k1, (guint32) p0 };
      c[0] = next[0];
      c[1] = next[1];
      c[2] = next[2];
      c[3] = next[3];
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
}

gfloat
vae_philox_normal (guint64 seed, guint32 offset, guint64 index)
{
  /* float32 constants and arithmetic as the reference computes them */
  const gfloat two_pow32_inv = (gfloat) 2.3283064e-10;
  const gfloat two_pow32_inv_2pi = (gfloat) (2.3283064e-10 * 6.2831855);
  guint32      c[4] = { offset, 0, (guint32) index, 0 };
  gfloat       u, v;

  philox4x32_10 (c, (guint32) seed, (guint32) (seed >> 32));
  u = (gfloat) c[0] * two_pow32_inv + two_pow32_inv / 2.0f;
  v = (gfloat) c[1] * two_pow32_inv_2pi + two_pow32_inv_2pi / 2.0f;
  return sqrtf (-2.0f * logf (u)) * sinf (v);
}

void
vae_philox_fill (guint64 seed, guint32 offset, guint64 first_index, gfloat *out, gsize n)
{
#pragma omp parallel for schedule(static)
  for (gsize i = 0; i < n; i++)
    out[i] = vae_philox_normal (seed, offset, first_index + i);
}

/* ---- MT19937 as torch seeds and draws it --------------------------------- */

typedef struct
{
  guint32 state[624];
  gint    next;
} Mt19937;

static void
mt_seed (Mt19937 *mt, guint64 seed)
{
  mt->state[0] = (guint32) seed;
  for (gint i = 1; i < 624; i++)
    mt->state[i] = 1812433253u * (mt->state[i - 1] ^ (mt->state[i - 1] >> 30)) + (guint32) i;
  mt->next = 624;
}

static guint32
mt_next (Mt19937 *mt)
{
  guint32 y;

  if (mt->next >= 624)
    {
      for (gint i = 0; i < 624; i++)
        {
          guint32 bits = (mt->state[i] & 0x80000000u) | (mt->state[(i + 1) % 624] & 0x7fffffffu);
          mt->state[i] = mt->state[(i + 397) % 624] ^ (bits >> 1) ^ ((bits & 1) ? 0x9908b0dfu : 0);
        }
      mt->next = 0;
    }
  y = mt->state[mt->next++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

static gfloat
mt_uniform (Mt19937 *mt)
{
  return (gfloat) (mt_next (mt) & 0xffffff) * (1.0f / 16777216.0f);
}

/* torch's normal_fill_16: Box–Muller on 16 uniforms in place. */
static void
normal_fill_16 (gfloat *d)
{
  for (gint j = 0; j < 8; j++)
    {
      const gfloat u1 = 1.0f - d[j];
      const gfloat u2 = d[j + 8];
      const gfloat radius = sqrtf (-2.0f * logf (u1));
      const gfloat theta = 2.0f * (gfloat) G_PI * u2;
      d[j] = radius * cosf (theta);
      d[j + 8] = radius * sinf (theta);
    }
}

/* torch draws tensors of under 16 elements in double precision from 53-bit
 * uniforms made of two 32-bit words (high word first). */
static gdouble
mt_uniform53 (Mt19937 *mt)
{
  guint64 hi = mt_next (mt), lo = mt_next (mt);
  guint64 x = (hi << 32) | lo;
  return (gdouble) (x & ((G_GUINT64_CONSTANT (1) << 53) - 1)) * ldexp (1.0, -53);
}

void
vae_torch_randn (guint64 seed, gfloat *out, gsize n)
{
  Mt19937 mt;

  mt_seed (&mt, seed);
  if (n < 16)
    {
      /* one Box–Muller pair per two values: r·cos θ now, r·sin θ cached by
       * the generator for the next draw */
      for (gsize i = 0; i < n; i += 2)
        {
          gdouble u1 = mt_uniform53 (&mt), u2 = mt_uniform53 (&mt);
          gdouble r = sqrt (-2.0 * log1p (-u2)), theta = 2.0 * G_PI * u1;
          out[i] = (gfloat) (r * cos (theta));
          if (i + 1 < n)
            out[i + 1] = (gfloat) (r * sin (theta));
        }
      return;
    }
  for (gsize i = 0; i < n; i++)
    out[i] = mt_uniform (&mt);
  for (gsize i = 0; i + 16 <= n; i += 16)
    normal_fill_16 (out + i);
  if (n % 16)
    {
      gfloat *tail = out + n - 16;
      for (gint i = 0; i < 16; i++)
        tail[i] = mt_uniform (&mt);
      normal_fill_16 (tail);
    }
}
