/* The latent toolbox (core/latent/) against ComfyUI's formulas run in
 * PyTorch (tests/reference/make_latent_ops_goldens.py: float32, as ComfyUI
 * runs them), one case per entry of tests/data/latent-ops/cases.json.
 * Tolerances, as max relative error (max |got − want| / max |want|), the
 * issue's: 1e-5 for bislerp and slerp (their norms and dot products are
 * summed in another order than torch's, and acos and sin amplify the last
 * bits near parallel vectors; measured ≤ 8.8e-7), 1e-6 for the rest
 * (measured: bicubic ≤ 4.4e-7, bilinear ≤ 1.1e-7, every other op 0).  An
 * index chosen wrongly (bislerp's and nearest's truncations) is off by a
 * whole value.  Then what the ops rely on: tiles equal the whole, and bad
 * input is an error.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

static VaeWeights *goldens;

static VaeTensor *
golden (const gchar *name)
{
  return test_weights_tensor (goldens, name);
}

static gint
enum_of (const gchar *nick, const gchar *const *nicks)
{
  for (gint i = 0; nicks[i]; i++)
    if (strcmp (nick, nicks[i]) == 0)
      return i;
  g_error ("unknown name %s", nick);
}

static const gchar *const methods[] = { "nearest-exact", "bilinear", "area",
                                        "bicubic",       "bislerp",  NULL };
static const gchar *const transforms[] = {
  "flip-horizontal", "flip-vertical", "rotate-90", "rotate-180", "rotate-270", "transpose", NULL
};
static const gchar *const modes[] = { "lerp", "slerp", "add", "subtract", "multiply", NULL };

static const gchar *
member (JsonObject *c, const gchar *name)
{
  return json_object_get_string_member (c, name);
}

static gint
int_member (JsonObject *c, const gchar *name)
{
  return (gint) json_object_get_int_member (c, name);
}

static void
test_case (gconstpointer data)
{
  JsonObject  *c = (JsonObject *) data;
  const gchar *op = member (c, "op");
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) got = NULL;
  g_autoptr (VaeTensor) want = NULL;
  g_autoptr (VaeTensor) in = NULL;
  gdouble tol = 1e-6;

  if (strcmp (op, "scaled-size") == 0)
    {
      gint w, h;
      g_assert_true (vae_latent_scaled_size (int_member (c, "width"), int_member (c, "height"),
                                             json_object_get_double_member (c, "factor"), 0, 0, &w,
                                             &h, &error));
      g_assert_cmpint (w, ==, int_member (c, "want_width"));
      g_assert_cmpint (h, ==, int_member (c, "want_height"));
      return;
    }
  in = golden (member (c, "input"));
  want = golden (member (c, "want"));
  if (strcmp (op, "scale") == 0)
    {
      const gint method = enum_of (member (c, "method"), methods);
      got = vae_latent_scale (in, int_member (c, "width"), int_member (c, "height"), method,
                              json_object_get_boolean_member (c, "crop"), &error);
      tol = method == VAE_SCALE_BISLERP ? 1e-5 : 1e-6;
    }
  else if (strcmp (op, "transform") == 0)
    got = vae_latent_transform (in, enum_of (member (c, "transform"), transforms), &error);
  else if (strcmp (op, "composite") == 0)
    {
      g_autoptr (VaeTensor) src = golden (member (c, "aux"));
      const VaeComposite where = {
        in->width,  in->height,  int_member (c, "x"),      int_member (c, "y"),
        src->width, src->height, int_member (c, "feather")
      };
      g_assert_true (vae_latent_composite (in, 0, 0, src, 0, 0, &where, &error));
      got = g_steal_pointer (&in);
    }
  else if (strcmp (op, "blend") == 0)
    {
      g_autoptr (VaeTensor) b = golden (member (c, "aux"));
      const gint mode = enum_of (member (c, "mode"), modes);
      g_assert_true (
          vae_latent_blend (in, b, mode, json_object_get_double_member (c, "factor"), &error));
      got = g_steal_pointer (&in);
      tol = mode == VAE_BLEND_SLERP ? 1e-5 : 1e-6;
    }
  else if (strcmp (op, "mask-to-latent") == 0)
    {
      const VaeRect     area = { 0, 0, int_member (c, "width"), int_member (c, "height") };
      const gboolean    padded = json_object_has_member (c, "padded_width");
      const VaeMaskGrid grid = { in->width,
                                 in->height,
                                 padded ? int_member (c, "padded_width") : in->width,
                                 padded ? int_member (c, "padded_height") : in->height,
                                 area.width,
                                 area.height };
      got = vae_mask_resize (in, 0, 0, &grid, &area, &error);
    }
  else if (strcmp (op, "grow") == 0)
    got = vae_inpaint_grow (in, int_member (c, "grow"), &error);
  else if (strcmp (op, "fill") == 0)
    {
      g_autoptr (VaeTensor) mask = golden (member (c, "aux"));
      g_assert_true (vae_inpaint_fill (in, mask, &error));
      got = g_steal_pointer (&in);
    }
  else
    g_error ("unknown case %s", op);
  g_assert_no_error (error);
  test_assert_close (got, want, tol, member (c, "want"));
}

/* The mask on the latent grid computed for tiles of every size and place
 * (from only what vae_mask_source says a tile reads) equals the whole, bit
 * for bit, stretched or padded: what vae:latent-noise's chunks rely on. */
