"""A benchmark baseline with the cost structure of DSA's published eager DiffAugment
(VICO-UoE/DatasetCondensation, utils.py), written here from its semantics, not copied.

What makes the published code cost what it costs, and is reproduced here:
- each op draws its own random numbers on the CPU and builds parameters per call;
- scale and rotate build their (N, 2, 3) theta as a per-sample Python list, then affine_grid +
  grid_sample (align_corners=True);
- crop pads by one pixel, builds a meshgrid of (N, H, W) indices and gathers from a channels-last
  copy; cutout builds a meshgrid over the hole, writes zeros into an (N, H, W) mask and multiplies;
- colour is three elementwise passes with a channel mean and an image mean.
kaleido_cuda.dsa.eager is the vectorised version of the same chain (no per-sample Python); the
benchmark reports both.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _brightness(x, p):
    r = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)
    return x + (r - 0.5) * p.brightness


def _saturation(x, p):
    m = x.mean(dim=1, keepdim=True)
    r = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)
    return (x - m) * (r * p.saturation) + m


def _contrast(x, p):
    m = x.mean(dim=[1, 2, 3], keepdim=True)
    r = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)
    return (x - m) * (r + p.contrast) + m


def _warp_per_sample_theta(x, rows):
    theta = torch.tensor(rows, dtype=torch.float)
    grid = F.affine_grid(theta, x.shape, align_corners=True).to(x.device)
    return F.grid_sample(x, grid, align_corners=True)


def _scale(x, p):
    lo, hi = 1.0 / p.ratio_scale, p.ratio_scale
    sx = torch.rand(x.shape[0]) * (hi - lo) + lo
    sy = torch.rand(x.shape[0]) * (hi - lo) + lo
    return _warp_per_sample_theta(x, [[[sx[i], 0, 0], [0, sy[i], 0]] for i in range(x.shape[0])])


def _rotate(x, p):
    t = (torch.rand(x.shape[0]) - 0.5) * 2 * p.ratio_rotate / 180 * math.pi
    return _warp_per_sample_theta(x, [[[torch.cos(t[i]), torch.sin(-t[i]), 0],
                                       [torch.sin(t[i]), torch.cos(t[i]), 0]] for i in range(x.shape[0])])


def _flip(x, p):
    r = torch.rand(x.shape[0], 1, 1, 1, device=x.device)
    return torch.where(r < p.prob_flip, x.flip(3), x)


def _index_grid(x, h, w):
    return torch.meshgrid(torch.arange(x.shape[0], device=x.device), torch.arange(h, device=x.device),
                          torch.arange(w, device=x.device), indexing="ij")


def _crop(x, p):
    n, _, h, w = x.shape
    sh, sw = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
    ty = torch.randint(-sh, sh + 1, size=[n, 1, 1], device=x.device)
    tx = torch.randint(-sw, sw + 1, size=[n, 1, 1], device=x.device)
    b, gy, gx = _index_grid(x, h, w)
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return padded.permute(0, 2, 3, 1).contiguous()[b, gy, gx].permute(0, 3, 1, 2)


def _cutout(x, p):
    n, _, h, w = x.shape
    ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), size=[n, 1, 1], device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), size=[n, 1, 1], device=x.device)
    b, gy, gx = _index_grid(x, ch, cw)
    gy = torch.clamp(gy + oy - ch // 2, min=0, max=h - 1)
    gx = torch.clamp(gx + ox - cw // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[b, gy, gx] = 0
    return x * mask.unsqueeze(1)


FAMILY_OPS = {
    "color": (_brightness, _saturation, _contrast),
    "crop": (_crop,),
    "cutout": (_cutout,),
    "flip": (_flip,),
    "scale": (_scale,),
    "rotate": (_rotate,),
}


def diff_augment(x, strategy, param):
    """Per-sample parameters (DSA's seed = -1); mode 'S' picks one family, 'M' applies all."""
    families = strategy.split("_")
    if param.aug_mode == "S":
        families = [families[int(torch.randint(0, len(families), (1,)))]]
    for family in families:
        for op in FAMILY_OPS[family]:
            x = op(x, param)
    return x.contiguous()
