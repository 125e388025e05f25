// CUDA kernels: grid-stride loops over the header's pixel functions (the forward's over groups of
// four pixels, which share their noise's Philox blocks). blockIdx.y walks images,
// so every thread of a block shares one parameter row and the per-image pivot reduction is
// one atomic per block. The backward scatters with float atomicAdd (fast, not bitwise
// deterministic) or, under torch.use_deterministic_algorithms(True), with integer atomicAdd into
// 64-bit fixed point scaled per image (docs/kt_op.md, "Gradient").
// Without a GPU this file still runs in the tests, unchanged, through the host emulation of CUDA
// in csrc/tests/cuda_emu (docs/cuda.md).
#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstring>

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

// The parameters of image n's view v: row n views + v, or the one row shared by the batch.
template <typename acc_t, typename index_t>
__device__ __forceinline__ SampleParams<acc_t> view_params(const double* frows, const int64_t* irows, index_t n,
                                                           index_t v, index_t rows, index_t views) {
  const index_t r = rows == 1 ? 0 : n * views + v;
  return load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
}

// Where forward_group's values go: y itself (one view), or, with several views, the running sum
// over the views in `partial` (this thread's own pixels: no race), the last view writing their
// mean to y. The sum runs in view order, as the CPU kernel's.
template <typename scalar_t, typename acc_t>
struct StoreOutput {
  scalar_t* y;
  __device__ __forceinline__ void operator()(int64_t k, acc_t value) const { y[k] = static_cast<scalar_t>(value); }
};

template <typename scalar_t, typename acc_t>
struct StoreView {
  scalar_t* y;
  acc_t* partial;
  int64_t view, views;
  __device__ __forceinline__ void operator()(int64_t k, acc_t value) const {
    if (view == 0) {
      partial[k] = value;
      return;
    }
    const acc_t total = partial[k] + value;
    if (view + 1 < views) {
      partial[k] = total;
    } else {
      y[k] = static_cast<scalar_t>(total / static_cast<acc_t>(views));
    }
  }
};

// The taps of a group's `lanes` pixels, from its first pixel on: they wrap to the next row at a
// row's end.
template <typename acc_t, typename index_t>
__device__ __forceinline__ void group_taps(const SampleParams<acc_t>& p, index_t first, int lanes, index_t H,
                                           index_t W, int padding, Taps<acc_t, index_t> (&taps)[4]) {
  index_t i = first / W, j = first - i * W;
KT_UNROLL
  for (int l = 0; l < 4; ++l) {
    taps[l] = l < lanes ? compute_taps<acc_t, index_t>(p, i, j, H, W, padding) : Taps<acc_t, index_t>{};
    j += 1;
    if (j == W) { j = 0; i += 1; }
  }
}

