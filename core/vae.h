/* gegl-vae — Stable-Diffusion-family VAEs as a C library.
 *
 * This is libvae's one public header.  It knows nothing of GEGL: images and
 * latents are planar float32 tensors (channels × height × width), errors are
 * GErrors in VAE_ERROR.
 *
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_H
#define VAE_H

#include <glib.h>
#include <stdio.h>

G_BEGIN_DECLS

/* ---- errors ------------------------------------------------------------ */

#define VAE_ERROR (vae_error_quark ())
GQuark vae_error_quark (void);

typedef enum
{
  VAE_ERROR_IO,          /* a file could not be read or written */
  VAE_ERROR_FORMAT,      /* a file is malformed or truncated */
  VAE_ERROR_UNSAFE,      /* a pickle asks for something we never run */
  VAE_ERROR_UNSUPPORTED, /* a valid file we do not handle (dtype, method…) */
  VAE_ERROR_MODEL,       /* weights do not form a model we know */
  VAE_ERROR_INPUT,       /* bad image or latent (size, channels, NaN) */
  VAE_ERROR_LIMIT,       /* a configured limit was exceeded */
  VAE_ERROR_NO_MEMORY,   /* an allocation failed */
  VAE_ERROR_NOT_FOUND,   /* a model or preset could not be found */
  VAE_ERROR_CANCELLED    /* the run was asked to stop (VaeRun.cancel) */
} VaeError;

/* ---- tensors ----------------------------------------------------------- */

/* A rectangle of pixels (of a latent or a picture). */
typedef struct
{
  gint x, y, width, height;
} VaeRect;

/* A planar float32 tensor in host memory: data[(c * height + y) * width + x].
 * Images are 3 channels of sRGB-encoded values in [0, 1]; latents are C
 * channels in the diffusion scale of their family. */
typedef struct
{
  gint     channels;
  gint     height;
  gint     width;
  gfloat  *data;     /* NULL while the values live elsewhere (internal) */
  gsize    capacity; /* bytes behind data (internal) */
  gpointer external; /* tiled or device storage, or NULL (internal) */
} VaeTensor;

/* Allocates a zeroed tensor; fails with VAE_ERROR_LIMIT or _NO_MEMORY rather
 * than aborting. */
VaeTensor *vae_tensor_new (gint channels, gint height, gint width, GError **error);
void       vae_tensor_free (VaeTensor *tensor);
gsize      vae_tensor_n_elements (const VaeTensor *tensor);
/* Fails with VAE_ERROR_INPUT naming the first non-finite element. */
gboolean vae_tensor_check_finite (const VaeTensor *tensor, const gchar *what, GError **error);
/* The same for a tensor about to be written to PATH: writers call it first,
 * so a non-finite value fails the write and leaves PATH as it was. */
gboolean vae_tensor_check_output (const VaeTensor *tensor, const gchar *path, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VaeTensor, vae_tensor_free)

/* ---- weight files -------------------------------------------------------- */

typedef enum
{
  VAE_DTYPE_F64,
  VAE_DTYPE_F32,
  VAE_DTYPE_F16,
  VAE_DTYPE_BF16,
  VAE_DTYPE_I64,
  VAE_DTYPE_I32,
  VAE_DTYPE_I16,
  VAE_DTYPE_I8,
  VAE_DTYPE_U8,
  VAE_DTYPE_BOOL,
  VAE_DTYPE_F8_E4M3,
  VAE_DTYPE_F8_E5M2
} VaeDtype;

#define VAE_MAX_DIMS 8

typedef struct _VaeWeights VaeWeights;

/* Reads a safetensors file or a PyTorch zip (.pth/.ckpt), chosen by content.
 * Names keep their original spelling; see vae_weights_get. */
VaeWeights  *vae_weights_load (const gchar *path, GError **error);
void         vae_weights_free (VaeWeights *weights);
const gchar *vae_weights_get_path (const VaeWeights *weights);
guint        vae_weights_count (const VaeWeights *weights);
/* Names in file order. */
const gchar *vae_weights_name (const VaeWeights *weights, guint index);
gboolean     vae_weights_shape (const VaeWeights *weights, const gchar *name, gint *ndim,
                                gint64 shape[VAE_MAX_DIMS], VaeDtype *dtype);
