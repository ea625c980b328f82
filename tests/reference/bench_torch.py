#!/usr/bin/python3
"""PyTorch's side of `gegl-vae bench` (reference only): the same model file,
op, size and thread count, printing the same JSON.

  python3 tests/reference/bench_torch.py --model FILE [--model2 FILE] --op decode --size 512x512
                                         [--runs 3] [--threads N]

AutoencoderKL files (diffusers names, e.g. from `gegl-vae synth`) run through
diffusers' AutoencoderKL; TAESD .pth pairs through taesd_ref.py."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))


def kl_model(path):
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file
    sd = load_file(path)
    z = sd["decoder.conv_in.weight"].shape[1]
    quant = "quant_conv.weight" in sd
    m = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                      block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=z,
                      use_quant_conv=quant, use_post_quant_conv=quant)
    m.load_state_dict({k: v for k, v in sd.items() if not k.startswith("bn.")})
    m.eval()
    return (lambda x: m.encode(x * 2 - 1).latent_dist.mean), (lambda z_: m.decode(z_).sample), z, 8


def tiny_model(path):
    from taesd_ref import load_taef2
    enc, dec = load_taef2(os.path.dirname(path), torch.float32)
    return enc, dec, 32, 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--op", default="decode", choices=["encode", "decode", "roundtrip"])
    ap.add_argument("--size", default="512x512")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    w, h = map(int, a.size.split("x"))
    enc, dec, z, f = tiny_model(a.model) if a.model.endswith(".pth") else kl_model(a.model)
    image = torch.rand(1, 3, h, w)
    latent = torch.randn(1, z, h // f, w // f)
    run = {"encode": lambda: enc(image), "decode": lambda: dec(latent), "roundtrip": lambda: dec(enc(image))}[a.op]
    times = []
    with torch.no_grad():
        run()  # warm-up
        for _ in range(a.runs):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
    print(json.dumps({"op": a.op, "width": w, "height": h, "backend": "torch-cpu", "precision": "fp32",
                      "threads": a.threads, "seconds": round(statistics.median(times), 4), "gflops": None,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
