#!/usr/bin/env bash
# gegl-vae-run's CI cases that need root (issue 21), for .ci/run after its first build; the rest
# are the meson suite `run` (tests/test-run.sh). Appends "ok NAME" / "not ok NAME" lines to
# PLAIN_LOG, which tools/count-tests.py counts:
#   slurm-array         sbatch --wait --array=0-3 tools/batch.sbatch over the 24 test pictures
#                       writes the 23 outputs of a single process, byte for byte, each once,
#                       each task its own shard
#   slurm-scancel       scancel of one array task midway through its shard stops it cleanly
#                       (SIGTERM: it says so); the same submission again
#                       (--resume) completes the set, nothing computed twice
#   slurm-stopped       the daemons tools/slurm-local.sh started are gone afterwards
#   model-once          a process opens the model as often for 6 pictures as for 2 (strace)
#   bash tools/ci-batch.sh BUILD_DIR PLAIN_LOG      (exits 1 when a case fails)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "$1" && pwd)"
plain_log=$2
run=$build/ui/run/gegl-vae-run
models=${GEGL_VAE_TEST_MODELS:-$root/presets/models} # TAEF2 ships there
data=$(/usr/bin/python3 -c 'import skimage, os; print(os.path.join(os.path.dirname(skimage.__file__), "data"))')
export GEGL_VAE_MODEL_PATH=$models GEGL_VAE_RUN=$run
chain=(-- vae:diffusion-preview strength=0.5)

result() { # NAME STATUS
  if [ "$2" -eq 0 ]; then echo "ok $1"; else echo "not ok $1"; fi | tee -a "$plain_log"
}

# same REF DIR: the same pictures, byte for byte
same() {
  [ "$(ls "$1"/*.png | wc -l)" -eq "$(ls "$2"/*.png | wc -l)" ] ||
    { echo "$2: $(ls "$2"/*.png | wc -l) pictures, not $(ls "$1"/*.png | wc -l)"; return 1; }
  for f in "$1"/*.png; do cmp "$f" "$2/${f##*/}" || return 1; done
}

# ---- under Slurm (this script again, inside tools/slurm-local.sh) -----------------------

if [ "${3:-}" = --in-slurm ]; then
  work=$4
  cd "$work"
  mkdir sl sc
  sbatch --wait --array=0-3 --output="$work/sl-%a.out" --chdir="$work" "$root/tools/batch.sbatch" in sl
  ok=0
  same ref sl || ok=1
  cat sl/log-*.jsonl > sl.jsonl
  [ "$(wc -l < sl.jsonl)" -eq 24 ] && [ "$(grep -o '"index":[0-9]*' sl.jsonl | sort -u | wc -l)" -eq 24 ] || ok=1
  for i in 0 1 2 3; do # task i took the items i, i + 4, …
    grep -o '"index":[0-9]*' "sl/log-$i.jsonl" | cut -d: -f2 | awk -v i=$i '$1 % 4 != i { bad = 1 } END { exit bad || NR != 6 }' || ok=1
  done
  [ $ok -eq 0 ] || { tail -n 5 sl-*.out; cat sl/log-*.jsonl; }
  result slurm-array $ok

  # task 1 is cancelled midway through its shard: once it has logged its first picture it is
  # held (SIGSTOP through Slurm, to the runner itself), so the cancel cannot come after its
  # last one; the cancel sends SIGCONT, then SIGTERM
  job=$(sbatch --parsable --array=0-3 --output="$work/sc-%a.out" --chdir="$work" "$root/tools/batch.sbatch" in sc)
  for _ in $(seq 1500); do [ -s sc/log-1.jsonl ] && break; sleep 0.02; done
  scancel --full --signal=STOP "${job}_1"
  held=0
  for _ in $(seq 100); do
    pid=$(pgrep -f -- "--log sc/log-1.jsonl" | head -1)
    [ -n "$pid" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2> /dev/null)" = T ] && { held=1; break; }
    sleep 0.05
  done
  scancel "${job}_1"
  for _ in $(seq 3000); do [ -z "$(squeue -h -j "$job")" ] && break; sleep 0.1; done
  first=$(ls sc/*.png | wc -l)
  before=$(grep -c '"status":"ok"' sc/log-1.jsonl)
  sbatch --wait --array=0-3 --output="$work/sc2-%a.out" --chdir="$work" "$root/tools/batch.sbatch" in sc
  ok=0
  echo "task 1 held: $held, cancelled after $before of its 6: $(grep stopped sc-1.out); $first of 23 written before the resubmission"
  # stopped by its SIGTERM midway, its shard left unfinished
  [ $held -eq 1 ] && grep -q "stopped by signal 15" sc-1.out && [ "$before" -ge 1 ] && [ "$before" -lt 6 ] &&
    [ "$first" -eq $((17 + before)) ] || ok=1
  same ref sc || ok=1
  [ -z "$(grep '"status":"ok"' sc/log-*.jsonl | grep -o '"index":[0-9]*' | sort | uniq -d)" ] || ok=1
  [ "$(grep -h '"status":"ok"' sc/log-*.jsonl | wc -l)" -eq 23 ] || ok=1
  [ $ok -eq 0 ] || { tail -n 5 sc-*.out sc2-*.out; cat sc/log-*.jsonl; }
  result slurm-scancel $ok
  exit 0
fi

# ---- outside ------------------------------------------------------------------------------

first_line=$(($(wc -l < "$plain_log") + 1))
work=$(mktemp -d /tmp/ci-batch.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
/usr/bin/python3 "$root/tests/make-batch-inputs.py" "$data" in
mkdir ref
"$run" in -o ref/{stem}.png -q "${chain[@]}" 2> /dev/null
[ "$(ls ref | wc -l)" -eq 23 ] || echo "ci-batch.sh: the single-process run wrote $(ls ref | wc -l) of 23"

lines=$(wc -l < "$plain_log")
bash "$root/tools/slurm-local.sh" bash "$root/tools/ci-batch.sh" "$build" "$plain_log" --in-slurm "$work"
[ "$(wc -l < "$plain_log")" -eq $((lines + 2)) ] || result "slurm (it did not run: see above)" 1
! pgrep -f "slurm-local\." > /dev/null
result slurm-stopped $?

# the model: loaded once per process (one worker here), not once per picture
command -v strace > /dev/null || { apt-get update -qq && apt-get install -y -qq strace > /dev/null; }
opens() { # the successful opens of the decoder's weights by the runner and its worker
  mkdir "$1-in" "$1-out"
  cp $(ls in/photo-* | head -n "$2") "$1-in/"
  strace -f -qq -e trace=openat -o "$1.trace" "$run" "$1-in" -o "$1-out/{stem}.png" -j 1 -q "${chain[@]}" 2> /dev/null
  grep taef2_decoder.pth "$1.trace" | grep -vc ENOENT
}
two=$(opens two 2) six=$(opens six 6)
echo "opens of taef2_decoder.pth: $two for 2 pictures, $six for 6"
[ "$two" -eq "$six" ] && [ "$two" -le 4 ]
result model-once $?
! tail -n +"$first_line" "$plain_log" | grep -q "^not ok"
