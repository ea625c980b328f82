#!/usr/bin/python3
"""Golden files for VQ models (issue 26), made in float64 with diffusers' own
VQModel and with the seed's small VQ-VAE, written out below (reference only;
run with Debian's python3-torch and diffusers 0.31).

The seed's VQ-VAE (van den Oord et al. 2017, in the layout of the well-known
PyTorch notebook its state dict names come from: `_encoder`, `_pre_vq_conv`,
`_vq_vae._embedding`, `_decoder`):
  encoder   _conv_1 4×4 s2 p1 (3 → H/2), ReLU, _conv_2 4×4 s2 p1 (H/2 → H), ReLU,
            _conv_3 3×3 p1 (H → H), residual stack
  stack     L × Residual, then ReLU; Residual(x) = x + _block(x) with
            _block = ReLU(inplace) · 3×3 p1 no bias (H → R) · ReLU(inplace) ·
            1×1 no bias (R → H).  The in-place ReLU at the head of _block
            rectifies x itself before the sum reads it, so a block computes
            relu(x) + _block(x) (checked below against the module).
  _pre_vq_conv  1×1 (H → D), the pre-quantisation latent at 1/4
  _vq_vae   nn.Embedding(K, D) codebook (`_vq_vae._embedding.weight`); the EMA
            variant adds `_ema_cluster_size` [K] and `_ema_w` [K, D], which
            only training reads.  Nearest entry by ‖x‖² + ‖e‖² − 2x·e (argmin:
            ties to the lowest index); perplexity exp(−Σ p·log(p + 1e-10)) of
            the mean one-hot usage.
  decoder   _conv_1 3×3 p1 (D → H), residual stack, _conv_trans_1 ConvTranspose2d
            4×4 s2 p1 (H → H/2), ReLU, _conv_trans_2 ConvTranspose2d 4×4 s2 p1 (H/2 → 3)
  pixels    the model sees x − 0.5 (its CIFAR-10 normalisation, mean 0.5 and
            std 1) and its output + 0.5 is the image.

Writes tests/data/vq/<variant>/{model file, image.npy, encoded.npy,
indices.npy, stats.json, latent.npy, decoded.npy, decoded-unquantized.npy}:
  image.npy       input image [H, W, 3] in [0, 1] (odd sizes: the engine pads by replication)
  encoded.npy     the pre-quantisation latent [1, D, h, w] (scale 1, shift 0: the raw latent)
  indices.npy     the nearest entry of each encoded vector [1, 1, h, w] (float32, exact)
  stats.json      perplexity and mean squared error of that snap, the smallest gap between
                  the nearest and the second nearest entry (relative to ‖x‖² + ‖e‖²), so that
                  float32 rounding cannot change an index
  latent.npy      a latent to decode: encoded plus noise [1, D, h, w]
  decoded.npy     the raw decoder output of latent.npy, quantised first as the models' decode
                  does (diffusers: force_not_quantize=False) [1, 3, H, W]
  decoded-unquantized.npy  the same with force_not_quantize=True (the seed: decoder alone)

Usage: python3 tests/reference/make_vq_goldens.py [OUT_DIR [VARIANT …]]
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import VQModel
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from make_kl_goldens import ldm_name, pad_replicate  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "vq")
ONLY = set(sys.argv[2:])
MIN_GAP = 1e-4  # float32 distances (and our latents) are good to a few 1e-6 of ‖x‖² + ‖e‖²


# ---- the seed's VQ-VAE ------------------------------------------------------------------

class Residual(nn.Module):
    def __init__(self, channels, hidden):
        super().__init__()
        self._block = nn.Sequential(
            nn.ReLU(True), nn.Conv2d(channels, hidden, 3, 1, 1, bias=False),
            nn.ReLU(True), nn.Conv2d(hidden, channels, 1, 1, bias=False))

    def forward(self, x):
        return x + self._block(x)


class ResidualStack(nn.Module):
    def __init__(self, channels, layers, hidden):
        super().__init__()
        self._layers = nn.ModuleList([Residual(channels, hidden) for _ in range(layers)])

    def forward(self, x):
        for layer in self._layers:
            x = layer(x)
        return F.relu(x)


class Encoder(nn.Module):
    def __init__(self, hiddens, layers, residual_hiddens):
        super().__init__()
        self._conv_1 = nn.Conv2d(3, hiddens // 2, 4, 2, 1)
        self._conv_2 = nn.Conv2d(hiddens // 2, hiddens, 4, 2, 1)
        self._conv_3 = nn.Conv2d(hiddens, hiddens, 3, 1, 1)
        self._residual_stack = ResidualStack(hiddens, layers, residual_hiddens)

    def forward(self, x):
        x = F.relu(self._conv_1(x))
        x = F.relu(self._conv_2(x))
        return self._residual_stack(self._conv_3(x))


class Decoder(nn.Module):
    def __init__(self, dim, hiddens, layers, residual_hiddens):
        super().__init__()
        self._conv_1 = nn.Conv2d(dim, hiddens, 3, 1, 1)
        self._residual_stack = ResidualStack(hiddens, layers, residual_hiddens)
        self._conv_trans_1 = nn.ConvTranspose2d(hiddens, hiddens // 2, 4, 2, 1)
        self._conv_trans_2 = nn.ConvTranspose2d(hiddens // 2, 3, 4, 2, 1)

    def forward(self, x):
        x = self._residual_stack(self._conv_1(x))
        return self._conv_trans_2(F.relu(self._conv_trans_1(x)))


class VectorQuantizerEMA(nn.Module):
    """The codebook and its EMA statistics (training only)."""

    def __init__(self, entries, dim):
        super().__init__()
        self._embedding = nn.Embedding(entries, dim)
        self.register_buffer("_ema_cluster_size", torch.zeros(entries))
        self._ema_w = nn.Parameter(torch.Tensor(entries, dim).normal_())

    def indices(self, x):
        flat = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        w = self._embedding.weight
        d = (flat ** 2).sum(1, keepdim=True) + (w ** 2).sum(1) - 2 * flat @ w.t()
        return torch.argmin(d, dim=1)

    def forward(self, x):
        idx = self.indices(x)
        q = self._embedding.weight[idx].view(x.shape[0], x.shape[2], x.shape[3], -1).permute(0, 3, 1, 2)
        return q.contiguous(), idx


class SeedModel(nn.Module):
    def __init__(self, hiddens=32, layers=2, residual_hiddens=8, entries=64, dim=8):
        super().__init__()
        self._encoder = Encoder(hiddens, layers, residual_hiddens)
        self._pre_vq_conv = nn.Conv2d(hiddens, dim, 1, 1)
        self._vq_vae = VectorQuantizerEMA(entries, dim)
        self._decoder = Decoder(dim, hiddens, layers, residual_hiddens)

    def encode(self, image):  # image in [0, 1]
        return self._pre_vq_conv(self._encoder(image - 0.5))

    def decode(self, z, force_not_quantize=False):  # raw output; the image is it + 0.5
        return self._decoder(z if force_not_quantize else self._vq_vae(z)[0])

    @property
    def codebook(self):
        return self._vq_vae._embedding.weight

    def spread(self, image):
        """Random weights put every latent vector of a picture near one point
        (per-channel spread ~2% of the mean), where float32 could not tell
        entries apart; rescale _pre_vq_conv so that on IMAGE each channel has
        mean 0 and std 1, as a trained model's latents spread."""
        z = self.encode(image)
        mean, std = z.mean((0, 2, 3)), z.std((0, 2, 3))
        self._pre_vq_conv.weight /= std[:, None, None, None]
        self._pre_vq_conv.bias.copy_((self._pre_vq_conv.bias - mean) / std)


