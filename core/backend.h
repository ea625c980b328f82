/* The backend interface: the few layer operations the VAE graphs are made of.
 * The CPU implementation is cpu.c; cuda/ provides another.  Graph code
 * (kl.c, tiny.c) only calls through this table.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_BACKEND_H
#define VAE_BACKEND_H

#include "vae-private.h"

G_BEGIN_DECLS

typedef enum
{
  VAE_ACT_NONE,
  VAE_ACT_RELU,
  VAE_ACT_SILU
} VaeAct;

static inline gfloat
vae_activate (gfloat v, VaeAct act)
{
  if (act == VAE_ACT_RELU)
    return v > 0.0f ? v : 0.0f;
  if (act == VAE_ACT_SILU)
    return v / (1.0f + vae_expf (-v));
  return v;
}

/* A k×k convolution with explicit padding on each side (AutoencoderKL's
 * downsampler pads only right and bottom). */
typedef struct
{
  gint     out_channels;
  gint     in_channels;
  gint     kernel;
  gint     stride;
  gint     pad_top, pad_left, pad_bottom, pad_right;
  gfloat  *weight;        /* out × in × k × k */
  gfloat  *bias;          /* out, or NULL */
  gfloat  *winograd;      /* cached transformed weights (winograd.c), or NULL */
  guint16 *winograd_bf16; /* the same in bfloat16, for vae_gemm_bf16_batch */
  gpointer device;        /* the weights uploaded to a device (cuda/), or NULL */
} VaeConv;

typedef struct
{
  gint     channels;
  gint     groups;
  gfloat   eps;
  gfloat  *gamma;
  gfloat  *beta;
  gpointer device;
} VaeNorm;

/* Single-head self-attention over all positions, with its own GroupNorm and
 * the residual: out = x + proj(softmax(q kᵀ / √c) v). */
typedef struct
{
  VaeNorm norm;
  VaeConv q, k, v, proj; /* 1×1 */
} VaeAttention;

typedef struct _VaeBackend VaeBackend;
struct _VaeBackend
{
  const gchar *name;
  /* act(conv(up(x)) + bias + residual); up is nearest ×2 when upsample is
   * set; residual may be NULL. */
  VaeTensor *(*conv) (const VaeBackend *be, const VaeConv *conv, const VaeTensor *x,
                      gboolean upsample, const VaeTensor *residual, VaeAct act, GError **error);
  VaeTensor *(*norm) (const VaeBackend *be, const VaeNorm *norm, const VaeTensor *x, VaeAct act,
                      GError **error);
  VaeTensor *(*attention) (const VaeBackend *be, const VaeAttention *attention, const VaeTensor *x,
                           GError **error);
  /* 3·tanh(x/3), TAESD's soft clamp of latents. */
  VaeTensor *(*clamp) (const VaeBackend *be, const VaeTensor *x, GError **error);
  /* norm, written over X's own values; NULL where a backend cannot. */
  gboolean (*norm_in_place) (const VaeBackend *be, const VaeNorm *norm, VaeTensor *x, VaeAct act,
                             GError **error);
  /* Makes *TENSOR, which this backend returned, a plain host tensor; NULL
   * where its tensors always are (the CPU's). */
  gboolean (*to_host) (const VaeBackend *be, VaeTensor **tensor, GError **error);
};

/* norm(X) for a tensor nobody reads afterwards: in place where the backend
 * can, so the pass holds one tensor instead of two.  X is consumed. */
static inline VaeTensor *
vae_norm_consume (const VaeBackend *be, const VaeNorm *norm, VaeTensor *x, VaeAct act,
                  GError **error)
{
  VaeTensor *y;

  if (be->norm_in_place)
    {
      if (be->norm_in_place (be, norm, x, act, error))
        return x;
      vae_tensor_free (x);
      return NULL;
    }
  y = be->norm (be, norm, x, act, error);
  vae_tensor_free (x);
  return y;
}

const VaeBackend *vae_backend_cpu (void);
/* The CPU backend with Winograd's products in bfloat16 (vae_cpu_has_bf16). */
const VaeBackend *vae_backend_cpu_bf16 (void);

/* Pieces of the CPU backend the tiled executor reuses. */
/* Mean and sum of squared deviations of N values, in double (the reference
 * is float64). */
