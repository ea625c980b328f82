#!/usr/bin/python3
"""The 24 inputs of the runner's batch tests (tests/test-run.sh, tools/ci-batch.sh):
python3-skimage's photographs scaled down, crops of them at odd sizes and offsets, a JPEG, a
picture with alpha, a palette picture, a grayscale one, a 16-bit one and one corrupt PNG (cut in
the middle of its data), all small so that a run over them takes seconds.

    make-batch-inputs.py SKIMAGE_DATA OUT_DIR
"""
import os
import sys

import numpy as np
from PIL import Image

SIDE = 64  # the long side of the scaled photographs

data, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


def photo(name):
    return Image.open(os.path.join(data, name))


def scaled(image):
    w, h = image.size
    f = SIDE / max(w, h)
    return image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)


for name in ["astronaut.png", "chelsea.png", "coffee.png", "ihc.png", "motorcycle_left.png",
             "phantom.png", "color.png", "horse.png"]:
    scaled(photo(name)).save(os.path.join(out, "photo-" + name))
scaled(photo("rocket.jpg")).save(os.path.join(out, "photo-rocket.jpg"), quality=90)
scaled(photo("green_palette.png")).save(os.path.join(out, "palette.png"))
scaled(photo("camera.png")).save(os.path.join(out, "gray-camera.png"))

# crops: sizes that are and are not multiples of the model's factor, at odd offsets
crops = [("astronaut.png", 100, 40, 64, 64), ("astronaut.png", 201, 33, 77, 53),
         ("chelsea.png", 140, 60, 80, 48), ("chelsea.png", 3, 7, 33, 71),
         ("coffee.png", 250, 100, 72, 40), ("coffee.png", 0, 0, 17, 17),
         ("ihc.png", 300, 300, 48, 80), ("motorcycle_left.png", 400, 200, 70, 50),
         ("rocket.jpg", 250, 150, 48, 48), ("phantom.png", 150, 150, 65, 63),
         ("horse.png", 100, 100, 40, 56)]
for i, (name, x, y, w, h) in enumerate(crops):
    photo(name).crop((x, y, x + w, y + h)).save(
        os.path.join(out, "crop-%02d-%s.png" % (i, name.split(".")[0])))

# 16 bits per sample (Pillow writes them for grey only)
camera = np.asarray(scaled(photo("camera.png")), dtype=np.uint16) * 257
Image.fromarray(camera, "I;16").save(os.path.join(out, "deep-camera-16bit.png"))

# corrupt: a real PNG cut in the middle of its image data
whole = open(os.path.join(out, "photo-chelsea.png"), "rb").read()
open(os.path.join(out, "corrupt-chelsea.png"), "wb").write(whole[: len(whole) // 2])

assert len(os.listdir(out)) == 24, sorted(os.listdir(out))
