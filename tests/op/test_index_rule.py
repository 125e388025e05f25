"""The 32-bit index rule of both backends (csrc/include/kaleido/kt_index.h) at its boundaries,
which no test can reach with real tensors here (2^31 elements)."""
import pytest

from kaleido_cuda import _C

LIMIT = _C.index32_limit
INT32_MAX = 2**31 - 1


def test_limit_leaves_room_for_a_grid_stride():
    # kt_kernel.cu's largest grid stride is 256 threads x 4096 blocks = 2^20 (a static_assert
    # there keeps it within the 2^24 headroom): one stride past any index still fits in int32.
    assert LIMIT == INT32_MAX - 2**24
    assert LIMIT + 256 * 4096 <= INT32_MAX


@pytest.mark.parametrize("shape", [
    (1, 1, 1, LIMIT), (1, 1, LIMIT, 1), (1, LIMIT, 1, 1), (LIMIT, 1, 1, 1),
    (1, 3, 1, LIMIT // 3), (2**20, 3, 224, 224),  # 1.6e11 elements in all: images are offset in int64
])
def test_fits_up_to_the_limit(shape):
    assert _C.index32_fits(*shape)


@pytest.mark.parametrize("shape", [
    (1, 1, 1, LIMIT + 1), (1, 1, LIMIT + 1, 1), (1, LIMIT + 1, 1, 1), (LIMIT + 1, 1, 1, 1),
    (1, 3, 1, LIMIT // 3 + 1), (1, 1, 46341, 46341),  # a plane just over 2^31
    (1, 1, 2**40, 2**40), (2**62, 2**62, 2**62, 2**62),  # products that would overflow int64
    (1, -1, 4, 4),
])
def test_int64_beyond_the_limit(shape):
    assert not _C.index32_fits(*shape)
