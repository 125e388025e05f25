// The 32-bit index rule, one function for both backends (host code; the kernels only read it).
#pragma once

#include <stdint.h>

#include <initializer_list>

namespace kaleido {

// Any grid-stride loop of the CUDA kernels steps at most this far past the end of what it walks
// (kt_kernel.cu asserts it: blockDim.x * gridDim.x <= kIndex32Headroom).
constexpr int64_t kIndex32Headroom = int64_t{1} << 24;
constexpr int64_t kIndex32Limit = int64_t{2147483647} - kIndex32Headroom;

// True when the int32 kernels may run on an (N, C, H, W) tensor: the image counter and every index
// formed within one image (element offsets, loop counters one stride past the end) fit in int32.
// Offsets of whole images (n * C * H * W) are formed in int64, so the tensor as a whole may have
// more than 2^31 elements, and output coordinates (2 j + 1) are formed in double. Either kernel
// is correct for any size; int32 is only faster.
inline bool index32_fits(int64_t N, int64_t C, int64_t H, int64_t W) {
  for (const int64_t d : {N, C, H, W}) {
    if (d < 0 || d > kIndex32Limit) return false;
  }
  const int64_t plane = H * W;  // both <= 2^31: no int64 overflow
  if (plane > kIndex32Limit) return false;
  return C * plane <= kIndex32Limit;
}

}  // namespace kaleido
