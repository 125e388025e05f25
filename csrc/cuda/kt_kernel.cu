// CUDA kernels: grid-stride loops over the header's pixel functions (the forward's over groups of
// four pixels, which share their noise's Philox blocks). blockIdx.y walks images,
// so every thread of a block shares one parameter row and the per-image pivot reduction is
// one atomic per block. The backward scatters with atomicAdd (not bitwise deterministic).
// Without a GPU this file still runs in the tests, unchanged, through the host emulation of CUDA
// in csrc/tests/cuda_emu (docs/cuda.md).
#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "kaleido/kt_index.h"
#include "kaleido/kt_math.h"
#include "kt_launch.h"

// Grid limits used by grid_for. A build may lower them through this macro: the host emulation of
// CUDA in the tests does, so that small tensors take every grid-stride loop more than once.
#ifndef KALEIDO_GRID_LIMIT
#define KALEIDO_GRID_LIMIT(axis, production) (production)
#endif

namespace kaleido {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridX = 4096;
constexpr int64_t kMaxGridY = 65535;
// The int32 kernels rely on a grid stride never carrying an index past int32 (index32_fits).
static_assert(kThreads * kMaxGridX <= kIndex32Headroom, "grid stride beyond the int32 headroom");

// One thread per noise group: four consecutive pixels of a plane, which share one Philox block
// per channel (forward_group). Four pixels' taps are live at once, so ptxas is told how many
// blocks per SM to plan for: two for float accumulation (at most 128 registers, the occupancy of
// the float32 path), one for double (gradcheck's precision), which otherwise spills.
template <typename acc_t>
constexpr int kForwardMinBlocks = sizeof(acc_t) == 8 ? 1 : 2;

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads, kForwardMinBlocks<acc_t>)
    forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, const double* __restrict__ frows,
                   const int64_t* __restrict__ irows, const acc_t* __restrict__ means, uint64_t seed,
                   index_t N, index_t C, index_t H, index_t W, index_t rows, int padding) {
  const index_t plane = H * W;
  const index_t groups = (plane + 3) / 4;
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const index_t r = rows == 1 ? 0 : n;
    const SampleParams<acc_t> p = load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
    const ColourTerms<acc_t> terms = colour_terms(p, C, means[n]);
    const int64_t image = static_cast<int64_t>(n) * C * plane;  // can pass int32 with the int32 kernels
    for (index_t group = blockIdx.x * blockDim.x + threadIdx.x; group < groups;
         group += blockDim.x * gridDim.x) {
      const index_t first = group * 4;
      const int lanes = plane - first < 4 ? static_cast<int>(plane - first) : 4;
      index_t i = first / W, j = first - i * W;
      Taps<acc_t, index_t> taps[4];
KT_UNROLL
      for (int l = 0; l < 4; ++l) {
        taps[l] = l < lanes ? compute_taps<acc_t, index_t>(p, i, j, H, W, padding) : Taps<acc_t, index_t>{};
        j += 1;
        if (j == W) { j = 0; i += 1; }
      }
      forward_group<scalar_t, acc_t, index_t>(p, terms, taps, lanes, x + image, y + image + first, plane, C, seed,
                                              static_cast<uint64_t>(n) * static_cast<uint64_t>(C),
                                              static_cast<uint32_t>(group));
    }
  }
}

template <typename acc_t>
struct AtomicScatter {
  __device__ __forceinline__ void operator()(acc_t* ptr, acc_t value) const { atomicAdd(ptr, value); }
};

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
KT_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ grad, acc_t* __restrict__ grad_x, acc_t* __restrict__ pivot_sums,
                    const double* __restrict__ frows, const int64_t* __restrict__ irows, index_t N, index_t C,
                    index_t H, index_t W, index_t rows, int padding) {
  __shared__ acc_t warp_totals[kThreads / 32];
  const index_t plane = H * W;
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const index_t r = rows == 1 ? 0 : n;
    const SampleParams<acc_t> p = load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
    const ColourTerms<acc_t> terms = colour_terms(p, C, acc_t(0));  // mu only enters the forward
    const int64_t image = static_cast<int64_t>(n) * C * plane;
    acc_t pivot = 0;
    for (index_t pixel = blockIdx.x * blockDim.x + threadIdx.x; pixel < plane;
         pixel += blockDim.x * gridDim.x) {
      const index_t i = pixel / W, j = pixel - i * W;
      const auto taps = compute_taps<acc_t, index_t>(p, i, j, H, W, padding);
      pivot += backward_pixel<scalar_t, acc_t, index_t>(terms, taps, grad + image + pixel, grad_x + image, plane, C,
                                                        AtomicScatter<acc_t>());
    }
    // Block reduction of this image's pivot share: one atomic per block instead of per pixel.
    pivot = warp_sum(pivot);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_totals[warp] = pivot;
    __syncthreads();
    if (warp == 0) {
      acc_t total = lane < kThreads / 32 ? warp_totals[lane] : acc_t(0);
      total = warp_sum(total);
      if (lane == 0 && total != acc_t(0)) atomicAdd(pivot_sums + n, total);
    }
    __syncthreads();
  }
}