def check_inplace_residual():
    """A block of the seed's stack computes relu(x) + _block(x)."""
    torch.manual_seed(0)
    r = Residual(4, 3).double()
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        want = torch.relu(x) + r._block(x.clone())
        assert torch.equal(r(x.clone()), want)


# ---- the codebook and its statistics ------------------------------------------------------

def nearest(z, codebook):
    """Indices and the gap between the nearest and the second nearest entry,
    relative to ‖x‖² + ‖e‖² (the size of what float32 subtracts)."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    xx = (flat ** 2).sum(1, keepdim=True)
    ee = (codebook ** 2).sum(1)
    d = xx + ee - 2 * flat @ codebook.t()
    two = torch.topk(d, 2, dim=1, largest=False)
    gap = (two.values[:, 1] - two.values[:, 0]) / (xx[:, 0] + ee.max())
    return two.indices[:, 0], float(gap.min())


def perplexity(idx, k):
    p = torch.bincount(idx, minlength=k).double() / idx.numel()
    return float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))


def fit_codebook(codebook, z, rng):
    """Entries drawn from the latent's own vectors plus noise, so that a
    picture uses many of them (random entries would all lie far away)."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    pick = torch.tensor(rng.choice(flat.shape[0], codebook.shape[0], replace=flat.shape[0] < codebook.shape[0]))
    noise = torch.tensor(rng.randn(*codebook.shape)) * 0.3 * flat.std(0)
    codebook.copy_(flat[pick] + noise)


# ---- variants --------------------------------------------------------------------------------

def diffusers_vq(seed, dtype, z, e, k, levels=3, attn_levels=()):
    torch.manual_seed(seed)
    down = tuple("AttnDownEncoderBlock2D" if i in attn_levels else "DownEncoderBlock2D" for i in range(levels))
    up = tuple("AttnUpDecoderBlock2D" if levels - 1 - i in attn_levels else "UpDecoderBlock2D"
               for i in range(levels))
    m = VQModel(in_channels=3, out_channels=3, down_block_types=down, up_block_types=up,
                block_out_channels=(32,) * levels, layers_per_block=1, latent_channels=z,
                num_vq_embeddings=k, vq_embed_dim=e, norm_num_groups=32)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return m.double().eval(), 2 ** (levels - 1)


