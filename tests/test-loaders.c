/* Weight-file loaders on good and hostile input: every failure is a GError
 * naming the problem, nothing crashes, nothing in a pickle runs.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define CANARY "/tmp/gegl-vae-PWNED"

/* ---- safetensors built by hand ------------------------------------------- */

/* A safetensors file from a JSON header and raw data bytes. */
static GBytes *
make_safetensors (const gchar *header, const void *data, gsize data_len)
{
  GByteArray *b = g_byte_array_new ();
  guint64     len = GUINT64_TO_LE (strlen (header));

  g_byte_array_append (b, (const guint8 *) &len, 8);
  g_byte_array_append (b, (const guint8 *) header, (guint) strlen (header));
  if (data_len)
    g_byte_array_append (b, data, (guint) data_len);
  return g_byte_array_free_to_bytes (b);
}

static GError *
load_bytes (const gchar *name, GBytes *bytes)
{
  g_autofree gchar *path =
      test_write_tmp (name, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  GError     *error = NULL;
  VaeWeights *w = vae_weights_load (path, &error);

  g_assert_null (w);
  return error;
}

static const gchar good_header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
    "\"c\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[12,14]},"
    "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[14,22]},"
    "\"e\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[22,30]}}";

static void
good_data (guint8 data[30])
{
  gfloat  a[2] = { 1.5f, -2.25f };
  guint16 b[2] = { 0x3c00 /* 1 */, 0x0001 /* 2^-24, subnormal */ };
  guint16 c = 0x4049; /* bf16 3.140625 */
  gdouble d = 0.1;    /* not representable: rounds to float */
  gint64  e = 42;

  memcpy (data, a, 8);
  memcpy (data + 8, b, 4);
  memcpy (data + 12, &c, 2);
  memcpy (data + 14, &d, 8);
  memcpy (data + 22, &e, 8);
}

static void
test_safetensors_good (void)
{
  guint8 data[30];
  g_autoptr (GBytes) bytes = NULL;
  g_autofree gchar *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = NULL;
  g_autofree gfloat *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;
  gsize              n;

  good_data (data);
  bytes = make_safetensors (good_header, data, sizeof data);
  path =
      test_write_tmp ("good.safetensors", g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  w = vae_weights_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (vae_weights_count (w), ==, 5);
  a = vae_weights_get_float (w, "a", &n, &error);
  g_assert_cmpuint (n, ==, 2);
  g_assert_cmpfloat (a[0], ==, 1.5f);
  g_assert_cmpfloat (a[1], ==, -2.25f);
  b = vae_weights_get_float (w, "b", NULL, &error);
  g_assert_cmpfloat (b[0], ==, 1.0f);
  g_assert_cmpfloat (b[1], ==, 5.9604644775390625e-8f);
  c = vae_weights_get_float (w, "c", NULL, &error);
  g_assert_cmpfloat (c[0], ==, 3.140625f);
  d = vae_weights_get_float (w, "d", &n, &error);
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpfloat (d[0], ==, (gfloat) 0.1);
  g_assert_no_error (error);
  e = vae_weights_get_float (w, "e", NULL, &error);
  g_assert_null (e);
  test_assert_error (error, "dtype I64");
}

/* Every strict prefix of a valid file is refused with an error. */
static void
test_safetensors_truncated (void)
{
  guint8 data[30];
  g_autoptr (GBytes) bytes = NULL;

  good_data (data);
  bytes = make_safetensors (good_header, data, sizeof data);
  for (gsize len = 0; len < g_bytes_get_size (bytes); len++)
    {
      g_autoptr (GBytes) cut = g_bytes_new_from_bytes (bytes, 0, len);
      g_autoptr (GError) error = load_bytes ("cut.safetensors", cut);
      g_assert_nonnull (error);
    }
}

typedef struct
{
  const gchar *name;
  const gchar *header;
  gsize        data_len;
  const gchar *needle;
} Hostile;

static const Hostile hostile_safetensors[] = {
  { "offsets-past-end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
    "past the end" },
  { "overlap",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
    12, "overlaps" },
  { "hole", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole" },
  { "trailing", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
    "not described" },
  { "wrong-dtype", "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
    "unknown dtype 'Q7'" },
  { "shape-size-mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
    "bytes of data" },
  { "shape-overflow",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]}}", 4,
    "overflows" },
  { "negative-shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
    "non-negative" },
  { "duplicate",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
    8, "appears twice" },
  { "not-json", "{\"a\": [1, 2", 0, "not valid JSON" },
  { "not-object", "[1, 2, 3]", 0, "not a JSON object" },
  { "non-utf8", "{\"\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
    "not UTF-8" },
  { "bad-metadata", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__" },
  { "offsets-reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
    "data_offsets" },
};

static void
test_safetensors_hostile (gconstpointer p)
{
  const Hostile *h = p;
  guint8         zeros[64] = { 0 };
  g_autoptr (GBytes) bytes = make_safetensors (h->header, zeros, h->data_len);
  g_autoptr (GError) error = load_bytes ("hostile.safetensors", bytes);

  test_assert_error (error, h->needle);
}

static void
test_safetensors_header_length (void)
{
  guint8  file[16] = { 0 };
  guint64 huge = GUINT64_TO_LE ((guint64) 200 << 20), big = GUINT64_TO_LE (1000);
  g_autoptr (GError) e1 = NULL, e2 = NULL, e3 = NULL;
  g_autoptr (GBytes) b1 = NULL, b2 = NULL, b3 = NULL;

  memcpy (file, &big, 8);
  b1 = g_bytes_new (file, sizeof file);
  e1 = load_bytes ("long-header.safetensors", b1);
  test_assert_error (e1, "is neither a safetensors file (its first 8 bytes give a header of 1000 "
                         "bytes, larger than the file's 16) nor a PyTorch checkpoint");
  g_assert_null (strstr (e1->message, "GEGL_VAE_MAX_HEADER_BYTES"));
  /* a header that fits the file but not the limit: the hint */
  memcpy (file, &huge, 8);
  b2 = g_bytes_new (file, sizeof file);
  e2 = load_bytes ("huge-header.safetensors", b2);
  test_assert_error (e2, "larger than the file's 16");
  huge = GUINT64_TO_LE (8);
  memcpy (file, &huge, 8);
  g_clear_pointer (&b2, g_bytes_unref);
  g_clear_error (&e2);
  b2 = g_bytes_new (file, sizeof file);
  g_setenv ("GEGL_VAE_MAX_HEADER_BYTES", "4", TRUE);
  e2 = load_bytes ("limited-header.safetensors", b2);
  g_unsetenv ("GEGL_VAE_MAX_HEADER_BYTES");
  test_assert_error (e2, "GEGL_VAE_MAX_HEADER_BYTES raises the limit");
  b3 = g_bytes_new (file, 5);
  e3 = load_bytes ("tiny.safetensors", b3);
  test_assert_error (e3, "too short");
}

/* ---- PyTorch zip files ----------------------------------------------------- */

static VaeWeights *
load_fixture (const gchar *name, GError **error)
{
  g_autofree gchar *path = test_data_path ("hostile", name, NULL);
  return vae_weights_load (path, error);
}

static void
check_state (VaeWeights *w, const gchar *prefix)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *an = g_strconcat (prefix, "a.weight", NULL),
                   *cn = g_strconcat (prefix, "c.weight", NULL);
  g_autofree gchar  *dn = g_strconcat (prefix, "d.weight", NULL);
  g_autofree gfloat *a = vae_weights_get_float (w, an, NULL, &error);
  g_autofree gfloat *c = vae_weights_get_float (w, cn, NULL, &error);
  g_autofree gfloat *d = vae_weights_get_float (w, dn, NULL, &error);
  gint64             shape[VAE_MAX_DIMS];
  gint               ndim;

  g_assert_no_error (error);
  g_assert_cmpfloat (a[2], ==, 65504.0f);
  g_assert_cmpfloat (a[3], ==, (gfloat) vae_half_to_float (vae_float_to_half (6e-8f)));
  g_assert_true (vae_weights_shape (w, cn, &ndim, shape, NULL));
  g_assert_cmpint (ndim, ==, 2);
  g_assert_cmpint (shape[0], ==, 4);
  /* c = arange(12).reshape(3,4).t(): c[i][j] = 4j + i, gathered from strides */
  for (gint i = 0; i < 4; i++)
    for (gint j = 0; j < 3; j++)
      g_assert_cmpfloat (c[i * 3 + j], ==, (gfloat) (4 * j + i));
  g_assert_cmpfloat (d[1], ==, 2.0f);
}

