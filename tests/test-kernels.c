/* The fast CPU kernels against the plain reference (im2col + SGEMM) on
 * random shapes: odd channel counts, 1-pixel images, sizes that are not
 * multiples of the Winograd tile, with upsampling, residuals and every
 * activation.  Tolerance 3e-5 of the largest output: both are float32, and
 * F(4×4,3×3)'s transform constants (up to 8 in A, 1/24 in G) amplify
 * rounding — still well inside the 1e-4 house bar against float64.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "test-util.h"

#include <math.h>

static const gint case_in_channels[] = { 8, 13, 64 };
static const gint case_out_channels[] = { 1, 7, 32 };
/* 150 wide: more than 32 tiles a row, so chunks (32 or 64 tiles, by CPU)
 * start inside rows; 520: three chunks or more a row, so one reads its
 * input rows in place with no image edge on either side; 30, 255 and 319:
 * whole blocks of 8 tiles (kept in another order) whose last tile has
 * columns outside the image */
static const gint case_sizes[][2] = { { 1, 1 },   { 5, 3 },   { 17, 9 }, { 33, 31 }, { 4, 8 },
                                      { 150, 6 }, { 520, 5 }, { 30, 9 }, { 255, 4 }, { 319, 5 } };

/* One random convolution case: weights, maybe a bias, input, maybe a
 * residual, upsampling and activation drawn from RAND. */
typedef struct
{
  VaeConv    conv;
  VaeTensor *x, *residual;
  gboolean   up;
  VaeAct     act;
} ConvCase;

/* SHAPE (channels, kernel, stride, padding) with random weights, maybe a
 * bias, input of SIZE, maybe a residual, upsampling and activation. */
static void
conv_case_init_shape (ConvCase *c, GRand *rand, const VaeConv *shape, const gint size[2])
{
  const gint    k_terms = shape->in_channels * shape->kernel * shape->kernel;
  const gdouble scale = 1.0 / sqrt (k_terms);
  gint          out_h, out_w;

  c->conv = *shape;
  c->up = g_rand_boolean (rand);
  c->act = (VaeAct) g_rand_int_range (rand, 0, 3);
  c->conv.weight = test_random_floats (rand, (gsize) shape->out_channels * k_terms, -scale, scale);
  c->conv.bias =
      g_rand_boolean (rand) ? test_random_floats (rand, shape->out_channels, -0.5, 0.5) : NULL;
  c->x = vae_tensor_new (shape->in_channels, size[1], size[0], NULL);
  for (gsize i = 0; i < vae_tensor_n_elements (c->x); i++)
    c->x->data[i] = (gfloat) g_rand_double_range (rand, -1, 1);
  c->residual = NULL;
  vae_conv_output_size (&c->conv, size[1] << c->up, size[0] << c->up, &out_h, &out_w);
  if (g_rand_boolean (rand) && out_h > 0 && out_w > 0)
    {
      c->residual = vae_tensor_new (shape->out_channels, out_h, out_w, NULL);
      for (gsize i = 0; i < vae_tensor_n_elements (c->residual); i++)
        c->residual->data[i] = (gfloat) g_rand_double_range (rand, -1, 1);
    }
}

/* A 3×3 convolution of the shape Winograd takes: "same", or unpadded above
 * or below (a band's of vae_cpu_residual_block) where the image has the
 * rows. */
static void
conv_case_init (ConvCase *c, GRand *rand, gint ci, gint co, const gint size[2])
{
  VaeConv shape = { co, ci, 3, 1, 1, 1, 1, 1, NULL, NULL, NULL };

  if (size[1] >= 3)
    {
      shape.pad_top = g_rand_int_range (rand, 0, 2);
      shape.pad_bottom = g_rand_int_range (rand, 0, 2);
    }
  conv_case_init_shape (c, rand, &shape, size);
  g_assert_true (vae_winograd_applies (&c->conv));
}

static void
conv_case_clear (ConvCase *c)
{
  vae_conv_clear (&c->conv);
  g_clear_pointer (&c->x, vae_tensor_free);
  g_clear_pointer (&c->residual, vae_tensor_free);
}

static VaeTensor *
conv_case_run (const ConvCase *c, const VaeBackend *be)
{
  g_autoptr (GError) error = NULL;
  VaeTensor *y = be->conv (be, &c->conv, c->x, c->up, c->residual, c->act, &error);

  g_assert_no_error (error);
  return y;
}

/* Both Winograd paths, per-thread chunks (where this CPU has AVX-512 or
 * AVX2) and bands, against the reference. */
static void
test_conv_fast_vs_reference (void)
{
  GRand            *rand = g_rand_new_with_seed (2024);
  const VaeBackend *cpu = vae_backend_cpu ();
  gdouble           worst = 0;
  gint              cases = 0;

  for (gint chunked = 0; chunked < 2; chunked++)
    for (guint a = 0; a < G_N_ELEMENTS (case_in_channels); a++)
      for (guint b = 0; b < G_N_ELEMENTS (case_out_channels); b++)
        for (guint s = 0; s < G_N_ELEMENTS (case_sizes); s++)
          {
            ConvCase c;
            g_autoptr (VaeTensor) fast = NULL, ref = NULL;
            g_autoptr (GError) error = NULL;
            gdouble err;

            conv_case_init (&c, rand, case_in_channels[a], case_out_channels[b], case_sizes[s]);
            vae_winograd_set_chunked (chunked);
            fast = conv_case_run (&c, cpu);
            vae_winograd_set_chunked (TRUE);
            ref = vae_cpu_conv_reference (&c.conv, c.x, c.up, c.residual, c.act, &error);
            g_assert_no_error (error);
            err = test_max_rel_error (fast, ref);
            worst = MAX (worst, err);
            if (err > 3e-5)
              g_error ("chunked %d ci %d co %d %dx%d pads %d/%d up %d act %d residual %d: relative "
                       "error %g",
                       chunked, c.conv.in_channels, c.conv.out_channels, case_sizes[s][0],
                       case_sizes[s][1], c.conv.pad_top, c.conv.pad_bottom, c.up, c.act,
                       c.residual != NULL, err);
            conv_case_clear (&c);
            cases++;
          }
  g_test_message ("%d random convolutions: worst relative error %.3g (bar 3e-5)", cases, worst);
  g_rand_free (rand);
}

/* bf16 Winograd in per-thread chunks against the banded path, which the
 * bf16 PSNR tests check end to end: the same transforms and the same bf16
 * products summed in the same order, so every value must be identical. */
