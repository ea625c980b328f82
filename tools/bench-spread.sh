#!/usr/bin/env bash
# Run-to-run spread, and a machine shared with another process (issue 22):
#
#   bash tools/bench-spread.sh [BUILD_DIR] [ROUNDS]      (default 4 rounds)
#
# For the TAEF2 round trip at 1024² and the SD1.5-architecture decode at 512²
# (seeded weights), 2 threads, one process per run, interleaved:
#  - quiet, and beside one busy process (a shell loop, one core's worth);
#  - with the programs' own wait policy (passive: they start themselves again
#    with OMP_WAIT_POLICY=passive) and with libgomp's spinning, as a program that
#    loads the engine without that setting (gegl, GIMP) gets it
#    (GOMP_SPINCOUNT=300000, libgomp's default).
# One line per run: case, load, policy, seconds of the timed pass, first call
# (load + pass), context switches, CPU migrations, page faults (perf stat, where
# perf runs; else "-"), and the machine's steal time meanwhile (/proc/stat, ticks).
# Then the median and range of each. Run it on a quiet machine: a build beside
# it is a busy process the table does not know about.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=$root/build
if [[ $# -gt 0 && -d $1 ]]; then build=$(cd "$1" && pwd); shift; fi
rounds=${1:-4}
bin=$build/ui/cli/gegl-vae
work=$root/build-bench/work
out=$root/build-bench/spread.txt
mkdir -p "$work"
[[ -f $work/sd15.safetensors ]] || "$bin" synth --family sd15 --seed 1 "$work/sd15.safetensors"
: > "$out"

steal() { awk '/^cpu /{print $9}' /proc/stat; }
hog=
trap 'if [[ -n $hog ]]; then kill "$hog" 2> /dev/null; fi' EXIT
stat=(perf stat -x, -e context-switches,cpu-migrations,page-faults -o "$work/stat.txt")
"${stat[@]}" true 2> /dev/null || stat=()

# one CASE LOAD POLICY: one process, one line (the busy process is global for the trap)
one() {
  local case=$1 load=$2 policy=$3 args env=(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT) s0 json
  local stats=" - - -"
  case $case in
    taef2-roundtrip-1024) args=(--op roundtrip --size 1024x1024) ;;
    sd15-decode-512) args=(-m "$work/sd15.safetensors" --op decode --size 512x512) ;;
  esac
  [[ $policy == spin ]] && env+=(GOMP_SPINCOUNT=300000)
  if [[ $load == busy ]]; then
    (while :; do :; done) &
    hog=$!
  fi
  s0=$(steal)
  json=$("${env[@]}" "${stat[@]}" "$bin" bench "${args[@]}" --runs 1 --threads 2 --json)
  [[ ${#stat[@]} -eq 0 ]] ||
    stats=$(awk -F, '/context-switches|cpu-migrations|page-faults/{printf " %s", $1}' "$work/stat.txt")
  if [[ -n $hog ]]; then
    kill "$hog" && wait "$hog" 2> /dev/null || true
    hog=
  fi
  echo "$case $load $policy $(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["seconds"], d["first_call_seconds"], end="")' "$json")$stats $(($(steal) - s0))" |
    tee -a "$out"
}

echo "# case load policy seconds first-call context-switches migrations page-faults steal-ticks"
for ((r = 1; r <= rounds; r++)); do
  for case in taef2-roundtrip-1024 sd15-decode-512; do
    for load in quiet busy; do
      for policy in passive spin; do one "$case" "$load" "$policy"; done
    done
  done
done
python3 - "$out" << 'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    runs[tuple(f[:3])].append(float(f[3]))
for key, t in sorted(runs.items()):
    print("%-22s %-5s %-7s median %6.2f s  range %.2f–%.2f  (%d runs)"
          % (*key, statistics.median(t), min(t), max(t), len(t)))
EOF
