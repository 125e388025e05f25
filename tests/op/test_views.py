"""Averaged views (KTParams.views = V, docs/kt_op.md "Views"): y[n] is the mean of V chains of
x[n], view v reading parameter row n V + v (or the one shared row) and its own noise stream.
Checked against the reference, against V separate single-view calls, with gradcheck, opcheck and
torch.compile, through the emulated CUDA kernels (forward bit for bit, backward on both paths),
and for bad input."""
import dataclasses

import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params
from cuda_backends import assert_agrees, backend, cpu_backward, cpu_forward  # noqa: F401
from kaleido_cuda.ops import _signed_seed
from kaleido_cuda.reference import philox_normals


def view_params(n, views, h, w, *, seed, shared=False, dtype=torch.float64, padding="reflection", stages="all"):
    p = random_params(n * views, h, w, seed=seed, rows=1 if shared else n * views, padding_mode=padding,
                      dtype=dtype, stages=stages)
    return dataclasses.replace(p, views=views)


def single_view(p, v):
    """View v of every image as a params of its own (rows v, v + V, ...; views = 1)."""
    pick = (lambda t: t) if p.affine.shape[0] == 1 else (lambda t: t[v::p.views])
    return dataclasses.replace(p, views=1, **{k: pick(getattr(p, k)) for k in kc.params.TENSOR_FIELDS})