static void
test_pth_good (gconstpointer name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = load_fixture (name, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (vae_weights_count (w), ==, 4);
  check_state (w, "");
}

static void
test_ckpt_nested (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = load_fixture ("nested.ckpt", &error);

  g_assert_no_error (error);
  /* the first_stage_model. prefix is stripped */
  g_assert_cmpuint (vae_weights_count (w), ==, 4);
  check_state (w, "");
}

static const Hostile hostile_pth[] = {
  { "evil-os-system.pth", NULL, 0, "'os.system', which is not allowed" },
  { "evil-eval.pth", NULL, 0, "'builtins.eval', which is not allowed" },
  { "evil-subprocess.pth", NULL, 0, "'subprocess.Popen', which is not allowed" },
  { "outside.pth", NULL, 0, "points outside the archive" },
  { "past-end.pth", NULL, 0, "points outside the archive" },
  { "bad-crc.pth", NULL, 0, "CRC mismatch" },
  { "legacy.pth", NULL, 0, "legacy" },
  /* views and pickles that cost far more memory than their file */
  { "huge-view.pth", NULL, 0, "has 4611686018427387904 elements, more than the largest allowed" },
  { "offset-view.pth", NULL, 0, "tensor 'w' reaches outside its storage" },
  { "repeat-view.pth", NULL, 0, "the pickle needs more than" },
  /* views whose extent would wrap around 2^64 in unchecked arithmetic */
  { "wrap-view.pth", NULL, 0, "tuples of equal length (at most 8) of integers ≥ 0" },
  { "stride-wrap-view.pth", NULL, 0, "tensor 'w' reaches outside its storage" },
  { "pickle-bomb.pth", NULL, 0, "the pickle needs more than" },
};

static void
test_pth_hostile (gconstpointer p)
{
  const Hostile *h = p;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = NULL;

  g_remove (CANARY);
  w = load_fixture (h->name, &error);
  g_assert_null (w);
  test_assert_error (error, h->needle);
  g_assert_false (g_file_test (CANARY, G_FILE_TEST_EXISTS));
}

static void
test_pth_truncated (gconstpointer name)
{
  g_autofree gchar *path = test_data_path ("hostile", name, NULL);
  g_autofree gchar *contents = NULL;
  gsize             len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  for (gsize cut = 0; cut < len; cut++)
    {
      g_autoptr (GBytes) bytes = g_bytes_new (contents, cut);
      g_autoptr (GError) error = load_bytes ("cut.pth", bytes);
      g_assert_nonnull (error);
    }
}

/* Any single flipped byte: loads or fails cleanly (valgrind/ASan check the rest). */
static void
test_pth_bitflips (void)
{
  g_autofree gchar *path = test_data_path ("hostile", "good.pth", NULL);
  g_autofree gchar *contents = NULL;
  gsize             len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  for (gsize i = 0; i < len; i++)
    {
      g_autofree gchar *copy = g_memdup2 (contents, len);
      g_autofree gchar *tmp = NULL;
      g_autoptr (GError) error = NULL;
      VaeWeights *w;
      copy[i] ^= 0x5a;
      tmp = test_write_tmp ("flip.pth", copy, len);
      w = vae_weights_load (tmp, &error);
      g_assert_true ((w == NULL) != (error == NULL));
      vae_weights_free (w);
    }
}

/* Inputs the fuzzers found, each once a crash, hang or runaway allocation. */
static void
test_fuzz_regressions (void)
{
  g_autofree gchar *dir = test_data_path ("fuzz-regressions", NULL);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  gint         n = 0;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)))
    {
      g_autofree gchar *path = g_build_filename (dir, name, NULL);
      g_autoptr (GError) error = NULL;
      VaeWeights *w = vae_weights_load (path, &error);
      g_test_message ("%s: %s", name, error ? error->message : "loads");
      g_assert_true ((w == NULL) != (error == NULL));
      vae_weights_free (w);
      n++;
    }
  g_assert_cmpint (n, >, 0);
}