static void
test_conv_bf16_chunks (void)
{
  GRand            *rand;
  const VaeBackend *cpu = vae_backend_cpu_bf16 ();
  gint              cases = 0;

  if (!test_has_bf16 ())
    return;
  rand = g_rand_new_with_seed (4048);
  for (guint a = 0; a < G_N_ELEMENTS (case_in_channels); a++)
    for (guint b = 0; b < G_N_ELEMENTS (case_out_channels); b++)
      for (guint s = 0; s < G_N_ELEMENTS (case_sizes); s++)
        {
          ConvCase c;
          g_autoptr (VaeTensor) chunks = NULL, bands = NULL;

          conv_case_init (&c, rand, case_in_channels[a], case_out_channels[b], case_sizes[s]);
          chunks = conv_case_run (&c, cpu);
          vae_winograd_set_chunked (FALSE);
          bands = conv_case_run (&c, cpu);
          vae_winograd_set_chunked (TRUE);
          g_assert_cmpuint (vae_tensor_n_elements (chunks), ==, vae_tensor_n_elements (bands));
          for (gsize i = 0; i < vae_tensor_n_elements (chunks); i++)
            if (chunks->data[i] != bands->data[i])
              g_error ("ci %d co %d %dx%d: value %" G_GSIZE_FORMAT
                       " is %.9g in chunks, %.9g in bands",
                       c.conv.in_channels, c.conv.out_channels, case_sizes[s][0], case_sizes[s][1],
                       i, chunks->data[i], bands->data[i]);
          conv_case_clear (&c);
          cases++;
        }
  g_test_message ("%d random bf16 convolutions: chunks and bands identical", cases);
  g_rand_free (rand);
}

/* The bf16 product against float64 sums of the same bf16-rounded inputs:
 * only fp32 accumulation may differ, at most (k + 2)·2⁻²⁴·Σ|a·b| (the
 * standard bound for a sum of k products).  Shapes cover partial row
 * blocks (m not a multiple of 8), partial panels (n not a multiple of 32)
 * and odd k (a zero-padded pair). */
static void
test_gemm_bf16 (void)
{
  static const gint ms[] = { 1, 3, 8, 13 }, ns[] = { 1, 16, 17, 45, 64 }, ks[] = { 1, 2, 7, 64 };
  GRand            *rand;
  gdouble           worst = 0;

  if (!test_has_bf16 ())
    return;
  rand = g_rand_new_with_seed (77);
  for (guint a = 0; a < G_N_ELEMENTS (ms); a++)
    for (guint b = 0; b < G_N_ELEMENTS (ns); b++)
      for (guint c = 0; c < G_N_ELEMENTS (ks); c++)
        {
          const gint m = ms[a], n = ns[b], k = ks[c], count = 2, k_even = 2 * vae_bf16_pairs (k);
          g_autofree gfloat  *af = test_random_floats (rand, (gsize) count * m * k, -1, 1);
          g_autofree gfloat  *bf = test_random_floats (rand, (gsize) count * k * n, -1, 1);
          g_autofree guint16 *ap = g_new (guint16, (gsize) count * m * k_even);
          g_autofree gfloat  *cf = g_new (gfloat, (gsize) count * m * n);

          for (gint g = 0; g < count; g++)
            vae_bf16_pack_rows (af + (gsize) g * m * k, m, k, ap + (gsize) g * m * k_even);
          vae_gemm_bf16_batch (count, m, n, k, ap, (gsize) m * k_even, bf, (gsize) k * n, cf,
                               (gsize) m * n);
          for (gint g = 0; g < count; g++)
            for (gint i = 0; i < m; i++)
              for (gint j = 0; j < n; j++)
                {
                  gdouble want = 0, magnitude = 0, err;
                  for (gint l = 0; l < k; l++)
                    {
                      gdouble p = (gdouble) vae_bf16_value (ap[((gsize) g * m + i) * k_even + l]) *
                                  vae_bf16_value (vae_bf16_round (bf[((gsize) g * k + l) * n + j]));
                      want += p;
                      magnitude += fabs (p);
                    }
                  err = fabs (cf[((gsize) g * m + i) * n + j] - want);
                  worst = MAX (worst, err / magnitude);
                  if (err > (k + 2) * ldexp (1.0, -24) * magnitude)
                    g_error ("m %d n %d k %d: C[%d][%d][%d] = %g, want %g", m, n, k, g, i, j,
                             cf[((gsize) g * m + i) * n + j], want);
                }
        }
  g_test_message ("bf16 products: worst error %.3g of sum |a b|", worst);
  /* bf16's step at 1 is 2⁻⁷: half a step is a tie, to even either way */
  g_assert_cmpuint (vae_bf16_round (1.0f + 2.0f / 512), ==, 0x3f80);
  g_assert_cmpuint (vae_bf16_round (1.0f + 6.0f / 512), ==, 0x3f82);
  g_assert_cmpuint (vae_bf16_round (1.0f + 3.0f / 512), ==, 0x3f81);
  g_rand_free (rand);
}

/* The AMX products against float64 sums.  One bf16 product: of the same
 * bf16-rounded inputs, with test_gemm_bf16's bound — only fp32
 * accumulation may differ, at most (k + 2)·2⁻²⁴·Σ|a·b| (tdpbf16ps adds
 * exact products in fp32).  Split products (Ah·Bh + Ah·Bl + Al·Bh): of the
 * fp32 inputs themselves; each of h and l rounds to 2⁻⁸ relative, so a
 * product leaves out at most Al·Bl and the rounding of Al and Bl, under
 * 2⁻¹⁴·|a·b|, and 3k + 2 fp32 additions add (3k + 2)·2⁻²⁴·Σ|a·b|.
 * Both kernels: one panel at a time (vae_amx_gemm) and cache blocks
 * (vae_amx_products, k sliced every 128 pairs).  Shapes cover every edge
 * tile: m inside one row tile (split Winograd products take the 3
 * output channels of a decoder's last conv there), past a block of 32
 * rows by 1 and by 17 (a lone row tile); n inside one tile, past a panel,
 * and past blocks of 256 columns (2100: 66 panels, whole blocks of 8 for
 * 2 threads or fewer); k odd, inside one tile of 16 pairs, past one, and
 * past a slice; B's and C's rows wider than n, whose padding must stay as
 * it was. */
