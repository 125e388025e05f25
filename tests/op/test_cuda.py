"""CUDA-only checks (autograd, opcheck, determinism, devices, DSA). Skips cleanly without a GPU.
The kernels' agreement with the CPU kernel is tests/op/test_cuda_kernels.py, whose cases run both
on a GPU and on the host emulation of CUDA."""
import pytest
import torch

import kaleido_cuda as kc
from conftest import random_params, requires_cuda

pytestmark = [pytest.mark.cuda, requires_cuda]  # scripts/gpu_check.sh runs the tests marked cuda


@pytest.fixture(autouse=True)
def _need_cuda_kernels():
    if not kc.build_info()["cuda_compiled"]:
        pytest.skip("this build has no CUDA kernels")


def test_cuda_gradcheck():
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, device="cuda", requires_grad=True)
    params = random_params(2, 6, 7, seed=2, padding_mode="reflection", dtype=torch.float64).to("cuda")
    assert torch.autograd.gradcheck(lambda t: kc.kaleidoscope(t, params), (x,), eps=1e-6, atol=1e-7)


def test_cuda_opcheck():
    x = torch.randn(2, 3, 9, 9, device="cuda", requires_grad=True)
    params = random_params(2, 9, 9, seed=7).to("cuda")
    torch.library.opcheck(torch.ops.kaleido_cuda.kaleidoscope.default,
                          (x, *params.tensors(), params.seed, params.padding_mode))


def test_cuda_backward_under_deterministic_mode_repeats_bitwise():
    """torch.use_deterministic_algorithms(True) takes the fixed-point backward through autograd:
    the same gradient bit for bit on every run, close to the default atomic path's."""
    x = torch.randn(8, 3, 32, 32, device="cuda", requires_grad=True)
    w = torch.randn(8, 3, 32, 32, device="cuda")
    p = kc.sample_params(8, "kt", size=32, seed=3, device="cuda")

    def grad():
        return torch.autograd.grad((kc.kaleidoscope(x, p) * w).sum(), x)[0]

    fast = grad()
    torch.use_deterministic_algorithms(True)
    try:
        runs = [grad() for _ in range(5)]
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(r, runs[0]) for r in runs)
    torch.testing.assert_close(runs[0], fast, atol=1e-5 * float(fast.abs().max()), rtol=0)


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
