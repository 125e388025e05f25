// The one place where a KT pixel formula lives (see shared design KT_SPEC.md and docs/kt_op.md).
// Compiled by g++ for the CPU kernels and by nvcc for the CUDA kernels, so both backends
// run the same arithmetic: only loops, launches and atomics differ between them.
#pragma once

#include <math.h>
#include <stdint.h>

#include "kaleido/kt_config.h"
#include "kaleido/kt_fastmath.h"

namespace kaleido {

enum Padding : int { kZeros = 0, kBorder = 1, kReflection = 2 };

// Packed per-sample parameters: one row per sample (or one row for the whole batch).
// Float row (float64, made by the host's pack_params for one image size H x W): the affine and
// the fold centre in pixel space, the fold phase and the wedge's angle pi / k and k / (2 pi) (so
// the kernels never divide per image), colour, noise. In pixel space an output pixel
// (i, j) samples source point x = P00 j + P01 i + P02, y = P10 j + P11 i + P12 (the affine of
// normalised coordinates of KT_SPEC, with the normalisation folded into its coefficients), so
// the identity, flips and whole-pixel shifts are exact in any precision.
//
// Geometry (fold, affine, pixel coordinates, bilinear weights) runs in acc_t: float for
// float32, float16 and bfloat16 inputs, double for float64 (docs/kt_op.md, "Precision"). In
// float its coordinate error stays within side * 2^-19 pixel (tests/op/test_float_geometry.py), and
// the host refuses float geometry on sides above kMaxFloatGeometrySide.
enum FloatParam : int {
  kP00 = 0, kP01, kP02, kP10, kP11, kP12, kCx, kCy, kPhase, kWedge, kTurnsPerRadian,
  kBrightness, kSaturation, kContrast, kSigma, kNumFloatParams
};
// Images with a side above this are refused in float geometry: the coordinate error there
// (up to about 3e-2 pixel) would move sharp edges by more than float32's own value resolution allows.
constexpr int64_t kMaxFloatGeometrySide = 16384;
// Integer row (int64): fold k and the cutout rectangle [y0, y1) x [x0, x1) in source pixels.
enum IntParam : int { kFoldK = 0, kCutY0, kCutX0, kCutY1, kCutX1, kNumIntParams };

// Folds beyond this many mirrors have wedges thinner than a pixel on any sane image.
constexpr int kMaxFoldK = 256;

// ---- overloads so that the same source calls the float or double C math on host and device
KT_HD float kt_floor(float a) { return floorf(a); }
KT_HD double kt_floor(double a) { return floor(a); }
KT_HD float kt_fabs(float a) { return fabsf(a); }
KT_HD double kt_fabs(double a) { return fabs(a); }
KT_HD float kt_sqrt(float a) { return sqrtf(a); }
KT_HD double kt_sqrt(double a) { return sqrt(a); }

// -2 ln(u1), and cos and sin of 2 pi u2, of the Box-Muller transform: branch-free polynomials in
// float (vectorisable, identical on both backends), libm in double.
KT_HD float box_muller_log(float u) { return fastmath::log(u); }
KT_HD double box_muller_log(double u) { return log(u); }
KT_HD void box_muller_sincos(float turns, float* s, float* c) { fastmath::sincos_turns(turns, s, c); }
KT_HD void box_muller_sincos(double turns, double* s, double* c) {
  *s = sin(6.283185307179586476925 * turns);
  *c = cos(6.283185307179586476925 * turns);
}

// ---- Philox4x32-10 (Salmon et al., SC'11): counter-based, so every element's noise depends
// only on (seed, element index), never on the thread layout.
struct Philox4x32 {
  uint32_t v[4];
};

KT_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(product >> 32);
  *lo = static_cast<uint32_t>(product);
}

KT_HD Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t key0, uint32_t key1) {
  const uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  const uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
KT_UNROLL
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(kMul0, ctr.v[0], &hi0, &lo0);
    mulhilo32(kMul1, ctr.v[2], &hi1, &lo1);
    Philox4x32 next;
    next.v[0] = hi1 ^ ctr.v[1] ^ key0;
    next.v[1] = lo1;
    next.v[2] = hi0 ^ ctr.v[3] ^ key1;
    next.v[3] = lo0;
    ctr = next;
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return ctr;
}

