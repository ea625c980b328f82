#!/usr/bin/env bash
# gegl-vae-run, as a user runs it (TAP): the main job and each way it must fail
# loudly (issue 17), and batches over 24 pictures (issue 21): --jobs and shards
# byte-identical, a corrupt input reported while the rest are written, SIGKILL
# then --resume, SIGTERM, records, manifests, seeds, formats, the progress bar.
#   test-run.sh RUNNER SOURCE_ROOT SKIMAGE_DATA
set -u
run=$1 root=$2 data=$3
models=${GEGL_VAE_TEST_MODELS:-$root/presets/models} # TAEF2 ships there
py=/usr/bin/python3 # Debian's, with python3-skimage's PIL and numpy
n=0

if [ ! -f "$models/taef2_encoder.pth" ]; then
  echo "1..0 # SKIP the TAEF2 weights are not in $models (set GEGL_VAE_TEST_MODELS)"
  exit 0
fi
if [ ! -f "$data/chelsea.png" ] || ! "$py" -c "import PIL, numpy" 2>/dev/null; then
  echo "1..0 # SKIP python3-skimage (its photographs, PIL, numpy) is not installed"
  exit 0
fi
export GEGL_VAE_MODEL_PATH=$models
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# check NAME COMMAND…: one TAP line, the command's output as comments when it fails
check() {
  local name=$1
  shift
  n=$((n + 1))
  if "$@" > check.log 2>&1; then
    echo "ok $n - $name"
  else
    echo "not ok $n - $name"
    sed 's/^/# /' check.log
  fi
}

# fails PATTERN OUTPUT ARG…: the runner exits non-zero with one line on stderr
# that holds PATTERN, and leaves neither OUTPUT nor a temporary
fails() {
  local pattern=$1 out=$2 rc
  shift 2
  "$run" "$@" > /dev/null 2> err.txt
  rc=$?
  cat err.txt
  [ $rc -ne 0 ] && [ "$(wc -l < err.txt)" -eq 1 ] && grep -q -- "$pattern" err.txt &&
    [ ! -e "$out" ] && ! temporaries "$(dirname "$out")"
}

temporaries() { ls -a "$1" 2>/dev/null | grep -q '\.tmp[0-9]'; }

# same DIR_A DIR_B: the same picture files, byte for byte
same() {
  local a=$1 b=$2 f bad=0
  [ "$(ls "$a" | wc -l)" -eq "$(ls "$b" | wc -l)" ] || { echo "$a and $b hold different files"; return 1; }
  for f in "$a"/*; do cmp "$f" "$b/${f##*/}" || bad=1; done
  return $bad
}

count() { ls "$1" 2>/dev/null | wc -l; }
# the log's lines with "status":"S"
statuses() { grep -c "\"status\":\"$2\"" "$1"; }

"$py" "$root/tests/make-batch-inputs.py" "$data" in

# ---- the main job (issue 17, point 2) -------------------------------------------------

photo=in/photo-chelsea.png # chelsea, small: the test's time goes to the batches
mkdir out
check "main job: a preview, the size of the picture and not the picture" bash -c '
  "$1" "$2" -o out/main.png -- vae:diffusion-preview strength=0.5 &&
  "$3" -c "
