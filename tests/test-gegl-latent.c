/* The latent toolbox's GEGL operations (vae:latent-scale, -transform,
 * -composite, -blend, vae:inpaint-mask, and the masks of vae:latent-noise
 * and vae:encode) in GEGL graphs, in process:
 *   - each op on the goldens of tests/data/latent-ops (ComfyUI's formulas in
 *     PyTorch) with the tolerances of test-latent-ops (1e-5 relative for
 *     bislerp and slerp, 1e-6 for the rest), its buffers placed off the
 *     origin;
 *   - run twice, one thread in one chunk and four threads in chunks of 16
 *     pixels: every value identical (chunking and threads change nothing);
 *   - GEGL's own ops that carry a latent (crop, translate by whole pixels,
 *     nop, clone) keep it, and ops that convert it are refused;
 *   - bad input is an error in the op's `error` property and one warning,
 *     not repeated when the graph runs again.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include "test-gegl-util.h"

#include <gegl.h>
#include <math.h>
#include <string.h>

static VaeWeights *goldens;

static VaeTensor *
golden (const gchar *name)
{
  return test_weights_tensor (goldens, name);
}

static const Babl *
latent_format (gint channels)
{
  return babl_format_n (babl_type ("float"), channels);
}

/* A GEGL buffer holding T at (X, Y): a latent, or with FORMAT "Y float" a
 * mask, "R'G'B'A float" a picture (alpha 1). */
static GeglBuffer *
buffer_of (const VaeTensor *t, gint x, gint y, const Babl *format)
{
  const GeglRectangle rect = { x, y, t->width, t->height };
  const gint          n = babl_format_get_n_components (format);
  const gsize         plane = (gsize) t->width * t->height;
  GeglBuffer         *buffer = gegl_buffer_new (&rect, format);
  g_autofree gfloat  *pixels = g_new0 (gfloat, plane * n);

  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < n; c++)
      pixels[i * n + c] = c < t->channels ? t->data[c * plane + i] : 1.0f;
  gegl_buffer_set (buffer, &rect, 0, format, pixels, GEGL_AUTO_ROWSTRIDE);
  return buffer;
}

static GeglNode *
source (GeglNode *graph, GeglBuffer *buffer)
{
  return gegl_node_new_child (graph, "operation", "gegl:buffer-source", "buffer", buffer, NULL);
}

/* NODE's output over its box, processed by a GeglProcessor in chunks of
 * CHUNK pixels on THREADS threads, as a planar tensor of CHANNELS (the
 * latent format; 1: "Y float"); *BOX receives the box. */
static VaeTensor *
render (GeglNode *node, gint channels, gint threads, gint chunk, GeglRectangle *box)
{
  const Babl        *format = channels == 1 ? babl_format ("Y float") : latent_format (channels);
  GeglBuffer        *out;
  GeglNode          *sink;
  GeglProcessor     *processor;
  VaeTensor         *t;
  g_autofree gfloat *pixels = NULL;
  gsize              plane;

  g_object_set (gegl_config (), "threads", threads, "chunk-size", chunk, NULL);
  *box = gegl_node_get_bounding_box (node);
  out = gegl_buffer_new (box, format);
  sink = gegl_node_new_child (gegl_node_get_parent (node), "operation", "gegl:write-buffer",
                              "buffer", out, NULL);
  gegl_node_link (node, sink);
  processor = gegl_node_new_processor (sink, box);
  while (gegl_processor_work (processor, NULL))
    ;
  g_object_unref (processor);
  t = vae_tensor_new (channels, MAX (box->height, 1), MAX (box->width, 1), NULL);
  plane = (gsize) box->width * box->height;
  pixels = g_new0 (gfloat, MAX (plane, 1) * channels);
  gegl_buffer_get (out, box, 1.0, format, pixels, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < channels; c++)
      t->data[c * plane + i] = pixels[i * channels + c];
  g_object_unref (out);
  return t;
}

/* A graph ending in the node it returns (*GRAPH owns everything). */
typedef GeglNode *(*BuildFunc) (GeglNode *graph, gconstpointer data);

/* BUILD's output rendered in one chunk on one thread and in 16-pixel
 * chunks on four: asserts both identical and their box at the input's
 * corner (ORIGIN), and returns the first. */
