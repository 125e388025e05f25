"""Gradients (gradcheck in float64), the op registration (opcheck) and torch.compile."""
import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("channels", [1, 3])
def test_gradcheck_every_stage_on(padding, channels):
    x = torch.randn(2, channels, 6, 7, dtype=torch.float64, requires_grad=True)
    params = random_params(2, 6, 7, seed=11, padding_mode=padding, dtype=torch.float64)
    params.fold_k = torch.tensor([3, 5])
    params.cutout = torch.tensor([[1, 1, 3, 4], [0, 2, 6, 3]])
    assert torch.autograd.gradcheck(lambda t: kc.kaleidoscope(t, params), (x,), eps=1e-6, atol=1e-7)


def test_gradcheck_shared_parameters():
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    params = random_params(3, 5, 5, seed=3, rows=1, padding_mode="reflection", dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: kc.kaleidoscope(t, params), (x,), eps=1e-6, atol=1e-7)


def test_backward_accepts_expanded_gradients():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    params = random_params(2, 8, 8, seed=1)
    kc.kaleidoscope(x, params).sum().backward()  # grad of sum is an expanded (stride 0) tensor
    x2 = x.detach().clone().requires_grad_(True)
    kc.reference.kaleidoscope(x2, params).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-5, rtol=0)


def _op_args(x, params):
    return (x, *params.tensors(), params.seed, params.padding_mode)


@pytest.mark.parametrize("padding", ["zeros", "reflection"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(padding, dtype):
    x = torch.randn(3, 3, 7, 9, dtype=dtype, requires_grad=True)
    for rows in (1, 3):
        params = random_params(3, 7, 9, seed=rows, rows=rows, padding_mode=padding)
        torch.library.opcheck(torch.ops.kaleido_cuda.kaleidoscope.default, _op_args(x, params))
    grad = torch.randn(3, 3, 7, 9, dtype=dtype)
    torch.library.opcheck(torch.ops.kaleido_cuda.kaleidoscope_backward.default,
                          (grad, *params.tensors(), params.padding_mode))


def test_torch_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    x = torch.randn(4, 3, 10, 10, requires_grad=True)
    params = random_params(4, 10, 10, seed=4, padding_mode="reflection")

    def step(images, p):
        return (kc.kaleidoscope(images, p) ** 2).mean()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss = compiled(x, params)
    loss.backward()
    grad = x.grad.clone()
    x.grad = None
    expected = step(x, params)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, x.grad)
