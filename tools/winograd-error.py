#!/usr/bin/env python3
"""fp32 error of Winograd F(m×m, 3×3) variants on one 64-channel tile, against a
float64 direct convolution (docs/PERFORMANCE-NOTES.md, tenth and twelfth parts): the
usual F(6×6) and F(4×4), ours (core/cpu/winograd.c, points ±3/2 and ±2/3, its G
solved from the code's Aᵀ and Bᵀ), and F(6×6) as --search builds it.  Prints, over
TILES random tiles, the largest error as a fraction of the tile's largest output, and
the median.
    python3 tools/winograd-error.py [TILES]
With --search, ranks F(6×6)'s point sets 0, ±a, ±b, ±c, ∞ (a, b, c from 15
magnitudes, transforms built by Toom-Cook and scaled to integers) by their median
error over TILES tiles (default 20; some 3 minutes).
    python3 tools/winograd-error.py --search [TILES]"""
import itertools
import math
import sys
from fractions import Fraction

import numpy as np

SEARCH = sys.argv[1:2] == ["--search"]
ARGS = sys.argv[2:] if SEARCH else sys.argv[1:]
TILES = int(ARGS[0]) if ARGS else 20 if SEARCH else 200
CHANNELS = 64

usual4 = (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float),
          np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                    [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
          np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                    [0, 1, -1, 8, -8, 1]], float))
usual6 = (np.array([[1, 0, -21 / 4, 0, 21 / 4, 0, -1, 0], [0, 1, 1, -17 / 4, -17 / 4, 1, 1, 0],
                    [0, -1, 1, 17 / 4, -17 / 4, -1, 1, 0], [0, 1 / 2, 1 / 4, -5 / 2, -5 / 4, 2, 1, 0],
                    [0, -1 / 2, 1 / 4, 5 / 2, -5 / 4, -2, 1, 0], [0, 2, 4, -5 / 2, -5, 1 / 2, 1, 0],
                    [0, -2, 4, 5 / 2, -5, -1 / 2, 1, 0], [0, -1, 0, 21 / 4, 0, -21 / 4, 0, 1]]),
          np.array([[1, 0, 0], [-2 / 9, -2 / 9, -2 / 9], [-2 / 9, 2 / 9, -2 / 9],
                    [1 / 90, 1 / 45, 2 / 45], [1 / 90, -1 / 45, 2 / 45], [32 / 45, 16 / 45, 8 / 45],
                    [32 / 45, -16 / 45, 8 / 45], [0, 0, 1]]),
          np.array([[1, 1, 1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1 / 2, -1 / 2, 0],
                    [0, 1, 1, 4, 4, 1 / 4, 1 / 4, 0], [0, 1, -1, 8, -8, 1 / 8, -1 / 8, 0],
                    [0, 1, 1, 16, 16, 1 / 16, 1 / 16, 0], [0, 1, -1, 32, -32, 1 / 32, -1 / 32, 1]]))
# winograd.c: row_transform (Bᵀ) and apply_a (Aᵀ)
ours_bt = np.array([[36, 0, -97, 0, 36, 0], [0, -12, -8, 27, 18, 0], [0, 12, -8, -27, 18, 0],
                    [0, -18, -27, 8, 12, 0], [0, 18, -27, -8, 12, 0], [0, 36, 0, -97, 0, 36]], float)
ours_at = np.array([[1, 8, 8, 27, 27, 0], [0, 12, -12, 18, -18, 0], [0, 18, 18, 12, 12, 0],
                    [0, 27, -27, 8, -8, 1]], float)


def solve_g(bt, at):
    """G such that Aᵀ[(G g) ⊙ (Bᵀ d)] is the 3-tap correlation of d by g."""
    rows, rhs = [], []
    for i in range(at.shape[0]):
        for k in range(bt.shape[0]):
            for j in range(3):
                row = np.zeros((bt.shape[0], 3))
                row[:, j] = at[i] * bt[:, k]
                rows.append(row.ravel())
                rhs.append(1.0 if k - i == j else 0.0)
    g, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    # exact but for rounding, relative to the largest product of entries
    assert np.abs(np.array(rows) @ g - rhs).max() < 1e-12 * max(1, np.abs(rows).max())
    return g.reshape(bt.shape[0], 3)