static void
test_gemm_amx (void)
{
  static const gint ms[] = { 3, 16, 17, 49, 64 }, ns[] = { 1, 15, 47, 300, 2100 },
                    ks[] = { 1, 7, 32, 33, 62, 300 };
  static const gchar *modes[] = { "panels", "blocks", "split panels", "split blocks" };
  GRand              *rand;
  gdouble             worst[2] = { 0, 0 };

  if (!vae_cpu_has_amx ())
    {
      g_test_skip ("this CPU (or build, or kernel) gives no AMX-BF16, or GEGL_VAE_AMX=0");
      return;
    }
  rand = g_rand_new_with_seed (78);
  for (guint a = 0; a < G_N_ELEMENTS (ms); a++)
    for (guint b = 0; b < G_N_ELEMENTS (ns); b++)
      for (guint c = 0; c < G_N_ELEMENTS (ks); c++)
        for (gint mode = 0; mode < 4; mode++)
          {
            const gint          m = ms[a], n = ns[b], k = ks[c], k_even = 2 * vae_bf16_pairs (k);
            const gboolean      blocked = mode & 1, split = mode >= 2;
            const gsize         ldb = (gsize) n + 3, ldc = (gsize) n + 5;
            g_autofree gfloat  *af = test_random_floats (rand, (gsize) m * k, -1, 1);
            g_autofree gfloat  *bf = test_random_floats (rand, (gsize) k * ldb, -1, 1);
            g_autofree guint16 *ap = g_new (guint16, (gsize) m * k_even);
            g_autofree guint16 *ap_low = g_new (guint16, (gsize) m * k_even);
            g_autofree guint16 *panel = g_new (guint16, vae_amx_panel_elements (k));
            g_autofree gfloat  *cf = g_new (gfloat, (gsize) m * ldc);

            for (gsize i = 0; i < (gsize) m * ldc; i++)
              cf[i] = 12345.0f;
            vae_bf16_pack_rows (af, m, k, ap);
            vae_bf16_pack_rows_low (af, m, k, ap_low);
            if (blocked)
              vae_amx_products (1, m, n, k, ap, split ? ap_low : NULL, 0, bf, ldb, 0, cf, ldc, 0);
            else
              vae_amx_gemm (m, n, k, ap, split ? ap_low : NULL, bf, ldb, cf, ldc, panel);
            for (gint i = 0; i < m; i++)
              {
                for (gint j = 0; j < n; j++)
                  {
                    gdouble want = 0, magnitude = 0, err, bound;
                    for (gint l = 0; l < k; l++)
                      {
                        const gfloat x = af[(gsize) i * k + l], y = bf[(gsize) l * ldb + j];
                        gdouble      p = split ? (gdouble) x * y
                                               : (gdouble) vae_bf16_value (vae_bf16_round (x)) *
                                                vae_bf16_value (vae_bf16_round (y));
                        want += p;
                        magnitude += fabs (p);
                      }
                    err = fabs (cf[(gsize) i * ldc + j] - want);
                    worst[split] = MAX (worst[split], err / magnitude);
                    bound = split ? (ldexp (1.0, -14) + (3 * k + 2) * ldexp (1.0, -24)) * magnitude
                                  : (k + 2) * ldexp (1.0, -24) * magnitude;
                    if (err > bound)
                      g_error ("%s, m %d n %d k %d: C[%d][%d] = %g, want %g", modes[mode], m, n, k,
                               i, j, cf[(gsize) i * ldc + j], want);
                  }
                for (gsize j = n; j < ldc; j++)
                  if (cf[(gsize) i * ldc + j] != 12345.0f)
                    g_error ("%s, m %d n %d k %d: C[%d][%" G_GSIZE_FORMAT "] beyond n was written",
                             modes[mode], m, n, k, i, j);
              }
          }
  g_test_message ("AMX products: worst error %.3g of sum |a b| (bf16 inputs), %.3g (split, fp32 "
                  "inputs)",
                  worst[0], worst[1]);
  g_rand_free (rand);
}

/* fp32 V as bf16 rounds it, or as it is. */
static gdouble
operand (gfloat v, gboolean bf16)
{
  return bf16 ? vae_bf16_value (vae_bf16_round (v)) : v;
}

/* The value of output (o, oy, ox) of CONV in float64 from the weights and
 * inputs (bf16-rounded when BF16), and Σ|w·x| + |bias| + |residual| in
 * *MAGNITUDE. */
static gdouble
direct_value (const ConvCase *c, gboolean bf16, gint o, gint oy, gint ox, gdouble *magnitude)
{
  const VaeConv *conv = &c->conv;
  const gint     k = conv->kernel, in_h = c->x->height << c->up, in_w = c->x->width << c->up;
  gdouble        sum = conv->bias ? conv->bias[o] : 0.0;

  *magnitude = fabs (sum);
  for (gint i = 0; i < conv->in_channels; i++)
    for (gint ky = 0; ky < k; ky++)
      for (gint kx = 0; kx < k; kx++)
        {
          const gint iy = oy * conv->stride - conv->pad_top + ky,
                     ix = ox * conv->stride - conv->pad_left + kx;
          gdouble w, p;
          if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w)
            continue;
          w = operand (conv->weight[((gsize) (o * conv->in_channels + i) * k + ky) * k + kx], bf16);
          p = w * operand (c->x->data[((gsize) i * c->x->height + (iy >> c->up)) * c->x->width +
                                      (ix >> c->up)],
                           bf16);
          sum += p;
          *magnitude += fabs (p);
        }
  if (c->residual)
    {
      const gdouble r =
          c->residual->data[((gsize) o * c->residual->height + oy) * c->residual->width + ox];
      sum += r;
      *magnitude += fabs (r);
    }
  return sum;
}

/* act(t) in float64. */
static gdouble
activate_double (gdouble t, VaeAct act)
{
  if (act == VAE_ACT_RELU)
    return MAX (t, 0.0);
  if (act == VAE_ACT_SILU)
    return t / (1.0 + exp (-t));
  return t;
}

/* Random cases of each of N SHAPES at every case size (seeded with SEED),
 * each of which must take the path APPLIES names, through backend BE,
 * against float64 sums of the same weights and inputs (bf16-rounded when
 * BF16); returns the worst error as a fraction of Σ|terms|.  Before the
 * activation only fp32 accumulation may differ, (k + 3)·2⁻²⁴·Σ|terms| (k
 * products, bias and residual); SiLU's slope is at most 1.1, and vae_expf
 * adds ≤ 1e-6 relative (test_expf), so 2e-6 of the value on top. */
static gdouble
check_against_float64 (const VaeConv *shapes, guint n, guint32 seed, const VaeBackend *be,
                       gboolean bf16, gboolean (*applies) (const VaeConv *conv))
{
  GRand  *rand = g_rand_new_with_seed (seed);
  gdouble worst = 0;

  for (guint a = 0; a < n; a++)
    for (guint s = 0; s < G_N_ELEMENTS (case_sizes); s++)
      {
        const gint k_terms = shapes[a].in_channels * shapes[a].kernel * shapes[a].kernel;
        ConvCase   c;
        gint       out_h, out_w;
        g_autoptr (VaeTensor) y = NULL;

        conv_case_init_shape (&c, rand, &shapes[a], case_sizes[s]);
        vae_conv_output_size (&c.conv, c.x->height << c.up, c.x->width << c.up, &out_h, &out_w);
        if (out_h <= 0 || out_w <= 0) /* one pixel is too small without padding */
          {
            conv_case_clear (&c);
            continue;
          }
        g_assert_true (applies (&c.conv));
        y = conv_case_run (&c, be);
        for (gint o = 0; o < y->channels; o++)
          for (gint oy = 0; oy < y->height; oy++)
            for (gint ox = 0; ox < y->width; ox++)
              {
                gdouble magnitude, sum = direct_value (&c, bf16, o, oy, ox, &magnitude);
                gdouble want = activate_double (sum, c.act);
                gdouble got = y->data[((gsize) o * y->height + oy) * y->width + ox];
                gdouble bound =
                    1.1 * (k_terms + 3) * ldexp (1.0, -24) * magnitude + 2e-6 * fabs (want);
                worst = MAX (worst, fabs (got - want) / MAX (magnitude, 1e-30));
                if (fabs (got - want) > bound)
                  g_error ("shape %u, %dx%d, up %d, act %d: y[%d][%d][%d] = %.9g, want %.9g", a,
                           case_sizes[s][0], case_sizes[s][1], c.up, c.act, o, oy, ox, got, want);
              }
        conv_case_clear (&c);
      }
  g_rand_free (rand);
  return worst;
}

