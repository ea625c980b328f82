/* The CPU backend (cpu.c) and its kernels: Winograd (winograd.c), bfloat16
 * products (bf16.c), small fp32 products (sgemm.c), OpenBLAS products
 * (gemm.c).  The tiled executor reuses a few of its pieces.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_CPU_H
#define VAE_CPU_H

#include "backend.h"

G_BEGIN_DECLS

/* Eight floats as one AVX2 register (GCC's vector extension: plain SSE
 * pairs in the default build); the shuffles (__builtin_shufflevector) of
 * direct.c and winograd.c work on it. */
typedef gfloat Floats8 __attribute__ ((vector_size (32)));

/* Rows [FIRST, FIRST + ROWS) of T, which a conv reads (or adds) as a
 * tensor of ROWS rows: a band of T, not copied. */
typedef struct
{
  const VaeTensor *t;
  gint             first, rows;
} VaeRows;
static inline VaeRows
vae_rows_all (const VaeTensor *t)
{
  return (VaeRows){ t, 0, t ? t->height : 0 };
}

const VaeBackend *vae_backend_cpu (void);
/* The CPU backend with Winograd's products in bfloat16 (vae_cpu_has_bf16). */
const VaeBackend *vae_backend_cpu_bf16 (void);

/* Pieces of the CPU backend the tiled executor reuses. */
/* Mean and sum of squared deviations of N values, in double (the reference
 * is float64). */
void vae_moments (const gfloat *p, gsize n, gdouble *mean, gdouble *m2);
void vae_scale_shift_act (const gfloat *src, gfloat *dst, gsize n, gfloat a, gfloat b, VaeAct act);
/* A GroupNorm's per-channel y = x·A[c] + B[c] for X (statistics in double). */
void vae_cpu_norm_scale_shift (const VaeNorm *norm, const VaeTensor *x, gfloat *a, gfloat *b);
/* The RMS norm (norm->kind VAE_NORM_RMS) of positions [FIRST, FIRST + COUNT)
 * of each of the norm's channel planes, PLANE floats apart; Y may be X. */
void vae_rms_norm_span (const VaeNorm *norm, const gfloat *x, gfloat *y, gsize plane, gsize first,
                        gsize count, VaeAct act);
/* o = v·softmax(qᵀk/√c)ᵀ for ROWS query positions (columns of q and o, whose
 * rows are STRIDE floats apart); SCORES holds vae_cpu_attend_scratch_floats. */
void  vae_cpu_attend (const gfloat *q, gsize q_stride, gint rows, const VaeTensor *k,
                      const VaeTensor *v, gfloat *o, gsize o_stride, gfloat *scores);
gsize vae_cpu_attend_scratch_floats (gint n);
/* Scratch bytes the CPU convolution takes for an OUT_H × OUT_W output. */
gsize vae_cpu_conv_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w);

/* The backends' residual_block (block.c), and whether it runs BLOCK on
 * the input X in bands, then with *BAND_BYTES held at most besides the
 * input and the output (the memory plan's figure). */
VaeTensor *vae_cpu_residual_block (const VaeBackend *be, const VaeResidualBlock *block,
                                   const VaeTensor *x, GError **error);
gboolean   vae_cpu_residual_block_banded (const VaeResidualBlock *block, const VaeTensor *x,
                                          gsize *band_bytes);
/* Convs of bands of rows (a banded block's) on BE.  Where Winograd takes
 * the conv, X and RESIDUAL are read where they are and Y written once;
 * the other kernels read a copy of X's rows (where they are not all of
 * X) and write their own output, which vae_cpu_conv_rows copies into Y.
 * vae_cpu_conv_rows: the first OUT_H rows of act(conv(up(X)) + RESIDUAL)
 * into Y's rows from Y_ROW (RESIDUAL has OUT_H rows, or is NULL);
 * vae_cpu_conv_band: act(conv(up(X))) as a new tensor. */
