#!/usr/bin/env bash
# oneDNN's convolution primitives against our CPU kernels (issue 22): builds
# tools/bench-onednn.c against BUILD_DIR/core/libvae.a and Debian's oneDNN
# (libdnnl-dev, 2.6), then runs it:
#
#   bash tools/bench-onednn.sh BUILD_DIR [--quick] [--runs N]
#
#   --quick    only shapes with 64×64 outputs (a smoke run: seconds, not minutes)
#   --runs N   timed calls per runtime after the warm-up, median (default 5)
#
# THREADS (default 2) sets both OMP_NUM_THREADS (oneDNN's OpenMP runtime, and
# ours) and GEGL_THREADS (what core/base/alloc.c's vae_threads reads).
# GEGL_VAE_AMX chooses our bf16 path as in gegl-vae (docs/PERFORMANCE-NOTES.md);
# ONEDNN_MAX_CPU_ISA and ONEDNN_VERBOSE work as oneDNN documents them.
# The binary is left at BUILD_DIR/bench-onednn.  It prints Markdown tables (time,
# accuracy, memory) on stdout, progress on stderr.  A full run takes a few
# minutes and about 2 GB of memory; on 2 cores run it on a quiet machine (a
# team of 2 OpenMP threads waits at every barrier for a parked thread).
# Installs nothing; exits non-zero with a message on any failure.
set -euo pipefail

die () {
  echo "bench-onednn.sh: $*" >&2
  exit 1
}

[[ $# -ge 1 ]] || die "usage: bash tools/bench-onednn.sh BUILD_DIR [--quick] [--runs N]"
root="$(cd "$(dirname "$0")/.." && pwd)"
[[ -d $1 ]] || die "$1: no such build directory (meson setup BUILD_DIR --buildtype=release && ninja -C BUILD_DIR)"
build="$(cd "$1" && pwd)"
shift

[[ -f $build/core/libvae.a ]] ||
  die "$build/core/libvae.a is missing: build first (ninja -C $build)"
[[ -f $build/vae-config.h ]] || die "$build/vae-config.h is missing: is $build a meson build directory of this project?"
[[ -f /usr/include/dnnl.h ]] ||
  die "oneDNN's headers are missing (/usr/include/dnnl.h): apt-get install libdnnl-dev"
command -v gcc > /dev/null || die "gcc is missing"
command -v pkg-config > /dev/null || die "pkg-config is missing"
# The libraries of ui/cli/gegl-vae's link line (build.ninja) that core needs;
# OpenBLAS is not linked: core/cpu/blas.c opens it at run time.
libs=(glib-2.0 gmodule-2.0 gio-2.0 gobject-2.0 json-glib-1.0 zlib)
pkg-config --exists "${libs[@]}" || die "pkg-config cannot find some of: ${libs[*]}"

threads=${THREADS:-2}
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive number, not '$threads'"

bin=$build/bench-onednn
echo "bench-onednn.sh: compiling $bin" >&2
# shellcheck disable=SC2046 # pkg-config's words are meant to split
gcc -std=c11 -O2 -fopenmp -Wall -Wextra -D_GNU_SOURCE \
  -I"$root/core" -I"$build" -I"$build/core" \
  $(pkg-config --cflags "${libs[@]}") \
  -o "$bin" "$root/tools/bench-onednn.c" \
  "$build/core/libvae.a" \
  $(pkg-config --libs "${libs[@]}") -ldnnl -lm ||
  die "compiling tools/bench-onednn.c failed"

echo "bench-onednn.sh: running on $threads thread(s): $(lscpu 2> /dev/null | sed -n 's/^Model name: *//p' | head -1)" >&2
status=0
OMP_NUM_THREADS=$threads GEGL_THREADS=$threads "$bin" "$@" || status=$?
[[ $status -eq 0 ]] || die "bench-onednn failed (exit status $status; see above)"
