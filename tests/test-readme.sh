#!/usr/bin/env bash
# The README's examples, run as written (TAP), from a copy of this checkout
# with nothing beside it, an empty HOME and no model variable: the blocks
# marked <!-- example: NAME --> are taken from README.md itself, so the
# README cannot drift from what works (issue 17).
#   main        the main job (tools/preview.sh), from the copy's root
#   gegl        latents through the gegl program, with photo.png in the folder
#   graphs      the XML graphs through gegl-vae-run and gegl, from the copy's root
#               with photo.png and photo2.png there
#   install     the per-user install; then, with the copy deleted, the
#               installed gegl-vae-run, gegl-vae and gegl (its module found
#               where GEGL looks) make a preview with the installed model
#   test-readme.sh SOURCE_ROOT SKIMAGE_DATA
set -u
root=$(cd "$1" && pwd) data=$2
n=0
if [ ! -f "$data/chelsea.png" ] || ! command -v gegl > /dev/null; then
  echo "1..0 # SKIP needs python3-skimage's photographs and the gegl program"
  exit 0
fi
echo "1..8"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=$work/checkout/gegl-vae # its parent holds no shared/ folder
mkdir -p "$src" "$work/home" "$work/run"
# the tracked and new files as they are now, not build folders
(cd "$root" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$src" -xf -
env_clean=(env -u GEGL_VAE_MODEL_PATH -u GEGL_VAE_TEST_MODELS -u XDG_DATA_HOME -u XDG_CONFIG_HOME
  -u GEGL_PATH HOME="$work/home")

# block NAME: the commands of the README block marked NAME
block() {
  awk -v name="$1" '
    $0 == "<!-- example: " name " -->" { want = 1; next }
    want && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$src/README.md"
}

# check NAME COMMAND…: one TAP line; the command's output as comments on failure
check() {
  local name=$1
  shift
  n=$((n + 1))
  if "$@" > "$work/check.log" 2>&1; then
    echo "ok $n - $name"
  else
    echo "not ok $n - $name"
    tail -40 "$work/check.log" | sed 's/^/# /'
  fi
}

# run_block NAME DIR [VAR=VALUE…]: the block in DIR, stopping at its first failure
run_block() {
  local name=$1 dir=$2 text
  shift 2
  text=$(block "$name")
  [ -n "$text" ] || { echo "README.md has no block <!-- example: $name -->"; return 1; }
  (cd "$dir" && "${env_clean[@]}" "$@" bash -euo pipefail -c "$text")
}

# differs A B: both are pictures of the same size and not the same pixels
# (Debian's python3, with python3-skimage's numpy and PIL)
differs() {
  /usr/bin/python3 - "$1" "$2" << 'EOF'
import sys
import numpy as np
from PIL import Image
a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=float) for p in sys.argv[1:3])
print("sizes", a.shape, b.shape)
sys.exit(0 if a.shape == b.shape and np.abs(a - b).mean() > 1.0 else 1)
EOF
}

cp "$data/chelsea.png" "$work/run/photo.png"
cp "$data/coffee.png" "$work/run/photo2.png"
build=$src/build
plugins=$(pkg-config --variable=pluginsdir gegl-0.4)

main_job() { run_block main "$src" && test -s "$src/preview.png"; }
gegl_example() {
  run_block gegl "$work/run" PATH="$build/ui/cli:$build/ui/run:$PATH" GEGL_PATH="$build/operations:$plugins" &&
    test -s "$work/run/photo.latent" && test -s "$work/run/decoded.png"
}
# in the copy's root, as a user of the source tree runs them (gegl -x reads presets/graphs)
graphs_example() {
  local f
  cp "$work/run/photo.png" "$work/run/photo2.png" "$src/" &&
    run_block graphs "$src" PATH="$build/ui/cli:$build/ui/run:$PATH" GEGL_PATH="$build/operations:$plugins" || return 1
  for f in preview round-trip posterized sweep usage outpaint up blend; do
    test -s "$src/$f.png" || { echo "$f.png is missing"; return 1; }
  done
}
install_example() { run_block install "$src" && test -x "$work/home/.local/bin/gegl-vae-run"; }
# after the install, from a folder of their own with the copy deleted
installed_programs() {
  (cd "$work/after" && "${env_clean[@]}" PATH="$work/home/.local/bin:$PATH" bash -euo pipefail -c '
     gegl-vae-run photo.png -o run.png -- vae:diffusion-preview strength=0.5
     gegl-vae preview photo.png cli.png') && differs "$work/after/photo.png" "$work/after/run.png" &&
    differs "$work/after/photo.png" "$work/after/cli.png"
}
# GEGL's own exit noise ("N GeglBuffers leaked", a tile-cache check; see
# docs/ARCHITECTURE.md) is not ours: only our ops' messages count
installed_gegl() {
  (cd "$work/after" && "${env_clean[@]}" gegl photo.png -o gegl.png -- vae:diffusion-preview \
     strength=0.5 2> "$work/after/gegl.err") && cat "$work/after/gegl.err" &&
    ! grep -q "vae:" "$work/after/gegl.err" && differs "$work/after/photo.png" "$work/after/gegl.png"
}

check "main: the main job writes a preview from a bare copy" main_job
check "main: the preview is not the picture" differs "$data/chelsea.png" "$src/preview.png"
check "gegl: latents through the gegl program" gegl_example
check "graphs: every graph example writes its picture" graphs_example
check "graphs: the preview is not the picture" differs "$work/run/photo.png" "$src/preview.png"
check "install: the per-user install" install_example
rm -rf "$work/checkout" # nothing of the source is left to fall back on
mkdir -p "$work/after"
cp "$data/chelsea.png" "$work/after/photo.png"
check "installed: gegl-vae-run and gegl-vae preview with the installed model" installed_programs
check "installed: the gegl program finds the module and the model" installed_gegl
