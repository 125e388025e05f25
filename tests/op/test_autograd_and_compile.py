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


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_gradgradcheck_every_stage_on(padding):
    # The backward is linear in the incoming gradient; its derivative is the op's linear part
    # (brightness offset and noise left out, both of which this case has on).
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    params = random_params(2, 6, 7, seed=12, padding_mode=padding, dtype=torch.float64)
    params.fold_k = torch.tensor([3, 5])
    params.cutout = torch.tensor([[1, 1, 3, 4], [0, 2, 6, 3]])
    assert float(params.noise_std.abs().min()) > 0 and float(params.brightness.abs().min()) > 0
    assert torch.autograd.gradgradcheck(lambda t: kc.kaleidoscope(t, params), (x,), eps=1e-6, atol=1e-7)


def test_second_derivative_equals_the_reference_not_zero():
    # d/dx of the input gradient of sum(w * y^2): the case that used to come back as zeros.
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    params = random_params(2, 8, 8, seed=5, padding_mode="reflection", dtype=torch.float64)
    results = []
    for op in (kc.kaleidoscope, kc.reference.kaleidoscope):
        t = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((w * op(t, params) ** 2).sum(), t, create_graph=True)
        (second,) = torch.autograd.grad(grad.sum(), t)
        results.append(second)
    assert float(results[1].abs().max()) > 1.0
    torch.testing.assert_close(results[0], results[1], atol=1e-10, rtol=1e-10)


def test_matching_an_input_gradient_through_a_network_gives_the_finite_difference():
    # As gradient matching does: the gradient of a network's loss with respect to the images, taken
    # with create_graph=True through the op, then a loss on that gradient, backward to the images.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 4 * 4, 3)).double()
    params = random_params(2, 6, 6, seed=9, padding_mode="border", dtype=torch.float64)
    labels = torch.tensor([0, 2])

    def matching_loss(images, create_graph):
        loss = torch.nn.functional.cross_entropy(net(kc.kaleidoscope(images, params)), labels)
        (grad,) = torch.autograd.grad(loss, images, create_graph=create_graph)
        return (grad ** 2).sum()

    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    matching_loss(x, create_graph=True).backward()
    direction = torch.randn_like(x)
    eps = 1e-5
    plus = matching_loss((x + eps * direction).detach().requires_grad_(True), False)
    minus = matching_loss((x - eps * direction).detach().requires_grad_(True), False)
    finite = float((plus - minus) / (2 * eps))
    analytic = float((x.grad * direction).sum())
    assert abs(analytic) > 1e-5  # a silent zero (no derivative of the backward) fails here
    assert abs(analytic - finite) < 1e-6 * abs(finite)


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
    grad = torch.randn(3, 3, 7, 9, dtype=dtype, requires_grad=True)  # the backward is differentiable too
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