/* A legitimate stride-0 view (torch's expand) is gathered. */
static void
test_pth_expand (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = load_fixture ("expand.pth", &error);
  g_autofree gfloat *v = NULL;
  gsize              n;

  g_assert_no_error (error);
  v = vae_weights_get_float (w, "w", &n, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 4);
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat (v[i], ==, 2.5f);
}

/* The same hostile views reach the latent and codebook readers. */
static void
test_pth_views_elsewhere (void)
{
  g_autofree gchar *huge = test_data_path ("hostile", "huge-view.pth", NULL);
  g_autofree gchar *repeat = test_data_path ("hostile", "repeat-view.pth", NULL);
  g_autoptr (GError) e1 = NULL, e2 = NULL;

  g_assert_null (vae_latent_file_read (huge, &e1));
  test_assert_error (e1, "more than the largest allowed");
  g_assert_null (vae_codebook_load (repeat, &e2));
  test_assert_error (e2, "the pickle needs more than");
}

/* json-glib parses recursively: 100 000 levels (200 KB) overflowed the
 * stack.  The depth is bounded before it parses. */
static void
test_safetensors_deep (void)
{
  const gint depth = 100000;
  GString   *header = g_string_new ("{\"__metadata__\":");
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (GError) error = NULL;

  for (gint i = 0; i < depth; i++)
    g_string_append_c (header, '[');
  for (gint i = 0; i < depth; i++)
    g_string_append_c (header, ']');
  g_string_append_c (header, '}');
  bytes = make_safetensors (header->str, NULL, 0);
  error = load_bytes ("deep.safetensors", bytes);
  test_assert_error (error, "nests deeper than 32 levels");
  g_string_free (header, TRUE);
}

/* The header JSON padded with spaces to LENGTH bytes. */
static GBytes *
safetensors_of_length (const gchar *header, gsize length, const void *data, gsize data_len)
{
  g_autofree gchar *padded = g_strnfill (length, ' ');

  g_assert_cmpuint (strlen (header), <=, length);
  memcpy (padded, header, strlen (header));
  return make_safetensors (padded, data, data_len);
}

/* A header of 128, 384… bytes puts 0x80 first, as a legacy pickle does:
 * models, latents and codebooks with such headers load. */
