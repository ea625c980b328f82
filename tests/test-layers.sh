#!/usr/bin/env bash
# The include rules of docs/ARCHITECTURE.md, checked on the sources: each
# part includes only the headers of the parts it may use.
#   test-layers.sh SOURCE_ROOT
set -u
cd "$1" || exit 1
# part (a path prefix) and the project headers it may include (a regex)
rules=(
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

n=0
echo "1..${#rules[@]}"
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
