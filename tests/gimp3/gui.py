# GIMP 3's own user interface, driven through its accessibility tree
# (AT-SPI) by tests/gimp3/run.sh, with GIMP running on an Xvfb display and a
# photo open:
#   gui.py LANGUAGE GIMP_LOG [SCREENSHOT]
# the three menu entries under Filters → Generic → VAE, each opening GIMP's
# filter dialog built from the op's properties; in the Forward Diffusion
# Preview dialog, the model choice, the strength slider and the seed widget,
# and a strength change that runs the decoder again but not the encoder
# (the passes are counted in GIMP's log: G_MESSAGES_DEBUG=gegl-vae); with
# LANGUAGE zh_CN, the same in Chinese.  Prints "ok NAME" / "not ok NAME".
import os
import re
import subprocess
import sys
import time

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi, GLib  # noqa: E402

LANGUAGE, LOG = sys.argv[1], sys.argv[2]
GIMP_PID = int(os.environ["GIMP_PID"])
SHOT = sys.argv[3] if len(sys.argv) > 3 else None
TEXT = {
    "en": {"items": {"Forward Diffusion Preview…", "VAE Round Trip…", "Latent Posterize…"},
           "titles": ["Forward Diffusion Preview", "VAE Round Trip", "Latent Posterize"],
           "labels": {"Model", "Seed", "Schedule", "Random numbers", "Encode mode",
                      "Snap to a codebook",
                      "Denoising strength: 0 is a plain round trip through the VAE"},
           "taef2": "TAEF2 (tiny, FLUX.2 latents)", "new seed": "New Seed"},
    "zh_CN": {"items": {"前向扩散预览…", "VAE 往返…", "潜变量色调分离…"},
              "titles": ["前向扩散预览", "VAE 往返", "潜变量色调分离"],
              "labels": {"模型", "种子", "噪声调度", "随机数", "编码方式", "吸附到码本",
                         "去噪强度：0 表示仅经过 VAE 往返一次"},
              "taef2": "TAEF2（微型，FLUX.2 潜变量）", "new seed": "新的种子"},
}[LANGUAGE]


def check(name, passed, detail=""):
    print(("ok " if passed else "not ok ") + "gimp3/gui-%s/%s" % (LANGUAGE, name)
          + (" # " + detail if detail else ""), flush=True)