static void
test_safetensors_0x80 (void)
{
  static const gchar latent[] =
      "{\"latent_tensor\":{\"dtype\":\"F32\",\"shape\":[1,2,1,1],\"data_offsets\":[0,8]},"
      "\"latent_format_version_0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}";
  static const gchar codebook[] =
      "{\"codes\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}";
  const gfloat values[2] = { 0.5f, -1.0f };

  for (gsize length = 128; length <= 1408; length += 256)
    {
      g_autoptr (GBytes) w_bytes = safetensors_of_length (codebook, length, values, 8);
      g_autofree gchar *w_path = test_write_tmp ("w.safetensors", g_bytes_get_data (w_bytes, NULL),
                                                 g_bytes_get_size (w_bytes));
      g_autoptr (GError) error = NULL;
      g_autoptr (VaeWeights) w = vae_weights_load (w_path, &error);
      g_autoptr (VaeCodebook) cb = NULL;

      g_assert_cmpuint (((const guint8 *) g_bytes_get_data (w_bytes, NULL))[0], ==, 0x80);
      g_assert_no_error (error);
      g_assert_cmpuint (vae_weights_count (w), ==, 1);
      if (length > strlen (latent)) /* from 384 on */
        {
          g_autoptr (GBytes) l_bytes = safetensors_of_length (latent, length, values, 8);
          g_autofree gchar *l_path = test_write_tmp ("l.latent", g_bytes_get_data (l_bytes, NULL),
                                                     g_bytes_get_size (l_bytes));
          g_autoptr (VaeTensor) l = vae_latent_file_read (l_path, &error);
          g_assert_no_error (error);
          g_assert_cmpfloat (l->data[1], ==, -1.0f);
        }
      cb = vae_codebook_load (w_path, &error);
      g_assert_no_error (error);
      g_assert_cmpint (cb->size, ==, 1);
    }
}

/* A model file cut short between being loaded and being built (the
 * weights are read then; mapped, they were read from the file later and
 * its end was gone: SIGBUS). */