static VaeTensor *
render_both_ways (BuildFunc build, gconstpointer data, gint channels, const GeglRectangle *origin)
{
  g_autoptr (VaeTensor) many = NULL;
  GeglNode     *graph1 = gegl_node_new (), *graph2 = gegl_node_new ();
  GeglRectangle box1, box2;
  VaeTensor    *one = render (build (graph1, data), channels, 1, 1 << 24, &box1);

  many = render (build (graph2, data), channels, 4, 16, &box2);
  g_assert_cmpint (box1.x, ==, origin->x);
  g_assert_cmpint (box1.y, ==, origin->y);
  g_assert_true (gegl_rectangle_equal (&box1, &box2));
  g_assert_cmpfloat (test_max_abs_error (one, many), ==, 0.0);
  g_object_unref (graph1);
  g_object_unref (graph2);
  return one;
}

/* ---- each op against its goldens --------------------------------------- */

typedef struct
{
  const gchar *op, *input, *aux, *want;
  const gchar *enum_name, *enum_nick;
  const gchar *property[3];
  gdouble      value[3];
  gdouble      tol;
} OpCase;

#define INPUT_X 3
#define INPUT_Y (-2)

static GeglNode *
build_op (GeglNode *graph, gconstpointer data)
{
  const OpCase *c = data;
  g_autoptr (VaeTensor) in = golden (c->input);
  GeglBuffer *b = buffer_of (in, INPUT_X, INPUT_Y, latent_format (in->channels));
  GeglNode   *op = gegl_node_new_child (graph, "operation", c->op, NULL);

  gegl_node_link (source (graph, b), op);
  g_object_unref (b);
  if (c->aux)
    {
      g_autoptr (VaeTensor) aux = golden (c->aux);
      GeglBuffer *ab = buffer_of (aux, -5, 4, latent_format (aux->channels));
      test_connect (source (graph, ab), op, "aux");
      g_object_unref (ab);
    }
  if (c->enum_name)
    test_set_enum (op, c->enum_name, c->enum_nick);
  for (gint i = 0; i < 3 && c->property[i]; i++)
    {
      GParamSpec *pspec = gegl_node_find_property (op, c->property[i]);
      g_assert_nonnull (pspec);
      if (G_PARAM_SPEC_VALUE_TYPE (pspec) == G_TYPE_DOUBLE)
        gegl_node_set (op, c->property[i], c->value[i], NULL);
      else if (G_PARAM_SPEC_VALUE_TYPE (pspec) == G_TYPE_BOOLEAN)
        gegl_node_set (op, c->property[i], c->value[i] != 0, NULL);
      else
        gegl_node_set (op, c->property[i], (gint) c->value[i], NULL);
    }
  return op;
}

static void
test_op (gconstpointer data)
{
  const OpCase       *c = data;
  const GeglRectangle origin = { INPUT_X, INPUT_Y, 0, 0 };
  g_autoptr (VaeTensor) want = golden (c->want);
  g_autoptr (VaeTensor) got = render_both_ways (build_op, c, want->channels, &origin);

  test_assert_close (got, want, c->tol, c->want);
}

