"""What the family golden scripts (make_qwen_goldens.py, make_wan22_goldens.py,
make_dcae_goldens.py, make_hunyuan_goldens.py) share, reference only: the
seeded weights, the test picture and its padding, the files the C tests read
(tests/test-util.c's test_check_goldens), and the names Wan's own checkpoints
give the blocks Qwen-Image and Wan 2.2 share.

Each golden folder holds image.npy (height x width x 3 in [0, 1]), latent.npy
(the posterior mean in the diffusion scale), decode-latent.npy and
decoded.npy (the decoder's raw output of it), all float32, and, for the
causal 3-D VAEs, moments.npy (the encoder's raw output).
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from synth_weights import tensor  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
# the seed core/nets/synth.c fills the full architectures with at test time
SEED = 1


def seeded_tensor(name, like, dtype):
    """The generator's weights for tensor NAME of LIKE's shape, rounded to DTYPE."""
    return torch.tensor(tensor(name, tuple(like.shape), SEED)).to(dtype)


def seeded_state(m, dtype):
    """The generator's weights for M's tensors, rounded to DTYPE."""
    return {k: seeded_tensor(k, v, dtype) for k, v in m.state_dict().items()}


def seeded(m, dtype):
    """M with the generator's weights rounded to DTYPE, run in float64, and those weights."""
    sd = seeded_state(m, dtype)
    m.load_state_dict(sd)
    return m.double().eval(), sd


def count(sd):
    """Tensors and parameters, as the C tests assert them of the full architectures."""
    return len(sd), sum(v.numel() for v in sd.values())


def save_weights(sd, path):
    """A small model as committed: diffusers' names, in the weights' own dtype."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, path)


def image(h, w):
    """A smooth picture with texture, in 8-bit steps (a PNG holds it exactly)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rs = np.random.RandomState(SEED)
    img = np.stack([0.5 + 0.4 * np.sin(x / 7 + c) * np.cos(y / 5 - c) for c in range(3)])
    img += 0.08 * rs.randn(3, h, w)
    return (np.round(np.clip(img, 0, 1) * 255) / 255).astype(np.float32)


def pad(img, f):
    """IMG padded by edge replication to multiples of F, as gegl-vae pads."""
    h, w = img.shape[1:]
    hp, wp = -(-h // f) * f, -(-w // f) * f
    return np.pad(img, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")


def decode_latent(channels, hw, dtype=np.float64):
    """The diffusion latent the goldens decode, rounded to DTYPE before the model sees it."""
    return torch.tensor(np.random.RandomState(SEED + 1).randn(1, channels, *hw).astype(dtype)).double()


def save_goldens(out, img, latent, d, decoded, moments=None):
    """The files the C tests read from OUT (tensors [1, C, H, W]), and a line on what they hold."""
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "image.npy"), img.transpose(1, 2, 0).copy())
    if moments is not None:
        np.save(os.path.join(out, "moments.npy"), moments.numpy().astype(np.float32))
    np.save(os.path.join(out, "latent.npy"), latent.numpy().astype(np.float32))
    np.save(os.path.join(out, "decode-latent.npy"), d.numpy().astype(np.float32))
    np.save(os.path.join(out, "decoded.npy"), decoded.numpy().astype(np.float32))
    print(out, "latent", tuple(latent.shape), "std", float(latent.std()), "decoded", tuple(decoded.shape),
          "range", float(decoded.min()), float(decoded.max()))


@torch.no_grad()
def causal_goldens(m, out, mean, std, image_hw, factor, latent_hw, decode_raw):
    """Goldens of a causal 3-D VAE (Qwen-Image, Wan 2.2) on one frame: its moments and diffusion
    latent ((z - mean) / std) of an IMAGE_HW picture padded to multiples of FACTOR, and
    DECODE_RAW(m, z) (the decoder without diffusers' final clamp) of a LATENT_HW diffusion latent,
    checked to clamp to diffusers' decode.  Returns the model's input and latent, the moments and
    the raw decode."""
    channels = len(mean)
    mean = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    img = image(*image_hw)
    x = torch.tensor(pad(img, factor)).double()[None, :, None] * 2 - 1
    moments = m.encode(x).latent_dist.parameters[:, :, 0]
    latent = (moments[:, :channels] - mean) / std
    d = decode_latent(channels, latent_hw)
    z = (d * std + mean)[:, :, None]
    raw = decode_raw(m, z)[:, :, 0]
    clamped = m.decode(z).sample[:, :, 0]
    assert torch.equal(clamped, raw.clamp(-1, 1))
    save_goldens(out, img, latent, d, raw, moments)
    return x, z, moments, raw


# Wan's residual block (a Sequential) under diffusers' names
WAN_RESIDUAL = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6",
                "conv_shortcut": "shortcut"}


def wan_block(tail):
    """The rest of a name inside a block, in Wan's naming."""
    return ".".join(WAN_RESIDUAL[tail[0]].split(".") + tail[1:]) if tail[0] in WAN_RESIDUAL else ".".join(tail)


def wan_outer_name(key):
    """Wan's own name of diffusers' KEY outside the levels (quant convs, stems, heads, middle),
    which Wan 2.1 (Qwen-Image) and Wan 2.2 name alike; None for a level's tensor."""
    p = key.split(".")
    if p[0] in ("quant_conv", "post_quant_conv"):
        return {"quant_conv": "conv1", "post_quant_conv": "conv2"}[p[0]] + "." + p[1]
    half, rest = p[0], p[1:]
    if rest[0] == "conv_in":
        return f"{half}.conv1.{rest[1]}"
    if rest[0] == "norm_out":
        return f"{half}.head.0.{rest[1]}"
    if rest[0] == "conv_out":
        return f"{half}.head.2.{rest[1]}"
    if rest[0] == "mid_block":
        k = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(rest[1:3])]
        return f"{half}.middle.{k}." + wan_block(rest[3:])
    return None