CASES = [((2, 3, 9, 11), 3, False, "reflection"), ((3, 1, 7, 5), 2, False, "zeros"),
         ((2, 4, 1, 13), 5, True, "border"), ((1, 3, 16, 16), 3, True, "reflection")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{'x'.join(map(str, c[0]))}-V{c[1]}-{'shared' if c[2] else 'rows'}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_views_match_the_reference(case, dtype):
    shape, views, shared, padding = case
    n, _, h, w = shape
    g = torch.Generator().manual_seed(views)
    x = torch.randn(*shape, generator=g, dtype=dtype)
    grad = torch.randn(*shape, generator=g, dtype=dtype)
    p = view_params(n, views, h, w, seed=views + n, shared=shared, dtype=dtype, padding=padding)
    tol = dict(atol=1e-12, rtol=0) if dtype == torch.float64 else dict(atol=2e-4, rtol=0)
    torch.testing.assert_close(kc.kaleidoscope(x, p), kc.reference.kaleidoscope(x, p), **tol)
    xr = x.clone().requires_grad_()
    kc.reference.kaleidoscope(xr, p).backward(grad)
    torch.testing.assert_close(cpu_backward(grad, p), xr.grad, **tol)


def test_views_are_the_mean_of_single_view_calls():
    """Without noise, V views equal the mean of V separate calls, one per view's rows."""
    x = torch.randn(3, 3, 12, 10, dtype=torch.float64)
    p = view_params(3, 4, 12, 10, seed=7, stages=("affine", "fold", "colour", "cutout"))
    separate = torch.stack([kc.kaleidoscope(x, single_view(p, v)) for v in range(4)]).mean(0)
    torch.testing.assert_close(kc.kaleidoscope(x, p), separate, atol=1e-13, rtol=0)


def test_each_view_draws_its_own_noise_stream():
    """View v's noise has counter word 3 = v: view 0 is the single chain's stream, the others are
    new; with only noise on, y = mean over v of sigma z_v."""
    n, c, h, w, views, sigma = 2, 3, 5, 9, 3, 0.5
    p = dataclasses.replace(kc.KTParams.identity(1, dtype=torch.float64), views=views, seed=2**63 + 11,
                            noise_std=torch.full((1,), sigma, dtype=torch.float64))
    got = kc.kaleidoscope(torch.zeros(n, c, h, w, dtype=torch.float64), p)
    z = [philox_normals((n, c, h, w), p.seed, torch.float64, view=v) for v in range(views)]
    torch.testing.assert_close(got, sigma * (z[0] + z[1] + z[2]) / views, atol=1e-12, rtol=0)
    assert float((z[1] - z[0]).abs().max()) > 0.5  # the views' streams differ
    single = kc.kaleidoscope(torch.zeros(n, c, h, w, dtype=torch.float64), dataclasses.replace(p, views=1))
    torch.testing.assert_close(single, sigma * z[0], atol=1e-12, rtol=0)


def test_one_view_is_the_single_chain_bit_for_bit():
    x = torch.randn(4, 3, 11, 9)
    p = random_params(4, 11, 9, seed=3, padding_mode="reflection")
    assert p.views == 1
    assert torch.equal(kc.kaleidoscope(x, p), torch.ops.kaleido_cuda.kaleidoscope(
        x, *p.tensors(), _signed_seed(p.seed), p.padding_mode))  # the schema's default views=1


@pytest.mark.parametrize("shared", [False, True])
def test_gradcheck_and_gradgradcheck_with_views(shared):
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    p = view_params(2, 3, 6, 7, seed=20 + shared, shared=shared)
    assert torch.autograd.gradcheck(lambda t: kc.kaleidoscope(t, p), (x,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradgradcheck(lambda t: kc.kaleidoscope(t, p), (x,), eps=1e-6, atol=1e-7)


def test_opcheck_with_views():
    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    p = view_params(2, 3, 7, 9, seed=30, dtype=torch.float32)
    torch.library.opcheck(torch.ops.kaleido_cuda.kaleidoscope.default,
                          (x, *p.tensors(), p.seed, p.padding_mode, p.views))
    grad = torch.randn(2, 3, 7, 9, requires_grad=True)
    torch.library.opcheck(torch.ops.kaleido_cuda.kaleidoscope_backward.default,
                          (grad, *p.tensors(), p.padding_mode, p.views))


def test_torch_compile_fullgraph_with_views():
    torch._dynamo.reset()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    p = view_params(2, 3, 8, 8, seed=31, dtype=torch.float32)
    step = lambda images: (kc.kaleidoscope(images, p) ** 2).mean()  # noqa: E731
    compiled = torch.compile(step, fullgraph=True)
    want, got = step(x), compiled(x)
    torch.testing.assert_close(got, want)
    (gx,) = torch.autograd.grad(got, x)
    (wx,) = torch.autograd.grad(want, x)
    torch.testing.assert_close(gx, wx)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{'x'.join(map(str, c[0]))}-V{c[1]}-{'shared' if c[2] else 'rows'}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_cuda_kernels_with_views_agree_with_cpu(backend, case, dtype):
    """The forward within tolerance (the geometry's float rounding differs between the CPU's row
    passes and the kernels' per-pixel code by an ulp, as with one view), every view's noise and
    their mean bit for bit on the emulator (the same sums in the same order), the backward on the
    atomic path and on the deterministic one, which also repeats bitwise."""
    shape, views, shared, padding = case
    n, _, h, w = shape
    g = torch.Generator().manual_seed(40 + views)
    x = torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)
    grad = torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)
    p = view_params(n, views, h, w, seed=41, shared=shared, padding=padding)
    got, want = backend.forward(x, p), cpu_forward(x, p)
    assert_agrees(got, want, dtype)
    noise_only = dataclasses.replace(view_params(n, views, h, w, seed=42, shared=shared, stages=("noise",)),
                                     padding_mode=padding)
    if backend.noise_exact:  # on zero images, as the single-view noise test: no geometry rounding
        zeros = torch.zeros_like(x)
        assert torch.equal(backend.forward(zeros, noise_only), cpu_forward(zeros, noise_only))
    assert_agrees(backend.backward(grad, p), cpu_backward(grad, p), dtype)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first, second = backend.backward(grad, p), backend.backward(grad, p)
    finally:
        torch.use_deterministic_algorithms(before)
    assert torch.equal(first, second)
    assert_agrees(first, cpu_backward(grad, p), dtype)


@pytest.mark.parametrize("views", [0, -2, 1.5, True, "3"])
def test_bad_views_are_refused(views):
    p = dataclasses.replace(kc.KTParams.identity(1), views=views)
    with pytest.raises(ValueError, match="views must be an int >= 1"):
        kc.kaleidoscope(torch.rand(2, 3, 4, 4), p)


def test_rows_that_are_neither_one_nor_n_views_are_refused():
    p = dataclasses.replace(kc.KTParams.identity(2), views=3)  # 2 rows for 2 images x 3 views
    with pytest.raises(ValueError, match=r"expected N x views = 2 x 3 = 6 or 1"):
        kc.kaleidoscope(torch.rand(2, 3, 4, 4), p)
    with pytest.raises(RuntimeError, match="views must be >= 1"):
        torch.ops.kaleido_cuda.kaleidoscope(torch.rand(2, 3, 4, 4), *kc.KTParams.identity(1).tensors(), 0, "zeros", 0)
    with pytest.raises(RuntimeError, match=r"leading dimension 6 \(N images x 3 views\) or 1"):
        torch.ops.kaleido_cuda.kaleidoscope_backward(torch.rand(2, 3, 4, 4), *kc.KTParams.identity(2).tensors(),
                                                     "zeros", 3)
