"""Float32 geometry (kt_math.h, docs/kt_op.md "Precision"): float32, float16 and bfloat16 inputs
compute the fold, affine, padding and bilinear weights in float32. These tests hold the float32 op
to the float64 op on the same images within the stated bound, for every stage and padding mode:
a coordinate error of at most 2^-19 pixel per pixel of image side, which moves a value by at most
that much times the largest step between neighbouring pixels (1 for images in [0, 1])."""
import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params

STAGES = [("affine",), ("fold",), ("affine", "fold"), ("colour",), ("cutout",), ("noise",), "all"]
PADDINGS = ["zeros", "border", "reflection"]


def coordinate_bound(side: int) -> float:
    """The stated float32 coordinate error, in pixels, for an image of this side."""
    return side * 2.0 ** -19


def _compare(side, stages, padding, seed, n=2, channels=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, side, side, dtype=torch.float64, generator=g)
    p = random_params(n, side, side, seed=seed, padding_mode=padding, dtype=torch.float64, stages=stages)
    x32 = x.float().requires_grad_(True)
    x64 = x.clone().requires_grad_(True)
    y32, y64 = kc.kaleidoscope(x32, p), kc.kaleidoscope(x64, p)
    upstream = torch.randn(y64.shape, dtype=torch.float64, generator=g)
    y32.backward(upstream.float())
    y64.backward(upstream)
    return (y32.double() - y64).abs().max().item(), (x32.grad.double() - x64.grad).abs().max().item(), \
        float(x64.grad.abs().max())


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("stages", STAGES, ids=lambda s: "+".join(s) if isinstance(s, tuple) else s)
@pytest.mark.parametrize("side", [32, 256])
def test_float32_geometry_within_the_stated_bound(side, stages, padding):
    for seed in range(3):
        value_err, grad_err, grad_scale = _compare(side, stages, padding, seed)
        # Images in [0, 1]: a neighbour step is at most 1, plus float32's own rounding of the value.
        assert value_err <= coordinate_bound(side) + 1e-6, (seed, value_err)
        # The gradient scatters each output's upstream value with the same bilinear weights.
        assert grad_err <= (coordinate_bound(side) * 4 + 1e-6) * max(1.0, grad_scale), (seed, grad_err)


@pytest.mark.parametrize("padding", PADDINGS)
def test_float32_geometry_at_1024_pixels(padding):
    value_err, grad_err, grad_scale = _compare(1024, "all", padding, seed=5, n=1, channels=1)
    assert value_err <= coordinate_bound(1024) + 1e-6
    assert grad_err <= (coordinate_bound(1024) * 4 + 1e-6) * max(1.0, grad_scale)


def test_float32_identity_flip_and_whole_pixel_shift_are_exact():
    """Pixel-space coefficients make the maps DSA and crops rely on exact in float32 too."""
    x = torch.rand(2, 3, 37, 53)
    p = kc.KTParams.identity(1)
    assert torch.equal(kc.kaleidoscope(x, p), x)
    p.affine = torch.tensor([[[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # horizontal flip
    assert torch.equal(kc.kaleidoscope(x, p), x.flip(-1))
    p.affine = torch.tensor([[[1.0, 0.0, 2 * 3 / 53], [0.0, 1.0, -2 * 5 / 37]]])  # 3 px right, 5 px up in the source
    y = kc.kaleidoscope(x, p)
    assert torch.equal(y[..., 5:, : 53 - 3], x[..., : 37 - 5, 3:])


def test_float32_geometry_refuses_sides_beyond_its_precision():
    # The Python check reads its limit from the kernels (kaleido_cuda/_compiled.py), so it refuses
    # exactly what the C++ check behind it would refuse, with a ValueError instead of a RuntimeError.
    p = kc.KTParams.identity(1)
    with pytest.raises(ValueError, match="image side 16385 exceeds 16384.*convert the images to float64"):
        kc.kaleidoscope(torch.zeros(1, 1, 1, 16385), p)
    with pytest.raises(RuntimeError, match="sides above 16384 are refused: convert the images to float64"):
        torch.ops.kaleido_cuda.kaleidoscope(torch.zeros(1, 1, 1, 16385), *p.tensors(), 0, p.padding_mode)
    assert kc.kaleidoscope(torch.zeros(1, 1, 1, 16385, dtype=torch.float64), p).shape == (1, 1, 1, 16385)
    assert kc.kaleidoscope(torch.zeros(1, 1, 2, 16384), p).shape == (1, 1, 2, 16384)