/* clang-format off */
static const OpCase op_cases[] = {
  { "vae:latent-scale", "a.c16", NULL, "scale.nearest-exact.c16.up", "method", "nearest-exact",
    { "factor" }, { 1.5 }, 1e-6 },
  { "vae:latent-scale", "a.c16", NULL, "scale.bilinear.c16.up", "method", "bilinear",
    { "factor" }, { 1.5 }, 1e-6 },
  { "vae:latent-scale", "a.c16", NULL, "scale.area.c16.up", "method", "area",
    { "factor" }, { 1.5 }, 1e-6 },
  { "vae:latent-scale", "a.c16", NULL, "scale.bicubic.c16.up", "method", "bicubic",
    { "factor" }, { 1.5 }, 1e-6 },
  { "vae:latent-scale", "a.c16", NULL, "scale.bislerp.c16.up", "method", "bislerp",
    { "factor" }, { 1.5 }, 1e-5 },
  { "vae:latent-scale", "a.c4", NULL, "scale.bislerp.c4.mixed", "method", "bislerp",
    { "width", "height" }, { 27, 4 }, 1e-5 },
  { "vae:latent-scale", "a.c32", NULL, "scale.bicubic.c32.crop", "method", "bicubic",
    { "width", "height", "crop" }, { 5, 17, 1 }, 1e-6 },
  { "vae:latent-transform", "a.c32", NULL, "transform.flip-horizontal.c32", "transform",
    "flip-horizontal", { NULL }, { 0 }, 0 },
  { "vae:latent-transform", "a.c32", NULL, "transform.flip-vertical.c32", "transform",
    "flip-vertical", { NULL }, { 0 }, 0 },
  { "vae:latent-transform", "a.c32", NULL, "transform.rotate-90.c32", "transform", "rotate-90",
    { NULL }, { 0 }, 0 },
  { "vae:latent-transform", "a.c32", NULL, "transform.rotate-180.c32", "transform", "rotate-180",
    { NULL }, { 0 }, 0 },
  { "vae:latent-transform", "a.c32", NULL, "transform.rotate-270.c32", "transform", "rotate-270",
    { NULL }, { 0 }, 0 },
  { "vae:latent-transform", "a.c32", NULL, "transform.transpose.c32", "transform", "transpose",
    { NULL }, { 0 }, 0 },
  { "vae:latent-composite", "a.c16", "src.c16", "composite.2.1.2.c16", NULL, NULL,
    { "x", "y", "feather" }, { 2, 1, 2 }, 1e-6 },
  { "vae:latent-composite", "a.c16", "src.c16", "composite.2.1.2.c16", "units", "image",
    { "x", "y", "feather" }, { 16 + 7, 8, 16 }, 1e-6 }, /* ComfyUI's // 8 */
  { "vae:latent-composite", "a.c4", "src.c4", "composite.10.7.3.c4", NULL, NULL,
    { "x", "y", "feather" }, { 10, 7, 3 }, 1e-6 },
  { "vae:latent-composite", "a.c128", "src.c128", "composite.1.2.11.c128", NULL, NULL,
    { "x", "y", "feather" }, { 1, 2, 11 }, 1e-6 },
  { "vae:latent-blend", "a.c4", "b.c4", "blend.lerp.0.3.c4", "mode", "lerp",
    { "factor" }, { 0.3 }, 1e-6 },
  { "vae:latent-blend", "a.c4", "b.c4", "blend.slerp.0.3.c4", "mode", "slerp",
    { "factor" }, { 0.3 }, 1e-5 },
  { "vae:latent-blend", "a.c128", "b.c128", "blend.slerp.0.8.c128", "mode", "slerp",
    { "factor" }, { 0.8 }, 1e-5 },
  { "vae:latent-blend", "a.c16", "b.c16", "blend.add.0.5.c16", "mode", "add",
    { "factor" }, { 0.5 }, 1e-6 },
  { "vae:latent-blend", "a.c32", "b.c32", "blend.subtract.1.0.c32", "mode", "subtract",
    { "factor" }, { 1.0 }, 1e-6 },
  { "vae:latent-blend", "a.c16", NULL, "blend.multiply.1.7.c16", "mode", "multiply",
    { "factor" }, { 1.7 }, 1e-6 },
};
/* clang-format on */

/* vae:inpaint-mask on masks whose grown pixels reach their edges (outside
 * counts 0, as conv2d's padding). */
static GeglNode *
build_grow (GeglNode *graph, gconstpointer data)
{
  const gchar *const *c = data;
  g_autoptr (VaeTensor) mask = golden (c[0]);
  GeglBuffer *b = buffer_of (mask, INPUT_X, INPUT_Y, babl_format ("Y float"));
  GeglNode   *op =
      gegl_node_new_child (graph, "operation", "vae:inpaint-mask", "grow", atoi (c[1]), NULL);

  gegl_node_link (source (graph, b), op);
  g_object_unref (b);
  return op;
}

static void
test_grow (gconstpointer data)
{
  const gchar *const *c = data;
  const GeglRectangle origin = { INPUT_X, INPUT_Y, 0, 0 };
  g_autoptr (VaeTensor) want = golden (c[2]);
  g_autoptr (VaeTensor) got = render_both_ways (build_grow, c, 1, &origin);

  test_assert_close (got, want, 0.0, c[2]);
}

static const gchar *const grow_cases[][3] = {
  { "mask.inpaint", "6", "grow.6" },
  { "mask.inpaint", "3", "grow.3" },
  { "mask.soft", "6", "grow.6.odd" },
};