static void
test_truncated_after_load (void)
{
  const gsize       n = 4 << 20;
  g_autofree gchar *header = g_strdup_printf (
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}", n, n * 4);
  g_autofree gfloat *data = g_new (gfloat, n);
  g_autoptr (GBytes) bytes = NULL;
  g_autofree gchar *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = NULL;
  g_autofree gfloat *got = NULL;

  for (gsize i = 0; i < n; i++)
    data[i] = (gfloat) i;
  bytes = make_safetensors (header, data, n * 4);
  path =
      test_write_tmp ("cut.safetensors", g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  w = vae_weights_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (truncate (path, 16), ==, 0);
  got = vae_weights_get_float (w, "a", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (got[n - 1], ==, (gfloat) (n - 1));
}

/* A .npy latent shrinking and growing again while it is read, many times:
 * each read gives the latent or an error, never a signal. */
typedef struct
{
  const gchar *path;
  GBytes      *full;
  gint         stop;
} Shrinker;

static gpointer
shrink_repeatedly (gpointer data)
{
  Shrinker *s = data;

  gint fd = open (s->path, O_WRONLY);

  g_assert_cmpint (fd, >=, 0);
  while (!g_atomic_int_get (&s->stop))
    {
      /* in place, so a reader's open file is the one that shrinks */
      g_assert_cmpint (pwrite (fd, g_bytes_get_data (s->full, NULL), g_bytes_get_size (s->full), 0),
                       ==, (gssize) g_bytes_get_size (s->full));
      g_usleep (1000);
      g_assert_cmpint (ftruncate (fd, 200), ==, 0);
    }
  close (fd);
  return NULL;
}

static void
test_npy_truncated_while_read (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr (VaeTensor) latent = vae_tensor_new (16, 1024, 1024, NULL);
      g_autofree gchar *path = test_tmp_path ("shrinking.npy");
      g_autofree gchar *contents = NULL;
      gsize             len;
      gint              good = 0, refused = 0;
      Shrinker          s = { path, NULL, 0 };
      GThread          *thread;

      g_assert_true (vae_npy_write_latent (path, latent, NULL));
      g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
      s.full = g_bytes_new (contents, len);
      thread = g_thread_new ("shrink", shrink_repeatedly, &s);
      for (gint i = 0; i < 200; i++)
        {
          g_autoptr (GError) error = NULL;
          g_autoptr (VaeTensor) t = vae_npy_read_latent (path, &error);
          g_assert_true ((t == NULL) != (error == NULL));
          if (t)
            good++;
          else
            refused++;
          g_usleep (1000);
        }
      g_atomic_int_set (&s.stop, 1);
      g_thread_join (thread);
      g_bytes_unref (s.full);
      g_printerr ("%d read whole, %d refused\n", good, refused);
      return;
    }
  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* A FIFO blocked open() forever; a folder and a symlink loop got GLib's or
 * the model path's words.  Each is refused at once, saying what it is. */
static void
test_not_regular (void)
{
  if (g_test_subprocess ())
    {
      g_autofree gchar *fifo = test_tmp_path ("model.safetensors");
      g_autofree gchar *fifo_npy = test_tmp_path ("latent.npy");
      g_autofree gchar *folder = test_tmp_path ("folder.safetensors");
      g_autofree gchar *loop = test_tmp_path ("loop.pth");
      g_autoptr (GError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL;

      g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
      g_assert_cmpint (mkfifo (fifo_npy, 0600), ==, 0);
      g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);
      g_assert_cmpint (symlink (loop, loop), ==, 0);
      g_assert_null (vae_model_load (fifo, NULL, &e1));
      test_assert_error (e1, "is not a regular file (a FIFO, socket or device)");
      g_assert_null (vae_npy_read_latent (fifo_npy, &e2));
      test_assert_error (e2, "is not a regular file");
      g_assert_null (vae_model_load (folder, NULL, &e3));
      test_assert_error (e3, "folder.safetensors is a folder, not a file");
      g_assert_null (vae_model_load (loop, NULL, &e4));
      test_assert_error (e4, "Too many levels of symbolic links");
      return;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* An output replaces its file through a temporary renamed over it: the
 * file's permissions stay, and nothing else is left in the folder. */
static void
test_output_replaces (void)
{
  g_autofree gchar *path = test_tmp_path ("replaced.npy");
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_autoptr (VaeTensor) latent = vae_tensor_new (4, 2, 3, NULL);
  g_autoptr (VaeTensor) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) d = NULL;
  const gchar *name;
  GStatBuf     st;

  g_assert_true (g_file_set_contents (path, "OLD", 3, NULL));
  g_assert_cmpint (g_chmod (path, 0640), ==, 0);
  latent->data[5] = 1.25f;
  g_assert_true (vae_npy_write_latent (path, latent, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0640);
  back = vae_npy_read_latent (path, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (back->data[5], ==, 1.25f);
  d = g_dir_open (dir, 0, NULL);
  while ((name = g_dir_read_name (d)))
    g_assert_true (name[0] != '.');
}

/* ---- non-finite values ------------------------------------------------------ */

/* FILE's bytes with the float at element INDEX of TENSOR set to VALUE. */
static gchar *
with_float_at (const gchar *file, const gchar *tensor, gsize index, gfloat value)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = vae_weights_load (file, &error);
  const VaeWeightEntry *e;
  g_autofree gchar     *contents = NULL;
  gsize                 len;

  g_assert_no_error (error);
  e = vae_weights_lookup (w, tensor);
  g_assert_nonnull (e);
  g_assert_cmpint (e->dtype, ==, VAE_DTYPE_F32);
  g_assert_true (g_file_get_contents (file, &contents, &len, NULL));
  memcpy (contents + (e->data - w->contents) + index * 4, &value, 4);
  return test_write_tmp ("non-finite.safetensors", contents, len);
}

/* NaN and infinity in weights made black images and NaN latents; now the
 * load fails naming the tensor.  A NaN codebook likewise. */
static void
test_non_finite_weights (void)
{
  g_autofree gchar *kl = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  g_autofree gchar *nan_model = with_float_at (kl, "decoder.conv_out.weight", 3, NAN);
  const gfloat      codes[4] = { NAN, NAN, NAN, NAN };
  g_autoptr (GBytes) cb_bytes = make_safetensors (
      "{\"codes\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", codes, 16);
  g_autofree gchar *cb_path = test_write_tmp (
      "nan-codebook.safetensors", g_bytes_get_data (cb_bytes, NULL), g_bytes_get_size (cb_bytes));
  g_autoptr (GError) e1 = NULL, e2 = NULL, e3 = NULL;
  g_autofree gchar *inf_model = NULL;

  g_assert_null (vae_model_load (nan_model, NULL, &e1));
  test_assert_error (e1, "tensor 'decoder.conv_out.weight' holds a non-finite value (nan) at "
                         "element 3");
  inf_model = with_float_at (kl, "encoder.conv_in.bias", 0, -INFINITY);
  g_assert_null (vae_model_load (inf_model, NULL, &e2));
  test_assert_error (e2, "tensor 'encoder.conv_in.bias' holds a non-finite value (-inf)");
  g_assert_null (vae_codebook_load (cb_path, &e3));
  test_assert_error (e3, "tensor 'codes' holds a non-finite value (nan)");
  /* exp of a NaN activation stays NaN (its exponent was a negative shift) */
  g_assert_true (isnan (vae_expf (NAN)));
}

/* ---- .npy and .latent contents --------------------------------------------- */

/* An .npy file of HEADER (a dict literal) and N floats of zero. */
static gchar *
write_npy (const gchar *name, const gchar *header, gsize n)
{
  GByteArray        *b = g_byte_array_new ();
  g_autofree gchar  *padded = g_strdup_printf ("%-*s\n", (gint) (64 - 10 - 1), header);
  guint8             pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0 };
  g_autofree gfloat *zeros = g_new0 (gfloat, MAX (n, 1));
  gchar             *path;

  pre[8] = (guint8) strlen (padded);
  g_byte_array_append (b, pre, 10);
  g_byte_array_append (b, (const guint8 *) padded, (guint) strlen (padded));
  g_byte_array_append (b, (const guint8 *) zeros, (guint) (n * 4));
  path = test_write_tmp (name, b->data, b->len);
  g_byte_array_unref (b);
  return path;
}

typedef struct
{
  const gchar *name;
  const gchar *header;
  gsize        n_floats;
  const gchar *needle;
} NpyCase;

static const NpyCase npy_cases[] = {
  /* 'shape' inside a string was taken for the key: a 16-channel 1×1 latent */
  { "shape-in-string",
    "{'descr': '<f4', 'fortran_order': False, 'x': \"'shape': (1, 16, 1, 1)\", "
    "'shape': (1, 4, 2, 2), }",
    16, "keys must be descr, fortran_order and shape, once each" },
  { "batch", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 2, 2), }", 32,
    "holds a batch of 2 latents [2, 4, 2, 2]; only files of one latent are read" },
  { "empty", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 0, 8, 8), }", 0,
    "empty.npy holds an empty array [1, 0, 8, 8]" },
  { "big-endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1, 1, 1), }", 1,
    ".npy dtype '>f4' is not supported (use little-endian float32, '<f4')" },
  { "duplicate", "{'descr': '<f4', 'shape': (1, 1, 1, 1), 'shape': (1, 1, 1, 1), }", 1,
    "keys must be descr, fortran_order and shape, once each" },
};

