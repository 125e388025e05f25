#include "kt_host.h"

#include <ATen/ATen.h>

#include "kaleido/kt_index.h"
#include "kaleido/kt_math.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace kaleido {

bool use_index32(const at::Tensor& x) {
  const char* force64 = std::getenv("KALEIDO_FORCE_INT64_INDEX");
  if (force64 != nullptr && std::strcmp(force64, "1") == 0) return false;
  return index32_fits(x.size(0), x.size(1), x.size(2), x.size(3));
}

at::ScalarType accumulation_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

void check_image(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() == 4, "kaleidoscope: ", name, " must be 4-D (N, C, H, W), got ", x.dim(), "-D");
  const auto t = x.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16,
              "kaleidoscope: ", name, " must be float16, bfloat16, float32 or float64, got ", t);
  TORCH_CHECK(t == at::kDouble || std::max(x.size(2), x.size(3)) <= kMaxFloatGeometrySide, "kaleidoscope: ", name,
              " is ", x.size(2), " x ", x.size(3), "; ", t, " images compute their geometry in float32, which is "
              "accurate to within side * 2^-19 pixel, and sides above ", kMaxFloatGeometrySide,
              " are refused: convert the images to float64");
}

static int parse_padding(const std::string& mode) {
  if (mode == "zeros") return kZeros;
  if (mode == "border") return kBorder;
  if (mode == "reflection") return kReflection;
  TORCH_CHECK(false, "kaleidoscope: padding_mode must be 'zeros', 'border' or 'reflection', got '", mode, "'");
}

// Checks one parameter's shape (leading dim n, i.e. N views, or 1, then `tail`) and device;
// returns its rows.
static int64_t check_param(const at::Tensor& p, const char* name, at::IntArrayRef tail,
                           const at::Tensor& like, int64_t n, bool integral) {
  TORCH_CHECK(p.dim() == static_cast<int64_t>(tail.size()) + 1, "kaleidoscope: ", name,
              " must have ", tail.size() + 1, " dims, got shape ", p.sizes());
  TORCH_CHECK(p.size(0) == n || p.size(0) == 1, "kaleidoscope: ", name, " must have leading dimension ", n,
              " (N images x ", n / std::max<int64_t>(like.size(0), 1), " views) or 1, got ", p.size(0));
  for (size_t d = 0; d < tail.size(); ++d) {
    TORCH_CHECK(p.size(d + 1) == tail[d], "kaleidoscope: ", name, " has shape ", p.sizes(),
                ", expected (N or 1, ", tail, ")");
  }
  TORCH_CHECK(p.device() == like.device(), "kaleidoscope: ", name, " is on ", p.device(),
              " but the images are on ", like.device());
  if (integral) {
    TORCH_CHECK(!at::isFloatingType(p.scalar_type()) && !at::isComplexType(p.scalar_type()) &&
                    p.scalar_type() != at::kBool,
                "kaleidoscope: ", name, " must be an integer tensor, got ", p.scalar_type());
  } else {
    TORCH_CHECK(at::isFloatingType(p.scalar_type()), "kaleidoscope: ", name,
                " must be a floating tensor, got ", p.scalar_type());
  }
  return p.size(0);
}