// Adds the gradient through the contrast pivot mu (pivot_gradient_share) to every element of
// each image, once the backward kernel has reduced the per-image sums.
template <typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    pivot_kernel(acc_t* __restrict grad_x, const acc_t* __restrict pivot_sums, const double* __restrict frows,
                 const int64_t* __restrict irows, index_t N, index_t per_image, index_t rows) {
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const index_t r = rows == 1 ? 0 : n;
    const SampleParams<acc_t> p = load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
    const acc_t share = pivot_gradient_share(p, pivot_sums[n], static_cast<int64_t>(per_image));
    if (share == acc_t(0)) continue;  // the same for the whole block
    acc_t* image_grad = grad_x + static_cast<int64_t>(n) * per_image;
    for (index_t e = blockIdx.x * blockDim.x + threadIdx.x; e < per_image; e += blockDim.x * gridDim.x) {
      image_grad[e] += share;
    }
  }
}

// Blocks for one thread per `per_thread` pixels of a plane (the forward's noise groups: 4), and one
// block row per image.
dim3 grid_for(const LaunchShape& s, int64_t per_thread = 1) {
  const int64_t items = (s.H * s.W + per_thread - 1) / per_thread;
  const int64_t blocks_x = std::min<int64_t>((items + kThreads - 1) / kThreads, KALEIDO_GRID_LIMIT(0, kMaxGridX));
  const int64_t blocks_y = std::min<int64_t>(s.N, KALEIDO_GRID_LIMIT(1, kMaxGridY));
  return dim3(static_cast<unsigned>(std::max<int64_t>(blocks_x, 1)), static_cast<unsigned>(std::max<int64_t>(blocks_y, 1)));
}

}  // namespace

template <typename scalar_t, typename acc_t>
void launch_forward(const scalar_t* x, scalar_t* y, const double* frows, const int64_t* irows,
                    const acc_t* means, uint64_t seed, const LaunchShape& s, cudaStream_t stream) {
  if (s.N * s.C * s.H * s.W == 0) return;
  const dim3 grid = grid_for(s, 4);
  if (s.index32) {
    forward_kernel<scalar_t, acc_t, int32_t><<<grid, kThreads, 0, stream>>>(
        x, y, frows, irows, means, seed, static_cast<int32_t>(s.N), static_cast<int32_t>(s.C),
        static_cast<int32_t>(s.H), static_cast<int32_t>(s.W), static_cast<int32_t>(s.rows), s.padding);
  } else {
    forward_kernel<scalar_t, acc_t, int64_t><<<grid, kThreads, 0, stream>>>(
        x, y, frows, irows, means, seed, s.N, s.C, s.H, s.W, s.rows, s.padding);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, typename acc_t>
void launch_backward(const scalar_t* grad, acc_t* grad_x, acc_t* pivot_sums, const double* frows,
                     const int64_t* irows, const LaunchShape& s, cudaStream_t stream) {
  if (s.N * s.C * s.H * s.W == 0) return;
  const dim3 grid = grid_for(s);
  if (s.index32) {
    backward_kernel<scalar_t, acc_t, int32_t><<<grid, kThreads, 0, stream>>>(
        grad, grad_x, pivot_sums, frows, irows, static_cast<int32_t>(s.N), static_cast<int32_t>(s.C),
        static_cast<int32_t>(s.H), static_cast<int32_t>(s.W), static_cast<int32_t>(s.rows), s.padding);
  } else {
    backward_kernel<scalar_t, acc_t, int64_t><<<grid, kThreads, 0, stream>>>(
        grad, grad_x, pivot_sums, frows, irows, s.N, s.C, s.H, s.W, s.rows, s.padding);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t per_image = s.C * s.H * s.W;
  const dim3 pivot_grid(
      static_cast<unsigned>(std::min<int64_t>((per_image + kThreads - 1) / kThreads, KALEIDO_GRID_LIMIT(0, kMaxGridX))),
      grid.y);
  if (s.index32) {
    pivot_kernel<acc_t, int32_t><<<pivot_grid, kThreads, 0, stream>>>(
        grad_x, pivot_sums, frows, irows, static_cast<int32_t>(s.N), static_cast<int32_t>(per_image),
        static_cast<int32_t>(s.rows));
  } else {
    pivot_kernel<acc_t, int64_t><<<pivot_grid, kThreads, 0, stream>>>(grad_x, pivot_sums, frows, irows, s.N,
                                                                       per_image, s.rows);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define KALEIDO_INSTANTIATE(scalar_t, acc_t)                                                             \
  template void launch_forward<scalar_t, acc_t>(const scalar_t*, scalar_t*, const double*, const int64_t*, \
                                                const acc_t*, uint64_t, const LaunchShape&, cudaStream_t); \
  template void launch_backward<scalar_t, acc_t>(const scalar_t*, acc_t*, acc_t*, const double*,         \
                                                 const int64_t*, const LaunchShape&, cudaStream_t);

KALEIDO_INSTANTIATE(float, float)
KALEIDO_INSTANTIATE(double, double)
KALEIDO_INSTANTIATE(c10::Half, float)
KALEIDO_INSTANTIATE(c10::BFloat16, float)

}  // namespace kaleido
