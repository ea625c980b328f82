#!/usr/bin/env python3
"""The other runtimes of tools/bench-anchors.sh: the passes `gegl-vae bench`
times, in OpenVINO, ONNX Runtime and PyTorch 2.x (reference only: run from the
venv that script makes, never a dependency of the project).

A case is FAMILY-OP-SIZE: sd15-decode-512, sd15-encode-512, taef2-roundtrip-1024,
sd15-decode-1024 (any size works; SIZE is the image's side).  Each pass is the
whole user-visible operation, as ours: encode takes an image in [0, 1] and
gives the diffusion-scale latent (the posterior's mean), decode the reverse,
clamped to [0, 1].  Files in our CLI's .npy layouts: images [H, W, 3], latents
[1, C, h, w].

  anchors.py inputs    --case C --out IN.npy
  anchors.py export    --case C --model FILE --out C.onnx          (opset 17, static shapes)
  anchors.py reference --case C --model FILE --input IN.npy --out REF.npy   (PyTorch float64)
  anchors.py run       --case C --model FILE --onnx C.onnx --runtime R [--runs N] [--threads N]
                       [--input IN.npy --save OUT.npy] [--profile PROFILE.json]

`run` is one measured process: it imports the runtime and loads the model,
runs the first pass (first_call_seconds counts all three), then --runs more,
and prints one JSON object (seconds = their median).  Runtimes:
  ov-f32, ov-default     OpenVINO CPU, INFERENCE_NUM_THREADS=--threads, with
                         INFERENCE_PRECISION_HINT=f32 or its own choice (reported)
  ort-f32                ONNX Runtime CPU, intra-op threads = --threads
  torch-fp32, torch-bf16, torch-autocast-bf16
                         PyTorch eager, channels_last, inference_mode; bf16 as
                         .to(bfloat16) or fp32 weights under autocast
  torch-compile-fp32, torch-compile-bf16
                         the same through torch.compile (inductor,
                         TORCHINDUCTOR_FREEZING=1); the compile is in the first call
--profile (OpenVINO only) writes its per-layer counters (PERF_COUNT) of the
last timed pass, summed by layer type and by kernel."""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SD_SCALE = 0.18215  # the sd15 family's latent scale (VAE-SPEC.md)
RUNTIMES = ["ov-f32", "ov-default", "ort-f32", "torch-fp32", "torch-bf16", "torch-autocast-bf16",
            "torch-compile-fp32", "torch-compile-bf16"]


def parse_case(case):
    family, op, size = case.split("-")
    assert family in ("sd15", "taef2") and op in ("encode", "decode", "roundtrip"), case
    return family, op, int(size)


def input_shape(case):
    """NCHW shape of the pass's input."""
    family, op, size = parse_case(case)
    if op == "decode":
        return (1, 4 if family == "sd15" else 32, size // 8, size // 8)
    return (1, 3, size, size)


def make_input(case):
    """A unit-normal latent, or a smooth image with fine noise in [0, 1]; seeded."""
    rng = np.random.default_rng(1)
    shape = input_shape(case)
    if parse_case(case)[1] == "decode":
        return rng.standard_normal(shape, dtype=np.float32)
    h, w = shape[2:]
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    image = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (f * x + g * y)) for f, g in ((1, 2), (3, 1), (2, 5))])
    image += 0.1 * rng.uniform(-1, 1, image.shape)
    return np.clip(image, 0, 1)[None].astype(np.float32)


def to_cli(a):
    """NCHW → our CLI's layout (an image as [H, W, 3])."""
    return a[0].transpose(1, 2, 0) if a.shape[1] == 3 else a


def from_cli(a):
    return a.transpose(2, 0, 1)[None] if a.ndim == 3 else a


def build_module(case, model):
    """The pass as a torch.nn.Module (float32, eval), input and output NCHW."""
    import torch
    family, op, _ = parse_case(case)
    if family == "taef2":
        sys.path.insert(0, HERE)
        from taesd_ref import load_taef2
        enc, dec = load_taef2(os.path.dirname(os.path.abspath(model)), torch.float32)

        class RoundTrip(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.enc, self.dec = enc, dec

            def forward(self, x):
                if op == "encode":
                    return self.enc(x)
                return torch.clamp(self.dec(self.enc(x) if op == "roundtrip" else x), 0, 1)
        return RoundTrip().eval()

    from diffusers import AutoencoderKL
    from safetensors.torch import load_file
    sd = load_file(model)
    z = sd["decoder.conv_in.weight"].shape[1]
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=z)
    vae.load_state_dict(sd)

    class Pass(torch.nn.Module):
        """Encoder → quant_conv → mean × scale, or the reverse; no posterior object."""

        def __init__(self):
            super().__init__()
            self.vae = vae

        def encode(self, x):
            return self.vae.quant_conv(self.vae.encoder(x * 2 - 1))[:, :z] * SD_SCALE

        def decode(self, latent):
            x = self.vae.decoder(self.vae.post_quant_conv(latent / SD_SCALE))
            return torch.clamp((x + 1) / 2, 0, 1)

        def forward(self, x):
            return {"encode": self.encode, "decode": self.decode,
                    "roundtrip": lambda x: self.decode(self.encode(x))}[op](x)
    return Pass().eval()


