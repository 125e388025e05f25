"""The KT op in plain PyTorch: the test oracle, and the fallback when the compiled module is missing.

It follows docs/kt_op.md step by step, written for clarity rather than speed: colour and cutout are
applied to the whole source image, then four bilinear taps are gathered. Autograd provides its
gradient, which is how the kernels' hand-written backward is checked.
"""
from __future__ import annotations

import math

import torch

from .params import KTParams, check_inputs

__all__ = ["kaleidoscope", "philox4x32_10", "philox_normals"]

_MASK32 = 0xFFFFFFFF
_PHILOX_MUL = (0xD2511F53, 0xCD9E8D57)
_PHILOX_WEYL = (0x9E3779B9, 0xBB67AE85)


def _mulhilo32(a: int, b: torch.Tensor):
    """(hi, lo) 32-bit words of a * b for a Python constant a < 2^32 and an int64 tensor b < 2^32,
    split in 16-bit halves so no intermediate leaves int64."""
    t_lo = b * (a & 0xFFFF)  # < 2^48
    t_hi = b * (a >> 16)     # < 2^48
    mid = ((t_hi & 0xFFFF) << 16) + t_lo  # < 2^49
    return (t_hi >> 16) + (mid >> 32), mid & _MASK32


def philox4x32_10(counter, key):
    """Philox4x32-10 on int64 tensors holding 32-bit words. counter: 4 tensors (or ints), key: 2 ints.
    Returns the 4 output words as int64 tensors."""
    c = [torch.as_tensor(w, dtype=torch.int64) for w in counter]
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    for _ in range(10):
        hi0, lo0 = _mulhilo32(_PHILOX_MUL[0], c[0])
        hi1, lo1 = _mulhilo32(_PHILOX_MUL[1], c[2])
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0 = (k0 + _PHILOX_WEYL[0]) & _MASK32
        k1 = (k1 + _PHILOX_WEYL[1]) & _MASK32
    return c


def philox_normals(shape, seed: int, dtype=torch.float32, device=None, view: int = 0) -> torch.Tensor:
    """The noise stream's standard normals for a tensor of `shape` (N, C, H, W), as the kernels
    draw them: element k = i W + j of plane q = n C + c is lane k % 4 of group k // 4, whose
    Philox block has counter (k // 4, q_lo, q_hi, view) and key = seed; its words (r0, r1) and
    (r2, r3) are two Box-Muller pairs, z = sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2) with
    u1 = (r + 1) / 2^32 and u2 = r' / 2^32, for lanes 0-3. `view` is the view of an averaged
    image (KTParams.views), 0 for a single chain."""
    n, c, h, w = shape
    planes, per_plane = n * c, h * w
    groups = (per_plane + 3) // 4
    g = torch.arange(groups, dtype=torch.int64, device=device).repeat(planes)
    q = torch.arange(planes, dtype=torch.int64, device=device).repeat_interleave(groups)
    r = philox4x32_10((g, q & _MASK32, q >> 32, torch.full_like(g, view)), (seed & _MASK32, seed >> 32))
    inv_2_32 = 2.0**-32
    lanes = []
    for radius_word, angle_word in ((r[0], r[1]), (r[2], r[3])):
        radius = torch.sqrt(-2 * torch.log((radius_word.to(dtype) + 1) * inv_2_32))
        angle = (2 * math.pi) * (angle_word.to(dtype) * inv_2_32)
        lanes += [radius * torch.cos(angle), radius * torch.sin(angle)]
    z = torch.stack(lanes, -1).view(planes, groups * 4)[:, :per_plane]
    return z.reshape(n, c, h, w)


def _per_sample(t: torch.Tensor, n: int, dtype) -> torch.Tensor:
    return t.to(dtype).expand(n, *t.shape[1:])