def wait_for(what, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        found = what()
        if found:
            return found
        time.sleep(0.5)
    return None


def walk(node, depth=0):
    yield node
    try:
        if node.get_role_name() in ("table", "tree table", "list") or depth > 40:
            return
        children = [node.get_child_at_index(i) for i in range(node.get_child_count())]
    except GLib.GError as error:
        if "timeout" in str(error):  # GIMP is busy: ask again (patiently)
            raise
        return  # a widget gone meanwhile
    for child in children:
        if child:
            yield from walk(child, depth + 1)


def patiently(query):
    """QUERY's answer: GIMP renders in its main loop, and a query made
    meanwhile times out (AT-SPI's 25 s) until it is done."""
    for _ in range(40):
        try:
            return query()
        except GLib.GError:
            time.sleep(2)
    return query()


def named(node, role, name=None):
    roles = {"push button", "button"} if role == "button" else {role}  # at-spi2 2.56: "button"
    return patiently(lambda: [n for n in walk(node) if n.get_role_name() in roles
                              and (name is None or n.get_name() == name)])


def gimp():
    """GIMP, once its image window (with the menu bar) is there."""
    desktop = Atspi.get_desktop(0)
    for app in [desktop.get_child_at_index(i) for i in range(desktop.get_child_count())]:
        if app and "gimp" in (app.get_name() or "").lower():
            for w in [app.get_child_at_index(j) for j in range(app.get_child_count())]:
                if w and "GIMP" in (w.get_name() or "") and named(w, "menu bar"):
                    return app
    return None


def vae_menus():
    """The menus named VAE, looked up afresh: GIMP rebuilds its menus when
    the filter history changes, and the old entries go dead."""
    return named(app, "menu", "VAE")


def window(app, title):
    for i in range(app.get_child_count()):
        w = app.get_child_at_index(i)
        if w and (w.get_name() or "").startswith(title):
            return w
    return None


def cancel(dialog):
    for button in named(dialog, "button"):
        if button.get_name().startswith(("Cancel", "取消")):
            button.get_action_iface().do_action(0)
            return


def passes(op):
    return len(re.findall(op + ": a pass of the model", open(LOG, errors="replace").read()))


def settled(dialog):
    """Waits until GIMP's main loop answers again (it renders in it)."""
    time.sleep(2)
    return patiently(dialog.get_name)


def gimp_exited():
    """Whether GIMP's process is gone (or a zombie): it then never shows
    its window, and waiting for it would only spend the timeout."""
    try:
        with open("/proc/%d/stat" % GIMP_PID) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# GIMP usually shows its window within a minute; a CI run on a loaded
# machine once took over 300 s (ec127d3's run, the whole GIMP 3 stage 417 s
# instead of 136), so wait up to 600 s and say how long it took.
started = time.time()
app = wait_for(lambda: gimp() or ("exited" if gimp_exited() else None), 600)
if app in (None, "exited"):
    check("gimp-started", False, "%s after %.0f s; the end of its log follows"
          % ("exited" if app else "no window", time.time() - started))
    for line in open(LOG, errors="replace").read().splitlines()[-15:]:
        print("# " + line, flush=True)
    sys.exit(0)
check("gimp-started", True, "%.0f s" % (time.time() - started))

# The menu: GIMP places each op with a gimp:menu-path key; the submenu "VAE"
# is named by the path, its items by gimp:menu-label (translated).
items = {i.get_name() for m in vae_menus() for i in named(m, "menu item")}
paths = {m.get_parent().get_parent().get_name() + " → " + m.get_parent().get_name()
         for m in vae_menus()}
check("menu/filters-generic-vae",
      items == TEXT["items"] and (LANGUAGE != "en" or paths == {"Filters → Generic"}),
      "%s under %s" % (sorted(items), sorted(paths)))

for number, title in enumerate(TEXT["titles"]):
    item = [i for m in vae_menus() for i in named(m, "menu item") if i.get_name().startswith(title)]
    if not item:
        check("dialog/%d-opens" % number, False, "no menu item " + title)
        continue
    decodes = passes("vae:decode")
    item[0].get_action_iface().do_action(0)
    dialog = wait_for(lambda: patiently(lambda: window(app, title)), 600)
    check("dialog/%d-opens" % number, dialog is not None,
          dialog.get_name() if dialog else "no dialog titled " + title)
    if not dialog:
        continue
    # its on-canvas preview renders (one decode) before the dialog is looked at
    wait_for(lambda: passes("vae:decode") > decodes, 600)
    settled(dialog)
    if number > 0:  # the other two: the model choice is there; cancelled
        check("dialog/%d-model-choice" % number,
              [c.get_name() for c in named(dialog, "combo box")].count(TEXT["taef2"]) == 1)
        cancel(dialog)
        wait_for(lambda: patiently(lambda: window(app, title)) is None, 120)
        continue

    # Forward Diffusion Preview (the first): one encode and one decode so far,
    # and GIMP's widgets for the op's properties
    first = (passes("vae:encode"), passes("vae:decode"))
    combos = named(dialog, "combo box")
    model = [c for c in combos if c.get_name() == TEXT["taef2"]]
    choices = [i for c in model for i in named(c, "menu item")]
    check("dialog/model-choice-of-installed-presets", len(model) == 1 and len(choices) == 2,
          "the installed preset and 'another file' (%d entries)" % len(choices))
    buttons = [b.get_name() for b in named(dialog, "button")]
    check("dialog/seed-widget", TEXT["new seed"] in buttons, "buttons %s" % buttons)
    texts = patiently(lambda: {t for n in walk(dialog)  # names (labels, combo labels), tooltips
                               for t in (n.get_name(), n.get_description())})
    missing = {label for label in TEXT["labels"] if not any(label in (t or "") for t in texts)}
    check("dialog/labels", not missing, "missing %s" % sorted(missing) if missing else
          "found %s" % sorted(TEXT["labels"]))

    sliders = patiently(lambda: [s for s in named(dialog, "spin button") if s.get_value_iface()
                                 and abs(s.get_value_iface().get_current_value() - 0.5) < 1e-9])
    if sliders:
        sliders[0].get_value_iface().set_current_value(0.8)
    wait_for(lambda: passes("vae:decode") >= first[1] + 1, 600)
    settled(dialog)
    after = (passes("vae:encode"), passes("vae:decode"))
    check("dialog/strength-change-reruns-decode-only",
          bool(sliders) and first == (1, 1) and after == (1, 2),
          "encode, decode passes: %s after opening, %s after strength 0.5 → 0.8" % (first, after))
    if SHOT:  # split view; no window manager: the dialog is moved beside the canvas by hand
        for b in named(dialog, "check box", "Split view"):
            b.get_action_iface().do_action(0)
        for args in (["--name", "– GIMP$", "windowsize", "%@", "920", "900", "windowmove", "%@",
                      "0", "0"],
                     ["--name", "^" + TEXT["titles"][0], "windowmove", "%@", "925", "0"]):
            subprocess.run(["xdotool", "search"] + args, check=False)
        subprocess.run(["xdotool", "mousemove", "1479", "899"], check=False)
        settled(dialog)
        time.sleep(5)
        subprocess.run(["import", "-window", "root", SHOT], check=False)
    cancel(dialog)