static void
test_mask_tiles (void)
{
  g_autoptr (VaeTensor) mask = golden ("mask.soft");
  const VaeMaskGrid grids[] = { { mask->width, mask->height, mask->width, mask->height, 7, 5 },
                                { mask->width, mask->height, 64, 48, 4, 3 } };

  for (guint g = 0; g < G_N_ELEMENTS (grids); g++)
    {
      const gint    w = grids[g].width, h = grids[g].height;
      const VaeRect all = { 0, 0, w, h };
      g_autoptr (VaeTensor) whole = vae_mask_resize (mask, 0, 0, &grids[g], &all, NULL);

      for (gint y = 0; y < h; y++)
        for (gint x = 0; x < w; x++)
          for (gint th = 1; y + th <= h; th++)
            for (gint tw = 1; x + tw <= w; tw += 2)
              {
                const VaeRect area = { x, y, tw, th };
                const VaeRect need = vae_mask_source (&grids[g], &area);
                g_autoptr (VaeTensor) part = vae_tensor_new (1, need.height, need.width, NULL);
                g_autoptr (VaeTensor) tile = NULL;

                for (gint r = 0; r < need.height; r++)
                  memcpy (part->data + (gsize) r * need.width,
                          mask->data + (gsize) (need.y + r) * mask->width + need.x,
                          need.width * sizeof (gfloat));
                tile = vae_mask_resize (part, need.x, need.y, &grids[g], &area, NULL);
                g_assert_nonnull (tile);
                for (gint r = 0; r < th; r++)
                  for (gint q = 0; q < tw; q++)
                    g_assert_cmpfloat (tile->data[r * tw + q], ==,
                                       whole->data[(y + r) * w + x + q]);
              }
    }
}

/* A composite computed in tiles, each reading only the source rectangle
 * over it, equals the whole one bit for bit (vae:latent-composite's chunks). */
static void
test_composite_tiles (void)
{
  g_autoptr (VaeTensor) dest = golden ("a.c16");
  g_autoptr (VaeTensor) src = golden ("src.c16");
  g_autoptr (VaeTensor) whole = golden ("a.c16");
  const VaeComposite where = { dest->width, dest->height, 3, 2, src->width, src->height, 2 };
  const gsize        plane = (gsize) dest->width * dest->height;

  g_assert_true (vae_latent_composite (whole, 0, 0, src, 0, 0, &where, NULL));
  for (gint y = 0; y < dest->height; y += 3)
    for (gint x = 0; x < dest->width; x += 4)
      {
        const gint tw = MIN (4, dest->width - x), th = MIN (3, dest->height - y);
        g_autoptr (VaeTensor) tile = vae_tensor_new (16, th, tw, NULL);
        g_autoptr (VaeTensor) under = vae_tensor_new (16, th, tw, NULL);
        const gint sx = x - where.x, sy = y - where.y;

        /* the source over the tile, zeros where it has none (GEGL's abyss) */
        for (gint c = 0; c < 16; c++)
          for (gint r = 0; r < th; r++)
            for (gint q = 0; q < tw; q++)
              {
                const gboolean inside =
                    sx + q >= 0 && sy + r >= 0 && sx + q < src->width && sy + r < src->height;
                tile->data[(c * th + r) * tw + q] =
                    dest->data[c * plane + (y + r) * dest->width + x + q];
                under->data[(c * th + r) * tw + q] =
                    inside ? src->data[(c * src->height + sy + r) * src->width + sx + q] : 0.0f;
              }
        g_assert_true (vae_latent_composite (tile, x, y, under, sx, sy, &where, NULL));
        for (gint c = 0; c < 16; c++)
          for (gint r = 0; r < th; r++)
            for (gint q = 0; q < tw; q++)
              g_assert_cmpfloat (tile->data[(c * th + r) * tw + q], ==,
                                 whole->data[c * plane + (y + r) * dest->width + x + q]);
      }
}

