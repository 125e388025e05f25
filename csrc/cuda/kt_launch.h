// Raw-pointer launchers between the CUDA registration (kt_cuda.cpp, compiled by the host
// compiler with ATen) and the kernels (kt_kernel.cu, compiled by nvcc with only light headers,
// which keeps nvcc fast and away from the cuBLAS/cuSPARSE headers).
#pragma once

#include <cuda_runtime_api.h>
#include <stdint.h>

namespace kaleido {

struct LaunchShape {
  int64_t N, C, H, W;
  int64_t rows;      // parameter rows: 1 or N views
  int64_t views;     // views averaged per image (image n's view v reads row n views + v)
  int padding;       // kaleido::Padding
  bool index32;      // every index fits in int32
};

// partial: with several views, scratch of y's shape in acc_t for the running sums over the views
// (nullptr for one view).
template <typename scalar_t, typename acc_t>
void launch_forward(const scalar_t* x, scalar_t* y, acc_t* partial, const double* frows, const int64_t* irows,
                    const acc_t* means, uint64_t seed, const LaunchShape& shape, cudaStream_t stream);

// Scatters the input gradient into grad_x (zero-filled) and then adds the share that flows
// through the contrast pivot (and divides by the views); pivot_sums (zero-filled, N views) is
// scratch for the per-image, per-view sums.
template <typename scalar_t, typename acc_t>
void launch_backward(const scalar_t* grad, acc_t* grad_x, acc_t* pivot_sums, const double* frows,
                     const int64_t* irows, const LaunchShape& shape, cudaStream_t stream);

// Scratch of the deterministic backward, zero-filled: fixed (int64, N C H W) holds each element's
// 64-bit fixed-point sum, pivot_fixed (int64, N) each image's pivot sum, max_bits (N; uint32 for
// float accumulation, uint64 for double) each image's largest upstream gradient magnitude;
// pivot_fixed has one entry per view of each image (N views).
struct FixedBuffers {
  void* fixed;
  void* pivot_fixed;
  void* max_bits;
};

// The backward under torch.use_deterministic_algorithms(True): the same scatter into 64-bit fixed
// point, so its result does not depend on the order of the atomic additions (docs/kt_op.md,
// "Gradient"). grad_x needs no zero fill: every element is written.
template <typename scalar_t, typename acc_t>
void launch_backward_deterministic(const scalar_t* grad, acc_t* grad_x, const FixedBuffers& buffers,
                                   const double* frows, const int64_t* irows, const LaunchShape& shape,
                                   cudaStream_t stream);

}  // namespace kaleido
