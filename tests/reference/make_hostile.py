#!/usr/bin/python3
"""Small PyTorch checkpoints, good and hostile, for the loader tests.

good.pth          torch.save of a tiny state dict (F16, F32 and a strided view)
good-deflate.pth  the same members, deflated
good-zip64.pth    the same members with zip64 extra fields and end records
nested.ckpt       {"state_dict": …, "epoch": 3} with a first_stage_model. prefix
legacy.pth        the pre-1.6 non-zip format
evil-os-system.pth, evil-eval.pth, evil-subprocess.pth
                  data.pkl names os.system / builtins.eval (STACK_GLOBAL) /
                  subprocess.Popen; a loader that ran them would create the
                  /tmp/gegl-vae-PWNED
outside.pth       a central-directory entry whose local header lies past the end
past-end.pth      a member whose data runs past the end of the archive
bad-crc.pth       one tensor byte flipped

Tensor views written by hand (torch.save would never write them):
expand.pth        a legitimate stride-0 view: 4 copies of one value (loads)
huge-view.pth     a stride-0 view of 2**62 elements over one float in 500 bytes
offset-view.pth   an empty view at storage offset 2**61
repeat-view.pth   a stride-0 view of 2**28 floats (1 GiB from one float)
wrap-view.pth     a view at offset 1 with stride -1: its last element's index,
                  1 + (2 - 1) * (2**64 - 1), wraps to 0 in unchecked unsigned arithmetic
stride-wrap-view.pth  a stride of 2**62 over 5 elements: (5 - 1) * 2**62 wraps to 0
pickle-bomb.pth   a deflated data.pkl of 64 MiB of NONE opcodes (65 KB compressed)
"""
import io
import os
import struct
import sys
import zipfile
import zlib

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "hostile")


def state():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {"a.weight": torch.tensor([[1.5, -2.0, 65504.0], [6e-8, 0.0, -0.0]], dtype=torch.float16),
            "b.bias": torch.tensor([0.25, 1e-30, -3.0, 7.0]),
            "c.weight": t.t(),                        # strided view: stride (1, 4)
            "d.weight": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)}


