// The CUDA ops below the device guard and the stream: argument checks and packing, the 32-bit
// rule, the dtype dispatch and the launches. Included by the CUDA registration (kt_cuda.cpp) and
// by the host emulation of CUDA in the tests (csrc/tests/cuda_emu), so the emulated tests run
// this code as well as the kernels.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>

#include <string>

#include "../kt_host.h"
#include "kaleido/kt_index.h"
#include "kt_launch.h"

namespace kaleido {

inline LaunchShape launch_shape(const at::Tensor& t, const PackedParams& packed) {
  LaunchShape s;
  s.N = t.size(0); s.C = t.size(1); s.H = t.size(2); s.W = t.size(3);
  s.rows = packed.rows;
  s.views = packed.views;
  s.padding = packed.padding;
  // The kernels also index parameter rows and per-view sums with n views + v.
  s.index32 = use_index32(t) && t.size(0) * packed.views <= kIndex32Limit;
  return s;
}

// An empty tensor reaches the launchers, which return before launching.
inline at::Tensor kaleidoscope_on_stream(const at::Tensor& x_in, const at::Tensor& affine, const at::Tensor& fold_k,
                                         const at::Tensor& fold_center, const at::Tensor& fold_phase,
                                         const at::Tensor& brightness, const at::Tensor& saturation,
                                         const at::Tensor& contrast, const at::Tensor& cutout,
                                         const at::Tensor& noise_std, int64_t seed, const std::string& padding_mode,
                                         int64_t views, cudaStream_t stream) {
  const PackedParams packed = pack_params(x_in, affine, fold_k, fold_center, fold_phase, brightness,
                                          saturation, contrast, cutout, noise_std, padding_mode, views);
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  const at::Tensor means = image_means(x);
  const LaunchShape shape = launch_shape(x, packed);
  // With several views, each thread keeps its pixels' running sums over the views here.
  const at::Tensor partial =
      views > 1 ? at::empty(x.sizes(), x.options().dtype(accumulation_type(x.scalar_type()))) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "kaleidoscope_cuda", [&] {
    using acc_t = acc_of<scalar_t>;
    launch_forward<scalar_t, acc_t>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                    views > 1 ? partial.mutable_data_ptr<acc_t>() : nullptr,
                                    packed.floats.const_data_ptr<double>(), packed.ints.const_data_ptr<int64_t>(),
                                    means.const_data_ptr<acc_t>(), static_cast<uint64_t>(seed), shape, stream);
  });
  return out;
}

// The deterministic backward's launch: its fixed-point scratch, then the three passes.
template <typename scalar_t>
void backward_deterministic(const at::Tensor& grad, at::Tensor& grad_acc, const PackedParams& packed,
                            const LaunchShape& shape, cudaStream_t stream) {
  using acc_t = acc_of<scalar_t>;
  const auto long_options = grad.options().dtype(at::kLong);
  at::Tensor fixed = at::zeros(grad.sizes(), long_options);
  at::Tensor pivot_fixed = at::zeros({grad.size(0) * shape.views}, long_options);
  at::Tensor max_bits = at::zeros({grad.size(0)}, grad.options().dtype(sizeof(acc_t) == 8 ? at::kLong : at::kInt));
  const FixedBuffers buffers{fixed.mutable_data_ptr(), pivot_fixed.mutable_data_ptr(), max_bits.mutable_data_ptr()};
  launch_backward_deterministic<scalar_t, acc_t>(grad.const_data_ptr<scalar_t>(), grad_acc.mutable_data_ptr<acc_t>(),
                                                 buffers, packed.floats.const_data_ptr<double>(),
                                                 packed.ints.const_data_ptr<int64_t>(), shape, stream);
}

// The atomic scatter (the default, fastest path) or, under torch.use_deterministic_algorithms(True),
// the fixed-point one, whose gradient is bitwise the same from run to run.
inline at::Tensor kaleidoscope_backward_on_stream(const at::Tensor& grad_in, const at::Tensor& affine,
                                                  const at::Tensor& fold_k, const at::Tensor& fold_center,
                                                  const at::Tensor& fold_phase, const at::Tensor& brightness,
                                                  const at::Tensor& saturation, const at::Tensor& contrast,
                                                  const at::Tensor& cutout, const at::Tensor& noise_std,
                                                  const std::string& padding_mode, int64_t views,
                                                  cudaStream_t stream) {
  const PackedParams packed = pack_params(grad_in, affine, fold_k, fold_center, fold_phase, brightness,
                                          saturation, contrast, cutout, noise_std, padding_mode, views);
  const at::Tensor grad = grad_in.contiguous();
  const auto acc_options = grad.options().dtype(accumulation_type(grad.scalar_type()));
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  at::Tensor grad_acc = deterministic ? at::empty(grad.sizes(), acc_options) : at::zeros(grad.sizes(), acc_options);
  const LaunchShape shape = launch_shape(grad, packed);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "kaleidoscope_backward_cuda", [&] {
    if (deterministic) {
      backward_deterministic<scalar_t>(grad, grad_acc, packed, shape, stream);
      return;
    }
    using acc_t = acc_of<scalar_t>;
    at::Tensor pivot_sums = at::zeros({grad.size(0) * views}, acc_options);
    launch_backward<scalar_t, acc_t>(grad.const_data_ptr<scalar_t>(), grad_acc.mutable_data_ptr<acc_t>(),
                                     pivot_sums.mutable_data_ptr<acc_t>(), packed.floats.const_data_ptr<double>(),
                                     packed.ints.const_data_ptr<int64_t>(), shape, stream);
  });
  return grad_acc.scalar_type() == grad.scalar_type() ? grad_acc : grad_acc.to(grad.scalar_type());
}

}  // namespace kaleido
