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
from family_goldens import (DATA, SEED, causal_goldens, count, save_weights, seeded,  # noqa: E402
                            wan_block, wan_outer_name)

OUT = os.path.join(DATA, "qwen-image")


def wan_name(key):
    """diffusers' name of a Qwen-Image tensor in Wan 2.1's own naming."""
    name = wan_outer_name(key)
    if name:
        return name
    rest = key.split(".")[1:]
    if rest[0] == "down_blocks":  # flat in both namings
        return f"encoder.downsamples.{rest[1]}." + wan_block(rest[2:])
    # decoder.up_blocks.I.resnets.J / .upsamplers.0: Wan's flat list of 3 resnets + resampler
    i = int(rest[1])
    if rest[2] == "resnets":
        return f"decoder.upsamples.{4 * i + int(rest[3])}." + wan_block(rest[4:])
    return f"decoder.upsamples.{4 * i + 3}." + ".".join(rest[4:])


@torch.no_grad()
def decode_raw(m, z):
    """diffusers' _decode of one frame without its final clamp."""
    m.clear_cache()
    return m.decoder(m.post_quant_conv(z), feat_cache=m._feat_map, feat_idx=m._conv_idx)


def goldens(m, out):
    causal_goldens(m, out, m.config.latents_mean, m.config.latents_std, (45, 61), 8, (7, 5), decode_raw)


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
    m, sd = seeded(AutoencoderKLQwenImage(base_dim=4), torch.float16)
    wan = {wan_name(k): v for k, v in sd.items()}
    back = convert_wan_vae_to_diffusers(dict(wan))
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd), "Wan names"
    save_weights(sd, os.path.join(OUT, "small", "qwen_small.safetensors"))
    torch.save(wan, os.path.join(OUT, "small", "wan_small.pth"))
    goldens(m, os.path.join(OUT, "small"))
    causal_conv()
    m, sd = seeded(AutoencoderKLQwenImage(base_dim=96), torch.float32)
    print("full: %d tensors, %d parameters" % count(sd))
    goldens(m, os.path.join(OUT, "full"))


if __name__ == "__main__":
    main()
