#!/usr/bin/python3
"""Goldens for Qwen-Image's VAE (reference only): diffusers' AutoencoderKLQwenImage
(diffusers >= 0.35; made with 0.42.1 and torch 2.x) in float64, one frame.

  full/   the real architecture (base_dim 96, 126.9M parameters) with weights
          from the seeded generator core/nets/synth.c shares (synth_weights.py,
          seed 1; rebuilt at test time, not committed): the encoder's moments
          and diffusion latent of a 45x61 picture (padded by edge replication
          to 48x64, as gegl-vae pads), and the raw decoder output of a 7x5
          diffusion latent.
  small/  base_dim 4, the same generator's weights rounded to float16: the file twice, in
          diffusers' names (qwen_small.safetensors) and in Wan 2.1's own names
          (wan_small.pth, as Wan2.1_VAE.pth); diffusers' converter from Wan's
          names is checked to give back the diffusers dict.  Goldens as full/.
  causal_conv.safetensors  one QwenImageCausalConv3d (3x3x3) on one frame:
          weight, bias, input and output, for the 2-D slice test.

Latents are in the diffusion scale: (z - latents_mean) / latents_std.
"""
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKLQwenImage
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from diffusers.models.autoencoders.autoencoder_kl_qwenimage import QwenImageCausalConv3d
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from synth_weights import tensor  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "qwen-image")
SEED = 1


def seeded(base_dim, dtype):
    m = AutoencoderKLQwenImage(base_dim=base_dim)
    sd = {k: torch.tensor(tensor(k, tuple(v.shape), SEED)).to(dtype) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    return m.double().eval(), sd


def wan_name(key):
    """diffusers' name of a Qwen-Image tensor in Wan 2.1's own naming."""
    res = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6",
           "conv_shortcut": "shortcut"}
    p = key.split(".")
    if p[0] in ("quant_conv", "post_quant_conv"):
        return {"quant_conv": "conv1", "post_quant_conv": "conv2"}[p[0]] + "." + p[1]
    half, rest = p[0], p[1:]
    if rest[0] == "conv_in":
        return f"{half}.conv1.{rest[1]}"
    if rest[0] == "norm_out":
        return f"{half}.head.0.{rest[1]}"
    if rest[0] == "conv_out":
        return f"{half}.head.2.{rest[1]}"
    if rest[0] == "mid_block":
        k = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(rest[1:3])]
        tail = rest[3:]
        if tail[0] in res:
            tail = res[tail[0]].split(".") + tail[1:]
        return f"{half}.middle.{k}." + ".".join(tail)
    if rest[0] == "down_blocks":  # flat in both namings
        tail = rest[2:]
        if tail[0] in res:
            tail = res[tail[0]].split(".") + tail[1:]
        return f"encoder.downsamples.{rest[1]}." + ".".join(tail)
    # decoder.up_blocks.I.resnets.J / .upsamplers.0: Wan's flat list of 3 resnets + resampler
    i = int(rest[1])
    if rest[2] == "resnets":
        tail = rest[4:]
        tail = res[tail[0]].split(".") + tail[1:]
        return f"decoder.upsamples.{4 * i + int(rest[3])}." + ".".join(tail)
    return f"decoder.upsamples.{4 * i + 3}." + ".".join(rest[4:])


def image(h, w):
    """A smooth picture with texture, in 8-bit steps (a PNG holds it exactly)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rs = np.random.RandomState(SEED)
    img = np.stack([0.5 + 0.4 * np.sin(x / 7 + c) * np.cos(y / 5 - c) for c in range(3)])
    img += 0.08 * rs.randn(3, h, w)
    return (np.round(np.clip(img, 0, 1) * 255) / 255).astype(np.float32)


def pad(img, f):
    h, w = img.shape[1:]
    hp, wp = -(-h // f) * f, -(-w // f) * f
    return np.pad(img, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")


@torch.no_grad()
def goldens(m, out):
    mean = torch.tensor(m.config.latents_mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(m.config.latents_std, dtype=torch.float64).view(1, -1, 1, 1)
    img = image(45, 61)
    x = torch.tensor(pad(img, 8)).double()[None, :, None] * 2 - 1
    moments = m.encode(x).latent_dist.parameters[:, :, 0]
    latent = (moments[:, :16] - mean) / std
    d = torch.tensor(np.random.RandomState(SEED + 1).randn(1, 16, 7, 5)).double()
    z = (d * std + mean)[:, :, None]
    m.clear_cache()  # diffusers' _decode without its final clamp
    raw = m.decoder(m.post_quant_conv(z), feat_cache=m._feat_map, feat_idx=m._conv_idx)[:, :, 0]
    clamped = m.decode(z).sample[:, :, 0]
    assert torch.equal(clamped, raw.clamp(-1, 1))
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "image.npy"), img.transpose(1, 2, 0).copy())
    np.save(os.path.join(out, "moments.npy"), moments.numpy().astype(np.float32))
    np.save(os.path.join(out, "latent.npy"), latent.numpy().astype(np.float32))
    np.save(os.path.join(out, "decode-latent.npy"), d.numpy().astype(np.float32))
    np.save(os.path.join(out, "decoded.npy"), raw.numpy().astype(np.float32))
    print(out, "moments", tuple(moments.shape), "decoded", tuple(raw.shape),
          "range", float(raw.min()), float(raw.max()))


def causal_conv():
    rs = np.random.RandomState(SEED + 2)
    f32 = lambda a: torch.tensor(a.astype(np.float32)).double()  # noqa: E731 (what the file holds)
    conv = QwenImageCausalConv3d(4, 5, 3, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(f32(rs.randn(5, 4, 3, 3, 3) * 0.3))
        conv.bias.copy_(f32(rs.randn(5) * 0.1))
        x = f32(rs.randn(1, 4, 1, 6, 7))
        y = conv(x)
    save_file({"weight": conv.weight.float(), "bias": conv.bias.float(), "input": x[0, :, 0].float(),
               "output": y[0, :, 0].float().contiguous()}, os.path.join(OUT, "causal_conv.safetensors"))


def main():
    torch.set_num_threads(os.cpu_count())
    m, sd = seeded(4, torch.float16)
    wan = {wan_name(k): v for k, v in sd.items()}
    back = convert_wan_vae_to_diffusers(dict(wan))
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd), "Wan names"
    os.makedirs(os.path.join(OUT, "small"), exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "small", "qwen_small.safetensors"))
    torch.save(wan, os.path.join(OUT, "small", "wan_small.pth"))
    goldens(m, os.path.join(OUT, "small"))
    causal_conv()
    m, sd = seeded(96, torch.float32)
    print("full:", len(sd), "tensors,", sum(v.numel() for v in sd.values()), "parameters")
    goldens(m, os.path.join(OUT, "full"))


if __name__ == "__main__":
    main()
