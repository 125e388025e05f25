"""Parameter samplers: the presets 'kt' (strong, for private initialisation) and 'dsa' (DSA's
ParamDiffAug). Everything is drawn on the CPU from one torch.Generator, then moved, so a seed gives
the same parameters on every device.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch

from .dsa import sampling as dsa_sampling
from .dsa.sampling import DEFAULT_STRATEGY, DSA_RATIOS, check_ratios, homogeneous, uniform
from .params import PADDING_MODES, KTParams

# The KT preset's families, each switchable for ablations (sample_params' `families`): the
# geometric warp (rotation, scale, shear, flips, translation), the mirror fold, colour
# (brightness, saturation, contrast) and Gaussian noise.
KT_FAMILIES = ("warp", "fold", "colour", "noise")

KT_DEFAULTS = dict(
    families=KT_FAMILIES,    # which families are on; the others are drawn, then set to identity
    rotate=180.0,            # degrees, U(-r, r)
    scale=(0.7, 1.4),        # log-uniform isotropic scale
    shear=15.0,              # degrees, U(-s, s)
    translate=0.25,          # normalised units, U(-t, t) per axis
    flip=0.5,                # probability of a flip, each axis
    fold_k=(2, 6),           # mirrors, uniform integer in the range
    fold_prob=1.0,           # probability that an image is folded at all
    fold_center=0.3,         # centre U(-c, c)^2
    brightness=0.5,          # U(-b, b), DSA's (U - 0.5) * 1.0
    saturation=(0.0, 2.0),   # DSA's U * 2
    contrast=(0.5, 1.5),     # DSA's U + 0.5
    noise=(0.05, 0.2),       # sigma range, in units of data_std
    data_std=1.0,            # std of the data the noise is relative to
    cutout=0.0,              # cutout side as a fraction of the image side (0 = off)
    padding_mode="reflection",
)

DSA_DEFAULTS = dict(
    strategy=DEFAULT_STRATEGY,
    aug_mode="S",            # 'S': one op family per call; 'M': all of them
    siamese=False,           # one parameter set shared by the whole batch
    family=None,             # mode 'S' only: force this family instead of drawing one
    **DSA_RATIOS,            # DSA's ParamDiffAug ranges (see dsa/sampling.py)
)

Size = Union[int, Sequence[int]]


def _size(size: Size) -> Tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"sample_params: size must be an int or (H, W) of positive ints, got {size!r}")
    return size


def _generator(seed: Optional[int], generator: Optional[torch.Generator]) -> torch.Generator:
    if seed is not None and generator is not None:
        raise ValueError("sample_params: give seed or generator, not both")
    if generator is not None:
        return generator
    g = torch.Generator()
    # Without a seed, follow torch's global RNG so torch.manual_seed makes runs repeatable.
    g.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,))))
    return g


def _noise_seed(g) -> int:
    hi, lo = torch.randint(0, 2**32, (2,), generator=g).tolist()
    return (hi << 32) | lo


def _isotropic_to_normalised(linear: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A linear map written in pixel-isotropic units, expressed in normalised coordinates
    (x spans W/2 pixels per unit, y spans H/2), so rotations stay rotations on non-square images."""
    d = torch.tensor([w / 2, h / 2], dtype=torch.float64)
    return linear * d.view(1, 1, 2) / d.view(1, 2, 1)


def _finish(m, matrices, *, device, **fields) -> KTParams:
    p = KTParams.identity(m)
    p.affine = matrices[:, :2, :].to(torch.float32)
    for name, value in fields.items():
        current = getattr(p, name)
        setattr(p, name, value.to(current.dtype) if isinstance(value, torch.Tensor) else value)
    return p.to(device) if device is not None else p


