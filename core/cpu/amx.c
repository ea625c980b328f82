/* The bfloat16 matrix product on AMX tiles: C = A·B with A in packed bf16
 * rows (vae_bf16_pack_rows), B in fp32 rounded to bf16 as it is packed,
 * and fp32 accumulation — what bf16.c's vdpbf16ps kernel computes, on the
 * tile unit.
 *
 * tdpbf16ps multiplies a 16 × 32 bf16 tile of A by a 16 pairs × 16 columns
 * tile of B (pairs interleaved: B's VNNI layout) into a 16 × 16 fp32 tile
 * of C.  bf16.c's panels are already [k/2][32 columns][2], so a B tile is
 * 16 pair rows of one half of a panel, 128 bytes apart; this file pads the
 * pairs to a multiple of 16 with zeros.  A's packed rows load as they are
 * where a tile lies inside them; tiles at A's edges (the last rows, the
 * last pairs) go through a zero-padded copy, since a tile's shape is fixed
 * by the configuration.  A block of 32 rows × one panel keeps four C tiles
 * while k runs: every tile load feeds two products.
 *
 * Linux hands out the tile registers only to processes that ask
 * (arch_prctl ARCH_REQ_XCOMP_PERM), so the kernel is used only where that
 * succeeds; GEGL_VAE_AMX=0 turns it off for comparisons.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "cpu/cpu.h"

#include <omp.h>
#include <string.h>

#define TILE 16 /* rows of a tile; bf16 pairs across an A tile and down a B tile */

/* Pairs of k padded to whole tiles. */
static gint
padded_pairs (gint k)
{
  return (vae_bf16_pairs (k) + TILE - 1) / TILE * TILE;
}

/* room for the panel of B's bf16 values and that of what they leave */
gsize
vae_amx_panel_elements (gint k)
{
  return (gsize) 2 * padded_pairs (k) * 2 * VAE_BF16_PANEL;
}

