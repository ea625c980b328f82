# The cached re-render of a filter after a strength (or seed) change against
# its first render, through the GEGL API as GIMP 3 drives it (one node whose
# properties change; GEGL 0.4.62 in the Debian 13 root):
#   python3 tests/gimp3/bench.py PHOTO [SIZE]      (GEGL_PATH, GEGL_VAE_MODEL_PATH set)
# The photo is scaled to SIZE² (1024); each figure is the median of ROUNDS
# runs, each run a fresh node: first render, strength 0.5 → 0.7, seed → 7,
# then the encode mode changed (a control: that one must encode again).
import resource
import statistics
import sys
import time

import gi

gi.require_version("Gegl", "0.4")
from gi.repository import Gegl  # noqa: E402

ROUNDS = 3
photo, size = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1024
Gegl.init(None)

graph = Gegl.Node()
load = graph.create_child("gegl:load")
load.set_property("path", photo)
scale = graph.create_child("gegl:scale-size")
scale.set_property("x", float(size))
scale.set_property("y", float(size))
load.link(scale)
picture = Gegl.Buffer.new("R'G'B'A float", 0, 0, size, size)
sink = graph.create_child("gegl:write-buffer")
sink.set_property("buffer", picture)
scale.link(sink)
sink.process()

figures = {"first render": [], "strength 0.5 → 0.7": [], "seed 0 → 7": [],
           "encode mode mean → sample (encodes again)": []}
for _ in range(ROUNDS):
    g = Gegl.Node()
    src = g.create_child("gegl:buffer-source")
    src.set_property("buffer", picture)
    f = g.create_child("vae:diffusion-preview")
    out = Gegl.Buffer.new("R'G'B'A float", 0, 0, size, size)
    dst = g.create_child("gegl:write-buffer")
    dst.set_property("buffer", out)
    src.link(f)
    f.link(dst)
    for name, change in zip(figures, [None, ("strength", 0.7), ("seed", 7), ("mode", 1)]):
        if change:
            f.set_property(*change)
        t = time.perf_counter()
        dst.process()
        figures[name].append(time.perf_counter() - t)
    assert f.get_property("error") == "", f.get_property("error")

first = statistics.median(figures["first render"])
for name, times in figures.items():
    t = statistics.median(times)
    print("%-44s %6.2f s  (%.2f× the first render; runs: %s)"
          % (name, t, t / first, ", ".join("%.2f" % x for x in times)))
print("peak RSS %d MB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))