/* A float32 copy of a floating-point tensor (F64/F32/F16/BF16, converted
 * exactly where exactness is possible); NULL with an error naming file and
 * tensor otherwise.  Free with g_free. */
gfloat      *vae_weights_get_float (const VaeWeights *weights, const gchar *name, gsize *n_elements,
                                    GError **error);
const gchar *vae_dtype_name (VaeDtype dtype);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VaeWeights, vae_weights_free)

/* ---- families ------------------------------------------------------------ */

typedef enum
{
  VAE_KIND_KL,    /* AutoencoderKL: SD1/2, SDXL, SD3, FLUX.1, FLUX.2 */
  VAE_KIND_TINY,  /* TAESD family */
  VAE_KIND_VQ,    /* VQModel (diffusers; LDM's vq-f4, vq-f8): AutoencoderKL's halves around a
                   * learned codebook, quant_conv and post_quant_conv */
  VAE_KIND_VQVAE, /* the small VQ-VAE of van den Oord et al. in the seed's layout: 4×4 stride-2
                   * convs, residual stacks, 4×4 stride-2 transposed convs, a codebook */
  VAE_KIND_QWEN_IMAGE,   /* AutoencoderKLQwenImage, AutoencoderKLWan (Wan 2.1, 2.2) on one frame */
  VAE_KIND_DCAE,         /* Sana's DC-AE (AutoencoderDC) */
  VAE_KIND_HUNYUAN_IMAGE /* HunyuanImage 2.1's (AutoencoderKLHunyuanImage) */
} VaeKind;

typedef enum
{
  VAE_SCHEDULE_SD_SCALED_LINEAR, /* SD1/2/XL: β = linspace(√0.00085, √0.012, 1000)² */
  VAE_SCHEDULE_LINEAR,           /* DDPM: β = linspace(1e-4, 0.02, 1000) */
  VAE_SCHEDULE_COSINE,           /* improved DDPM, s = 0.008, β ≤ 0.999 */
  VAE_SCHEDULE_FLOW              /* rectified flow (SD3, FLUX): σ = (t + 1) / 1000 */
} VaeSchedule;

/* A family descriptor from presets/families/NAME.ini.  A VQ descriptor may
 * leave raw_channels and raw_factor 0: a loaded model's family then has its
 * own. */
typedef struct
{
  gchar      *name; /* "sd15", "taef2", … */
  gchar      *title;
  VaeKind     kind;
  gint        raw_channels; /* Z: channels of the network's own latent */
  gint        raw_factor;   /* downscale of the network's own latent */
  gint        patchify;     /* 1, or 2 for FLUX.2-style 2×2 patchify */
  gboolean    quant_convs;  /* KL: quant_conv / post_quant_conv present */
  gboolean    batch_norm;   /* KL: FLUX.2 bn.running_mean/var normalisation */
  gboolean    pool_branch;  /* tiny: taef2's pool branch */
  gdouble     scale;        /* diffusion latent = ((z − mean_c) / std_c − shift) · scale */
  gdouble     shift;
  VaeSchedule schedule;    /* the noise schedule the family's models train with */
  gint        priority;    /* higher wins among equal structural matches */
  gchar     **aliases;     /* words that pick this family from a file name */
  gchar     **files;       /* default weight file names, tiny: encoder first */
  gdouble    *rgb_factors; /* latent→RGB preview: channels × 3 (+3 bias), or NULL */
  gint        n_rgb_factors;

  /* Per raw channel (Qwen-Image's latents_mean, latents_std), or NULL:
   * mean_c = 0, std_c = 1. */
  gdouble *latents_mean;
  gdouble *latents_std;
} VaeFamily;

/* Latent channels and downscale in the diffusion latent space. */
gint             vae_family_latent_channels (const VaeFamily *family);
gint             vae_family_factor (const VaeFamily *family);
const VaeFamily *vae_family_lookup (const gchar *name);
/* All known families, built-in descriptors overridden by user ones. */
GPtrArray *vae_family_list (void);

/* ---- progress ------------------------------------------------------------- */

typedef void (*VaeProgressFunc) (gdouble fraction, gpointer data);

/* ---- memory ---------------------------------------------------------------- */

typedef struct
{
  guint64 memory_limit; /* bytes; 0: a share of the memory available now */
  gint    tile_size;    /* band height in image pixels; 0: tile only when the
                         * memory plan needs it */
} VaeTiling;

