"""nn.Module front ends of the KT op, for batched tensors (N, C, H, W).

    kt = Kaleidoscope("kt", strength=0.5)
    y = kt(x)                              # fresh parameters per call (torch's RNG, or seed=...)
    params = kt.sample(len(x), x.shape[-2:], seed=0)
    y1, y2 = kt(x1, params), kt(x2, params)   # replay: the same transform on a second batch

Parameters are drawn on the CPU (kaleido_cuda.presets), then moved to x's device; applying them is
one op call. Under torch.compile, pass params explicitly for a graph without breaks: sampling is
Python work on the CPU and runs outside the graph (torch.compiler.disable). That decorator imports
torch._dynamo, which takes over a second, so it is applied when the first module is built, not
when kaleido_cuda is imported.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .ops import kaleidoscope
from .params import KTParams
from .presets import Size, sample_params


_sample_outside_graph = None  # torch.compiler.disable(_sample_for), made when first needed


def _sample_for(module: "Kaleidoscope", x: torch.Tensor, seed: Optional[int]) -> KTParams:
    return module.sample(x.shape[0], tuple(x.shape[-2:]), seed).to(x.device)


def _sampler():
    """_sample_for, run outside any torch.compile graph. Made by the first module built in this
    process (eagerly), or by the first forward of one that was unpickled instead."""
    global _sample_outside_graph
    if _sample_outside_graph is None:
        _sample_outside_graph = torch.compiler.disable(_sample_for)
    return _sample_outside_graph


class Kaleidoscope(nn.Module):
    """The KT chain as a module. preset 'kt' (strong, for private initialisation; `strength` in
    [0, 1] scales every range) or 'dsa' (DSA's augmentation; strength must stay 1). `ranges`
    override the preset's options (see presets.KT_DEFAULTS and presets.DSA_DEFAULTS)."""

    def __init__(self, preset: str = "kt", strength: float = 1.0, **ranges):
        super().__init__()
        self.preset = preset
        self.strength = float(strength)
        self.ranges = dict(ranges)
        self.sample(1, 8, seed=0)  # rejects an unknown preset, option or value now, not at first use
        _sampler()  # outside any graph: a forward traced by torch.compile finds it made

    def sample(self, n: int, size: Size, seed: Optional[int] = None) -> KTParams:
        """Parameters for n images of `size` ((H, W) or one int), on the CPU. seed=None follows
        torch's global RNG, so torch.manual_seed makes runs repeatable."""
        return sample_params(int(n), self.preset, size=tuple(size) if not isinstance(size, int) else size,
                             seed=seed, strength=self.strength, **self.ranges)

    def forward(self, x: torch.Tensor, params: Optional[KTParams] = None, seed: Optional[int] = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"Kaleidoscope: expects a batched tensor (N, C, H, W), got {shape}; "
                             "use x.unsqueeze(0) for a single image")
        if params is None:
            params = _sampler()(self, x, seed)
        elif seed is not None:
            raise ValueError("Kaleidoscope: give params (to replay) or seed (to draw), not both")
        elif params.affine.device != x.device:
            params = params.to(x.device)
        return kaleidoscope(x, params)

    def extra_repr(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.ranges.items())
        return f"preset={self.preset!r}, strength={self.strength}{options}"