// The noise stream: four standard normals per Philox block. Element k = i W + j of image plane
// q = n C + c belongs to group g = k / 4 (lane k % 4) of its plane; the group's block is Philox
// with counter (g, q_lo, q_hi, 0) and key (seed_lo, seed_hi), and its words (r0, r1) and (r2, r3)
// are two Box-Muller pairs: u1 = (r + 1) / 2^32 in (0, 1], so the log is always finite,
// u2 = r' / 2^32, z = sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2). Lanes 0-3 take z0, z1, z2, z3.
// So an element's noise depends on (seed, plane, position), never on the thread layout, and one
// block serves four elements (docs/kt_op.md, "Noise").
template <typename acc_t>
struct Normals4 {
  acc_t z[4];
};

template <typename acc_t>
KT_HD void box_muller_pair(uint32_t r_radius, uint32_t r_angle, acc_t* z_cos, acc_t* z_sin) {
  const acc_t inv_2_32 = static_cast<acc_t>(2.3283064365386962890625e-10);  // 2^-32
  const acc_t u1 = (static_cast<acc_t>(r_radius) + static_cast<acc_t>(1)) * inv_2_32;
  const acc_t u2 = static_cast<acc_t>(r_angle) * inv_2_32;
  const acc_t radius = kt_sqrt(static_cast<acc_t>(-2) * box_muller_log(u1));
  acc_t s, c;
  box_muller_sincos(u2, &s, &c);
  *z_cos = radius * c;
  *z_sin = radius * s;
}

template <typename acc_t>
KT_HD Normals4<acc_t> philox_normals4(uint64_t seed, uint32_t group, uint64_t plane, uint32_t view = 0) {
  Philox4x32 ctr;
  ctr.v[0] = group;
  ctr.v[1] = static_cast<uint32_t>(plane);
  ctr.v[2] = static_cast<uint32_t>(plane >> 32);
  ctr.v[3] = view;  // the view of an averaged KT image (KTParams.views); 0 for a single view
  const Philox4x32 r = philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  Normals4<acc_t> out;
  box_muller_pair<acc_t>(r.v[0], r.v[1], &out.z[0], &out.z[1]);
  box_muller_pair<acc_t>(r.v[2], r.v[3], &out.z[2], &out.z[3]);
  return out;
}

// The normal of element k of plane q alone (tests, and code that needs one element).
template <typename acc_t>
KT_HD acc_t philox_normal_at(uint64_t seed, uint64_t plane, uint32_t k) {
  return philox_normals4<acc_t>(seed, k >> 2, plane).z[k & 3u];
}

// ---- one sample's parameters, read from the packed rows
template <typename acc_t>
struct SampleParams {
  acc_t p00, p01, p02, p10, p11, p12;  // pixel-space affine
  acc_t cx, cy, phase;                 // fold centre (pixels) and phase
  acc_t wedge, turns_per_radian;       // pi / k and k / (2 pi), for k = fold_k > 0
  acc_t brightness, saturation, contrast, sigma;
  int64_t fold_k;
  acc_t cut_y0, cut_x0, cut_y1, cut_x1;  // cutout [y0, y1) x [x0, x1), whole pixels
};