PackedParams pack_params(const at::Tensor& like, const at::Tensor& affine, const at::Tensor& fold_k,
                         const at::Tensor& fold_center, const at::Tensor& fold_phase,
                         const at::Tensor& brightness, const at::Tensor& saturation,
                         const at::Tensor& contrast, const at::Tensor& cutout,
                         const at::Tensor& noise_std, const std::string& padding_mode, int64_t views) {
  TORCH_CHECK(views >= 1, "kaleidoscope: views must be >= 1, got ", views);
  PackedParams packed;
  packed.padding = parse_padding(padding_mode);
  packed.views = views;
  const int64_t n = like.size(0) * views;
  int64_t rows = 1;
  rows = std::max(rows, check_param(affine, "affine", {2, 3}, like, n, false));
  rows = std::max(rows, check_param(fold_k, "fold_k", {}, like, n, true));
  rows = std::max(rows, check_param(fold_center, "fold_center", {2}, like, n, false));
  rows = std::max(rows, check_param(fold_phase, "fold_phase", {}, like, n, false));
  rows = std::max(rows, check_param(brightness, "brightness", {}, like, n, false));
  rows = std::max(rows, check_param(saturation, "saturation", {}, like, n, false));
  rows = std::max(rows, check_param(contrast, "contrast", {}, like, n, false));
  rows = std::max(rows, check_param(cutout, "cutout", {4}, like, n, true));
  rows = std::max(rows, check_param(noise_std, "noise_std", {}, like, n, false));
  packed.rows = rows;

  auto column = [&](const at::Tensor& t, int64_t width) {
    return t.reshape({t.size(0), width}).to(at::kDouble).expand({rows, width});
  };
  // The affine of normalised coordinates and the fold centre, moved to pixel space for this image
  // size (kt_math.h, FloatParam): in float64 here, once per row, so that the kernels' geometry
  // starts from correctly rounded coefficients in any precision and never divides by the size.
  const double H = static_cast<double>(like.size(2)), W = static_cast<double>(like.size(3));
  const at::Tensor a = column(affine, 6);
  auto c = [&](int64_t k) { return a.select(1, k); };
  const at::Tensor p00 = c(0), p01 = c(1) * (W / H);
  const at::Tensor p02 = (W / 2) * (c(0) * (1 / W - 1) + c(1) * (1 / H - 1) + c(2) + 1) - 0.5;
  const at::Tensor p10 = c(3) * (H / W), p11 = c(4);
  const at::Tensor p12 = (H / 2) * (c(3) * (1 / W - 1) + c(4) * (1 / H - 1) + c(5) + 1) - 0.5;
  const at::Tensor centre = column(fold_center, 2);
  const at::Tensor cx = (centre.select(1, 0) + 1) * (W / 2) - 0.5, cy = (centre.select(1, 1) + 1) * (H / 2) - 0.5;
  // The phase reduced to [-pi, pi): the fold's angles then stay below 2 pi in magnitude, where a
  // float ulp is smallest (the fold is periodic in the phase with period 2 pi).
  const double two_pi = 6.283185307179586476925;
  const at::Tensor phase = at::remainder(column(fold_phase, 1) + two_pi / 2, two_pi) - two_pi / 2;
  // The fold's wedge pi / k and k / (2 pi); rows with the fold off (k = 0) get k = 1's, unused.
  const at::Tensor k = column(fold_k, 1).clamp_min(1);
  packed.floats = at::cat({at::stack({p00, p01, p02, p10, p11, p12, cx, cy}, 1), phase, (two_pi / 2) / k,
                           k / two_pi,
                           column(brightness, 1), column(saturation, 1), column(contrast, 1),
                           column(noise_std, 1)},
                          1)
                      .contiguous();
  auto int_column = [&](const at::Tensor& t, int64_t width) {
    return t.reshape({t.size(0), width}).to(at::kLong).expand({rows, width});
  };
  // Cutout bounds beyond the image change nothing; clamping them keeps them in the kernels'
  // index type (32-bit when the tensors allow it).
  const int64_t side = std::max(like.size(2), like.size(3));
  packed.ints = at::cat({int_column(fold_k, 1), int_column(cutout, 4).clamp(-1, side + 1)}, 1).contiguous();
  TORCH_CHECK(packed.floats.size(1) == kNumFloatParams && packed.ints.size(1) == kNumIntParams,
              "kaleidoscope: internal parameter packing mismatch");
  return packed;
}

at::Tensor image_means(const at::Tensor& x) {
  return at::mean(x, {1, 2, 3}, /*keepdim=*/false, accumulation_type(x.scalar_type()));
}

}  // namespace kaleido
