#!/usr/bin/env bash
# The GIMP 3 suite, run inside the Debian 13 root (tools/ci-gimp3.sh puts it
# there): GIMP 3.0.4 and GEGL 0.4.62 with our module built against them.
#   tests/gimp3/run.sh BUILD PHOTO [SCREENSHOT]
# Prints one line "ok NAME" or "not ok NAME" (with "# detail") per check:
#   - our GEGL-API tests against GEGL 0.4.62 (test-gegl-api, test-i18n);
#   - headless GIMP (gimp-console-3.0 -i, Python-fu, filters.py): each filter
#     through Gimp.DrawableFilter equals the gegl program's result
#     (gegl-imgcmp: no pixel off by ΔE 1.5 or more, i.e. 8-bit rounding), stays
#     editable until merged, keeps alpha, filters only the selection; a
#     missing model leaves the layer as it was and GIMP prints why;
#   - the README's Python-fu and Script-Fu examples, as written there;
#   - GIMP's user interface on Xvfb through its accessibility tree (gui.py),
#     in English and in Chinese; SCREENSHOT, when given, receives the
#     Forward Diffusion Preview dialog with its on-canvas preview.
# PARTS (default "api console gui") runs some of the three groups only.
set -u
build=$(realpath "$1") photo=$2 shot=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
started=()
cleanup () {
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do kill "${started[i]}" 2>/dev/null; done
  sleep 1
  for pid in "${started[@]}"; do kill -9 "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
export WORK=$work GIMP3_DIRECTORY=$work/profile OMP_WAIT_POLICY=passive
export GEGL_PATH=$build/operations:$(pkg-config --variable=pluginsdir gegl-0.4)
export GEGL_VAE_MODEL_PATH=${GEGL_VAE_MODEL_PATH:-/models} GEGL_VAE_LOCALEDIR=$build/po
export G_MESSAGES_DEBUG=gegl-vae # one line per pass of a model, counted by gui.py
mkdir -p "$work/profile"
# no first-run dialogs: GIMP's welcome, the colour profile question
printf '(config-version "3.0.4")\n(show-welcome-dialog no)\n(color-profile-policy keep)\n(check-updates no)\n' \
  > "$work/profile/gimprc"

result () { # name status detail
  if [ "$2" -eq 0 ]; then echo "ok gimp3/$1${3:+ # $3}"; else echo "not ok gimp3/$1${3:+ # $3}"; fi
}
if [ ! -f "$GEGL_VAE_MODEL_PATH/taef2_encoder.pth" ]; then
  result setup 1 "no TAEF2 weights in $GEGL_VAE_MODEL_PATH"
  exit 0
fi

parts=" ${PARTS:-api console gui} "
part () { [[ $parts == *" $1 "* ]]; }

# our GEGL-API tests against GEGL 0.4.62 (TAP, renamed)
part api && for t in test-gegl-api test-i18n; do
  GEGL_VAE_MODEL_PATH= "$build/tests/$t" --tap 2> "$work/$t.log" |
    sed -nE 's@^(ok|not ok) ([0-9]+ )?/?(.*)@\1 gimp3/gegl-0.4.62/\3@p'
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || result "gegl-0.4.62/$t" 1 "exit status $status"
done

# the photo with a half-transparent alpha, at a size off TAEF2's 16-pixel grid
gegl "$photo" -o "$work/in.png" -- gegl:scale-size-keep-aspect x=226 gegl:opacity value=0.5 \
  > /dev/null 2>&1
cp "$work/in.png" "$work/photo.png" # the README's examples read photo.png

reference () { # name input gegl-ops…  (the gegl program's result)
  local name=$1 input=$2
  shift 2
  gegl "$input" -o "$work/$name-ref.png" -- "$@" > /dev/null 2>&1
}
same () { # check-name picture reference: gegl-imgcmp's verdict, its max ΔE as detail
  local out
  out=$(gegl-imgcmp "$2" "$3" 2>&1)
  result "$1" $? "$(echo "$out" | grep -oE 'max [^:]*: *[0-9.]+|differ in size.*' | head -1 |
                     sed 's/max [^:]*: */max ΔE /')"
}