// Once per image (per row on the CPU): conversions to acc_t only.
template <typename acc_t>
KT_HD SampleParams<acc_t> load_params(const double* frow, const int64_t* irow) {
  SampleParams<acc_t> p;
  p.p00 = static_cast<acc_t>(frow[kP00]); p.p01 = static_cast<acc_t>(frow[kP01]);
  p.p02 = static_cast<acc_t>(frow[kP02]); p.p10 = static_cast<acc_t>(frow[kP10]);
  p.p11 = static_cast<acc_t>(frow[kP11]); p.p12 = static_cast<acc_t>(frow[kP12]);
  p.cx = static_cast<acc_t>(frow[kCx]); p.cy = static_cast<acc_t>(frow[kCy]);
  p.phase = static_cast<acc_t>(frow[kPhase]);
  p.brightness = static_cast<acc_t>(frow[kBrightness]);
  p.saturation = static_cast<acc_t>(frow[kSaturation]);
  p.contrast = static_cast<acc_t>(frow[kContrast]);
  p.sigma = static_cast<acc_t>(frow[kSigma]);
  p.fold_k = irow[kFoldK];
  p.wedge = static_cast<acc_t>(frow[kWedge]);
  p.turns_per_radian = static_cast<acc_t>(frow[kTurnsPerRadian]);
  // Whole pixels in [-1, side + 1] (the host clamps them): exact in float.
  p.cut_y0 = static_cast<acc_t>(static_cast<int32_t>(irow[kCutY0]));
  p.cut_x0 = static_cast<acc_t>(static_cast<int32_t>(irow[kCutX0]));
  p.cut_y1 = static_cast<acc_t>(static_cast<int32_t>(irow[kCutY1]));
  p.cut_x1 = static_cast<acc_t>(static_cast<int32_t>(irow[kCutX1]));
  return p;
}

// ---- chain step 1: kaleidoscopic fold of the output pixel (x, y), in place, in pixel units
// about the fold centre (the spec's normalised offsets times half the image side).
template <typename acc_t>
KT_HD void fold_unchecked(const SampleParams<acc_t>& p, acc_t* x, acc_t* y) {
  const acc_t dx = *x - p.cx;
  const acc_t dy = *y - p.cy;
  const acc_t r = kt_sqrt(dx * dx + dy * dy);
  const acc_t t = fastmath::atan2(dy, dx) - p.phase;
  const acc_t period = p.wedge + p.wedge;
  acc_t m = t - period * kt_floor(t * p.turns_per_radian);  // t mod period, as a product
  m = m > p.wedge ? period - m : m;
  acc_t sin_m, cos_m;
  fastmath::sincos(m + p.phase, &sin_m, &cos_m);
  *x = p.cx + r * cos_m;
  *y = p.cy + r * sin_m;
}

// ---- chain step 4: padding rules of grid_sample with align_corners=False, on pixel coordinates.
// Every comparison is written so that NaN lands on a safe value.
template <typename real_t>
KT_HD real_t clip_coordinate(real_t coord, int64_t size) {
  const real_t hi = static_cast<real_t>(size - 1);
  const real_t low_clipped = coord > static_cast<real_t>(0) ? coord : static_cast<real_t>(0);  // NaN -> 0
  return low_clipped < hi ? low_clipped : hi;
}

template <typename real_t>
KT_HD real_t reflect_coordinate(real_t coord, int64_t size) {
  // Reflect about the outer pixel edges -0.5 and size - 0.5.
  const real_t span = static_cast<real_t>(size);
  const real_t shifted = kt_fabs(coord + static_cast<real_t>(0.5));
  const real_t flips = kt_floor(shifted / span);
  // shifted - span * flips is fmod(shifted, span) without a libm call (vectorisable); rounding can
  // only bite exactly at a mirror edge, where both sides reflect to the same point.
  const real_t extra = shifted - span * flips;
  const real_t half_flips = flips * static_cast<real_t>(0.5);
  const bool even = kt_floor(half_flips) == half_flips;
  const real_t reflected = even ? extra - static_cast<real_t>(0.5) : span - extra - static_cast<real_t>(0.5);
  return clip_coordinate(reflected, size);
}

template <int kPadding, typename real_t>
KT_HD real_t pad_coordinate(real_t coord, int64_t size) {
  if (kPadding == kBorder) return clip_coordinate(coord, size);
  if (kPadding == kReflection) return reflect_coordinate(coord, size);
  // Zeros: taps outside the image are dropped later. Clamp far-away (or NaN) coordinates to a
  // value whose taps are all outside, so the integer conversion below is always defined.
  const real_t lo = static_cast<real_t>(-2), hi = static_cast<real_t>(size + 1);
  const real_t low_clipped = coord > lo ? coord : lo;  // NaN -> lo
  return low_clipped < hi ? low_clipped : hi;
}

