#!/usr/bin/python3
"""Golden for the full SD1.5-architecture decode (reference only).

The weights are not committed: core/synth.c and synth_weights.py build the
same 83.6M float32 parameters from seed 1.  diffusers' AutoencoderKL decodes a
seeded 32×32 latent in float64; the raw decoder output [1, 3, 256, 256] is
stored with the latent in tests/data/sd15-full/.
"""
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL

sys.path.insert(0, os.path.dirname(__file__))
from synth_weights import tensor  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "sd15-full")
SEED = 1


@torch.no_grad()
def main():
    m = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                      block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4)
    sd = {k: torch.tensor(tensor(k, tuple(v.shape), SEED)) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    print(len(sd), "tensors,", sum(v.numel() for v in sd.values()), "parameters")
    m = m.double().eval()
    latent = np.random.RandomState(SEED).randn(1, 4, 32, 32).astype(np.float32)
    torch.set_num_threads(os.cpu_count())
    raw = m.decode(torch.tensor(latent).double() / 0.18215).sample
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "latent.npy"), latent)
    np.save(os.path.join(OUT, "decoded.npy"), raw.numpy().astype(np.float32))
    print("decoded", tuple(raw.shape), "range", float(raw.min()), float(raw.max()), "std", float(raw.std()))


if __name__ == "__main__":
    main()
