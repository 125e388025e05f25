// CUDA registration: device guard, current stream, allocation and parameter packing on the host
// side; the kernels themselves live in kt_kernel.cu.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "../kt_host.h"
#include "kaleido/kt_math.h"
#include "kt_launch.h"

namespace kaleido {
namespace {

LaunchShape shape_of(const at::Tensor& t, const PackedParams& packed) {
  LaunchShape s;
  s.N = t.size(0); s.C = t.size(1); s.H = t.size(2); s.W = t.size(3);
  s.rows = packed.rows;
  s.padding = packed.padding;
  // 32-bit indexing when every element index (and the index one past the end) fits.
  s.index32 = t.numel() < static_cast<int64_t>(std::numeric_limits<int32_t>::max()) && !force_int64_index();
  return s;
}

template <typename scalar_t>
using acc_of = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

at::Tensor kaleidoscope_cuda(const at::Tensor& x_in, const at::Tensor& affine, const at::Tensor& fold_k,
                             const at::Tensor& fold_center, const at::Tensor& fold_phase,
                             const at::Tensor& brightness, const at::Tensor& saturation,
                             const at::Tensor& contrast, const at::Tensor& cutout,
                             const at::Tensor& noise_std, int64_t seed, c10::string_view padding_mode) {
  check_image(x_in, "x");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const PackedParams packed = pack_params(x_in, affine, fold_k, fold_center, fold_phase, brightness,
                                          saturation, contrast, cutout, noise_std, std::string(padding_mode));
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (x.numel() == 0) return out;
  const at::Tensor means = image_means(x);
  const LaunchShape shape = shape_of(x, packed);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "kaleidoscope_cuda", [&] {
    using acc_t = acc_of<scalar_t>;
    launch_forward<scalar_t, acc_t>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                    packed.floats.const_data_ptr<double>(), packed.ints.const_data_ptr<int64_t>(),
                                    means.const_data_ptr<acc_t>(), static_cast<uint64_t>(seed), shape, stream);
  });
  return out;
}

at::Tensor kaleidoscope_backward_cuda(const at::Tensor& grad_in, const at::Tensor& affine,
                                      const at::Tensor& fold_k, const at::Tensor& fold_center,
                                      const at::Tensor& fold_phase, const at::Tensor& brightness,
                                      const at::Tensor& saturation, const at::Tensor& contrast,
                                      const at::Tensor& cutout, const at::Tensor& noise_std,
                                      c10::string_view padding_mode) {
  check_image(grad_in, "grad");
  at::globalContext().alertNotDeterministic("kaleido_cuda::kaleidoscope_backward (CUDA atomic scatter)");
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const PackedParams packed = pack_params(grad_in, affine, fold_k, fold_center, fold_phase, brightness,
                                          saturation, contrast, cutout, noise_std, std::string(padding_mode));
  const at::Tensor grad = grad_in.contiguous();
  const auto acc_type = accumulation_type(grad.scalar_type());
  at::Tensor grad_acc = at::zeros(grad.sizes(), grad.options().dtype(acc_type));
  if (grad.numel() == 0) return grad_acc.to(grad.scalar_type());
  at::Tensor pivot_sums = at::zeros({grad.size(0)}, grad.options().dtype(acc_type));
  const LaunchShape shape = shape_of(grad, packed);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(grad.device().index()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "kaleidoscope_backward_cuda", [&] {
    using acc_t = acc_of<scalar_t>;
    launch_backward<scalar_t, acc_t>(grad.const_data_ptr<scalar_t>(), grad_acc.mutable_data_ptr<acc_t>(),
                                     pivot_sums.mutable_data_ptr<acc_t>(), packed.floats.const_data_ptr<double>(),
                                     packed.ints.const_data_ptr<int64_t>(), shape, stream);
  });
  return grad_acc.scalar_type() == grad.scalar_type() ? grad_acc : grad_acc.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(kaleido_cuda, CUDA, m) {
  m.impl("kaleidoscope", &kaleidoscope_cuda);
  m.impl("kaleidoscope_backward", &kaleidoscope_backward_cuda);
}

}  // namespace kaleido
