"""The fused op against the plain-PyTorch reference, and the reference against torch itself."""
import math

import pytest
import torch
import torch.nn.functional as F


import kaleido_cuda as kc
from conftest import random_params

TOL = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}


def forward_and_grad(fn, x, params, grad):
    x = x.detach().clone().requires_grad_(True)
    y = fn(x, params)
    (y.float() * grad.float()).sum().backward()
    return y.detach(), x.grad


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_matches_reference(dtype):
    x = torch.randn(3, 3, 11, 13).to(dtype)
    params = random_params(3, 11, 13, seed=5, padding_mode="reflection")
    y = kc.kaleidoscope(x, params)
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), kc.reference.kaleidoscope(x, params).float(), atol=TOL[dtype] * 4, rtol=TOL[dtype])


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_identity_returns_input(padding):
    x = torch.randn(5, 3, 9, 14, dtype=torch.float64)
    params = kc.KTParams.identity(1, dtype=torch.float64)
    params.padding_mode = padding
    torch.testing.assert_close(kc.kaleidoscope(x, params), x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_affine_only_equals_affine_grid_and_grid_sample(padding):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 12, 17, generator=g, dtype=torch.float64)
    params = kc.KTParams.identity(4, dtype=torch.float64)
    params.affine = params.affine + 0.5 * torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    params.padding_mode = padding
    grid = F.affine_grid(params.affine, list(x.shape), align_corners=False)
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    torch.testing.assert_close(kc.kaleidoscope(x, params), expected, atol=1e-10, rtol=0)


def _fold_only(k, phase=0.0):
    p = kc.KTParams.identity(1, dtype=torch.float64)
    p.fold_k = torch.tensor([k])
    p.fold_phase = torch.tensor([phase], dtype=torch.float64)
    return p


def test_fold_k1_is_a_mirror_about_the_centre_line():
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    # Mirror at angle 0 through the centre: the lower half is the mirror of the upper half.
    y = kc.kaleidoscope(x, _fold_only(1))
    torch.testing.assert_close(y, y.flip(2), atol=1e-12, rtol=0)
    # Phase pi/2: the mirror line is vertical, left and right halves mirror each other.
    y = kc.kaleidoscope(x, _fold_only(1, math.pi / 2))
    torch.testing.assert_close(y, y.flip(3), atol=1e-12, rtol=0)


def test_fold_k2_is_symmetric_on_both_axes():
    x = torch.randn(2, 1, 20, 20, dtype=torch.float64)
    y = kc.kaleidoscope(x, _fold_only(2))
    torch.testing.assert_close(y, y.flip(2), atol=1e-12, rtol=0)
    torch.testing.assert_close(y, y.flip(3), atol=1e-12, rtol=0)


def test_fold_keeps_the_fundamental_wedge():
    # Pixels whose angle lies in [phase, phase + pi/k) read their own position: unchanged there.
    x = torch.randn(1, 1, 32, 32, dtype=torch.float64)
    y = kc.kaleidoscope(x, _fold_only(4))
    # Upper-right wedge of 45 degrees below the +x axis in image coordinates (v grows downwards).
    i, j = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    u, v = (2 * j + 1) / 32 - 1, (2 * i + 1) / 32 - 1
    angle = torch.atan2(v, u)
    inside = (angle > 0.05) & (angle < math.pi / 4 - 0.05)
    torch.testing.assert_close(y[0, 0][inside], x[0, 0][inside], atol=1e-12, rtol=0)


@pytest.mark.parametrize("padding", ["zeros", "reflection"])
def test_64_bit_index_path_matches_reference(monkeypatch, padding):
    # The 64-bit-index kernels normally run only past 2^31 elements; force them on small data.
    monkeypatch.setenv("KALEIDO_FORCE_INT64_INDEX", "1")
    x = torch.randn(3, 3, 9, 11, dtype=torch.float64, requires_grad=True)
    params = random_params(3, 9, 11, seed=8, padding_mode=padding, dtype=torch.float64)
    y, gx = forward_and_grad(kc.kaleidoscope, x, params, torch.ones_like(x))
    y_ref, gx_ref = forward_and_grad(kc.reference.kaleidoscope, x, params, torch.ones_like(x))
    torch.testing.assert_close(y, y_ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(gx, gx_ref, atol=1e-9, rtol=0)


def test_non_contiguous_input():
    x = torch.randn(3, 8, 10, 4, dtype=torch.float64).permute(0, 3, 1, 2)  # N, C=4, H, W channels-last
    assert not x.is_contiguous()
    params = random_params(3, 8, 10, seed=2, dtype=torch.float64)
    torch.testing.assert_close(kc.kaleidoscope(x, params), kc.kaleidoscope(x.contiguous(), params))
    torch.testing.assert_close(kc.kaleidoscope(x, params), kc.reference.kaleidoscope(x, params), atol=1e-9, rtol=0)


def test_output_is_a_new_tensor_of_the_input_shape_and_dtype():
    x = torch.randn(2, 3, 5, 6)
    y = kc.kaleidoscope(x, kc.KTParams.identity(1))
    assert y.shape == x.shape and y.dtype == x.dtype and y.is_contiguous()
    assert y.data_ptr() != x.data_ptr()


def test_empty_batch_returns_empty():
    x = torch.randn(0, 3, 8, 8, requires_grad=True)
    y = kc.kaleidoscope(x, kc.KTParams.identity(1))
    assert y.shape == (0, 3, 8, 8)
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_cutout_zeroes_its_rectangle_under_identity_geometry():
    x = torch.rand(2, 3, 10, 10) + 1
    p = kc.KTParams.identity(1)
    p.cutout = torch.tensor([[2, 3, 5, 9]])
    y = kc.kaleidoscope(x, p)
    assert torch.all(y[:, :, 2:5, 3:9] == 0)
    torch.testing.assert_close(y[:, :, 5:], x[:, :, 5:])


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_nan_pixel_does_not_leak_into_padding_or_cutout(impl):
    fn = kc.kaleidoscope if impl == "fused" else kc.reference.kaleidoscope
    x = torch.rand(1, 2, 8, 8)
    x[0, :, 5, 5] = float("nan")
    p = kc.KTParams.identity(1)
    p.affine = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])  # shift by 2 pixels: 2 columns padded
    p.cutout = torch.tensor([[0, 0, 2, 8]])  # the first two source rows cut out
    y = fn(x, p)
    assert torch.all(y[..., 6:] == 0)  # padding
    assert torch.isnan(y[0, :, 5, 3]).all()  # the one output pixel that reads the NaN
    finite = torch.ones(8, 8, dtype=torch.bool)
    finite[5, 3] = False
    assert torch.isfinite(y[0][:, finite]).all()

