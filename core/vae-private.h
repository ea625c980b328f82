/* Internal declarations shared between libvae's source files.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_PRIVATE_H
#define VAE_PRIVATE_H

#include "vae-config.h"
#include "vae.h"

#include <glib/gi18n-lib.h>
#include <inttypes.h>

G_BEGIN_DECLS

/* ---- limits ----------------------------------------------------------------- */

/* Fixed sanity bounds; the limits users may want to move are below. */
#define VAE_MAX_IMAGE_SIDE      65536
#define VAE_MAX_TENSOR_ELEMENTS ((gsize) 1 << 34) /* 64 GiB of float32 */

typedef enum
{
  VAE_LIMIT_IMAGE_PIXELS, /* largest image, in or out (pixels) */
  VAE_LIMIT_MODEL_BYTES,  /* largest model file */
  VAE_LIMIT_HEADER_BYTES, /* largest safetensors header */
  VAE_LIMIT_PICKLE_MEMO   /* largest pickle memo (entries) */
} VaeLimit;

/* The limit's value: its environment variable, else the default. */
guint64      vae_limit (VaeLimit which);
const gchar *vae_limit_env (VaeLimit which);

/* ---- tensors ------------------------------------------------------------- */

/* vae_tensor_new, its values left as they come unless ZEROED. */
VaeTensor *vae_tensor_new_uninit (gint channels, gint height, gint width, gboolean zeroed,
                                  GError **error);
/* Rows [Y0, Y1) of plain tensor T as a tensor of their own; rows outside T
 * are zeros. */
VaeTensor *vae_tensor_rows (const VaeTensor *t, gint y0, gint y1, GError **error);
/* Copies plain tensor SRC into rows [Y, Y + SRC's height) of DST, which has
 * its channels and width. */
void vae_tensor_put_rows (VaeTensor *dst, gint y, const VaeTensor *src);

/* Storage a tensor refers to instead of owning data (tiled.c, plan.c);
 * vae_tensor_free calls release. */
typedef struct _VaeExternal VaeExternal;
struct _VaeExternal
{
  void (*release) (VaeExternal *self);
};

/* A view of one tensor inside a weight file. */
typedef struct
{
  gchar        *name;
  VaeDtype      dtype;
  gint          ndim;
  gint64        shape[VAE_MAX_DIMS];
  gsize         n_elements;
  const guint8 *data; /* contiguous, little-endian, n_elements × size */
} VaeWeightEntry;

struct _VaeWeights
{
  gchar      *path;
  guint8     *contents; /* the file, read whole: safetensors and stored zip members point here */
  GPtrArray  *entries;  /* VaeWeightEntry*, file order */
  GHashTable *by_name;  /* name → VaeWeightEntry* */
  GPtrArray  *buffers;  /* owned byte buffers (inflated members, gathers) */
};

gsize    vae_dtype_size (VaeDtype dtype);
gboolean vae_dtype_from_name (const gchar *name, VaeDtype *dtype);
gboolean vae_dtype_is_float (VaeDtype dtype);
void     vae_convert_to_float (VaeDtype dtype, const guint8 *src, gfloat *dst, gsize n);
gfloat   vae_half_to_float (guint16 h);
gfloat   vae_bfloat16_to_float (guint16 b);

VaeWeights *vae_weights_new (const gchar *path);
/* Adds an entry; fails on duplicate names. Takes ownership of nothing. */
gboolean vae_weights_add (VaeWeights *weights, const gchar *name, VaeDtype dtype, gint ndim,
                          const gint64 *shape, const guint8 *data, GError **error);
const VaeWeightEntry *vae_weights_lookup (const VaeWeights *weights, const gchar *name);
/* The entry of the name FORMAT expands to, or NULL. */
const VaeWeightEntry *vae_weights_lookupf (const VaeWeights *weights, const gchar *format, ...)
    G_GNUC_PRINTF (2, 3);
/* FALSE, with the error that the layer PREFIX lacks its PREFIX.weight. */
gboolean vae_weights_missing_weight (const VaeWeights *weights, const gchar *prefix,
                                     GError **error);