/* The grown mask of a tile read with the reach around it equals the whole's. */
static void
test_grow_tiles (void)
{
  g_autoptr (VaeTensor) mask = golden ("mask.inpaint");
  g_autoptr (VaeTensor) whole = vae_inpaint_grow (mask, 6, NULL);
  gint before, after;

  vae_inpaint_grow_reach (6, &before, &after);
  g_assert_cmpint (before, ==, 3);
  g_assert_cmpint (after, ==, 2);
  for (gint y = 0; y < mask->height; y += 9)
    for (gint x = 0; x < mask->width; x += 13)
      {
        const gint th = MIN (9, mask->height - y), tw = MIN (13, mask->width - x);
        const gint ph = th + before + after, pw = tw + before + after;
        g_autoptr (VaeTensor) part = vae_tensor_new (1, ph, pw, NULL);
        g_autoptr (VaeTensor) grown = NULL;

        for (gint r = 0; r < ph; r++)
          for (gint q = 0; q < pw; q++)
            {
              const gint my = y - before + r, mx = x - before + q;
              part->data[r * pw + q] = my >= 0 && mx >= 0 && my < mask->height && mx < mask->width
                                           ? mask->data[my * mask->width + mx]
                                           : 0.0f;
            }
        grown = vae_inpaint_grow (part, 6, NULL);
        for (gint r = 0; r < th; r++)
          for (gint q = 0; q < tw; q++)
            g_assert_cmpfloat (grown->data[(r + before) * pw + q + before], ==,
                               whole->data[(y + r) * mask->width + x + q]);
      }
}

/* The sampler's masked start: noisy where the mask is 1, clean where 0. */
static void
test_mask_noise (void)
{
  gfloat       noisy[] = { 1, 2, 3, 4, 5, 6 };
  const gfloat clean[] = { -1, -2, -3, -4, -5, -6 };
  const gfloat mask[] = { 1.0f, 0.0f, 0.25f };

  vae_latent_mask_noise (noisy, clean, mask, 3, 2);
  g_assert_cmpfloat (noisy[0], ==, 1);
  g_assert_cmpfloat (noisy[1], ==, 2);
  g_assert_cmpfloat (noisy[2], ==, -3);
  g_assert_cmpfloat (noisy[3], ==, -4);
  g_assert_cmpfloat (noisy[4], ==, 5 * 0.25f + -5 * 0.75f);
  g_assert_cmpfloat (noisy[5], ==, 6 * 0.25f + -6 * 0.75f);
}

