#!/usr/bin/python3
"""Seed corpora for the fuzz harnesses (small generated files, committed).
The long runs add the real TAEF2 checkpoints from ../shared/models."""
import glob
import os
import shutil
import struct
import zlib

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
C = lambda *p: os.path.join(HERE, "corpus", *p)
DATA = os.path.join(HERE, "..", "data")

for d in ("safetensors", "pth", "latent", "codebook", "family", "npy", "png"):
    os.makedirs(C(d), exist_ok=True)
torch.manual_seed(0)

save_file({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.float16),
           "c": torch.tensor([1.5], dtype=torch.bfloat16), "d": torch.tensor(7, dtype=torch.int64)},
          C("safetensors", "mixed.safetensors"), metadata={"format": "pt"})
save_file({"x": torch.zeros(0), "y": torch.tensor([0.1], dtype=torch.float64)}, C("safetensors", "empty-and-f64.safetensors"))
save_file({"encoder.conv_in.weight": torch.randn(2, 3, 3, 3), "encoder.conv_in.bias": torch.zeros(2)},
          C("safetensors", "conv.safetensors"))

for f in glob.glob(os.path.join(DATA, "hostile", "*.pth")) + glob.glob(os.path.join(DATA, "hostile", "*.ckpt")):
    if "bomb" not in f:  # 65 KB would make every input that long
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


def raw_safetensors(path, header_json, data=b""):
    h = header_json.encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)


# issue 18: nesting, a 128-byte header (0x80 first), a batch, an int64 latent, a NaN codebook
raw_safetensors(C("safetensors", "deep.safetensors"), '{"a":' + "[" * 40 + "]" * 40 + "}")
raw_safetensors(C("safetensors", "header-128.safetensors"),
                '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'.ljust(128), b"\0\0\x80?")
save_file({"latent_tensor": torch.randn(3, 4, 2, 2)}, C("latent", "batch3.latent"))
save_file({"latent_tensor": torch.ones(1, 4, 2, 2, dtype=torch.int64)}, C("latent", "int64.latent"))
save_file({"codes": torch.full((4, 2), float("nan"))}, C("codebook", "nan.safetensors"))


def npy_raw(path, header, data):
    h = header.ljust(64 - 10 - 1) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data)


npy_raw(C("npy", "keys-reordered.npy"), "{'shape': (1, 2, 1, 1), 'fortran_order': False, 'descr': '<f4', }",
        struct.pack("<2f", 0.5, -0.5))
npy_raw(C("npy", "shape-in-string.npy"),
        "{'descr': '<f4', 'fortran_order': False, 'x': \"'shape': (1, 2, 1, 1)\", 'shape': (2, 1, 1, 1), }",
        struct.pack("<2f", 0.5, -0.5))


def png(path, width, height, color_type, depth, pixel, interlace=False, palette=None, trns=None, idat=True):
    """A PNG written by hand (Adam7 too); PIXEL(x, y) gives the samples."""
    def row(xs, y):
        samples = [v for x in xs for v in pixel(x, y)]
        if depth == 16:
            return b"".join(struct.pack(">H", v) for v in samples)
        if depth == 8:
            return bytes(samples)
        bits = "".join(format(v, f"0{depth}b") for v in samples)
        bits += "0" * (-len(bits) % 8)
        return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))

    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in (passes if interlace else [(0, 0, 1, 1)]) if idat else []:
        xs = list(range(x0, width, dx))
        for y in range(y0, height, dy) if xs else []:
            raw += b"\0" + row(xs, y)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0,
                                                               1 if interlace else 0))
    if palette:
        out += chunk(b"PLTE", bytes(palette))
    if trns:
        out += chunk(b"tRNS", bytes(trns))
    if idat:
        out += chunk(b"IDAT", zlib.compress(raw))
    open(path, "wb").write(out + chunk(b"IEND", b""))


P = lambda n: C("png", n)
png(P("gray1.png"), 5, 3, 0, 1, lambda x, y: [(x + y) % 2])
png(P("gray16-adam7.png"), 7, 5, 0, 16, lambda x, y: [x * 9000 + y * 300], interlace=True)
png(P("rgb8.png"), 4, 4, 2, 8, lambda x, y: [x * 60, y * 60, 128])
png(P("rgb16-adam7.png"), 9, 9, 2, 16, lambda x, y: [x * 7000, y * 7000, 40000], interlace=True)
png(P("rgba8-adam7.png"), 6, 4, 6, 8, lambda x, y: [x * 40, y * 60, 9, 255 - x], interlace=True)
png(P("graya8.png"), 3, 3, 4, 8, lambda x, y: [x * 100, 200])
png(P("palette4-trns-adam7.png"), 5, 5, 3, 4, lambda x, y: [(x + 2 * y) % 3], interlace=True,
    palette=[255, 0, 0, 0, 255, 0, 0, 0, 255], trns=[0, 128])
png(P("header-only-huge.png"), 65535, 65535, 2, 8, None, idat=False)
png(P("zero-width.png"), 0, 4, 0, 8, lambda x, y: [0])
print("corpus written")
