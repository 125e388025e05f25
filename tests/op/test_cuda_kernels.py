"""The CUDA kernels against the CPU kernel, one test body per case for every CUDA backend of
cuda_backends.py (the emulated kernels, the emulated kernels on a small grid, a real GPU).

The CPU kernel is the oracle (it is checked against kaleido_cuda.reference elsewhere). The
backward's atomic scatter adds in another order than the CPU kernel, which is all that separates
float32 results here.
"""
import dataclasses
import itertools
import math

import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params
from cuda_backends import THREADS, assert_agrees, backend, check_case, cpu_backward, cpu_forward  # noqa: F401


# Every stage set meets every padding mode; shapes (1, 3 and 4 channels, 1 x W, H x 1, odd sizes),
# parameter rows and dtypes rotate through the list so that each meets several of them.
SHAPES = [(3, 3, 13, 17), (2, 1, 1, 29), (2, 4, 23, 1), (4, 3, 32, 32), (1, 4, 7, 5), (5, 1, 9, 11)]
STAGES = [(), ("affine",), ("fold",), ("colour",), ("cutout",), ("noise",), ("fold", "colour"), "all"]
PADDINGS = ["zeros", "border", "reflection"]
CASES = [(SHAPES[i % len(SHAPES)], padding, stages, "1" if i % 2 else "N",
          (torch.float32, torch.float64)[(i // 2) % 2])
         for i, (stages, padding) in enumerate(itertools.product(STAGES, PADDINGS))]


def _case_id(case):
    shape, padding, stages, rows, dtype = case
    stage = "all" if stages == "all" else "+".join(stages) or "identity"
    return f"{'x'.join(map(str, shape))}-{padding}-{stage}-rows{rows}-{str(dtype)[6:]}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_forward_and_backward_match_cpu(backend, case):
    shape, padding, stages, rows, dtype = case
    check_case(backend, shape, padding, stages, rows, dtype, seed=CASES.index(case))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["half", "bfloat16"])
@pytest.mark.parametrize("padding", PADDINGS)
def test_reduced_precision_matches_cpu(backend, dtype, padding):
    check_case(backend, (3, 3, 11, 13), padding, "all", "N", dtype, seed=PADDINGS.index(padding))


def test_random_cases_match_cpu(backend):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.given(n=st.integers(1, 5), c=st.sampled_from([1, 3, 4]), h=st.integers(1, 40), w=st.integers(1, 40),
                      padding=st.sampled_from(PADDINGS), stages=st.sampled_from(STAGES),
                      rows=st.sampled_from(["1", "N"]), dtype=st.sampled_from([torch.float32, torch.float64]),
                      seed=st.integers(0, 2**31))
    def run(n, c, h, w, padding, stages, rows, dtype, seed):
        check_case(backend, (n, c, h, w), padding, stages, rows, dtype, seed)

    run()


# ---- launch geometry

def test_more_images_than_grid_rows(backend):
    """n += gridDim.y: the images beyond the grid's y extent, with per-image parameters, pivot
    shares (contrast) and noise, so an image handled by the wrong row of parameters shows."""
    if backend.grid_limits[1] > 100 and backend.name != "cuda":
        pytest.skip("emulating 65535 blocks per launch is too slow: emulated-small-grid covers this loop")
    n = 2 * backend.grid_limits[1] + 1
    check_case(backend, (n, 3, 5, 4), "reflection", "all", "N", torch.float64, seed=11)


def test_planes_larger_than_the_grid_x_extent(backend):
    """The grid-stride loops taken at least twice per thread: the forward's over groups of four
    pixels (group += blockDim.x * gridDim.x), the backward's over pixels (with the per-block pivot
    reduction) and the pivot pass."""
    if backend.grid_limits[0] > 100 and backend.name != "cuda":
        pytest.skip("emulating 4096-block rows is too slow: emulated-small-grid covers this loop")
    pixels = 2 * 4 * backend.grid_limits[0] * THREADS + 1
    side = math.isqrt(pixels) + 1
    check_case(backend, (2, 3, side, side + 1), "zeros", "all", "N", torch.float32, seed=12)


def test_many_blocks_per_image_in_the_pivot_reduction(backend):
    """The backward reduces each image's pivot share per block and adds one atomic per block:
    with 7 blocks per image (40 x 40 pixels), and contrast that differs per image."""
    check_case(backend, (3, 3, 40, 40), "border", ("affine", "colour"), "N", torch.float64, seed=13)


def test_images_whose_pivot_share_is_zero(backend):
    """Contrast 1 gives a zero pivot share: pivot_kernel skips those images (its early continue)
    and must still add the share of the images after them, handled by the same block."""
    n, c, h, w = 7, 3, 9, 10
    g = torch.Generator().manual_seed(14)
    grad = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    p = random_params(n, h, w, seed=14, dtype=torch.float64, stages=("affine", "colour"))
    p.contrast = torch.tensor([1.0, 0.5, 1.0, 1.0, 1.7, 1.0, 0.8], dtype=torch.float64)
    got, want = backend.backward(grad, p), cpu_backward(grad, p)
    assert_agrees(got, want, torch.float64)
    # The share is really there for contrast != 1: the gradient is not that of contrast 1 alone.
    plain = dataclasses.replace(p, contrast=torch.ones(n, dtype=torch.float64))
    assert float((want - cpu_backward(grad, plain))[1].abs().max()) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=["float32", "float64", "half", "bfloat16"])
def test_int64_index_path(backend, monkeypatch, dtype):
    monkeypatch.setenv("KALEIDO_FORCE_INT64_INDEX", "1")
    for i, padding in enumerate(PADDINGS):
        check_case(backend, (3, 3, 17, 19), padding, "all", "N", dtype, seed=20 + i)


@pytest.mark.parametrize("shape", [(0, 3, 5, 5), (2, 0, 5, 5), (2, 3, 0, 5), (2, 3, 5, 0)])
def test_empty_tensors(backend, shape):
    x = torch.randn(*shape)
    p = kc.KTParams.identity(1)
    y, gx = backend.forward(x, p), backend.backward(x, p)
    assert y.shape == x.shape and gx.shape == x.shape


# ---- second derivatives

class _Forward(torch.autograd.Function):
    """A backend's forward kernel as a differentiable function, whose backward is the backend's
    backward kernel, itself differentiable as the op registers it (ops._double_backward)."""

    @staticmethod
    def forward(ctx, x, backend, p):
        ctx.backend, ctx.p = backend, p
        return backend.forward(x, p)

    @staticmethod
    def backward(ctx, grad):
        return _Backward.apply(grad, ctx.backend, ctx.p), None, None


class _Backward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, backend, p):
        ctx.backend, ctx.p = backend, p
        return backend.backward(grad, p)

    @staticmethod
    def backward(ctx, grad_grad):  # the forward kernel's linear part: no brightness offset, no noise
        linear = dataclasses.replace(ctx.p, brightness=torch.zeros_like(ctx.p.brightness),
                                     noise_std=torch.zeros_like(ctx.p.noise_std))
        return _Forward.apply(grad_grad, ctx.backend, linear), None, None


