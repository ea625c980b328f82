#!/usr/bin/python3
"""Goldens for HunyuanImage 2.1's VAE (reference only): diffusers'
AutoencoderKLHunyuanImage (made with diffusers 0.42.1 and torch 2.x) in
float64.

  full/   the real architecture (HunyuanImage-2.1-Diffusers' vae/config.json:
          block_out_channels 128..1024, 2 layers, 64 channels at 1/32,
          405.6M parameters) with weights from the seeded generator
          core/nets/synth.c shares (synth_weights.py, seed 1; rebuilt at test
          time, not committed): the latent (posterior mean) of a 45x61
          picture (padded by edge replication to 64x64, as gegl-vae pads)
          and the decoder output of a 3x2 diffusion latent (96x64 pixels).
  small/  widths 32, 3 levels (1/4), 1 layer, 8 latent channels, the same
          generator's weights rounded to float16, committed as
          hunyuan_small.safetensors (diffusers' names); the latent of the
          same picture (padded to 48x64) and the decode of a 9x6 latent.

Latents are in the diffusion scale: z * scaling_factor (0.75289).
"""
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKLHunyuanImage

sys.path.insert(0, os.path.dirname(__file__))
from family_goldens import DATA, count, decode_latent, image, pad, save_goldens, save_weights, seeded  # noqa: E402

OUT = os.path.join(DATA, "hunyuan-image")
FULL = dict(in_channels=3, out_channels=3, latent_channels=64, block_out_channels=(128, 256, 512, 512, 1024, 1024),
            layers_per_block=2, spatial_compression_ratio=32, sample_size=384, scaling_factor=0.75289)
SMALL = dict(FULL, latent_channels=8, block_out_channels=(32, 32, 32), layers_per_block=1,
             spatial_compression_ratio=4)


@torch.no_grad()
def goldens(m, out, decode_hw):
    s = m.config.scaling_factor
    img = image(45, 61)
    x = torch.tensor(pad(img, m.config.spatial_compression_ratio)).double()[None] * 2 - 1
    latent = m.encode(x).latent_dist.mode() * s
    # the latent as the test reads it, float32, so both decode the same numbers
    d = decode_latent(m.config.latent_channels, decode_hw, np.float32)
    save_goldens(out, img, latent, d, m.decode(d / s).sample)


def main():
    torch.set_num_threads(os.cpu_count())
    m, sd = seeded(AutoencoderKLHunyuanImage(**SMALL), torch.float16)
    save_weights(sd, os.path.join(OUT, "small", "hunyuan_small.safetensors"))
    print("small: %d tensors, %d parameters" % count(sd))
    goldens(m, os.path.join(OUT, "small"), (9, 6))
    m, sd = seeded(AutoencoderKLHunyuanImage(**FULL), torch.float32)
    print("full: %d tensors, %d parameters" % count(sd))
    goldens(m, os.path.join(OUT, "full"), (3, 2))


if __name__ == "__main__":
    main()
