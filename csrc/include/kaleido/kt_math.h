// The one place where a KT pixel formula lives (see shared design KT_SPEC.md and docs/kt_op.md).
// Compiled by g++ for the CPU kernels and by nvcc for the CUDA kernels, so both backends
// run the same arithmetic: only loops, launches and atomics differ between them.
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define KT_HD __host__ __device__ __forceinline__
#else
#define KT_HD inline
#endif

// Loop unrolling hint for nvcc; the host compiler unrolls these fixed 4- and 10-step loops itself.
#if defined(__CUDACC__)
#define KT_UNROLL _Pragma("unroll")
#else
#define KT_UNROLL
#endif

namespace kaleido {

enum Padding : int { kZeros = 0, kBorder = 1, kReflection = 2 };

// Packed per-sample parameters: one row per sample (or one row for the whole batch).
// Float row (float64): the 2x3 affine, fold centre, fold phase, colour, noise.
//
// Geometry (fold, affine, pixel coordinates, bilinear weights) is computed in float64 for every
// input dtype: a float32 coordinate error of 1e-5 pixel times a sharp image edge already moves a
// value by 1e-4, so float32 geometry could not match across backends to 1e-5. Values (taps,
// colour, noise) accumulate in acc_t: float32, or float64 for float64 input.
enum FloatParam : int {
  kA00 = 0, kA01, kA02, kA10, kA11, kA12, kCx, kCy, kPhase,
  kBrightness, kSaturation, kContrast, kSigma, kNumFloatParams
};
// Integer row (int64): fold k and the cutout rectangle [y0, y1) x [x0, x1) in source pixels.
enum IntParam : int { kFoldK = 0, kCutY0, kCutX0, kCutY1, kCutX1, kNumIntParams };

// Folds beyond this many mirrors have wedges thinner than a pixel on any sane image.
constexpr int kMaxFoldK = 256;

// ---- overloads so that the same source calls the float or double C math on host and device
KT_HD float kt_floor(float a) { return floorf(a); }
KT_HD double kt_floor(double a) { return floor(a); }
KT_HD float kt_fabs(float a) { return fabsf(a); }
KT_HD double kt_fabs(double a) { return fabs(a); }
KT_HD float kt_fmod(float a, float b) { return fmodf(a, b); }
KT_HD double kt_fmod(double a, double b) { return fmod(a, b); }
KT_HD float kt_sqrt(float a) { return sqrtf(a); }
KT_HD double kt_sqrt(double a) { return sqrt(a); }
KT_HD float kt_log(float a) { return logf(a); }
KT_HD double kt_log(double a) { return log(a); }
KT_HD float kt_cos(float a) { return cosf(a); }
KT_HD double kt_cos(double a) { return cos(a); }
KT_HD float kt_sin(float a) { return sinf(a); }
KT_HD double kt_sin(double a) { return sin(a); }
KT_HD float kt_atan2(float y, float x) { return atan2f(y, x); }
KT_HD double kt_atan2(double y, double x) { return atan2(y, x); }
KT_HD float kt_hypot(float a, float b) { return hypotf(a, b); }
KT_HD double kt_hypot(double a, double b) { return hypot(a, b); }

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

// Standard normal for element e under a 64-bit seed: Box-Muller on the first two Philox words.
// u1 lies in (0, 1], so the log is always finite.
template <typename acc_t>
KT_HD acc_t philox_normal(uint64_t seed, uint64_t element) {
  Philox4x32 ctr;
  ctr.v[0] = static_cast<uint32_t>(element);
  ctr.v[1] = static_cast<uint32_t>(element >> 32);
  ctr.v[2] = 0u;
  ctr.v[3] = 0u;
  const Philox4x32 r =
      philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const acc_t inv_2_32 = static_cast<acc_t>(2.3283064365386962890625e-10);  // 2^-32
  const acc_t two_pi = static_cast<acc_t>(6.283185307179586476925);
  const acc_t u1 = (static_cast<acc_t>(r.v[0]) + static_cast<acc_t>(1)) * inv_2_32;
  const acc_t u2 = static_cast<acc_t>(r.v[1]) * inv_2_32;
  return kt_sqrt(static_cast<acc_t>(-2) * kt_log(u1)) * kt_cos(two_pi * u2);
}

// ---- one sample's parameters, read from the packed rows
template <typename acc_t>
struct SampleParams {
  double a00, a01, a02, a10, a11, a12;
  double cx, cy, phase;
  acc_t brightness, saturation, contrast, sigma;
  int64_t fold_k;
  int64_t cut_y0, cut_x0, cut_y1, cut_x1;
};

template <typename acc_t>
KT_HD SampleParams<acc_t> load_params(const double* frow, const int64_t* irow) {
  SampleParams<acc_t> p;
  p.a00 = frow[kA00]; p.a01 = frow[kA01]; p.a02 = frow[kA02];
  p.a10 = frow[kA10]; p.a11 = frow[kA11]; p.a12 = frow[kA12];
  p.cx = frow[kCx]; p.cy = frow[kCy]; p.phase = frow[kPhase];
  p.brightness = static_cast<acc_t>(frow[kBrightness]);
  p.saturation = static_cast<acc_t>(frow[kSaturation]);
  p.contrast = static_cast<acc_t>(frow[kContrast]);
  p.sigma = static_cast<acc_t>(frow[kSigma]);
  p.fold_k = irow[kFoldK];
  p.cut_y0 = irow[kCutY0]; p.cut_x0 = irow[kCutX0];
  p.cut_y1 = irow[kCutY1]; p.cut_x1 = irow[kCutX1];
  return p;
}

// ---- chain step 1: kaleidoscopic fold of the output coordinate (u, v), in place.
template <typename acc_t>
KT_HD void kaleido_fold(const SampleParams<acc_t>& p, double half_w, double half_h, double* u, double* v) {
  if (p.fold_k <= 0) return;
  const double pi = 3.14159265358979323846;
  const double dx = (*u - p.cx) * half_w;
  const double dy = (*v - p.cy) * half_h;
  const double r = kt_hypot(dx, dy);
  const double t = kt_atan2(dy, dx) - p.phase;
  const double wedge = pi / static_cast<double>(p.fold_k);
  const double period = wedge + wedge;
  double m = t - period * kt_floor(t / period);
  if (m > wedge) m = period - m;
  *u = p.cx + r * kt_cos(m + p.phase) / half_w;
  *v = p.cy + r * kt_sin(m + p.phase) / half_h;
}

// ---- chain step 4: padding rules of grid_sample with align_corners=False, on pixel coordinates.
// Every comparison is written so that NaN lands on a safe value.
template <typename real_t>
KT_HD real_t clip_coordinate(real_t coord, int64_t size) {
  const real_t hi = static_cast<real_t>(size - 1);
  return coord > 0 ? (coord < hi ? coord : hi) : static_cast<real_t>(0);
}

template <typename real_t>
KT_HD real_t reflect_coordinate(real_t coord, int64_t size) {
  // Reflect about the outer pixel edges -0.5 and size - 0.5.
  const real_t span = static_cast<real_t>(size);
  const real_t shifted = kt_fabs(coord + static_cast<real_t>(0.5));
  const real_t extra = kt_fmod(shifted, span);
  const real_t flips = kt_floor(shifted / span);
  const bool even = kt_fmod(flips, static_cast<real_t>(2)) == static_cast<real_t>(0);
  const real_t reflected = even ? extra - static_cast<real_t>(0.5) : span - extra - static_cast<real_t>(0.5);
  return clip_coordinate(reflected, size);
}

template <typename real_t>
KT_HD real_t pad_coordinate(real_t coord, int64_t size, int padding) {
  if (padding == kBorder) return clip_coordinate(coord, size);
  if (padding == kReflection) return reflect_coordinate(coord, size);
  // Zeros: taps outside the image are dropped later. Clamp far-away (or NaN) coordinates to a
  // value whose taps are all outside, so the integer conversion below is always defined.
  const real_t lo = static_cast<real_t>(-2), hi = static_cast<real_t>(size + 1);
  return coord > lo ? (coord < hi ? coord : hi) : lo;
}

// Four bilinear taps of one output pixel. A dropped tap (outside the image, or inside the
// cutout) has weight 0 and offset 0, so callers can read and scatter unconditionally.
template <typename acc_t, typename index_t>
struct Taps {
  index_t offset[4];  // ty * W + tx within one channel plane
  acc_t weight[4];
  acc_t weight_sum;   // sum of the kept weights: how much "image" this pixel holds
};

template <typename acc_t>
KT_HD bool in_cutout(const SampleParams<acc_t>& p, int64_t ty, int64_t tx) {
  return ty >= p.cut_y0 && ty < p.cut_y1 && tx >= p.cut_x0 && tx < p.cut_x1;
}

// Chain steps 1-5 (geometry and cutout) for output pixel (i, j) of an H x W image.
template <typename acc_t, typename index_t>
KT_HD Taps<acc_t, index_t> compute_taps(const SampleParams<acc_t>& p, int64_t i, int64_t j,
                                        int64_t H, int64_t W, int padding) {
  const double fw = static_cast<double>(W), fh = static_cast<double>(H);
  double u = static_cast<double>(2 * j + 1) / fw - 1.0;
  double v = static_cast<double>(2 * i + 1) / fh - 1.0;
  kaleido_fold(p, 0.5 * fw, 0.5 * fh, &u, &v);
  const double us = p.a00 * u + p.a01 * v + p.a02;
  const double vs = p.a10 * u + p.a11 * v + p.a12;
  const double xs = pad_coordinate(((us + 1.0) * fw - 1.0) * 0.5, W, padding);
  const double ys = pad_coordinate(((vs + 1.0) * fh - 1.0) * 0.5, H, padding);
  const double x0f = kt_floor(xs), y0f = kt_floor(ys);
  const acc_t fx = static_cast<acc_t>(xs - x0f), fy = static_cast<acc_t>(ys - y0f);
  const int64_t x0 = static_cast<int64_t>(x0f), y0 = static_cast<int64_t>(y0f);
  const acc_t one = static_cast<acc_t>(1);
  const acc_t w[4] = {(one - fx) * (one - fy), fx * (one - fy), (one - fx) * fy, fx * fy};
  Taps<acc_t, index_t> taps;
  taps.weight_sum = static_cast<acc_t>(0);
KT_UNROLL
  for (int t = 0; t < 4; ++t) {
    const int64_t tx = x0 + (t & 1), ty = y0 + (t >> 1);
    const bool keep = tx >= 0 && tx < W && ty >= 0 && ty < H && !in_cutout(p, ty, tx);
    taps.offset[t] = keep ? static_cast<index_t>(ty * W + tx) : static_cast<index_t>(0);
    taps.weight[t] = keep ? w[t] : static_cast<acc_t>(0);
    taps.weight_sum += taps.weight[t];
  }
  return taps;
}

// Chain steps 5-7 for one output pixel, all channels. `img` points at x[n, 0, 0, 0], `out` at
// y[n, 0, i, j]; channels are `plane` elements apart. `element0` is the linear index of
// y[n, 0, i, j] (the noise counter). mu is the mean of x[n] over C, H, W.
//
// With p = x at a tap and pm its channel mean, DSA's brightness, saturation, contrast give
//   p3 = c s p + c (1 - s) pm + (1 - c) mu + b,
// so y = c s sum(w p) + c (1 - s) sum(w pm) + sum(w) ((1 - c) mu + b): one pass per channel.
template <typename scalar_t, typename acc_t, typename index_t>
KT_HD void forward_pixel(const SampleParams<acc_t>& p, const Taps<acc_t, index_t>& taps,
                         const scalar_t* img, scalar_t* out, index_t plane, int64_t C, acc_t mu,
                         uint64_t seed, uint64_t element0) {
  const acc_t cs = p.contrast * p.saturation;
  const acc_t c_one_minus_s = p.contrast * (static_cast<acc_t>(1) - p.saturation);
  acc_t shared = taps.weight_sum *
                 ((static_cast<acc_t>(1) - p.contrast) * mu + p.brightness);
  if (c_one_minus_s != static_cast<acc_t>(0) && C > 1) {
    acc_t tap_mean_sum = static_cast<acc_t>(0);
    for (int64_t ch = 0; ch < C; ++ch) {
      const scalar_t* src = img + ch * static_cast<int64_t>(plane);
KT_UNROLL
      for (int t = 0; t < 4; ++t) tap_mean_sum += taps.weight[t] * static_cast<acc_t>(src[taps.offset[t]]);
    }
    shared += c_one_minus_s * tap_mean_sum / static_cast<acc_t>(C);
  }
  const acc_t gain = C > 1 ? cs : p.contrast;  // one channel: saturation has nothing to act on
  for (int64_t ch = 0; ch < C; ++ch) {
    const scalar_t* src = img + ch * static_cast<int64_t>(plane);
    acc_t value = static_cast<acc_t>(0);
KT_UNROLL
    for (int t = 0; t < 4; ++t) value += taps.weight[t] * static_cast<acc_t>(src[taps.offset[t]]);
    value = gain * value + shared;
    if (p.sigma != static_cast<acc_t>(0)) {
      value += p.sigma * philox_normal<acc_t>(seed, element0 + static_cast<uint64_t>(ch) * plane);
    }
    out[ch * static_cast<int64_t>(plane)] = static_cast<scalar_t>(value);
  }
}

// Gradient of one output pixel scattered to its taps: dx[tap] += w J^T g with
// J = c (s (I - E) + E), E = 11^T / C. `scatter(ptr, value)` is a plain add on the CPU (one
// image per task, no race) and an atomic add on CUDA. Returns sum(w) * sum_c g[c], this pixel's
// share of dL/dmu / (1 - c), which the caller reduces per image.
template <typename scalar_t, typename acc_t, typename index_t, typename Scatter>
KT_HD acc_t backward_pixel(const SampleParams<acc_t>& p, const Taps<acc_t, index_t>& taps,
                           const scalar_t* grad_out, acc_t* grad_img, index_t plane, int64_t C,
                           Scatter scatter) {
  acc_t g_sum = static_cast<acc_t>(0);
  for (int64_t ch = 0; ch < C; ++ch) g_sum += static_cast<acc_t>(grad_out[ch * static_cast<int64_t>(plane)]);
  if (taps.weight_sum == static_cast<acc_t>(0)) return static_cast<acc_t>(0);
  const acc_t gain = C > 1 ? p.contrast * p.saturation : p.contrast;
  const acc_t shared =
      C > 1 ? p.contrast * (static_cast<acc_t>(1) - p.saturation) * g_sum / static_cast<acc_t>(C)
            : static_cast<acc_t>(0);
  for (int64_t ch = 0; ch < C; ++ch) {
    const acc_t g = gain * static_cast<acc_t>(grad_out[ch * static_cast<int64_t>(plane)]) + shared;
    acc_t* dst = grad_img + ch * static_cast<int64_t>(plane);
KT_UNROLL
    for (int t = 0; t < 4; ++t) {
      if (taps.weight[t] != static_cast<acc_t>(0)) scatter(dst + taps.offset[t], taps.weight[t] * g);
    }
  }
  return taps.weight_sum * g_sum;
}

}  // namespace kaleido
