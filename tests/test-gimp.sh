#!/usr/bin/env bash
# Headless GIMP: each PDB procedure of the plug-in on a real photo (with an
# alpha channel) against the same filter run through the gegl program, then
# a missing model whose error must reach the script-fu caller, other
# precisions, selections, the inpainting preview, cancelling.  TAP output.
#   test-gimp.sh PLUGIN MODULE_DIR GEGL_SYSTEM_DIR PHOTO
set -u
plugin=$1 module_dir=$2 system_dir=$3 photo=$4
models=${GEGL_VAE_TEST_MODELS:-$(dirname "$0")/../presets/models} # TAEF2 ships there
echo "1..10"
skip_all () {
  for i in 1 2 3 4 5 6 7 8 9 10; do echo "ok $i # SKIP $1"; done
  exit 0
}
command -v gimp-console-2.10 >/dev/null || skip_all "gimp-console-2.10 is not installed"
[ -f "$models/taef2_encoder.pth" ] || skip_all "real weights taef2_encoder.pth not found in $models (set GEGL_VAE_TEST_MODELS)"
[ -f "$photo" ] || skip_all "python3-skimage's photographs are not installed"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/profile" "$work/plug-ins/gegl-vae"
for d in brushes dynamics fonts gradients palettes patterns tool-presets scripts; do mkdir -p "$work/profile/$d"; done
ln -s "$(readlink -f "$plugin")" "$work/plug-ins/gegl-vae/gegl-vae"
echo "(plug-in-path \"/usr/lib/gimp/2.0/plug-ins:$work/plug-ins\")" > "$work/profile/gimprc"
export GIMP2_DIRECTORY=$work/profile GEGL_PATH=$module_dir:$system_dir GEGL_VAE_MODEL_PATH=$models
# the photo with a half-transparent alpha channel, so that alpha can be checked
gegl "$photo" -o "$work/in.png" -- gegl:opacity value=0.5 2>/dev/null

gimp_batch () {
  timeout 600 gimp-console-2.10 -i -d -f -b "$1" -b '(gimp-quit 0)' > "$work/$2.log" 2>&1
}
run_proc () { # procedure output-name arguments…  (CONVERT may hold PDB calls on image)
  local proc=$1 out=$2
  shift 2
  echo "(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$work/in.png\" \"in.png\")))
                (drawable (car (gimp-image-get-active-layer image))))
          ${CONVERT:-}
          ($proc RUN-NONINTERACTIVE image drawable $*)
          (gimp-file-save RUN-NONINTERACTIVE image drawable \"$work/$out.png\" \"$out.png\")
          (gimp-image-delete image))"
}
script="$(run_proc plug-in-vae-diffusion-preview preview '"taef2"' 0.5 -1 0 0 0 0 16)
$(run_proc plug-in-vae-round-trip round-trip '"taef2"' 0 0)
$(run_proc plug-in-vae-latent-posterize posterize '"taef2"' 8 '""' 1.0)"
gimp_batch "(begin $script)" ok
# the plug-in runs the same filter ops (ui/gimp/vae-gimp-run.c)
reference () { # name op gegl-properties…
  local name=$1
  shift
  # (gegl reports GEGL's own buffer leaks on stdout at exit: not TAP)
  gegl "$work/in.png" -o "$work/$name-ref.png" -- "$@" >/dev/null 2>&1
}
reference preview vae:diffusion-preview strength=0.5 seed=0
reference round-trip vae:round-trip
reference posterize vae:latent-posterize k=8

n=0
for name in preview round-trip posterize; do
  n=$((n + 1))
  if [ ! -f "$work/$name.png" ]; then
    echo "not ok $n - $name: GIMP wrote nothing"; sed 's/^/# /' "$work/ok.log"; continue
  fi
  if grep -q "execution error" "$work/ok.log"; then
    echo "not ok $n - $name: execution error"; sed 's/^/# /' "$work/ok.log"; continue
  fi
  # same size, alpha untouched, colour as the gegl program makes it (ΔE < 1.5)
  if /usr/bin/python3 - "$work/in.png" "$work/$name.png" <<'PY' && gegl-imgcmp "$work/$name.png" "$work/$name-ref.png" > "$work/$name.cmp"