from PIL import Image; import numpy as np
a = np.asarray(Image.open(\"$2\").convert(\"RGB\"), float); b = np.asarray(Image.open(\"out/main.png\").convert(\"RGB\"), float)
assert a.shape == b.shape, (a.shape, b.shape)
d = np.abs(a - b).mean(); print(\"mean difference\", d); assert 2 < d < 60"' _ "$run" "$photo" "$py"
# spins ENV…: the spin counts libgomp printed, one per start of the runner
spins() {
  env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose "$@" "$run" --help 2>&1 > /dev/null |
    sed -n "s/.*GOMP_SPINCOUNT = //p" | tr -d "'" | tr '\n' ' '
}
check "threads sleep at barriers: started again once, with a spin count of 0" \
  bash -c 'echo "$1"; set -- $1; [ $# -eq 2 ] && [ "$2" = 0 ]' _ "$(spins)"
check "a wait policy the user set is kept: started once" \
  bash -c 'echo "$1"; set -- $1; [ $# -eq 1 ] && [ "$1" != 0 ]' _ "$(spins OMP_WAIT_POLICY=active)"
check "a spin count the user set is kept: started once" \
  bash -c 'echo "$1"; [ "$(echo $1)" = 1000 ]' _ "$(spins GOMP_SPINCOUNT=1000)"
check "missing model: one line, non-zero, nothing written" \
  fails "nowhere/taef2_encoder.pth" out/x.png "$photo" -o out/x.png -- vae:diffusion-preview model="$work/nowhere/taef2_encoder.pth"
check "missing input: one line, non-zero, nothing written" \
  fails "does not exist" out/x.png "$work/no-such.png" -o out/x.png -- vae:diffusion-preview
check "misspelt property: says which it means" \
  fails "has no property 'strenght' (did you mean 'strength'?)" out/x.png "$photo" -o out/x.png -- vae:diffusion-preview strenght=0.3
check "out-of-range value: says the range" \
  fails "strength=2 is out of range: vae:diffusion-preview takes strength from 0 to 1" out/x.png "$photo" -o out/x.png -- vae:diffusion-preview strength=2
check "missing output folder: says how to make it" \
  fails "mkdir -p" nowhere/x.png "$photo" -o nowhere/x.png -- vae:diffusion-preview
check "unknown operation: says which it means" \
  fails "did you mean 'vae:diffusion-preview'" out/x.png "$photo" -o out/x.png -- vae:difusion-preview
check "a latent to a PNG: says to write .latent or .npy" \
  fails "write .latent or .npy" out/x.png "$photo" -o out/x.png -- vae:encode
sed "s/name='strength'/name='strenght'/" "$root/presets/graphs/diffusion-preview.xml" > misspelt.xml
check "a graph file's misspelt property" fails "strenght" out/x.png "$photo" -o out/x.png -g misspelt.xml
check "our graph by name equals the op chain, byte for byte" bash -c '
  "$1" "$2" -o out/graph.png -g diffusion-preview && cmp out/graph.png out/main.png' _ "$run" "$photo"
check "latent-blend: its second picture set by the node's name (-- second.path=FILE)" bash -c '
  "$1" "$2" -o out/blend.png -g latent-blend -- second.path=in/photo-coffee.png &&
  "$1" "$2" -o out/self.png -g latent-blend -- second.path="$2" &&
  "$3" -c "
from PIL import Image; import numpy as np
a = np.asarray(Image.open(\"out/blend.png\").convert(\"RGB\"), float); b = np.asarray(Image.open(\"out/self.png\").convert(\"RGB\"), float)
assert a.shape == (384, 512, 3), a.shape
d = np.abs(a - b).mean(); print(\"mean difference from chelsea blended with itself\", d); assert d > 10"' _ "$run" "$photo" "$py"
check "latent-blend without its second picture: says how to give it" \
  fails "node second reads @SECOND@, which does not exist (give it a picture: -- second.path=FILE)" out/x.png "$photo" -o out/x.png -g latent-blend

# ---- batches (issue 21) ---------------------------------------------------------------

chain=(-- vae:diffusion-preview strength=0.5)
mkdir j1
"$run" in -o j1/{stem}.png -j 1 --log j1.jsonl "${chain[@]}" 2> j1.err
rc=$?
check "24 inputs: 23 written, the corrupt one reported, exit 1, a summary" bash -c '
  [ $1 -eq 1 ] && [ "$(ls j1 | wc -l)" -eq 23 ] && [ "$(wc -l < j1.jsonl)" -eq 24 ] &&
  grep "\"status\":\"failed\"" j1.jsonl | grep -q corrupt-chelsea &&
  tail -1 j1.err | grep -q "23 written, 0 done before, 1 failed, of 24" || { cat j1.err; false; }' _ $rc
check "the log: input, output, status, seconds, error per item" "$py" -c '
import json
for line in open("j1.jsonl"):
    r = json.loads(line)
    assert set(r) >= {"input", "output", "status", "seconds", "error"}, r
    assert (r["status"] == "ok") == (r["error"] is None), r'
mkdir j2 s
"$run" in -o j2/{stem}.png -j 2 -q "${chain[@]}" 2> /dev/null
check "--jobs 2 equals --jobs 1, byte for byte" same j1 j2
for i in 0 1 2 3; do "$run" in -o s/{stem}.png --shard $i/4 -q --log s.jsonl "${chain[@]}" 2> /dev/null; done
check "--shard i/4 for i = 0..3 equal --jobs 1, each item once" bash -c '
  same() { for f in j1/*; do cmp "$f" "s/${f##*/}" || return 1; done; }
  same && [ "$(ls s | wc -l)" -eq 23 ] &&
  [ "$(grep -o "\"index\":[0-9]*" s.jsonl | sort -u | wc -l)" -eq 24 ] && [ "$(wc -l < s.jsonl)" -eq 24 ]'
dry() { "$run" in -o dry/{stem}.png --dry-run "$@" | cut -f1 | head -n -1 | tr '\n' ' '; }
mkdir dry
check "shards from SLURM_ARRAY_TASK_ID/COUNT, /MIN/MAX and JOB_COMPLETION_INDEX" bash -c '
  a=$1 b=$2 c=$3 d=$4; echo "$a|$b|$c|$d"; [ "$a" = "$b" ] && [ "$a" = "$c" ] && [ "$a" != "$d" ] &&
  [ "$a" = "1 5 9 13 17 21 " ]' _ "$(dry --shard 1/4)" "$(SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=4 dry)" \
  "$(SLURM_ARRAY_TASK_ID=6 SLURM_ARRAY_TASK_MIN=5 SLURM_ARRAY_TASK_MAX=8 dry)" "$(JOB_COMPLETION_INDEX=2 dry --shards 4)"
check "--dry-run lists the 24, writes nothing" bash -c '
  [ "$("$1" in -o dry/{stem}.png --dry-run | wc -l)" -eq 25 ] && [ -z "$(ls -A dry)" ]' _ "$run"

# killed midway (SIGKILL to the runner and its workers), then --resume
mkdir k
setsid "$run" in -o k/{stem}.png -j 2 --log k.jsonl -q "${chain[@]}" 2> /dev/null &
pid=$!
for _ in $(seq 600); do [ "$(cat k.jsonl 2> /dev/null | wc -l)" -ge 6 ] && break; sleep 0.1; done
kill -9 -- -"$pid"
wait "$pid" 2> /dev/null
written_before=$(ls k/.gegl-vae-run | wc -l)
(cd k/.gegl-vae-run && for r in *.json; do stat -c '%n %y' "../${r%.json}"; done) > k-before.txt
# what a kill in the middle of a write leaves (the kill above may or may not), and another's file
touch k/.photo-rocket.png.tmp4242.png k/.not-ours.png.tmp4242.png
"$run" in -o k/{stem}.png --resume --log k2.jsonl -q "${chain[@]}" 2> /dev/null
check "SIGKILL midway, then --resume: complete, earlier outputs untouched, no temporary" bash -c '
  echo "$1 written before the kill"; [ "$1" -ge 4 ] && [ "$1" -lt 23 ] &&
  rm k/.not-ours.png.tmp4242.png &&
  (cd k/.gegl-vae-run && for r in $(cut -d" " -f1 ../../k-before.txt); do stat -c "%n %y" "$r"; done) | diff k-before.txt - &&
  [ "$(grep -c "\"status\":\"skipped\"" k2.jsonl)" -eq "$1" ] && ! ls -a k | grep "\.tmp[0-9]" &&
  for f in j1/*; do cmp "$f" "k/${f##*/}" || exit 1; done' _ "$written_before"
"$run" in -o k/{stem}.png --resume --log k3.jsonl -q "${chain[@]}" 2> /dev/null
check "--resume again: nothing redone" bash -c '
  [ "$(grep -c "\"status\":\"skipped\"" k3.jsonl)" -eq 23 ] &&
  (cd k/.gegl-vae-run && for r in $(cut -d" " -f1 ../../k-before.txt); do stat -c "%n %y" "$r"; done) | diff k-before.txt -'

# records: another property, another input, redo exactly those
mkdir r r-in
cp in/photo-astronaut.png in/photo-chelsea.png in/crop-05-coffee.png r-in/
"$run" r-in -o r/{stem}.png -q "${chain[@]}" 2> /dev/null
"$run" r-in -o r/{stem}.png --resume --log r1.jsonl -q -- vae:diffusion-preview strength=0.3 2> /dev/null
cp in/photo-coffee.png r-in/photo-chelsea.png
"$run" r-in -o r/{stem}.png --resume --log r2.jsonl -q -- vae:diffusion-preview strength=0.3 2> /dev/null
check "--resume redoes what another property or input changed, only that" bash -c '
  [ "$(grep -c "\"status\":\"ok\"" r1.jsonl)" -eq 3 ] && [ "$(grep -c "\"status\":\"ok\"" r2.jsonl)" -eq 1 ] &&
  grep "\"status\":\"ok\"" r2.jsonl | grep -q photo-chelsea'

# a worker killed (as by the OOM killer) on an item: that item fails, a new worker takes the rest;
# then SIGTERM (what scancel sends) to the runner alone: it stops its workers and cleans up
mkdir t
"$run" in -o t/{stem}.png -j 2 --log t.jsonl "${chain[@]}" 2> t.err &
pid=$!
for _ in $(seq 600); do [ "$(cat t.jsonl 2> /dev/null | wc -l)" -ge 3 ] && break; sleep 0.1; done
kill -9 "$(pgrep -P "$pid" | head -1)"
for _ in $(seq 600); do [ "$(cat t.jsonl 2> /dev/null | wc -l)" -ge 8 ] && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
rc=$?
check "a worker killed: its item fails, the others go on" bash -c '
  grep "died of signal 9" t.jsonl && [ "$(grep -c "\"status\":\"ok\"" t.jsonl)" -ge 6 ]'
check "SIGTERM: exit 143, says so, no temporary; --resume completes" bash -c '
  cat t.err; [ $1 -eq 143 ] && grep -q "stopped by signal 15" t.err && ! ls -a t | grep "\.tmp[0-9]" &&
  [ "$(ls t | wc -l)" -lt 23 ] &&
  { "$2" in -o t/{stem}.png --resume -q "${@:3}" 2> /dev/null; [ $? -eq 1 ]; } &&
  for f in j1/*; do cmp "$f" "t/${f##*/}" || exit 1; done' _ $rc "$run" "${chain[@]}"

# manifests: per-item properties and seeds
mkdir m mj
cat > items.csv << 'EOF'
input,strength,seed
in/photo-astronaut.png,0.3,7
"in/photo-chelsea.png",,
in/crop-05-coffee.png,0.8,
EOF
printf '%s\n' '{"input": "in/photo-astronaut.png", "strength": 0.3, "seed": 7}' \
  '{"input": "in/photo-chelsea.png"}' '{"input": "in/crop-05-coffee.png", "strength": 0.8}' > items.jsonl
"$run" -m items.csv -o m/{stem}-{seed}.png -q "${chain[@]}" 2> /dev/null
"$run" -m items.jsonl -o mj/{stem}-{seed}.png -q "${chain[@]}" 2> /dev/null
check "CSV and JSONL manifests: per-item properties and seeds, {seed} in names" bash -c '
  ls m mj; same() { for f in m/*; do cmp "$f" "mj/${f##*/}" || return 1; done; }; same &&
  [ -f m/photo-astronaut-7.png ] && ! cmp -s m/photo-astronaut-7.png j1/photo-astronaut.png &&
  cmp m/photo-chelsea-*.png j1/photo-chelsea.png && ! cmp -s m/crop-05-coffee-*.png j1/crop-05-coffee.png'
echo "input,strenght" > bad.csv
echo "in/photo-astronaut.png,0.3" >> bad.csv
check "a manifest's misspelt column fails before any work" fails "did you mean 'strength'" m/photo-astronaut.png -m bad.csv -o m/{stem}.png "${chain[@]}"

# seeds: from the file name, so two copies differ unless a seed is given
mkdir twins tw ts
cp in/photo-astronaut.png twins/a.png
cp in/photo-astronaut.png twins/b.png
"$run" twins -o tw/{stem}.png -q "${chain[@]}" 2> /dev/null
"$run" twins -o ts/{stem}.png -q "${chain[@]}" seed=7 2> /dev/null
check "seeds: two names, two seeds; seed=7 for both, one picture" bash -c '
  ! cmp -s tw/a.png tw/b.png && cmp ts/a.png ts/b.png'

# formats by extension
mkdir f
a=in/photo-astronaut.png
"$run" $a -o f/a8.png --depth 8 "${chain[@]}" 2> /dev/null
"$run" $a -o f/a.tif --depth 16 "${chain[@]}" 2> /dev/null
"$run" $a -o f/a.exr "${chain[@]}" 2> /dev/null
"$run" $a -o f/a.jpg "${chain[@]}" 2> /dev/null
"$run" $a -o f/a.npy -- vae:encode 2> /dev/null
"$run" $a -o f/a.latent -- vae:encode 2> /dev/null
check "formats: PNG 8-bit, 16-bit TIFF, EXR, JPEG, latent .npy and .latent" "$py" -c '
import struct
import numpy as np
import tifffile
assert open("f/a8.png", "rb").read(25)[24] == 8
tif = tifffile.imread("f/a.tif"); print("tiff", tif.shape, tif.dtype); assert tif.shape[:2] == (64, 64) and tif.dtype == np.uint16
assert open("f/a.exr", "rb").read(4) == b"\x76\x2f\x31\x01"
assert open("f/a.jpg", "rb").read(2) == b"\xff\xd8"
z = np.load("f/a.npy"); print("npy", z.shape, z.dtype); assert z.shape == (1, 128, 4, 4)
head = open("f/a.latent", "rb").read()
n = struct.unpack("<Q", head[:8])[0]; print(head[8:8 + n]); assert b"latent_tensor" in head[8:8 + n]'

check "plain lines off a terminal, a bar with items/s and ETA on one" bash -c '
  grep -q "^\[2/24\] ok in/crop-00-astronaut.png → j1/crop-00-astronaut.png" j1.err &&
  script -qec "$1 r-in -o r/{stem}.png -j 1 -- vae:diffusion-preview" /dev/null > tty.txt; cat -v tty.txt;
  grep -q "items/s" tty.txt && grep -q "ETA" tty.txt' _ "$run"

echo "1..$n"
