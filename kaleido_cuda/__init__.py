"""kaleido_cuda: the fused Kaleidoscopic Transformation (KT) op for dataset distillation.

    import kaleido_cuda as kc
    params = kc.sample_params(x.shape[0], "kt", size=x.shape[-2:], seed=0).to(x.device)
    y = kc.kaleidoscope(x, params)   # differentiable in x, CPU or CUDA

    from kaleido_cuda.dsa import DiffAugment, ParamDiffAug   # drop-in for DSA's augmentation
    from kaleido_cuda.transforms import Kaleidoscope          # nn.Module front end
"""
from . import dsa, reference, transforms
from .cpu_allocator import tune_cpu_allocator
from .ops import build_info, kaleidoscope
from .params import KTParams
from .presets import sample_params

__all__ = ["KTParams", "sample_params", "kaleidoscope", "reference", "build_info", "dsa", "transforms",
           "tune_cpu_allocator"]
__version__ = "0.1.0"