class DiffusersVQ:
    """diffusers' VQModel in the terms of the variants below."""

    def __init__(self, m):
        self.m = m

    def encode(self, image):
        return self.m.encode(image * 2 - 1).latents

    def decode(self, z, force_not_quantize=False):
        return self.m.decode(z, force_not_quantize=force_not_quantize).sample

    @property
    def codebook(self):
        return self.m.quantize.embedding.weight


def round_weights(module, dtype):
    """Store-then-compute: the reference uses exactly the stored values."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(dtype).to(torch.float64))


@torch.no_grad()
def variant(name, file_name, make, size, dtype, naming=lambda k: k, save=None, seed=0):
    if ONLY and name not in ONLY:
        return
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model, f, module = make()
    rng = np.random.RandomState(seed + 100)
    h, w = size
    image = rng.rand(h, w, 3).astype(np.float32).astype(np.float64)  # what the engine reads
    x = pad_replicate(torch.tensor(image).permute(2, 0, 1)[None], f)
    if hasattr(model, "spread"):
        model.spread(x)
    for attempt in range(50):
        fit_codebook(model.codebook, model.encode(x), rng)
        round_weights(module, dtype)
        encoded = model.encode(x)
        idx, gap = nearest(encoded, model.codebook)
        latent = torch.tensor((encoded.numpy() + 0.05 * rng.randn(*encoded.shape)).astype(np.float32)).double()
        latent_idx, latent_gap = nearest(latent, model.codebook)
        if min(gap, latent_gap) > MIN_GAP:
            break
    else:
        raise SystemExit(f"{name}: no codebook with a gap above {MIN_GAP} in 50 draws")
    k = model.codebook.shape[0]
    decoded = model.decode(latent)
    unquantized = model.decode(latent, force_not_quantize=True)
    sd = {naming(key): v.to(dtype).contiguous() for key, v in module.state_dict().items()}
    path = os.path.join(d, file_name)
    if save:
        save(sd, path)
    else:
        save_file(sd, path)
    flat = encoded.permute(0, 2, 3, 1).reshape(-1, encoded.shape[1])
    stats = {"perplexity": perplexity(idx, k), "entries": k, "entries_used": int(torch.unique(idx).numel()),
             "mean_error": float(((flat - model.codebook[idx]) ** 2).sum(1).mean()),
             "min_gap": min(gap, latent_gap), "codebook_draws": attempt + 1}
    np.save(os.path.join(d, "image.npy"), image.astype(np.float32))
    np.save(os.path.join(d, "encoded.npy"), encoded.numpy().astype(np.float32))
    np.save(os.path.join(d, "indices.npy"), idx.view(1, 1, *encoded.shape[2:]).numpy().astype(np.float32))
    np.save(os.path.join(d, "latent.npy"), latent.numpy().astype(np.float32))
    np.save(os.path.join(d, "decoded.npy"), decoded.numpy().astype(np.float32))
    np.save(os.path.join(d, "decoded-unquantized.npy"), unquantized.numpy().astype(np.float32))
    with open(os.path.join(d, "stats.json"), "w") as out:
        json.dump(stats, out, indent=1)
    print(name, file_name, "image", image.shape, "latent", tuple(latent.shape), stats)


def main():
    torch.set_default_dtype(torch.float32)
    check_inplace_residual()

    def vq(seed, **kw):
        def make():
            m, f = diffusers_vq(seed, **kw)
            return DiffusersVQ(m), f, m
        return make

    # diffusers VQModel, diffusers names: latent 4 channels, codebook of 3 (quant_conv
    # changes the width), F16, odd size
    variant("vqmodel-diffusers", "vq_tiny.safetensors", vq(0, dtype=torch.float16, z=4, e=3, k=48),
            (29, 35), torch.float16)
    # LDM's VQModel in a .ckpt: LDM names, 4-D attention weights, nested state_dict with
    # loss.* beside it, attention in the last level (as vq-f8), embed_dim = z_channels
    variant("vqmodel-ldm-ckpt", "vq_ldm_tiny.ckpt",
            vq(1, dtype=torch.float16, z=4, e=4, k=40, attn_levels=(2,)), (21, 27), torch.float16,
            naming=lambda key: ldm_name(key, 3), seed=1,
            save=lambda sd, path: torch.save(
                {"state_dict": {**{k: (v[:, :, None, None].contiguous() if ".attn" in k and v.ndim == 2 else v)
                                   for k, v in sd.items()},
                                "loss.discriminator.main.0.weight": torch.zeros(2)}, "global_step": 7}, path))

    # the seed's VQ-VAE with an EMA codebook, as torch.save writes its state dict
    def seed_model():
        torch.manual_seed(2)
        m = SeedModel().double().eval()
        return m, 4, m
    variant("vqvae-seed", "vqvae_seed.pth", seed_model, (37, 29), torch.float16, seed=2,
            save=lambda sd, path: torch.save(sd, path))


if __name__ == "__main__":
    main()
