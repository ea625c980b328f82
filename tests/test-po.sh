#!/usr/bin/env bash
# Every translatable string in the sources is translated in each catalogue:
# a fresh template merged into the .po leaves nothing untranslated or fuzzy;
# and every source file that marks strings is listed in po/POTFILES.
#   test-po.sh SOURCE_ROOT
set -u
root=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
languages=$(grep -v '^#' "$root/po/LINGUAS")
echo "1..$(( $(echo $languages | wc -w) + 1 ))"
unlisted=$(cd "$root" && git ls-files '*.c' '*.h' '*.cu' | grep -v '^tests/' |
  xargs grep -lE '\b(N?_) \("' | grep -vxF -f po/POTFILES)
if [ -n "$unlisted" ]; then
  echo "not ok 1 - files with translatable strings missing from po/POTFILES: $unlisted"
else
  echo "ok 1 - po/POTFILES lists every file with translatable strings"
fi
if ! (cd "$root" && xgettext --from-code=UTF-8 --language=C --keyword=_ --keyword=N_ \
        -o "$work/gegl-vae.pot" -f po/POTFILES 2> "$work/xgettext.err"); then
  echo "Bail out! xgettext failed: $(cat "$work/xgettext.err")"
  exit 1
fi
n=1
for l in $languages; do
  n=$((n + 1))
  if ! msgmerge -q "$root/po/$l.po" "$work/gegl-vae.pot" -o "$work/$l.po" 2> "$work/merge.err"; then
    echo "not ok $n - $l: msgmerge failed: $(cat "$work/merge.err")"
    continue
  fi
  stats=$(msgfmt --statistics -o /dev/null "$work/$l.po" 2>&1)
  if echo "$stats" | grep -qE "untranslated|fuzzy" || ! echo "$stats" | grep -q "translated message"; then
    echo "not ok $n - $l: $stats"
  else
    echo "ok $n - $l: $stats"
  fi
done
