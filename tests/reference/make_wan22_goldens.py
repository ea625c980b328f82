#!/usr/bin/python3
"""Goldens for Wan 2.2's VAE (reference only): diffusers' AutoencoderKLWan with the
Wan 2.2 configuration (is_residual, patch_size 2, 48 latent channels at 1/16; made
with diffusers 0.42.1 and torch 2.x) in float64, one frame.

  full/   the real architecture (base_dim 160, decoder_base_dim 256) with weights
          from the seeded generator core/nets/synth.c shares (synth_weights.py,
          seed 1; rebuilt at test time, not committed): the encoder's moments and
          diffusion latent of a 61x93 picture (padded by edge replication to 64x96,
          as gegl-vae pads), and the raw decoder output (before the clamp) of a
          5x6 diffusion latent.
  small/  base_dim 2, decoder_base_dim 3, the same generator's weights rounded to
          float16: the file twice, in diffusers' names (wan22_small.safetensors)
          and in Wan 2.2's own names (wan2.2_small.pth, as Wan2.2_VAE.pth and
          ComfyUI's wan2.2_vae.safetensors hold them).  Goldens as full/.
  shortcuts.safetensors  the one-frame parts on their own: AvgDown3D and DupUp3D
          (first chunk) of several shapes, patchify and unpatchify, each with
          its input and output.

With --wan-source Wan2.2/wan/modules/vae2_2.py (Wan-Video/Wan2.2; needs einops),
Wan's own WanVAE_ is built too: its tensor names must be the ones written to
wan2.2_small.pth, and its encoder mean and decoder output on the small model must
match diffusers'.

Latents are in the diffusion scale: (z - latents_mean) / latents_std.
"""
import argparse
import importlib.util
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import AvgDown3D, DupUp3D, patchify, unpatchify
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from family_goldens import (DATA, SEED, causal_goldens, save_weights, seeded_tensor, wan_block,  # noqa: E402
                            wan_outer_name)

OUT = os.path.join(DATA, "wan22")

# Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json, as diffusers'
# scripts/convert_wan_to_diffusers.py (vae22_diffusers_config) and Wan2.2's
# wan/modules/vae2_2.py (Wan2_2_VAE) give it.
MEAN = [-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
        -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
        -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
        -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
        -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
        0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667]
STD = [0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
       0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
       0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
       0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
       0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
       0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744]
CONFIG = dict(z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
              temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
              out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
              latents_mean=MEAN, latents_std=STD)
IMAGE = (61, 93)    # odd: padded to 64x96
LATENT = (5, 6)     # decoded to 80x96


def seeded(base_dim, decoder_base_dim, dtype):
    """The model in float64 with the generator's weights rounded to DTYPE, and (for the small
    model) those weights; the full one's 700M parameters are filled in place, one at a time."""
    m = AutoencoderKLWan(base_dim=base_dim, decoder_base_dim=decoder_base_dim, **CONFIG).double().eval()
    keep = dtype != torch.float32
    sd, count = {}, [0, 0, 0]
    with torch.no_grad():
        for k, v in m.state_dict().items():
            t = seeded_tensor(k, v, dtype)
            v.copy_(t)
            count[0] += 1
            count[1] += v.numel()
            count[2] += 0 if "time_conv" in k else v.numel() // (v.shape[2] if v.dim() == 5 else 1)
            if keep:
                sd[k] = t
    return m, sd, count


def wan_name(key, num_res_blocks=2):
    """diffusers' name of a Wan 2.2 tensor in Wan 2.2's own naming (vae2_2.py's module tree)."""
    name = wan_outer_name(key)
    if name:
        return name
    half, *rest = key.split(".")
    outer, inner = ("downsamples", "downsamples") if half == "encoder" else ("upsamples", "upsamples")
    i = int(rest[1])
    if rest[2] == "resnets":
        return f"{half}.{outer}.{i}.{inner}.{rest[3]}." + wan_block(rest[4:])
    # the level's resampler closes its Sequential: after 2 resnets (encoder) or 3 (decoder)
    j = num_res_blocks if half == "encoder" else num_res_blocks + 1
    return f"{half}.{outer}.{i}.{inner}.{j}." + ".".join(rest[3:])