def members(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def rezip(src, dst, compression):
    with zipfile.ZipFile(dst, "w", compression) as z:
        for name, data in members(src):
            z.writestr(name, data)


def write_zip64(dst, items):
    """Stored members; every central entry carries a zip64 extra field."""
    out = io.BytesIO()
    central = []
    for name, data in items:
        off = out.tell()
        n = name.encode()
        crc = zlib.crc32(data)
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 0, 0, 0, crc, len(data), len(data), len(n), 0))
        out.write(n + data)
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 0, 0, 0, crc,
                                   0xFFFFFFFF, 0xFFFFFFFF, len(n), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + n + extra)
    cd_off = out.tell()
    for c in central:
        out.write(c)
    cd_size = out.tell() - cd_off
    z64 = out.tell()
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, len(items), len(items), cd_size, cd_off))
    out.write(struct.pack("<IIQI", 0x07064b50, 0, z64, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    with open(dst, "wb") as f:
        f.write(out.getvalue())


def with_pickle(src, dst, pkl):
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for name, data in members(src):
            z.writestr(name, pkl if name.endswith("/data.pkl") else data)


def pickle_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)  # as pickle's LONG1
    return b"\x8a" + bytes([len(raw)]) + raw


def pickle_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def view_pickle(views):
    """OrderedDict of tensors; each view: (name, key, numel, offset, shape, stride)."""
    ints = lambda t: b"(" + b"".join(pickle_int(v) for v in t) + b"t"
    out = b"\x80\x02ccollections\nOrderedDict\n)R("
    for name, key, numel, offset, shape, stride in views:
        out += pickle_str(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(" + pickle_str("storage") + b"ctorch\nFloatStorage\n" + pickle_str(key)
        out += pickle_str("cpu") + pickle_int(numel) + b"tQ"
        out += pickle_int(offset) + ints(shape) + ints(stride) + b"\x89ccollections\nOrderedDict\n)RtR"
    return out + b"u."


def write_views(dst, views, storages):
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", view_pickle(views))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for key, values in storages.items():
            z.writestr(f"archive/data/{key}", struct.pack(f"<{len(values)}f", *values))


def hostile_views(p):
    write_views(p("expand.pth"), [("w", "0", 1, 0, (4,), (0,))], {"0": [2.5]})
    write_views(p("huge-view.pth"), [("latent_tensor", "0", 1, 0, (2**62,), (0,))], {"0": [1.0]})
    write_views(p("offset-view.pth"), [("w", "0", 1, 2**61, (0,), (1,))], {"0": [1.0]})
    write_views(p("repeat-view.pth"), [("w", "0", 1, 0, (2**28,), (0,))], {"0": [1.0]})
    write_views(p("wrap-view.pth"), [("w", "0", 2, 1, (2,), (-1,))], {"0": [1.0, 2.0]})
    write_views(p("stride-wrap-view.pth"), [("w", "0", 2, 0, (5,), (2**62,))], {"0": [1.0, 2.0]})
    with zipfile.ZipFile(p("pickle-bomb.pth"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02" + b"N" * (64 << 20) + b".")


def main():
    os.makedirs(OUT, exist_ok=True)
    p = lambda n: os.path.join(OUT, n)
    torch.save(state(), p("good.pth"))
    rezip(p("good.pth"), p("good-deflate.pth"), zipfile.ZIP_DEFLATED)
    write_zip64(p("good-zip64.pth"), members(p("good.pth")))
    torch.save({"state_dict": {"first_stage_model." + k: v for k, v in state().items()}, "epoch": 3,
                "lr": 0.5, "tags": ["x", None, True]}, p("nested.ckpt"))
    torch.save(state(), p("legacy.pth"), _use_new_zipfile_serialization=False)

    pwned = "/tmp/gegl-vae-PWNED"
    touch = f"touch {pwned}"
    # protocol 2: GLOBAL os.system, REDUCE ("touch …",)
    evil_system = b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(touch)) + touch.encode() + b"\x85R."
    # protocol 4 style: STACK_GLOBAL builtins.eval
    code = f"__import__('os').system('{touch}')".encode()
    evil_eval = (b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93X" + struct.pack("<I", len(code)) + code + b"\x85R.")
    evil_popen = (b"\x80\x02}q\x00(X\x01\x00\x00\x00ac\x00\x00\x00csubprocess\nPopen\n"
                  b"X\x05\x00\x00\x00touchX" + struct.pack("<I", len(pwned)) + pwned.encode() + b"\x86\x85Ru.")
    evil_popen = evil_popen.replace(b"X\x01\x00\x00\x00ac\x00\x00\x00c", b"X\x01\x00\x00\x00ac")
    with_pickle(p("good.pth"), p("evil-os-system.pth"), evil_system)
    with_pickle(p("good.pth"), p("evil-eval.pth"), evil_eval)
    with_pickle(p("good.pth"), p("evil-subprocess.pth"), evil_popen)

    good = bytearray(open(p("good.pth"), "rb").read())
    eocd = good.rfind(b"PK\x05\x06")
    cd = struct.unpack_from("<I", good, eocd + 16)[0]
    outside = bytearray(good)
    struct.pack_into("<I", outside, cd + 42, len(good) + 1000)        # first entry's local header offset
    open(p("outside.pth"), "wb").write(outside)
    past = bytearray(good)
    n = struct.unpack_from("<H", good, cd + 28)[0]
    struct.pack_into("<I", past, cd + 20, len(good) * 2)               # compressed size
    struct.pack_into("<I", past, cd + 24, len(good) * 2)
    open(p("past-end.pth"), "wb").write(past)
    crc = bytearray(good)
    data0 = bytes(good).find(bytes(torch.tensor([0.25], dtype=torch.float32).numpy().tobytes()))
    crc[data0] ^= 0x01
    open(p("bad-crc.pth"), "wb").write(crc)
    hostile_views(p)
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(p(f)))
    assert n > 0


if __name__ == "__main__":
    main()