def direct(x, w):
    m = x.shape[1] - 2
    return sum(np.einsum("kc,cab->kab", w[:, :, i, j], x[:, i:i + m, j:j + m])
               for i in range(3) for j in range(3))


def winograd(x, w, bt, g, at):
    f = np.float32
    x, w, bt, g, at = (a.astype(f) for a in (x, w, bt, g, at))
    u = np.einsum("ai,kcij,bj->kcab", g, w, g).astype(f)
    v = np.einsum("ai,cij,bj->cab", bt, x, bt).astype(f)
    return np.einsum("ai,kij,bj->kab", at, np.einsum("kcab,cab->kab", u, v).astype(f), at)


def toom_cook(magnitudes):
    """Bᵀ, G, Aᵀ of F(m, 3), m = 2·len(MAGNITUDES), for the points 0, ±a for a in
    MAGNITUDES, and ∞: Bᵀ's rows the coefficients of the products of (x − p) over the
    other points, scaled to coprime integers; Aᵀ's columns the powers of each point,
    scaled by its denominator^(m−1)."""
    points = [Fraction(0)] + [s * Fraction(a) for a in magnitudes for s in (1, -1)]
    m = len(points) - 1

    def product(skip):
        poly = [Fraction(1)]
        for p in (q for q in points if q is not skip):
            poly = [(poly[i - 1] if i else 0) - p * (poly[i] if i < len(poly) else 0)
                    for i in range(len(poly) + 1)]
        return poly

    rows = [product(p) + [Fraction(0)] for p in points] + [product(None)]
    bt = []
    for row in rows:
        scale = math.lcm(*(x.denominator for x in row))
        ints = [int(x * scale) for x in row]
        bt.append([x // math.gcd(*ints) for x in ints])
    at = [[float(p ** i * p.denominator ** (m - 1)) for p in points] + [float(i == m - 1)]
          for i in range(m)]
    bt, at = np.array(bt, float), np.array(at)
    return bt, solve_g(bt, at), at


def errors(bt, g, at, tiles, rng):
    n, out = bt.shape[0], []
    for _ in range(tiles):
        x = rng.standard_normal((CHANNELS, n, n))
        x = x / (1 + np.exp(-x))  # SiLU'd activations
        w = rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) * np.sqrt(2 / (9 * CHANNELS))
        ref = direct(x, w)
        out.append(np.abs(winograd(x, w, bt, g, at) - ref).max() / np.abs(ref).max())
    return max(out), np.median(out)


if SEARCH:
    candidates = [Fraction(f) for f in ("1", "2", "1/2", "3/2", "2/3", "3", "1/3", "3/4", "4/3",
                                        "5/4", "4/5", "5/2", "2/5", "5/3", "3/5")]
    ranked = sorted((errors(*toom_cook(c), TILES, np.random.default_rng(0))[::-1], c)
                    for c in itertools.combinations(candidates, 3))
    for (median, largest), c in ranked[:8]:
        print("+-%-14s largest %.2e  median %.2e" % (", +-".join(map(str, c)), largest, median))
    sys.exit(0)

variants = {"F(6x6) usual points": usual6, "F(4x4) usual points": usual4,
            "F(4x4) ours (+-3/2, +-2/3)": (ours_bt, solve_g(ours_bt, ours_at), ours_at)}
rng = np.random.default_rng(0)
for name, v in variants.items():
    print("%-36s largest %.2e  median %.2e" % ((name,) + errors(*v, TILES, rng)))
# the builder of --search, on the first row's tiles: the same points, so the same errors
print("%-36s largest %.2e  median %.2e" % (("F(6x6) Toom-Cook 0, +-1, +-2, +-1/2",) +
                                           errors(*toom_cook((1, 2, Fraction(1, 2))), TILES,
                                                  np.random.default_rng(0))))
