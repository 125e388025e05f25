"""The fused op against the reference on random shapes, channels, dtypes, padding and parameters."""
import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params
from test_float_geometry import coordinate_bound
from test_op_matches_reference import TOL, forward_and_grad

pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(n=st.integers(1, 4), c=st.sampled_from([1, 3, 4, 7]), h=st.integers(1, 19), w=st.integers(1, 19),
       dtype=st.sampled_from([torch.float32, torch.float64]),
       padding=st.sampled_from(["zeros", "border", "reflection"]), shared=st.booleans(),
       seed=st.integers(0, 2**31))
def test_forward_and_backward_match_reference(n, c, h, w, dtype, padding, shared, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    grad = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    params = random_params(n, h, w, seed=seed, rows=1 if shared else n, padding_mode=padding)
    y, gx = forward_and_grad(kc.kaleidoscope, x, params, grad)
    y_ref, gx_ref = forward_and_grad(kc.reference.kaleidoscope, x, params, grad)
    scale = max(1.0, float(y_ref.abs().max()))
    atol, atol_grad = TOL[dtype] * scale, TOL[dtype] * max(1.0, float(gx_ref.abs().max()))
    if dtype == torch.float32:
        # Float32 geometry (docs/kt_op.md, "Precision"): the op's source point is within
        # coordinate_bound pixels of the exact one, and so is the reference's own float32 grid. A
        # value moves by that times a neighbouring step of the colour-mapped image: at most
        # 2 max|x| times the colour gain (below 3 for these parameters). A gradient element
        # gathers the same weight errors from up to 16 taps of the outputs that read it.
        coordinate = 2 * coordinate_bound(max(h, w))
        atol += coordinate * 2 * 3 * float(x.abs().max())
        atol_grad += coordinate * 16 * 3 * float(grad.abs().max())
    torch.testing.assert_close(y, y_ref, atol=atol, rtol=0)
    torch.testing.assert_close(gx, gx_ref, atol=atol_grad, rtol=0)