/* LatentUpscale's sizes: one side 0 keeps the aspect (Python's round). */
static void
test_scaled_size (void)
{
  g_autoptr (GError) error = NULL;
  gint w, h;

  g_assert_true (vae_latent_scaled_size (13, 9, NAN, 20, 0, &w, &h, &error));
  g_assert_cmpint (w, ==, 20);
  g_assert_cmpint (h, ==, 14); /* 9·20/13 = 13.85 */
  g_assert_true (vae_latent_scaled_size (12, 10, NAN, 0, 5, &w, &h, &error));
  g_assert_cmpint (w, ==, 6);
  g_assert_true (vae_latent_scaled_size (10, 4, NAN, 0, 1, &w, &h, &error));
  g_assert_cmpint (w, ==, 2); /* 2.5: halves to even */
  g_assert_true (vae_latent_scaled_size (10, 4, NAN, 7, 3, &w, &h, &error));
  g_assert_cmpint (w, ==, 7);
  g_assert_cmpint (h, ==, 3);
  g_assert_true (vae_latent_scaled_size (5, 3, 1.5, 0, 0, &w, &h, &error));
  g_assert_cmpint (w, ==, 8); /* 7.5 → 8 */
  g_assert_cmpint (h, ==, 4); /* 4.5 → 4 */
  g_assert_no_error (error);
}

/* Each tile of a transform is the transform of the rectangle
 * vae_latent_transform_source names (vae:latent-transform's chunks). */
static void
test_transform_tiles (void)
{
  g_autoptr (VaeTensor) a = golden ("a.c4");

  for (gint how = VAE_TRANSFORM_FLIP_HORIZONTAL; how <= VAE_TRANSFORM_TRANSPOSE; how++)
    {
      g_autoptr (VaeTensor) whole = vae_latent_transform (a, how, NULL);

      for (gint y = 0; y < whole->height; y += 4)
        for (gint x = 0; x < whole->width; x += 3)
          {
            const VaeRect area = { x, y, MIN (3, whole->width - x), MIN (4, whole->height - y) };
            const VaeRect src = vae_latent_transform_source (how, a->width, a->height, &area);
            g_autoptr (VaeTensor) part = vae_tensor_new (4, src.height, src.width, NULL);
            g_autoptr (VaeTensor) tile = NULL;

            for (gint c = 0; c < 4; c++)
              for (gint r = 0; r < src.height; r++)
                memcpy (part->data + ((gsize) c * src.height + r) * src.width,
                        a->data + ((gsize) c * a->height + src.y + r) * a->width + src.x,
                        src.width * sizeof (gfloat));
            tile = vae_latent_transform (part, how, NULL);
            g_assert_cmpint (tile->width, ==, area.width);
            g_assert_cmpint (tile->height, ==, area.height);
            for (gint c = 0; c < 4; c++)
              for (gint r = 0; r < area.height; r++)
                for (gint q = 0; q < area.width; q++)
                  g_assert_cmpfloat (
                      tile->data[((gsize) c * area.height + r) * area.width + q], ==,
                      whole->data[((gsize) c * whole->height + y + r) * whole->width + x + q]);
          }
    }
}