/* vae:latent-noise with mask.soft (53×37) on a 7×5 latent: noise where the
 * mask, resized bilinearly to the latent (stretched, or padded to 56×40 as
 * vae:encode pads a picture for factor 8: the goldens
 * mask-to-latent.mask.soft.5x7 and mask-to-latent.padded.8), is:
 * x_t·m + x0·(1 − m), x_t as vae_add_noise makes it. */
typedef struct
{
  const gchar *rng;
  gint         factor;
  const gchar *mask;
} NoiseCase;

static GeglNode *
build_masked_noise (GeglNode *graph, gconstpointer data)
{
  const NoiseCase *c = data;
  g_autoptr (VaeTensor) latent = golden ("a.c128");
  g_autoptr (VaeTensor) mask = golden ("mask.soft");
  GeglBuffer *b = buffer_of (latent, INPUT_X, INPUT_Y, latent_format (latent->channels));
  GeglBuffer *mb = buffer_of (mask, -9, 11, babl_format ("Y float"));
  GeglNode   *op = gegl_node_new_child (graph, "operation", "vae:latent-noise", "timestep", 600,
                                        "seed", 42, "factor", c->factor, NULL);

  test_set_enum (op, "rng", c->rng);
  test_set_enum (op, "schedule", "sd-scaled-linear");
  gegl_node_link (source (graph, b), op);
  test_connect (source (graph, mb), op, "aux");
  g_object_unref (b);
  g_object_unref (mb);
  return op;
}

static void
test_masked_noise (gconstpointer data)
{
  const NoiseCase    *c = data;
  const GeglRectangle origin = { INPUT_X, INPUT_Y, 0, 0 };
  g_autoptr (VaeTensor) clean = golden ("a.c128");
  g_autoptr (VaeTensor) want = golden ("a.c128");
  g_autoptr (VaeTensor) m = golden (c->mask);
  g_autoptr (VaeTensor) got = render_both_ways (build_masked_noise, c, 128, &origin);
  g_autoptr (GError) error = NULL;
  const gsize plane = (gsize) want->width * want->height;

  g_assert_true (vae_add_noise (want, VAE_SCHEDULE_SD_SCALED_LINEAR, 600, VAE_FORM_DIFFUSERS,
                                strcmp (c->rng, "philox") == 0 ? VAE_RNG_PHILOX : VAE_RNG_TORCH_CPU,
                                42, &error));
  g_assert_no_error (error);
  for (gint ch = 0; ch < want->channels; ch++)
    for (gsize i = 0; i < plane; i++)
      want->data[ch * plane + i] =
          want->data[ch * plane + i] * m->data[i] + clean->data[ch * plane + i] * (1 - m->data[i]);
  /* the noise as vae_add_noise computes it (test-gegl's noise-matches-core) */
  test_assert_close (got, want, 1e-6, c->mask);
}

static const NoiseCase noise_cases[] = {
  { "philox", 0, "mask-to-latent.mask.soft.5x7" },
  { "torch-cpu", 0, "mask-to-latent.mask.soft.5x7" },
  { "philox", 8, "mask-to-latent.padded.8" },
};

/* vae:encode with mask.inpaint on aux encodes the picture grey-filled as
 * VAEEncodeForInpaint fills it (the golden "fill"). */
typedef struct
{
  const gchar *picture, *mask;
} EncodeCase;

static GeglNode *
build_encode (GeglNode *graph, gconstpointer data)
{
  const EncodeCase *c = data;
  g_autofree gchar *model = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autoptr (VaeTensor) picture = golden (c->picture);
  GeglBuffer *b = buffer_of (picture, 0, 0, babl_format ("R'G'B'A float"));
  GeglNode   *op = gegl_node_new_child (graph, "operation", "vae:encode", "model", model, NULL);

  test_set_enum (op, "backend", "cpu");
  gegl_node_link (source (graph, b), op);
  g_object_unref (b);
  if (c->mask)
    {
      g_autoptr (VaeTensor) mask = golden (c->mask);
      GeglBuffer *mb = buffer_of (mask, 0, 0, babl_format ("Y float"));
      test_connect (source (graph, mb), op, "aux");
      g_object_unref (mb);
    }
  return op;
}

