"""The CUDA backends the kernel tests run on (tests/op/test_cuda_kernels.py,
tests/op/test_cuda_deterministic.py) and the CPU kernel they are checked against:

- "emulated": csrc/cuda/kt_kernel.cu run on the CPU through the host emulation of CUDA
  (csrc/tests/cuda_emu: concurrent threads per block, real barriers, warp exchanges and atomics),
  with the production grid limits; runs everywhere, in CI included;
- "emulated-small-grid": the same kernels with the grid capped at 2 x 3 blocks, so that small
  tensors take every grid-stride loop (pixels, images, the pivot pass) more than once;
- "cuda": the real kernels on a GPU (skipped without one), with the production limits.

Tolerances: float64 within 1e-12 of the CPU kernel; float32 within the 1e-5 (times the values'
scale) that the CPU kernel is allowed against the reference; half and bfloat16 within a unit in
the last place of their format.
"""
import os

import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params
from kaleido_cuda.ops import _signed_seed  # the op schema's int64 form of the 64-bit seed

SMALL_GRID = (2, 3)  # blocks in x (pixels of an image) and y (images) for "emulated-small-grid"
THREADS = 256        # kThreads of kt_kernel.cu

TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


class EmulatedCuda:
    """The kernels through the host emulation of CUDA, on CPU tensors."""

    def __init__(self, name, grid_limits):
        import emulated_cuda
        from torch.utils.cpp_extension import is_ninja_available

        if not is_ninja_available() and os.environ.get("KALEIDO_REQUIRE_EMU") != "1":
            pytest.skip("the emulated CUDA kernels are built with ninja: pip install ninja")
        self.name = name
        self.module = emulated_cuda.load()
        self.grid_limits = grid_limits or (4096, 65535)
        self._caps = grid_limits or (0, 0)
        self.noise_exact = True  # same compiler and flags as the CPU kernel

    def __enter__(self):
        self.module.set_grid_limits(*self._caps)
        return self

    def __exit__(self, *exc):
        self.module.set_grid_limits(0, 0)

    def forward(self, x, p):
        return self.module.forward(x, *p.tensors(), _signed_seed(p.seed), p.padding_mode, p.views)

    def backward(self, grad, p):
        return self.module.backward(grad, *p.tensors(), p.padding_mode, p.views)


class RealCuda:
    """The kernels on a GPU; results come back to the CPU."""

    name = "cuda"
    grid_limits = (4096, 65535)
    noise_exact = False  # nvcc may contract the Box-Muller polynomials into other FMAs than g++

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def forward(self, x, p):
        q = p.to("cuda")
        return torch.ops.kaleido_cuda.kaleidoscope(x.cuda(), *q.tensors(), _signed_seed(q.seed), q.padding_mode,
                                                   q.views).cpu()

    def backward(self, grad, p):
        return torch.ops.kaleido_cuda.kaleidoscope_backward(grad.cuda(), *p.to("cuda").tensors(), p.padding_mode,
                                                            p.views).cpu()


@pytest.fixture(params=["emulated", "emulated-small-grid", pytest.param("cuda", marks=pytest.mark.cuda)], scope="module")
def backend(request):
    if request.param == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU")
        if not kc.build_info()["cuda_compiled"]:
            pytest.skip("this build has no CUDA kernels")
        b = RealCuda()
    else:
        b = EmulatedCuda(request.param, SMALL_GRID if request.param == "emulated-small-grid" else None)
    with b:
        yield b


def cpu_forward(x, p):
    return torch.ops.kaleido_cuda.kaleidoscope(x, *p.tensors(), _signed_seed(p.seed), p.padding_mode, p.views)


def cpu_backward(grad, p):
    return torch.ops.kaleido_cuda.kaleidoscope_backward(grad, *p.tensors(), p.padding_mode, p.views)


def assert_agrees(got, want, dtype):
    assert got.dtype == want.dtype and got.shape == want.shape
    got, want = got.double(), want.double()
    scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
    if dtype in (torch.float16, torch.bfloat16):  # one unit in the last place, relative
        torch.testing.assert_close(got, want, atol=TOL[dtype] * scale, rtol=2 * TOL[dtype])
    else:
        torch.testing.assert_close(got, want, atol=TOL[dtype] * (scale if dtype == torch.float32 else 1.0), rtol=0)


def check_case(backend, shape, padding, stages, rows, dtype, seed):
    n, c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)
    grad = torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)
    p = random_params(n, h, w, seed=seed, rows=1 if rows == "1" else n, padding_mode=padding,
                      dtype=torch.float64, stages=stages)
    assert_agrees(backend.forward(x, p), cpu_forward(x, p), dtype)
    assert_agrees(backend.backward(grad, p), cpu_backward(grad, p), dtype)