/* "1.5G", "800M", "65536K", "1000000" (bytes) → bytes; FALSE when malformed. */
gboolean vae_parse_bytes (const gchar *text, guint64 *bytes);

typedef struct
{
  guint64 budget;        /* the limit the plan had to meet */
  guint64 untiled_bytes; /* estimated peak of the plain run */
  gint    band_pixels;   /* 0: untiled; else the band height chosen */
  guint64 tiled_bytes;   /* estimated peak with those bands */
  guint64 cached_bytes;  /* of the peak: transformed weights the CPU keeps for later passes */
} VaeMemoryPlan;

/* ---- backends ------------------------------------------------------------- */

typedef enum
{
  VAE_BACKEND_AUTO, /* CUDA when a device answers, else the CPU */
  VAE_BACKEND_CPU,
  VAE_BACKEND_CUDA
} VaeBackendKind;

typedef enum
{
  VAE_PRECISION_FP32,
  VAE_PRECISION_BF16, /* bfloat16 storage of what convolutions read, fp32 accumulation */
  VAE_PRECISION_FP16,
  VAE_PRECISION_AUTO /* the CPU: bf16 where AMX runs it, else fp32; the device: fp32 */
} VaePrecision;

typedef struct
{
  VaeBackendKind backend;
  VaePrecision   precision; /* the CPU computes fp32, and bf16 where it has AVX512-BF16 */
} VaeCompute;

/* Resolves the AUTO backend (CUDA when a device answers, else the CPU in
 * bf16 when asked and available, else fp32) and the AUTO precision (see
 * VAE_PRECISION_AUTO); FALSE with an error when CUDA is asked for and
 * cannot be had, or the CPU for fp16 or for bf16 without AVX512-BF16. */
gboolean vae_compute_resolve (VaeCompute *compute, GError **error);
/* TRUE when this build has the CUDA backend and a device answers; else
 * FALSE with an error saying which of the two is missing.  DEVICE_NAME, when
 * not NULL, receives the device's name (free it). */
gboolean vae_cuda_probe (gchar **device_name, GError **error);
/* "auto", "cpu", "cuda" / "auto", "fp32", "bf16", "fp16". */
gboolean     vae_backend_from_name (const gchar *name, VaeBackendKind *backend);
gboolean     vae_precision_from_name (const gchar *name, VaePrecision *precision);
const gchar *vae_precision_name (VaePrecision precision);

/* ---- runs ------------------------------------------------------------------ */

/* How one encode or decode runs: where and in what precision, within how
 * much memory, who hears its progress, and a flag that stops it.  A zeroed
 * VaeRun, or NULL, is the default: auto backend, fp32 (the CLI's and the
 * GEGL ops' default is VAE_PRECISION_AUTO), three quarters of the memory
 * available, no progress, never stopped. */
typedef struct
{
  VaeCompute      compute;
  VaeTiling       tiling;
  VaeProgressFunc progress; /* 0–1, per layer (per band when tiled) */
  gpointer        progress_data;
  const gint     *cancel; /* when it becomes non-zero (g_atomic_int_set) the pass stops
                           * at its next layer or band with VAE_ERROR_CANCELLED */
} VaeRun;

/* ---- models -------------------------------------------------------------- */

typedef struct _VaeModel VaeModel;

typedef enum
{
  VAE_ENCODE_MEAN,
  VAE_ENCODE_SAMPLE
} VaeEncodeMode;

/* The halves of a model a load builds: both, or only the one a run needs,
 * so that a decode never holds the encoder's weights (the SD1.5 decoder's
 * 198 MB beside its encoder's 137 MB).  ANY is for what every half knows
 * (family, scale, shift, codebook): a cached model with either or both
 * halves, else the decoder. */
typedef enum
{
  VAE_HALVES_BOTH,
  VAE_HALVES_ENCODER,
  VAE_HALVES_DECODER,
  VAE_HALVES_ANY
} VaeHalves;

typedef struct
{
  const gchar *family; /* force a family descriptor; NULL: detect */
  gboolean     set_scale;
  gdouble      scale; /* override the family's scale */
  gboolean     set_shift;
  gdouble      shift;  /* override the family's shift */
  VaeHalves    halves; /* BOTH unless set */
} VaeModelOptions;

/* MODEL is a file path, a file name found on the model search path, or a
 * preset name (see docs/ARCHITECTURE.md).  Loaded models are cached
 * process-wide; a cached model with both halves serves a load of one, and
 * replaces the cached models of one half. */
