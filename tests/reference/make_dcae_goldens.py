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

import numpy as np
import torch
from diffusers import AutoencoderDC
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from make_qwen_goldens import image, pad  # noqa: E402
from synth_weights import tensor  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "dc-ae")
SEED = 1
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


def seeded(config, dtype):
    m = AutoencoderDC(**config)
    sd = {k: torch.tensor(tensor(k, tuple(v.shape), SEED)).to(dtype) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    return m.double().eval(), sd


@torch.no_grad()
def goldens(m, out):
    s = m.config.scaling_factor
    img = image(45, 61)
    x = torch.tensor(pad(img, 32)).double()[None] * 2 - 1
    latent = m.encode(x).latent * s
    d = torch.tensor(np.random.RandomState(SEED + 1).randn(1, 32, 3, 2)).double()
    decoded = m.decode(d / s).sample
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "image.npy"), img.transpose(1, 2, 0).copy())
    np.save(os.path.join(out, "latent.npy"), latent.numpy().astype(np.float32))
    np.save(os.path.join(out, "decode-latent.npy"), d.numpy().astype(np.float32))
    np.save(os.path.join(out, "decoded.npy"), decoded.numpy().astype(np.float32))
    print(out, "latent", tuple(latent.shape), "std", float(latent.std()), "decoded", tuple(decoded.shape),
          "range", float(decoded.min()), float(decoded.max()))


def main():
    torch.set_num_threads(os.cpu_count())
    m, sd = seeded(SMALL, torch.float16)
    os.makedirs(os.path.join(OUT, "small"), exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "small", "dcae_small.safetensors"))
    goldens(m, os.path.join(OUT, "small"))
    m, sd = seeded(SANA, torch.float32)
    print("full:", len(sd), "tensors,", sum(v.numel() for v in sd.values()), "parameters")
    goldens(m, os.path.join(OUT, "full"))


if __name__ == "__main__":
    main()
