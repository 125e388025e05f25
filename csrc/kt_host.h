// Host-side preparation shared by the CPU and CUDA registrations: argument checks for direct
// callers of the ops, and packing of the per-sample parameters into two small row tables.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <type_traits>

namespace kaleido {

struct PackedParams {
  at::Tensor floats;  // (P, kNumFloatParams), float64, on x's device
  at::Tensor ints;    // (P, kNumIntParams), int64, on x's device
  int64_t rows = 1;   // P: 1 (one set for the batch) or N views
  int64_t views = 1;  // parameter rows per image, averaged (image n's view v reads row n views + v)
  int padding = 0;    // kaleido::Padding
};

// Checks shapes, dtypes and devices against `like` (x for the forward, grad for the backward)
// and `views` (>= 1: leading dimensions N views or 1), and packs the parameters. Value checks
// (finite, k range) happen in Python before the call.
PackedParams pack_params(const at::Tensor& like, const at::Tensor& affine, const at::Tensor& fold_k,
                         const at::Tensor& fold_center, const at::Tensor& fold_phase,
                         const at::Tensor& brightness, const at::Tensor& saturation,
                         const at::Tensor& contrast, const at::Tensor& cutout,
                         const at::Tensor& noise_std, const std::string& padding_mode, int64_t views);

// The image tensor checks shared by forward and backward.
void check_image(const at::Tensor& x, const char* name);

// Per-image mean over C, H, W in the accumulation dtype (the contrast pivot mu).
at::Tensor image_means(const at::Tensor& x);

// Whether the kernels of either backend index x (N, C, H, W) with int32 (kaleido/kt_index.h).
// KALEIDO_FORCE_INT64_INDEX=1 runs the int64 kernels even where int32 would do, so the tests can
// check that path without tensors of 2^31 elements.
bool use_index32(const at::Tensor& x);

// Accumulation dtype: float64 for float64 input, float32 otherwise.
at::ScalarType accumulation_type(at::ScalarType t);

// The same in C++: acc_of<scalar_t> is what the kernels accumulate in.
template <typename scalar_t>
using acc_of = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

}  // namespace kaleido