void vae_moments (const gfloat *p, gsize n, gdouble *mean, gdouble *m2);
void vae_scale_shift_act (const gfloat *src, gfloat *dst, gsize n, gfloat a, gfloat b, VaeAct act);
/* o = v·softmax(qᵀk/√c)ᵀ for ROWS query positions (columns of q and o, whose
 * rows are STRIDE floats apart); SCORES holds vae_cpu_attend_scratch_floats. */
void  vae_cpu_attend (const gfloat *q, gsize q_stride, gint rows, const VaeTensor *k,
                      const VaeTensor *v, gfloat *o, gsize o_stride, gfloat *scores);
gsize vae_cpu_attend_scratch_floats (gint n);
/* Scratch bytes the CPU convolution takes for an OUT_H × OUT_W output. */
gsize vae_cpu_conv_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w);

/* ---- the tiled executor (tiled.c) ---------------------------------------- */

/* Every layer runs in bands of full-width rows, each band reading its input
 * rows plus the halo the kernel needs, so results equal the plain run's up to
 * float rounding.  GroupNorm statistics are gathered over all bands before
 * any band is normalised (the normalisation is then applied as the next
 * layer reads its band).  Tensors above FILE_BYTES live in an unlinked
 * temporary file ($TMPDIR), so memory is bounded by the band size. */
typedef struct
{
  gint  image_height; /* rows of the image the network reads or writes */
  gint  band_pixels;  /* band height in image rows */
  gsize file_bytes;   /* tensors larger than this go to a temporary file */
  gint  bands_total;  /* bands in the whole pass, for progress; 0: unknown */
  gsize spare_bytes;  /* the pool's spare blocks and the Winograd cache, each */
} VaeTileSettings;

VaeBackend *vae_backend_tiled_new (const VaeBackend *inner, const VaeTileSettings *settings);
/* One pass in bands of SETTINGS: the result plain, or NULL with an error. */
typedef VaeTensor *(*VaeBandedPass) (const VaeTileSettings *settings, gpointer data,
                                     GError **error);
/* PASS in bands of SETTINGS's height (in image rows), then of half that, and
 * so on down to MIN_ROWS, for as long as it runs out of memory; a device's
 * way to finish a pass too large for it.  SETTINGS ends with the height
 * that was tried last. */
VaeTensor *vae_tiled_while_out_of_memory (VaeTileSettings *settings, gint min_rows,
                                          VaeBandedPass pass, gpointer data, GError **error);
void       vae_backend_tiled_free (VaeBackend *backend);
/* Rows per band for a layer of HEIGHT rows. */
gint vae_tiled_band_rows (const VaeTileSettings *settings, gint height);
/* What the largest band of a convolution holds beyond its input and output
 * tensors: input rows with halo, output (and residual) rows, scratch. */
gsize vae_tiled_conv_band_bytes (const VaeTileSettings *settings, const VaeConv *conv, gint in_h,
                                 gint in_w, gboolean upsample, gboolean residual);
/* Turns a tensor made by the tiled executor into a plain one. */
gboolean vae_tiled_materialize (VaeTensor **tensor, GError **error);

/* Winograd F(4×4,3×3) for 3×3 stride-1 "same" convs of 8+ input channels:
 * y = act(conv(up(x)) + bias + residual), every value of Y written (the
 * residual may be NULL); the products in bfloat16 when BF16. */
gboolean vae_winograd_applies (const VaeConv *conv);
gboolean vae_winograd_conv (const VaeConv *conv, const VaeTensor *x, gboolean upsample,
                            const VaeTensor *residual, VaeAct act, gboolean bf16, VaeTensor *y,
                            GError **error);
void     vae_winograd_release (VaeConv *conv);
/* Whether CONV's transformed weights are kept (up to the cache limit) when
 * it makes an OUT_H × OUT_W output. */
gboolean vae_winograd_caches (const VaeConv *conv, gint out_h, gint out_w);
gsize    vae_winograd_weight_bytes (const VaeConv *conv);
/* Transformed weights kept across passes, in bytes (what is kept stays). */
void  vae_winograd_set_cache_limit (gsize bytes);
gsize vae_winograd_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w);
/* Whether convs of few channels run in per-thread chunks (the default where
 * the CPU has the kernels); tests turn it off to check the banded path. */
