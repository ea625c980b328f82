#!/usr/bin/python3
"""Golden files for AutoencoderKL, made with diffusers' own AutoencoderKL in
float64 (reference only; run with Debian's python3-torch and diffusers).

Writes tests/data/kl/<variant>/{model file, image.npy, latent.npy,
encoded.npy, decoded.npy}:
  image.npy    input image [H, W, 3] in [0, 1] (odd sizes are padded by the engine)
  encoded.npy  expected diffusion latent (posterior mean) [1, C, h, w]
  latent.npy   a diffusion latent to decode [1, C, h, w]
  decoded.npy  expected raw decoder output (before (x+1)/2 and clamp) [1, 3, H, W]

Usage: python3 tests/reference/make_kl_goldens.py [OUT_DIR [VARIANT …]]  (all variants when none is named)
"""
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from taesd_ref import patchify, unpatchify  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "kl")
ONLY = set(sys.argv[2:])
WIDTH = 32                       # every level: small, and a multiple of the 32 groups
GROUPS = 32

# family constants from VAE-SPEC.md, not from our presets; "generic" is what
# a KL that fits no descriptor loads as
SCALE = {"sd15": (0.18215, 0.0), "sdxl": (0.13025, 0.0), "sd3": (1.5305, 0.0609), "generic": (1.0, 0.0)}


def make_model(z, quant, seed, dtype, levels=4, attn_levels=()):
    """levels: 4 as SD (downscale 8); attn_levels: encoder levels with an
    attention after each resnet (LDM's attn_resolutions)."""
    torch.manual_seed(seed)
    down = tuple("AttnDownEncoderBlock2D" if i in attn_levels else "DownEncoderBlock2D" for i in range(levels))
    up = tuple("AttnUpDecoderBlock2D" if levels - 1 - i in attn_levels else "UpDecoderBlock2D"
               for i in range(levels))
    m = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=down, up_block_types=up,
                      block_out_channels=(WIDTH,) * levels, layers_per_block=1, latent_channels=z,
                      norm_num_groups=GROUPS, use_quant_conv=quant, use_post_quant_conv=quant)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
        # store-then-compute: the reference uses exactly the stored values
        for p in m.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return m.double().eval()