static void
test_encode_fill (void)
{
  static const EncodeCase masked = { "picture", "mask.inpaint" }, filled = { "fill", NULL },
                          plain = { "picture", NULL };
  const GeglRectangle origin = { 0, 0, 0, 0 };
  g_autoptr (VaeTensor) a = render_both_ways (build_encode, &masked, 4, &origin);
  g_autoptr (VaeTensor) b = render_both_ways (build_encode, &filled, 4, &origin);
  g_autoptr (VaeTensor) c = render_both_ways (build_encode, &plain, 4, &origin);

  /* the same picture through the same encoder: the same bits */
  g_assert_cmpfloat (test_max_abs_error (a, b), ==, 0.0);
  /* and the fill changed it */
  g_test_message ("max |masked − unmasked| = %g", test_max_abs_error (a, c));
  g_assert_cmpfloat (test_max_abs_error (a, c), >, 0.01);
}

/* ---- GEGL's ops that carry a latent ------------------------------------ */

/* Warnings of our ops, counted (GEGL's own still print). */
static guint  warnings;
static gchar *last_warning;

static void
count_warning (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
  warnings++;
  g_free (last_warning);
  last_warning = g_strdup (message);
}

/* LATENT (a.c16 at INPUT_X, INPUT_Y) through the GEGL op OP (and its
 * property settings), then vae:latent-blend mode=multiply factor=1, which
 * refuses anything but a latent. */
static VaeTensor *
through (const gchar *op, GeglRectangle *box, gchar **error, ...)
{
  g_autoptr (VaeTensor) latent = golden ("a.c16");
  GeglBuffer *b = buffer_of (latent, INPUT_X, INPUT_Y, latent_format (16));
  GeglNode   *graph = gegl_node_new ();
  GeglNode   *node = gegl_node_new_child (graph, "operation", op, NULL);
  GeglNode   *check =
      gegl_node_new_child (graph, "operation", "vae:latent-blend", "factor", 1.0, NULL);
  VaeTensor   *out;
  const gchar *first;
  va_list      args;

  va_start (args, error);
  first = va_arg (args, const gchar *);
  if (first)
    gegl_node_set_valist (node, first, args);
  va_end (args);
  test_set_enum (check, "mode", "multiply");
  gegl_node_link_many (source (graph, b), node, check, NULL);
  out = render (check, 16, 2, 64, box);
  gegl_node_get (check, "error", error, NULL);
  g_object_unref (graph);
  g_object_unref (b);
  return out;
}

/* OUT equals a.c16's rectangle at (X, Y) (its own coordinates) exactly. */
static void
assert_window (const VaeTensor *out, gint x, gint y)
{
  g_autoptr (VaeTensor) latent = golden ("a.c16");

  for (gint c = 0; c < 16; c++)
    for (gint r = 0; r < out->height; r++)
      for (gint q = 0; q < out->width; q++)
        g_assert_cmpfloat (
            out->data[((gsize) c * out->height + r) * out->width + q], ==,
            latent->data[((gsize) c * latent->height + y + r) * latent->width + x + q]);
}

static void
test_carried (void)
{
  g_autoptr (VaeTensor) cropped = NULL;
  g_autoptr (VaeTensor) moved = NULL;
  g_autoptr (VaeTensor) same = NULL;
  g_autoptr (VaeTensor) cloned = NULL;
  g_autofree gchar *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
  GeglRectangle     box;

  /* a.c16 is 10×7 at (3, −2) */
  cropped =
      through ("gegl:crop", &box, &e1, "x", 5.0, "y", -1.0, "width", 6.0, "height", 4.0, NULL);
  g_assert_cmpstr (e1, ==, "");
  g_assert_true (gegl_rectangle_equal (&box, GEGL_RECTANGLE (5, -1, 6, 4)));
  assert_window (cropped, 2, 1);
  moved = through ("gegl:translate", &box, &e2, "x", 4.0, "y", -3.0, NULL);
  g_assert_cmpstr (e2, ==, "");
  g_assert_true (gegl_rectangle_equal (&box, GEGL_RECTANGLE (7, -5, 10, 7)));
  assert_window (moved, 0, 0);
  same = through ("gegl:nop", &box, &e3, NULL);
  g_assert_cmpstr (e3, ==, "");
  assert_window (same, 0, 0);
  cloned = through ("gegl:clone", &box, &e4, NULL);
  g_assert_cmpstr (e4, ==, "");
  assert_window (cloned, 0, 0);
}

