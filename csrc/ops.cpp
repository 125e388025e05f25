// Op schemas (defined once, here) and the Python module `kaleido_cuda._C`, imported for its side
// effect of registering the ops. Each backend registers its own kernels in its own file.
#ifdef KALEIDO_NO_PYTHON
#include <torch/library.h>
#else
#include <torch/extension.h>
#endif

#include <string>
#include <vector>

#include "kaleido/kt_index.h"
#include "kaleido/kt_math.h"

#ifndef KALEIDO_CUDA_ARCH_LIST
#define KALEIDO_CUDA_ARCH_LIST ""
#endif

TORCH_LIBRARY(kaleido_cuda, m) {
  m.def(
      "kaleidoscope(Tensor x, Tensor affine, Tensor fold_k, Tensor fold_center, Tensor fold_phase, "
      "Tensor brightness, Tensor saturation, Tensor contrast, Tensor cutout, Tensor noise_std, "
      "int seed, str padding_mode, int views=1) -> Tensor");
  // views: parameter rows per image, whose chains' outputs are averaged (image n's view v reads
  // row n views + v; rows may also be 1, shared). 1 is the single chain.
  // The gradient does not depend on x's values (the chain is affine in x) nor on the noise, so
  // the backward needs only the incoming gradient and the parameters: x is never saved.
  m.def(
      "kaleidoscope_backward(Tensor grad, Tensor affine, Tensor fold_k, Tensor fold_center, "
      "Tensor fold_phase, Tensor brightness, Tensor saturation, Tensor contrast, Tensor cutout, "
      "Tensor noise_std, str padding_mode, int views=1) -> Tensor");
}

#ifndef KALEIDO_NO_PYTHON
namespace {

bool cuda_compiled() {
#ifdef KALEIDO_WITH_CUDA
  return true;
#else
  return false;
#endif
}

// Exposes the header's Philox so tests can check the known-answer vectors of the spec against
// the very code the kernels run.
std::vector<uint32_t> philox4x32_10(const std::vector<uint32_t>& counter, const std::vector<uint32_t>& key) {
  TORCH_CHECK(counter.size() == 4 && key.size() == 2, "philox4x32_10: need 4 counter words and 2 key words");
  kaleido::Philox4x32 ctr{{counter[0], counter[1], counter[2], counter[3]}};
  const kaleido::Philox4x32 r = kaleido::philox4x32_10(ctr, key[0], key[1]);
  return {r.v[0], r.v[1], r.v[2], r.v[3]};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "kaleido_cuda compiled kernels (ops are registered under torch.ops.kaleido_cuda)";
  m.def("cuda_compiled", &cuda_compiled, "True when the CUDA kernels are in this build");
  m.def("cuda_arch_list", []() { return std::string(KALEIDO_CUDA_ARCH_LIST); },
        "TORCH_CUDA_ARCH_LIST this module was built for (empty for CPU-only builds)");
  m.def("philox4x32_10", &philox4x32_10, "Philox4x32-10 block (counter[4], key[2]) -> 4 words");
  // The op's limits, which kaleido_cuda/_compiled.py reads so that the Python checks and the kernels
  // cannot disagree.
  m.attr("max_fold_k") = kaleido::kMaxFoldK;
  m.attr("max_float_geometry_side") = kaleido::kMaxFloatGeometrySide;
  m.def("index32_fits", &kaleido::index32_fits,
        "Whether both backends' kernels index an (N, C, H, W) tensor with int32 (kaleido/kt_index.h)");
  m.attr("index32_limit") = kaleido::kIndex32Limit;
}
#endif  // KALEIDO_NO_PYTHON