VaeModel *vae_model_load (const gchar *model, const VaeModelOptions *options, GError **error);
VaeModel *vae_model_ref (VaeModel *model);
void      vae_model_unref (VaeModel *model);
const VaeFamily *vae_model_get_family (const VaeModel *model);
gint             vae_model_latent_channels (const VaeModel *model);
gint             vae_model_factor (const VaeModel *model);
gdouble          vae_model_scale (const VaeModel *model);
gdouble          vae_model_shift (const VaeModel *model);
gboolean         vae_model_has_encoder (const VaeModel *model);
gboolean         vae_model_has_decoder (const VaeModel *model);
/* A multi-line human description (for `gegl-vae info`). */
gchar *vae_model_describe (const VaeModel *model);
/* The search path used to resolve model names, for messages and docs. */
gchar **vae_model_search_path (void);
void    vae_model_cache_clear (void);

/* image: 3 × H × W in [0, 1].  Returns the diffusion latent, C × ceil(H/f) ×
 * ceil(W/f); sizes that are not multiples of f are padded by replication. */
VaeTensor *vae_model_encode (VaeModel *model, const VaeTensor *image, VaeEncodeMode mode,
                             guint64 seed, const VaeRun *run, GError **error);
/* latent: C × h × w in the diffusion scale.  Returns 3 × fh × fw in [0, 1].
 * A VQ model snaps the latent to its codebook first, as diffusers'
 * VQModel.decode does by default (see vae_model_decode_vq). */
VaeTensor *vae_model_decode (VaeModel *model, const VaeTensor *latent, const VaeRun *run,
                             GError **error);
/* vae_model_decode with diffusers' FORCE_NOT_QUANTIZE: when TRUE a VQ model
 * decodes the latent as it is (other models always do). */
VaeTensor *vae_model_decode_vq (VaeModel *model, const VaeTensor *latent,
                                gboolean force_not_quantize, const VaeRun *run, GError **error);

/* The plan an encode of a W×H image (ENCODE) or a decode of a w×h latent
 * would follow with RUN's memory settings (NULL: the defaults). */
gboolean vae_model_plan (VaeModel *model, gboolean encode, gint width, gint height,
                         const VaeRun *run, VaeMemoryPlan *plan, GError **error);

/* Raw latent (what the network itself produces or consumes, ComfyUI's .latent
 * convention) from/to the diffusion scale, in place. */
void vae_model_latent_to_raw (const VaeModel *model, VaeTensor *latent);
void vae_model_latent_from_raw (const VaeModel *model, VaeTensor *latent);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VaeModel, vae_model_unref)

/* ---- limits -------------------------------------------------------------- */

/* Whether a WIDTH × HEIGHT image (WHAT, for the message) is within the sides
 * we handle and GEGL_VAE_MAX_IMAGE_PIXELS; readers check it from headers,
 * before they allocate anything. */
gboolean vae_check_image_size (gint64 width, gint64 height, const gchar *what, GError **error);

/* ---- files --------------------------------------------------------------- */

/* A regular file opened for reading, its size in *SIZE; -1 with an error for
 * anything else (a folder; a FIFO, which would block; a device) or when it
 * cannot be opened.  Close it with close(). */
gint vae_file_open (const gchar *path, gsize *size, GError **error);

/* An output file: written to a temporary beside PATH, then synced and renamed
 * over PATH by vae_output_close when WRITTEN (every write succeeded); on any
 * failure the temporary is removed and an old PATH is left as it was. */
typedef struct _VaeOutput VaeOutput;
VaeOutput                *vae_output_new (const gchar *path, GError **error);
FILE                     *vae_output_file (VaeOutput *output);
/* Frees OUTPUT.  Call it right after the write that failed: errno gives the
 * reason, unless ERROR already holds one. */
gboolean vae_output_close (VaeOutput *output, gboolean written, GError **error);

/* ---- latent and image files ---------------------------------------------- */

/* .npy float32 [1, C, h, w] (latents) or [H, W, 3] (images in [0, 1]). */
VaeTensor *vae_npy_read_latent (const gchar *path, GError **error);
gboolean   vae_npy_write_latent (const gchar *path, const VaeTensor *latent, GError **error);
VaeTensor *vae_npy_read_image (const gchar *path, GError **error);
gboolean   vae_npy_write_image (const gchar *path, const VaeTensor *image, GError **error);