VaeAmxPath
vae_amx_path (void)
{
  static gsize path = 0;

  if (g_once_init_enter (&path))
    {
      static const gchar *const names[] = { "", "0", "single", "direct", "winograd" };
      const gchar              *env = g_getenv ("GEGL_VAE_AMX");
      gsize                     found = VAE_AMX_DEFAULT;
      for (guint i = 1; env && i < G_N_ELEMENTS (names); i++)
        if (g_strcmp0 (env, names[i]) == 0)
          found = i;
      g_once_init_leave (&path, found + 1);
    }
  return (VaeAmxPath) (path - 1);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_TARGET __attribute__ ((target ("amx-tile,amx-bf16")))

#define ARCH_REQ_XCOMP_PERM 0x1023 /* Linux's arch_prctl to ask for a state component */
#define XFEATURE_XTILEDATA  18     /* the tile registers' state component */

static gboolean
detect (void)
{
  guint eax, ebx, ecx, edx;

  if (vae_amx_path () == VAE_AMX_OFF)
    return FALSE;
  /* CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE */
  if (!__get_cpuid_count (7, 0, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 22)) ||
      !(edx & (1u << 24)) || !vae_cpu_has_bf16 ())
    return FALSE;
  return syscall (SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

gboolean
vae_cpu_has_amx (void)
{
  static gsize has = 0;

  if (g_once_init_enter (&has))
    g_once_init_leave (&has, detect () ? 2 : 1);
  return has == 2;
}

/* ldtilecfg's 64-byte operand: palette 1, every tile 16 rows of 64 bytes.
 * A constant, not built on the stack: gcc 12's _tile_loadconfig tells the
 * compiler it reads only 8 bytes, so the stores to the rest can vanish. */
typedef struct
{
  guint8  palette, start_row, reserved[14];
  guint16 colsb[16];
  guint8  rows[16];
} TileConfig;

static const TileConfig tile_config = {
  .palette = 1,
  .colsb = { 64, 64, 64, 64, 64, 64, 64, 64 },
  .rows = { TILE, TILE, TILE, TILE, TILE, TILE, TILE, TILE },
};

AMX_TARGET void
vae_amx_tiles_begin (void)
{
  _tile_loadconfig (&tile_config);
}

/* Where the A tile of rows [I0, I0 + 16) and pairs [KK, KK + 16) starts,
 * and its row stride in bytes: in A itself where the tile lies inside it,
 * else in EDGE, a zero-padded copy. */
static const guint16 *
a_tile (const guint16 *a, gint m, gint pairs, gint i0, gint kk, guint16 *edge, gsize *stride)
{
  const gint lda = 2 * pairs;

  if (i0 + TILE <= m && kk + TILE <= pairs)
    {
      *stride = (gsize) lda * sizeof (guint16);
      return a + (gsize) i0 * lda + 2 * kk;
    }
  memset (edge, 0, TILE * 2 * TILE * sizeof (guint16));
  for (gint r = 0; r < MIN (TILE, m - i0); r++)
    memcpy (edge + r * 2 * TILE, a + (gsize) (i0 + r) * lda + 2 * kk,
            (gsize) 2 * MIN (TILE, pairs - kk) * sizeof (guint16));
  *stride = 2 * TILE * sizeof (guint16);
  return edge;
}

/* C's 16 × 16 block at (I0, J0), of which ROWS × COLS lie inside C, from
 * the fp32 tile BUF holds. */
static void
store_edge (const gfloat *buf, gint rows, gint cols, gfloat *c, gsize ldc, gint i0, gint j0)
{
  for (gint r = 0; r < rows; r++)
    memcpy (c + (gsize) (i0 + r) * ldc + j0, buf + r * TILE, (gsize) cols * sizeof (gfloat));
}

/* Tile T (an immediate) into C's 16 × 16 block at (I0, J0), straight where
 * the block lies inside C's M × COLS, else through BUF. */
#define STORE_TILE(t, i0, j0)                                                                      \
  do                                                                                               \
    {                                                                                              \
      if ((i0) + TILE <= m && (j0) + TILE <= cols)                                                 \
        _tile_stored (t, c + (gsize) (i0) *ldc + (j0), ldc * sizeof (gfloat));                     \
      else if ((i0) < m && (j0) < cols)                                                            \
        {                                                                                          \
          _tile_stored (t, buf, TILE * sizeof (gfloat));                                           \
          store_edge (buf, MIN (TILE, m - (i0)), MIN (TILE, cols - (j0)), c, ldc, i0, j0);         \
        }                                                                                          \
    }                                                                                              \
  while (0)

/* Tiles 0–3 += the A tiles of rows [I0, I0 + 32) and pairs [KK, KK + 16)
 * times B's two tiles at B0 (128 bytes a row): A in tiles 4–5, B in 6–7;
 * without TWO the second row tile lies beyond A and is left out. */
static inline __attribute__ ((always_inline)) AMX_TARGET void
step (const guint16 *a, gint m, gint pairs, gint i0, gint kk, const guint16 *b0, gboolean two,
      guint16 (*edge)[TILE * 2 * TILE])
{
  const gsize    b_stride = 2 * VAE_BF16_PANEL * sizeof (guint16);
  gsize          s0, s1;
  const guint16 *a0 = a_tile (a, m, pairs, i0, kk, edge[0], &s0);

  _tile_loadd (4, a0, s0);
  _tile_loadd (6, b0, b_stride);
  _tile_loadd (7, b0 + 2 * TILE, b_stride);
  _tile_dpbf16ps (0, 4, 6);
  _tile_dpbf16ps (1, 4, 7);
  if (two)
    {
      const guint16 *a1 = a_tile (a, m, pairs, i0 + TILE, kk, edge[1], &s1);
      _tile_loadd (5, a1, s1);
      _tile_dpbf16ps (2, 5, 6);
      _tile_dpbf16ps (3, 5, 7);
    }
}

/* The pairs [KK, KK + 16) of A·B: one step, or three for split products
 * (A_LOW not NULL; B's low panel BL_OFFSET values past its high one). */
static inline __attribute__ ((always_inline)) AMX_TARGET void
steps (const guint16 *a, const guint16 *a_low, gint m, gint pairs, gint i0, gint kk,
       const guint16 *b0, gsize bl_offset, gboolean two, guint16 (*edge)[TILE * 2 * TILE])
{
  step (a, m, pairs, i0, kk, b0, two, edge);
  if (a_low)
    {
      step (a, m, pairs, i0, kk, b0 + bl_offset, two, edge);
      step (a_low, m, pairs, i0, kk, b0, two, edge);
    }
}

/* C's COLS ≤ 32 columns (rows LDC apart) = A·P, P one packed panel (and
 * its low half after it for split products).  Tiles: C in 0–3 ([row
 * half][column half]), A in 4–5, B in 6–7. */
static AMX_TARGET void
panel_product (const guint16 *a, const guint16 *a_low, gint m, gint k, const guint16 *p, gfloat *c,
               gsize ldc, gint cols)
{
  const gint  pairs = vae_bf16_pairs (k), padded = padded_pairs (k);
  const gsize bl_offset = (gsize) padded * 2 * VAE_BF16_PANEL;
  guint16     edge[2][TILE * 2 * TILE];
  gfloat      buf[TILE * TILE];

  for (gint i0 = 0; i0 < m; i0 += 2 * TILE)
    {
      const gboolean two = i0 + TILE < m;
      _tile_zero (0);
      _tile_zero (1);
      _tile_zero (2);
      _tile_zero (3);
      for (gint kk = 0; kk < padded; kk += TILE)
        steps (a, a_low, m, pairs, i0, kk, p + (gsize) kk * 2 * VAE_BF16_PANEL, bl_offset, two,
               edge);
      STORE_TILE (0, i0, 0);
      STORE_TILE (1, i0, TILE);
      if (two)
        {
          STORE_TILE (2, i0 + TILE, 0);
          STORE_TILE (3, i0 + TILE, TILE);
        }
    }
}

AMX_TARGET void
vae_amx_gemm (gint m, gint n, gint k, const guint16 *a, const guint16 *a_low, const gfloat *b,
              gsize ldb, gfloat *c, gsize ldc, guint16 *panel)
{
  const gint  padded = padded_pairs (k);
  const gsize bl_offset = (gsize) padded * 2 * VAE_BF16_PANEL;

  g_return_if_fail (vae_cpu_has_amx ());
  vae_amx_tiles_begin ();
  for (gint n0 = 0; n0 < n; n0 += VAE_BF16_PANEL)
    {
      const gint cols = MIN (VAE_BF16_PANEL, n - n0);
      vae_bf16_pack_pairs (b, ldb, k, 0, padded, n0, cols, FALSE, panel);
      if (a_low)
        vae_bf16_pack_pairs (b, ldb, k, 0, padded, n0, cols, TRUE, panel + bl_offset);
      panel_product (a, a_low, m, k, panel, c + n0, ldc, cols);
    }
  vae_amx_tiles_end ();
}

/* ---- products in blocks that stay in a core's cache -------------------------- */

/* A block is GROUP panels of B (256 columns) by CHUNK pairs of k: B's
 * slice, 8 × 128 pair rows × 128 bytes = 128 KB, stays in L2 while every
 * row block of A passes; A's slice of one row block, 32 rows × 512 bytes,
 * stays in L1 while it meets the 8 panels.  C's tiles wait between slices
 * in ACC, fp32 and padded to whole tiles, and go to C at the end. */
#define GROUP 8
#define CHUNK 128

AMX_TARGET void
vae_amx_tiles_end (void)
{
  _tile_release ();
}

/* Columns [N0, N0 + COLS) of C = A·B, COLS ≤ ACC_LD ≤ GROUP panels; ACC
 * holds m rounded up to 32 rows of ACC_LD, BP one slice of the group (and
 * one of its low half for split products). */
static AMX_TARGET void
block_product (const guint16 *a, const guint16 *a_low, gint m, gint k, const gfloat *b, gsize ldb,
               gint n0, gint cols, gfloat *c, gsize ldc, guint16 *bp, gfloat *acc, gsize acc_ld)
{
  const gint  pairs = vae_bf16_pairs (k), padded = padded_pairs (k);
  const gint  panels = (cols + VAE_BF16_PANEL - 1) / VAE_BF16_PANEL;
  const gsize acc_stride = acc_ld * sizeof (gfloat);
  const gsize bl_offset = (gsize) GROUP * CHUNK * 2 * VAE_BF16_PANEL;
  guint16     edge[2][TILE * 2 * TILE];

  for (gint kc = 0; kc < padded; kc += CHUNK)
    {
      const gint kn = MIN (CHUNK, padded - kc);
      for (gint q = 0; q < panels; q++)
        for (gint low = 0; low < (a_low ? 2 : 1); low++)
          vae_bf16_pack_pairs (b, ldb, k, kc, kc + kn, n0 + q * VAE_BF16_PANEL,
                               MIN (VAE_BF16_PANEL, cols - q * VAE_BF16_PANEL), low,
                               bp + low * bl_offset + (gsize) q * kn * 2 * VAE_BF16_PANEL);
      for (gint i0 = 0; i0 < m; i0 += 2 * TILE)
        for (gint q = 0; q < panels; q++)
          {
            gfloat        *t = acc + i0 * acc_ld + q * VAE_BF16_PANEL;
            const guint16 *slice = bp + (gsize) q * kn * 2 * VAE_BF16_PANEL;
            if (kc == 0)
              {
                _tile_zero (0);
                _tile_zero (1);
                _tile_zero (2);
                _tile_zero (3);
              }
            else
              {
                _tile_loadd (0, t, acc_stride);
                _tile_loadd (1, t + TILE, acc_stride);
                _tile_loadd (2, t + TILE * acc_ld, acc_stride);
                _tile_loadd (3, t + TILE * acc_ld + TILE, acc_stride);
              }
            for (gint kk = 0; kk < kn; kk += TILE)
              steps (a, a_low, m, pairs, i0, kc + kk, slice + (gsize) kk * 2 * VAE_BF16_PANEL,
                     bl_offset, TRUE, edge);
            _tile_stored (0, t, acc_stride);
            _tile_stored (1, t + TILE, acc_stride);
            _tile_stored (2, t + TILE * acc_ld, acc_stride);
            _tile_stored (3, t + TILE * acc_ld + TILE, acc_stride);
          }
    }
  for (gint i = 0; i < m; i++)
    memcpy (c + (gsize) i * ldc + n0, acc + i * acc_ld, (gsize) cols * sizeof (gfloat));
}

void
vae_amx_products (gint count, gint m, gint n, gint k, const guint16 *a, const guint16 *a_low,
                  gsize a_stride, const gfloat *b, gsize ldb, gsize b_stride, gfloat *c, gsize ldc,
                  gsize c_stride)
{
  const gint panels = (n + VAE_BF16_PANEL - 1) / VAE_BF16_PANEL;
  /* narrower blocks where the products have too few for every thread to
   * get several: a thread left with one block fewer waits */
  const gint  per_block = CLAMP (count * panels / (4 * omp_get_max_threads ()), 1, GROUP);
  const gint  group_cols = per_block * VAE_BF16_PANEL, groups = (n + group_cols - 1) / group_cols;
  const gsize acc_rows = (gsize) (m + 2 * TILE - 1) / (2 * TILE) * 2 * TILE;

  g_return_if_fail (vae_cpu_has_amx ());
#pragma omp parallel
  {
    guint16 *bp = g_new (guint16, (gsize) 2 * GROUP * CHUNK * 2 * VAE_BF16_PANEL);
    gfloat  *acc = g_new (gfloat, acc_rows * group_cols);
    vae_amx_tiles_begin ();
#pragma omp for schedule(static) collapse(2)
    for (gint g = 0; g < count; g++)
      for (gint q = 0; q < groups; q++)
        block_product (a + g * a_stride, a_low ? a_low + g * a_stride : NULL, m, k,
                       b + g * b_stride, ldb, q * group_cols, MIN (group_cols, n - q * group_cols),
                       c + g * c_stride, ldc, bp, acc, group_cols);
    vae_amx_tiles_end ();
    g_free (acc);
    g_free (bp);
  }
}

#else /* no AMX code on this compiler or architecture */

gboolean
vae_cpu_has_amx (void)
{
  return FALSE;
}

void
vae_amx_gemm (gint m, gint n, gint k, const guint16 *a, const guint16 *a_low, const gfloat *b,
              gsize ldb, gfloat *c, gsize ldc, guint16 *panel)
{
  g_return_if_reached ();
}

void
vae_amx_products (gint count, gint m, gint n, gint k, const guint16 *a, const guint16 *a_low,
                  gsize a_stride, const gfloat *b, gsize ldb, gsize b_stride, gfloat *c, gsize ldc,
                  gsize c_stride)
{
  g_return_if_reached ();
}

#endif