def cmd_export(a):
    import inspect
    import torch
    m = build_module(a.case, a.model)
    x = torch.from_numpy(make_input(a.case))
    # the TorchScript exporter: static shapes at opset 17 as asked, where dynamo would pick 18
    kw = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with torch.no_grad():
        torch.onnx.export(m, (x,), a.out + ".tmp", opset_version=17, input_names=["x"], output_names=["y"],
                          do_constant_folding=True, **kw)
    os.replace(a.out + ".tmp", a.out)


def cmd_reference(a):
    import torch
    m = build_module(a.case, a.model).double()
    with torch.no_grad():
        y = m(torch.from_numpy(from_cli(np.load(a.input))).double())
    np.save(a.out, to_cli(y.numpy()))


def load_runtime(a):
    """(function running one pass on x, details of the runtime's choices)."""
    r, threads = a.runtime, a.threads
    if r.startswith("ov-"):
        import openvino as ov
        config = {"INFERENCE_NUM_THREADS": threads}
        if r == "ov-f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if a.profile:
            config["PERF_COUNT"] = True
        compiled = ov.Core().compile_model(a.onnx, "CPU", config)
        request = compiled.create_infer_request()
        info = {"version": ov.get_version()}
        for p in ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS", "PERFORMANCE_HINT",
                  "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING"):
            try:
                v = compiled.get_property(p)
                info[p] = v.get_type_name() if hasattr(v, "get_type_name") else str(v)
            except RuntimeError:
                pass
        info["precision"] = info.get("INFERENCE_PRECISION_HINT")
        return (lambda x: request.infer({0: x})[0]), info, request
    if r == "ort-f32":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
        return (lambda x: session.run(None, {"x": x})[0]), {"version": ort.__version__, "precision": "f32"}, None

    if "compile" in r:
        os.environ["TORCHINDUCTOR_FREEZING"] = "1"  # read when inductor's config is imported
    import torch
    torch.set_num_threads(threads)
    bf16 = r.endswith("bf16") and "autocast" not in r
    dtype = torch.bfloat16 if bf16 else torch.float32
    m = build_module(a.case, a.model).to(dtype=dtype, memory_format=torch.channels_last)
    if "compile" in r:
        m = torch.compile(m)

    def run(x):
        x = torch.from_numpy(x).to(dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled="autocast" in r):
            return m(x).float().numpy()
    precision = "bf16 (autocast)" if "autocast" in r else "bf16" if bf16 else "f32"
    return run, {"version": torch.__version__, "threads": torch.get_num_threads(), "precision": precision}, None


def profile_summary(request):
    """OpenVINO's per-layer counters, summed by layer type and by kernel."""
    by_type, by_kernel = {}, {}
    for p in request.get_profiling_info():
        if p.status.name != "EXECUTED":
            continue
        ms = p.real_time.total_seconds() * 1e3
        by_type[p.node_type] = by_type.get(p.node_type, 0) + ms
        key = f"{p.node_type} {p.exec_type}"
        by_kernel[key] = by_kernel.get(key, 0) + ms
    order = lambda d: dict(sorted(((k, round(v, 2)) for k, v in d.items()), key=lambda kv: -kv[1]))
    return {"total_ms": round(sum(by_type.values()), 1), "by_type_ms": order(by_type), "by_kernel_ms": order(by_kernel)}


def cmd_run(a):
    x = from_cli(np.load(a.input)) if a.input else make_input(a.case)
    x = np.ascontiguousarray(x, dtype=np.float32)
    start = time.perf_counter()
    run, info, request = load_runtime(a)
    loaded = time.perf_counter()
    y = run(x)
    first = time.perf_counter()
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        y = run(x)
        times.append(time.perf_counter() - t)
    if a.save:
        np.save(a.save, to_cli(np.asarray(y, dtype=np.float32)))
    if a.profile:
        with open(a.profile, "w") as f:
            json.dump(profile_summary(request), f, indent=1)
    print(json.dumps({"runtime": a.runtime, "case": a.case, "threads": a.threads, "info": info,
                      "load_seconds": round(loaded - start, 3),
                      "first_call_seconds": round(first - start, 3), "precision": info["precision"],
                      "seconds": round(statistics.median(times), 4) if times else None,
                      "times": [round(t, 4) for t in times]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("inputs", "export", "reference", "run"):
        p = sub.add_parser(name)
        p.add_argument("--case", required=True)
        if name != "inputs":
            p.add_argument("--model", required=True)
        if name in ("inputs", "export", "reference"):
            p.add_argument("--out", required=True)
        if name == "reference":
            p.add_argument("--input", required=True)
        if name == "run":
            p.add_argument("--runtime", required=True, choices=RUNTIMES)
            p.add_argument("--onnx")
            p.add_argument("--runs", type=int, default=1)
            p.add_argument("--threads", type=int, default=2)
            p.add_argument("--input")
            p.add_argument("--save")
            p.add_argument("--profile")
    a = ap.parse_args()
    if a.command == "inputs":
        np.save(a.out, to_cli(make_input(a.case)))
    else:
        {"export": cmd_export, "reference": cmd_reference, "run": cmd_run}[a.command](a)


if __name__ == "__main__":
    main()