def _pad_coordinate(coord: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """grid_sample's padding rules (align_corners=False) on pixel coordinates."""
    if mode == "border":
        return coord.clamp(0, size - 1)
    if mode == "reflection":
        shifted = (coord + 0.5).abs()
        extra = torch.fmod(shifted, size)
        flips = torch.floor(shifted / size)
        even = torch.fmod(flips, 2) == 0
        return torch.where(even, extra - 0.5, size - extra - 0.5).clamp(0, size - 1)
    return coord.clamp(-2, size + 1)  # zeros: far taps are dropped anyway; keeps .long() defined


def _fold(u, v, k, cx, cy, phase, w, h):
    """Kaleidoscopic fold of output coordinates; k = 0 leaves them unchanged."""
    half_w, half_h = w / 2, h / 2
    dx, dy = (u - cx) * half_w, (v - cy) * half_h
    r = torch.hypot(dx, dy)
    t = torch.atan2(dy, dx) - phase
    wedge = math.pi / k.clamp(min=1)
    period = 2 * wedge
    m = t - period * torch.floor(t / period)
    m = torch.where(m > wedge, period - m, m)
    on = k > 0
    return (torch.where(on, cx + r * torch.cos(m + phase) / half_w, u),
            torch.where(on, cy + r * torch.sin(m + phase) / half_h, v))


def _colour(x: torch.Tensor, b, s, c) -> torch.Tensor:
    """DSA's order: brightness, saturation (about the channel mean), contrast (about the image mean
    mu + b). Written as c p2 + (1 - c) b + (1 - c) mu, with the mu term left out where c = 1, as the
    kernels do, so that a NaN in the image does not reach every pixel through mu."""
    mu = x.mean(dim=(1, 2, 3), keepdim=True)
    p1 = x + b
    p2 = (p1 - p1.mean(dim=1, keepdim=True)) * s + p1.mean(dim=1, keepdim=True)
    pivot = torch.where(c != 1, (1 - c) * mu, torch.zeros((), dtype=x.dtype, device=x.device))
    return c * p2 + (1 - c) * b + pivot


def kaleidoscope(x: torch.Tensor, params: KTParams) -> torch.Tensor:
    """The KT chain in plain PyTorch; same contract as kaleido_cuda.kaleidoscope. With V views,
    each image runs the chain once per view (rows n V + v, its own noise stream) and the output is
    the views' mean, summed in view order."""
    check_inputs(x, params)
    if x.numel() == 0:
        return x.clone()
    n, ch, h, w = x.shape
    views = params.views
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    rows = x.repeat_interleave(views, dim=0) if views > 1 else x  # row n V + v: image n
    out = _noiseless(rows, params, acc).view(n, views, ch, h, w)
    sigma = _per_sample(params.noise_std, n * views, acc).view(n, views, 1, 1, 1)
    total = None
    for v in range(views):
        view = out[:, v]
        if bool((sigma[:, v] != 0).any()):
            view = view + sigma[:, v] * philox_normals((n, ch, h, w), params.seed, acc, x.device, view=v)
        total = view if total is None else total + view
    return (total if views == 1 else total / views).to(x.dtype)


def _noiseless(x: torch.Tensor, params: KTParams, acc) -> torch.Tensor:
    """Fold, affine, padding, colour, cutout and bilinear sampling for each row of x (one image
    per parameter row), in acc."""
    n, ch, h, w = x.shape
    # Geometry in float64 for every dtype: the oracle is the exact chain. The kernels run float32
    # geometry for float16/bfloat16/float32 images and agree with this within the bound in
    # docs/kt_op.md ("Precision"; tests/op/test_float_geometry.py).
    geo = torch.float64
    dev = x.device
    col = lambda t: _per_sample(t, n, acc).view(n, 1, 1)  # noqa: E731
    xa = x.to(acc)

    # Output coordinates (align_corners=False), then fold and affine to source coordinates.
    u = ((2 * torch.arange(w, device=dev, dtype=geo) + 1) / w - 1).view(1, 1, w).expand(n, h, w)
    v = ((2 * torch.arange(h, device=dev, dtype=geo) + 1) / h - 1).view(1, h, 1).expand(n, h, w)
    centre = _per_sample(params.fold_center, n, geo)
    k = _per_sample(params.fold_k, n, torch.int64).view(n, 1, 1)
    u, v = _fold(u, v, k.to(geo), centre[:, 0].view(n, 1, 1), centre[:, 1].view(n, 1, 1),
                 _per_sample(params.fold_phase, n, geo).view(n, 1, 1), w, h)
    a = _per_sample(params.affine, n, geo)
    us = a[:, 0, 0].view(n, 1, 1) * u + a[:, 0, 1].view(n, 1, 1) * v + a[:, 0, 2].view(n, 1, 1)
    vs = a[:, 1, 0].view(n, 1, 1) * u + a[:, 1, 1].view(n, 1, 1) * v + a[:, 1, 2].view(n, 1, 1)
    xs = _pad_coordinate(((us + 1) * w - 1) / 2, w, params.padding_mode)
    ys = _pad_coordinate(((vs + 1) * h - 1) / 2, h, params.padding_mode)

    # Source transforms: colour, then cutout, on the whole source image.
    b, s, c = (col(t).unsqueeze(1) for t in (params.brightness, params.saturation, params.contrast))
    source = _colour(xa, b, s, c)
    cut = _per_sample(params.cutout, n, torch.int64)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    inside = ((rows >= cut[:, 0].view(n, 1, 1)) & (rows < cut[:, 2].view(n, 1, 1))
              & (cols >= cut[:, 1].view(n, 1, 1)) & (cols < cut[:, 3].view(n, 1, 1)))
    source = source * (~inside).unsqueeze(1).to(acc)

    # Bilinear sampling: four taps, out-of-image taps contribute 0.
    x0, y0 = torch.floor(xs), torch.floor(ys)
    fx, fy = (xs - x0).to(acc), (ys - y0).to(acc)
    flat = source.reshape(n, ch, h * w)
    out = torch.zeros(n, ch, h, w, dtype=acc, device=dev)
    for dy, dx, weight in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                           (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        tx, ty = x0 + dx, y0 + dy
        valid = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
        index = (ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).long().view(n, 1, h * w).expand(n, ch, h * w)
        taps = flat.gather(2, index).view(n, ch, h, w)
        kept = (weight * valid.to(acc)).unsqueeze(1)
        out = out + torch.where(kept != 0, taps * kept, torch.zeros((), dtype=acc, device=dev))

    return out