/* Whether the bf16 backend sends CONV to im2col + products: not Winograd's. */
static gboolean
not_winograd (const VaeConv *conv)
{
  return !vae_winograd_applies (conv);
}

/* Whether the fp32 backend sends CONV to direct.c's chunks: not Winograd's. */
static gboolean
takes_chunks (const VaeConv *conv)
{
  return !vae_winograd_applies (conv) && vae_direct_conv_applies (conv);
}

/* The convolutions Winograd does not take — stride 2 with one-sided
 * padding, 1×1, 3×3 of 3 input channels — with and without upsampling,
 * bias, residual and every activation, through the bf16 backend, against
 * float64 sums of the same bf16-rounded weights and inputs
 * (check_against_float64). */
static void
test_conv_bf16_direct (void)
{
  static const VaeConv shapes[] = {
    { 7, 13, 3, 2, 0, 0, 1, 1, NULL, NULL, NULL },
    { 32, 64, 1, 1, 0, 0, 0, 0, NULL, NULL, NULL },
    { 9, 3, 3, 1, 1, 1, 1, 1, NULL, NULL, NULL },
  };
  gdouble worst;

  if (!test_has_bf16 ())
    return;
  worst = check_against_float64 (shapes, G_N_ELEMENTS (shapes), 99, vae_backend_cpu_bf16 (), TRUE,
                                 not_winograd);
  g_test_message ("direct bf16 convolutions: worst error %.3g of sum |terms|", worst);
}

/* The bf16 3×3 convolutions AMX tiles run directly (core/cpu/amx-conv.c):
 * channel counts that leave partial tiles of inputs and outputs, images
 * narrower and wider than a block of 32 pixels, padding on one side or
 * only across (bands'), stride 2 padded on both sides or after only (the encoders'
 * downsamplers), with and without upsampling, bias, residual and every
 * activation, against float64 sums of the same bf16-rounded weights and
 * inputs (check_against_float64). */
static void
test_conv_amx (void)
{
  static const VaeConv shapes[] = {
    { 32, 32, 3, 1, 1, 1, 1, 1, NULL, NULL, NULL },
    { 40, 48, 3, 1, 1, 1, 1, 1, NULL, NULL, NULL },
    { 64, 70, 3, 1, 1, 1, 0, 0, NULL, NULL, NULL },
    { 64, 64, 3, 1, 0, 1, 0, 1, NULL, NULL, NULL }, /* a band of vae_cpu_residual_block */
    { 32, 40, 3, 2, 0, 0, 1, 1, NULL, NULL, NULL }, /* AutoencoderKL's downsampler */
    { 48, 64, 3, 2, 1, 1, 1, 1, NULL, NULL, NULL }, /* TAESD's */
    { 3, 64, 3, 1, 1, 1, 1, 1, NULL, NULL, NULL },  /* TAESD's output conv: 1 × 4 tiles */
    { 16, 40, 3, 1, 0, 1, 1, 1, NULL, NULL, NULL }, /* a whole tile of them, in a band */
    { 8, 32, 3, 2, 1, 1, 1, 1, NULL, NULL, NULL },  /* narrow, stride 2 */
  };
  const VaeBackend *cpu = vae_backend_cpu_bf16 ();
  gdouble           worst;

  if (!vae_amx_conv_applies (&shapes[0]))
    {
      g_test_skip ("this CPU (or build, or kernel) gives no AMX-BF16, or GEGL_VAE_AMX picks "
                   "another path");
      return;
    }
  worst =
      check_against_float64 (shapes, G_N_ELEMENTS (shapes), 123, cpu, TRUE, vae_amx_conv_applies);
  g_test_message ("AMX bf16 3x3 convolutions: worst error %.3g of sum |terms|", worst);
}

/* The fp32 convolutions Winograd does not take, in per-thread chunks
 * (direct.c): stride 2 padded on both sides (TAESD's downsampler) or after
 * only (AutoencoderKL's), 3 input channels (TAESD's first conv), the most
 * terms taken (512 × 9), a strided 1×1 and a 5×5 of stride 3, with and
 * without upsampling, bias, residual and every activation, at sizes whose
 * chunks of 64 pixels end inside rows and span several; against float64
 * sums of the same weights and inputs (check_against_float64). */
static void
test_conv_direct (void)
{
  static const VaeConv shapes[] = {
    { 64, 64, 3, 2, 1, 1, 1, 1, NULL, NULL, NULL },
    { 13, 7, 3, 2, 0, 0, 1, 1, NULL, NULL, NULL },
    { 64, 3, 3, 1, 1, 1, 1, 1, NULL, NULL, NULL },
    { 7, 512, 3, 2, 1, 1, 1, 1, NULL, NULL, NULL },
    { 5, 9, 1, 2, 0, 0, 0, 0, NULL, NULL, NULL },
    { 6, 13, 5, 3, 2, 2, 2, 2, NULL, NULL, NULL }, /* 325 terms: k's last slice is short */
  };
  const VaeConv     too_wide = { 7, 513, 3, 2, 1, 1, 1, 1, NULL, NULL, NULL };
  const VaeBackend *cpu = vae_backend_cpu ();
  gdouble           worst;

  if (!vae_cpu_has_small_sgemm ())
    {
      g_test_skip ("the chunks run only on AVX2 or AVX-512: such convs go to OpenBLAS here");
      return;
    }
  g_assert_false (vae_direct_conv_applies (&too_wide));
  worst = check_against_float64 (shapes, G_N_ELEMENTS (shapes), 321, cpu, FALSE, takes_chunks);
  g_test_message ("direct fp32 convolutions: worst error %.3g of sum |terms|", worst);
}

/* vae_sgemm on shapes that span several blocks of C (128 × 256) and, on
 * sgemm.c's kernels, slices of k, partial panels and every transpose, and
 * vae_sgemm_batch, against float64: worst error of sum |terms| (fp32 sums of up to 300
 * terms stay within 1e-6 of it; a wrong transpose, alpha or block edge
 * moves whole terms). */
