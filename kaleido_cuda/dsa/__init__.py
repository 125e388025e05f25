"""Drop-in replacement for DSA's `DiffAugment` and `ParamDiffAug` (Zhao & Bilen, "Dataset
Condensation with Differentiable Siamese Augmentation", ICML 2021), on the fused KT op.

    from kaleido_cuda.dsa import DiffAugment, ParamDiffAug   # instead of `from utils import ...`
    img = DiffAugment(img, 'color_crop_cutout_flip_scale_rotate', seed=seed, param=ParamDiffAug())

Same strategy strings, same distributions, same seed semantics, one fused op call per DiffAugment
call. Where it differs from the published eager code (see docs/dsa.md):
- mode 'M' resamples once, not once per geometric op, and does not re-clip to the frame between
  geometric ops (DSA zeroes a crop's out-of-frame band again before scaling or rotating);
- a seed >= 0 does not reseed torch's global RNG (DSA calls torch.random.manual_seed as a side
  effect); the same seed still gives the same parameters;
- the random numbers are drawn differently, so a given seed does not reproduce DSA's exact values.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..ops import kaleidoscope
from . import eager, sampling
from .sampling import DEFAULT_STRATEGY, DSA_RATIOS

__all__ = ["ParamDiffAug", "DiffAugment", "draw_params"]

IMPLS = ("fused", "eager")


class ParamDiffAug:
    """DSA's augmentation settings, with its attribute names and defaults.

    aug_mode 'S' applies one op family (drawn per call) to the whole batch, 'M' applies every family
    of the strategy. batchmode and latestseed are kept for code that reads them; DiffAugment sets
    them as DSA does.
    """

    def __init__(self):
        self.aug_mode = "S"
        for name, value in DSA_RATIOS.items():
            setattr(self, name, value)
        self.batchmode = False
        self.latestseed = -1

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in ("aug_mode", *DSA_RATIOS))
        return f"ParamDiffAug({fields})"


def _ratios(param) -> dict:
    # Any object with DSA's attribute names works (for example a script's own ParamDiffAug);
    # attributes it lacks take DSA's defaults.
    ratios = {name: getattr(param, name, default) for name, default in DSA_RATIOS.items()}
    sampling.check_ratios(ratios)
    return ratios


def _check_seed(seed) -> int:
    if isinstance(seed, torch.Tensor) and seed.numel() == 1 and not seed.is_floating_point():
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < -1 or seed >= 2**63:
        raise ValueError(f"DiffAugment: seed must be -1 (a new draw per sample) or an int in [0, 2**63) "
                         f"(one draw shared by the batch, repeatable), got {seed!r}")
    return seed


def draw_params(n: int, size, strategy: str = DEFAULT_STRATEGY, seed: int = -1,
                param: Optional[object] = None, family: Optional[str] = None) -> sampling.DSADraw:
    """The parameters one DiffAugment call would use on a batch of n images of `size` (h, w).

    seed -1 draws per-sample values from a generator seeded from torch's global RNG (so
    torch.manual_seed makes runs repeatable); seed >= 0 draws one set shared by the batch from that
    seed alone. `family` forces the op family in mode 'S' (for tests and ablations)."""
    seed = _check_seed(seed)
    param = ParamDiffAug() if param is None else param
    g = torch.Generator()
    g.manual_seed(seed if seed >= 0 else int(torch.randint(0, 2**62, (1,))))
    return sampling.draw(int(n), tuple(int(s) for s in size), strategy,
                             aug_mode=getattr(param, "aug_mode", "S"), siamese=seed >= 0,
                             generator=g, ratios=_ratios(param), family=family)


def DiffAugment(x: torch.Tensor, strategy: str = DEFAULT_STRATEGY, seed: int = -1,
                param: Optional[object] = None, *, impl: str = "fused") -> torch.Tensor:
    """Augments a batch (N, C, H, W) with DSA's differentiable augmentation.

    strategy: op families joined by '_' (color, crop, cutout, flip, scale, rotate); '', 'none' or
    'None' returns x unchanged. seed: -1 draws parameters per sample; a seed >= 0 shares one draw
    across the batch and gives the same draw again for the same seed, so a real and a synthetic batch
    augmented with the same seed are transformed alike. param: a ParamDiffAug (default settings when
    None). impl: 'fused' (one kernel call) or 'eager' (DSA's op-by-op chain, for comparison).
    Gradients flow to x.
    """
    if param is not None:
        param.batchmode = _check_seed(seed) != -1
        param.latestseed = seed
    if strategy in ("", "None", "none"):
        return x
    if impl not in IMPLS:
        raise ValueError(f"DiffAugment: impl must be one of {IMPLS}, got {impl!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"DiffAugment: x must be a 4-D tensor (N, C, H, W), got {shape}")
    d = draw_params(x.shape[0], x.shape[-2:], strategy, seed, param)
    if impl == "eager":
        return eager.apply(x, d)
    return kaleidoscope(x, sampling.compose(d).to(x.device))
