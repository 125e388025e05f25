// CPU kernels: loops over the header's pixel functions with at::parallel_for.
// Forward: parallel over output rows. Backward: parallel over images, so each task owns the
// gradient of its image and the scatter needs no atomics (race-free, deterministic).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../kt_host.h"
#include "kaleido/kt_math.h"

namespace kaleido {
namespace {

at::Tensor kaleidoscope_cpu(const at::Tensor& x_in, const at::Tensor& affine, const at::Tensor& fold_k,
                            const at::Tensor& fold_center, const at::Tensor& fold_phase,
                            const at::Tensor& brightness, const at::Tensor& saturation,
                            const at::Tensor& contrast, const at::Tensor& cutout,
                            const at::Tensor& noise_std, int64_t seed, c10::string_view padding_mode) {
  check_image(x_in, "x");
  const PackedParams packed = pack_params(x_in, affine, fold_k, fold_center, fold_phase, brightness,
                                          saturation, contrast, cutout, noise_std, std::string(padding_mode));
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (x.numel() == 0) return out;
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const at::Tensor means = image_means(x);
  const uint64_t useed = static_cast<uint64_t>(seed);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "kaleidoscope_cpu", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const scalar_t* src = x.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    const double* frows = packed.floats.const_data_ptr<double>();
    const int64_t* irows = packed.ints.const_data_ptr<int64_t>();
    const acc_t* mu = means.const_data_ptr<acc_t>();
    const int64_t plane = H * W;
    const int64_t grain = std::max<int64_t>(1, 2048 / std::max<int64_t>(W, 1));
    at::parallel_for(0, N * H, grain, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / H, i = row % H;
        const int64_t r = packed.rows == 1 ? 0 : n;
        const SampleParams<acc_t> p = load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
        const scalar_t* img = src + n * C * plane;
        for (int64_t j = 0; j < W; ++j) {
          const auto taps = compute_taps<acc_t, int64_t>(p, i, j, H, W, packed.padding);
          const int64_t pixel = i * W + j;
          forward_pixel<scalar_t, acc_t, int64_t>(p, taps, img, dst + n * C * plane + pixel, plane, C,
                                                  mu[n], useed, static_cast<uint64_t>(n * C * plane + pixel));
        }
      }
    });
  });
  return out;
}

at::Tensor kaleidoscope_backward_cpu(const at::Tensor& grad_in, const at::Tensor& affine,
                                     const at::Tensor& fold_k, const at::Tensor& fold_center,
                                     const at::Tensor& fold_phase, const at::Tensor& brightness,
                                     const at::Tensor& saturation, const at::Tensor& contrast,
                                     const at::Tensor& cutout, const at::Tensor& noise_std,
                                     c10::string_view padding_mode) {
  check_image(grad_in, "grad");
  const PackedParams packed = pack_params(grad_in, affine, fold_k, fold_center, fold_phase, brightness,
                                          saturation, contrast, cutout, noise_std, std::string(padding_mode));
  const at::Tensor grad = grad_in.contiguous();
  const auto acc_type = accumulation_type(grad.scalar_type());
  at::Tensor grad_acc = at::zeros(grad.sizes(), grad.options().dtype(acc_type));
  if (grad.numel() == 0) return grad_acc.to(grad.scalar_type());
  const int64_t N = grad.size(0), C = grad.size(1), H = grad.size(2), W = grad.size(3);
  at::Tensor pivot_sums = at::zeros({N}, grad.options().dtype(acc_type));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "kaleidoscope_backward_cpu", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    acc_t* gx = grad_acc.mutable_data_ptr<acc_t>();
    acc_t* sums = pivot_sums.mutable_data_ptr<acc_t>();
    const double* frows = packed.floats.const_data_ptr<double>();
    const int64_t* irows = packed.ints.const_data_ptr<int64_t>();
    const int64_t plane = H * W;
    auto add = [](acc_t* ptr, acc_t value) { *ptr += value; };
    at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const int64_t r = packed.rows == 1 ? 0 : n;
        const SampleParams<acc_t> p = load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
        acc_t pivot = 0;
        for (int64_t i = 0; i < H; ++i) {
          for (int64_t j = 0; j < W; ++j) {
            const auto taps = compute_taps<acc_t, int64_t>(p, i, j, H, W, packed.padding);
            pivot += backward_pixel<scalar_t, acc_t, int64_t>(p, taps, g + n * C * plane + i * W + j,
                                                              gx + n * C * plane, plane, C, add);
          }
        }
        sums[n] = pivot;
      }
    });
  });
  add_pivot_gradient(grad_acc, pivot_sums, packed);
  return grad_acc.scalar_type() == grad.scalar_type() ? grad_acc : grad_acc.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(kaleido_cuda, CPU, m) {
  m.impl("kaleidoscope", &kaleidoscope_cpu);
  m.impl("kaleidoscope_backward", &kaleidoscope_backward_cpu);
}

}  // namespace kaleido
