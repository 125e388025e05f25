// CPU kernels: loops over the header's pixel functions with at::parallel_for.
// Forward: parallel over output rows. Backward: parallel over images, so each task owns the
// gradient of its image and the scatter needs no atomics (race-free, deterministic).
//
// A row is processed in passes over contiguous buffers (source coordinates, taps, one gather per
// channel, the channel sums, then colour and noise per channel) with the padding mode and the
// fold switch fixed at compile time, so that g++ vectorises each pass. Every formula comes from
// kt_math.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../kt_host.h"
#include "kaleido/kt_math.h"

namespace kaleido {
namespace {

// The taps of one output row, one array per field, and the source coordinates they came from.
template <typename acc_t, typename index_t>
struct RowTaps {
  explicit RowTaps(int64_t w) : xs(w), ys(w), weight_sum(w) {
    for (int t = 0; t < 4; ++t) {
      offset[t].resize(w);
      weight[t].resize(w);
    }
  }
  std::vector<acc_t> xs, ys;
  std::vector<index_t> offset[4];
  std::vector<acc_t> weight[4];
  std::vector<acc_t> weight_sum;

  Taps<acc_t, index_t> at(int64_t j) const {
    Taps<acc_t, index_t> taps;
    for (int t = 0; t < 4; ++t) {
      taps.offset[t] = offset[t][j];
      taps.weight[t] = weight[t][j];
    }
    taps.weight_sum = weight_sum[j];
    return taps;
  }
};

// The taps of a row of source points: a pass of its own, which g++ vectorises (the outputs are
// restrict parameters: g++ honours restrict on parameters, not on local pointers).
template <typename acc_t, typename index_t>
void row_taps_impl(const SampleParams<acc_t>& p, index_t H, index_t W, const acc_t* __restrict xs,
                   const acc_t* __restrict ys, index_t* __restrict off0, index_t* __restrict off1,
                   index_t* __restrict off2, index_t* __restrict off3, acc_t* __restrict w0, acc_t* __restrict w1,
                   acc_t* __restrict w2, acc_t* __restrict w3, acc_t* __restrict wsum) {
  for (index_t j = 0; j < W; ++j) {
    const Taps<acc_t, index_t> t = bilinear_taps<acc_t, index_t>(p, xs[j], ys[j], H, W);
    off0[j] = t.offset[0]; off1[j] = t.offset[1]; off2[j] = t.offset[2]; off3[j] = t.offset[3];
    w0[j] = t.weight[0]; w1[j] = t.weight[1]; w2[j] = t.weight[2]; w3[j] = t.weight[3];
    wsum[j] = t.weight_sum;
  }
}

template <typename acc_t, typename index_t>
void row_taps(const SampleParams<acc_t>& p, index_t H, index_t W, RowTaps<acc_t, index_t>& row) {
  row_taps_impl(p, H, W, row.xs.data(), row.ys.data(), row.offset[0].data(), row.offset[1].data(),
                row.offset[2].data(), row.offset[3].data(), row.weight[0].data(), row.weight[1].data(),
                row.weight[2].data(), row.weight[3].data(), row.weight_sum.data());
}

// Two passes, each vectorised: source coordinates, then taps.
template <int kPadding, bool kFold, typename acc_t, typename index_t>
void row_geometry_static(const SampleParams<acc_t>& p, index_t i, index_t H, index_t W, RowTaps<acc_t, index_t>& row) {
  acc_t* __restrict xs = row.xs.data();
  acc_t* __restrict ys = row.ys.data();
  for (index_t j = 0; j < W; ++j) source_coordinates<kPadding, kFold>(p, i, j, H, W, xs + j, ys + j);
  row_taps(p, H, W, row);
}

template <typename acc_t, typename index_t>
void row_geometry(const SampleParams<acc_t>& p, int padding, index_t i, index_t H, index_t W,
                  RowTaps<acc_t, index_t>& row) {
  const bool fold = p.fold_k > 0;
  if (padding == kBorder) {
    fold ? row_geometry_static<kBorder, true>(p, i, H, W, row) : row_geometry_static<kBorder, false>(p, i, H, W, row);
  } else if (padding == kReflection) {
    fold ? row_geometry_static<kReflection, true>(p, i, H, W, row)
         : row_geometry_static<kReflection, false>(p, i, H, W, row);
  } else {
    fold ? row_geometry_static<kZeros, true>(p, i, H, W, row) : row_geometry_static<kZeros, false>(p, i, H, W, row);
  }
}

// tap_sum over one row of one channel (a vectorised gather).
template <typename scalar_t, typename acc_t, typename index_t>
void row_tap_sums_impl(const scalar_t* __restrict channel, index_t W, const index_t* __restrict off0,
                       const index_t* __restrict off1, const index_t* __restrict off2, const index_t* __restrict off3,
                       const acc_t* __restrict w0, const acc_t* __restrict w1, const acc_t* __restrict w2,
                       const acc_t* __restrict w3, acc_t* __restrict out) {
  for (index_t j = 0; j < W; ++j) {
    Taps<acc_t, index_t> t;
    t.offset[0] = off0[j]; t.offset[1] = off1[j]; t.offset[2] = off2[j]; t.offset[3] = off3[j];
    t.weight[0] = w0[j]; t.weight[1] = w1[j]; t.weight[2] = w2[j]; t.weight[3] = w3[j];
    out[j] = tap_sum(t, channel);
  }
}

template <typename scalar_t, typename acc_t, typename index_t>
void row_tap_sums(const RowTaps<acc_t, index_t>& row, const scalar_t* channel, index_t W, acc_t* out) {
  row_tap_sums_impl(channel, W, row.offset[0].data(), row.offset[1].data(), row.offset[2].data(),
                    row.offset[3].data(), row.weight[0].data(), row.weight[1].data(), row.weight[2].data(),
                    row.weight[3].data(), out);
}

// Scratch of row_noise for rows of up to W elements: the Philox words and the normals of each
// group, in separate arrays so that each of its loops runs across groups in vector lanes.
template <typename acc_t>
struct NoiseScratch {
  explicit NoiseScratch(int64_t W) : groups(W / 4 + 2), words(4 * groups), normals(4 * groups), z(4 * groups) {}
  int64_t groups;
  std::vector<uint32_t> words;
  std::vector<acc_t> normals;
  std::vector<acc_t> z;
};

// The noise of the W elements k0 .. k0 + W - 1 of plane q and view `view`: the normals of the groups they fall in,
// one Philox block per group (philox_normals4, in three loops: the blocks, the Box-Muller pairs,
// the interleave); returns the address of element k0's normal.
template <typename acc_t>
const acc_t* row_noise(uint64_t seed, uint64_t q, uint32_t view, int64_t k0, int64_t W, NoiseScratch<acc_t>& s) {
  const uint32_t g0 = static_cast<uint32_t>(k0 >> 2);
  const int64_t groups = ((k0 + W - 1) >> 2) - g0 + 1, stride = s.groups;
  uint32_t* __restrict words = s.words.data();
  const uint32_t key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
  for (int64_t g = 0; g < groups; ++g) {
    const Philox4x32 r = philox4x32_10(Philox4x32{{g0 + static_cast<uint32_t>(g), static_cast<uint32_t>(q),
                                                   static_cast<uint32_t>(q >> 32), view}},
                                       key0, key1);
    for (int w = 0; w < 4; ++w) words[w * stride + g] = r.v[w];
  }
  acc_t* __restrict normals = s.normals.data();
  for (int64_t g = 0; g < groups; ++g) {
    box_muller_pair<acc_t>(words[g], words[stride + g], &normals[g], &normals[stride + g]);
    box_muller_pair<acc_t>(words[2 * stride + g], words[3 * stride + g], &normals[2 * stride + g],
                           &normals[3 * stride + g]);
  }
  acc_t* __restrict z = s.z.data();
  for (int64_t g = 0; g < groups; ++g) {
    for (int l = 0; l < 4; ++l) z[4 * g + l] = normals[l * stride + g];
  }
  return z + (k0 - 4 * static_cast<int64_t>(g0));
}

// Rows whose noise row_noise draws in one call: a 32-pixel row alone holds 8 Philox groups, fewer
// than one 512-bit vector's lanes, so the noise of a row at a time ran in scalar code.
constexpr int64_t kNoiseRunElements = 2048;

// The buffers of one forward task: a row's taps and tap sums, the colour values of a run of rows
// (C channels, `stride` elements apart), which get their noise together, and with several views
// the running sum of the views' values.
template <typename acc_t, typename index_t>
struct ForwardScratch {
  ForwardScratch(int64_t C, int64_t W, int64_t run_rows, int64_t views)
      : taps(W), tap(C * W), channel_sum(W), stride(run_rows * W), value(C * stride),
        total(views > 1 ? C * stride : 0), noise(stride) {}
  RowTaps<acc_t, index_t> taps;
  std::vector<acc_t> tap, channel_sum;
  int64_t stride;
  std::vector<acc_t> value, total;
  NoiseScratch<acc_t> noise;
};

// value[ch][j] = colour_value(tap[ch][j], sum_ch tap[ch][j], weight_sum[j]) for row i of image
// `img`: forward_group of kt_math.h before its noise, a row at a time, each channel's taps gathered
// once. Writes C rows of W values, s.stride apart, from `value`.
template <typename scalar_t, typename acc_t, typename index_t>
void colour_row(const SampleParams<acc_t>& p, const ColourTerms<acc_t>& terms, int padding, const scalar_t* img,
                int64_t i, int64_t C, int64_t H, int64_t W, ForwardScratch<acc_t, index_t>& s, acc_t* value) {
  const int64_t plane = H * W;
  const index_t w = static_cast<index_t>(W);
  row_geometry<acc_t, index_t>(p, padding, static_cast<index_t>(i), static_cast<index_t>(H), w, s.taps);
  for (int64_t ch = 0; ch < C; ++ch) row_tap_sums(s.taps, img + ch * plane, w, s.tap.data() + ch * W);
  std::fill(s.channel_sum.begin(), s.channel_sum.end(), acc_t(0));
  if (terms.mean_gain != acc_t(0)) {
    for (int64_t ch = 0; ch < C; ++ch) {
      const acc_t* __restrict t = s.tap.data() + ch * W;
      acc_t* __restrict sum = s.channel_sum.data();
      for (int64_t j = 0; j < W; ++j) sum[j] += t[j];
    }
  }
  const acc_t* __restrict wsum = s.taps.weight_sum.data();
  const acc_t* __restrict sum = s.channel_sum.data();
  for (int64_t ch = 0; ch < C; ++ch) {
    const acc_t* __restrict t = s.tap.data() + ch * W;
    acc_t* __restrict v = value + ch * s.stride;
    for (index_t j = 0; j < w; ++j) v[j] = colour_value(terms, t[j], sum[j], wsum[j]);
  }
}

// y = value + sigma z for `count` consecutive elements k0 ... of each plane of image n.
template <typename scalar_t, typename acc_t, typename index_t>
void store_run(acc_t sigma, uint64_t seed, int64_t n, int64_t C, int64_t plane, int64_t k0, int64_t count,
               ForwardScratch<acc_t, index_t>& s, scalar_t* dst) {
  for (int64_t ch = 0; ch < C; ++ch) {
    const acc_t* __restrict v = s.value.data() + ch * s.stride;
    scalar_t* __restrict out = dst + (n * C + ch) * plane + k0;
    if (sigma != acc_t(0)) {
      const acc_t* __restrict z = row_noise(seed, static_cast<uint64_t>(n * C + ch), 0u, k0, count, s.noise);
      for (int64_t k = 0; k < count; ++k) out[k] = static_cast<scalar_t>(v[k] + sigma * z[k]);
    } else {
      for (int64_t k = 0; k < count; ++k) out[k] = static_cast<scalar_t>(v[k]);
    }
  }
}

// total (+)= value + sigma z for one view of a run (several views): total is view 0's value, then
// each next view's is added, in view order (the CUDA kernel adds them in the same order).
template <typename acc_t, typename index_t>
void add_view(acc_t sigma, uint64_t seed, int64_t n, int64_t view, int64_t C, int64_t k0, int64_t count,
              ForwardScratch<acc_t, index_t>& s) {
  for (int64_t ch = 0; ch < C; ++ch) {
    acc_t* __restrict v = s.value.data() + ch * s.stride;
    acc_t* __restrict total = s.total.data() + ch * s.stride;
    if (sigma != acc_t(0)) {
      const acc_t* __restrict z =
          row_noise(seed, static_cast<uint64_t>(n * C + ch), static_cast<uint32_t>(view), k0, count, s.noise);
      for (int64_t k = 0; k < count; ++k) v[k] = v[k] + sigma * z[k];
    }
    if (view == 0) {
      std::copy(v, v + count, total);
    } else {
      for (int64_t k = 0; k < count; ++k) total[k] += v[k];
    }
  }
}

// y = total / views for `count` consecutive elements k0 ... of each plane of image n.
template <typename scalar_t, typename acc_t, typename index_t>
void store_mean(int64_t views, int64_t n, int64_t C, int64_t plane, int64_t k0, int64_t count,
                const ForwardScratch<acc_t, index_t>& s, scalar_t* dst) {
  const acc_t divisor = static_cast<acc_t>(views);
  for (int64_t ch = 0; ch < C; ++ch) {
    const acc_t* __restrict total = s.total.data() + ch * s.stride;
    scalar_t* __restrict out = dst + (n * C + ch) * plane + k0;
    for (int64_t k = 0; k < count; ++k) out[k] = static_cast<scalar_t>(total[k] / divisor);
  }
}

// The shape of a forward or backward call: N images of C x H x W, `rows` parameter rows (1, or
// N views: image n's view v reads row n views + v) and the padding mode.
struct Shape {
  int64_t N, C, H, W, rows, views;
  int padding;
  int64_t row(int64_t n, int64_t v) const { return rows == 1 ? 0 : n * views + v; }
};

// One run of `count` rows of image n from row i0: every view's colour values and noise, stored
// (one view) or averaged (several).
template <typename scalar_t, typename acc_t, typename index_t>
void forward_run(const scalar_t* src, scalar_t* dst, const double* frows, const int64_t* irows, acc_t mean,
                 uint64_t seed, const Shape& d, int64_t n, int64_t i0, int64_t count,
                 ForwardScratch<acc_t, index_t>& s) {
  const int64_t plane = d.H * d.W;
  for (int64_t v = 0; v < d.views; ++v) {
    const int64_t r = d.row(n, v);
    const SampleParams<acc_t> p = load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
    const ColourTerms<acc_t> terms = colour_terms(p, d.C, mean);
    for (int64_t i = i0; i < i0 + count; ++i) {
      colour_row<scalar_t, acc_t, index_t>(p, terms, d.padding, src + n * d.C * plane, i, d.C, d.H, d.W, s,
                                           s.value.data() + (i - i0) * d.W);
    }
    if (d.views == 1) {
      store_run<scalar_t, acc_t, index_t>(p.sigma, seed, n, d.C, plane, i0 * d.W, count * d.W, s, dst);
    } else {
      add_view<acc_t, index_t>(p.sigma, seed, n, v, d.C, i0 * d.W, count * d.W, s);
    }
  }
  if (d.views > 1) store_mean<scalar_t, acc_t, index_t>(d.views, n, d.C, plane, i0 * d.W, count * d.W, s, dst);
}

template <typename scalar_t, typename acc_t, typename index_t>
void forward_rows(const scalar_t* src, scalar_t* dst, const double* frows, const int64_t* irows,
                  const acc_t* means, uint64_t seed, const Shape& d) {
  const int64_t grain = std::max<int64_t>(1, 2048 / std::max<int64_t>(d.W, 1));
  const int64_t run_rows = std::max<int64_t>(1, kNoiseRunElements / std::max<int64_t>(d.W, 1));
  at::parallel_for(0, d.N * d.H, grain, [&](int64_t begin, int64_t end) {
    ForwardScratch<acc_t, index_t> s(d.C, d.W, run_rows, d.views);
    for (int64_t row = begin; row < end;) {  // a run: consecutive rows of one image
      const int64_t n = row / d.H, i0 = row % d.H;
      const int64_t count = std::min({end - row, d.H - i0, run_rows});
      forward_run<scalar_t, acc_t, index_t>(src, dst, frows, irows, means[n], seed, d, n, i0, count, s);
      row += count;
    }
  });
}

// backward_pixel of kt_math.h for every pixel of image n and one view: scatters into image_grad,
// returns the view's share of the gradient through the contrast pivot.
template <typename scalar_t, typename acc_t, typename index_t>
acc_t backward_view(const scalar_t* grad, acc_t* image_grad, const SampleParams<acc_t>& p, const Shape& d,
                    int64_t n, RowTaps<acc_t, index_t>& taps) {
  const int64_t plane = d.H * d.W;
  const ColourTerms<acc_t> terms = colour_terms(p, d.C, acc_t(0));  // mu only enters the forward
  auto add = [](acc_t* ptr, acc_t value) { *ptr += value; };
  acc_t pivot = 0;
  for (int64_t i = 0; i < d.H; ++i) {
    row_geometry<acc_t, index_t>(p, d.padding, static_cast<index_t>(i), static_cast<index_t>(d.H),
                                 static_cast<index_t>(d.W), taps);
    for (int64_t j = 0; j < d.W; ++j) {
      pivot += backward_pixel<scalar_t, acc_t, index_t>(terms, taps.at(j), grad + n * d.C * plane + i * d.W + j,
                                                        image_grad, static_cast<index_t>(plane), d.C, add);
    }
  }
  return pivot_gradient_share(p, pivot, d.C * plane);
}

// One image per task: no races, and the task also zeroes its image's gradient first and adds the
// contrast pivot's share (and divides by the views) last, while that image is in cache.
template <typename scalar_t, typename acc_t, typename index_t>
void backward_images(const scalar_t* grad, acc_t* grad_x, const double* frows, const int64_t* irows,
                     const Shape& d) {
  const int64_t per_image = d.C * d.H * d.W;
  at::parallel_for(0, d.N, 1, [&](int64_t begin, int64_t end) {
    RowTaps<acc_t, index_t> taps(d.W);
    for (int64_t n = begin; n < end; ++n) {
      acc_t* __restrict image_grad = grad_x + n * per_image;
      std::fill(image_grad, image_grad + per_image, acc_t(0));
      acc_t share = 0;
      for (int64_t v = 0; v < d.views; ++v) {
        const int64_t r = d.row(n, v);
        const SampleParams<acc_t> p = load_params<acc_t>(frows + r * kNumFloatParams, irows + r * kNumIntParams);
        share += backward_view<scalar_t, acc_t, index_t>(grad, image_grad, p, d, n, taps);
      }
      if (d.views > 1) {  // y is the views' mean: every view's gradient is divided by their number
        const acc_t inverse = acc_t(1) / static_cast<acc_t>(d.views);
        for (int64_t e = 0; e < per_image; ++e) image_grad[e] = (image_grad[e] + share) * inverse;
      } else if (share != acc_t(0)) {
        for (int64_t e = 0; e < per_image; ++e) image_grad[e] += share;
      }
    }
  });
}

at::Tensor kaleidoscope_cpu(const at::Tensor& x_in, const at::Tensor& affine, const at::Tensor& fold_k,
                            const at::Tensor& fold_center, const at::Tensor& fold_phase,
                            const at::Tensor& brightness, const at::Tensor& saturation,
                            const at::Tensor& contrast, const at::Tensor& cutout,
                            const at::Tensor& noise_std, int64_t seed, c10::string_view padding_mode,
                            int64_t views) {
  check_image(x_in, "x");
  const PackedParams packed = pack_params(x_in, affine, fold_k, fold_center, fold_phase, brightness,
                                          saturation, contrast, cutout, noise_std, std::string(padding_mode), views);
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (x.numel() == 0) return out;
  const Shape shape{x.size(0), x.size(1), x.size(2), x.size(3), packed.rows, views, packed.padding};
  const at::Tensor means = image_means(x);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "kaleidoscope_cpu", [&] {
    using acc_t = acc_of<scalar_t>;
    auto run = [&](auto index_tag) {
      using index_t = decltype(index_tag);
      forward_rows<scalar_t, acc_t, index_t>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                             packed.floats.const_data_ptr<double>(), packed.ints.const_data_ptr<int64_t>(),
                                             means.const_data_ptr<acc_t>(), static_cast<uint64_t>(seed), shape);
    };
    use_index32(x) ? run(int32_t{}) : run(int64_t{});
  });
  return out;
}

