// The emulated CUDA ops as a Python module for the tests (built by tests/op/emulated_cuda.py): the
// same op bodies as the CUDA registration (kt_cuda_ops.h) and the kernels of kt_kernel.cu
// translated for the host, run on CPU tensors through cuda_emu.h.
#include <torch/extension.h>

#include <tuple>

#include "cuda_emu.h"
#include "kaleido/kt_index.h"
#include "kt_cuda_ops.h"

namespace {

void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "emulated CUDA op: ", name, " must be a CPU tensor (the emulator runs on the host)");
}

at::Tensor forward(const at::Tensor& x, const at::Tensor& affine, const at::Tensor& fold_k,
                   const at::Tensor& fold_center, const at::Tensor& fold_phase, const at::Tensor& brightness,
                   const at::Tensor& saturation, const at::Tensor& contrast, const at::Tensor& cutout,
                   const at::Tensor& noise_std, int64_t seed, const std::string& padding_mode, int64_t views) {
  check_cpu(x, "x");
  kaleido::check_image(x, "x");
  return kaleido::kaleidoscope_on_stream(x, affine, fold_k, fold_center, fold_phase, brightness, saturation,
                                         contrast, cutout, noise_std, seed, padding_mode, views, nullptr);
}

at::Tensor backward(const at::Tensor& grad, const at::Tensor& affine, const at::Tensor& fold_k,
                    const at::Tensor& fold_center, const at::Tensor& fold_phase, const at::Tensor& brightness,
                    const at::Tensor& saturation, const at::Tensor& contrast, const at::Tensor& cutout,
                    const at::Tensor& noise_std, const std::string& padding_mode, int64_t views) {
  check_cpu(grad, "grad");
  kaleido::check_image(grad, "grad");
  return kaleido::kaleidoscope_backward_on_stream(grad, affine, fold_k, fold_center, fold_phase, brightness,
                                                  saturation, contrast, cutout, noise_std, padding_mode, views,
                                                  nullptr);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "kaleido_cuda's CUDA kernels run on the CPU through a host emulation of CUDA (tests only)";
  namespace py = pybind11;
  m.def("forward", &forward, "kaleidoscope forward through the emulated CUDA kernels", py::arg("x"), py::arg("affine"),
        py::arg("fold_k"), py::arg("fold_center"), py::arg("fold_phase"), py::arg("brightness"), py::arg("saturation"),
        py::arg("contrast"), py::arg("cutout"), py::arg("noise_std"), py::arg("seed"), py::arg("padding_mode"),
        py::arg("views") = 1);
  m.def("backward", &backward, "kaleidoscope backward through the emulated CUDA kernels", py::arg("grad"),
        py::arg("affine"), py::arg("fold_k"), py::arg("fold_center"), py::arg("fold_phase"), py::arg("brightness"),
        py::arg("saturation"), py::arg("contrast"), py::arg("cutout"), py::arg("noise_std"), py::arg("padding_mode"),
        py::arg("views") = 1);
  m.def(
      "set_grid_limits",
      [](int64_t x, int64_t y) {
        cuda_emu::grid_limit_override(0) = x;
        cuda_emu::grid_limit_override(1) = y;
      },
      "Caps the kernels' grid x and y extents (0: the production limits)");
  m.def(
      "set_schedule", [](uint64_t seed) { cuda_emu::schedule_seed() = seed; },
      "Runs each launch's blocks in a random order drawn from seed (0: the fixed scrambled order)");
  m.def(
      "stats", [] { return std::make_tuple(cuda_emu::stats().launches, cuda_emu::stats().blocks); },
      "(kernel launches, blocks run) since the module loaded");
  m.def("index32_fits", &kaleido::index32_fits, "The 32-bit index rule of both backends for an (N, C, H, W) tensor");
}