// One image's groups with several views: each group's pixels run every view in turn (parameters
// re-read per view, from the cache), summing in `partial`.
template <typename scalar_t, typename acc_t, typename index_t>
__device__ void forward_image_views(const scalar_t* img, scalar_t* y, acc_t* partial, const double* frows,
                                    const int64_t* irows, acc_t mean, uint64_t seed, index_t n, index_t C,
                                    index_t H, index_t W, index_t rows, index_t views, int padding) {
  const index_t plane = H * W;
  const index_t groups = (plane + 3) / 4;
  for (index_t group = blockIdx.x * blockDim.x + threadIdx.x; group < groups; group += blockDim.x * gridDim.x) {
    const index_t first = group * 4;
    const int lanes = plane - first < 4 ? static_cast<int>(plane - first) : 4;
    for (index_t v = 0; v < views; ++v) {
      const SampleParams<acc_t> p = view_params<acc_t>(frows, irows, n, v, rows, views);
      Taps<acc_t, index_t> taps[4];
      group_taps(p, first, lanes, H, W, padding, taps);
      forward_group<scalar_t, acc_t, index_t>(
          p, colour_terms(p, C, mean), taps, lanes, img, StoreView<scalar_t, acc_t>{y + first, partial + first, v, views},
          plane, C, seed, static_cast<uint64_t>(n) * static_cast<uint64_t>(C), static_cast<uint32_t>(group),
          static_cast<uint32_t>(v));
    }
  }
}

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads, kForwardMinBlocks<acc_t>)
    forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, acc_t* __restrict__ partial,
                   const double* __restrict__ frows, const int64_t* __restrict__ irows,
                   const acc_t* __restrict__ means, uint64_t seed, index_t N, index_t C, index_t H, index_t W,
                   index_t rows, index_t views, int padding) {
  const index_t plane = H * W;
  const index_t groups = (plane + 3) / 4;
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const int64_t image = static_cast<int64_t>(n) * C * plane;  // can pass int32 with the int32 kernels
    if (views > 1) {
      forward_image_views<scalar_t, acc_t, index_t>(x + image, y + image, partial + image, frows, irows, means[n],
                                                    seed, n, C, H, W, rows, views, padding);
      continue;
    }
    const index_t r = rows == 1 ? 0 : n;
    const SampleParams<acc_t> p = load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
    const ColourTerms<acc_t> terms = colour_terms(p, C, means[n]);
    for (index_t group = blockIdx.x * blockDim.x + threadIdx.x; group < groups;
         group += blockDim.x * gridDim.x) {
      const index_t first = group * 4;
      const int lanes = plane - first < 4 ? static_cast<int>(plane - first) : 4;
      Taps<acc_t, index_t> taps[4];
      group_taps(p, first, lanes, H, W, padding, taps);
      forward_group<scalar_t, acc_t, index_t>(p, terms, taps, lanes, x + image,
                                              StoreOutput<scalar_t, acc_t>{y + image + first}, plane, C, seed,
                                              static_cast<uint64_t>(n) * static_cast<uint64_t>(C),
                                              static_cast<uint32_t>(group), 0u);
    }
  }
}

template <typename acc_t>
struct AtomicScatter {
  __device__ __forceinline__ void operator()(acc_t* ptr, acc_t value) const { atomicAdd(ptr, value); }
};

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
KT_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// The sum of every thread's v over the block, in thread 0. Every thread of the block calls it;
// `warp_totals` is the caller's shared array of kThreads / 32 T, free again when it returns.
template <typename T, typename Totals>
__device__ __forceinline__ T block_sum(T v, Totals& warp_totals) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  T total = T(0);
  if (warp == 0) {
    total = lane < kThreads / 32 ? static_cast<T>(warp_totals[lane]) : T(0);
    total = warp_sum(total);
  }
  __syncthreads();  // the next image's block_sum writes warp_totals again
  return total;
}

// One image's scatter over the pixels this thread owns: backward_pixel into grad_x (acc_t, or
// fixed point) through `scatter`; returns the thread's part of the image's pivot sum, each
// pixel's share mapped by `pivot_term` (identity, or to fixed point).
template <typename scalar_t, typename acc_t, typename index_t, typename dst_t, typename Scatter, typename PivotTerm>
__device__ __forceinline__ auto scatter_image(const SampleParams<acc_t>& p, const ColourTerms<acc_t>& terms,
                                              const scalar_t* grad, dst_t* grad_x, index_t H, index_t W,
                                              index_t C, int padding, Scatter scatter, PivotTerm pivot_term)
    -> decltype(pivot_term(acc_t(0))) {
  const index_t plane = H * W;
  decltype(pivot_term(acc_t(0))) pivot = 0;
  for (index_t pixel = blockIdx.x * blockDim.x + threadIdx.x; pixel < plane;
       pixel += blockDim.x * gridDim.x) {
    const index_t i = pixel / W, j = pixel - i * W;
    const auto taps = compute_taps<acc_t, index_t>(p, i, j, H, W, padding);
    pivot += pivot_term(backward_pixel<scalar_t, acc_t, index_t>(terms, taps, grad + pixel, grad_x, plane, C, scatter));
  }
  return pivot;
}

