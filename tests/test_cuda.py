"""CUDA against CPU. Skips cleanly without a GPU."""
import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params, requires_cuda

pytestmark = requires_cuda


@pytest.fixture(autouse=True)
def _need_cuda_kernels():
    if not kc.build_info()["cuda_compiled"]:
        pytest.skip("this build has no CUDA kernels")


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("shape", [(4, 3, 17, 23), (2, 7, 32, 32), (3, 1, 5, 64)])
def test_cuda_matches_cpu(padding, shape):
    n, c, h, w = shape
    x = torch.randn(*shape)
    grad = torch.randn(*shape)
    params = random_params(n, h, w, seed=sum(shape), padding_mode=padding)
    outs = []
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_(True)
        y = kc.kaleidoscope(xd, params.to(device))
        (y * grad.to(device)).sum().backward()
        outs.append((y.detach().cpu(), xd.grad.cpu()))
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(outs[1][1], outs[0][1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_cuda_dtypes(dtype):
    x = torch.randn(2, 3, 16, 16).to(dtype)
    params = random_params(2, 16, 16, seed=1)
    got = kc.kaleidoscope(x.cuda(), params.to("cuda")).cpu()
    want = kc.kaleidoscope(x, params)
    torch.testing.assert_close(got.double(), want.double(), atol={torch.float64: 1e-12}.get(dtype, 1e-2), rtol=1e-2)


def test_cuda_64_bit_index_path(monkeypatch):
    monkeypatch.setenv("KALEIDO_FORCE_INT64_INDEX", "1")
    x = torch.randn(2, 3, 17, 19, dtype=torch.float64)
    params = random_params(2, 17, 19, seed=4, padding_mode="reflection", dtype=torch.float64)
    torch.testing.assert_close(kc.kaleidoscope(x.cuda(), params.to("cuda")).cpu(), kc.kaleidoscope(x, params),
                               atol=1e-9, rtol=0)


def test_cuda_same_noise_for_same_seed():
    p = kc.KTParams.identity(1)
    p.noise_std = torch.tensor([1.0])
    p.seed = 2**40 + 3
    x = torch.zeros(2, 3, 32, 32)
    torch.testing.assert_close(kc.kaleidoscope(x.cuda(), p.to("cuda")).cpu(), kc.kaleidoscope(x, p), atol=1e-5, rtol=0)


def test_cuda_gradcheck():
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, device="cuda", requires_grad=True)
    params = random_params(2, 6, 7, seed=2, padding_mode="reflection", dtype=torch.float64).to("cuda")
    assert torch.autograd.gradcheck(lambda t: kc.kaleidoscope(t, params), (x,), eps=1e-6, atol=1e-7)


def test_cuda_opcheck():
    x = torch.randn(2, 3, 9, 9, device="cuda", requires_grad=True)
    params = random_params(2, 9, 9, seed=7).to("cuda")
    torch.library.opcheck(torch.ops.kaleido_cuda.kaleidoscope.default,
                          (x, *params.tensors(), params.seed, params.padding_mode))


def test_cuda_deterministic_mode_raises():
    x = torch.randn(1, 3, 8, 8, device="cuda", requires_grad=True)
    y = kc.kaleidoscope(x, kc.KTParams.identity(1, device="cuda"))
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match="deterministic"):
            y.sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)


def test_params_on_other_device_rejected():
    x = torch.randn(1, 3, 8, 8, device="cuda")
    with pytest.raises(ValueError, match="move the parameters"):
        kc.kaleidoscope(x, kc.KTParams.identity(1))


def test_params_round_trip_to_cuda_keeps_values():
    p = kc.sample_params(6, "kt", size=16, seed=2, cutout=0.25)
    back = p.to("cuda").to("cpu")
    for before, after in zip(p.tensors(), back.tensors()):
        assert torch.equal(before, after)


@pytest.mark.parametrize("mode", ["S", "M"])
def test_cuda_dsa_matches_cpu_for_the_same_seed(mode):
    from kaleido_cuda.dsa import DiffAugment, ParamDiffAug

    param = ParamDiffAug()
    param.aug_mode = mode
    x = torch.rand(16, 3, 32, 32)
    for seed in range(6):
        cpu = DiffAugment(x, seed=seed, param=param)
        gpu = DiffAugment(x.cuda(), seed=seed, param=param)
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)
        gpu_eager = DiffAugment(x.cuda(), seed=seed, param=param, impl="eager")
        torch.testing.assert_close(gpu_eager.cpu(), DiffAugment(x, seed=seed, param=param, impl="eager"),
                                   atol=1e-5, rtol=1e-5)