import sys, skimage.io
a, b = skimage.io.imread(sys.argv[1]), skimage.io.imread(sys.argv[2])
assert a.shape == b.shape, (a.shape, b.shape)
assert (a[..., 3] == b[..., 3]).all(), "alpha changed"
PY
  then
    echo "ok $n - $name: same size and alpha; $(tail -1 "$work/$name.cmp")"
  else
    echo "not ok $n - $name"; sed 's/^/# /' "$work/$name.cmp" 2>/dev/null
  fi
done

# a missing model: the caller gets the error, no picture is changed (test 4, 5)
gimp_batch "(begin $(run_proc plug-in-vae-diffusion-preview missing '"/no/such/model.safetensors"' 0.5 -1 0 0 0 0 16))" missing
if grep -q "execution error" "$work/missing.log" && grep -q "/no/such/model.safetensors" "$work/missing.log"; then
  echo "ok 4 - a missing model is an execution error naming the model"
else
  echo "not ok 4 - missing model"; sed 's/^/# /' "$work/missing.log"
fi
if [ ! -f "$work/missing.png" ]; then
  echo "ok 5 - nothing saved after the error"
else
  echo "not ok 5 - a picture was saved after the error"
fi

# other precisions and gray: 32-bit float grayscale, 16-bit half-float RGB (the input is u16)
script="$(CONVERT='(gimp-image-convert-grayscale image) (gimp-image-convert-precision image PRECISION-FLOAT-GAMMA)' \
            run_proc plug-in-vae-diffusion-preview gray-float '"taef2"' 0.3 -1 0 1 0 0 16)
$(CONVERT='(gimp-image-convert-precision image PRECISION-HALF-GAMMA)' \
    run_proc plug-in-vae-round-trip rgb-half '"taef2"' 0 0)"
gimp_batch "(begin $script)" precisions
n=5
for name in gray-float rgb-half; do
  n=$((n + 1))
  if [ -f "$work/$name.png" ] && ! grep -q "execution error" "$work/precisions.log" \
     && /usr/bin/python3 - "$work/in.png" "$work/$name.png" <<'PY'
import sys, skimage.io
a, b = skimage.io.imread(sys.argv[1]), skimage.io.imread(sys.argv[2])
assert a.shape[:2] == b.shape[:2], (a.shape, b.shape)
alpha = lambda im: im[..., -1] / float(2 ** (8 * im.dtype.itemsize) - 1)
assert abs(alpha(a) - alpha(b)).max() <= 1 / 255, "alpha changed"
PY
  then
    echo "ok $n - $name: runs, same size, alpha kept"
  else
    echo "not ok $n - $name"; sed 's/^/# /' "$work/precisions.log"
  fi
done

# a selection: only its inside changes, and that as the filter of the selection's box
script="$(CONVERT='(gimp-image-select-rectangle image CHANNEL-OP-REPLACE 100 60 160 120)' \
            run_proc plug-in-vae-diffusion-preview selection '"taef2"' 0.6 -1 0 3 0 0 16)"
gimp_batch "(begin $script)" selection
box="gegl:crop x=100 y=60 width=160 height=120 gegl:translate x=-100 y=-60"
gegl "$work/in.png" -o "$work/box-ref.png" -- $box vae:diffusion-preview strength=0.6 seed=3 >/dev/null 2>&1
gegl "$work/selection.png" -o "$work/box.png" -- $box >/dev/null 2>&1
if [ -f "$work/selection.png" ] && gegl-imgcmp "$work/box.png" "$work/box-ref.png" >/dev/null 2>&1 &&
   /usr/bin/python3 - "$work/in.png" "$work/selection.png" <<'PY'
import sys, numpy as np, skimage.io
a = skimage.io.imread(sys.argv[1]).astype(float); b = skimage.io.imread(sys.argv[2]).astype(float)
b = b / (257 if b.max() > 255 else 1); a = a / (257 if a.max() > 255 else 1)
inside = np.zeros(a.shape[:2], bool); inside[60:180, 100:260] = True
assert np.abs(a - b)[~inside].max() <= 1, "changed outside the selection"
assert np.abs(a - b)[inside].mean() > 2, "nothing changed inside the selection"
PY
then
  echo "ok 8 - a selection: only its inside changes, as the filter of its box"