static gdouble
check_products (void)
{
  static const gint shapes[][5] = {
    /* m, n, k, trans_a, trans_b */
    { 130, 300, 70, FALSE, FALSE },
    { 9, 257, 200, TRUE, FALSE },
    { 129, 33, 300, FALSE, TRUE },
    { 64, 64, 129, TRUE, TRUE },
  };
  GRand  *rand = g_rand_new_with_seed (21);
  gdouble worst = 0.0;

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      const gint     m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
      const gboolean ta = shapes[s][3], tb = shapes[s][4];
      const gsize    lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 7;
      const gfloat   alpha = 0.75f;
      gfloat        *a = test_random_floats (rand, (gsize) (ta ? k : m) * lda, -1.0, 1.0);
      gfloat        *b = test_random_floats (rand, (gsize) (tb ? n : k) * ldb, -1.0, 1.0);
      gfloat        *c = g_new (gfloat, (gsize) m * ldc);

      vae_sgemm (ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc);
      for (gint i = 0; i < m; i++)
        for (gint j = 0; j < n; j++)
          {
            gdouble sum = 0.0, size = 0.0;
            for (gint l = 0; l < k; l++)
              {
                const gdouble t = (gdouble) (ta ? a[(gsize) l * lda + i] : a[i * lda + l]) *
                                  (tb ? b[j * ldb + l] : b[(gsize) l * ldb + j]);
                sum += t;
                size += fabs (t);
              }
            worst = MAX (worst, fabs (c[i * ldc + j] - alpha * sum) / (alpha * size));
          }
      g_free (a);
      g_free (b);
      g_free (c);
    }
  {
    /* a batch of 3 (Winograd's 36 positions), 2 × 2 blocks each */
    const gint count = 3, m = 140, n = 260, k = 150;
    gfloat    *a = test_random_floats (rand, (gsize) count * m * k, -1.0, 1.0);
    gfloat    *b = test_random_floats (rand, (gsize) count * k * n, -1.0, 1.0);
    gfloat    *c = g_new (gfloat, (gsize) count * m * n);

    vae_sgemm_batch (count, m, n, k, a, (gsize) m * k, b, (gsize) k * n, c, (gsize) m * n);
    for (gint g = 0; g < count; g++)
      for (gint i = 0; i < m; i++)
        for (gint j = 0; j < n; j++)
          {
            gdouble sum = 0.0, size = 0.0;
            for (gint l = 0; l < k; l++)
              {
                const gdouble t =
                    (gdouble) a[((gsize) g * m + i) * k + l] * b[((gsize) g * k + l) * n + j];
                sum += t;
                size += fabs (t);
              }
            worst = MAX (worst, fabs (c[((gsize) g * m + i) * n + j] - sum) / size);
          }
    g_free (a);
    g_free (b);
    g_free (c);
  }
  g_rand_free (rand);
  return worst;
}

/* Where OpenBLAS runs kernels without AVX2 on a CPU that has it (it did
 * not know the CPU: Debian 12's 0.3.21 takes its SSE3 "Prescott" set on
 * an Emerald Rapids Xeon, 5.6 times slower), vae_sgemm runs sgemm.c's
 * kernels.  Checked where OpenBLAS is told to take that set, in a new
 * process (it reads OPENBLAS_CORETYPE as it loads), and with whatever set
 * it takes here. */
static void
test_openblas_fallback (void)
{
  g_autoptr (GError) error = NULL;
  gdouble worst;

  if (g_test_subprocess ())
    g_setenv ("OPENBLAS_CORETYPE", "Prescott", TRUE);
  g_assert_true (vae_blas_ready (&error));
  g_assert_no_error (error);
  if (g_test_subprocess () &&
      g_ascii_strcasecmp (vae_blas_core () ? vae_blas_core () : "", "Prescott"))
    {
      g_test_skip ("this OpenBLAS does not take a core from OPENBLAS_CORETYPE (no DYNAMIC_ARCH)");
      return;
    }
  worst = check_products ();
  g_test_message ("OpenBLAS's %s kernels, %s: worst error %.3g of sum |terms| (bar 1e-6)",
                  vae_blas_core (), vae_blas_falls_back () ? "products through sgemm.c" : "its own",
                  worst);
  g_assert_cmpfloat (worst, <=, 1e-6);
  if (g_test_subprocess ())
    {
      g_assert_true (vae_blas_falls_back () == vae_cpu_has_small_sgemm ());
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDOUT);
  g_test_trap_assert_passed ();
}

/* A conv of a band of rows (vae_cpu_conv_rows, what a banded block's
 * convs run): X's rows [2, H − 1) read where they are, unpadded above and
 * padded below, the first rows of the output but one written into Y from
 * its row 3, maybe adding a band of a residual that starts a row in;
 * Y's other rows must keep what they held.  Against the reference conv of
 * a copy of the band with the residual's matching rows, within
 * test_conv_fast_vs_reference's 3e-5 of the largest output: through
 * Winograd (16 inputs, per-thread chunks and bands) and through the
 * copies of the other kernels (4 inputs, which Winograd does not take). */
static void
test_conv_rows (void)
{
  static const gint sizes[][2] = { { 37, 19 }, { 130, 11 }, { 64, 30 } };
  const gint        first = 2, y_row = 3, below = 2, co = 9;
  GRand            *rand = g_rand_new_with_seed (31);
  gdouble           worst = 0;

  for (gint chunked = 0; chunked < 2; chunked++)
    for (gint ci = 4; ci <= 16; ci += 12)
      for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
        {
          const VaeConv shape = { co, ci, 3, 1, 0, 1, 1, 1, NULL, NULL, NULL };
          const gint    rows = sizes[s][1] - 3;
          ConvCase      c;
          VaeRows       band, res;
          gint          all_h, out_w, out_h;
          gdouble       err;
          g_autoptr (GError) error = NULL;
          g_autoptr (VaeTensor) copy = NULL, ref_res = NULL, ref = NULL, want = NULL, y = NULL,
                                got = NULL, residual = NULL;

          conv_case_init_shape (&c, rand, &shape, sizes[s]);
          g_assert_true (vae_winograd_applies (&c.conv) == (ci >= 8));
          band = (VaeRows){ c.x, first, rows };
          vae_conv_output_size (&c.conv, rows << c.up, c.x->width << c.up, &all_h, &out_w);
          out_h = all_h - 1;
          residual = vae_tensor_new (co, all_h + 1, out_w, NULL);
          for (gsize i = 0; i < vae_tensor_n_elements (residual); i++)
            residual->data[i] = (gfloat) g_rand_double_range (rand, -1, 1);
          res = (VaeRows){ residual, 1, out_h };
          y = vae_tensor_new (co, y_row + out_h + below, out_w, NULL);
          for (gsize i = 0; i < vae_tensor_n_elements (y); i++)
            y->data[i] = 7.0f;
          vae_winograd_set_chunked (chunked);
          g_assert_true (vae_cpu_conv_rows (vae_backend_cpu (), &c.conv, &band, c.up,
                                            c.residual ? &res : NULL, c.act, y, y_row, out_h,
                                            &error));
          vae_winograd_set_chunked (TRUE);
          g_assert_no_error (error);
          copy = vae_tensor_rows (c.x, first, first + rows, &error);
          ref_res = vae_tensor_rows (residual, 1, 1 + all_h, &error);
          ref = vae_cpu_conv_reference (&c.conv, copy, c.up, c.residual ? ref_res : NULL, c.act,
                                        &error);
          g_assert_no_error (error);
          want = vae_tensor_rows (ref, 0, out_h, &error);
          got = vae_tensor_rows (y, y_row, y_row + out_h, &error);
          g_assert_no_error (error);
          err = test_max_rel_error (got, want);
          worst = MAX (worst, err);
          if (err > 3e-5)
            g_error ("conv rows: chunked %d ci %d %dx%d up %d act %d residual %d: relative "
                     "error %g",
                     chunked, ci, sizes[s][0], sizes[s][1], c.up, c.act, c.residual != NULL, err);
          for (gint o = 0; o < co; o++)
            for (gint r = 0; r < y->height; r++)
              if (r < y_row || r >= y_row + out_h)
                for (gint x = 0; x < out_w; x++)
                  g_assert_cmpfloat (y->data[((gsize) o * y->height + r) * out_w + x], ==, 7.0f);
          conv_case_clear (&c);
        }
  g_test_message ("convs of bands of rows: worst relative error %.3g (bar 3e-5)", worst);
  g_rand_free (rand);
}