// Four bilinear taps of one output pixel. A dropped tap (outside the image, or inside the
// cutout) has weight 0 and offset 0, so callers can read and scatter unconditionally.
template <typename acc_t, typename index_t>
struct Taps {
  index_t offset[4];  // ty * W + tx within one channel plane
  acc_t weight[4];
  acc_t weight_sum;   // sum of the kept weights: how much "image" this pixel holds
};

// Chain steps 1-4 for output pixel (i, j): the source pixel coordinates (xs, ys) after fold,
// affine and padding, with the padding mode and the fold switch fixed at compile time.
template <int kPadding, bool kFold, typename acc_t, typename index_t>
KT_HD void source_coordinates(const SampleParams<acc_t>& p, index_t i, index_t j, index_t H, index_t W,
                              acc_t* xs, acc_t* ys) {
  acc_t x = static_cast<acc_t>(j), y = static_cast<acc_t>(i);  // exact: sides are below 2^24
  if (kFold) fold_unchecked(p, &x, &y);
  *xs = pad_coordinate<kPadding>(p.p00 * x + p.p01 * y + p.p02, W);
  *ys = pad_coordinate<kPadding>(p.p10 * x + p.p11 * y + p.p12, H);
}

// Chain steps 4-5: the four bilinear taps of source point (xs, ys), dropping taps outside the
// image or inside the cutout. index_t must hold H * W. The tests are made on whole-pixel values
// of acc_t and the offsets in index_t, with selects instead of branches, which is what lets
// g++ vectorise the CPU's loop over a row.
template <typename acc_t, typename index_t>
KT_HD Taps<acc_t, index_t> bilinear_taps(const SampleParams<acc_t>& p, acc_t xs, acc_t ys, index_t H, index_t W) {
  const acc_t one = static_cast<acc_t>(1), zero = static_cast<acc_t>(0);
  const acc_t fw = static_cast<acc_t>(W), fh = static_cast<acc_t>(H);
  const acc_t x0 = kt_floor(xs), y0 = kt_floor(ys);
  const acc_t fx = xs - x0, fy = ys - y0;
  const acc_t w[4] = {(one - fx) * (one - fy), fx * (one - fy), (one - fx) * fy, fx * fy};
  // Padding keeps coordinates in [-2, side + 1], so these conversions are always defined.
  const index_t ix0 = static_cast<index_t>(x0), iy0 = static_cast<index_t>(y0);
  Taps<acc_t, index_t> taps;
  taps.weight_sum = zero;
KT_UNROLL
  for (int t = 0; t < 4; ++t) {
    const acc_t tx = x0 + static_cast<acc_t>(t & 1), ty = y0 + static_cast<acc_t>(t >> 1);
    const bool inside = (tx >= zero) & (tx < fw) & (ty >= zero) & (ty < fh);
    const bool outside_cut = (ty < p.cut_y0) | (ty >= p.cut_y1) | (tx < p.cut_x0) | (tx >= p.cut_x1);
    const bool keep = inside & outside_cut;
    const index_t offset = (iy0 + static_cast<index_t>(t >> 1)) * W + ix0 + static_cast<index_t>(t & 1);
    taps.offset[t] = keep ? offset : static_cast<index_t>(0);
    taps.weight[t] = keep ? w[t] : zero;
    taps.weight_sum += taps.weight[t];
  }
  return taps;
}

// Chain steps 1-5 (geometry and cutout) for output pixel (i, j) of an H x W image.
template <int kPadding, bool kFold, typename acc_t, typename index_t>
KT_HD Taps<acc_t, index_t> compute_taps_static(const SampleParams<acc_t>& p, index_t i, index_t j,
                                               index_t H, index_t W) {
  acc_t xs, ys;
  source_coordinates<kPadding, kFold>(p, i, j, H, W, &xs, &ys);
  return bilinear_taps<acc_t, index_t>(p, xs, ys, H, W);
}

