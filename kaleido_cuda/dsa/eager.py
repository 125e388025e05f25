"""DSA's augmentation chain in eager PyTorch: one pass over memory per op, as DSA does it.

It applies a `sampling.DSADraw` step by step (colour as three elementwise passes, crop as a
gather from a zero-padded copy, cutout as a mask, flip with torch.where, scale and rotate each as
affine_grid + grid_sample with align_corners=True). It is the baseline the fused path is measured
against and the `impl="eager"` switch of `kaleido_cuda.dsa.DiffAugment`, so a user can compare the two on their
own workload. Parameter building is vectorised, unlike DSA's per-sample Python loops, so this
baseline is, if anything, faster than the published code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .sampling import DSADraw, DSAStep


def _per_image(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(m,) values as an (N, 1, 1, 1) tensor in x's dtype and device (m = N or 1)."""
    return t.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def colour(x, brightness, saturation, contrast):
    x = x + _per_image(brightness, x)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * _per_image(saturation, x) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * _per_image(contrast, x) + image_mean


def crop(x, ty, tx):
    """out[n, :, i, j] = x[n, :, i + ty[n], j + tx[n]], zero where that falls outside the image."""
    n, _, h, w = x.shape
    pad_y, pad_x = int(ty.abs().max()), int(tx.abs().max())
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y))
    rows = (torch.arange(h).view(1, h) + ty.view(-1, 1) + pad_y).expand(n, h).to(x.device)
    cols = (torch.arange(w).view(1, w) + tx.view(-1, 1) + pad_x).expand(n, w).to(x.device)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # Advanced indexing over (batch, row, col) puts the channel axis last; move it back.
    return padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


def cutout(x, y0, x0, y1, x1):
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)

    def inside(idx, lo, hi):
        return (idx >= lo.to(x.device).view(-1, 1)) & (idx < hi.to(x.device).view(-1, 1))

    hole = inside(rows, y0, y1).view(-1, 1, h, 1) & inside(cols, x0, x1).view(-1, 1, 1, w)
    return x * (~hole).to(x.dtype)


def flip(x, flip):
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)


def _warp(x, linear):
    """grid_sample with DSA's align_corners=True convention; linear: (m, 2, 2) output-to-source."""
    theta = torch.cat([linear, torch.zeros(linear.shape[0], 2, 1, dtype=linear.dtype)], -1)
    theta = theta.to(device=x.device, dtype=x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def scale(x, sx, sy):
    return _warp(x, torch.diag_embed(torch.stack([sx, sy], -1)))


def rotate(x, theta):
    cos, sin = torch.cos(theta), torch.sin(theta)
    return _warp(x, torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2))


_OPS = {"color": colour, "crop": crop, "cutout": cutout, "flip": flip, "scale": scale, "rotate": rotate}


def apply_step(x: torch.Tensor, step: DSAStep) -> torch.Tensor:
    return _OPS[step.family](x, **step.values)


def apply(x: torch.Tensor, d: DSADraw) -> torch.Tensor:
    """Applies every step of the draw in order; siamese rows (m = 1) broadcast over the batch."""
    if tuple(x.shape[-2:]) != tuple(d.size):
        raise ValueError(f"dsa.eager.apply: the draw is for size {d.size}, the images are {tuple(x.shape[-2:])}")
    for step in d.steps:
        x = apply_step(x, step)
    return x.contiguous()