template <typename acc_t>
struct SameValue {
  __device__ __forceinline__ acc_t operator()(acc_t v) const { return v; }
};

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ grad, acc_t* __restrict__ grad_x, acc_t* __restrict__ pivot_sums,
                    const double* __restrict__ frows, const int64_t* __restrict__ irows, index_t N, index_t C,
                    index_t H, index_t W, index_t rows, index_t views, int padding) {
  __shared__ acc_t warp_totals[kThreads / 32];
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const int64_t image = static_cast<int64_t>(n) * C * H * W;
    for (index_t v = 0; v < views; ++v) {  // every view scatters into the same image gradient
      const SampleParams<acc_t> p = view_params<acc_t>(frows, irows, n, v, rows, views);
      const ColourTerms<acc_t> terms = colour_terms(p, C, acc_t(0));  // mu only enters the forward
      const acc_t pivot = scatter_image<scalar_t, acc_t, index_t>(p, terms, grad + image, grad_x + image, H, W, C,
                                                                  padding, AtomicScatter<acc_t>(), SameValue<acc_t>());
      // One atomic per block for this view's pivot sum instead of one per pixel.
      const acc_t total = block_sum(pivot, warp_totals);
      if (threadIdx.x == 0 && total != acc_t(0)) atomicAdd(pivot_sums + n * views + v, total);
    }
  }
}

// ---- the deterministic backward's fixed point. A contribution v to an element of image n is
// added as the integer round(v 2^e) (integer addition is associative, so the order in which the
// atomics land no longer matters), e chosen per image from its largest upstream gradient M: a
// pixel gives an element at most b = (|gain| + C |mean_gain|) M (its tap weights sum to at most
// 1) and at most H W pixels reach it, so e = 61 - ilogb(b) - ceil(log2(H W)) keeps every sum
// below 2^62 and each contribution within 2^-(e+1) of exact. The pivot sum, at most C M per pixel,
// gets its own e the same way.

// The IEEE bits of |v|: for non-negative floats, integer order is numeric order, so atomicMax on
// them finds the largest magnitude; NaN and inf compare above every finite value.
template <typename acc_t>
struct MagnitudeBits;
template <>
struct MagnitudeBits<float> {
  using type = unsigned int;
  static constexpr type kSign = 0x80000000u, kInf = 0x7f800000u, kQuietNaN = 0x7fc00000u;
};
template <>
struct MagnitudeBits<double> {
  using type = unsigned long long;
  static constexpr type kSign = 0x8000000000000000ull, kInf = 0x7ff0000000000000ull,
                        kQuietNaN = 0x7ff8000000000000ull;
};
template <typename acc_t>
using bits_t = typename MagnitudeBits<acc_t>::type;

template <typename acc_t>
__device__ __forceinline__ bits_t<acc_t> magnitude_bits(acc_t v) {
  bits_t<acc_t> bits;
  memcpy(&bits, &v, sizeof bits);
  return bits & ~MagnitudeBits<acc_t>::kSign;
}