static void
test_npy_header (gconstpointer data)
{
  const NpyCase    *c = data;
  g_autofree gchar *name = g_strconcat (c->name, ".npy", NULL);
  g_autofree gchar *path = write_npy (name, c->header, c->n_floats);
  g_autoptr (GError) error = NULL;

  g_assert_null (vae_npy_read_latent (path, &error));
  test_assert_error (error, c->needle);
}

/* The rule .npy files follow: a batch in a .latent is refused too, where
 * it was cut to its first latent.  An int64 latent is a tensor, not
 * "weights". */
static void
test_latent_batch_and_dtype (void)
{
  g_autoptr (GBytes) batch = make_safetensors (
      "{\"latent_tensor\":{\"dtype\":\"F32\",\"shape\":[3,1,1,1],\"data_offsets\":[0,12]}}",
      "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
  g_autoptr (GBytes) ints = make_safetensors (
      "{\"latent_tensor\":{\"dtype\":\"I64\",\"shape\":[1,1,1,1],\"data_offsets\":[0,8]}}",
      "\0\0\0\0\0\0\0\0", 8);
  g_autofree gchar *batch_path =
      test_write_tmp ("b.latent", g_bytes_get_data (batch, NULL), g_bytes_get_size (batch));
  g_autofree gchar *int_path =
      test_write_tmp ("i.latent", g_bytes_get_data (ints, NULL), g_bytes_get_size (ints));
  g_autoptr (GError) e1 = NULL, e2 = NULL;

  g_assert_null (vae_latent_file_read (batch_path, &e1));
  test_assert_error (e1, "holds a batch of 3 latents [3, 1, 1, 1]; only files of one latent");
  g_assert_null (vae_latent_file_read (int_path, &e2));
  test_assert_error (e2, "i.latent: tensor 'latent_tensor' has dtype I64; only F64, F32, F16 and "
                         "BF16 tensors are supported");
}

/* ---- models whose channels do not fit images --------------------------------- */

/* A decoder giving 1 or 4 channels read past the GEGL buffers; an encoder
 * taking 4 returned NULL without an error, which killed GEGL hosts.  Both
 * are refused at load, and a layer given the wrong channels says so. */
static void
test_kl_channels (void)
{
  struct
  {
    const gchar *tensor;
    gint         dim, channels;
    const gchar *needle;
  } cases[] = {
    { "decoder.conv_out.", 0, 1, "'decoder.conv_out' gives 1 channels; an RGB decoder gives 3" },
    { "decoder.conv_out.", 0, 4, "'decoder.conv_out' gives 4 channels" },
    { "encoder.conv_in.weight", 1, 4,
      "'encoder.conv_in' takes 4 channels; an RGB encoder takes 3" },
  };
  VaeConv conv = { .out_channels = 2, .in_channels = 4, .kernel = 1, .stride = 1 };
  gfloat  weight[8] = { 0 };
  g_autoptr (VaeTensor) x = vae_tensor_new (3, 2, 2, NULL);
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree gchar *path =
          test_kl_with_channels (cases[i].tensor, cases[i].dim, cases[i].channels);
      g_autoptr (GError) e = NULL;
      vae_model_cache_clear ();
      g_assert_null (vae_model_load (path, NULL, &e));
      test_assert_error (e, cases[i].needle);
    }
  conv.weight = weight;
  g_assert_null (
      vae_backend_cpu ()->conv (vae_backend_cpu (), &conv, x, FALSE, NULL, VAE_ACT_NONE, &error));
  test_assert_error (error, "a convolution of 4 channels was given 3");
}

