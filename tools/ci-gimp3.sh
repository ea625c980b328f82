#!/usr/bin/env bash
# The GIMP 3 stage of .ci/run: a Debian 13 root with GIMP 3 (made once, kept
# in .gimp3-root/ between local runs: tools/gimp3-root.sh), the project built
# inside it against GEGL 0.4.62 with warnings as errors, then
# tests/gimp3/run.sh there.  Appends its "ok NAME" / "not ok NAME" lines to
# LOG and fails when one is "not ok" or a step fails (that step is one
# "not ok" line).
#   bash tools/ci-gimp3.sh LOG [SCREENSHOT]   (SCREENSHOT: the docs/ picture)
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
log=$(realpath -m "$1") shot=${2:+$(realpath -m "$2")}
root=${GIMP3_ROOT:-$repo/.gimp3-root}
photo=$(ls /usr/lib/python3/dist-packages/skimage/data/chelsea.png 2> /dev/null)
logs=$repo/build-gimp3-logs # this stage's logs, the photo and the screenshot (the root sees /src)
start=$(date +%s)
mkdir -p "$logs"
step () { # name command…: one "not ok" line when the command fails
  local name=$1
  shift
  "$@" > "$logs/$name.log" 2>&1 && return 0
  echo "not ok gimp3/$name # $(tail -3 "$logs/$name.log" | tr '\n' ' ')" | tee -a "$log"
  return 1
}
[ -n "$photo" ] || { echo "not ok gimp3/photo # python3-skimage's chelsea.png is missing" | tee -a "$log"; exit 1; }
step root bash "$repo/tools/gimp3-root.sh" "$root" || exit 1
cp "$photo" "$logs/photo.png"
step build bash "$repo/tools/gimp3-root.sh" "$root" run \
  "[ -f build-gimp3/build.ninja ] ||
     meson setup build-gimp3 -Dcuda=disabled -Dwerror=true --buildtype=release && ninja -C build-gimp3" ||
  exit 1
bash "$repo/tools/gimp3-root.sh" "$root" run \
  "bash tests/gimp3/run.sh build-gimp3 build-gimp3-logs/photo.png ${shot:+build-gimp3-logs/shot.png}" \
  > "$logs/suite.log" 2>&1
grep -E '^(not )?ok ' "$logs/suite.log" | tee -a "$log"
# what a failed check printed to say why (GIMP's log, a traceback): CI's
# output is all that is left of a run
! grep -q '^not ok ' "$logs/suite.log" || grep '^# ' "$logs/suite.log" | tail -40
[ -z "$shot" ] || cp "$logs/shot.png" "$shot"
echo "gimp3: $(grep -c '^ok ' "$logs/suite.log") passed, $(grep -c '^not ok ' "$logs/suite.log")" \
  "failed in $(($(date +%s) - start)) s"
! grep -q '^not ok ' "$logs/suite.log" && grep -q '^ok ' "$logs/suite.log"