template <typename acc_t>
__device__ __forceinline__ acc_t bits_value(bits_t<acc_t> bits) {
  acc_t v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

__device__ __forceinline__ int exponent_of(float v) { return ilogbf(v); }
__device__ __forceinline__ int exponent_of(double v) { return ilogb(v); }
__device__ __forceinline__ float times_pow2(float v, int e) { return ldexpf(v, e); }
__device__ __forceinline__ double times_pow2(double v, int e) { return ldexp(v, e); }
__device__ __forceinline__ long long nearest_integer(float v) { return llrintf(v); }
__device__ __forceinline__ long long nearest_integer(double v) { return llrint(v); }

template <typename acc_t>
__device__ __forceinline__ long long to_fixed(acc_t v, int e) {
  return nearest_integer(times_pow2(v, e));
}

template <typename acc_t>
__device__ __forceinline__ acc_t from_fixed(long long q, int e) {
  return times_pow2(static_cast<acc_t>(q), -e);
}

// The smallest k with 2^k >= n (n >= 1).
__device__ __forceinline__ int ceil_log2(int64_t n) {
  int k = 0;
  while ((int64_t(1) << k) < n) ++k;
  return k;
}

struct FixedScales {
  int scatter;  // e of the elements' sums
  int pivot;    // e of the image's pivot sum
  bool finite;  // false: M, b or the pivot bound is inf or NaN, and the image's gradient is NaN
};

template <typename acc_t>
__device__ __forceinline__ int fixed_exponent(acc_t bound, int headroom) {
  return bound > acc_t(0) ? headroom - exponent_of(bound) : 0;  // a zero bound: every value is 0
}

// The largest |gain| + C |mean_gain| over the views of image n: what one pixel of any view gives an
// element, per unit of upstream gradient.
template <typename acc_t, typename index_t>
__device__ __forceinline__ acc_t views_gain_bound(const double* frows, const int64_t* irows, index_t n, index_t C,
                                                  index_t rows, index_t views) {
  acc_t bound = 0;
  for (index_t v = 0; v < views; ++v) {
    const ColourTerms<acc_t> terms = colour_terms(view_params<acc_t>(frows, irows, n, v, rows, views), C, acc_t(0));
    const acc_t gain = kt_fabs(terms.gain) + static_cast<acc_t>(C) * kt_fabs(terms.mean_gain);
    bound = gain > bound ? gain : bound;
  }
  return bound;
}

// `contributions`: the most pixels that add to one element, H W per view.
template <typename acc_t>
__device__ __forceinline__ FixedScales fixed_scales(acc_t gain_bound, int64_t C, int64_t contributions,
                                                    bits_t<acc_t> max_bits) {
  const acc_t m = bits_value<acc_t>(max_bits);
  const acc_t per_pixel = gain_bound * m;
  const acc_t pivot_per_pixel = static_cast<acc_t>(C) * m;
  const int headroom = 61 - ceil_log2(contributions);
  FixedScales s;
  s.finite = max_bits < MagnitudeBits<acc_t>::kInf && magnitude_bits(per_pixel) < MagnitudeBits<acc_t>::kInf &&
             magnitude_bits(pivot_per_pixel) < MagnitudeBits<acc_t>::kInf;
  s.scatter = fixed_exponent(per_pixel, headroom);
  s.pivot = fixed_exponent(pivot_per_pixel, headroom);
  return s;
}

// The scatter of backward_pixel into fixed point: one integer atomic per non-zero contribution
// (two's complement addition wraps the same in unsigned arithmetic).
template <typename acc_t>
struct FixedScatter {
  int e;
  __device__ __forceinline__ void operator()(long long* ptr, acc_t value) const {
    const long long q = to_fixed(value, e);
    if (q != 0) atomicAdd(reinterpret_cast<unsigned long long*>(ptr), static_cast<unsigned long long>(q));
  }
};

template <typename acc_t>
struct FixedTerm {
  int e;
  __device__ __forceinline__ long long operator()(acc_t v) const { return to_fixed(v, e); }
};

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
KT_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) {
    const T other = __shfl_down_sync(0xffffffffu, v, offset);
    v = other > v ? other : v;
  }
  return v;
}

// Pass 1: M of each image, as the bits of its largest |grad| (one atomicMax per warp).
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    max_grad_kernel(const scalar_t* __restrict__ grad, bits_t<acc_t>* __restrict__ max_bits, index_t N,
                    index_t per_image) {
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const scalar_t* image = grad + static_cast<int64_t>(n) * per_image;
    bits_t<acc_t> largest = 0;
    for (index_t e = blockIdx.x * blockDim.x + threadIdx.x; e < per_image; e += blockDim.x * gridDim.x) {
      const bits_t<acc_t> bits = magnitude_bits(static_cast<acc_t>(image[e]));
      largest = bits > largest ? bits : largest;
    }
    largest = warp_max(largest);
    if ((threadIdx.x & 31) == 0 && largest != 0) atomicMax(max_bits + n, largest);
  }
}

