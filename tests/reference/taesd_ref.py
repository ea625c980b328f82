"""PyTorch reference for the TAESD family (written from VAE-SPEC.md).

Used only to make golden files; never a runtime dependency.  The layer
layout is the same index-keyed Sequential as the original .pth files, so
state dicts load with strict=True.
"""
import torch
import torch.nn as nn


def conv(n_in, n_out, **kw):
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kw)


class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, n_in, n_out, pool=False):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(),
                                  conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        # taef2: a 1x1 expansion, GroupNorm over the whole image, 1x1 back, added to x first
        self.pool = (nn.Sequential(nn.Conv2d(n_in, 4 * n_in, 1, bias=False), nn.GroupNorm(4, 4 * n_in),
                                   nn.ReLU(), nn.Conv2d(4 * n_in, n_in, 1, bias=False)) if pool else None)

    def forward(self, x):
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def encoder(z, pool_last=False, f32=False):
    B = lambda last=False: Block(64, 64, pool=pool_last and last)
    if f32:
        stem = [conv(3, 32, stride=2), nn.ReLU(), conv(32, 64, stride=2), nn.ReLU(), B()]
    else:
        stem = [conv(3, 64), B()]
    return nn.Sequential(*stem,
                         conv(64, 64, stride=2, bias=False), B(), B(), B(),
                         conv(64, 64, stride=2, bias=False), B(), B(), B(),
                         conv(64, 64, stride=2, bias=False), B(True), B(True), B(True),
                         conv(64, z))


def decoder(z, pool_first=False):
    B = lambda first=False: Block(64, 64, pool=pool_first and first)
    return nn.Sequential(Clamp(), conv(z, 64), nn.ReLU(),
                         B(True), B(True), B(True), nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
                         B(), B(), B(), nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
                         B(), B(), B(), nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
                         B(), conv(64, 3))


def patchify(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)


def unpatchify(x):
    n, c, h, w = x.shape
    return x.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)


def load_taef2(models_dir, dtype=torch.float64):
    enc, dec = encoder(32, pool_last=True), decoder(32, pool_first=True)
    enc.load_state_dict(torch.load(f"{models_dir}/taef2_encoder.pth", map_location="cpu"))
    dec.load_state_dict(torch.load(f"{models_dir}/taef2_decoder.pth", map_location="cpu"))
    return enc.to(dtype).eval(), dec.to(dtype).eval()
