#!/usr/bin/env bash
# The include rules of docs/ARCHITECTURE.md, checked on the sources: each
# part includes only the headers of the parts it may use.
#   test-layers.sh SOURCE_ROOT
set -u
cd "$1" || exit 1
# part (a path prefix) and the project headers it may include (a regex)
rules=(
  "core/base/|^(vae-private\.h|vae-config\.h|vae\.h)$"
  "core/io/|^(vae-private\.h|vae-config\.h|vae\.h)$"
  "core/cpu/|^(vae-private\.h|vae-config\.h|vae\.h|backend\.h|cpu/cpu\.h)$"
  "core/nets/|^(vae-private\.h|vae-config\.h|vae\.h|vae-families\.h|backend\.h|nets/[a-z-]+\.h)$"
  "core/diffusion/|^(vae-private\.h|vae-config\.h|vae\.h)$"
  "core/backend|^(vae-private\.h|backend\.h)$"
  "cuda/|^(backend\.h|vae-cuda\.h|cuda-private\.h|layout\.h|vae-config\.h)$"
  # (inpaint-preview.c is diffusion-preview.c built again)
  "operations/|^(vae\.h|vae-op\.h|vae-filter\.h|vae-config\.h|gegl-op\.h|diffusion-preview\.c)$"
  # the front ends: their own headers, never one of core's private ones
  "ui/|^(vae\.h|vae-config\.h|[a-z0-9-]+\.h)$"
)
private='^(vae-private|backend|model-private|vae-synth|vae-cuda|nets|cpu|run|tiled)\.h$'

# calls that would close a loop between files of one part: FILES may not call
# what matches the regex (the parsers fill a VaeTensorSink, not VaeWeights;
# allocation and the pool know nothing of tensors)
calls=(
  "core/io/pth.c core/io/safetensors.c core/io/zip.c|\\bvae_weights_(add|new|lookup|free) \\("
  "core/base/alloc.c core/base/pool.c|\\bvae_tensor_[a-z_]+ \\("
)

n=0
echo "1..$((${#rules[@]} + ${#calls[@]}))"
for rule in "${rules[@]}"; do
  part=${rule%%|*} allowed=${rule#*|}
  n=$((n + 1))
  bad=$(git ls-files "$part*" | grep -E '\.(c|h|cu)$' | while read -r f; do
    sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f" | { grep -vE "$allowed"; [ "$part" = ui/ ] &&
      sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f" | grep -E "$private"; } | sed "s|^|$f: |"
  done)
  if [ -n "$bad" ]; then
    echo "not ok $n - $part includes what it may not: $(echo $bad)"
  else
    echo "ok $n - $part"
  fi
done
for rule in "${calls[@]}"; do
  files=${rule%%|*} pattern=${rule#*|}
  n=$((n + 1))
  # shellcheck disable=SC2086
  bad=$(grep -nE "$pattern" $files | grep -v '^[^:]*:[0-9]*: *\*\|/\*')
  if [ -n "$bad" ]; then
    echo "not ok $n - $files call what would close a loop: $(echo $bad)"
  else
    echo "ok $n - $files call no $pattern"
  fi
done