gboolean   vae_cpu_conv_rows (const VaeBackend *be, const VaeConv *conv, const VaeRows *x,
                              gboolean upsample, const VaeRows *residual, VaeAct act, VaeTensor *y,
                              gint y_row, gint out_h, GError **error);
VaeTensor *vae_cpu_conv_band (const VaeBackend *be, const VaeConv *conv, const VaeRows *x,
                              gboolean upsample, VaeAct act, GError **error);
/* A conv of a banded block and the output size of its bands. */
typedef struct
{
  const VaeConv *conv;
  gint           out_h, out_w;
} VaeBandConv;
#define VAE_BLOCK_CONVS 5 /* pre, the three, post */
/* The convs BLOCK runs band by band on X, at most VAE_BLOCK_CONVS, into
 * CONVS (0 where it runs whole), each with about the size of its smallest
 * band's output: the memory plan counts the transformed weights each may
 * keep (vae_winograd_caches), never fewer than a pass keeps. */
gint vae_cpu_residual_block_band_convs (const VaeResidualBlock *block, const VaeTensor *x,
                                        VaeBandConv *convs);

/* The backends' resnet (resnet.c), and whether it fuses RESNET on the input
 * X (then X and conv1's output are alive, besides a conv's scratch); BF16
 * for the bf16 backend. */
VaeTensor *vae_cpu_resnet (const VaeBackend *be, const VaeResnet *resnet, VaeTensor *x,
                           GError **error);
gboolean   vae_cpu_resnet_fuses (const VaeResnet *resnet, const VaeTensor *x, gboolean bf16);

/* ---- DC-AE's layers (dcae.c), whole tensors or the tiled executor's bands ---- */

void vae_cpu_add (const VaeTensor *a, const VaeTensor *b, VaeTensor *y);
/* Y (C/2 channels) = X[:C/2] · SiLU(X[C/2:]). */
void vae_cpu_gate (const VaeTensor *x, VaeTensor *y);
/* The ReLU linear attention of VaeBackend.linear_attention in two halves:
 * SUMS (vae_linear_attention_sums_size doubles, zeroed first) gathers each
 * group's (d + 1) × d sums over X's positions, call by call; APPLY writes
 * OUT's positions (those of X) from them.  SCRATCH holds
 * vae_linear_attention_scratch_floats for X's positions. */
gsize vae_linear_attention_sums_size (const VaeTensor *x, gint head_dim);
gsize vae_linear_attention_scratch_floats (gint head_dim, gsize positions);
void  vae_linear_attention_sums (const VaeTensor *x, gint head_dim, gdouble *sums, gfloat *scratch);
void vae_linear_attention_apply (const VaeTensor *x, gint head_dim, gfloat eps, const gdouble *sums,
                                 VaeTensor *out, gfloat *scratch);
/* Rows of the ×2 pixel shuffle: Y holds output rows from Y_ROW0 on, X the
 * input rows they read, from X_ROW0 on. */
void vae_pixel_shuffle_rows (const VaeTensor *x, gint x_row0, VaeTensor *y, gint y_row0);

/* A per-channel act(x·scale + shift) a convolution applies to its input
 * as it reads it: a GroupNorm that is never stored. */
typedef struct
{
  const gfloat *scale;
  const gfloat *shift;
  VaeAct        act;
} VaeInputNorm;

/* Winograd F(4×4,3×3) for 3×3 stride-1 "same" convs of 8+ input channels:
 * y = act(conv(up(norm(x))) + bias + residual), every value of Y written
 * (NORM and the residual may be NULL; Y may be the residual, each value
 * read before it is written); the products in bfloat16 when BF16. */
gboolean vae_winograd_applies (const VaeConv *conv);
gboolean vae_winograd_conv (const VaeConv *conv, const VaeTensor *x, const VaeInputNorm *norm,
                            gboolean upsample, const VaeTensor *residual, VaeAct act, gboolean bf16,
                            VaeTensor *y, GError **error);
/* The same for a band: X's rows (not normalised), RESIDUAL's rows (or
 * NULL), the OUT_H output rows written into Y from its row Y_ROW. */
