#!/usr/bin/python3
"""torch.manual_seed(s); torch.randn(shape) goldens for the torch-cpu RNG
(reference only).  Writes tests/data/noise/randn-SEED-N.npy."""
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "noise")
CASES = [(0, 5), (0, 16), (1, 20), (42, 48), (123456789, 4 * 17 * 23), (2**40 + 3, 16 * 64 * 64)]

os.makedirs(OUT, exist_ok=True)
for seed, n in CASES:
    torch.manual_seed(seed)
    np.save(os.path.join(OUT, f"randn-{seed}-{n}.npy"), torch.randn(n).numpy().astype(np.float32))
    print(seed, n)