/* ComfyUI .latent: safetensors with `latent_tensor` holding the raw latent
 * and the empty marker `latent_format_version_0`.  Read returns the raw
 * latent (old marker-less files are rescaled by 1/0.18215 as ComfyUI does). */
VaeTensor *vae_latent_file_read (const gchar *path, GError **error);
gboolean   vae_latent_file_write (const gchar *path, const VaeTensor *raw_latent, GError **error);

/* ---- noise --------------------------------------------------------------- */

/* Philox4x32-10 normal draws as A1111/sd.cpp "GPU" seeds: element i of a
 * tensor is a function of (seed, offset, i) alone. */
gfloat vae_philox_normal (guint64 seed, guint32 offset, guint64 index);
void   vae_philox_fill (guint64 seed, guint32 offset, guint64 first_index, gfloat *out, gsize n);
/* torch.manual_seed(seed); torch.randn(n) on the CPU (MT19937). */
void vae_torch_randn (guint64 seed, gfloat *out, gsize n);

/* ---- forward diffusion ----------------------------------------------------- */

typedef enum
{
  VAE_FORM_DIFFUSERS, /* √ᾱ·x0 + √(1−ᾱ)·ε */
  VAE_FORM_EPS,       /* x0 + σ·ε, σ = √((1−ᾱ)/ᾱ) (ComfyUI, sd.cpp) */
  VAE_FORM_FLOW       /* (1−σ)·x0 + σ·ε */
} VaeNoiseForm;

typedef enum
{
  VAE_RNG_PHILOX,   /* A1111/sd.cpp "GPU" seeds, position-keyed */
  VAE_RNG_TORCH_CPU /* ComfyUI: torch.manual_seed(s); torch.randn([1, C, h, w]) */
} VaeRng;

#define VAE_TIMESTEPS 1000

/* ᾱ_t of a schedule, t in [0, 999]. */
gdouble vae_schedule_alpha_bar (VaeSchedule schedule, gint timestep);
/* The timestep img2img uses for a denoising strength in [0, 1]. */
gint vae_schedule_timestep_for_strength (gdouble strength);
/* Multipliers of x0 and ε for (schedule, timestep, form). */
void vae_noise_coefficients (VaeSchedule schedule, gint timestep, VaeNoiseForm form,
                             gdouble *x0_mul, gdouble *eps_mul);
/* x_t in place over a whole latent. */
gboolean vae_add_noise (VaeTensor *latent, VaeSchedule schedule, gint timestep, VaeNoiseForm form,
                        VaeRng rng, guint64 seed, GError **error);
/* x_t = A·x + B·ε on a window of a latent in GEGL's interleaved layout:
 * PIXELS holds WINDOW's pixels of CHANNELS floats each, WINDOW lying at
 * (x, y) inside a FULL_W × FULL_H latent; ε is the whole latent's noise at
 * each place: Philox keyed by the planar index (so any chunking gives the
 * same values), or TORCH, the whole latent's planar draw (vae_torch_randn)
 * when not NULL.  B = 0 leaves PIXELS as they are. */
void vae_noise_window (gfloat *pixels, gint channels, const VaeRect *window, gint full_w,
                       gint full_h, gdouble a, gdouble b, guint64 seed, const gfloat *torch);
/* "sd-scaled-linear", "linear", "cosine" or "flow". */
gboolean vae_schedule_from_name (const gchar *name, VaeSchedule *schedule);

/* ---- vector quantisation ------------------------------------------------- */

/* K entries of DIM floats, with their squared norms. */
typedef struct
{
  gint    size;
  gint    dim;
  gfloat *entries;
  gfloat *norms;
} VaeCodebook;

/* A safetensors/.pth file holding one [K, C] tensor, or a VQ model's
 * quantize.embedding.weight. */
VaeCodebook *vae_codebook_load (const gchar *path, GError **error);
/* k-means++ seeding then ITERATIONS Lloyd steps over N interleaved vectors. */
VaeCodebook *vae_codebook_learn (const gfloat *vectors, gsize n, gint dim, gint k, gint iterations,
                                 guint64 seed, GError **error);
void         vae_codebook_free (VaeCodebook *codebook);
/* Index of the entry nearest to V (squared L2 as ‖v‖² + ‖e‖² − 2 v·e; ties
 * go to the lowest index, as argmin does). */
