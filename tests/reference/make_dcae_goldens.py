#!/usr/bin/python3
"""Goldens for Sana's DC-AE (reference only): diffusers' AutoencoderDC
(diffusers >= 0.32; made with 0.42.1 and torch 2.x) in float64.

  full/   the real architecture (dc-ae-f32c32-sana-1.0's config, 312.3M
          parameters) with weights from the seeded generator core/nets/synth.c
          shares (synth_weights.py, seed 1; rebuilt at test time, not
          committed): the latent of a 45x61 picture (padded by edge
          replication to 64x64, as gegl-vae pads) and the decoder output of a
          3x2 diffusion latent (96x64 pixels).
  small/  widths 8..32, the same generator's weights rounded to float16,
          committed as dcae_small.safetensors (diffusers' names); goldens as
          full/.

diffusers runs the linear attention and the RMS norms' variances in float32
even for float64 inputs, so these goldens carry float32's rounding there.
Latents are in the diffusion scale: z * scaling_factor.
"""
import os
import sys

import torch
from diffusers import AutoencoderDC

sys.path.insert(0, os.path.dirname(__file__))
from family_goldens import DATA, count, decode_latent, image, pad, save_goldens, save_weights, seeded  # noqa: E402

OUT = os.path.join(DATA, "dc-ae")
VIT = "EfficientViTBlock"
SANA = dict(encoder_block_types=("ResBlock",) * 3 + (VIT,) * 3, decoder_block_types=("ResBlock",) * 3 + (VIT,) * 3,
            encoder_block_out_channels=(128, 256, 512, 512, 1024, 1024),
            decoder_block_out_channels=(128, 256, 512, 512, 1024, 1024),
            encoder_layers_per_block=(2, 2, 2, 3, 3, 3), decoder_layers_per_block=(3, 3, 3, 3, 3, 3),
            encoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)), decoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)),
            upsample_block_type="interpolate", downsample_block_type="Conv", decoder_norm_types="rms_norm",
            decoder_act_fns="silu", latent_channels=32, attention_head_dim=32, scaling_factor=0.41407)
SMALL = dict(SANA, encoder_block_out_channels=(8, 16, 32, 32, 32, 32), decoder_block_out_channels=(8, 16, 32, 32, 32, 32),
             encoder_layers_per_block=(1, 1, 1, 2, 1, 1), decoder_layers_per_block=(1, 1, 1, 2, 1, 1))


@torch.no_grad()
def goldens(m, out):
    s = m.config.scaling_factor
    img = image(45, 61)
    x = torch.tensor(pad(img, 32)).double()[None] * 2 - 1
    latent = m.encode(x).latent * s
    d = decode_latent(32, (3, 2))
    save_goldens(out, img, latent, d, m.decode(d / s).sample)


def main():
    torch.set_num_threads(os.cpu_count())
    m, sd = seeded(AutoencoderDC(**SMALL), torch.float16)
    save_weights(sd, os.path.join(OUT, "small", "dcae_small.safetensors"))
    goldens(m, os.path.join(OUT, "small"))
    m, sd = seeded(AutoencoderDC(**SANA), torch.float32)
    print("full: %d tensors, %d parameters" % count(sd))
    goldens(m, os.path.join(OUT, "full"))


if __name__ == "__main__":
    main()