// Pass 2: the scatter of backward_kernel, into fixed point.
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    backward_fixed_kernel(const scalar_t* __restrict__ grad, long long* __restrict__ fixed,
                          long long* __restrict__ pivot_fixed, const bits_t<acc_t>* __restrict__ max_bits,
                          const double* __restrict__ frows, const int64_t* __restrict__ irows, index_t N,
                          index_t C, index_t H, index_t W, index_t rows, index_t views, int padding) {
  __shared__ long long warp_totals[kThreads / 32];
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const FixedScales scales = fixed_scales(views_gain_bound<acc_t>(frows, irows, n, C, rows, views), C,
                                            static_cast<int64_t>(views) * H * W, max_bits[n]);
    if (!scales.finite) continue;  // the same for the whole block; pass 3 writes NaN
    const int64_t image = static_cast<int64_t>(n) * C * H * W;
    for (index_t v = 0; v < views; ++v) {
      const SampleParams<acc_t> p = view_params<acc_t>(frows, irows, n, v, rows, views);
      const long long pivot = scatter_image<scalar_t, acc_t, index_t>(
          p, colour_terms(p, C, acc_t(0)), grad + image, fixed + image, H, W, C, padding,
          FixedScatter<acc_t>{scales.scatter}, FixedTerm<acc_t>{scales.pivot});
      const long long total = block_sum(pivot, warp_totals);
      if (threadIdx.x == 0 && total != 0) {
        atomicAdd(reinterpret_cast<unsigned long long*>(pivot_fixed + n * views + v),
                  static_cast<unsigned long long>(total));
      }
    }
  }
}

// The pivot share of image n summed over its views, from the fixed-point pivot sums. Not inlined:
// its float divisions' slow path then does not make the conversion loop spill (int64 indices).
template <typename acc_t, typename index_t>
__device__ __noinline__ acc_t fixed_pivot_share(const long long* pivot_fixed, const double* frows,
                                                const int64_t* irows, index_t n, index_t rows, index_t views,
                                                int scale, int64_t per_image) {
  acc_t share = 0;
  for (index_t v = 0; v < views; ++v) {
    const SampleParams<acc_t> p = view_params<acc_t>(frows, irows, n, v, rows, views);
    share += pivot_gradient_share(p, from_fixed<acc_t>(pivot_fixed[n * views + v], scale), per_image);
  }
  return share;
}

// Pass 3: grad_x = the fixed-point sums back in acc_t, plus the pivot share (pivot_kernel's), or
// NaN throughout an image whose upstream gradient has no fixed-point scale.
template <typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    fixed_to_grad_kernel(acc_t* __restrict__ grad_x, const long long* __restrict__ fixed,
                         const long long* __restrict__ pivot_fixed, const bits_t<acc_t>* __restrict__ max_bits,
                         const double* __restrict__ frows, const int64_t* __restrict__ irows, index_t N, index_t C,
                         index_t plane, index_t rows, index_t views) {
  const index_t per_image = C * plane;
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const FixedScales scales = fixed_scales(views_gain_bound<acc_t>(frows, irows, n, C, rows, views), C,
                                            static_cast<int64_t>(views) * plane, max_bits[n]);
    const acc_t share = scales.finite ? fixed_pivot_share<acc_t, index_t>(pivot_fixed, frows, irows, n, rows, views,
                                                                          scales.pivot, per_image)
                                      : acc_t(0);
    const acc_t nan = bits_value<acc_t>(MagnitudeBits<acc_t>::kQuietNaN);
    const acc_t inverse = acc_t(1) / static_cast<acc_t>(views);  // y is the views' mean
    const int64_t image = static_cast<int64_t>(n) * per_image;
    for (index_t e = blockIdx.x * blockDim.x + threadIdx.x; e < per_image; e += blockDim.x * gridDim.x) {
      const acc_t sum = from_fixed<acc_t>(fixed[image + e], scales.scatter) + share;
      grad_x[image + e] = !scales.finite ? nan : views > 1 ? sum * inverse : sum;
    }
  }
}

