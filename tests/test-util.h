/* Helpers shared by the test programs.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_TEST_UTIL_H
#define VAE_TEST_UTIL_H

#include "cpu/cpu.h"
#include "run/run.h"

/* tests/data in the source tree. */
gchar *test_data_path (const gchar *first, ...) G_GNUC_NULL_TERMINATED;
/* The folder with the real weights NEEDED_FILE: GEGL_VAE_TEST_MODELS when
 * set, else presets/models (the shipped TAEF2), else ../shared/models
 * beside the source tree; NULL after marking the test skipped. */
gchar *test_models_dir (const gchar *needed_file);
/* Whether this CPU (and build) has AVX512-BF16; FALSE after marking the
 * test skipped. */
gboolean   test_has_bf16 (void);
VaeTensor *test_load_npy_latent (const gchar *path);
/* The [1, C, h, w] float tensor NAME of WEIGHTS (a goldens file) as a
 * planar tensor, asserting it is there. */
VaeTensor *test_weights_tensor (VaeWeights *weights, const gchar *name);
VaeTensor *test_load_npy_image (const gchar *path);
/* max |a − b| / max |b|, the house measure (b is the reference). */
gdouble test_max_rel_error (const VaeTensor *a, const VaeTensor *b);
gdouble test_max_abs_error (const VaeTensor *a, const VaeTensor *b);
/* PSNR of A against B, images in [0, 1] (infinite when equal). */
gdouble test_psnr (const VaeTensor *a, const VaeTensor *b);
/* Signal to noise of GOT against WANT, in dB (for latents, whose range is
 * not [0, 1]). */
gdouble test_snr (const VaeTensor *got, const VaeTensor *want);
/* Asserts equal shapes and max relative error ≤ TOL, printing the figure. */
void test_assert_close (const VaeTensor *got, const VaeTensor *want, gdouble tol,
                        const gchar *what);
/* N uniform draws from [LO, HI), owned by the caller. */
gfloat *test_random_floats (GRand *rand, gsize n, gdouble lo, gdouble hi);
/* A temporary file path inside a fresh folder, removed at exit. */
gchar *test_tmp_path (const gchar *name);
/* Writes BYTES to a new temporary file and returns its path. */
gchar *test_write_tmp (const gchar *name, const void *bytes, gsize size);
typedef enum
{
  TEST_ENCODE, /* the latent's mean */
  TEST_DECODE,
  TEST_DECODE_RAW /* the decoder's output in [−1, 1], unclamped, as PyTorch's goldens hold it */
} TestPass;

/* PASS of M over INPUT on BACKEND in PRECISION, asserting no error; the
 * thread's compute choice is back to its default afterwards. */
VaeTensor *test_run_on (VaeModel *m, TestPass pass, const VaeTensor *input, VaeBackendKind backend,
                        VaePrecision precision);
/* A copy of the small SD1.5 test model (a new temporary file) with TENSOR's
 * first dimension (DIM 0) or second (DIM 1) made CHANNELS long: rows
 * repeated, or new input channels of zeros.  TENSOR is a name prefix. */
gchar *test_kl_with_channels (const gchar *tensor, gint dim, gint channels);
/* A model of the goldens: tests/data/GROUP/DIR/FILE, of family FAMILY. */
typedef struct
{
  const gchar *dir;
  const gchar *file;
  const gchar *family;
} TestVariant;

/* Loads V from tests/data/GROUP, asserting no error and its family. */
VaeModel *test_load_variant (const gchar *group, const TestVariant *v);
/* Loads PATH whole and one half at a time (VaeModelOptions.halves): each
 * half alone is a model of its own in the cache, of the same family, with
 * that half only and fewer parameters; running the other half is refused
 * by name, and its own gives the whole model's output bit for bit, on
 * inputs drawn from RAND. */
void test_assert_one_half (const gchar *path, GRand *rand);
/* Asserts that ERROR is set, in VAE_ERROR, and its message holds NEEDLE. */
void test_assert_error (GError *error, const gchar *needle);

/* The goldens of the family tests (tests/reference/make_FAMILY_goldens.py,
 * in float64) are laid out alike: tests/data/GROUP/small holds a small
 * model and its goldens, tests/data/GROUP/full the goldens of the full
 * architecture, whose seeded weights core/nets/synth.c writes at test time. */

/* Loads PATH, asserting no error, its family and its latent's shape. */
VaeModel *test_load_family (const gchar *path, const gchar *family, gint latent_channels,
                            gint factor);
/* FAMILY's full architecture with the seeded weights of core/nets/synth.c
 * (seed 1, as tests/reference/synth_weights.py gives them to the goldens),
 * loaded through test_load_family, and asserted to hold N_TENSORS tensors of
 * N_PARAMS parameters in all (diffusers' counts). */
VaeModel *test_synth_family (const gchar *family, gint latent_channels, gint factor,
                             guint n_tensors, guint64 n_params);
/* ComfyUI's .latent holds the raw latent, diffusion·std + mean: asserts M's
 * conversions both ways on its first channel (statistics STD0, MEAN0) and
 * its last (STD_LAST, MEAN_LAST), within float32's rounding of them. */
void test_assert_raw_latent (VaeModel *m, gdouble std0, gdouble mean0, gdouble std_last,
                             gdouble mean_last);
/* Against tests/data/GROUP/DIR, at max relative error <= TOL: the latent of
 * image.npy (latent.npy, the posterior mean in the diffusion scale), when
 * MOMENTS the encoder's raw moments (moments.npy), and the raw decode of
 * decode-latent.npy (decoded.npy); each untiled and in bands of BAND image
 * rows, whose seams must stay as exact as the plain run. */
void test_check_goldens (VaeModel *m, const gchar *group, const gchar *dir, gboolean moments,
                         gint band, gdouble tol);
/* Asserts that the memory planner bands M's decode of a SIDE² latent under
 * LIMIT_MIB (it walks the whole graph to do so). */
void test_assert_plan_bands (VaeModel *m, gint side, guint limit_mib);
/* A copy of the weights at PATH written to the temporary file NAME, in
 * float32, without the tensor DROP (when given, asserting it was there) and
 * with the tensors whose names begin with RESHAPE (when given) cut to their
 * first ROWS outputs. */
gchar *test_weights_copy (const gchar *path, const gchar *name, const gchar *drop,
                          const gchar *reshape, gint64 rows);

#endif