/* Ops that convert a latent to RGBA or Y: the next vae: op refuses it. */
static void
test_refused (gconstpointer op)
{
  g_autoptr (VaeTensor) out = NULL;
  g_autofree gchar *error = NULL;
  GeglRectangle     box;

  const GLogLevelFlags fatal = g_log_set_always_fatal (G_LOG_FATAL_MASK);
  const guint id = g_log_set_handler ("gegl-vae", G_LOG_LEVEL_WARNING, count_warning, NULL);

  warnings = 0;
  if (strcmp (op, "gegl:gaussian-blur") == 0)
    out = through (op, &box, &error, "std-dev-x", 2.0, "std-dev-y", 2.0, NULL);
  else if (strcmp (op, "gegl:rotate") == 0)
    out = through (op, &box, &error, "degrees", 90.0, NULL);
  else
    out = through (op, &box, &error, "x", 2.0, "y", 2.0, NULL);
  g_log_remove_handler ("gegl-vae", id);
  g_log_set_always_fatal (fatal);
  g_test_message ("%s: %s", (const gchar *) op, error);
  g_assert_cmpuint (warnings, ==, 1);
  g_assert_nonnull (strstr (error, "the input is "));
  g_assert_nonnull (strstr (error, ", not a latent (connect vae:encode)"));
  g_assert_cmpint (box.width, ==, 0);
}

/* ---- bad input ------------------------------------------------------------ */

typedef struct
{
  const gchar *op;
  const gchar *input, *aux; /* goldens; "picture" and masks as images */
  const gchar *property;    /* a double, set to VALUE */
  gdouble      value;
  const gchar *message;
} BadCase;

static GeglBuffer *
bad_buffer (const gchar *name)
{
  g_autoptr (VaeTensor) t = golden (name);
  const Babl *format = g_str_has_prefix (name, "mask")      ? babl_format ("Y float")
                       : g_str_has_prefix (name, "picture") ? babl_format ("R'G'B'A float")
                                                            : latent_format (t->channels);
  return buffer_of (t, 0, 0, format);
}

/* The op refuses BadCase's input: its error property says so, one warning
 * (none more on a second run), and its output is empty. */
static void
test_bad (gconstpointer data)
{
  const BadCase    *c = data;
  g_autofree gchar *model = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  GeglNode         *graph = gegl_node_new ();
  GeglNode         *op = gegl_node_new_child (graph, "operation", c->op, NULL);
  GeglBuffer       *in = bad_buffer (c->input);
  g_autoptr (VaeTensor) out = NULL;
  g_autofree gchar *error = NULL;
  GeglRectangle     box;
  GLogLevelFlags    fatal;
  guint             id;

  if (gegl_node_find_property (op, "model"))
    gegl_node_set (op, "model", model, NULL);
  if (c->property)
    gegl_node_set (op, c->property, c->value, NULL);
  gegl_node_link (source (graph, in), op);
  if (c->aux)
    {
      GeglBuffer *aux = bad_buffer (c->aux);
      test_connect (source (graph, aux), op, "aux");
      g_object_unref (aux);
    }
  warnings = 0;
  fatal = g_log_set_always_fatal (G_LOG_FATAL_MASK); /* GEGL's note on an empty output */
  id = g_log_set_handler ("gegl-vae", G_LOG_LEVEL_WARNING, count_warning, NULL);
  out = render (op, 1, 1, 1 << 24, &box);
  g_assert_cmpuint (warnings, ==, 1);
  g_clear_pointer (&out, vae_tensor_free);
  out = render (op, 1, 2, 16, &box); /* the same error again: no second warning */
  g_log_remove_handler ("gegl-vae", id);
  g_log_set_always_fatal (fatal);
  gegl_node_get (op, "error", &error, NULL);
  g_test_message ("%s: %s", c->op, error);
  g_assert_nonnull (strstr (error, c->message));
  g_assert_cmpint (box.width, ==, 0);
  g_assert_cmpuint (warnings, ==, 1);
  g_assert_true (g_str_has_prefix (last_warning, c->op));
  g_assert_nonnull (strstr (last_warning, c->message));
  g_object_unref (in);
  g_object_unref (graph);
}