@torch.no_grad()
def decode_raw(m, z):
    """diffusers' _decode of one frame without its final clamp."""
    m.clear_cache()
    x = m.post_quant_conv(z)
    out = m.decoder(x, feat_cache=m._feat_map, feat_idx=m._conv_idx, first_chunk=True)
    return unpatchify(out, patch_size=m.config.patch_size)


def goldens(m, out):
    return causal_goldens(m, out, MEAN, STD, IMAGE, 16, LATENT, decode_raw)


def shortcuts():
    """The one-frame parts alone, [1, C, H, W] in and out: float32 inputs, float64 results rounded."""
    rs = np.random.RandomState(SEED + 2)
    out = {}

    def f64(*shape):
        return torch.tensor(rs.randn(*shape).astype(np.float32)).double()

    with torch.no_grad():
        for (cin, cout, ft, fs) in [(4, 4, 1, 2), (4, 8, 2, 2), (8, 4, 2, 2), (6, 6, 1, 1), (4, 2, 2, 2)]:
            x = f64(1, cin, 1, 6, 8)  # one frame, first chunk
            y = AvgDown3D(cin, cout, factor_t=ft, factor_s=fs)(x)
            name = f"avg_down.{cin}.{cout}.{ft}.{fs}"
            out[name + ".input"], out[name + ".output"] = x[:, :, 0], y[:, :, 0]
        for (cin, cout, ft) in [(8, 8, 2), (8, 4, 1), (4, 8, 2), (8, 4, 2)]:
            x = f64(1, cin, 1, 3, 5)
            y = DupUp3D(cin, cout, factor_t=ft, factor_s=2)(x, first_chunk=True)
            assert y.shape[2] == 1
            name = f"dup_up.{cin}.{cout}.{ft}"
            out[name + ".input"], out[name + ".output"] = x[:, :, 0], y[:, :, 0]
        x = f64(1, 3, 1, 6, 10)
        out["patchify.input"], out["patchify.output"] = x[:, :, 0], patchify(x, 2)[:, :, 0]
        x = f64(1, 12, 1, 3, 5)
        out["unpatchify.input"], out["unpatchify.output"] = x[:, :, 0], unpatchify(x, 2)[:, :, 0]
    save_file({k: v.float().contiguous() for k, v in out.items()}, os.path.join(OUT, "shortcuts.safetensors"))


def load_wan_module(path):
    spec = importlib.util.spec_from_file_location("wan_vae2_2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@torch.no_grad()
def check_wan_source(path, wan_sd, x, z, moments, raw):
    """Wan's own model: the same names, and the same encoder mean and decoder output."""
    mod = load_wan_module(path)
    w = mod.WanVAE_(dim=2, dec_dim=3, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                    attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
    assert set(w.state_dict().keys()) == set(wan_sd.keys()), "Wan 2.2 names"
    w.load_state_dict(wan_sd)
    w = w.double().eval()
    mu = w.encode(x, [0.0, 1.0])[:, :, 0]
    out = w.decode(z, [0.0, 1.0])[:, :, 0]
    e1 = float((mu - moments[:, :48]).abs().max() / moments[:, :48].abs().max())
    e2 = float((out - raw).abs().max() / raw.abs().max())
    print(f"Wan's vae2_2.py against diffusers: encoder mean {e1:.2e}, decoder {e2:.2e}")
    assert e1 < 1e-10 and e2 < 1e-10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wan-source", help="Wan2.2's wan/modules/vae2_2.py, to check against")
    ap.add_argument("--no-full", action="store_true", help="leave full/ as it is")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    os.makedirs(os.path.join(OUT, "small"), exist_ok=True)
    shortcuts()
    m, sd, _ = seeded(2, 3, torch.float16)
    wan = {wan_name(k): v for k, v in sd.items()}
    assert len(wan) == len(sd)
    save_weights(sd, os.path.join(OUT, "small", "wan22_small.safetensors"))
    torch.save(wan, os.path.join(OUT, "small", "wan2.2_small.pth"))
    x, z, moments, raw = goldens(m, os.path.join(OUT, "small"))
    if args.wan_source:
        check_wan_source(args.wan_source, {k: v.double() for k, v in wan.items()}, x, z, moments, raw)
    if args.no_full:
        return
    m, _, count = seeded(160, 256, torch.float32)
    print("full: %d tensors, %d parameters, %d of them used by one frame" % tuple(count))
    goldens(m, os.path.join(OUT, "full"))


if __name__ == "__main__":
    main()
