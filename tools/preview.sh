#!/usr/bin/env bash
# The main job: a forward-diffusion preview of a picture with the default model,
# through GEGL's own `gegl` program and the vae:diffusion-preview operation.
#   bash tools/preview.sh IN.png OUT.png [property=value …]   (e.g. strength=0.3 seed=7)
# Installs dependencies, builds once into build/, then runs
#   gegl IN -o OUT -- vae:diffusion-preview strength=0.5 …
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
[ $# -ge 2 ] || { echo "usage: bash tools/preview.sh IN.png OUT.png [property=value …]" >&2; exit 2; }
in="$1" out="$2"
shift 2
# our module's folder (never the build root) plus GEGL's own plug-ins
export GEGL_PATH="$root/build/operations:$(pkg-config --variable=pluginsdir gegl-0.4)"
exec gegl "$in" -o "$out" -- vae:diffusion-preview strength=0.5 "$@"
