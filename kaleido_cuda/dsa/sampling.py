"""DSA's augmentation parameters: drawn once per call, then applied by either path.

A draw is an ordered list of steps (one per op family, in strategy order) holding the values each
op uses. `compose` turns a draw into one KTParams for the fused op; `eager.apply` applies the
same draw op by op, as DSA's eager chain does. So the two paths can be compared on equal terms.

The distributions are DSA's ParamDiffAug semantics:
  color   brightness (U - 0.5) * brightness, saturation U * saturation, contrast U + contrast
  crop    integer translation (ty, tx), each in [-s, s] with s = int(side * ratio_crop_pad + 0.5),
          zero fill
  cutout  a square of side int(side * ratio_cutout + 0.5) centred at a uniformly drawn pixel (an
          even side may also centre one past the last pixel), clipped to the image
  flip    left-right with probability prob_flip
  scale   sx, sy ~ U(1/ratio_scale, ratio_scale), on affine_grid's align_corners=True coordinates
  rotate  theta ~ U(-ratio_rotate, ratio_rotate) degrees, same coordinates
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..params import KTParams

DSA_FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"  # DSA's default: every family
GEOMETRIC = ("crop", "flip", "scale", "rotate")

# DSA's ParamDiffAug defaults (the attribute names are DSA's).
DSA_RATIOS = dict(
    prob_flip=0.5,
    ratio_scale=1.2,
    ratio_rotate=15.0,
    ratio_crop_pad=0.125,
    ratio_cutout=0.5,
    brightness=1.0,
    saturation=2.0,
    contrast=0.5,
)


@dataclass(frozen=True)
class DSAStep:
    """One op family of a draw; every value is a CPU tensor with m rows."""
    family: str
    values: Dict[str, torch.Tensor]


@dataclass(frozen=True)
class DSADraw:
    """The parameters of one DiffAugment call: steps in the order they are applied, m = N or 1
    (siamese), on images of size (h, w)."""
    steps: Tuple[DSAStep, ...]
    m: int
    size: Tuple[int, int]


@functools.lru_cache(maxsize=64)
def parse_strategy(strategy: str) -> Tuple[str, ...]:
    """'color_crop_cutout' -> ('color', 'crop', 'cutout'), with a clear error for unknown parts."""
    if not isinstance(strategy, str):
        raise TypeError(f"DSA strategy must be a string such as 'color_crop_cutout', got {type(strategy).__name__}")
    families = tuple(part for part in strategy.split("_") if part)
    unknown = [f for f in families if f not in DSA_FAMILIES]
    if unknown or not families:
        raise ValueError(f"unknown DSA strategy part(s) {unknown} in {strategy!r}; known: {DSA_FAMILIES}")
    return families


def check_ratios(ratios: Dict[str, float]) -> None:
    for name, value in ratios.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"DSA parameter {name} must be a finite number, got {value!r}")
    if not 0.0 <= ratios["prob_flip"] <= 1.0:
        raise ValueError(f"DSA parameter prob_flip must be in [0, 1], got {ratios['prob_flip']}")
    if ratios["ratio_scale"] <= 0:
        raise ValueError(f"DSA parameter ratio_scale must be > 0, got {ratios['ratio_scale']}")
    for name in ("ratio_crop_pad", "ratio_cutout", "ratio_rotate", "brightness", "saturation"):
        if ratios[name] < 0:
            raise ValueError(f"DSA parameter {name} must be >= 0, got {ratios[name]}")


def uniform(g: torch.Generator, m: int, lo: float, hi: float) -> torch.Tensor:
    """m float64 draws from U(lo, hi)."""
    return torch.rand(m, generator=g, dtype=torch.float64) * (hi - lo) + lo


def _draw_family(family: str, m: int, h: int, w: int, g: torch.Generator, r: Dict[str, float]) -> DSAStep:
    if family == "color":
        u = torch.rand(3, m, generator=g, dtype=torch.float64)
        values = dict(brightness=(u[0] - 0.5) * r["brightness"], saturation=u[1] * r["saturation"],
                      contrast=u[2] + r["contrast"])
    elif family == "crop":
        sy, sx = int(h * r["ratio_crop_pad"] + 0.5), int(w * r["ratio_crop_pad"] + 0.5)
        values = dict(ty=torch.randint(-sy, sy + 1, (m,), generator=g),
                      tx=torch.randint(-sx, sx + 1, (m,), generator=g))
    elif family == "cutout":
        ch, cw = int(h * r["ratio_cutout"] + 0.5), int(w * r["ratio_cutout"] + 0.5)
        y0 = torch.randint(0, h + (1 - ch % 2), (m,), generator=g) - ch // 2
        x0 = torch.randint(0, w + (1 - cw % 2), (m,), generator=g) - cw // 2
        values = dict(y0=y0, x0=x0, y1=y0 + ch, x1=x0 + cw)
    elif family == "flip":
        values = dict(flip=torch.rand(m, generator=g, dtype=torch.float64) < r["prob_flip"])
    elif family == "scale":
        lo, hi = 1.0 / r["ratio_scale"], r["ratio_scale"]
        values = dict(sx=uniform(g, m, lo, hi), sy=uniform(g, m, lo, hi))
    else:  # rotate
        values = dict(theta=uniform(g, m, -1.0, 1.0) * (r["ratio_rotate"] * math.pi / 180))
    return DSAStep(family, values)


def draw(n: int, size: Tuple[int, int], strategy: str, *, aug_mode: str = "S", siamese: bool = False,
         generator: torch.Generator, ratios: Optional[Dict[str, float]] = None,
         family: Optional[str] = None) -> DSADraw:
    """Draws the parameters of one DiffAugment call on a batch of n images of size (h, w).

    aug_mode 'S' picks one family of the strategy for the whole call (or `family`, if given);
    'M' draws every family in strategy order. siamese: one row shared by the batch."""
    g = _check_generator(generator)
    families = parse_strategy(strategy)
    if aug_mode not in ("S", "M"):
        raise ValueError(f"DSA aug_mode must be 'S' (one op family per call) or 'M' (all), got {aug_mode!r}")
    r = dict(DSA_RATIOS) if ratios is None else ratios
    h, w = size
    if aug_mode == "S":
        if family is not None:
            if family not in families:
                raise ValueError(f"DSA family {family!r} is not in the strategy {strategy!r}")
            families = (family,)
        else:
            families = (families[int(torch.randint(0, len(families), (1,), generator=g))],)
    elif family is not None:
        raise ValueError("DSA family applies to aug_mode 'S' only")
    m = 1 if siamese else n
    return DSADraw(tuple(_draw_family(f, m, h, w, g, r) for f in families), m, (h, w))


def _check_generator(generator) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"DSA sampling needs a torch.Generator, got {type(generator).__name__}")
    return generator


def homogeneous(linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(m, 3, 3) homogeneous matrices from (m, 2, 2) linear parts and (m, 2) translations."""
    m = linear.shape[0]
    out = torch.zeros(m, 3, 3, dtype=torch.float64)
    out[:, :2, :2] = linear
    out[:, :2, 2] = shift
    out[:, 2, 2] = 1
    return out


