#!/usr/bin/env bash
# The main job: a forward-diffusion preview of a picture with the default model.
#   bash tools/preview.sh IN.png OUT.png [--strength 0.5] [--seed N] [--model M] …
# Installs dependencies, builds once into build/, then runs `gegl-vae preview`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/deps.sh"
if [ ! -f "$root/build/build.ninja" ]; then
  meson setup "$root/build" "$root" --buildtype=release >/dev/null
fi
ninja -C "$root/build" >/dev/null
# the default model (taef2) is looked up on the model path; ../shared/models is
# where this project keeps the real weights
if [ -z "${GEGL_VAE_MODEL_PATH:-}" ] && [ -d "$root/../shared/models" ]; then
  export GEGL_VAE_MODEL_PATH="$root/../shared/models"
fi
[ $# -ge 2 ] || { echo "usage: bash tools/preview.sh IN.png OUT.png [gegl-vae preview options]" >&2; exit 2; }
in="$1" out="$2"
shift 2
exec "$root/build/ui/cli/gegl-vae" preview --strength 0.5 "$@" "$in" "$out"
