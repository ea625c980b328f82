#!/usr/bin/env bash
# The main job: a forward-diffusion preview of a picture with the default model, through
# gegl-vae-run (our runner of GEGL graphs), which exits non-zero with one line saying what
# to do when the model, the input or the output folder is missing or a property is wrong.
#   bash tools/preview.sh IN.png OUT.png [property=value …]   (e.g. strength=0.3 seed=7)
# Installs dependencies, builds once into build/, then runs
#   gegl-vae-run IN -o OUT -- vae:diffusion-preview strength=0.5 …
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 2 ] || { echo "usage: bash tools/preview.sh IN.png OUT.png [property=value …]" >&2; exit 2; }
bash "$root/tools/deps.sh"
if [ ! -f "$root/build/build.ninja" ]; then
  meson setup "$root/build" "$root" --buildtype=release >/dev/null
fi
ninja -C "$root/build" >/dev/null
# the default model (taef2) ships in presets/models, which a build tree finds
in="$1" out="$2"
shift 2
# run from the build tree, the runner takes this checkout's GEGL module
exec "$root/build/ui/run/gegl-vae-run" "$in" -o "$out" -- vae:diffusion-preview strength=0.5 "$@"
