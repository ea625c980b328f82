# The VAE filters through Gimp.DrawableFilter, run by tests/gimp3/run.sh in
# gimp-console-3.0's Python-fu (exec'd, with WORK set): reads WORK/in.png
# (a photo with a half-transparent alpha), writes WORK/*.png for run.sh to
# compare with the gegl program, and prints "ok NAME" / "not ok NAME" for
# what it checks itself in GIMP.
import os
import sys
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

WORK = os.environ["WORK"]


def check(name, passed, detail=""):
    print(("ok " if passed else "not ok ") + "gimp3/" + name + (" # " + detail if detail else ""),
          flush=True)


def load(name="in.png"):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE,
                          Gio.File.new_for_path(os.path.join(WORK, name)))


def save(image, name):
    # an export renders the layers with their filters
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image,
                   Gio.File.new_for_path(os.path.join(WORK, name + ".png")), None)


def pixels(layer):
    """The layer as R'G'B'A u8 bytes (gray layers are converted)."""
    rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    return layer.get_buffer().get(rect, 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE)


def alpha(data):
    return data[3::4]


def new_filter(layer, op, **settings):
    f = Gimp.DrawableFilter.new(layer, op, "gegl-vae test")
    config = f.get_config()
    for name, value in settings.items():
        config.set_property(name.replace("_", "-"), value)
    f.update()
    return f


def run(name, body):
    try:
        body()
    except Exception:
        check(name, False, traceback.format_exc().replace("\n", " | "))


# Each filter appended as a non-destructive filter, then merged: the layer
# keeps its alpha; WORK/<op>.png is compared with the gegl program's.
FILTERS = {
    "vae:diffusion-preview": {"strength": 0.5, "seed": 3},
    "vae:round-trip": {},
    "vae:latent-posterize": {"k": 6, "seed": 2},
}


def each_filter():
    for op, settings in FILTERS.items():
        image = load()
        layer = image.get_layers()[0]
        before = pixels(layer)
        f = new_filter(layer, op, **settings)
        layer.append_filter(f)
        kept = [g.get_id() for g in layer.get_filters()] == [f.get_id()]
        layer.merge_filters()
        after = pixels(layer)
        check(op + "/non-destructive-then-merged", kept and layer.get_filters() == [],
              "one filter on the layer, none after the merge")
        check(op + "/alpha-kept", alpha(after) == alpha(before) and after != before)
        save(image, op.replace("vae:", ""))
        image.delete()


# Editable: a strength change on the filter that stays on the layer changes
# what the layer shows (exports a, b), the merge keeps the last (c).
def editable():
    image = load()
    layer = image.get_layers()[0]
    f = new_filter(layer, "vae:diffusion-preview", strength=0.3, seed=3)
    layer.append_filter(f)
    save(image, "edit-a")
    f.get_config().set_property("strength", 0.8)
    f.update()
    save(image, "edit-b")
    still = [g.get_id() for g in layer.get_filters()] == [f.get_id()]
    layer.merge_filters()
    save(image, "edit-c")
    check("editable/filter-stays-until-merged", still and layer.get_filters() == [])
    image.delete()


# A selection: only its inside changes (the filter sees the selection's
# bounding box, as the 2.10 plug-in did); run.sh compares the inside.
def selection():
    image = load()
    layer = image.get_layers()[0]
    w = layer.get_width()
    before = pixels(layer)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 40, 30, 100, 80)
    layer.append_filter(new_filter(layer, "vae:round-trip"))
    layer.merge_filters()
    Gimp.Selection.none(image)
    after = pixels(layer)
    inside = outside = 0
    for i in range(0, len(before), 4):
        x, y = (i // 4) % w, (i // 4) // w
        changed = before[i:i + 4] != after[i:i + 4]
        if 40 <= x < 140 and 30 <= y < 110:
            inside += changed
        else:
            outside += changed
    check("selection/only-inside-changes", outside == 0 and inside > 100 * 80 // 2,
          "%d pixels changed inside, %d outside" % (inside, outside))
    save(image, "selection")
    image.delete()


# A model the filter cannot use: the layer is left as it was (not blank, no
# crash: the next case still runs); run.sh finds GIMP's message in its log.
def missing_model():
    image = load()
    layer = image.get_layers()[0]
    before = pixels(layer)
    f = new_filter(layer, "vae:diffusion-preview", model="/no/such/model.safetensors")
    layer.append_filter(f)
    layer.merge_filters()
    check("missing-model/layer-unchanged", pixels(layer) == before)
    image.delete()


# Other precisions: a 32-bit float grayscale image; size and alpha kept.
def gray_float():
    image = load()
    image.convert_grayscale()
    image.convert_precision(Gimp.Precision.FLOAT_NON_LINEAR)
    layer = image.get_layers()[0]
    before = pixels(layer)
    layer.append_filter(new_filter(layer, "vae:latent-posterize", k=4))
    layer.merge_filters()
    after = pixels(layer)
    check("gray-float/filtered-alpha-kept", alpha(after) == alpha(before) and after != before)
    image.delete()


for name, case in [("each-filter", each_filter), ("editable", editable),
                   ("selection", selection), ("missing-model", missing_model),
                   ("gray-float", gray_float)]:
    run(name, case)
print("filters.py: done", file=sys.stderr, flush=True)