// The same with the padding mode and fold switch read at run time (one uniform branch).
template <typename acc_t, typename index_t>
KT_HD Taps<acc_t, index_t> compute_taps(const SampleParams<acc_t>& p, index_t i, index_t j, index_t H,
                                        index_t W, int padding) {
  const bool fold = p.fold_k > 0;
  if (padding == kBorder) {
    return fold ? compute_taps_static<kBorder, true>(p, i, j, H, W) : compute_taps_static<kBorder, false>(p, i, j, H, W);
  }
  if (padding == kReflection) {
    return fold ? compute_taps_static<kReflection, true>(p, i, j, H, W)
                : compute_taps_static<kReflection, false>(p, i, j, H, W);
  }
  return fold ? compute_taps_static<kZeros, true>(p, i, j, H, W) : compute_taps_static<kZeros, false>(p, i, j, H, W);
}

// Chain steps 5-6: DSA's brightness b, saturation s, contrast c on a tap value p with channel
// mean pm and image mean mu give p3 = c s p + c (1 - s) pm + (1 - c) mu + b, so a pixel is
//   y[ch] = gain * sum_t(w p[ch]) + mean_gain * sum_t(w sum_ch p) + sum_t(w) * offset,
// with the three coefficients below: one pass per channel, plus one for the channel sums.
template <typename acc_t>
struct ColourTerms {
  acc_t gain;       // c s (c for one channel: saturation has nothing to act on)
  acc_t mean_gain;  // c (1 - s) / C (0 for one channel)
  acc_t offset;     // (1 - c) mu + b, per unit of kept tap weight
};

template <typename acc_t>
KT_HD ColourTerms<acc_t> colour_terms(const SampleParams<acc_t>& p, int64_t C, acc_t mu) {
  const acc_t one = static_cast<acc_t>(1);
  ColourTerms<acc_t> t;
  t.gain = C > 1 ? p.contrast * p.saturation : p.contrast;
  t.mean_gain = C > 1 ? p.contrast * (one - p.saturation) / static_cast<acc_t>(C) : static_cast<acc_t>(0);
  // Contrast 1 leaves mu out entirely, so an image holding a NaN does not turn every pixel NaN.
  t.offset = (p.contrast != one ? (one - p.contrast) * mu : static_cast<acc_t>(0)) + p.brightness;
  return t;
}

// sum_t w_t src[offset_t]: one channel's bilinear sample. Taps of weight 0 (dropped ones, which
// point at element 0) add exactly 0, so a NaN or inf elsewhere in the image cannot leak into the
// padding or the cutout.
template <typename scalar_t, typename acc_t, typename index_t>
KT_HD acc_t tap_sum(const Taps<acc_t, index_t>& taps, const scalar_t* src) {
  acc_t value = static_cast<acc_t>(0);
KT_UNROLL
  for (int t = 0; t < 4; ++t) {
    const acc_t tap = static_cast<acc_t>(src[taps.offset[t]]);
    value += taps.weight[t] != static_cast<acc_t>(0) ? taps.weight[t] * tap : static_cast<acc_t>(0);
  }
  return value;
}

// A pixel's value before noise, from its channel's tap sum, the sum of the tap sums over all
// channels, and the kept tap weight: the colour chain of DSA, applied once per pixel.
template <typename acc_t>
KT_HD acc_t colour_value(const ColourTerms<acc_t>& terms, acc_t tap, acc_t tap_channel_sum, acc_t weight_sum) {
  return terms.gain * tap + terms.mean_gain * tap_channel_sum + weight_sum * terms.offset;
}

// J^T g of the colour chain for one channel: what reaches each tap, before its weight w.
template <typename acc_t>
KT_HD acc_t tap_gradient(const ColourTerms<acc_t>& terms, acc_t g, acc_t g_channel_sum) {
  return terms.gain * g + terms.mean_gain * g_channel_sum;
}

