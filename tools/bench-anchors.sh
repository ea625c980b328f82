#!/usr/bin/env bash
# gegl-vae against the strongest CPU runtimes (issue 22): OpenVINO (f32 hint and its
# default), ONNX Runtime f32, PyTorch 2.x eager (fp32, bf16 as .to(bfloat16) and as
# autocast; channels_last, inference_mode) and torch.compile (inductor,
# TORCHINDUCTOR_FREEZING=1; fp32, bf16), and Debian's PyTorch 1.13 for continuity
# with tools/bench-table.sh.  Same models: the SD1.5 architecture with random weights
# (gegl-vae synth --family sd15 --seed 1) and the TAEF2 pair, exported to ONNX
# (opset 17, static shapes).
#
#   bash tools/bench-anchors.sh [BUILD_DIR] [anchor_table.py options…]
#
# e.g. the whole table, on a quiet machine (nothing else running; an estimate of 2 h or
# more on 2 cores, much of it torch.compile's cold compile in each of its processes; on a
# CPU with AVX512-BF16 the bf16 runtimes join in):
#   bash tools/bench-anchors.sh build
# a quick look at small sizes:
#   bash tools/bench-anchors.sh build --cases sd15-decode-128,taef2-roundtrip-256 --rounds 1
# Options (tests/reference/anchor_table.py --help): --cases, --runtimes, --rounds
# (3), --rounds-large (1, for --cases sd15-decode-1024, whose float64 reference needs
# more than 24 GB of memory, so it is not a default case), --runs (timed passes per process
# after the first, 1), --threads (2), --bf16 auto|yes|no, --check-only, --work DIR.
#
# What it does:
#  1. a venv in $BENCH_VENV (default build-bench/venv) from PyPI, the versions pinned
#     in tests/reference/anchors-requirements.txt (~6 GB: PyPI's Linux torch wheel
#     pulls CUDA libraries it does not use here);
#  2. per case, into the work folder (build-bench/work; kept, so delete it after
#     changing a model): an input, the ONNX graph, PyTorch's float64 output;
#  3. checks every runtime's output on that input against ours (fp32: within 1e-4
#     of the largest value, the TAEF2 round trip ≥ 60 dB PSNR; bf16 ≥ 35 dB PSNR /
#     25 dB latent SNR) and prints each one's PSNR/SNR against float64; a runtime
#     that fails is not timed and the script exits 1;
#  4. times them interleaved: each round runs every runtime once per case, in an
#     order rotated each round, one process per run (load, a first pass timed with
#     the load, then the timed pass), under /usr/bin/time -v for peak RSS and CPU
#     time; OMP_NUM_THREADS/GEGL_THREADS and each runtime's own thread setting at
#     --threads;
#  5. writes work/table.md (accuracy and timing tables) and work/runs.jsonl (every
#     process's record, with OpenVINO's chosen precision, streams and threads).
# bf16 runtimes run only where the CPU has AVX512-BF16 or AMX (--bf16 yes forces
# them: emulated bf16 is no anchor).  Timings on a machine where other work runs are
# not measurements: check the load average in table.md's first line.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=$root/build
if [[ $# -gt 0 && $1 != -* ]]; then build=$(cd "$1" && pwd); shift; fi
models=${GEGL_VAE_MODEL_PATH:-$root/../shared/models}
venv=${BENCH_VENV:-$root/build-bench/venv}
work=$root/build-bench/work
mkdir -p "$work"

if [[ ! -x $venv/bin/python ]] ||
   ! "$venv/bin/python" -c 'import openvino, onnxruntime, torch, diffusers, onnx' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$root/tests/reference/anchors-requirements.txt"
fi
[[ -f $work/sd15.safetensors ]] || "$build/ui/cli/gegl-vae" synth --family sd15 --seed 1 "$work/sd15.safetensors"
exec "$venv/bin/python" "$root/tests/reference/anchor_table.py" --gegl-vae "$build/ui/cli/gegl-vae" \
  --sd15 "$work/sd15.safetensors" --taef2 "$models/taef2_encoder.pth" --work "$work" "$@"