static void
test_errors (void)
{
  g_autoptr (VaeTensor) a = vae_tensor_new (4, 3, 5, NULL);
  g_autoptr (VaeTensor) b = vae_tensor_new (16, 3, 5, NULL);
  g_autoptr (VaeTensor) small = vae_tensor_new (4, 2, 5, NULL);
  g_autoptr (VaeTensor) rgb = vae_tensor_new (3, 3, 5, NULL);
  g_autoptr (VaeTensor) mask = vae_tensor_new (1, 2, 5, NULL);
  const VaeComposite where = { 5, 3, 0, 0, 5, 3, 0 };
  const VaeComposite negative = { 5, 3, -1, 0, 5, 3, 0 };
  const VaeRect      all = { 0, 0, 2, 2 };
  const VaeMaskGrid  grid = { 5, 3, 5, 3, 2, 2 };
  const gdouble      bad_factors[] = { 0.0, -1.5, NAN, INFINITY };
  GError            *error = NULL;
  gint               w, h;

  for (guint i = 0; i < G_N_ELEMENTS (bad_factors); i++)
    {
      g_assert_false (vae_latent_scaled_size (5, 3, bad_factors[i], 0, 0, &w, &h, &error));
      test_assert_error (error, "the scale factor must be a positive number");
      g_clear_error (&error);
    }
  g_assert_false (vae_latent_scaled_size (5, 3, 1e-3, 0, 0, &w, &h, &error));
  test_assert_error (error, "out of range");
  g_clear_error (&error);
  g_assert_false (vae_latent_scaled_size (50000, 3, 2.0, 0, 0, &w, &h, &error));
  test_assert_error (error, "out of range");
  g_clear_error (&error);
  g_assert_false (vae_latent_scaled_size (5, 3, 1.0, -2, 0, &w, &h, &error));
  test_assert_error (error, "must not be negative (-2×0)");
  g_clear_error (&error);
  g_assert_null (vae_latent_scale (a, 0, 4, VAE_SCALE_BILINEAR, FALSE, &error));
  test_assert_error (error, "out of range");
  g_clear_error (&error);
  g_assert_false (vae_latent_composite (a, 0, 0, b, 0, 0, &where, &error));
  test_assert_error (error, "the latent to place has 16 channels but the latent has 4");
  g_clear_error (&error);
  g_assert_false (vae_latent_composite (a, 0, 0, a, 0, 0, &negative, &error));
  test_assert_error (error, "must not be negative");
  g_clear_error (&error);
  g_assert_false (vae_latent_blend (a, b, VAE_BLEND_LERP, 0.5, &error));
  test_assert_error (error, "the second latent has 16 channels but the latent has 4");
  g_clear_error (&error);
  g_assert_false (vae_latent_blend (a, small, VAE_BLEND_ADD, 1.0, &error));
  test_assert_error (error, "the second latent is 5×2 but the first latent is 5×3");
  g_clear_error (&error);
  g_assert_false (vae_latent_blend (a, a, VAE_BLEND_SLERP, NAN, &error));
  test_assert_error (error, "the blend factor must be a number");
  g_clear_error (&error);
  g_assert_null (vae_mask_resize (rgb, 0, 0, &grid, &all, &error));
  test_assert_error (error, "a mask has 1 channel, not 3");
  g_clear_error (&error);
  g_assert_null (vae_inpaint_grow (rgb, 2, &error));
  test_assert_error (error, "a mask has 1 channel, not 3");
  g_clear_error (&error);
  g_assert_null (vae_inpaint_grow (mask, -1, &error));
  test_assert_error (error, "a mask cannot grow by -1 pixels");
  g_clear_error (&error);
  g_assert_false (vae_inpaint_fill (rgb, a, &error));
  test_assert_error (error, "a mask has 1 channel, not 4");
  g_clear_error (&error);
  g_assert_false (vae_inpaint_fill (rgb, mask, &error));
  test_assert_error (error, "the mask is 5×2 but the picture is 5×3");
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_autofree gchar *path = test_data_path ("latent-ops", "goldens.safetensors", NULL);
  g_autofree gchar *list = test_data_path ("latent-ops", "cases.json", NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  JsonArray *cases;
  int        status;

  g_test_init (&argc, &argv, NULL);
  goldens = vae_weights_load (path, &error);
  g_assert_no_error (error);
  json_parser_load_from_file (parser, list, &error);
  g_assert_no_error (error);
  cases = json_node_get_array (json_parser_get_root (parser));
  for (guint i = 0; i < json_array_get_length (cases); i++)
    {
      JsonObject       *c = json_array_get_object_element (cases, i);
      g_autofree gchar *name = NULL;

      if (json_object_has_member (c, "want"))
        name = g_strdup_printf ("/latent-ops/%s/%s", member (c, "op"), member (c, "want"));
      else
        name = g_strdup_printf ("/latent-ops/%s/%dx%d", member (c, "op"), int_member (c, "width"),
                                int_member (c, "height"));
      if (g_hash_table_contains (seen, name))
        continue;
      g_hash_table_add (seen, g_strdup (name));
      g_test_add_data_func (name, c, test_case);
    }
  g_test_add_func ("/latent-ops/scaled-size", test_scaled_size);
  g_test_add_func ("/latent-ops/transform-tiles", test_transform_tiles);
  g_test_add_func ("/latent-ops/mask-tiles", test_mask_tiles);
  g_test_add_func ("/latent-ops/composite-tiles", test_composite_tiles);
  g_test_add_func ("/latent-ops/grow-tiles", test_grow_tiles);
  g_test_add_func ("/latent-ops/mask-noise", test_mask_noise);
  g_test_add_func ("/latent-ops/errors", test_errors);
  status = g_test_run ();
  vae_weights_free (goldens);
  return status;
}