/* vae_cpu_residual_block in bands against the same block layer by layer
 * on whole tensors, through both CPU backends: alone, after a conv, after
 * an upsampling conv, before a conv of stride 1 (to 3 channels, as
 * TAESD's decoder ends) or 2 (an encoder's downsampler); 127 rows a band,
 * so the second band's halo starts on an odd row of the upsampled input
 * and a stride-2 post conv carries one row or two into the next band;
 * block heights whose last band is 46 rows (300) or 3 and 4 (257, 258),
 * so bands meet the image's bottom with and without their halo cut.
 * fp32: Winograd's tiles start at other rows in a band, so each conv may
 * round differently, within 3e-5 of the largest output
 * (test_conv_fast_vs_reference's bound): 1.2e-4 for four, 1.5e-4 with a
 * post conv.  bf16 on AMX tiles: every output pixel is the same sum in
 * the same order, so identical.  Where a conv is not on them (no AMX, or
 * too few channels) bf16 Winograd's tiles move too, and each of up to
 * five convs rounds its operands to bf16 at other points: both results
 * are then measured against the block in fp32, and the banded one may be
 * at most twice as far from it as the layered one (bf16's own noise: on
 * AVX512-BF16 without AMX, 0.002–0.014 of the largest output). */
static void
test_residual_block_bands (void)
{
  /* pre conv (0 none, 1 plain, 2 after ×2), block height, post conv
   * (0 none, else its stride) */
  static const gint cases[][3] = { { 0, 300, 0 }, { 0, 257, 0 }, { 1, 300, 0 },
                                   { 2, 300, 0 }, { 2, 258, 0 }, { 2, 300, 1 },
                                   { 1, 300, 2 }, { 0, 257, 2 }, { 0, 258, 1 } };
  const gint        channels = 32, width = 516; /* 127 rows a band of 8 MB */
  GRand            *rand = g_rand_new_with_seed (77);

  for (gint bf16 = 0; bf16 < 2; bf16++)
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        const VaeBackend *be = bf16 ? vae_backend_cpu_bf16 () : vae_backend_cpu ();
        const gint        pre = cases[i][0], up = pre == 2, post = cases[i][2];
        const gint        size[2] = { width >> up, cases[i][1] >> up };
        ConvCase          c[5];
        VaeResidualBlock  block = { pre ? &c[3].conv : NULL,
                                   up,
                                   VAE_ACT_RELU,
                                   { &c[0].conv, &c[1].conv, &c[2].conv },
                                   post ? &c[4].conv : NULL,
                                   VAE_ACT_SILU };
        gint     out_c, out_h, out_w;
        gsize    band_bytes;
        gboolean tiles = TRUE;
        gdouble  err, bar;
        g_autoptr (GError) error = NULL;
        g_autoptr (VaeTensor) banded = NULL, layers = NULL;

        if (bf16 && !test_has_bf16 ())
          continue;
        for (gint k = 0; k < 4; k++)
          {
            conv_case_init (&c[k], rand, channels, channels, size);
            c[k].conv.pad_top = c[k].conv.pad_bottom = 1;
          }
        {
          /* stride 1 to 3 channels, or stride 2 to as many as it reads */
          const VaeConv shape = {
            post == 1 ? 3 : channels, channels, 3, MAX (post, 1), 1, 1, 1, 1, NULL, NULL, NULL
          };
          conv_case_init_shape (&c[4], rand, &shape, size);
        }
        for (gint k = 0; k < 5; k++)
          if (k < 3 || (k == 3 && pre) || (k == 4 && post))
            tiles = tiles && vae_amx_conv_applies (&c[k].conv);
        g_assert_true (vae_cpu_residual_block_banded (&block, c[0].x, &band_bytes));
        banded = vae_cpu_residual_block (be, &block, c[0].x, &error);
        g_assert_no_error (error);
        layers = vae_residual_block_layers (be, &block, c[0].x, &error);
        g_assert_no_error (error);
        vae_residual_block_output (&block, c[0].x, &out_c, &out_h, &out_w);
        g_assert_cmpint (banded->channels, ==, out_c);
        g_assert_cmpint (banded->height, ==, out_h);
        g_assert_cmpint (banded->width, ==, out_w);
        g_assert_cmpint (out_h, ==, post == 2 ? (cases[i][1] + 1) / 2 : cases[i][1]);
        err = test_max_rel_error (banded, layers);
        bar = !bf16 ? (post ? 1.5e-4 : 1.2e-4) : 0.0;
        if (bf16 && !tiles)
          {
            g_autoptr (VaeTensor) fp32 =
                vae_residual_block_layers (vae_backend_cpu (), &block, c[0].x, &error);
            g_assert_no_error (error);
            err = test_max_rel_error (banded, fp32);
            bar = 2 * test_max_rel_error (layers, fp32);
          }
        g_test_message ("%s, pre %d, height %d, post %d: banded against %s %.3g of the largest "
                        "output (bar %.3g)",
                        bf16 ? "bf16" : "fp32", pre, cases[i][1], post,
                        bf16 && !tiles ? "fp32" : "layers", err, bar);
        if (err > bar)
          g_error ("%s, pre %d, height %d, post %d: banded block differs by %.3g of the largest "
                   "output, bar %.3g",
                   bf16 ? "bf16" : "fp32", pre, cases[i][1], post, err, bar);
        for (gint k = 0; k < 5; k++)
          conv_case_clear (&c[k]);
      }
  g_rand_free (rand);
}

