#!/usr/bin/python3
"""Goldens for the latent toolbox (core/latent/): ComfyUI's latent nodes
written out again here in PyTorch, in float32 as ComfyUI runs them (reference
only; Debian's python3-torch 1.13 and the safetensors package).

  scale      comfy.utils.common_upscale: torch interpolate nearest-exact,
             bilinear, bicubic (align_corners False), area (adaptive average
             pooling), ComfyUI's bislerp; crop "center"; LatentUpscaleBy's
             round(size · factor)
  transform  LatentFlip (torch.flip), LatentRotate (torch.rot90 over dims
             [3, 2]: clockwise), and a transpose
  composite  LatentComposite with feather (x, y, feather in latent pixels,
             i.e. after ComfyUI's // 8)
  blend      LatentBlend (lerp), the slerp inside bislerp, LatentAdd,
             LatentSubtract, LatentMultiply
  mask       the noise mask on the latent grid (comfy.utils.reshape_mask:
             bilinear), VAEEncodeForInpaint's grown mask (conv2d with an N×N
             box of ones over the rounded mask) and its grey fill

Writes tests/data/latent-ops/goldens.safetensors (every tensor [1, C, h, w],
masks C = 1, pictures C = 3) and cases.json, the list the C test walks.
Usage: /usr/bin/python3 tests/reference/make_latent_ops_goldens.py [OUT_DIR]
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "latent-ops")
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(2024)
tensors = {}
cases = []


def randn(*shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float32)


def add(name, t):
    tensors[name] = t.contiguous().to(torch.float32)
    return name


# ---- ComfyUI's formulas -------------------------------------------------------

def slerp(b1, b2, r):
    """The slerp inside comfy.utils.bislerp: rows of N×C, ratios N×1."""
    c = b1.shape[-1]
    n1 = torch.norm(b1, dim=-1, keepdim=True)
    n2 = torch.norm(b2, dim=-1, keepdim=True)
    u1 = b1 / n1
    u2 = b2 / n2
    u1[n1.expand(-1, c) == 0.0] = 0.0
    u2[n2.expand(-1, c) == 0.0] = 0.0
    dot = (u1 * u2).sum(1)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    res = (torch.sin((1.0 - r.squeeze(1)) * omega) / so).unsqueeze(1) * u1 \
        + (torch.sin(r.squeeze(1) * omega) / so).unsqueeze(1) * u2
    res *= (n1 * (1.0 - r) + n2 * r).expand(-1, c)
    res[dot > 1 - 1e-5] = b1[dot > 1 - 1e-5]
    res[dot < 1e-5 - 1] = (b1 * (1.0 - r) + b2 * r)[dot < 1e-5 - 1]
    return res


def bilinear_data(old, new):
    """Where bislerp reads along one axis: the bilinear positions of a ramp."""
    c1 = F.interpolate(torch.arange(old, dtype=torch.float32).reshape(1, 1, 1, -1), size=(1, new),
                       mode="bilinear")
    ratios = c1 - c1.floor()
    c1 = c1.to(torch.int64)
    c2 = torch.arange(old, dtype=torch.float32).reshape(1, 1, 1, -1) + 1
    c2[:, :, :, -1] -= 1
    c2 = F.interpolate(c2, size=(1, new), mode="bilinear").to(torch.int64)
    return ratios, c1, c2


def bislerp(s, width, height):
    n, c, h, w = s.shape
    ratios, c1, c2 = bilinear_data(w, width)
    p1 = s.gather(-1, c1.expand(n, c, h, -1)).movedim(1, -1).reshape(-1, c)
    p2 = s.gather(-1, c2.expand(n, c, h, -1)).movedim(1, -1).reshape(-1, c)
    r = ratios.expand(n, 1, h, -1).movedim(1, -1).reshape(-1, 1)
    s = slerp(p1, p2, r).reshape(n, h, width, c).movedim(-1, 1)
    ratios, c1, c2 = bilinear_data(h, height)
    c1 = c1.reshape(1, 1, -1, 1).expand(n, c, -1, width)
    c2 = c2.reshape(1, 1, -1, 1).expand(n, c, -1, width)
    r = ratios.reshape(1, 1, -1, 1).expand(n, 1, -1, width).movedim(1, -1).reshape(-1, 1)
    p1 = s.gather(-2, c1).movedim(1, -1).reshape(-1, c)
    p2 = s.gather(-2, c2).movedim(1, -1).reshape(-1, c)
    return slerp(p1, p2, r).reshape(n, height, width, c).movedim(-1, 1)


def common_upscale(s, width, height, method, crop):
    if crop:
        old_w, old_h = s.shape[3], s.shape[2]
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        s = s[:, :, y:old_h - y, x:old_w - x]
    if method == "bislerp":
        return bislerp(s, width, height)
    if method == "area":
        return F.adaptive_avg_pool2d(s, (height, width))
    return F.interpolate(s, size=(height, width), mode=method)


def transform(s, how):
    return {"flip-horizontal": lambda: torch.flip(s, dims=[3]),   # LatentFlip "y-axis"
            "flip-vertical": lambda: torch.flip(s, dims=[2]),     # LatentFlip "x-axis"
            "rotate-90": lambda: torch.rot90(s, k=1, dims=[3, 2]),
            "rotate-180": lambda: torch.rot90(s, k=2, dims=[3, 2]),
            "rotate-270": lambda: torch.rot90(s, k=3, dims=[3, 2]),
            "transpose": lambda: s.transpose(2, 3)}[how]()


def composite(to, frm, x, y, feather):
    s = to.clone()
    if feather == 0:
        s[:, :, y:y + frm.shape[2], x:x + frm.shape[3]] = frm[:, :, :to.shape[2] - y, :to.shape[3] - x]
        return s
    frm = frm[:, :, :to.shape[2] - y, :to.shape[3] - x]
    mask = torch.ones_like(frm)
    for t in range(feather):
        if y != 0:
            mask[:, :, t:1 + t, :] *= ((1.0 / feather) * (t + 1))
        if y + frm.shape[2] < to.shape[2]:
            mask[:, :, mask.shape[2] - 1 - t:mask.shape[2] - t, :] *= ((1.0 / feather) * (t + 1))
        if x != 0:
            mask[:, :, :, t:1 + t] *= ((1.0 / feather) * (t + 1))
        if x + frm.shape[3] < to.shape[3]:
            mask[:, :, :, mask.shape[3] - 1 - t:mask.shape[3] - t] *= ((1.0 / feather) * (t + 1))
    rev = torch.ones_like(mask) - mask
    s[:, :, y:y + frm.shape[2], x:x + frm.shape[3]] = \
        frm[:, :, :to.shape[2] - y, :to.shape[3] - x] * mask + s[:, :, y:y + frm.shape[2], x:x + frm.shape[3]] * rev
    return s


def blend(a, b, mode, factor):
    """FACTOR is the share of B (GEGL's gegl:mix convention): LatentBlend's
    blend_factor is 1 − factor; add and subtract scale B by it (ComfyUI's
    LatentAdd and LatentSubtract are factor 1); multiply is LatentMultiply
    (A × factor, B unused)."""
    if mode == "lerp":
        blend_factor = 1.0 - factor
        return a * blend_factor + b * (1 - blend_factor)
    if mode == "slerp":
        n, c, h, w = a.shape
        rows = lambda t: t.movedim(1, -1).reshape(-1, c)
        r = torch.full((n * h * w, 1), factor, dtype=torch.float32)
        return slerp(rows(a), rows(b), r).reshape(n, h, w, c).movedim(-1, 1)
    if mode == "add":
        return a + b if factor == 1.0 else a + b * factor
    if mode == "subtract":
        return a - b if factor == 1.0 else a - b * factor
    return a * factor


def mask_to_latent(mask, height, width, padded=None):
    """comfy.utils.reshape_mask for a 2-D latent (what SetLatentNoiseMask's
    mask becomes in the sampler); PADDED (h, w): the mask first padded to it
    by repeating its last row and column, as our encode pads a picture to a
    multiple of the model's factor (ComfyUI crops to one instead)."""
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    if padded:
        mask = F.pad(mask, (0, padded[1] - mask.shape[-1], 0, padded[0] - mask.shape[-2]),
                     mode="replicate")
    return F.interpolate(mask, size=(height, width), mode="bilinear")


def grow_mask(mask, grow):
    """VAEEncodeForInpaint's noise_mask (the picture already a multiple of 8)."""
    if grow == 0:
        grown = mask
    else:
        kernel = torch.ones((1, 1, grow, grow))
        padding = math.ceil((grow - 1) / 2)
        grown = torch.clamp(F.conv2d(mask.round(), kernel, padding=padding), 0, 1)
    return grown[:, :, :mask.shape[2], :mask.shape[3]].round()


def grey_fill(pixels, mask):
    """VAEEncodeForInpaint's pixels (planar here: [1, 3, H, W])."""
    pixels = pixels.clone()
    m = 1.0 - mask.round()
    for i in range(3):
        pixels[:, i] -= 0.5
        pixels[:, i] *= m[:, 0]
        pixels[:, i] += 0.5
    return pixels


# ---- the cases --------------------------------------------------------------------

METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
SHAPES = {4: (9, 13), 16: (7, 10), 32: (11, 5), 128: (5, 7)}


def scale_case(inp, width, height, method, crop, tag):
    want = add(f"scale.{method}.{tag}", common_upscale(tensors[inp], width, height, method, crop))
    cases.append({"op": "scale", "method": method, "width": width, "height": height, "crop": crop,
                  "input": inp, "want": want})


for c, (h, w) in SHAPES.items():
    a = add(f"a.c{c}", randn(1, c, h, w))
    b = add(f"b.c{c}", randn(1, c, h, w) * 0.7 + 0.2)
    src = add(f"src.c{c}", randn(1, c, h // 2 + 2, w // 2 + 1))
    # LatentUpscaleBy 1.5: round() of Python floats, half to even
    cases.append({"op": "scaled-size", "width": w, "height": h, "factor": 1.5,
                  "want_width": round(w * 1.5), "want_height": round(h * 1.5)})
    for method in METHODS:
        scale_case(a, round(w * 1.5), round(h * 1.5), method, False, f"c{c}.up")
        scale_case(a, 2 * w + 1, max(2, h // 2), method, False, f"c{c}.mixed")
        if c in (16, 32):
            scale_case(a, w + 5 if c == 16 else w, h if c == 16 else h + 6, method, True, f"c{c}.crop")
    for how in ["flip-horizontal", "flip-vertical", "rotate-90", "rotate-180", "rotate-270", "transpose"]:
        want = add(f"transform.{how}.c{c}", transform(tensors[a], how))
        cases.append({"op": "transform", "transform": how, "input": a, "want": want})
    sh, sw = tensors[src].shape[2:]
    # feathers wider than the placed latent: Python's slices wrap round (ComfyUI's mask)
    for x, y, feather in [(0, 0, 0), (2, 1, 0), (2, 1, 2), (w - 3, h - 2, 3), (0, 2, 4), (1, 1, sh),
                          (1, 2, 2 * sh + 3)]:
        want = add(f"composite.{x}.{y}.{feather}.c{c}", composite(tensors[a], tensors[src], x, y, feather))
        cases.append({"op": "composite", "x": x, "y": y, "feather": feather, "input": a, "aux": src,
                      "want": want})
    for mode, factor in [("lerp", 0.3), ("slerp", 0.3), ("slerp", 0.8), ("add", 1.0), ("add", 0.5),
                         ("subtract", 1.0), ("multiply", 1.7)]:
        want = add(f"blend.{mode}.{factor}.c{c}", blend(tensors[a], tensors[b], mode, factor))
        cases.append({"op": "blend", "mode": mode, "factor": factor, "input": a, "aux": b, "want": want})

# bislerp's and slerp's special cases: equal, parallel, opposite and zero vectors
edge = randn(1, 4, 6, 6)
edge[:, :, :, 3] = edge[:, :, :, 2]           # equal neighbours
edge[:, :, 4, :] = edge[:, :, 3, :] * 2.5     # parallel, another norm
edge[:, :, :, 5] = -edge[:, :, :, 4]          # opposite
edge[:, :, 1, 1] = 0.0                        # zero vectors
edge[:, :, 0, 0] = 0.0
add("edge", edge)
for width, height in [(9, 9), (4, 4), (11, 7)]:
    scale_case("edge", width, height, "bislerp", False, f"edge.{width}x{height}")
partner = edge.clone()
partner[:, :, :, 0] = edge[:, :, :, 0] * 3.0  # parallel
partner[:, :, 2, :] = -edge[:, :, 2, :]       # opposite
partner[:, :, 5, 5] = 0.0
add("edge.partner", partner)
for factor in (0.25, 0.5):
    want = add(f"blend.slerp.{factor}.edge", blend(edge, partner, "slerp", factor))
    cases.append({"op": "blend", "mode": "slerp", "factor": factor, "input": "edge", "aux": "edge.partner",
                  "want": want})

# masks: fractional values everywhere, a few exactly 0.5 (torch rounds half to even)
soft = torch.rand(1, 1, 37, 53, generator=gen)
blobs = (torch.rand(1, 1, 6, 8, generator=gen) > 0.6).float()
hard = F.interpolate(blobs, size=(48, 64), mode="nearest")
add("mask.soft", soft)
add("mask.hard", hard)
for name, (height, width) in [("mask.soft", (5, 7)), ("mask.hard", (6, 8)), ("mask.hard", (3, 4)),
                              ("mask.hard", (2, 2)), ("mask.soft", (37, 53))]:
    want = add(f"mask-to-latent.{name}.{height}x{width}", mask_to_latent(tensors[name], height, width))
    cases.append({"op": "mask-to-latent", "width": width, "height": height, "input": name, "want": want})
# a 53×37 mask of a picture that encode pads to 64×48 (factor 16: a 4×3 latent) or 56×40 (8: 7×5)
for factor, (height, width) in [(16, (3, 4)), (8, (5, 7))]:
    padded = (height * factor, width * factor)
    want = add(f"mask-to-latent.padded.{factor}", mask_to_latent(tensors["mask.soft"], height, width, padded))
    cases.append({"op": "mask-to-latent", "width": width, "height": height, "padded_width": padded[1],
                  "padded_height": padded[0], "input": "mask.soft", "want": want})

inpaint = torch.rand(1, 1, 40, 56, generator=gen)
inpaint[:, :, 10:20, 15:30] = 1.0
inpaint[:, :, 30:33, 5:9] = 0.5
inpaint[:, :, 0, :] = 0.5
add("mask.inpaint", inpaint)
for grow in (0, 1, 2, 3, 6, 9):
    want = add(f"grow.{grow}", grow_mask(inpaint, grow))
    cases.append({"op": "grow", "grow": grow, "input": "mask.inpaint", "want": want})
want = add("grow.6.odd", grow_mask(soft, 6))  # no crop: our encode pads instead of cropping
cases.append({"op": "grow", "grow": 6, "input": "mask.soft", "want": want})
picture = add("picture", torch.rand(1, 3, 40, 56, generator=gen))
want = add("fill", grey_fill(tensors[picture], inpaint))
cases.append({"op": "fill", "input": picture, "aux": "mask.inpaint", "want": want})

os.makedirs(OUT, exist_ok=True)
save_file(tensors, os.path.join(OUT, "goldens.safetensors"))
with open(os.path.join(OUT, "cases.json"), "w") as f:
    json.dump(cases, f, indent=0)
print(f"{len(cases)} cases, {len(tensors)} tensors, "
      f"{os.path.getsize(os.path.join(OUT, 'goldens.safetensors'))} bytes")