@pytest.mark.parametrize("padding", PADDINGS)
def test_gradgradcheck_through_the_kernels(backend, padding):
    """The backward kernel's derivative is the forward kernel without brightness and noise: checked
    against finite differences of the backward kernel itself (float64, every stage on)."""
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    p = random_params(2, 6, 7, seed=30 + PADDINGS.index(padding), padding_mode=padding, dtype=torch.float64)
    if backend.name == "cuda":  # the op as registered, on the GPU
        q = p.to("cuda")
        op = lambda t: kc.kaleidoscope(t.cuda(), q).cpu()  # noqa: E731
    else:
        op = lambda t: _Forward.apply(t, backend, p)  # noqa: E731
    # fast_mode: the check along random directions, a few kernel calls instead of two per element.
    assert torch.autograd.gradgradcheck(op, (x,), eps=1e-6, atol=1e-7, fast_mode=True)


# ---- noise

@pytest.mark.parametrize("seed", [0, 1, 2**32 + 5, 2**63 + 12345, 2**64 - 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_equals_cpu_noise(backend, seed, dtype):
    """Same seed, same noise, whatever the thread layout: bit for bit under emulation (same compiler
    and flags as the CPU kernel); within 2e-6 on a GPU, where nvcc may fuse multiply-adds differently."""
    p = kc.KTParams.identity(1, dtype=torch.float64)
    p.noise_std = torch.tensor([1.0], dtype=torch.float64)
    p.seed = seed
    x = torch.zeros(3, 3, 19, 21, dtype=dtype)
    got, want = backend.forward(x, p), cpu_forward(x, p)
    if backend.noise_exact:
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want, atol=2e-6, rtol=0)
    assert float(want.std()) > 0.9  # it is noise, not zeros
