/* Seeded noise: the Philox test vector of VAE-SPEC.md and torch's CPU randn;
 * the ops' window of noise against the whole latent's.
 * Tolerance 1e-6 absolute: float32 libm (log, sin, cos) may differ by an ulp.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <math.h>
#include <stdio.h>

static void
test_philox_vector (void)
{
  /* seed 0, shape (3, 4): the first row */
  const gfloat want[4] = { -0.92466259f, -0.42534415f, -2.6438457f, 0.14518388f };
  gfloat       got[12];

  vae_philox_fill (0, 0, 0, got, 12);
  for (gint i = 0; i < 4; i++)
    g_assert_cmpfloat_with_epsilon (got[i], want[i], 1e-6);
  /* position-keyed: any sub-range equals the same slice of the whole */
  for (gint i = 0; i < 12; i++)
    g_assert_cmpfloat (vae_philox_normal (0, 0, i), ==, got[i]);
}

static void
test_torch_randn (gconstpointer data)
{
  const gchar      *name = data;
  g_autofree gchar *path = test_data_path ("noise", name, NULL);
  guint64           seed;
  gsize             n;
  g_autoptr (GError) error = NULL;
  g_autofree gfloat *got = NULL;
  gdouble            max = 0.0;
  /* .npy of shape (n,): read through the latent reader's parser via a 1×1×1×n view */
  g_autoptr (GMappedFile) f = g_mapped_file_new (path, FALSE, &error);
  const gfloat *want;

  g_assert_no_error (error);
  g_assert_cmpint (sscanf (name, "randn-%" G_GUINT64_FORMAT "-%" G_GSIZE_FORMAT ".npy", &seed, &n),
                   ==, 2);
  want = (const gfloat *) (g_mapped_file_get_contents (f) + g_mapped_file_get_length (f) - n * 4);
  got = g_new (gfloat, n);
  vae_torch_randn (seed, got, n);
  for (gsize i = 0; i < n; i++)
    max = MAX (max, fabs ((gdouble) got[i] - want[i]));
  g_test_message ("seed %" G_GUINT64_FORMAT ", %" G_GSIZE_FORMAT
                  " values: max |ours - torch| = %.3g",
                  seed, n, max);
  g_assert_cmpfloat (max, <=, 1e-6);
}

/* The ops' window of noise (interleaved, a chunk of the latent) gives the
 * values the whole-latent vae_add_noise gives at those places, Philox and
 * torch alike: exactly, the same float arithmetic on the same ε. */
static void
test_noise_window (gconstpointer torch_rng)
{
  const gint    c = 3, h = 5, w = 7;
  const VaeRect window = { 2, 1, 4, 3 };
  const VaeRng  rng = torch_rng ? VAE_RNG_TORCH_CPU : VAE_RNG_PHILOX;
  const guint64 seed = 42;
  g_autoptr (VaeTensor) whole = vae_tensor_new (c, h, w, NULL);
  g_autofree gfloat *chunk = g_new (gfloat, (gsize) window.width * window.height * c);
  g_autofree gfloat *eps = g_new (gfloat, (gsize) c * h * w);
  gdouble            a, b;

  for (gsize i = 0; i < vae_tensor_n_elements (whole); i++)
    whole->data[i] = sinf ((gfloat) i);
  for (gint y = 0; y < window.height; y++)
    for (gint x = 0; x < window.width; x++)
      for (gint k = 0; k < c; k++)
        chunk[((gsize) y * window.width + x) * c + k] =
            whole->data[((gsize) k * h + window.y + y) * w + window.x + x];
  vae_torch_randn (seed, eps, (gsize) c * h * w);
  vae_noise_coefficients (VAE_SCHEDULE_SD_SCALED_LINEAR, 600, VAE_FORM_DIFFUSERS, &a, &b);
  vae_noise_window (chunk, c, &window, w, h, a, b, seed, torch_rng ? eps : NULL);
  g_assert_true (vae_add_noise (whole, VAE_SCHEDULE_SD_SCALED_LINEAR, 600, VAE_FORM_DIFFUSERS, rng,
                                seed, NULL));
  for (gint y = 0; y < window.height; y++)
    for (gint x = 0; x < window.width; x++)
      for (gint k = 0; k < c; k++)
        g_assert_cmpfloat (chunk[((gsize) y * window.width + x) * c + k], ==,
                           whole->data[((gsize) k * h + window.y + y) * w + window.x + x]);
}

int
main (int argc, char **argv)
{
  static const gchar *cases[] = {
    "randn-0-5.npy",   "randn-0-16.npy",           "randn-1-20.npy",
    "randn-42-48.npy", "randn-123456789-1564.npy", "randn-1099511627779-65536.npy"
  };

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/noise/philox-test-vector", test_philox_vector);
  g_test_add_data_func ("/noise/window/philox", NULL, test_noise_window);
  g_test_add_data_func ("/noise/window/torch-cpu", "torch", test_noise_window);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree gchar *n = g_strdup_printf ("/noise/torch-randn/%s", cases[i]);
      g_test_add_data_func (n, cases[i], test_torch_randn);
    }
  return g_test_run ();
}
