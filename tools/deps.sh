#!/usr/bin/env bash
# Installs what gegl-vae needs to build and test on Debian 12 (only what is missing).
# With --ci, also what the sanitizer and fuzzing jobs of .ci/run need.
set -euo pipefail
packages=(
  meson ninja-build pkg-config gcc
  libglib2.0-dev libglib2.0-dev-bin libjson-glib-dev libpng-dev libopenblas-openmp-dev zlib1g-dev
  libgegl-dev libbabl-dev gegl   # the GEGL module and the gegl program its tests drive
  python3-skimage   # photographs for the TAEF2 tests
)
if [ "${1:-}" = "--ci" ]; then
  packages+=(clang clang-format-14 libclang-rt-14-dev libgimp2.0-dev gimp)
  packages+=(slurm-wlm munge strace) # tools/ci-batch.sh: a one-node Slurm, the model's opens
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