/* --family names what it wants and what the file is, in latent terms. */
static void
test_family_mismatch (void)
{
  g_autofree gchar *models = test_models_dir ("taef2_encoder.pth");
  g_autofree gchar *path = NULL;
  VaeModelOptions   options = { "sd15" };
  g_autoptr (GError) error = NULL;

  if (!models)
    return;
  path = g_build_filename (models, "taef2_encoder.pth", NULL);
  g_assert_null (vae_model_load (path, &options, &error));
  test_assert_error (error, "is a taef2 model: a tiny autoencoder (TAESD) with 128 latent "
                            "channels at 1/16; family 'sd15' describes a AutoencoderKL");
}

static void
test_not_a_model (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *path = test_data_path ("hostile", "good.pth", NULL);
  g_autoptr (VaeModel) m = vae_model_load (path, NULL, &error);

  g_assert_null (m);
  test_assert_error (error, "no VAE");
  g_clear_error (&error);
  m = vae_model_load ("/nonexistent/dir/model.safetensors", NULL, &error);
  test_assert_error (error, "model '/nonexistent/dir/model.safetensors'");
}

/* test_assert_one_half over the families whose halves are told apart by
 * name: AutoencoderKL's, DC-AE's and the causal 3-D VAEs' (encoder./
 * decoder.), a VQ-VAE's (_encoder./_decoder.), a tiny model's in
 * diffusers' names in one file. */
static void
test_one_half (void)
{
  static const gchar *const files[][3] = {
    { "kl", "sd15-diffusers", "sd15_tiny.safetensors" },
    { "dc-ae", "small", "dcae_small.safetensors" },
    { "vq", "vqvae-seed", "vqvae_seed.pth" },
    { "tiny", ".", "taesd_diffusers_tiny.safetensors" },
    { "qwen-image", "small", "qwen_small.safetensors" },
    { "wan22", "small", "wan2.2_small.pth" },
  };
  GRand *rand = g_rand_new_with_seed (5);

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree gchar *path = test_data_path (files[i][0], files[i][1], files[i][2], NULL);
      test_assert_one_half (path, rand);
    }
  g_rand_free (rand);
}

/* The cache: a model with both halves serves a load of one and takes the
 * place of the models of one half; a load of one half never serves the
 * other; ANY takes whatever is cached, else loads the decoder. */
static void
test_cache_serves_halves (void)
{
  g_autofree gchar *path = test_data_path ("kl", "sd15-diffusers", "sd15_tiny.safetensors", NULL);
  const VaeModelOptions encoder = { .halves = VAE_HALVES_ENCODER },
                        decoder = { .halves = VAE_HALVES_DECODER },
                        any = { .halves = VAE_HALVES_ANY };
  VaeModel *whole, *half, *other, *served;

  vae_model_cache_clear ();
  whole = vae_model_load (path, NULL, NULL);
  half = vae_model_load (path, &encoder, NULL);
  g_assert_true (half == whole);
  vae_model_unref (half);
  vae_model_unref (whole);

  vae_model_cache_clear ();
  half = vae_model_load (path, &encoder, NULL);
  g_assert_true (vae_model_has_encoder (half) && !vae_model_has_decoder (half));
  served = vae_model_load (path, &any, NULL);
  g_assert_true (served == half);
  other = vae_model_load (path, &decoder, NULL);
  g_assert_true (other != half);
  g_assert_true (vae_model_has_decoder (other) && !vae_model_has_encoder (other));
  vae_model_unref (other);
  vae_model_unref (served);
  vae_model_unref (half);

  vae_model_cache_clear ();
  served = vae_model_load (path, &any, NULL);
  g_assert_true (vae_model_has_decoder (served) && !vae_model_has_encoder (served));
  whole = vae_model_load (path, NULL, NULL);
  g_assert_true (whole != served && vae_model_has_encoder (whole));
  half = vae_model_load (path, &decoder, NULL); /* the whole model took the half's place */
  g_assert_true (half == whole);
  vae_model_unref (half);
  vae_model_unref (whole);
  vae_model_unref (served);
  vae_model_cache_clear ();
}

/* HunyuanImage 2.1's VAE, once refused, loads: the small float16 model in
 * diffusers' names (tests/data/hunyuan-image; test-hunyuan.c runs it),
 * read as a flat list of resnets and pixel-shuffle resamplers. */