at::Tensor kaleidoscope_backward_cpu(const at::Tensor& grad_in, const at::Tensor& affine,
                                     const at::Tensor& fold_k, const at::Tensor& fold_center,
                                     const at::Tensor& fold_phase, const at::Tensor& brightness,
                                     const at::Tensor& saturation, const at::Tensor& contrast,
                                     const at::Tensor& cutout, const at::Tensor& noise_std,
                                     c10::string_view padding_mode, int64_t views) {
  check_image(grad_in, "grad");
  const PackedParams packed = pack_params(grad_in, affine, fold_k, fold_center, fold_phase, brightness,
                                          saturation, contrast, cutout, noise_std, std::string(padding_mode), views);
  const at::Tensor grad = grad_in.contiguous();
  const auto acc_type = accumulation_type(grad.scalar_type());
  at::Tensor grad_acc = at::empty(grad.sizes(), grad.options().dtype(acc_type));  // zeroed per image
  if (grad.numel() == 0) return grad_acc.to(grad.scalar_type());
  const Shape shape{grad.size(0), grad.size(1), grad.size(2), grad.size(3), packed.rows, views, packed.padding};

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "kaleidoscope_backward_cpu", [&] {
    using acc_t = acc_of<scalar_t>;
    auto run = [&](auto index_tag) {
      using index_t = decltype(index_tag);
      backward_images<scalar_t, acc_t, index_t>(grad.const_data_ptr<scalar_t>(), grad_acc.mutable_data_ptr<acc_t>(),
                                                packed.floats.const_data_ptr<double>(),
                                                packed.ints.const_data_ptr<int64_t>(), shape);
    };
    use_index32(grad) ? run(int32_t{}) : run(int64_t{});
  });
  return grad_acc.scalar_type() == grad.scalar_type() ? grad_acc : grad_acc.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(kaleido_cuda, CPU, m) {
  m.impl("kaleidoscope", &kaleidoscope_cpu);
  m.impl("kaleidoscope_backward", &kaleidoscope_backward_cpu);
}

}  // namespace kaleido