/* A GroupNorm of CHANNELS in GROUPS with random γ and β. */
static void
norm_init (VaeNorm *n, GRand *rand, gint channels, gint groups)
{
  *n = (VaeNorm){ channels, groups, 1e-6f, NULL, NULL, NULL, VAE_NORM_GROUP };
  n->gamma = test_random_floats (rand, channels, 0.5, 1.5);
  n->beta = test_random_floats (rand, channels, -0.5, 0.5);
}

/* The fused resnet (norms applied as the convs read, the sum written over
 * x) against the same resnet layer by layer: identical, since each value
 * is the same act(x·a + b) with the same a and b, and the convs see the
 * same inputs.  Through both CPU backends, chunked and banded Winograd,
 * channels the chunks take (16) and more (136), sizes that are not
 * multiples of the tile; and a resnet it cannot fuse (4 channels:
 * Winograd takes 8 or more) going layer by layer. */
static void
test_resnet_fused (void)
{
  static const gint channels[] = { 16, 136, 4 };
  static const gint sizes[][2] = { { 1, 1 }, { 33, 31 }, { 150, 6 } };
  GRand            *rand = g_rand_new_with_seed (41);

  for (gint bf16 = 0; bf16 < 2; bf16++)
    for (gint chunked = 0; chunked < 2; chunked++)
      for (guint a = 0; a < G_N_ELEMENTS (channels); a++)
        for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
          {
            const VaeBackend *be = bf16 ? vae_backend_cpu_bf16 () : vae_backend_cpu ();
            const gint        c = channels[a];
            ConvCase          k[2];
            VaeNorm           n[2];
            const VaeResnet   r = { &n[0], &k[0].conv, &n[1], &k[1].conv };
            g_autoptr (GError) error = NULL;
            g_autoptr (VaeTensor) fused = NULL, layers = NULL;
            VaeTensor *x;

            if (bf16 && !vae_cpu_has_bf16 ()) /* the fp32 half still counts */
              continue;
            for (gint i = 0; i < 2; i++)
              {
                const VaeConv shape = { c, c, 3, 1, 1, 1, 1, 1, NULL, NULL, NULL };
                conv_case_init_shape (&k[i], rand, &shape, sizes[s]);
                norm_init (&n[i], rand, c, c / 4);
              }
            g_assert_cmpint (vae_cpu_resnet_fuses (&r, k[0].x, FALSE), ==, c >= 8);
            /* copies of the input: each call consumes its own */
            x = vae_tensor_rows (k[0].x, 0, k[0].x->height, NULL);
            vae_winograd_set_chunked (chunked);
            fused = vae_cpu_resnet (be, &r, x, &error);
            g_assert_no_error (error);
            x = vae_tensor_rows (k[0].x, 0, k[0].x->height, NULL);
            layers = vae_resnet_layers (be, &r, x, &error);
            vae_winograd_set_chunked (TRUE);
            g_assert_no_error (error);
            if (memcmp (fused->data, layers->data, vae_tensor_n_elements (fused) * sizeof (gfloat)))
              g_error ("%s, %s, %d channels, %dx%d: the fused resnet differs from its layers (%.3g "
                       "of the largest output)",
                       bf16 ? "bf16" : "fp32", chunked ? "chunks" : "bands", c, sizes[s][0],
                       sizes[s][1], test_max_rel_error (fused, layers));
            for (gint i = 0; i < 2; i++)
              {
                conv_case_clear (&k[i]);
                vae_norm_clear (&n[i]);
              }
          }
  if (!vae_cpu_has_bf16 ())
    g_test_message ("bf16 backend not checked: this CPU (or build) has no AVX512-BF16");
  g_rand_free (rand);
}

/* A transposed convolution in float64 by its definition (each input value
 * scattered through the kernel); *MAGNITUDE gets Σ|w·x| + |bias| per
 * output value. */
static void
conv_transpose_f64 (const VaeConvTranspose *l, const VaeTensor *x, gdouble *out, gdouble *magnitude,
                    gint out_h, gint out_w)
{
  const gint k = l->kernel;

  for (gint o = 0; o < l->out_channels; o++)
    for (gsize j = 0; j < (gsize) out_h * out_w; j++)
      {
        out[o * (gsize) out_h * out_w + j] = l->bias ? l->bias[o] : 0.0;
        magnitude[o * (gsize) out_h * out_w + j] = l->bias ? fabs (l->bias[o]) : 0.0;
      }
  for (gint i = 0; i < l->in_channels; i++)
    for (gint iy = 0; iy < x->height; iy++)
      for (gint ix = 0; ix < x->width; ix++)
        for (gint o = 0; o < l->out_channels; o++)
          for (gint ky = 0; ky < k; ky++)
            for (gint kx = 0; kx < k; kx++)
              {
                const gint oy = iy * l->stride - l->pad + ky, ox = ix * l->stride - l->pad + kx;
                gdouble    p;
                gsize      at;
                if (oy < 0 || oy >= out_h || ox < 0 || ox >= out_w)
                  continue;
                p = (gdouble) l->weight[(((gsize) i * l->out_channels + o) * k + ky) * k + kx] *
                    x->data[((gsize) i * x->height + iy) * x->width + ix];
                at = ((gsize) o * out_h + oy) * out_w + ox;
                out[at] += p;
                magnitude[at] += fabs (p);
              }
}

/* The CPU's transposed convolution (phases of sub-kernels, im2col and
 * products), with and without bias and ReLU, against float64 sums on odd
 * sizes, 1-pixel inputs, kernels
 * that are and are not multiples of the stride, padding 0 to 2: only
 * float32 accumulation may differ, at most (n + 2)·2⁻²⁴·Σ|terms| for a
 * value summing n products and the bias (the standard bound). */
