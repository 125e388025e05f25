"""kaleido_cuda: the fused Kaleidoscopic Transformation (KT) op for dataset distillation.

    import kaleido_cuda as kc
    params = kc.sample_params(x.shape[0], "kt", size=x.shape[-2:], seed=0).to(x.device)
    y = kc.kaleidoscope(x, params)   # differentiable in x, CPU or CUDA

    from kaleido_cuda.dsa import DiffAugment, ParamDiffAug   # drop-in for DSA's augmentation
    from kaleido_cuda.transforms import Kaleidoscope          # nn.Module front end
    from kaleido_cuda.init import initialize                  # KT initialisation of a synthetic set

This top level and kaleido_cuda.dsa are the op library (torch and numpy only). kaleido_cuda.lab,
the research application behind the `kaleido` command, is built on it and is never imported here
(docs/architecture.md).
"""
from . import dsa, init, reference, transforms
from .cpu_allocator import tune_cpu_allocator
from .ops import build_info, kaleidoscope
from .params import KTParams
from .presets import sample_params

__all__ = ["KTParams", "sample_params", "kaleidoscope", "reference", "build_info", "dsa", "init", "transforms",
           "tune_cpu_allocator"]
__version__ = "0.1.0"