else
  echo "not ok 8 - selection"; sed 's/^/# /' "$work/selection.log"
fi

# the inpainting preview with an elliptic selection and the grey fill: the
# selection is the mask (grey inside the ellipse: mean |v − 128| 5.9 against
# 51.8 before), the rest as it was, the corners of the selection's box too
# (test 9)
script="$(CONVERT='(gimp-image-select-ellipse image CHANNEL-OP-REPLACE 100 60 160 120)' \
            run_proc plug-in-vae-inpaint-preview inpaint '"taef2"' 0.3 -1 0 3 0 6 1)"
gimp_batch "(begin $script)" inpaint
if [ -f "$work/inpaint.png" ] && ! grep -q "execution error" "$work/inpaint.log" \
   && /usr/bin/python3 - "$work/in.png" "$work/inpaint.png" <<'PY'
import sys, numpy as np, skimage.io
a = skimage.io.imread(sys.argv[1]).astype(float); b = skimage.io.imread(sys.argv[2]).astype(float)
b = b / (257 if b.max() > 255 else 1); a = a / (257 if a.max() > 255 else 1)
y, x = np.mgrid[:a.shape[0], :a.shape[1]]
r = ((x + 0.5 - 180) / 80) ** 2 + ((y + 0.5 - 120) / 60) ** 2
inside, outside = r < 0.6, r > 1.1
grey_in, grey_was = np.abs(b[..., :3] - 128)[inside].mean(), np.abs(a[..., :3] - 128)[inside].mean()
print(f"# inside the ellipse: mean |v - 128| {grey_in:.1f} (was {grey_was:.1f})")
assert np.abs(a - b)[outside].max() <= 1, "changed outside the selection"
assert grey_in < 0.5 * grey_was, "not grey inside the selection"
PY
then
  echo "ok 9 - inpainting preview: the selection is the mask, nothing outside it changes"
else
  echo "not ok 9 - inpainting preview"; sed 's/^/# /' "$work/inpaint.log"
fi

# Cancel: GIMP 2.10 answers the progress bar's Cancel by killing the plug-in
# (gimp_plug_in_progress_cancel_callback → gimp_plug_in_close (plug_in, TRUE)),
# so the test does the same mid-run and checks that the caller gets an error,
# GIMP goes on, and the picture is as it was (only the final shadow merge
# writes to the drawable).
script="(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$work/in.png\" \"in.png\")))
               (drawable (car (gimp-image-get-active-layer image))))
          (gimp-image-scale image 1800 1200)
          (gimp-file-save RUN-NONINTERACTIVE image drawable \"$work/before.png\" \"before.png\")
          (if (catch #f (plug-in-vae-diffusion-preview RUN-NONINTERACTIVE image drawable \"taef2\" 0.5 -1 0 0 0 0 16) #t)
              (gimp-message \"vae-test: the filter finished\")
              (gimp-message \"vae-test: the filter was stopped\"))
          (gimp-file-save RUN-NONINTERACTIVE image drawable \"$work/after.png\" \"after.png\"))"
gimp_batch "$script" cancel &
batch=$!
killed=no
for _ in $(seq 1 3000); do # wait for the plug-in to be at work (not queried at start-up), then stop it
  if [ -f "$work/before.png" ] && pid=$(pgrep -f "$work/plug-ins/gegl-vae/gegl-vae" | head -1) && [ -n "$pid" ]; then
    sleep 2
    kill -KILL "$pid" 2>/dev/null && killed=yes
    break
  fi
  sleep 0.1
done
wait "$batch"
if [ "$killed" = yes ] && grep -q "the filter was stopped" "$work/cancel.log" && [ -f "$work/after.png" ] \
   && gegl-imgcmp "$work/before.png" "$work/after.png" 2>/dev/null | grep -q "are identical"; then
  echo "ok 10 - cancelled mid-run: the caller gets an error, GIMP goes on, the picture is unchanged"
else
  echo "not ok 10 - cancel (killed: $killed)"; sed 's/^/# /' "$work/cancel.log"
  gegl-imgcmp "$work/before.png" "$work/after.png" 2>&1 | sed 's/^/# /'
fi