gboolean vae_winograd_conv_rows (const VaeConv *conv, const VaeRows *x, gboolean upsample,
                                 const VaeRows *residual, VaeAct act, gboolean bf16, VaeTensor *y,
                                 gint y_row, gint out_h, GError **error);
/* Whether CONV's transformed weights are kept (up to the cache limit) when
 * it makes an OUT_H × OUT_W output. */
gboolean vae_winograd_caches (const VaeConv *conv, gint out_h, gint out_w);
gsize    vae_winograd_weight_bytes (const VaeConv *conv);
/* Transformed weights kept across passes, in bytes (what is kept stays),
 * and the bytes kept now. */
void  vae_winograd_set_cache_limit (gsize bytes);
gsize vae_winograd_cached_bytes (void);
gsize vae_winograd_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w);
/* Whether convs of few channels run in per-thread chunks (the default where
 * the CPU has the kernels); tests turn it off to check the banded path. */
void vae_winograd_set_chunked (gboolean allowed);
/* A convolution's epilogue on N values: dst = act(src + B + residual)
 * (RESIDUAL may be NULL; DST may be SRC). */
void vae_cpu_epilogue (const gfloat *src, const gfloat *residual, gsize n, gfloat b, VaeAct act,
                       gfloat *dst);
/* Convs Winograd does not take, of at most 4608 terms per output, in
 * per-thread chunks of im2col columns (direct.c), fp32:
 * y = act(conv(up(x)) + bias + residual).  Where vae_sgemm_small has a
 * kernel (AVX2 or AVX-512). */
gboolean vae_direct_conv_applies (const VaeConv *conv);
gsize    vae_direct_conv_scratch_bytes (const VaeConv *conv);
gboolean vae_direct_conv (const VaeConv *conv, const VaeTensor *x, gboolean up,
                          const VaeTensor *residual, VaeAct act, VaeTensor *y, GError **error);
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
/* Columns of B one panel holds. */
#define VAE_BF16_PANEL 32
/* Columns [N0, N0 + COLS) of B (k × ldb, fp32) as bf16 pairs into P
 * ([k/2][VAE_BF16_PANEL][2]), zero beyond COLS and k. */
void vae_bf16_pack_panel (const gfloat *b, gsize ldb, gint k, gint n0, gint cols, guint16 *p);
/* Pairs [KK0, KK1) of that panel into P (zero beyond k): a panel in
 * slices; with RESIDUE, of b − bf16(b) instead of b. */
void vae_bf16_pack_pairs (const gfloat *b, gsize ldb, gint k, gint kk0, gint kk1, gint n0,
                          gint cols, gboolean residue, guint16 *p);
/* As vae_bf16_pack_rows, of a − bf16(a): what bf16 leaves of A. */
void vae_bf16_pack_rows_low (const gfloat *a, gint m, gint k, guint16 *packed);

/* ---- bfloat16 products on AMX tiles (amx.c) ------------------------------------ */

/* The bf16 paths GEGL_VAE_AMX picks for comparisons (read once): unset,
 * the default; 0, no tiles; single, Winograd with one bf16 product; direct,
 * im2col products; winograd, Winograd's split products (no amx-conv.c). */
typedef enum
{
  VAE_AMX_DEFAULT,
  VAE_AMX_OFF,
  VAE_AMX_SINGLE,
  VAE_AMX_DIRECT,
  VAE_AMX_WINOGRAD
} VaeAmxPath;
VaeAmxPath vae_amx_path (void);
/* Whether this CPU has AMX-BF16, this build its kernel, Linux lets this
 * process use the tiles and GEGL_VAE_AMX is not 0; vae_gemm_bf16 and the
 * products above then run on the tiles wherever A has 16 rows or more. */
gboolean vae_cpu_has_amx (void);
/* vae_gemm_bf16 on AMX tiles; PANEL holds vae_amx_panel_elements (k)
 * values.  Only where vae_cpu_has_amx.  Split products where A_LOW (the
 * packed rows of vae_bf16_pack_rows_low) is not NULL: A·B ≈ Ah·Bh + Ah·Bl
 * + Al·Bh, h and l the bf16 values and what they leave, products with
 * about 16 bits of each operand instead of 8, at 3× the multiplications. */
