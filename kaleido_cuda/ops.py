"""The public KT op: calls the compiled kernels, with autograd and a fake (meta) implementation.

Applications call `kaleidoscope` from here and never reach into the compiled module.
"""
from __future__ import annotations

import warnings

import torch

from . import reference
from ._compiled import LOAD_ERROR as _LOAD_ERROR
from ._compiled import _C
from .params import KTParams, check_inputs

_warned = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def build_info() -> dict:
    """What this installation can run: compiled kernels, CUDA, versions."""
    cuda_compiled = bool(_C is not None and _C.cuda_compiled())
    return {
        "compiled": _C is not None,
        "cuda_compiled": cuda_compiled,
        "cuda_available": bool(cuda_compiled and torch.cuda.is_available()),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_arch_list": _C.cuda_arch_list() if _C is not None else "",
        "load_error": None if _LOAD_ERROR is None else repr(_LOAD_ERROR),
    }


def _kernel_available(device: torch.device) -> bool:
    if _C is None:
        _warn_once("missing", "kaleido_cuda: the compiled extension did not load "
                   f"({_LOAD_ERROR!r}); using the pure-PyTorch reference, which is much slower. "
                   "Reinstall with `pip install --no-build-isolation .` (and run tests from outside the "
                   "source folder, or install with -e).")
        return False
    if device.type == "cuda" and not _C.cuda_compiled():
        _warn_once("nocuda", "kaleido_cuda: this build has no CUDA kernels (built without a CUDA "
                   "toolkit or with KALEIDO_CUDA=0); using the pure-PyTorch reference on the GPU.")
        return False
    return device.type in ("cpu", "cuda")


def _signed_seed(seed: int) -> int:
    """The op schema carries the 64-bit seed as a signed int64; the kernels read it back unsigned."""
    return seed - (1 << 64) if seed >= (1 << 63) else seed


def kaleidoscope(x: torch.Tensor, params: KTParams) -> torch.Tensor:
    """Applies the KT chain (fold, affine, bilinear sampling, colour, cutout, noise) to a batch.

    x: (N, C, H, W) float16/bfloat16/float32/float64 on CPU or CUDA; differentiable in x.
    params: KTParams with leading dimension N (N * params.views) or 1, on x's device.
    Returns a new contiguous tensor of x's shape and dtype: with views > 1, the mean of each
    image's perturbed views.
    """
    check_inputs(x, params)
    if x.numel() == 0:
        return x.clone()
    if not _kernel_available(x.device):
        return reference.kaleidoscope(x, params)
    return torch.ops.kaleido_cuda.kaleidoscope(x, *params.tensors(), _signed_seed(params.seed),
                                               params.padding_mode, params.views)


if _C is not None:

    @torch.library.register_fake("kaleido_cuda::kaleidoscope")
    def _kaleidoscope_fake(x, affine, fold_k, fold_center, fold_phase, brightness, saturation,
                           contrast, cutout, noise_std, seed, padding_mode, views=1):
        return x.new_empty(x.shape)

    @torch.library.register_fake("kaleido_cuda::kaleidoscope_backward")
    def _kaleidoscope_backward_fake(grad, affine, fold_k, fold_center, fold_phase, brightness,
                                    saturation, contrast, cutout, noise_std, padding_mode, views=1):
        return grad.new_empty(grad.shape)

    def _setup_context(ctx, inputs, output):
        # Only the parameters are needed: the gradient does not depend on x's values.
        ctx.save_for_backward(*inputs[1:10])
        ctx.padding_mode = inputs[11]
        ctx.views = inputs[12] if len(inputs) > 12 else 1

    def _backward(ctx, grad):
        grad_x = torch.ops.kaleido_cuda.kaleidoscope_backward(grad, *ctx.saved_tensors, ctx.padding_mode, ctx.views)
        return (grad_x,) + (None,) * 12

    def _backward_setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[1:10])
        ctx.padding_mode = inputs[10]
        ctx.views = inputs[11] if len(inputs) > 11 else 1

    def _double_backward(ctx, grad_grad_x):
        """The chain is affine in x: y = A x + b, b being the brightness offset and the noise. The
        backward is g -> A^T g, linear in g, so its own derivative applied to grad_grad_x is
        A grad_grad_x: the forward op with brightness 0 and noise 0 (docs/kt_op.md, "Gradient").
        That is a call of the differentiable forward op, so third derivatives work too."""
        affine, fold_k, centre, phase, brightness, saturation, contrast, cutout, noise_std = ctx.saved_tensors
        linear = torch.ops.kaleido_cuda.kaleidoscope(grad_grad_x, affine, fold_k, centre, phase,
                                                     torch.zeros_like(brightness), saturation, contrast, cutout,
                                                     torch.zeros_like(noise_std), 0, ctx.padding_mode, ctx.views)
        return (linear,) + (None,) * 11

    torch.library.register_autograd("kaleido_cuda::kaleidoscope", _backward, setup_context=_setup_context)
    torch.library.register_autograd("kaleido_cuda::kaleidoscope_backward", _double_backward,
                                    setup_context=_backward_setup_context)
