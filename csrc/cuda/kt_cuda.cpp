// CUDA registration: image checks, the device guard and the current stream; the op bodies are in
// kt_cuda_ops.h (shared with the host emulation of CUDA in the tests), the kernels in kt_kernel.cu.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "kt_cuda_ops.h"

namespace kaleido {
namespace {

cudaStream_t current_stream(const at::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

at::Tensor kaleidoscope_cuda(const at::Tensor& x, const at::Tensor& affine, const at::Tensor& fold_k,
                             const at::Tensor& fold_center, const at::Tensor& fold_phase,
                             const at::Tensor& brightness, const at::Tensor& saturation,
                             const at::Tensor& contrast, const at::Tensor& cutout,
                             const at::Tensor& noise_std, int64_t seed, c10::string_view padding_mode,
                             int64_t views) {
  check_image(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  return kaleidoscope_on_stream(x, affine, fold_k, fold_center, fold_phase, brightness, saturation, contrast,
                                cutout, noise_std, seed, std::string(padding_mode), views, current_stream(x));
}

at::Tensor kaleidoscope_backward_cuda(const at::Tensor& grad, const at::Tensor& affine,
                                      const at::Tensor& fold_k, const at::Tensor& fold_center,
                                      const at::Tensor& fold_phase, const at::Tensor& brightness,
                                      const at::Tensor& saturation, const at::Tensor& contrast,
                                      const at::Tensor& cutout, const at::Tensor& noise_std,
                                      c10::string_view padding_mode, int64_t views) {
  check_image(grad, "grad");
  const c10::cuda::CUDAGuard guard(grad.device());
  return kaleidoscope_backward_on_stream(grad, affine, fold_k, fold_center, fold_phase, brightness, saturation,
                                         contrast, cutout, noise_std, std::string(padding_mode), views,
                                         current_stream(grad));
}

}  // namespace

TORCH_LIBRARY_IMPL(kaleido_cuda, CUDA, m) {
  m.impl("kaleidoscope", &kaleidoscope_cuda);
  m.impl("kaleidoscope_backward", &kaleidoscope_backward_cuda);
}

}  // namespace kaleido
