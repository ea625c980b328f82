#!/usr/bin/python3
"""PyTorch's side of `gegl-vae bench` (reference only): the same model file,
op, size and thread count, printing the same JSON.

  python3 tests/reference/bench_torch.py --model FILE [--model2 FILE] --op decode --size 512x512
                                         [--runs 3] [--threads N] [--device cpu|cuda] [--precision fp32|bf16|fp16]

On CUDA the comparison the issue asks for: eager mode, channels_last, cuDNN
benchmark on; fp32 with TF32 off (as ours), bf16/fp16 weights and inputs.

AutoencoderKL files (diffusers names, e.g. from `gegl-vae synth`) run through
diffusers' AutoencoderKL, Qwen-Image files (5-D kernels) through its
AutoencoderKLQwenImage on one frame (diffusers >= 0.35), Wan 2.2 files (5-D
kernels, 12 patchified image channels) through AutoencoderKLWan on one frame,
DC-AE files through AutoencoderDC with Sana's configuration, HunyuanImage 2.1
files (flat lists of 2-D resnets) through AutoencoderKLHunyuanImage
(diffusers >= 0.36); TAESD .pth pairs through taesd_ref.py."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))


def kl_model(path, device, dtype):
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file
    sd = load_file(path)
    z = sd["decoder.conv_in.weight"].shape[1]
    quant = "quant_conv.weight" in sd
    m = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                      block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=z,
                      use_quant_conv=quant, use_post_quant_conv=quant)
    m.load_state_dict({k: v for k, v in sd.items() if not k.startswith("bn.")})
    m.eval().to(device=device, dtype=dtype)
    if device == "cuda":
        m.to(memory_format=torch.channels_last)
    return (lambda x: m.encode(x * 2 - 1).latent_dist.mean), (lambda z_: m.decode(z_).sample), z, 8


def qwen_model(path, device, dtype):
    """AutoencoderKLQwenImage (diffusers >= 0.35) on one frame, as gegl-vae runs it."""
    from diffusers import AutoencoderKLQwenImage
    from safetensors.torch import load_file
    sd = load_file(path)
    m = AutoencoderKLQwenImage(base_dim=sd["encoder.conv_in.weight"].shape[0])
    m.load_state_dict(sd)
    m.eval().to(device=device)
    if dtype != torch.float32:  # (a cast diffusers warns about for float32 too)
        m.to(dtype=dtype)
    return ((lambda x: m.encode(x[:, :, None] * 2 - 1).latent_dist.mean[:, :, 0]),
            (lambda z_: m.decode(z_[:, :, None]).sample[:, :, 0]), m.config.z_dim, 8)


def wan22_model(path, device, dtype):
    """AutoencoderKLWan with Wan 2.2's configuration (TI2V-5B) on one frame."""
    from diffusers import AutoencoderKLWan
    from make_wan22_goldens import CONFIG
    from safetensors.torch import load_file
    sd = load_file(path)
    m = AutoencoderKLWan(base_dim=sd["encoder.conv_in.weight"].shape[0],
                         decoder_base_dim=sd["decoder.conv_in.weight"].shape[0] // 4, **CONFIG)
    m.load_state_dict(sd)
    m.eval().to(device=device, dtype=dtype)
    return ((lambda x: m.encode(x[:, :, None] * 2 - 1).latent_dist.mean[:, :, 0]),
            (lambda z_: m.decode(z_[:, :, None]).sample[:, :, 0]), 48, 16)


def hunyuan_model(path, device, dtype):
    """AutoencoderKLHunyuanImage with HunyuanImage 2.1's configuration."""
    from diffusers import AutoencoderKLHunyuanImage
    from make_hunyuan_goldens import FULL
    from safetensors.torch import load_file
    m = AutoencoderKLHunyuanImage(**FULL)
    m.load_state_dict(load_file(path))
    m.eval().to(device=device, dtype=dtype)
    return (lambda x: m.encode(x * 2 - 1).latent_dist.mode()), (lambda z_: m.decode(z_).sample), 64, 32


def dcae_model(path, device, dtype):
    """AutoencoderDC with Sana's f32c32 configuration (what `gegl-vae synth --family dc-ae` makes)."""
    from diffusers import AutoencoderDC
    from make_dcae_goldens import SANA
    from safetensors.torch import load_file
    m = AutoencoderDC(**SANA)
    m.load_state_dict(load_file(path))
    m.eval().to(device=device, dtype=dtype)
    return (lambda x: m.encode(x * 2 - 1).latent), (lambda z_: m.decode(z_).sample), 32, 32


def architecture(path):
    """The loader for a safetensors file: by its 5-D kernels (Wan 2.2's with 12 image
    channels), multi-scale attention or flat lists of resnets."""
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
        if any(".attn.to_qkv_multiscale." in k for k in keys):
            return dcae_model
        if len(f.get_slice("decoder.conv_in.weight").get_shape()) == 5:
            return wan22_model if f.get_slice("encoder.conv_in.weight").get_shape()[1] == 12 else qwen_model
        return hunyuan_model if "decoder.up_blocks.0.conv1.weight" in keys else kl_model


def tiny_model(path, device, dtype):
    from taesd_ref import load_taef2
    enc, dec = load_taef2(os.path.dirname(path), torch.float32)
    for m in (enc, dec):
        m.to(device=device, dtype=dtype)
        if device == "cuda":
            m.to(memory_format=torch.channels_last)
    return enc, dec, 32, 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--op", default="decode", choices=["encode", "decode", "roundtrip"])
    ap.add_argument("--size", default="512x512")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.precision]
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    w, h = map(int, a.size.split("x"))
    load = tiny_model if a.model.endswith(".pth") else architecture(a.model)
    enc, dec, z, f = load(a.model, a.device, dtype)
    layout = torch.channels_last if a.device == "cuda" else torch.contiguous_format
    image = torch.rand(1, 3, h, w).to(a.device, dtype).contiguous(memory_format=layout)
    latent = torch.randn(1, z, h // f, w // f).to(a.device, dtype).contiguous(memory_format=layout)
    run = {"encode": lambda: enc(image), "decode": lambda: dec(latent), "roundtrip": lambda: dec(enc(image))}[a.op]

    def timed():
        t = time.perf_counter()
        run()
        if a.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    with torch.no_grad():
        timed()  # warm-up (and cuDNN's algorithm search)
        times = [timed() for _ in range(a.runs)]
    print(json.dumps({"op": a.op, "width": w, "height": h, "backend": "torch-" + a.device, "precision": a.precision,
                      "threads": a.threads, "seconds": round(statistics.median(times), 4), "gflops": None,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