gint vae_codebook_nearest (const VaeCodebook *codebook, const gfloat *v);
/* The nearest entry of each of N interleaved vectors into INDICES. */
void vae_codebook_assign (const VaeCodebook *codebook, const gfloat *in, gsize n, gint *indices);
/* out = (1 − strength)·in + strength·nearest(in) for N interleaved vectors
 * (in and out may alias); COUNTS (size entries) and SQ_ERROR accumulate the
 * usage and the squared distances. */
void vae_codebook_snap (const VaeCodebook *codebook, const gfloat *in, gfloat *out, gsize n,
                        gfloat strength, guint64 *counts, gdouble *sq_error);
/* exp(entropy) of the usage: 1 when one entry is used, K when all equally. */
gdouble vae_codebook_perplexity (const guint64 *counts, gint size);
/* A colour (sRGB in [0, 1]) for entry INDEX, far from its neighbours', for
 * maps of which entries a picture uses. */
void vae_codebook_index_colour (gint index, gfloat rgb[3]);
/* The codebook of a VQ model (VAE_KIND_VQ, VAE_KIND_VQVAE), its entries in
 * the diffusion scale of the model's latents; an error naming the model when
 * it has none.  Free with vae_codebook_free. */
VaeCodebook *vae_model_codebook (const VaeModel *model, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VaeCodebook, vae_codebook_free)

/* ---- latent operations (core/latent/) ------------------------------------- */

/* ComfyUI's latent nodes on planar tensors of any channel count, in float32
 * as ComfyUI computes them.  Masks are 1-channel tensors, 1 where the
 * picture is to change. */

typedef enum
{
  VAE_SCALE_NEAREST_EXACT, /* torch's interpolate modes, align_corners False */
  VAE_SCALE_BILINEAR,
  VAE_SCALE_AREA, /* adaptive average pooling */
  VAE_SCALE_BICUBIC,
  VAE_SCALE_BISLERP /* ComfyUI's: channel vectors slerped along x, then y */
} VaeScaleMethod;

/* The size a WIDTH×HEIGHT latent is scaled to: TO_WIDTH×TO_HEIGHT, one of
 * them 0 to keep the aspect (LatentUpscale), both 0 to scale by FACTOR
 * (LatentUpscaleBy); Python's rounding, halves to even.  An error for a
 * factor that is not a positive number or a side out of 1…65536. */
gboolean vae_latent_scaled_size (gint width, gint height, gdouble factor, gint to_width,
                                 gint to_height, gint *new_width, gint *new_height, GError **error);
/* comfy.utils.common_upscale: LATENT to WIDTH×HEIGHT, after cutting its
 * centre to the new aspect when CROP. */
VaeTensor *vae_latent_scale (const VaeTensor *latent, gint width, gint height,
                             VaeScaleMethod method, gboolean crop, GError **error);

typedef enum
{
  VAE_TRANSFORM_FLIP_HORIZONTAL,
  VAE_TRANSFORM_FLIP_VERTICAL,
  VAE_TRANSFORM_ROTATE_90, /* clockwise, as ComfyUI's LatentRotate */
  VAE_TRANSFORM_ROTATE_180,
  VAE_TRANSFORM_ROTATE_270,
  VAE_TRANSFORM_TRANSPOSE
} VaeTransform;

VaeTensor *vae_latent_transform (const VaeTensor *latent, VaeTransform transform, GError **error);
/* TRUE when TRANSFORM exchanges width and height. */
gboolean vae_latent_transform_swaps_axes (VaeTransform transform);
/* The rectangle of a WIDTH×HEIGHT latent whose transform is AREA of the
 * result. */
VaeRect vae_latent_transform_source (VaeTransform transform, gint width, gint height,
                                     const VaeRect *area);

/* LatentComposite: a SOURCE_WIDTH×SOURCE_HEIGHT latent placed with its
 * top-left at (X, Y) ≥ 0 of a WIDTH×HEIGHT one; where an edge of the placed
 * source lies inside, its last FEATHER pixels fade out. */
typedef struct
{
  gint width, height;
  gint x, y, source_width, source_height;
  gint feather;
} VaeComposite;

/* DEST, the rectangle at (DEST_X, DEST_Y) of the destination, becomes that
 * rectangle of the composite; SOURCE holds the source's rectangle at
 * (SOURCE_X, SOURCE_Y) of its own grid and covers what DEST shows of it. */