// Adds the gradient through the contrast pivot mu (pivot_gradient_share, summed over the views)
// to every element of each image, once the backward kernel has reduced the per-view sums; with
// several views, then divides by their number (y is their mean).
template <typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    pivot_kernel(acc_t* __restrict grad_x, const acc_t* __restrict pivot_sums, const double* __restrict frows,
                 const int64_t* __restrict irows, index_t N, index_t per_image, index_t rows, index_t views) {
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    acc_t share = 0;
    for (index_t v = 0; v < views; ++v) {
      const SampleParams<acc_t> p = view_params<acc_t>(frows, irows, n, v, rows, views);
      share += pivot_gradient_share(p, pivot_sums[n * views + v], static_cast<int64_t>(per_image));
    }
    acc_t* image_grad = grad_x + static_cast<int64_t>(n) * per_image;
    if (views > 1) {  // times 1 / views, as the CPU kernel (a division per element would spill)
      const acc_t inverse = acc_t(1) / static_cast<acc_t>(views);
      for (index_t e = blockIdx.x * blockDim.x + threadIdx.x; e < per_image; e += blockDim.x * gridDim.x) {
        image_grad[e] = (image_grad[e] + share) * inverse;
      }
      continue;
    }
    if (share == acc_t(0)) continue;  // the same for the whole block
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

// Blocks for one thread per element of an image (C H W), one block row per image: the passes
// that add to, or convert, whole images.
dim3 image_grid(const LaunchShape& s) {
  const int64_t per_image = s.C * s.H * s.W;
  const int64_t blocks_x = std::min<int64_t>((per_image + kThreads - 1) / kThreads, KALEIDO_GRID_LIMIT(0, kMaxGridX));
  return dim3(static_cast<unsigned>(std::max<int64_t>(blocks_x, 1)), grid_for(s).y);
}

// The three passes of the deterministic backward, with index_t the kernels' index type.
template <typename scalar_t, typename acc_t, typename index_t>
void launch_backward_fixed(const scalar_t* grad, acc_t* grad_x, const FixedBuffers& buffers, const double* frows,
                           const int64_t* irows, const LaunchShape& s, cudaStream_t stream) {
  auto* fixed = static_cast<long long*>(buffers.fixed);
  auto* pivot_fixed = static_cast<long long*>(buffers.pivot_fixed);
  auto* max_bits = static_cast<bits_t<acc_t>*>(buffers.max_bits);
  const auto N = static_cast<index_t>(s.N), C = static_cast<index_t>(s.C);
  const auto H = static_cast<index_t>(s.H), W = static_cast<index_t>(s.W), rows = static_cast<index_t>(s.rows);
  const auto views = static_cast<index_t>(s.views);
  const dim3 whole_images = image_grid(s);
  max_grad_kernel<scalar_t, acc_t, index_t><<<whole_images, kThreads, 0, stream>>>(grad, max_bits, N, C * H * W);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  backward_fixed_kernel<scalar_t, acc_t, index_t><<<grid_for(s), kThreads, 0, stream>>>(
      grad, fixed, pivot_fixed, max_bits, frows, irows, N, C, H, W, rows, views, s.padding);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  fixed_to_grad_kernel<acc_t, index_t><<<whole_images, kThreads, 0, stream>>>(grad_x, fixed, pivot_fixed, max_bits,
                                                                             frows, irows, N, C, H * W, rows, views);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

template <typename scalar_t, typename acc_t>
void launch_forward(const scalar_t* x, scalar_t* y, acc_t* partial, const double* frows, const int64_t* irows,
                    const acc_t* means, uint64_t seed, const LaunchShape& s, cudaStream_t stream) {
  if (s.N * s.C * s.H * s.W == 0) return;
  const dim3 grid = grid_for(s, 4);
  if (s.index32) {
    forward_kernel<scalar_t, acc_t, int32_t><<<grid, kThreads, 0, stream>>>(
        x, y, partial, frows, irows, means, seed, static_cast<int32_t>(s.N), static_cast<int32_t>(s.C),
        static_cast<int32_t>(s.H), static_cast<int32_t>(s.W), static_cast<int32_t>(s.rows),
        static_cast<int32_t>(s.views), s.padding);
  } else {
    forward_kernel<scalar_t, acc_t, int64_t><<<grid, kThreads, 0, stream>>>(
        x, y, partial, frows, irows, means, seed, s.N, s.C, s.H, s.W, s.rows, s.views, s.padding);
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
        static_cast<int32_t>(s.H), static_cast<int32_t>(s.W), static_cast<int32_t>(s.rows),
        static_cast<int32_t>(s.views), s.padding);
  } else {
    backward_kernel<scalar_t, acc_t, int64_t><<<grid, kThreads, 0, stream>>>(
        grad, grad_x, pivot_sums, frows, irows, s.N, s.C, s.H, s.W, s.rows, s.views, s.padding);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t per_image = s.C * s.H * s.W;
  const dim3 pivot_grid = image_grid(s);
  if (s.index32) {
    pivot_kernel<acc_t, int32_t><<<pivot_grid, kThreads, 0, stream>>>(
        grad_x, pivot_sums, frows, irows, static_cast<int32_t>(s.N), static_cast<int32_t>(per_image),
        static_cast<int32_t>(s.rows), static_cast<int32_t>(s.views));
  } else {
    pivot_kernel<acc_t, int64_t><<<pivot_grid, kThreads, 0, stream>>>(grad_x, pivot_sums, frows, irows, s.N,
                                                                       per_image, s.rows, s.views);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, typename acc_t>
void launch_backward_deterministic(const scalar_t* grad, acc_t* grad_x, const FixedBuffers& buffers,
                                   const double* frows, const int64_t* irows, const LaunchShape& s,
                                   cudaStream_t stream) {
  if (s.N * s.C * s.H * s.W == 0) return;
  if (s.index32) {
    launch_backward_fixed<scalar_t, acc_t, int32_t>(grad, grad_x, buffers, frows, irows, s, stream);
  } else {
    launch_backward_fixed<scalar_t, acc_t, int64_t>(grad, grad_x, buffers, frows, irows, s, stream);
  }
}

#define KALEIDO_INSTANTIATE(scalar_t, acc_t)                                                             \
  template void launch_forward<scalar_t, acc_t>(const scalar_t*, scalar_t*, acc_t*, const double*,      \
                                                const int64_t*, const acc_t*, uint64_t, const LaunchShape&, \
                                                cudaStream_t);                                             \
  template void launch_backward<scalar_t, acc_t>(const scalar_t*, acc_t*, acc_t*, const double*,         \
                                                 const int64_t*, const LaunchShape&, cudaStream_t);         \
  template void launch_backward_deterministic<scalar_t, acc_t>(const scalar_t*, acc_t*, const FixedBuffers&,  \
                                                               const double*, const int64_t*, const LaunchShape&, \
                                                               cudaStream_t);

KALEIDO_INSTANTIATE(float, float)
KALEIDO_INSTANTIATE(double, double)
KALEIDO_INSTANTIATE(c10::Half, float)
KALEIDO_INSTANTIATE(c10::BFloat16, float)

}  // namespace kaleido