gsize vae_amx_panel_elements (gint k);
void  vae_amx_gemm (gint m, gint n, gint k, const guint16 *a, const guint16 *a_low, const gfloat *b,
                    gsize ldb, gfloat *c, gsize ldc, guint16 *panel);
/* Every tile 16 rows of 64 bytes on the calling thread, before its tile
 * instructions; and the tile state released after them.  Only where
 * vae_cpu_has_amx. */
void vae_amx_tiles_begin (void);
void vae_amx_tiles_end (void);
/* C_g = A_g·B_g for g < COUNT on AMX tiles, as vae_gemm_bf16_batch with B's
 * rows LDB and C's rows LDC apart, in blocks that stay in a core's cache,
 * shared out among the threads.  Only where vae_cpu_has_amx. */
void vae_amx_products (gint count, gint m, gint n, gint k, const guint16 *a, const guint16 *a_low,
                       gsize a_stride, const gfloat *b, gsize ldb, gsize b_stride, gfloat *c,
                       gsize ldc, gsize c_stride);

/* ---- bf16 3×3 convolutions as direct products on AMX tiles (amx-conv.c) ------- */

/* Whether a bf16 pass runs CONV there: a 3×3 convolution of stride 1
 * ("same") or 2 (padded by at most one before), of 32+ input channels and
 * 32+ or at most 16 output channels, vae_cpu_has_amx, and GEGL_VAE_AMX
 * not winograd, single or direct. */
gboolean vae_amx_conv_applies (const VaeConv *conv);
/* y = act(conv(up(x)) + bias + residual), every value of Y written; the
 * inputs and weights rounded to bf16, the products summed in fp32. */
gboolean vae_amx_conv (const VaeConv *conv, const VaeTensor *x, gboolean up,
                       const VaeTensor *residual, VaeAct act, VaeTensor *y, GError **error);
gsize    vae_amx_conv_scratch_bytes (const VaeConv *conv, gint out_h, gint out_w);
/* Activations in bf16, laid out as the AMX conv that reads them packs its
 * input (pairs of channels, its padding included), so that the conv
 * before writes them there and the reader packs nothing: a band's inner
 * tensors (block.c).  Where WRITER's output is READER's input, both on
 * the tiles, READER of stride 1 and whole tiles of channels. */
typedef struct _VaeAmxActs VaeAmxActs;
gboolean                   vae_amx_acts_apply (const VaeConv *writer, const VaeConv *reader);
/* Room for HEIGHT × WIDTH activations read by READER, padding zeroed. */
VaeAmxActs *vae_amx_acts_new (const VaeConv *reader, gint height, gint width, GError **error);
void        vae_amx_acts_free (VaeAmxActs *acts);
/* vae_amx_conv (not upsampled) of an OUT_H × OUT_W output, reading X, or
 * XP's rows from XP_ROW where X is NULL, adding RESIDUAL where given, and
 * writing Y's rows from Y_ROW, or YP where Y is NULL. */
gboolean vae_amx_conv_packed (const VaeConv *conv, const VaeRows *x, const VaeAmxActs *xp,
                              gint xp_row, const VaeRows *residual, VaeAct act, gint out_h,
                              gint out_w, VaeTensor *y, gint y_row, VaeAmxActs *yp, GError **error);

/* ---- OpenBLAS, opened on first use (blas.c) --------------------------------- */

/* TRUE once OpenBLAS is loaded; an error when it cannot be, or when an
 * address-space limit leaves no room for its buffers.  Layers call it
 * before any product. */
gboolean vae_blas_ready (GError **error);
/* The name of the kernel set OpenBLAS runs ("SkylakeX", "Haswell"), once
 * vae_blas_ready has passed; NULL before, or where it does not tell. */