/* FALSE, with the error that tensor NAME should be WANT (its shape, in
 * words, for the message): the loaders' one message for a misshapen tensor. */
gboolean vae_weights_wrong_shape (const VaeWeights *weights, const gchar *name, const gchar *want,
                                  GError **error);
/* "[1, 4, 64, 64]", for messages. */
gchar *vae_shape_text (const gint64 *shape, gint ndim);
/* Strips `first_stage_model.`/`vae.` and unwraps nested names. */
void vae_weights_strip_prefixes (VaeWeights *weights);
/* Drops the entries whose names begin with PREFIX, unless that would
 * leave none. */
void vae_weights_drop_prefix (VaeWeights *weights, const gchar *prefix);

/* What a weight-file parser (safetensors.c, pth.c) fills: each tensor it
 * finds goes to ADD, each buffer it makes to BUFFERS.  The parsers know
 * nothing of VaeWeights; weights.c hands them its own. */
typedef struct
{
  const gchar *path;    /* the file, for messages */
  GPtrArray   *buffers; /* owned byte buffers the tensors may point into */
  gboolean (*add) (gpointer to, const gchar *name, VaeDtype dtype, gint ndim, const gint64 *shape,
                   const guint8 *data, GError **error);
  gpointer to;
} VaeTensorSink;

/* The sink that fills WEIGHTS (vae_weights_add). */
VaeTensorSink vae_weights_sink (VaeWeights *weights);
gboolean      vae_safetensors_parse (const VaeTensorSink *sink, const guint8 *bytes, gsize size,
                                     GError **error);
gboolean vae_pth_parse (const VaeTensorSink *sink, const guint8 *bytes, gsize size, GError **error);

/* Writes a safetensors file of float32 tensors (names, shapes, data). */
typedef struct
{
  const gchar  *name;
  gint          ndim;
  gint64        shape[VAE_MAX_DIMS];
  VaeDtype      dtype; /* F32, F16 or BF16 (converted on write) */
  const gfloat *data;
} VaeSafetensorsItem;

gboolean vae_safetensors_write (const gchar *path, const VaeSafetensorsItem *items, guint n_items,
                                GHashTable *metadata, GError **error);
guint16  vae_float_to_half (gfloat f);
guint16  vae_float_to_bfloat16 (gfloat f);

/* ---- zip ----------------------------------------------------------------- */

typedef struct
{
  gchar        *name;
  const guint8 *data; /* points into the archive (stored) or an owned buffer */
  gsize         size;
} VaeZipMember;

typedef struct _VaeZip VaeZip;

VaeZip      *vae_zip_open (const guint8 *bytes, gsize size, const gchar *path, GError **error);
void         vae_zip_free (VaeZip *zip);
guint        vae_zip_count (const VaeZip *zip);
const gchar *vae_zip_name (const VaeZip *zip, guint index);
/* The size a member claims, uncompressed (0 when there is none). */
guint64 vae_zip_size (const VaeZip *zip, const gchar *name);
/* Data of a member, inflated when deflated (the buffer moves to *owned). */
const VaeZipMember *vae_zip_get (VaeZip *zip, const gchar *name, GPtrArray *owned, GError **error);

/* ---- families ------------------------------------------------------------ */

gboolean vae_family_parse (const gchar *text, gsize length, const gchar *origin, VaeFamily **family,
                           GError **error);
void     vae_family_free (VaeFamily *family);
/* The family of an AutoencoderKL that no descriptor fits: SHAPE's
 * structure, scale 1, shift 0, SD's noise schedule, no preview factors. */
VaeFamily *vae_family_new_generic_kl (const VaeFamily *shape);
/* FAMILY, a descriptor that leaves the latent's size to the weights, with
 * SHAPE's channels and factor (and no preview factors). */
VaeFamily *vae_family_fitted (const VaeFamily *family, const VaeFamily *shape);
/* What `gegl-vae info` calls a kind of network. */
const gchar *vae_kind_title (VaeKind kind);
/* The best descriptor for the structure in SHAPE (kind, raw channels and
 * factor, quant convs, batch norm, pool branch): an alias in the file name
 * decides between equal structures, then priority.  NULL when none fits. */