def step_matrix(step: DSAStep, h: int, w: int) -> np.ndarray:
    """(m, 3, 3) output-to-source map of a geometric step, in align_corners=False normalised
    coordinates (the fused op's). numpy: these are a few hundred tiny matrices per call, where
    torch's per-op overhead would cost more than the augmentation of a small batch."""
    v = {k: t.numpy() for k, t in step.values.items()}
    m = next(iter(v.values())).shape[0]
    out = np.zeros((m, 3, 3))
    out[:, 2, 2] = 1.0
    if step.family == "crop":  # out[i, j] = x[i + ty, j + tx]
        out[:, 0, 0] = out[:, 1, 1] = 1.0
        out[:, 0, 2] = 2.0 * v["tx"] / w
        out[:, 1, 2] = 2.0 * v["ty"] / h
        return out
    if step.family == "flip":  # out[:, j] = x[:, W - 1 - j] where flipped
        out[:, 0, 0] = np.where(v["flip"], -1.0, 1.0)
        out[:, 1, 1] = 1.0
        return out
    if step.family == "scale":
        out[:, 0, 0], out[:, 1, 1] = v["sx"], v["sy"]
    else:  # rotate
        cos, sin = np.cos(v["theta"]), np.sin(v["theta"])
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = cos, -sin, sin, cos
    # DSA maps with align_corners=True (normalised -1/+1 at the outer pixel centres); the same pixel
    # map in align_corners=False units (-1/+1 at the outer pixel edges) is D^-1 A D,
    # D = diag(W / (W - 1), H / (H - 1)).
    d = np.array([w / max(w - 1, 1), h / max(h - 1, 1)])
    out[:, :2, :2] *= d.reshape(1, 1, 2) / d.reshape(1, 2, 1)
    return out


def _rect_to_source(v: Dict[str, np.ndarray], matrix: np.ndarray, h: int, w: int) -> np.ndarray:
    """A cutout drawn after crops and flips only, expressed in the source frame. Exact, because those
    maps send whole pixels to whole pixels."""
    tx = np.rint(matrix[:, 0, 2] * w / 2).astype(np.int64)
    ty = np.rint(matrix[:, 1, 2] * h / 2).astype(np.int64)
    flipped = matrix[:, 0, 0] < 0  # output column j reads source column W - 1 - j + tx
    x0 = np.where(flipped, w + tx - v["x1"], v["x0"] + tx)
    x1 = np.where(flipped, w + tx - v["x0"], v["x1"] + tx)
    return np.stack([v["y0"] + ty, x0, v["y1"] + ty, x1], -1)


def compose(d: DSADraw) -> KTParams:
    """The whole draw as one KTParams (CPU): colour and cutout in the source frame, the geometric
    steps multiplied into one output-to-source affine map, zero padding. Fields a draw leaves alone
    keep one shared identity row."""
    h, w = d.size
    matrix = np.broadcast_to(np.eye(3), (d.m, 3, 3))
    p = KTParams.identity(1)
    for step in d.steps:
        if step.family == "color":
            p.brightness, p.saturation, p.contrast = (step.values[k].float() for k in ("brightness", "saturation", "contrast"))
        elif step.family == "cutout":
            if not np.array_equal(np.abs(matrix[:, :2, :2]), np.broadcast_to(np.eye(2), (d.m, 2, 2))):
                raise ValueError("DSA cutout after scale or rotate cannot be expressed in the source frame; "
                                 "put cutout before them in the strategy (DSA's default order does)")
            v = {k: t.numpy() for k, t in step.values.items()}
            p.cutout = torch.from_numpy(_rect_to_source(v, matrix, h, w))
        else:
            matrix = matrix @ step_matrix(step, h, w)
    # float64: a crop by tx pixels is 2 tx / W exactly, so integer shifts stay integer shifts.
    p.affine = torch.from_numpy(matrix[:, :2, :].copy())  # a copy: the identity is a read-only view
    p.padding_mode = "zeros"
    return p