static void
test_hunyuan_image (void)
{
  g_autofree gchar *path =
      test_data_path ("hunyuan-image", "small", "hunyuan_small.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeWeights) w = vae_weights_load (path, &error);
  VaeParts parts;

  g_assert_no_error (error);
  g_assert_true (vae_hunyuan_detect (w));
  g_assert_true (vae_hunyuan_build (w, &parts, &error));
  g_assert_no_error (error);
  g_assert_cmpint (parts.structure.kind, ==, VAE_KIND_HUNYUAN_IMAGE);
  g_assert_cmpint (parts.structure.raw_channels, ==, 8);
  g_assert_cmpint (parts.structure.raw_factor, ==, 4);
  g_assert_nonnull (parts.encoder);
  g_assert_nonnull (parts.decoder);
  g_assert_cmpint (parts.encoder->out_channels, ==, 16); /* mean and logvar */
  vae_parts_clear (&parts);
}

/* Wan 2.2's VAE (a causal 3-D VAE of 12 image channels, the image
 * patchified), once refused, loads in both namings as family wan22: RGB in
 * and out, 48 latent channels at 1/16 (test-wan22 checks what it
 * computes). */
static void
test_wan22_loads (gconstpointer file)
{
  g_autofree gchar *path = test_data_path ("wan22", "small", file, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeModel) m = vae_model_load (path, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (vae_model_get_family (m)->name, ==, "wan22");
  g_assert_true (vae_model_has_encoder (m) && vae_model_has_decoder (m));
  g_assert_cmpint (vae_model_latent_channels (m), ==, 48);
  g_assert_cmpint (vae_model_factor (m), ==, 16);
  g_assert_cmpint (m->encoder->in_channels, ==, 3);
  g_assert_cmpint (m->decoder->out_channels, ==, 3);
  vae_model_cache_clear ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/loaders/safetensors/good", test_safetensors_good);
  g_test_add_func ("/loaders/safetensors/truncated-everywhere", test_safetensors_truncated);
  g_test_add_func ("/loaders/safetensors/header-length", test_safetensors_header_length);
  for (guint i = 0; i < G_N_ELEMENTS (hostile_safetensors); i++)
    {
      g_autofree gchar *n =
          g_strdup_printf ("/loaders/safetensors/hostile/%s", hostile_safetensors[i].name);
      g_test_add_data_func (n, &hostile_safetensors[i], test_safetensors_hostile);
    }
  g_test_add_data_func ("/loaders/pth/good", "good.pth", test_pth_good);
  g_test_add_data_func ("/loaders/pth/deflate", "good-deflate.pth", test_pth_good);
  g_test_add_data_func ("/loaders/pth/zip64", "good-zip64.pth", test_pth_good);
  g_test_add_func ("/loaders/pth/nested-ckpt", test_ckpt_nested);
  for (guint i = 0; i < G_N_ELEMENTS (hostile_pth); i++)
    {
      g_autofree gchar *n = g_strdup_printf ("/loaders/pth/hostile/%s", hostile_pth[i].name);
      g_test_add_data_func (n, &hostile_pth[i], test_pth_hostile);
    }
  g_test_add_data_func ("/loaders/pth/truncated-everywhere/stored", "good.pth", test_pth_truncated);
  g_test_add_data_func ("/loaders/pth/truncated-everywhere/deflate", "good-deflate.pth",
                        test_pth_truncated);
  g_test_add_data_func ("/loaders/pth/truncated-everywhere/zip64", "good-zip64.pth",
                        test_pth_truncated);
  g_test_add_func ("/loaders/pth/bit-flips", test_pth_bitflips);
  g_test_add_func ("/loaders/not-a-model", test_not_a_model);
  g_test_add_data_func ("/loaders/wan22/diffusers-names", "wan22_small.safetensors",
                        test_wan22_loads);
  g_test_add_data_func ("/loaders/wan22/wan-names", "wan2.2_small.pth", test_wan22_loads);
  g_test_add_func ("/loaders/pth/expand", test_pth_expand);
  g_test_add_func ("/loaders/pth/views-as-latent-and-codebook", test_pth_views_elsewhere);
  g_test_add_func ("/loaders/safetensors/deep-json", test_safetensors_deep);
  g_test_add_func ("/loaders/safetensors/header-0x80", test_safetensors_0x80);
  g_test_add_func ("/loaders/truncated-after-load", test_truncated_after_load);
  g_test_add_func ("/loaders/npy/truncated-while-read", test_npy_truncated_while_read);
  g_test_add_func ("/loaders/not-regular-files", test_not_regular);
  g_test_add_func ("/loaders/output-replaces", test_output_replaces);
  g_test_add_func ("/loaders/non-finite-weights", test_non_finite_weights);
  for (guint i = 0; i < G_N_ELEMENTS (npy_cases); i++)
    {
      g_autofree gchar *n = g_strdup_printf ("/loaders/npy/%s", npy_cases[i].name);
      g_test_add_data_func (n, &npy_cases[i], test_npy_header);
    }
  g_test_add_func ("/loaders/latent/batch-and-dtype", test_latent_batch_and_dtype);
  g_test_add_func ("/loaders/kl-channels", test_kl_channels);
  g_test_add_func ("/loaders/family-mismatch", test_family_mismatch);
  g_test_add_func ("/loaders/one-half", test_one_half);
  g_test_add_func ("/loaders/cache-serves-halves", test_cache_serves_halves);
  g_test_add_func ("/loaders/hunyuan-image", test_hunyuan_image);
  g_test_add_func ("/loaders/fuzz-regressions", test_fuzz_regressions);
  return g_test_run ();
}
