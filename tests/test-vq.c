/* Codebooks: nearest entry (ties to the lowest index), blending, perplexity,
 * k-means++ learning and codebook files.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <math.h>

static VaeCodebook *
codebook (gint size, gint dim, const gfloat *entries)
{
  g_autofree gchar  *path = test_tmp_path ("cb.safetensors");
  VaeSafetensorsItem item = { "codes", 2, { size, dim }, VAE_DTYPE_F32, entries };
  g_autoptr (GError) error = NULL;
  VaeCodebook *cb;

  g_assert_true (vae_safetensors_write (path, &item, 1, NULL, &error));
  cb = vae_codebook_load (path, &error);
  g_assert_no_error (error);
  return cb;
}

static void
test_ties_lowest_index (void)
{
  const gfloat entries[] = { 0, 1, 1, 0, 1, 0, -1, 0 };
  const gfloat v1[] = { 1, 0 }, v2[] = { 0.5f, 0.5f }, v3[] = { 0, -1 };
  g_autoptr (VaeCodebook) cb = codebook (4, 2, entries);

  g_assert_cmpint (vae_codebook_nearest (cb, v1), ==, 1); /* entries 1 and 2 are equal */
  g_assert_cmpint (vae_codebook_nearest (cb, v2), ==, 0); /* equidistant to 0 and 1 */
  g_assert_cmpint (vae_codebook_nearest (cb, v3), ==, 1); /* 1, 2 and 3 at √2 */
}

/* On random data the chosen entry is the nearest, up to float rounding. */
static void
test_nearest_is_nearest (void)
{
  GRand *rand = g_rand_new_with_seed (11);
  gfloat entries[64 * 16], v[16];
  g_autoptr (VaeCodebook) cb = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (entries); i++)
    entries[i] = (gfloat) g_rand_double_range (rand, -2, 2);
  cb = codebook (64, 16, entries);
  for (gint t = 0; t < 500; t++)
    {
      gdouble best = G_MAXDOUBLE, got = 0;
      gint    k = 0;
      for (gint d = 0; d < 16; d++)
        v[d] = (gfloat) g_rand_double_range (rand, -2, 2);
      k = vae_codebook_nearest (cb, v);
      for (gint e = 0; e < 64; e++)
        {
          gdouble s = 0;
          for (gint d = 0; d < 16; d++)
            s += ((gdouble) v[d] - entries[e * 16 + d]) * ((gdouble) v[d] - entries[e * 16 + d]);
          best = MIN (best, s);
          if (e == k)
            got = s;
        }
      g_assert_cmpfloat (got - best, <=, 1e-5 * (1 + best));
    }
  g_rand_free (rand);
}

static void
test_snap_blend_and_stats (void)
{
  const gfloat entries[] = { 0, 0, 10, 10 };
  const gfloat in[] = { 1, 1, 9, 9, 0, 2, 11, 10 };
  gfloat       out[8];
  guint64      counts[2] = { 0 };
  gdouble      sq = 0;
  g_autoptr (VaeCodebook) cb = codebook (2, 2, entries);

  vae_codebook_snap (cb, in, out, 4, 0.5f, counts, &sq);
  g_assert_cmpfloat (out[0], ==, 0.5f);
  g_assert_cmpfloat (out[2], ==, 9.5f);
  g_assert_cmpfloat (out[5], ==, 1.0f);
  g_assert_cmpuint (counts[0], ==, 2);
  g_assert_cmpuint (counts[1], ==, 2);
  g_assert_cmpfloat_with_epsilon (sq, 2 + 2 + 4 + 1, 1e-9);
  g_assert_cmpfloat_with_epsilon (vae_codebook_perplexity (counts, 2), 2.0, 1e-12);
  counts[1] = 0;
  g_assert_cmpfloat_with_epsilon (vae_codebook_perplexity (counts, 2), 1.0, 1e-12);
}

/* Three tight clusters: k-means++ finds their means, the same for the same seed. */
static void
test_kmeans (void)
{
  const gfloat centres[3][3] = { { 0, 0, 0 }, { 5, 5, 5 }, { -5, 5, 0 } };
  GRand       *rand = g_rand_new_with_seed (3);
  gfloat       v[300 * 3];
  gdouble      mean[3][3] = { { 0 } };
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeCodebook) a = NULL, b = NULL, tiny = NULL;

  for (gint i = 0; i < 300; i++)
    for (gint d = 0; d < 3; d++)
      {
        v[i * 3 + d] = centres[i % 3][d] + (gfloat) g_rand_double_range (rand, -0.1, 0.1);
        mean[i % 3][d] += v[i * 3 + d] / 100.0;
      }
  a = vae_codebook_learn (v, 300, 3, 3, 10, 42, &error);
  b = vae_codebook_learn (v, 300, 3, 3, 10, 42, &error);
  g_assert_no_error (error);
  for (gint c = 0; c < 3; c++)
    {
      gint k = vae_codebook_nearest (a, centres[c]);
      for (gint d = 0; d < 3; d++)
        {
          g_assert_cmpfloat_with_epsilon (a->entries[k * 3 + d], mean[c][d], 1e-4);
          g_assert_cmpfloat (a->entries[k * 3 + d], ==, b->entries[k * 3 + d]);
        }
    }
  /* more entries than distinct vectors still gives a codebook */
  tiny = vae_codebook_learn (v, 2, 3, 8, 5, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tiny->size, ==, 8);
  g_assert_null (vae_codebook_learn (v, 0, 3, 8, 5, 1, &error));
  test_assert_error (error, "k-means needs vectors");
  g_rand_free (rand);
}

static void
test_codebook_files (void)
{
  g_autofree gchar  *path = test_tmp_path ("vq.safetensors");
  const gfloat       data[] = { 1, 2, 3, 4, 5, 6 };
  VaeSafetensorsItem items[] = {
    { "decoder.conv_in.weight", 1, { 6 }, VAE_DTYPE_F32, data },
    { "quantize.embedding.weight", 2, { 3, 2 }, VAE_DTYPE_F16, data },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeCodebook) cb = NULL;
  g_autoptr (VaeCodebook) bad = NULL;

  g_assert_true (vae_safetensors_write (path, items, 2, NULL, &error));
  cb = vae_codebook_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cb->size, ==, 3);
  g_assert_cmpint (cb->dim, ==, 2);
  g_assert_cmpfloat (cb->norms[2], ==, 61.0f);
  items[1].name = "something.else";
  g_assert_true (vae_safetensors_write (path, items, 2, NULL, &error));
  bad = vae_codebook_load (path, &error);
  g_assert_null (bad);
  test_assert_error (error, "must hold one [K, C] tensor");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/vq/ties-lowest-index", test_ties_lowest_index);
  g_test_add_func ("/vq/nearest-is-nearest", test_nearest_is_nearest);
  g_test_add_func ("/vq/snap-blend-and-stats", test_snap_blend_and_stats);
  g_test_add_func ("/vq/kmeans", test_kmeans);
  g_test_add_func ("/vq/codebook-files", test_codebook_files);
  return g_test_run ();
}