gboolean vae_latent_composite (VaeTensor *dest, gint dest_x, gint dest_y, const VaeTensor *source,
                               gint source_x, gint source_y, const VaeComposite *composite,
                               GError **error);

typedef enum
{
  VAE_BLEND_LERP,     /* (1 − f)·a + f·b: LatentBlend with blend_factor 1 − f */
  VAE_BLEND_SLERP,    /* the slerp of bislerp, per latent pixel, ratio f */
  VAE_BLEND_ADD,      /* a + f·b: LatentAdd at f = 1 */
  VAE_BLEND_SUBTRACT, /* a − f·b: LatentSubtract at f = 1 */
  VAE_BLEND_MULTIPLY  /* f·a: LatentMultiply (B unused, may be NULL) */
} VaeBlendMode;

/* A becomes A blended with B (same shape) by FACTOR, B's share. */
gboolean vae_latent_blend (VaeTensor *a, const VaeTensor *b, VaeBlendMode mode, gdouble factor,
                           GError **error);

/* A mask on a latent grid: the MASK_WIDTH×MASK_HEIGHT mask, padded to
 * PADDED_WIDTH×PADDED_HEIGHT by repeating its last column and row (as
 * vae:encode pads a picture to a multiple of the model's factor; equal
 * sizes: no padding), then resized to the WIDTH×HEIGHT latent
 * (comfy.utils.reshape_mask: bilinear, align_corners False). */
typedef struct
{
  gint mask_width, mask_height;
  gint padded_width, padded_height;
  gint width, height;
} VaeMaskGrid;

/* The rectangle of the mask that AREA of the latent reads. */
VaeRect vae_mask_source (const VaeMaskGrid *grid, const VaeRect *area);
/* The mask over AREA of the latent, from MASK, the mask's rectangle at
 * (MASK_X, MASK_Y), which covers vae_mask_source (AREA). */
VaeTensor *vae_mask_resize (const VaeTensor *mask, gint mask_x, gint mask_y,
                            const VaeMaskGrid *grid, const VaeRect *area, GError **error);
/* VAEEncodeForInpaint's noise mask: the rounded mask grown by GROW pixels
 * (conv2d with a GROW×GROW box, clamped to 0…1; outside MASK counts 0). */
VaeTensor *vae_inpaint_grow (const VaeTensor *mask, gint grow, GError **error);
/* The pixels before and after a position that its grown value reads. */
void vae_inpaint_grow_reach (gint grow, gint *before, gint *after);
/* VAEEncodeForInpaint's fill: where round (MASK) is 1, IMAGE becomes 0.5. */
gboolean vae_inpaint_fill (VaeTensor *image, const VaeTensor *mask, GError **error);
/* ComfyUI's latent→RGB preview of N interleaved vectors of CHANNELS:
 * FAMILY's RGB factors (channels × 3, then the bias) when it has them for
 * this channel count, else the first three channels; mapped from [−1, 1] to
 * [0, 1] and clamped, alpha 1, into RGBA (N × 4 floats). */
void vae_latent_preview_rgba (const VaeFamily *family, const gfloat *latent, gsize n, gint channels,
                              gfloat *rgba);
/* The sampler's masked result: NOISY·m + CLEAN·(1 − m) for N interleaved
 * vectors of CHANNELS and their N mask values. */
void vae_latent_mask_noise (gfloat *noisy, const gfloat *clean, const gfloat *mask, gsize n,
                            gint channels);

/* ---- benchmarking --------------------------------------------------------- */

/* Multiply-adds of convolutions and attention since the last reset. */
guint64 vae_macs_counted (void);
void    vae_macs_reset (void);
/* A random-weight checkpoint of a KL family's real architecture (see
 * core/synth.c for the generator), written as float32 safetensors. */
gboolean vae_synth_family (const gchar *family, guint64 seed, const gchar *path, GError **error);

/* ---- threads ------------------------------------------------------------- */

/* GEGL_THREADS when set, else the number of processors. */
gint vae_threads (void);
/* For a program's main, first thing: unless OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT is set, set OMP_WAIT_POLICY=passive and start the program
 * again with ARGV (on Linux; it returns where it cannot). */
void vae_threads_wait_passively (gchar **argv);

G_END_DECLS

#endif /* VAE_H */
