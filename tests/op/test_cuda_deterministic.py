"""The CUDA backward under torch.use_deterministic_algorithms(True): the fixed-point scatter
(docs/kt_op.md, "Gradient"), on every backend of cuda_backends.py.

The host emulation runs blocks one at a time; set_schedule(seed) draws their order at random per
launch, and the threads of a block interleave as the OS decides. Across such schedules the atomic
path's float sums come out in different orders, and so can differ in their last bits; the
deterministic path's integer sums cannot. Both must agree with the CPU kernel.
"""
import contextlib

import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params
from cuda_backends import assert_agrees, backend, check_case, cpu_backward  # noqa: F401

SCHEDULES = range(1, 21)  # 20 shuffled block orders


@contextlib.contextmanager
def deterministic(on=True):
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(on)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@contextlib.contextmanager
def schedule(backend, seed):
    backend.module.set_schedule(seed)
    try:
        yield
    finally:
        backend.module.set_schedule(0)


def zoom_case(dtype=torch.float32, n=2, side=32):
    """A strong zoom into the image centre: each source element near it receives about 60 output
    pixels' contributions, from every block of its image, so the atomic order matters."""
    g = torch.Generator().manual_seed(40)
    grad = torch.randn(n, 3, side, side, generator=g, dtype=torch.float64).to(dtype)
    p = random_params(n, side, side, seed=40, dtype=torch.float64, stages=("colour",), padding_mode="reflection")
    p.affine = torch.tensor([[[0.13, 0.02, 0.05], [-0.01, 0.12, -0.04]]], dtype=torch.float64).repeat(n, 1, 1)
    return grad, p


def backwards_over_schedules(backend, grad, p, on):
    with deterministic(on):
        runs = []
        for seed in SCHEDULES:
            with schedule(backend, seed):
                runs.append(backend.backward(grad, p))
    return runs


def test_deterministic_backward_is_bitwise_the_same_under_shuffled_schedules(backend):
    if backend.name == "cuda":
        pytest.skip("schedules are shuffled on the emulator; the GPU twin is the repeated-run test below")
    grad, p = zoom_case()
    want = cpu_backward(grad, p)
    runs = backwards_over_schedules(backend, grad, p, on=True)
    for r in runs:
        assert torch.equal(r, runs[0])
    assert_agrees(runs[0], want, torch.float32)


def test_atomic_backward_can_differ_between_schedules(backend):
    """The default path is not bitwise deterministic, which is why the other exists: at least two of
    20 schedules give different last bits, and every one agrees with the CPU kernel."""
    if backend.name == "cuda":
        pytest.skip("schedules are shuffled on the emulator")
    grad, p = zoom_case()
    want = cpu_backward(grad, p)
    runs = backwards_over_schedules(backend, grad, p, on=False)
    for r in runs:
        assert_agrees(r, want, torch.float32)
    assert any(not torch.equal(r, runs[0]) for r in runs[1:])


def test_deterministic_backward_repeats_bitwise(backend):
    grad, p = zoom_case(n=3, side=48)
    with deterministic():
        runs = [backend.backward(grad, p) for _ in range(5)]
    assert all(torch.equal(r, runs[0]) for r in runs)
    assert_agrees(runs[0], cpu_backward(grad, p), torch.float32)


CASES = [((3, 3, 13, 17), "zeros", torch.float32), ((2, 1, 1, 29), "border", torch.float64),
         ((2, 4, 23, 1), "reflection", torch.float32), ((4, 3, 32, 32), "reflection", torch.float64),
         ((5, 1, 9, 11), "zeros", torch.float16), ((3, 3, 11, 13), "border", torch.bfloat16)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{'x'.join(map(str, c[0]))}-{c[1]}-{str(c[2])[6:]}")
@pytest.mark.parametrize("rows", ["1", "N"])
def test_deterministic_backward_matches_cpu(backend, case, rows):
    shape, padding, dtype = case
    with deterministic():
        check_case(backend, shape, padding, "all", rows, dtype, seed=CASES.index(case))


def test_deterministic_backward_int64_index_path(backend, monkeypatch):
    monkeypatch.setenv("KALEIDO_FORCE_INT64_INDEX", "1")
    with deterministic():
        check_case(backend, (3, 3, 17, 19), "reflection", "all", "N", torch.float32, seed=50)
        check_case(backend, (2, 3, 9, 8), "zeros", "all", "1", torch.float64, seed=51)


@pytest.mark.parametrize("exponent", [-100, -20, 40, 100])
def test_fixed_point_scale_follows_the_gradient(backend, exponent):
    """Each image's fixed-point scale comes from its largest upstream gradient, so scaling the
    gradient by 2^k scales the result by exactly 2^k: no overflow of the 64-bit sums for large
    gradients, no loss to rounding for small ones (float32 spans 2^-126 to 2^127)."""
    grad, p = zoom_case()
    with deterministic():
        base = backend.backward(grad, p)
        scaled = backend.backward(grad * 2.0**exponent, p)
    assert torch.equal(scaled, base * 2.0**exponent)


def test_images_scale_independently(backend):
    """Image 1's gradient is 2^60 times larger: each image has its own scale, so image 0's result
    is bitwise what it is alone (one scale for the batch would round image 0 to nothing)."""
    grad, p = zoom_case()
    big = grad.clone()
    big[1] *= 2.0**60
    with deterministic():
        base, got = backend.backward(grad, p), backend.backward(big, p)
    assert torch.equal(got[0], base[0])
    assert_agrees(got[1] * 2.0**-60, cpu_backward(grad, p)[1], torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_many_same_sign_contributions_fit_the_fixed_point_range(backend, dtype):
    """A constant upstream gradient under the zoom: every contribution to an element has the same
    sign and nearly the largest size, and about 64 pixels add to each element near the centre, so
    the sums come close to what the scale's H W headroom allows (without it they overflow)."""
    grad, p = zoom_case(dtype=dtype)
    grad = torch.ones_like(grad)
    with deterministic():
        got = backend.backward(grad, p)
    want = cpu_backward(grad, p)
    assert float(want.abs().max()) > 30  # the sums really are many contributions deep
    assert_agrees(got, want, dtype)


def test_zero_gradient_gives_zero(backend):
    grad, p = zoom_case()
    grad[0] = 0
    with deterministic():
        got = backend.backward(grad, p)
    assert torch.equal(got[0], torch.zeros_like(got[0]))
    assert_agrees(got, cpu_backward(grad, p), torch.float32)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_upstream_gradient_gives_nan_for_its_image(backend, bad):
    """An inf or NaN in image 0's upstream gradient has no fixed-point scale: image 0's gradient is
    NaN throughout (loud, where the atomic path spreads it to the elements it reaches), image 1's is
    unchanged."""
    grad, p = zoom_case()
    grad[0, 1, 5, 7] = bad
    with deterministic():
        got = backend.backward(grad, p)
    assert torch.isnan(got[0]).all()
    assert_agrees(got[1:], cpu_backward(grad, p)[1:], torch.float32)


def test_gradcheck_under_deterministic_mode():
    """The op's autograd under deterministic mode, on the CPU (its kernel is deterministic already)
    and through the registered CUDA op when there is a GPU."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and kc.build_info()["cuda_compiled"] else [])
    for device in devices:
        x = torch.randn(2, 3, 6, 7, dtype=torch.float64, device=device, requires_grad=True)
        p = random_params(2, 6, 7, seed=60, dtype=torch.float64).to(device)
        with deterministic():
            assert torch.autograd.gradcheck(lambda t: kc.kaleidoscope(t, p), (x,), eps=1e-6, atol=1e-7)