// Chain steps 5-7 for the `lanes` (1 to 4) output pixels of one noise group, all channels, of one
// view: taps[l] are those of pixel 4 group + l of the plane, `img` points at x[n, 0, 0, 0];
// channels are `plane` elements apart, and channel ch's noise comes from plane plane0 + ch
// (plane0 = n C) and view `view`: one Philox block per channel for the four pixels. Each value
// goes to store(ch * plane + l, value), relative to y[n, 0] + 4 group.
template <typename scalar_t, typename acc_t, typename index_t, typename Store>
KT_HD void forward_group(const SampleParams<acc_t>& p, const ColourTerms<acc_t>& terms,
                         const Taps<acc_t, index_t> (&taps)[4], int lanes, const scalar_t* img, Store store,
                         index_t plane, int64_t C, uint64_t seed, uint64_t plane0, uint32_t group, uint32_t view) {
  const acc_t zero = static_cast<acc_t>(0);
  acc_t channel_sum[4] = {zero, zero, zero, zero};
  if (terms.mean_gain != zero) {
    for (int64_t ch = 0; ch < C; ++ch) {
KT_UNROLL
      for (int l = 0; l < 4; ++l) {
        if (l < lanes) channel_sum[l] += tap_sum(taps[l], img + ch * static_cast<int64_t>(plane));
      }
    }
  }
  for (int64_t ch = 0; ch < C; ++ch) {
    Normals4<acc_t> noise = {{zero, zero, zero, zero}};
    if (p.sigma != zero) noise = philox_normals4<acc_t>(seed, group, plane0 + static_cast<uint64_t>(ch), view);
KT_UNROLL
    for (int l = 0; l < 4; ++l) {
      if (l >= lanes) continue;
      const acc_t tap = tap_sum(taps[l], img + ch * static_cast<int64_t>(plane));
      acc_t value = colour_value(terms, tap, channel_sum[l], taps[l].weight_sum);
      if (p.sigma != zero) value += p.sigma * noise.z[l];
      store(ch * static_cast<int64_t>(plane) + l, value);
    }
  }
}

// Gradient of one output pixel scattered to its taps: dx[tap] += w J^T g with
// J = c (s (I - E) + E), E = 11^T / C, i.e. w (gain g[ch] + mean_gain sum_ch g). Noise passes
// the gradient unchanged. `scatter(ptr, value)` is a plain add on the CPU (one image per task,
// no race) and an atomic add on CUDA; dst_t is acc_t, or the CUDA deterministic path's 64-bit
// fixed point. Returns sum(w) * sum_ch g, this pixel's share of the gradient through the contrast
// pivot mu, which the caller reduces per image.
template <typename scalar_t, typename acc_t, typename index_t, typename dst_t, typename Scatter>
KT_HD acc_t backward_pixel(const ColourTerms<acc_t>& terms, const Taps<acc_t, index_t>& taps,
                           const scalar_t* grad_out, dst_t* grad_img, index_t plane, int64_t C,
                           Scatter scatter) {
  if (taps.weight_sum == static_cast<acc_t>(0)) return static_cast<acc_t>(0);
  acc_t g_sum = static_cast<acc_t>(0);
  for (int64_t ch = 0; ch < C; ++ch) g_sum += static_cast<acc_t>(grad_out[ch * static_cast<int64_t>(plane)]);
  for (int64_t ch = 0; ch < C; ++ch) {
    const acc_t g = tap_gradient(terms, static_cast<acc_t>(grad_out[ch * static_cast<int64_t>(plane)]), g_sum);
    dst_t* dst = grad_img + ch * static_cast<int64_t>(plane);
KT_UNROLL
    for (int t = 0; t < 4; ++t) {
      if (taps.weight[t] != static_cast<acc_t>(0)) scatter(dst + taps.offset[t], taps.weight[t] * g);
    }
  }
  return taps.weight_sum * g_sum;
}

// The gradient through the contrast pivot mu = mean(x[n]): every element of image n receives
// (1 - c) * S / (C H W), S = sum over pixels of backward_pixel's return value.
template <typename acc_t>
KT_HD acc_t pivot_gradient_share(const SampleParams<acc_t>& p, acc_t pivot_sum, int64_t image_elements) {
  return (static_cast<acc_t>(1) - p.contrast) * pivot_sum / static_cast<acc_t>(image_elements);
}

}  // namespace kaleido
