#!/usr/bin/env bash
# The README's performance table: gegl-vae bench against PyTorch (Debian's
# python3-torch + diffusers, tests/reference/bench_torch.py) on the same model
# file, size and thread count, one after the other in one run.
#   bash tools/bench-table.sh [BUILD_DIR] [families]   (needs ../shared/models for TAEF2)
# BENCH_PYTHON names the Python of the PyTorch side (default Debian's).
# "families" gives only the rows of issue 23's families (Qwen-Image, Wan 2.2,
# DC-AE, HunyuanImage 2.1: decode 1024², fp32 against fp32, and where the CPU
# has AVX512-BF16 bf16 against diffusers in bf16); they need diffusers >= 0.36
# (pip install diffusers torch into a venv, BENCH_PYTHON=VENV/bin/python).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=${1:-$root/build}
mode=${2:-all}
models=${GEGL_VAE_MODEL_PATH:-$root/../shared/models}
threads=$(nproc)
python=${BENCH_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
synth () { # family: a seeded model of its full architecture, its path printed
  "$build/ui/cli/gegl-vae" synth --family "$1" --seed 1 "$tmp/$1.safetensors" >&2
  echo "$tmp/$1.safetensors"
}

# TORCH_PRECISION=bf16 row … runs the PyTorch side in bf16 (default fp32)
row () { # label model op size runs [gegl-vae options…] (ours in fp32 unless they say otherwise)
  local ours torch
  ours=$(GEGL_VAE_MODEL_PATH=$models "$build/ui/cli/gegl-vae" bench --backend cpu --model "$2" --op "$3" --size "$4" --runs "$5" \
           --threads "$threads" --json --precision fp32 "${@:6}")
  torch=$("$python" "$root/tests/reference/bench_torch.py" --model "$2" --op "$3" --size "$4" --runs "$5" \
            --threads "$threads" --precision "${TORCH_PRECISION:-fp32}")
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
if [ "$mode" = families ]; then
  # full architectures, seeded weights; diffusers' model classes on the PyTorch side
  for f in "qwen-image Qwen-Image" "wan22 Wan 2.2" "dc-ae DC-AE f32c32" "hunyuan-image HunyuanImage 2.1"; do
    model=$(synth "${f%% *}")
    row "${f#* } architecture" "$model" decode 1024x1024 1
    if grep -qw avx512_bf16 /proc/cpuinfo; then
      TORCH_PRECISION=bf16 row "${f#* } architecture, bf16 (PyTorch in bf16)" "$model" decode 1024x1024 1 --precision bf16
    fi
    rm -f "$model"
  done
  exit 0
fi
sd15=$(synth sd15)
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
# no PyTorch row: diffusers' AutoencoderTiny would hold several 4 GB activations at 4096²
GEGL_VAE_MODEL_PATH=$models "$build/ui/cli/gegl-vae" bench --model taef2 --op decode --size 4096x4096 --runs 1 \
  --threads "$threads" --memory-limit 2G
