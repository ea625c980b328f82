#!/usr/bin/env bash
# Where our fp32 passes spend their time (issue 22), next to OpenVINO's own
# per-layer counters on the same model:
#
#   bash tools/bench-profile.sh [BUILD_DIR] [THREADS…]      (default threads: 1 2)
#
# For the TAEF2 round trip at 1024² and the SD1.5-architecture decode at 512², and
# each thread count:
#  - perf stat (software events: task-clock, page faults, context switches, CPU
#    migrations, and OpenMP parallel regions through a uprobe on libgomp's
#    GOMP_parallel where perf probe can place one; add cycles,instructions where the
#    machine has a PMU — VMs often do not) of `gegl-vae bench --runs 3`, with the THP
#    allocations /proc/vmstat counted meanwhile (system-wide: other processes count too);
#  - perf record -g (DWARF call stacks, cpu-clock at 499 Hz) of `--runs 1`, summed by
#    kind of layer work by tests/reference/perf_kinds.py (Winograd transforms,
#    products, GroupNorm/SiLU, im2col, attention, page faults, OpenMP waiting…);
#  - OpenVINO f32 on the same case, its PERF_COUNT counters summed by layer type
#    and kernel (tests/reference/anchors.py run --profile; needs the venv and
#    ONNX graphs of tools/bench-anchors.sh: run that first, --check-only will do).
# Writes build-bench/profile/*.txt; prints the summaries.  With one thread the
# shares are the compute's own; with two they add the waiting at OpenMP barriers,
# which grows when another process takes a core (a busy machine).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=$root/build
if [[ $# -gt 0 && -d $1 ]]; then build=$(cd "$1" && pwd); shift; fi
threads=("$@")
[[ ${#threads[@]} -gt 0 ]] || threads=(1 2)
models=${GEGL_VAE_MODEL_PATH:-$root/../shared/models}
venv=${BENCH_VENV:-$root/build-bench/venv}
work=$root/build-bench/work
out=$root/build-bench/profile
mkdir -p "$out"
[[ -f $work/sd15.safetensors ]] || "$build/ui/cli/gegl-vae" synth --family sd15 --seed 1 "$work/sd15.safetensors"

thp () { awk '/^thp_fault_alloc /{print $2}' /proc/vmstat; }
events=task-clock,page-faults,context-switches,cpu-migrations
gomp=$(ldd "$build/ui/cli/gegl-vae" | awk '/libgomp/{print $3}')
if [[ -n $gomp ]] && perf probe -q -x "$gomp" --add GOMP_parallel 2> /dev/null; then
  events+=,probe_libgomp:GOMP_parallel
  trap 'perf probe -q -d "probe_libgomp:GOMP_parallel"' EXIT
fi

profile () { # case model op size
  local case=$1 model=$2 op=$3 size=$4 t name before
  for t in "${threads[@]}"; do
    name=$out/$case-$t
    before=$(thp)
    GEGL_THREADS=$t OMP_NUM_THREADS=$t perf stat -e "$events" \
      -o "$name.stat.txt" "$build/ui/cli/gegl-vae" bench --model "$model" --op "$op" --size "${size}x$size" \
      --runs 3 --threads "$t" > "$name.bench.txt"
    echo "THP faults during the run (system-wide): $(($(thp) - before))" >> "$name.stat.txt"
    GEGL_THREADS=$t OMP_NUM_THREADS=$t perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 \
      -o "$name.perf.data" "$build/ui/cli/gegl-vae" bench --model "$model" --op "$op" --size "${size}x$size" \
      --runs 1 --threads "$t" > /dev/null
    perf script -i "$name.perf.data" -F tid,ip,sym,dso 2> /dev/null |
      python3 "$root/tests/reference/perf_kinds.py" > "$name.kinds.txt"
    rm -f "$name.perf.data"
    echo "== ours, $case, $t thread(s): $(cat "$name.bench.txt")"
    grep -E "task-clock|page-faults|context-switches|cpu-migrations|GOMP|seconds (time|user|sys)|THP" "$name.stat.txt"
    cat "$name.kinds.txt"
    if [[ -f $work/$case.onnx ]]; then
      OMP_NUM_THREADS=$t "$venv/bin/python" "$root/tests/reference/anchors.py" run --case "$case" \
        --model "$model" --onnx "$work/$case.onnx" --runtime ov-f32 --threads "$t" --runs 1 \
        --profile "$name.openvino.json" > "$name.openvino-run.json"
      echo "== OpenVINO f32, $case, $t thread(s): $(cat "$name.openvino-run.json")"
      "$venv/bin/python" - "$name.openvino.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"per-layer counters sum to {p['total_ms']:.0f} ms\n\n| layer type / kernel | ms | share |\n|---|---|---|")
for k, ms in list(p["by_kernel_ms"].items())[:15]:
    print(f"| {k} | {ms:.0f} | {100 * ms / p['total_ms']:.1f}% |")
PY
    fi
  done
}

profile taef2-roundtrip-1024 "$models/taef2_encoder.pth" roundtrip 1024
profile sd15-decode-512 "$work/sd15.safetensors" decode 512