void vae_winograd_set_chunked (gboolean allowed);
/* ---- bfloat16 on the CPU (bf16.c) -------------------------------------------- */

/* Which of 16 AVX-512 lanes hold one of COLS columns (all when COLS ≥ 16):
 * the mask the kernels of bf16.c and sgemm.c load and store partial
 * panels with. */
static inline guint16
vae_columns_mask (gint cols)
{
  return cols >= 16 ? 0xffff : cols <= 0 ? 0 : (guint16) ((1u << cols) - 1);
}

/* Whether this CPU has AVX512-BF16 (and this build its kernels). */
gboolean vae_cpu_has_bf16 (void);
/* To nearest, ties to even; NaN stays NaN. */
static inline guint16
vae_bf16_round (gfloat value)
{
  union
  {
    gfloat  f;
    guint32 u;
  } bits = { value };

  if ((bits.u & 0x7fffffffu) > 0x7f800000u)
    return (guint16) ((bits.u >> 16) | 0x40);
  return (guint16) ((bits.u + 0x7fffu + ((bits.u >> 16) & 1u)) >> 16);
}

static inline gfloat
vae_bf16_value (guint16 bf16)
{
  union
  {
    guint32 u;
    gfloat  f;
  } bits = { (guint32) bf16 << 16 };
  return bits.f;
}

gint vae_bf16_pairs (gint k); /* k values as bf16 pairs: ⌈k/2⌉ */
/* A (m × k fp32) as rows of 2·pairs(k) bf16, the odd k padded with zero. */
void vae_bf16_pack_rows (const gfloat *a, gint m, gint k, guint16 *packed);
/* C_g = A_g·B_g for g < COUNT (A_g at a + g·a_stride, packed rows; B_g
 * k × n fp32, rounded to bf16; C_g m × n fp32), products summed in fp32.
 * Only where vae_cpu_has_bf16. */
void vae_gemm_bf16_batch (gint count, gint m, gint n, gint k, const guint16 *a, gsize a_stride,
                          const gfloat *b, gsize b_stride, gfloat *c, gsize c_stride);
/* C = A·B as above, one product with B's rows LDB and C's rows LDC apart. */
void vae_gemm_bf16_parallel (gint m, gint n, gint k, const guint16 *a, const gfloat *b, gsize ldb,
                             gfloat *c, gsize ldc);
/* C = A·B (B k × n with row stride ldb, C with ldc) on the calling thread
 * alone, for products that stay in its cache; PANEL holds
 * vae_bf16_panel_elements (k) values. */
gsize vae_bf16_panel_elements (gint k);
void vae_gemm_bf16 (gint m, gint n, gint k, const guint16 *a, const gfloat *b, gsize ldb, gfloat *c,
                    gsize ldc, guint16 *panel);

/* ---- a small fp32 product on one thread (sgemm.c) ----------------------------- */

/* Whether this CPU has AVX-512F (and this build the kernel). */
gboolean vae_cpu_has_avx512 (void);
/* C = A·B (A m × k with row stride lda, B k × n with ldb, C with ldc) on the
 * calling thread, for products that stay in its cache.  Only where
 * vae_cpu_has_avx512. */
void vae_sgemm_small (gint m, gint n, gint k, const gfloat *a, gsize lda, const gfloat *b,
                      gsize ldb, gfloat *c, gsize ldc);

/* ---- OpenBLAS, opened on first use (blas.c) --------------------------------- */

/* TRUE once OpenBLAS is loaded; an error when it cannot be, or when an
 * address-space limit leaves no room for its buffers.  Layers call it
 * before any product. */
gboolean vae_blas_ready (GError **error);
/* Row-major C = alpha·op(A)·op(B) + beta·C (op: transposed when TRANS_*). */
void vae_sgemm (gboolean trans_a, gboolean trans_b, gint m, gint n, gint k, gfloat alpha,
                const gfloat *a, gsize lda, const gfloat *b, gsize ldb, gfloat beta, gfloat *c,
                gsize ldc);

/* The plain im2col + SGEMM convolution, the reference the fast kernels are
 * tested against. */