def _sample_kt(n, h, w, g, strength, device, opts) -> KTParams:
    s = float(strength)
    deg = math.pi / 180
    theta = uniform(g, n, -opts["rotate"], opts["rotate"]) * deg * s
    lo, hi = opts["scale"]
    scale = torch.exp(uniform(g, n, math.log(lo), math.log(hi)) * s)
    shear = torch.tan(uniform(g, n, -opts["shear"], opts["shear"]) * deg * s)
    flip_x = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < opts["flip"] * s, -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < opts["flip"] * s, -1.0, 1.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shear_m = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
    shear_m[:, 0, 1] = shear
    scale_flip = torch.diag_embed(torch.stack([scale * flip_x, scale * flip_y], -1))
    linear = _isotropic_to_normalised(rot @ shear_m @ scale_flip, h, w)
    shift = torch.stack([uniform(g, n, -1, 1), uniform(g, n, -1, 1)], -1) * opts["translate"] * s

    k_lo, k_hi = opts["fold_k"]
    fold_on = torch.rand(n, generator=g) < opts["fold_prob"] * s
    fold_k = torch.where(fold_on, torch.randint(int(k_lo), int(k_hi) + 1, (n,), generator=g), 0)
    centre = torch.stack([uniform(g, n, -1, 1), uniform(g, n, -1, 1)], -1) * opts["fold_center"] * s
    phase = uniform(g, n, 0, 2 * math.pi)

    bright = uniform(g, n, -opts["brightness"], opts["brightness"]) * s
    sat = 1 + (uniform(g, n, *opts["saturation"]) - 1) * s
    con = 1 + (uniform(g, n, *opts["contrast"]) - 1) * s
    noise = uniform(g, n, *opts["noise"]) * opts["data_std"] * s

    side_h, side_w = round(opts["cutout"] * h * s), round(opts["cutout"] * w * s)
    cy = torch.randint(0, h, (n,), generator=g)
    cx = torch.randint(0, w, (n,), generator=g)
    cutout = torch.stack([cy - side_h // 2, cx - side_w // 2, cy - side_h // 2 + side_h, cx - side_w // 2 + side_w], -1)
    # A family that is off is drawn all the same (so the others' draws do not move), then undone.
    on = set(opts["families"])
    if "warp" not in on:
        linear, shift = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1), torch.zeros(n, 2, dtype=torch.float64)
    if "fold" not in on:
        fold_k = torch.zeros_like(fold_k)
    if "colour" not in on:
        bright, sat, con = torch.zeros_like(bright), torch.ones_like(sat), torch.ones_like(con)
    if "noise" not in on:
        noise = torch.zeros_like(noise)
    return _finish(n, homogeneous(linear, shift), device=device, fold_k=fold_k, fold_center=centre,
                   fold_phase=phase, brightness=bright, saturation=sat, contrast=con, cutout=cutout,
                   noise_std=noise, seed=_noise_seed(g), padding_mode=opts["padding_mode"])


def _sample_dsa(n, h, w, g, device, opts) -> KTParams:
    ratios = {k: opts[k] for k in DSA_RATIOS}
    check_ratios(ratios)
    d = dsa_sampling.draw(n, (h, w), opts["strategy"], aug_mode=opts["aug_mode"], siamese=opts["siamese"],
                          generator=g, ratios=ratios, family=opts["family"])
    p = dsa_sampling.compose(d)
    return p.to(device) if device is not None else p


def check_families(families) -> tuple:
    """The KT families named in `families` (a sequence of KT_FAMILIES' names, or a comma-separated
    string), in KT_FAMILIES' order; a ValueError names any unknown one."""
    names = families.split(",") if isinstance(families, str) else list(families)
    names = [f.strip() for f in names if f.strip()]
    unknown = sorted(set(names) - set(KT_FAMILIES))
    if unknown:
        raise ValueError(f"unknown KT famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                         f"choose from {', '.join(KT_FAMILIES)}")
    return tuple(f for f in KT_FAMILIES if f in names)


def sample_params(n: int, preset: str = "kt", *, size: Size, seed: Optional[int] = None,
                  generator: Optional[torch.Generator] = None, strength: float = 1.0,
                  views: int = 1, device=None, **overrides) -> KTParams:
    """Draws KTParams for a batch of n images of the given size.

    preset 'kt': strong perturbation for private initialisation; `strength` in [0, 1] scales every
    range (0 = identity); `views` = V draws n V independent rows, and the op then averages each
    image's V views (the paper's aggregated KT; V = 1 draws exactly what it always did). Overrides:
    the keys of KT_DEFAULTS.
    preset 'dsa': DSA's ParamDiffAug; overrides: the keys of DSA_DEFAULTS (aug_mode 'S' or 'M',
    siamese=True for one parameter set shared by the batch, ...).
    The same seed (or generator state) gives the same parameters.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"sample_params: n must be a positive int, got {n!r}")
    h, w = _size(size)
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"sample_params: strength must be in [0, 1], got {strength}")
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ValueError(f"sample_params: views must be an int >= 1, got {views!r}")
    if views != 1 and preset != "kt":
        raise ValueError("sample_params: views applies to the 'kt' preset only")
    defaults = {"kt": KT_DEFAULTS, "dsa": DSA_DEFAULTS}.get(preset)
    if defaults is None:
        raise ValueError(f"sample_params: unknown preset {preset!r}; use 'kt' or 'dsa'")
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"sample_params: unknown option(s) {unknown} for preset {preset!r}; "
                         f"known: {sorted(defaults)}")
    opts = {**defaults, **overrides}
    g = _generator(seed, generator)
    if preset == "kt":
        if opts["padding_mode"] not in PADDING_MODES:
            raise ValueError(f"sample_params: padding_mode must be one of {PADDING_MODES}")
        opts["families"] = check_families(opts["families"])
        p = _sample_kt(n * views, h, w, g, strength, device, opts)
        p.views = views
        return p
    if float(strength) != 1.0:
        raise ValueError("sample_params: strength applies to the 'kt' preset only; DSA has its own ratios")
    return _sample_dsa(n, h, w, g, device, opts)
