"""KTParams: what the KT op does to each image (not how), and the input checks of the op.

Every field is a tensor whose leading dimension is N (one set per image) or 1 (one set shared by
the whole batch, DSA's "siamese" mode); with `views` = V > 1, N V (image n's V views are rows
n V ... n V + V - 1, and the output is their mean) or 1. Parameters are constants: gradients flow
to the images only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Union

import torch

from ._compiled import MAX_FLOAT_GEOMETRY_SIDE, MAX_FOLD_K

PADDING_MODES = ("zeros", "border", "reflection")
SEED_LIMIT = 2**64

# field name -> (trailing shape, integral)
_FIELDS = {
    "affine": ((2, 3), False),
    "fold_k": ((), True),
    "fold_center": ((2,), False),
    "fold_phase": ((), False),
    "brightness": ((), False),
    "saturation": ((), False),
    "contrast": ((), False),
    "cutout": ((4,), True),
    "noise_std": ((), False),
}
TENSOR_FIELDS = tuple(_FIELDS)
FLOAT_FIELDS = tuple(name for name, (_, integral) in _FIELDS.items() if not integral)


@dataclass
class KTParams:
    """Per-sample parameters of the KT chain (see docs/kt_op.md for the exact semantics).

    affine:       (N, 2, 3) float, maps output to source normalised coordinates (affine_grid's theta)
    fold_k:       (N,) integer, number of kaleidoscope mirrors, 0 = off
    fold_center:  (N, 2) float, fold centre (cx, cy) in normalised coordinates
    fold_phase:   (N,) float, mirror angle in radians
    brightness:   (N,) float, added (0 = off)
    saturation:   (N,) float, scales the distance to the channel mean (1 = off)
    contrast:     (N,) float, scales the distance to the image mean (1 = off)
    cutout:       (N, 4) integer, (y0, x0, y1, x1) source rectangle set to 0; empty = off
    noise_std:    (N,) float, std of additive Gaussian noise (0 = off)
    seed:         int in [0, 2**64), keys the Philox noise generator
    padding_mode: 'zeros' | 'border' | 'reflection'
    views:        int >= 1, perturbed views averaged per image (the paper's aggregated KT); the
                  tensors' leading dimension is then N * views (or 1)
    """

    affine: torch.Tensor
    fold_k: torch.Tensor
    fold_center: torch.Tensor
    fold_phase: torch.Tensor
    brightness: torch.Tensor
    saturation: torch.Tensor
    contrast: torch.Tensor
    cutout: torch.Tensor
    noise_std: torch.Tensor
    seed: int = 0
    padding_mode: str = "zeros"
    views: int = 1

    @classmethod
    def identity(cls, n: int = 1, device: Optional[Union[str, torch.device]] = None,
                 dtype: torch.dtype = torch.float32) -> "KTParams":
        """The chain that returns its input unchanged, with n rows (n = 1: shared by the batch)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"KTParams.identity: n must be a positive int, got {n!r}")
        f = dict(device=device, dtype=dtype)
        return cls(
            affine=torch.eye(2, 3, **f).repeat(n, 1, 1),
            fold_k=torch.zeros(n, dtype=torch.int64, device=device),
            fold_center=torch.zeros(n, 2, **f),
            fold_phase=torch.zeros(n, **f),
            brightness=torch.zeros(n, **f),
            saturation=torch.ones(n, **f),
            contrast=torch.ones(n, **f),
            cutout=torch.zeros(n, 4, dtype=torch.int64, device=device),
            noise_std=torch.zeros(n, **f),
        )

    def to(self, device: Union[str, torch.device]) -> "KTParams":
        """The same parameters with every tensor on `device` (dtypes and shapes kept).

        Fields of one dtype travel together as one flat tensor, split again on arrival: one
        host-to-device copy per dtype instead of one per field, which matters when parameters are
        drawn per step on the CPU for a GPU batch."""
        device = torch.device(device)
        tensors = {k: getattr(self, k) for k in TENSOR_FIELDS}
        if all(t.device == device for t in tensors.values()):
            return self
        moved = {}
        for dtype in dict.fromkeys(t.dtype for t in tensors.values()):
            names = [k for k, t in tensors.items() if t.dtype == dtype]
            flat = torch.cat([tensors[k].reshape(-1) for k in names]).to(device)
            for k, part in zip(names, flat.split([tensors[k].numel() for k in names])):
                moved[k] = part.view(tensors[k].shape)
        return dataclasses.replace(self, **moved)

    def tensors(self) -> tuple:
        """The tensor fields in the op schema's order."""
        return tuple(getattr(self, k) for k in TENSOR_FIELDS)


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def check_inputs(x: torch.Tensor, params: KTParams) -> None:
    """Raises a TypeError or ValueError naming the problem for any input the op does not accept.

    Shape, dtype and device checks always run. Value checks (finite, k range, noise >= 0) read the
    parameter values, so they run in eager mode only: under torch.compile they would break the graph.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"kaleidoscope: x must be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(params, KTParams):
        raise TypeError(f"kaleidoscope: params must be a KTParams, got {type(params).__name__}")
    if x.dim() != 4:
        raise ValueError(f"kaleidoscope: x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"kaleidoscope: x must be float16, bfloat16, float32 or float64, got {x.dtype}")
    n, _, h, w = x.shape
    if MAX_FLOAT_GEOMETRY_SIDE is not None and x.dtype != torch.float64 and max(h, w) > MAX_FLOAT_GEOMETRY_SIDE:
        raise ValueError(f"kaleidoscope: image side {max(h, w)} exceeds {MAX_FLOAT_GEOMETRY_SIDE}, the largest "
                         f"for which {x.dtype} images' float32 geometry stays within side * 2^-19 pixel "
                         "(docs/kt_op.md, \"Precision\"); convert the images to float64")
    if params.padding_mode not in PADDING_MODES:
        raise ValueError(f"kaleidoscope: padding_mode must be one of {PADDING_MODES}, got {params.padding_mode!r}")
    seed = params.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"kaleidoscope: seed must be an int in [0, 2**64), got {seed!r}")
    views = params.views
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ValueError(f"kaleidoscope: params.views must be an int >= 1, got {views!r}")
    for name, (tail, integral) in _FIELDS.items():
        _check_field(name, getattr(params, name), tail, integral, x, views)
    if _is_compiling():
        return
    for name in FLOAT_FIELDS:
        t = getattr(params, name)
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"kaleidoscope: params.{name} contains NaN or infinite values")
    k = params.fold_k
    too_many = MAX_FOLD_K is not None and bool((k > MAX_FOLD_K).any())
    if k.numel() and (bool((k < 0).any()) or too_many):
        bound = f"[0, {MAX_FOLD_K}]" if MAX_FOLD_K is not None else ">= 0"
        raise ValueError(f"kaleidoscope: params.fold_k must be in {bound} (0 = off), "
                         f"got values in [{int(k.min())}, {int(k.max())}]")
    s = params.noise_std
    if s.numel() and bool((s < 0).any()):
        raise ValueError("kaleidoscope: params.noise_std must be >= 0")


def _check_field(name: str, t, tail: tuple, integral: bool, x: torch.Tensor, views: int) -> None:
    """One KTParams tensor field: type, shape (leading dimension N views or 1), device, dtype."""
    n = x.shape[0]
    rows = n * views
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"kaleidoscope: params.{name} must be a tensor, got {type(t).__name__}")
    if t.dim() != len(tail) + 1 or tuple(t.shape[1:]) != tail:
        want = ", ".join(["N or 1"] + [str(d) for d in tail])
        raise ValueError(f"kaleidoscope: params.{name} must have shape ({want}), got {tuple(t.shape)}")
    if t.shape[0] not in (1, rows):
        expected = f"the batch size N={n}" if views == 1 else f"N x views = {n} x {views} = {rows}"
        raise ValueError(f"kaleidoscope: params.{name} has leading dimension {t.shape[0]}, "
                         f"expected {expected} or 1")
    if t.device != x.device:
        raise ValueError(f"kaleidoscope: params.{name} is on {t.device} but x is on {x.device}; "
                         "move the parameters with params.to(x.device)")
    if integral and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise TypeError(f"kaleidoscope: params.{name} must be an integer tensor, got {t.dtype}")
    if not integral and not t.is_floating_point():
        raise TypeError(f"kaleidoscope: params.{name} must be a floating tensor, got {t.dtype}")