VaeTensor *vae_cpu_conv_reference (const VaeConv *conv, const VaeTensor *x, gboolean upsample,
                                   const VaeTensor *residual, VaeAct act, GError **error);

/* Graphs report after each of TOTAL steps (to this thread's callback);
 * while bands are being counted (the tiled executor) or a pass is only
 * planned, those steps are not passed on. */
void vae_progress_step (gint done, gint total);
void vae_progress_band (gint done, gint total);
typedef enum
{
  VAE_PROGRESS_LAYERS,
  VAE_PROGRESS_BANDS,
  VAE_PROGRESS_QUIET
} VaeProgressMode;
void vae_progress_set_mode (VaeProgressMode mode);

/* Backends add the multiply-adds they do (see vae_macs_counted). */
void vae_backend_count_macs (guint64 macs);

void vae_conv_clear (VaeConv *conv);
void vae_norm_clear (VaeNorm *norm);
void vae_attention_clear (VaeAttention *attention);
/* Output size of CONV on an input of H × W (already upsampled). */
void vae_conv_output_size (const VaeConv *conv, gint height, gint width, gint *out_h, gint *out_w);
/* The output size of CONV on X (upsampled when UP), or an error when X is
 * too small for it. */
gboolean vae_conv_output_checked (const VaeConv *conv, const VaeTensor *x, gboolean up, gint *out_h,
                                  gint *out_w, GError **error);

/* A network half: encoder or decoder of some family. */
typedef struct _VaeNet VaeNet;
struct _VaeNet
{
  VaeTensor *(*forward) (VaeNet *net, const VaeBackend *backend, const VaeTensor *x,
                         GError **error);
  void (*free) (VaeNet *net);
  gint in_channels;
  gint out_channels;
  gint factor; /* spatial down- (encoder) or upscale (decoder) */
};

void vae_net_free (VaeNet *net);

/* ---- backend choice (compute.c) --------------------------------------------- */

/* This thread's backend and precision through vae_compute_resolve. */
gboolean vae_compute_choose (VaeCompute *chosen, GError **error);
/* NET on X on the CUDA device, in bands of TILES unless NULL (the band
 * tensors cross to the host between layers), the result in host memory; a
 * half-precision pass that gives non-finite values is redone in fp32.
 * Device memory running out is VAE_ERROR_NO_MEMORY. */
VaeTensor *vae_device_forward (VaeNet *net, const VaeTensor *x, VaePrecision precision,
                               const VaeTileSettings *tiles, GError **error);
/* Frees what a device backend stored in a VaeConv's or VaeNorm's `device`. */
void vae_device_weights_free (gpointer weights);

/* Replaces *t by NEXT, usually computed from it, freeing the old tensor;
 * FALSE when NEXT failed (its error is set). */
static inline gboolean
vae_tensor_replace (VaeTensor **t, VaeTensor *next)
{
  vae_tensor_free (*t);
  *t = next;
  return next != NULL;
}

/* The structure of the AutoencoderKL or TAESD weights in a file. */
typedef struct
{
  VaeKind  kind;
  gint     raw_channels;
  gint     raw_factor;
  gboolean quant_convs;
  gboolean batch_norm;
  gboolean pool_branch;
  gboolean encoder_present;
  gboolean decoder_present;
} VaeStructure;

gboolean vae_kl_detect (const VaeWeights *weights);
/* Builds what the file holds: encoder (image in [-1,1] → 2Z moments after
 * quant_conv) and/or decoder (Z latent → image in [-1,1], post_quant_conv
 * included); FLUX.2 BatchNorm statistics into bn_mean/bn_var when present. */
gboolean vae_kl_build (const VaeWeights *weights, VaeStructure *structure, VaeNet **encoder,
                       VaeNet **decoder, gfloat **bn_mean, gfloat **bn_var, GError **error);

gboolean vae_tiny_detect (const VaeWeights *weights);
/* Builds the encoder (image in [0,1] → Z) and/or decoder (Z → image) held. */
gboolean vae_tiny_build (const VaeWeights *weights, VaeStructure *structure, VaeNet **encoder,
                         VaeNet **decoder, GError **error);

G_END_DECLS

#endif