static void
test_conv_transpose (void)
{
  static const gint shapes[][3] = { /* kernel, stride, pad */
                                    { 4, 2, 1 }, { 4, 2, 0 }, { 3, 2, 1 },
                                    { 3, 1, 1 }, { 2, 2, 0 }, { 5, 3, 2 }
  };
  GRand  *rand = g_rand_new_with_seed (26);
  gdouble worst = 0, worst_rel = 0;
  gint    cases = 0;

  for (guint a = 0; a < G_N_ELEMENTS (shapes); a++)
    for (guint s = 0; s < G_N_ELEMENTS (case_sizes); s++)
      {
        VaeConvTranspose l = { g_rand_int_range (rand, 1, 10), g_rand_int_range (rand, 1, 14),
                               shapes[a][0], shapes[a][1], shapes[a][2] };
        const VaeAct     act = g_rand_boolean (rand) ? VAE_ACT_RELU : VAE_ACT_NONE;
        gint             out_h, out_w;
        g_autoptr (VaeTensor) x =
            vae_tensor_new (l.in_channels, case_sizes[s][1], case_sizes[s][0], NULL),
                              y = NULL;
        g_autoptr (GError) error = NULL;
        g_autofree gdouble *want = NULL, *magnitude = NULL;
        gdouble             largest = 0, err_max = 0;

        if (!vae_conv_transpose_output_checked (&l, x, &out_h, &out_w, NULL))
          continue;
        l.weight = test_random_floats (
            rand, (gsize) l.in_channels * l.out_channels * l.kernel * l.kernel, -0.5, 0.5);
        l.bias =
            g_rand_boolean (rand) ? test_random_floats (rand, l.out_channels, -0.5, 0.5) : NULL;
        for (gsize i = 0; i < vae_tensor_n_elements (x); i++)
          x->data[i] = (gfloat) g_rand_double_range (rand, -1, 1);
        y = vae_backend_cpu ()->conv_transpose (vae_backend_cpu (), &l, x, act, &error);
        g_assert_no_error (error);
        g_assert_cmpint (y->height, ==, out_h);
        g_assert_cmpint (y->width, ==, out_w);
        want = g_new (gdouble, vae_tensor_n_elements (y));
        magnitude = g_new (gdouble, vae_tensor_n_elements (y));
        conv_transpose_f64 (&l, x, want, magnitude, out_h, out_w);
        for (gsize i = 0; i < vae_tensor_n_elements (y); i++)
          {
            /* ReLU moves no value further from the reference */
            if (act == VAE_ACT_RELU)
              want[i] = MAX (want[i], 0.0);
            const gint terms = l.in_channels * ((l.kernel + l.stride - 1) / l.stride) *
                               ((l.kernel + l.stride - 1) / l.stride);
            const gdouble err = fabs (y->data[i] - want[i]);
            largest = MAX (largest, fabs (want[i]));
            err_max = MAX (err_max, err);
            worst = MAX (worst, err / MAX (magnitude[i], 1e-30));
            if (err > (terms + 2) * ldexp (1.0, -24) * magnitude[i])
              g_error ("k%d s%d p%d, %d→%d channels, %dx%d: value %" G_GSIZE_FORMAT
                       " is %.9g, want %.9g",
                       l.kernel, l.stride, l.pad, l.in_channels, l.out_channels, case_sizes[s][0],
                       case_sizes[s][1], i, y->data[i], want[i]);
          }
        worst_rel = MAX (worst_rel, err_max / MAX (largest, 1e-30));
        vae_conv_transpose_clear (&l);
        cases++;
      }
  g_test_message ("%d transposed convolutions vs float64: worst error %.3g of sum |terms|, max "
                  "relative error %.3g (house bar 1e-4)",
                  cases, worst, worst_rel);
  g_assert_cmpfloat (worst_rel, <=, 1e-4);
  g_assert_cmpint (cases, >=, 30);
  g_rand_free (rand);
}

static void
test_expf (void)
{
  gdouble worst = 0;

  for (gdouble x = -87.0; x <= 87.0; x += 0.0173)
    {
      gdouble want = exp ((gfloat) x), got = vae_expf ((gfloat) x);
      worst = MAX (worst, fabs (got - want) / want);
    }
  g_test_message ("vae_expf: worst relative error %.3g over [-87, 87]", worst);
  g_assert_cmpfloat (worst, <=, 1e-6);
  g_assert_cmpfloat (vae_expf (-1000.0f), <, 1e-37);
  g_assert_cmpfloat (vae_expf (0.0f), ==, 1.0f);
}

/* The one-thread product of Winograd's chunks against float64 sums, on
 * shapes that leave partial row blocks and partial column panels (both the
 * AVX-512 and the AVX2 kernel's), with row strides wider than the rows.
 * Bound: k·2⁻²⁴·Σ|terms| (each fma rounds once per term). */
static void
test_sgemm_small (void)
{
  /* k over 128 runs in slices of 64, the last one shorter (200, 1153) */
  static const gint shapes[][3] = {
    { 1, 1, 1 },     { 7, 17, 5 },    { 13, 33, 64 },  { 64, 32, 64 },  { 6, 16, 9 },
    { 65, 47, 128 }, { 11, 21, 200 }, { 64, 64, 576 }, { 7, 16, 1153 },
  };
  GRand  *rand = g_rand_new_with_seed (77);
  gdouble worst = 0;

  if (!vae_cpu_has_small_sgemm ())
    {
      g_test_skip ("this CPU (or build) has neither AVX-512 nor AVX2 with FMA");
      g_rand_free (rand);
      return;
    }
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      const gint         m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
      const gsize        lda = k + 3, ldb = n + 5, ldc = n + 2;
      g_autofree gfloat *a = test_random_floats (rand, m * lda, -1, 1);
      g_autofree gfloat *b = test_random_floats (rand, k * ldb, -1, 1);
      g_autofree gfloat *c = g_new0 (gfloat, m * ldc);
      g_autofree gfloat *packed = g_new (gfloat, vae_sgemm_small_a_floats (m, k));

      vae_sgemm_small_pack_a (m, k, a, lda, packed);
      vae_sgemm_small (m, n, k, packed, b, ldb, c, ldc);
      for (gint i = 0; i < m; i++)
        for (gint j = 0; j < n; j++)
          {
            gdouble sum = 0, abs_sum = 0;
            for (gint l = 0; l < k; l++)
              {
                sum += (gdouble) a[i * lda + l] * b[l * ldb + j];
                abs_sum += fabs ((gdouble) a[i * lda + l] * b[l * ldb + j]);
              }
            worst = MAX (worst, fabs (c[i * ldc + j] - sum) / (abs_sum + 1e-30));
            g_assert_cmpfloat (fabs (c[i * ldc + j] - sum), <=, k * ldexp (abs_sum, -24) + 1e-30);
          }
    }
  g_test_message ("small products: worst error %.3g of the sum of |terms|", worst);
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/conv3x3-fast-vs-reference", test_conv_fast_vs_reference);
  g_test_add_func ("/kernels/expf", test_expf);
  g_test_add_func ("/kernels/sgemm-small", test_sgemm_small);
  g_test_add_func ("/kernels/gemm-bf16", test_gemm_bf16);
  g_test_add_func ("/kernels/gemm-amx", test_gemm_amx);
  g_test_add_func ("/kernels/conv3x3-bf16-chunks-vs-bands", test_conv_bf16_chunks);
  g_test_add_func ("/kernels/conv-bf16-direct", test_conv_bf16_direct);
  g_test_add_func ("/kernels/conv-amx", test_conv_amx);
  g_test_add_func ("/kernels/conv-direct", test_conv_direct);
  g_test_add_func ("/kernels/conv-transpose", test_conv_transpose);
  g_test_add_func ("/kernels/conv-rows", test_conv_rows);
  g_test_add_func ("/kernels/residual-block-bands", test_residual_block_bands);
  g_test_add_func ("/kernels/openblas-fallback", test_openblas_fallback);
  g_test_add_func ("/kernels/resnet-fused", test_resnet_fused);
  return g_test_run ();
}