const gchar *vae_blas_core (void);
/* Whether that set lacks AVX2 where the CPU has it: OpenBLAS did not know
 * the CPU, and vae_sgemm runs sgemm.c's kernels instead. */
gboolean vae_blas_falls_back (void);
/* One cblas_sgemm call, row-major: C = alpha·op(A)·op(B) + beta·C. */
void vae_blas_sgemm (gboolean trans_a, gboolean trans_b, gint m, gint n, gint k, gfloat alpha,
                     const gfloat *a, gsize lda, const gfloat *b, gsize ldb, gfloat beta, gfloat *c,
                     gsize ldc);

/* ---- fp32 products through OpenBLAS (gemm.c) ----------------------------------- */

/* C = alpha·op(A)·op(B), row-major as cblas_sgemm with beta 0, on this
 * thread's team; the values do not depend on the number of threads. */
void vae_sgemm (gboolean trans_a, gboolean trans_b, gint m, gint n, gint k, gfloat alpha,
                const gfloat *a, gsize lda, const gfloat *b, gsize ldb, gfloat *c, gsize ldc);
/* C_g = A_g·B_g for g < COUNT (A_g m × k at a + g·a_stride, B_g k × n, C_g
 * m × n, all rows contiguous), likewise. */
void vae_sgemm_batch (gint count, gint m, gint n, gint k, const gfloat *a, gsize a_stride,
                      const gfloat *b, gsize b_stride, gfloat *c, gsize c_stride);

/* ---- a small fp32 product on one thread (sgemm.c) ----------------------------- */

/* Whether this CPU has AVX-512F (and this build the kernel). */
gboolean vae_cpu_has_avx512 (void);
/* Whether vae_sgemm_small has a kernel here: AVX-512F, or AVX2 with FMA. */
gboolean vae_cpu_has_small_sgemm (void);
/* Floats of an m × k A as vae_sgemm_small reads it, and A (row stride lda)
 * into that layout: panels of 6 rows on AVX2, 8 on AVX-512 (each column's
 * values side by side, the last panel padded with zeros). */
gsize vae_sgemm_small_a_floats (gint m, gint k);
void  vae_sgemm_small_pack_a (gint m, gint k, const gfloat *a, gsize lda, gfloat *packed);
/* C = A·B (A m × k from vae_sgemm_small_pack_a, B k × n with row stride
 * ldb, C with ldc) on the calling thread, for products that stay in its
 * cache.  Only where vae_cpu_has_small_sgemm. */
void vae_sgemm_small (gint m, gint n, gint k, const gfloat *a, const gfloat *b, gsize ldb,
                      gfloat *c, gsize ldc);
/* C (m × n, row stride ldc) = alpha·op(A)·op(B) as cblas_sgemm with beta
 * 0, through vae_sgemm_small: A packed (unless A_PACKED: SCRATCH holds it
 * from the last call) and Bᵀ transposed into SCRATCH, of
 * vae_sgemm_block_floats. */
gsize vae_sgemm_block_floats (gint m, gint n, gint k, gboolean trans_b);
void  vae_sgemm_block (gboolean trans_a, gboolean trans_b, gint m, gint n, gint k, gfloat alpha,
                       const gfloat *a, gsize lda, gboolean a_packed, const gfloat *b, gsize ldb,
                       gfloat *c, gsize ldc, gfloat *scratch);

/* act(conv_transpose(x) + bias) (transpose.c), and the scratch bytes it
 * takes for an OUT_H × OUT_W output. */
VaeTensor *vae_cpu_conv_transpose (const VaeConvTranspose *layer, const VaeTensor *x, VaeAct act,
                                   GError **error);
gsize vae_cpu_conv_transpose_scratch_bytes (const VaeConvTranspose *layer, gint out_h, gint out_w);

/* The plain im2col + SGEMM convolution, the reference the fast kernels are
 * tested against. */
VaeTensor *vae_cpu_conv_reference (const VaeConv *conv, const VaeTensor *x, gboolean upsample,
                                   const VaeTensor *residual, VaeAct act, GError **error);

G_END_DECLS

#endif