const VaeFamily *vae_family_match (const VaeFamily *shape, const gchar *file_name);

/* ---- codebooks ----------------------------------------------------------- */

/* The [K, C] tensor NAME of W as a codebook; an error naming the file when
 * NAME is NULL or not such a tensor. */
VaeCodebook *vae_codebook_from_weights (const VaeWeights *w, const gchar *name, GError **error);
/* A copy of CODEBOOK with every value v as v·MUL + ADD. */
VaeCodebook *vae_codebook_copy_mapped (const VaeCodebook *codebook, gdouble mul, gdouble add,
                                       GError **error);
/* Every vector of the planar LATENT (as many channels as the codebook's
 * entries) replaced by its nearest entry, in place. */
gboolean vae_codebook_quantize (const VaeCodebook *codebook, VaeTensor *latent, GError **error);

/* ---- small helpers ------------------------------------------------------- */

/* Products and sums of sizes that fail instead of wrapping. */
gboolean vae_size_mul (gsize a, gsize b, gsize *out);
gboolean vae_size_add (gsize a, gsize b, gsize *out);
gpointer vae_try_alloc (gsize n_bytes, const gchar *what, GError **error);
gpointer vae_try_alloc_floats (gsize n_floats, const gchar *what, GError **error);
/* vae_try_alloc without zeroing, for buffers written whole at once. */
gpointer vae_try_alloc_uninit (gsize n_bytes, const gchar *what, GError **error);

/* N bytes of FD from OFFSET; an error naming PATH when the file ends first. */
gboolean vae_file_pread (gint fd, const gchar *path, gpointer buffer, gsize n, guint64 offset,
                         GError **error);
/* The whole of the regular file PATH (see vae_file_open), refused over the
 * limit LIMIT; free it with g_free. */
guint8 *vae_file_read (const gchar *path, VaeLimit limit, gsize *size, GError **error);

/* Scratch memory recycled within a forward pass (pool.c), zeroed when
 * ZEROED (buffers that are written whole need not be); CAPACITY receives the
 * block's real size, to hand back to vae_scratch_free. */
gpointer vae_scratch_alloc (gsize bytes, gboolean zeroed, gsize *capacity, const gchar *what,
                            GError **error);
void     vae_scratch_free (gpointer data, gsize capacity);
void     vae_pool_begin (void);
/* Spare blocks beyond this go back to the system at once. */
void vae_pool_set_hold (gsize bytes);
void vae_pool_end (void);

/* ⌊a / b⌋ for b > 0 (C's division rounds toward zero). */
static inline gint
vae_floor_div (gint a, gint b)
{
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* exp for float that the compiler can vectorise (libm's expf is a call):
 * 2^n · p(r) with r in [−ln2/2, ln2/2] and the degree-7 Taylor polynomial
 * (truncation ≤ 6e-9, so float rounding dominates: a few ulp); inputs are
 * clamped to ±88, where float's exp ends. */
static inline gfloat
vae_expf (gfloat x)
{
  const gfloat clamped = x < -88.0f ? -88.0f : (x > 88.0f ? 88.0f : x);
  /* round to nearest by adding and removing 1.5·2²³ (roundf is a libm call
   * that stops the loop from vectorising) */
  const gfloat n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const gfloat r = clamped - n * 0.693145751953125f - n * 1.428606765330187045e-06f;
  gfloat       p = 1.0f / 5040.0f;
  union
  {
    gfloat f;
    gint32 i;
  } scale;

  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  /* NaN stays NaN through p, while the exponent of a NaN would be undefined
   * behaviour (a negative shift) */
  scale.i = ((gint32) (n == n ? n : 0.0f) + 127) << 23;
  return p * scale.f;
}

/* Hot loops are compiled for AVX-512 and AVX2 too, picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VAE_HOT __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VAE_HOT
#endif

G_END_DECLS

#endif
