#!/usr/bin/env bash
# The README's batch benchmark: N pictures of 512² (python3-skimage's photographs, scaled and
# cropped) through vae:diffusion-preview with TAEF2, timed three ways on the same pictures:
#   loop     a shell loop of `gegl IN -o OUT -- vae:diffusion-preview` (each call starts GEGL,
#            loads the module and the model; the engine takes every core)
#   jobs     gegl-vae-run with --jobs = the cores (one thread per worker process: its default)
#   threads  gegl-vae-run with one worker and GEGL_THREADS = the cores (threads, not processes)
# The pictures are split into ROUNDS; each round runs the three, in turns, on its pictures, so
# that the load of a shared machine falls on all three alike. Prints items/s per way (all rounds),
# the range over rounds, and each way's ratio to the loop.
#   bash tools/bench-batch.sh [N=100] [ROUNDS=5] [WAYS…]   (the shipped TAEF2 unless GEGL_VAE_MODEL_PATH says otherwise)
# (WAYS: some of loop, jobs, threads; all three by default)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n=${1:-100} rounds=${2:-5}
shift $(($# < 2 ? $# : 2))
if [ $# -gt 0 ]; then ways=("$@"); else ways=(loop jobs threads); fi
data=$(/usr/bin/python3 -c 'import skimage, os; print(os.path.join(os.path.dirname(skimage.__file__), "data"))')
run=$root/build/ui/run/gegl-vae-run
[ -x "$run" ] || { echo "bench-batch.sh: build first (ninja -C build)" >&2; exit 1; }
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 - "$data" "$work/in" "$n" << 'EOF'
import os, sys
from PIL import Image
data, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out)
photos = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg",
          "ihc.png", "retina.jpg", "hubble_deep_field.jpg", "color.png", "phantom.png"]
for i in range(n):
    im = Image.open(os.path.join(data, photos[i % len(photos)])).convert("RGB")
    zoom = 512 * (1 + 0.15 * (i // len(photos))) / min(im.size)
    im = im.resize((max(512, round(im.size[0] * zoom)), max(512, round(im.size[1] * zoom))),
                   Image.LANCZOS)
    x, y = (i * 37) % (im.size[0] - 511), (i * 53) % (im.size[1] - 511)
    im.crop((x, y, x + 512, y + 512)).save(os.path.join(out, "p%03d.png" % i))
EOF

export GEGL_PATH="$root/build/operations:$(pkg-config --variable=pluginsdir gegl-0.4)"
mkdir "$work/loop" "$work/jobs" "$work/threads"
per=$(( (n + rounds - 1) / rounds ))
: > "$work/times"
for r in $(seq 0 $((rounds - 1))); do
  mkdir "$work/round"
  ls "$work/in" | sort | sed -n "$((r * per + 1)),$(((r + 1) * per))p" | while read -r f; do
    ln -s "$work/in/$f" "$work/round/$f"
  done
  count=$(ls "$work/round" | wc -l)
  for k in "${!ways[@]}"; do
    way=${ways[$(( (r + k) % ${#ways[@]} ))]} # each round starts with another way
    start=$(date +%s.%N)
    case $way in
      loop)
        for f in "$work"/round/*.png; do
          gegl "$f" -o "$work/loop/${f##*/}" -- vae:diffusion-preview strength=0.5 2> "$work/err" ||
            { echo "bench-batch.sh: gegl failed on ${f##*/}:" >&2; cat "$work/err" >&2; exit 1; }
        done ;;
      jobs) "$run" "$work/round" -o "$work/jobs/{stem}.png" -q -j "$cores" -- vae:diffusion-preview strength=0.5 ;;
      threads) GEGL_THREADS=$cores "$run" "$work/round" -o "$work/threads/{stem}.png" -q -j 1 \
                 -- vae:diffusion-preview strength=0.5 ;;
    esac
    echo "$way $r $count $(awk "BEGIN { print $(date +%s.%N) - $start }")" | tee -a "$work/times" >&2
  done
  rm -r "$work/round"
done
for way in "${ways[@]}"; do
  [ "$(ls "$work/$way" | wc -l)" -eq "$n" ] || { echo "bench-batch.sh: $way wrote $(ls "$work/$way" | wc -l) of $n" >&2; exit 1; }
done

/usr/bin/python3 - "$work/times" "$n" "$cores" "${ways[@]}" << 'EOF'
import sys, collections
rows = [l.split() for l in open(sys.argv[1])]
n, cores, ways = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
total = collections.defaultdict(float)
rates = collections.defaultdict(list)
for way, r, count, secs in rows:
    total[way] += float(secs)
    rates[way].append(int(count) / float(secs))
print(f"{n} pictures of 512², TAEF2 diffusion-preview, {cores} cores, {len(rates[ways[0]])} interleaved rounds")
for way in ways:
    ips = n / total[way]
    print(f"{way:8s} {ips:.4f} items/s ({total[way]:.0f} s; rounds {min(rates[way]):.4f}–{max(rates[way]):.4f})"
          f"  ratio to {ways[0]} {ips / (n / total[ways[0]]):.2f}×")
EOF
