"""The seeded weight generator of core/synth.c, in numpy (see its comment)."""
import numpy as np

M = np.uint64


def splitmix64(x):
    with np.errstate(over="ignore"):
        z = x + M(0x9E3779B97F4A7C15)
        z = (z ^ (z >> M(30))) * M(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> M(27))) * M(0x94D049BB133111EB)
    return z ^ (z >> M(31))


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def tensor(name, shape, seed):
    n = int(np.prod(shape)) if len(shape) else 1
    stream = M(fnv1a64(name)) ^ splitmix64(M(seed))
    with np.errstate(over="ignore"):
        j = stream + np.arange(n, dtype=np.uint64)
    u = (splitmix64(j) >> M(40)).astype(np.float32) * np.float32(1.0 / 8388608.0) - np.float32(1.0)
    base, amp = np.float32(0.0), np.float32(0.1)
    if name.endswith(".weight") and len(shape) >= 2:
        amp = np.float32(np.sqrt(3.0 / float(np.prod(shape[1:]))))
    elif (name.endswith(".weight") and "norm" in name) or name.endswith(".gamma"):
        base = np.float32(1.0)
    elif name.endswith("running_var"):
        base, amp = np.float32(1.0), np.float32(0.5)
    return (base + amp * u).astype(np.float32).reshape(shape)
