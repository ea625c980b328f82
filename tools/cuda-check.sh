#!/usr/bin/env bash
# Everything issue 5 asks to be shown on a machine with an NVIDIA GPU, in one
# command (for the lent device, see the README):
#   1. a build with -Dcuda=enabled (nvcc, cuDNN, cuBLAS from the toolkit);
#   2. tests/test-cuda.c: CUDA against PyTorch's goldens and the CPU backend;
#   3. compute-sanitizer memcheck on one encode and one decode;
#   4. the GPU benchmark table against PyTorch on the same device and model
#      file (eager, channels_last, cuDNN benchmark on, TF32 off in fp32).
#   bash tools/cuda-check.sh [MODELS_DIR]     (TAEF2: the shipped presets/models by default)
# CUDA_CHECK_PREBUILT=1 skips step 1 and runs build-cuda/ as it is: a build made
# on another machine with the same toolkit and carried over (the lent device's image
# has nvcc but not GLib, json-glib or libpng; their libraries travel beside it).
# The build needs what tools/deps.sh installs on Debian (GLib, json-glib,
# libpng, OpenBLAS, pkg-config) and the toolkit's cuDNN headers; an image
# with nvcc and PyTorch alone may lack them, and meson's error then says
# which (the device README shows how to carry packages there).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
models=${1:-${GEGL_VAE_MODEL_PATH:-$root/presets/models}}
build=$root/build-cuda
cd "$root"
if [ -n "${CUDA_CHECK_PREBUILT:-}" ]; then
  [ -x "$build/tests/test-cuda" ] || { echo "cuda-check: no $build/tests/test-cuda to run"; exit 1; }
elif ! log=$(meson setup "$build" -Dcuda=enabled -Dgegl=disabled -Dgimp=disabled --buildtype=release 2>&1 \
           && ninja -C "$build" 2>&1); then
  printf '%s\n' "$log" | tail -20
  echo "cuda-check: the build failed (above)"
  exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== tests"
GEGL_VAE_TEST_MODELS=$models "$build/tests/test-cuda" --tap
echo "== compute-sanitizer memcheck"
sd15=$(mktemp --suffix=.safetensors)
work=$(mktemp -d)
trap 'rm -rf "$sd15" "$work"' EXIT
"$build/ui/cli/gegl-vae" synth --family sd15 --seed 1 "$sd15"
python3 -c "import numpy; numpy.save('$work/img.npy', numpy.random.rand(64, 64, 3).astype('float32'))"
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for run in "encode --backend cuda --model $sd15 $work/img.npy $work/z.npy" \
           "decode --backend cuda --model $sd15 $work/z.npy $work/out.npy"; do
  "$sanitizer" --tool memcheck --leak-check full --error-exitcode 3 "$build/ui/cli/gegl-vae" $run \
    | tail -2 || echo "memcheck FAILED: $run"
done

echo "== benchmark"
# the KL rows' PyTorch side needs diffusers, which the device image lacks
# (2026-11): carry its wheel and importlib-metadata's as the device README
# says, a diffusers recent enough for the image's huggingface_hub 1.x
python3 -c "import diffusers" 2>/dev/null \
  || echo "cuda-check: python3 has no diffusers; the SD1.5 rows' PyTorch column will fail"
row () { # label model op size precision
  local ours torch
  ours=$(GEGL_VAE_MODEL_PATH=$models "$build/ui/cli/gegl-vae" bench --backend cuda --precision "$5" --model "$2" \
           --op "$3" --size "$4" --runs 5 --json)
  torch=$(python3 tests/reference/bench_torch.py --device cuda --precision "$5" --model "$2" --op "$3" --size "$4" \
            --runs 5)
  python3 - "$1" "$ours" "$torch" <<'PY'
import json, sys
label, a, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {label} | {a['op']} {a['width']}² | {a['precision']} | {a['seconds'] * 1000:.1f} ms | "
      f"{b['seconds'] * 1000:.1f} ms | **{a['seconds'] / b['seconds']:.2f}×** | {a['device']} |")
PY
}
echo "| model | op | precision | gegl-vae | PyTorch | ratio | device |"
echo "|---|---|---|---|---|---|---|"
for p in fp32 bf16; do
  row "SD1.5 architecture" "$sd15" decode 1024x1024 $p
  row "SD1.5 architecture" "$sd15" encode 1024x1024 $p
  row "TAEF2" "$models/taef2_encoder.pth" roundtrip 1024x1024 $p
done
