#!/usr/bin/env bash
# Fails (and lists the files) when a tracked C, header or CUDA file differs
# from what clang-format makes of it with the project's .clang-format.
#   bash tools/format-check.sh          check
#   bash tools/format-check.sh --fix    rewrite the files in place
set -euo pipefail
cd "$(dirname "$0")/.."
# the layout depends on clang-format's version: Debian 12's 14 is the reference
cf=$(command -v clang-format-14 || command -v clang-format) ||
  { echo "format-check: clang-format-14 is not installed (apt-get install clang-format-14)" >&2; exit 1; }
bad=0
while IFS= read -r f; do
  if [ "${1:-}" = "--fix" ]; then
    "$cf" -i "$f"
  elif ! "$cf" "$f" | cmp -s - "$f"; then
    echo "not formatted: $f (bash tools/format-check.sh --fix)" >&2
    bad=1
  fi
done < <(git ls-files '*.c' '*.h' '*.cu')
exit $bad
