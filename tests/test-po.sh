#!/usr/bin/env bash
# Every translatable string in the sources is translated in each catalogue:
# a fresh template merged into the .po leaves nothing untranslated or fuzzy.
#   test-po.sh SOURCE_ROOT
set -u
root=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
languages=$(grep -v '^#' "$root/po/LINGUAS")
echo "1..$(echo $languages | wc -w)"
(cd "$root" && xgettext --from-code=UTF-8 --language=C --keyword=_ --keyword=N_ -o "$work/gegl-vae.pot" -f po/POTFILES)
n=0
for l in $languages; do
  n=$((n + 1))
  msgmerge -q "$root/po/$l.po" "$work/gegl-vae.pot" -o "$work/$l.po"
  stats=$(msgfmt --statistics -o /dev/null "$work/$l.po" 2>&1)
  if echo "$stats" | grep -qE "untranslated|fuzzy"; then
    echo "not ok $n - $l: $stats"
  else
    echo "ok $n - $l: $stats"
  fi
done
