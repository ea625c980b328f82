#!/usr/bin/python3
"""Seed corpora for the fuzz harnesses (small generated files, committed).
The long runs add the real TAEF2 checkpoints from ../shared/models."""
import glob
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
C = lambda *p: os.path.join(HERE, "corpus", *p)
DATA = os.path.join(HERE, "..", "data")

for d in ("safetensors", "pth", "latent", "codebook", "family", "npy"):
    os.makedirs(C(d), exist_ok=True)

save_file({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.float16),
           "c": torch.tensor([1.5], dtype=torch.bfloat16), "d": torch.tensor(7, dtype=torch.int64)},
          C("safetensors", "mixed.safetensors"), metadata={"format": "pt"})
save_file({"x": torch.zeros(0), "y": torch.tensor([0.1], dtype=torch.float64)}, C("safetensors", "empty-and-f64.safetensors"))
save_file({"encoder.conv_in.weight": torch.randn(2, 3, 3, 3), "encoder.conv_in.bias": torch.zeros(2)},
          C("safetensors", "conv.safetensors"))

for f in glob.glob(os.path.join(DATA, "hostile", "*.pth")) + glob.glob(os.path.join(DATA, "hostile", "*.ckpt")):
    shutil.copy(f, C("pth", os.path.basename(f)))

save_file({"latent_tensor": torch.randn(1, 4, 3, 5), "latent_format_version_0": torch.tensor([])},
          C("latent", "marker.latent"))
save_file({"latent_tensor": torch.randn(2, 16, 2, 2).half()}, C("latent", "old.latent"))

save_file({"codes": torch.randn(8, 4)}, C("codebook", "plain.safetensors"))
save_file({"quantize.embedding.weight": torch.randn(5, 3).bfloat16(), "decoder.conv_in.bias": torch.zeros(3)},
          C("codebook", "vq-model.safetensors"))

for f in glob.glob(os.path.join(HERE, "..", "..", "presets", "families", "*.ini")):
    shutil.copy(f, C("family", os.path.basename(f)))

np.save(C("npy", "latent.npy"), np.random.RandomState(0).randn(1, 4, 3, 5).astype(np.float32))
np.save(C("npy", "image.npy"), np.random.RandomState(1).rand(4, 5, 3).astype(np.float32))
np.save(C("npy", "image-f64.npy"), np.random.RandomState(2).rand(2, 3, 3))
print("corpus written")
