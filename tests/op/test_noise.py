"""The Philox generator: known answers, statistics, determinism, same draws as the reference."""
import math

import pytest
import torch

import kaleido_cuda as kc
from kaleido_cuda import _C
from kaleido_cuda.reference import philox4x32_10, philox_normals

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
# Planes that end mid-group; rows wider than the CPU kernel's noise run (2048 elements: a run per
# row); runs of 49 rows that end mid-image and mid-group.
@pytest.mark.parametrize("shape", [(2, 3, 8, 9), (1, 2, 1, 7), (3, 1, 5, 1), (2, 2, 3, 2051), (3, 2, 70, 41)])
def test_kernel_noise_equals_reference_noise(seed, shape):
    x = torch.zeros(*shape, dtype=torch.float64)
    got = kc.kaleidoscope(x, _noise_params(1.0, seed).to("cpu"))
    torch.testing.assert_close(got, philox_normals(shape, seed, torch.float64), atol=1e-12, rtol=0)


def test_one_philox_block_gives_four_consecutive_normals_of_a_plane():
    # The stream's layout, from the Philox block itself: group 5 of plane 4 (image 1, channel 1 of 3).
    seed = 2**40 + 17
    r = [int(w) for w in philox4x32_10([5, 4, 0, 0], [seed & 0xFFFFFFFF, seed >> 32])]
    expected = []
    for radius_word, angle_word in ((r[0], r[1]), (r[2], r[3])):
        radius = math.sqrt(-2 * math.log((radius_word + 1) * 2.0**-32))
        angle = 2 * math.pi * angle_word * 2.0**-32
        expected += [radius * math.cos(angle), radius * math.sin(angle)]
    z = kc.kaleidoscope(torch.zeros(2, 3, 4, 6, dtype=torch.float64), _noise_params(1.0, seed))
    got = z[1, 1].flatten()[20:24]  # elements 20-23 of the plane: group 5
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)


def test_noise_is_independent_between_neighbours_and_has_a_normal_histogram():
    # Neighbours share a Philox block (lanes of one group, the two values of one Box-Muller pair)
    # or not: no correlation at any lag up to 8 along a row, and the histogram is a normal one.
    z = kc.kaleidoscope(torch.zeros(16, 3, 64, 64, dtype=torch.float64), _noise_params(1.0, 2024))
    flat = z.flatten(2)  # (N, C, HW): neighbours along the plane
    for lag in range(1, 9):
        a, b = flat[..., :-lag].flatten(), flat[..., lag:].flatten()
        assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.01, lag
    pairs = flat.view(-1, 2)  # (z0, z1) and (z2, z3) of every block: cos and sin of one angle
    assert abs(float(torch.corrcoef(pairs.T)[0, 1])) < 0.01
    assert abs(float((pairs ** 2).sum(1).mean()) - 2) < 0.02  # the squared radius of a pair: chi-square(2)
    edges = torch.distributions.Normal(0.0, 1.0).icdf(torch.arange(1, 20, dtype=torch.float64) / 20)
    counts = torch.bincount(torch.bucketize(z.flatten(), edges), minlength=20).double()
    chi2 = float(((counts - z.numel() / 20) ** 2 / (z.numel() / 20)).sum())
    assert chi2 < 43.82  # the 99.9% point of chi-square with 19 degrees of freedom