def ldm_name(name, n_levels=4):
    """diffusers → LDM/ComfyUI single-file names (VAE-SPEC.md table)."""
    import re
    r = name
    r = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2.", r)
    r = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.", r"encoder.down.\1.downsample.conv.", r)
    r = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
               lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.block.{m[2]}.", r)
    r = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.",
               lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.upsample.conv.", r)
    r = re.sub(r"^encoder\.down_blocks\.(\d+)\.attentions\.(\d+)\.", r"encoder.down.\1.attn.\2.", r)
    r = re.sub(r"^decoder\.up_blocks\.(\d+)\.attentions\.(\d+)\.",
               lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.attn.{m[2]}.", r)
    r = r.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
    r = r.replace("mid_block.attentions.0.", "mid.attn_1.")
    if ".attn" in r:
        for a, b in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
            r = re.sub(rf"(\.attn(_1|\.\d+))\.{re.escape(a)}\.", rf"\1.{b}.", r)
    r = r.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
    return r


def old_diffusers_name(name):
    for a, b in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
        name = name.replace(f"attentions.0.{a}.", f"attentions.0.{b}.")
    return name


def state_dict(m, naming, dtype, attn_4d):
    out = {}
    for k, v in m.state_dict().items():
        v = v.to(dtype).contiguous()
        if attn_4d and "attentions" in k and v.ndim == 2:
            v = v[:, :, None, None].contiguous()
        out[naming(k)] = v
    return out


def pad_replicate(img, f):
    h, w = img.shape[2:]
    H, W = -(-h // f) * f, -(-w // f) * f
    return torch.nn.functional.pad(img, (0, W - w, 0, H - h), mode="replicate")


@torch.no_grad()
def variant(name, file_name, z, quant, dtype, size, naming=lambda k: k, attn_4d=False, family=None,
            flux2=False, wrap=None, seed=0, levels=4, attn_levels=()):
    if ONLY and name not in ONLY:
        return
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    m = make_model(z, quant, seed, dtype, levels, attn_levels)
    rng = np.random.RandomState(seed + 100)
    h, w = size
    image = rng.rand(h, w, 3).astype(np.float32).astype(np.float64)  # what the engine reads
    f = 16 if flux2 else 2 ** (levels - 1)
    x = pad_replicate(torch.tensor(image).permute(2, 0, 1)[None], f) * 2 - 1
    mean = m.encode(x).latent_dist.mean
    sd = state_dict(m, naming, dtype, attn_4d)
    if flux2:
        bn_mean = torch.randn(4 * z, dtype=torch.float64) * 0.3
        bn_var = (torch.rand(4 * z, dtype=torch.float64) + 0.5)
        bn_mean, bn_var = bn_mean.float().double(), bn_var.float().double()
        enc = (patchify(mean) - bn_mean[None, :, None, None]) / torch.sqrt(bn_var[None, :, None, None] + 1e-4)
        sd["bn.running_mean"], sd["bn.running_var"] = bn_mean.float(), bn_var.float()
        sd["bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
        latent = torch.tensor(rng.randn(1, 4 * z, x.shape[2] // 16, x.shape[3] // 16)).float().double()
        raw = unpatchify(latent * torch.sqrt(bn_var[None, :, None, None] + 1e-4) + bn_mean[None, :, None, None])
    else:
        s, sh = SCALE[family]
        enc = (mean - sh) * s
        latent = torch.tensor(rng.randn(1, z, x.shape[2] // f, x.shape[3] // f)).float().double()
        raw = latent / s + sh
    decoded = m.decode(raw).sample
    path = os.path.join(d, file_name)
    if wrap:
        torch.save(wrap(sd), path)
    else:
        save_file(sd, path)
    np.save(os.path.join(d, "image.npy"), image.astype(np.float32))
    np.save(os.path.join(d, "encoded.npy"), enc.numpy().astype(np.float32))
    np.save(os.path.join(d, "latent.npy"), latent.numpy().astype(np.float32))
    np.save(os.path.join(d, "decoded.npy"), decoded.numpy().astype(np.float32))
    print(name, file_name, "image", image.shape, "latent", tuple(latent.shape),
          "max|enc|", float(enc.abs().max()), "max|dec|", float(decoded.abs().max()))


def main():
    torch.set_default_dtype(torch.float32)

    # SD-style: diffusers names, 2-D attention, quant convs, F32
    variant("sd15-diffusers", "sd15_tiny.safetensors", 4, True, torch.float32, (40, 56), family="sd15")
    # LDM single-file .ckpt: prefixed, nested state_dict, 4-D attention, F16, odd size
    variant("sdxl-ldm-ckpt", "sdxl_tiny.ckpt", 4, True, torch.float16, (37, 53), family="sdxl",
            naming=lambda k: "first_stage_model." + ldm_name(k), attn_4d=True, seed=1,
            wrap=lambda sd: {"state_dict": {**sd, "model.diffusion_model.out.0.weight": torch.zeros(3),
                                            "loss.logvar": torch.zeros(1)}, "global_step": 1234})
    # SD3-style: Z=16, no quant convs, old diffusers attention names, BF16, odd size
    variant("sd3-old-names", "sd3_tiny.safetensors", 16, False, torch.bfloat16, (33, 47), family="sd3",
            naming=old_diffusers_name, seed=2)
    # FLUX.2-style: Z=32, quant convs in BFL names, BN statistics, 2×2 patchify
    variant("flux2-bfl", "flux2_tiny.safetensors", 32, True, torch.float16, (48, 64), flux2=True,
            naming=lambda k: ldm_name(k).replace("post_quant_conv", "decoder.post_quant_conv")
            .replace("quant_conv", "encoder.quant_conv").replace("decoder.post_encoder.quant_conv",
                                                                 "decoder.post_quant_conv"),
            attn_4d=True, seed=3)
    # The published LDM autoencoders that fit no family descriptor (generic KL):
    # kl-f4 (3 levels, Z=3), kl-f16 (5 levels, Z=16, attention in the last level),
    # kl-f32 (6 levels, Z=64, attention in the last two), in LDM names with
    # 4-D attention weights, as their checkpoints have them
    for name, levels, z, attn, size, seed in (("ldm-kl-f4", 3, 3, (), (21, 27), 4),
                                               ("ldm-kl-f16", 5, 16, (4,), (40, 56), 5),
                                               ("ldm-kl-f32", 6, 64, (4, 5), (70, 90), 6)):
        variant(name, name.replace("ldm-", "") + ".safetensors", z, True, torch.float32, size, family="generic",
                naming=lambda k, n=levels: ldm_name(k, n), attn_4d=True, seed=seed, levels=levels,
                attn_levels=attn)


if __name__ == "__main__":
    main()
