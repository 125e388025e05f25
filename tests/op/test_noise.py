"""The Philox generator: known answers, statistics, determinism, same draws as the reference."""
import pytest
import torch

import kaleido_cuda as kc
from kaleido_cuda import _C
from kaleido_cuda.reference import philox4x32_10, philox_normal

KNOWN_ANSWERS = [  # Random123 known-answer vectors for Philox4x32-10: (counter, key) -> output
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("counter,key,expected", KNOWN_ANSWERS)
def test_philox_known_answers_compiled_header(counter, key, expected):
    assert list(_C.philox4x32_10(counter, key)) == expected


@pytest.mark.parametrize("counter,key,expected", KNOWN_ANSWERS)
def test_philox_known_answers_reference(counter, key, expected):
    assert [int(w) for w in philox4x32_10(counter, key)] == expected


def _noise_params(sigma, seed):
    p = kc.KTParams.identity(1)
    p.noise_std = torch.tensor([sigma])
    p.seed = seed
    return p


def test_noise_statistics():
    x = torch.zeros(8, 3, 64, 64)
    z = kc.kaleidoscope(x, _noise_params(0.5, 123)) / 0.5
    assert abs(float(z.mean())) < 0.01
    assert abs(float(z.std()) - 1) < 0.01
    # Gaussian tails: about 4.55% beyond 2 sigma.
    assert abs(float((z.abs() > 2).float().mean()) - 0.0455) < 0.005


def test_same_seed_same_noise_other_seed_other_noise():
    x = torch.randn(2, 3, 16, 16)
    a = kc.kaleidoscope(x, _noise_params(0.1, 7))
    torch.testing.assert_close(a, kc.kaleidoscope(x, _noise_params(0.1, 7)), atol=0, rtol=0)
    b = kc.kaleidoscope(x, _noise_params(0.1, 8))
    assert float((a - b).abs().max()) > 0.1


def test_noise_is_independent_of_thread_count():
    x = torch.randn(4, 3, 32, 32)
    p = _noise_params(0.3, 99)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kc.kaleidoscope(x, p)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one, kc.kaleidoscope(x, p), atol=0, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2**32 + 5, 2**64 - 1])
def test_kernel_noise_equals_reference_noise(seed):
    x = torch.zeros(2, 3, 8, 9, dtype=torch.float64)
    got = kc.kaleidoscope(x, _noise_params(1.0, seed).to("cpu"))
    expected = philox_normal(x.numel(), seed, torch.float64).view_as(x)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
