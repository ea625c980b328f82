#!/usr/bin/env bash
# The README's performance table: gegl-vae bench against PyTorch (Debian's
# python3-torch + diffusers, tests/reference/bench_torch.py) on the same model
# file, size and thread count, one after the other in one run.
#   bash tools/bench-table.sh [BUILD_DIR]      (needs ../shared/models for TAEF2)
# BENCH_PYTHON names the Python of the PyTorch side (default Debian's); the
# Qwen-Image rows need diffusers >= 0.35 there (Debian's has 0.31).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=${1:-$root/build}
models=${GEGL_VAE_MODEL_PATH:-$root/../shared/models}
threads=$(nproc)
python=${BENCH_PYTHON:-/usr/bin/python3}
sd15=$(mktemp --suffix=.safetensors)
qwen=$(mktemp --suffix=.safetensors)
dcae=$(mktemp --suffix=.safetensors)
trap 'rm -f "$sd15" "$qwen" "$dcae"' EXIT
"$build/ui/cli/gegl-vae" synth --family sd15 --seed 1 "$sd15"
"$build/ui/cli/gegl-vae" synth --family qwen-image --seed 1 "$qwen"
"$build/ui/cli/gegl-vae" synth --family dc-ae --seed 1 "$dcae"

row () { # label model op size runs [gegl-vae options…]
  local ours torch
  ours=$(GEGL_VAE_MODEL_PATH=$models "$build/ui/cli/gegl-vae" bench --backend cpu --model "$2" --op "$3" --size "$4" --runs "$5" \
           --threads "$threads" --json "${@:6}")
  torch=$("$python" "$root/tests/reference/bench_torch.py" --model "$2" --op "$3" --size "$4" --runs "$5" \
            --threads "$threads")
  /usr/bin/python3 - "$1" "$ours" "$torch" <<'PY'
import json, sys
label, a, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
plan = f" ({a['band_pixels']}-px bands, planned {a['planned_peak_mb']:.0f} MB)" if a['band_pixels'] else ""
print(f"| {label} | {a['op']} {a['width']}² | {a['seconds']:.2f} s | {b['seconds']:.2f} s | "
      f"**{a['seconds'] / b['seconds']:.2f}×** | {a['gflops']:.0f} | {a['peak_rss_mb']:.0f} MB{plan} | {b['peak_rss_mb']:.0f} MB |")
PY
}
echo "| model | op | gegl-vae | PyTorch | ratio | GFLOP/s (ours) | peak RSS ours | peak RSS PyTorch |"
echo "|---|---|---|---|---|---|---|---|"
row "SD1.5 architecture" "$sd15" decode 512x512 3
row "SD1.5 architecture" "$sd15" encode 512x512 3
row "TAEF2" "$models/taef2_encoder.pth" roundtrip 1024x1024 3
# bf16 (AVX512-BF16) against PyTorch's fp32, as issue 4 measures it
row "SD1.5 architecture, --precision bf16" "$sd15" decode 512x512 3 --precision bf16
row "SD1.5 architecture, --precision bf16" "$sd15" encode 512x512 3 --precision bf16
row "TAEF2, --precision bf16" "$models/taef2_encoder.pth" roundtrip 1024x1024 3 --precision bf16
row "SD1.5 architecture" "$sd15" decode 1024x1024 1
row "SD1.5 architecture, --memory-limit 2.5G" "$sd15" decode 1024x1024 1 --memory-limit 2500M
row "SD1.5 architecture, --memory-limit 1G" "$sd15" decode 1024x1024 1 --memory-limit 1G
# Qwen-Image (one frame of AutoencoderKLQwenImage) and Sana's DC-AE, full architectures,
# seeded weights
row "Qwen-Image architecture" "$qwen" decode 1024x1024 1
row "DC-AE f32c32 architecture" "$dcae" decode 1024x1024 1
if grep -qw avx512_bf16 /proc/cpuinfo; then
  row "Qwen-Image architecture, --precision bf16" "$qwen" decode 1024x1024 1 --precision bf16
  row "DC-AE f32c32 architecture, --precision bf16" "$dcae" decode 1024x1024 1 --precision bf16
fi
# no PyTorch row: diffusers' AutoencoderTiny would hold several 4 GB activations at 4096²
GEGL_VAE_MODEL_PATH=$models "$build/ui/cli/gegl-vae" bench --model taef2 --op decode --size 4096x4096 --runs 1 \
  --threads "$threads" --memory-limit 2G