console () {
  # headless GIMP: filters.py, then the README's Python-fu example
  readme_block () { # the fenced block after the README marker <!-- gimp3-test: NAME -->
    awk -v m="<!-- gimp3-test: $1 -->" 'found && /^```/ { if (inside) exit; inside = 1; next }
         $0 == m { found = 1 } inside { print }' "$repo/README.md"
  }
  readme_block python-fu > "$work/readme.py"
  readme_block script-fu > "$work/readme.scm"
  (cd "$work" && timeout 1200 gimp-console-3.0 -i --batch-interpreter python-fu-eval \
     -b "exec(open('$here/filters.py').read())" \
     -b "import os; os.chdir('$work'); exec(open('readme.py').read())" --quit) \
    > "$work/console.out" 2> "$work/console.log"
  grep -E '^(not )?ok ' "$work/console.out"
  grep -q "filters.py: done" "$work/console.log"
  result console/finished $? "gimp-console-3.0 ran filters.py to its end"

  reference diffusion-preview "$work/in.png" vae:diffusion-preview strength=0.5 seed=3
  reference round-trip "$work/in.png" vae:round-trip
  reference latent-posterize "$work/in.png" vae:latent-posterize k=6 seed=2
  for f in diffusion-preview round-trip latent-posterize; do
    same "vae:$f/same-as-gegl" "$work/$f.png" "$work/$f-ref.png"
  done
  reference edit-a "$work/in.png" vae:diffusion-preview strength=0.3 seed=3
  reference edit-b "$work/in.png" vae:diffusion-preview strength=0.8 seed=3
  same editable/strength-0.3-as-gegl "$work/edit-a.png" "$work/edit-a-ref.png"
  same editable/strength-0.8-as-gegl "$work/edit-b.png" "$work/edit-b-ref.png"
  ! gegl-imgcmp "$work/edit-a.png" "$work/edit-b.png" > /dev/null 2>&1
  result editable/the-layer-changes $? "strength 0.3 and 0.8 differ"
  same editable/merged-as-shown "$work/edit-c.png" "$work/edit-b.png"
  # the selection's inside equals the gegl program's filter of that box
  reference selection-inside "$work/in.png" gegl:crop x=40 y=30 width=100 height=80 \
    gegl:translate x=-40 y=-30 vae:round-trip
  reference selection-crop "$work/selection.png" gegl:crop x=40 y=30 width=100 height=80 \
    gegl:translate x=-40 y=-30
  same selection/inside-as-gegl "$work/selection-crop-ref.png" "$work/selection-inside-ref.png"
  grep -q "vae:diffusion-preview: model '/no/such/model.safetensors'" "$work/console.log"
  result missing-model/gimp-says-why $? "GIMP's message names the model"
  reference readme-python "$work/photo.png" vae:diffusion-preview strength=0.6 seed=7
  same readme/python-fu "$work/preview.png" "$work/readme-python-ref.png"

  # the README's Script-Fu example
  rm -f "$work/preview.png"
  (cd "$work" && timeout 600 gimp-console-3.0 -i --batch-interpreter plug-in-script-fu-eval \
     -b "$(cat "$work/readme.scm")" --quit) > "$work/scheme.log" 2>&1
  reference readme-scheme "$work/photo.png" vae:diffusion-preview strength=0.4 seed=7
  same readme/script-fu "$work/preview.png" "$work/readme-scheme-ref.png"
}
part console && console

# GIMP's user interface: Xvfb, a session bus and the accessibility bus
gui () { # language picture [screenshot]
  local lang=$1 picture=$2 display=
  # Xvfb picks a free display itself and writes its number once it accepts
  # clients (-displayfd), so neither a display that another server holds nor
  # one not yet listening can fail GIMP; -noreset keeps it from resetting
  # when its last client leaves (the accessibility bus launcher sets a root
  # window property and goes): a GIMP connecting during that reset was
  # refused ("Cannot open display") and the checks waited for nothing
  : > "$work/display"
  Xvfb -displayfd 3 -noreset -screen 0 1480x900x24 3> "$work/display" > "$work/xvfb.log" 2>&1 &
  started+=($!)
  for _ in $(seq 60); do
    display=$(cat "$work/display")
    # its number, or an Xvfb that has exited: no use waiting longer
    if [ -n "$display" ] || ! kill -0 "${started[-1]}" 2> /dev/null; then break; fi
    sleep 0.5
  done
  if [ -z "$display" ]; then
    echo "not ok gimp3/gui-$lang/xvfb # no display: $(tail -2 "$work/xvfb.log" | tr '\n' ' ')"
    kill "${started[-1]}" 2> /dev/null
    wait "${started[-1]}" 2> /dev/null
    return
  fi
  # a GIMP that never shows its window fails its checks one by one, 300 s
  # each: 900 s in all bounds the stage instead
  DISPLAY=:$display LANG=$([ "$lang" = en ] && echo C.UTF-8 || echo "$lang.UTF-8") LANGUAGE=$lang \
    timeout -k 10 900 dbus-run-session -- bash -c '
      /usr/libexec/at-spi-bus-launcher --launch-immediately > /dev/null 2>&1 &
      sleep 1
      gimp-3.0 --no-splash "$1" > "$2" 2>&1 &
      gimp=$!
      GIMP_PID=$gimp python3 "$3" "$4" "$2" $5
      kill $gimp; sleep 2; kill -9 $gimp 2> /dev/null' \
    gui "$picture" "$work/gui-$lang.log" "$here/gui.py" "$lang" "${3:-}" 2> "$work/gui-$lang.py.log" ||
    [ $? != 124 ] || echo "not ok gimp3/gui-$lang/finished # stopped after 900 s"
  grep -q Traceback "$work/gui-$lang.py.log" && sed 's/^/# /' "$work/gui-$lang.py.log"
  kill "${started[-1]}" 2> /dev/null
  wait "${started[-1]}" 2> /dev/null
}
if part gui; then
  gui en "$photo" "$shot" # the photo at its size for the screenshot
  gui zh_CN "$work/in.png"
fi
exit 0
