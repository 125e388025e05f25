"""kaleido_cuda: the fused Kaleidoscopic Transformation (KT) op for dataset distillation.

    import kaleido_cuda as kc
    params = kc.sample_params(x.shape[0], "kt", size=x.shape[-2:], seed=0).to(x.device)
    y = kc.kaleidoscope(x, params)   # differentiable in x, CPU or CUDA
"""
from . import reference
from .ops import build_info, kaleidoscope
from .params import KTParams
from .presets import sample_params

__all__ = ["KTParams", "sample_params", "kaleidoscope", "reference", "build_info"]
__version__ = "0.1.0"