static const BadCase bad_cases[] = {
  { "vae:latent-blend", "a.c4", "a.c16", NULL, 0, "aux has 16 channels but the input has 4" },
  { "vae:latent-composite", "a.c4", "a.c16", NULL, 0, "aux has 16 channels but the input has 4" },
  { "vae:latent-blend", "a.c4", "src.c4", NULL, 0, "aux is 7×6 but the input is 13×9" },
  { "vae:latent-scale", "a.c4", NULL, "factor", 0.0,
    "the scale factor must be a positive number, not 0" },
  { "vae:latent-noise", "a.c16", "a.c16", NULL, 0,
    "the mask on aux is a latent (16 channels), not an image" },
  { "vae:encode", "picture", "a.c16", NULL, 0,
    "the mask on aux is a latent (16 channels), not an image" },
  { "vae:inpaint-mask", "a.c16", NULL, NULL, 0,
    "the mask on input is a latent (16 channels), not an image" },
  { "vae:latent-transform", "picture", NULL, NULL, 0, "the input is R'G'B'A float, not a latent" },
};

/* A factor of NaN never reaches an op: GObject refuses it (its warning
 * names the property) and the factor keeps its value.  (Core refuses NaN
 * too: test-latent-ops /latent-ops/errors.) */
static void
test_nan_factor (gconstpointer op)
{
  GeglNode *graph = gegl_node_new ();
  GeglNode *node = gegl_node_new_child (graph, "operation", op, "factor", 0.75, NULL);
  gdouble   factor = 0;

  g_test_expect_message ("GLib-GObject", G_LOG_LEVEL_WARNING,
                         "*value \"nan\"*invalid or out of range for property 'factor'*");
  gegl_node_set (node, "factor", (gdouble) NAN, NULL);
  g_test_assert_expected_messages ();
  gegl_node_get (node, "factor", &factor, NULL);
  g_assert_cmpfloat (factor, ==, 0.75);
  g_object_unref (graph);
}

int
main (int argc, char **argv)
{
  g_autofree gchar *path = test_data_path ("latent-ops", "goldens.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  int status;

  g_setenv ("GEGL_PATH", GEGL_MODULE_DIR ":" GEGL_SYSTEM_PLUGINS, TRUE);
  g_test_init (&argc, &argv, NULL);
  gegl_init (&argc, &argv);
  goldens = vae_weights_load (path, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (op_cases); i++)
    {
      g_autofree gchar *name =
          g_strdup_printf ("/gegl-latent/%s/%s", op_cases[i].op + 4, op_cases[i].want);
      if (op_cases[i].enum_name && strcmp (op_cases[i].enum_name, "units") == 0)
        name = (g_free (name), g_strdup_printf ("/gegl-latent/latent-composite/image-units"));
      g_test_add_data_func (name, &op_cases[i], test_op);
    }
  for (guint i = 0; i < G_N_ELEMENTS (grow_cases); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("/gegl-latent/inpaint-mask/%s", grow_cases[i][2]);
      g_test_add_data_func (name, grow_cases[i], test_grow);
    }
  for (guint i = 0; i < G_N_ELEMENTS (noise_cases); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("/gegl-latent/latent-noise/mask/%s/factor-%d",
                                                noise_cases[i].rng, noise_cases[i].factor);
      g_test_add_data_func (name, &noise_cases[i], test_masked_noise);
    }
  g_test_add_func ("/gegl-latent/encode/mask-fill", test_encode_fill);
  g_test_add_func ("/gegl-latent/carried", test_carried);
  g_test_add_data_func ("/gegl-latent/refused/gaussian-blur", "gegl:gaussian-blur", test_refused);
  g_test_add_data_func ("/gegl-latent/refused/rotate", "gegl:rotate", test_refused);
  g_test_add_data_func ("/gegl-latent/refused/scale-ratio", "gegl:scale-ratio", test_refused);
  g_test_add_data_func ("/gegl-latent/bad/nan-factor/latent-scale", "vae:latent-scale",
                        test_nan_factor);
  g_test_add_data_func ("/gegl-latent/bad/nan-factor/latent-blend", "vae:latent-blend",
                        test_nan_factor);
  for (guint i = 0; i < G_N_ELEMENTS (bad_cases); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("/gegl-latent/bad/%s/%u", bad_cases[i].op + 4, i);
      g_test_add_data_func (name, &bad_cases[i], test_bad);
    }
  status = g_test_run ();
  vae_weights_free (goldens);
  gegl_exit ();
  return status;
}
