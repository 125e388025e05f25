// Host-side checks of the shared math header, without torch: Philox known answers (Random123's
// vectors, as in the spec), the padding rules and the fold. Run by ctest.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "kaleido/kt_math.h"

static int failures = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                            \
    }                                                                        \
  } while (0)

static void philox_known_answers() {
  struct Case { uint32_t ctr[4], key[2], out[4]; };
  const Case cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Case& c : cases) {
    kaleido::Philox4x32 ctr{{c.ctr[0], c.ctr[1], c.ctr[2], c.ctr[3]}};
    const kaleido::Philox4x32 r = kaleido::philox4x32_10(ctr, c.key[0], c.key[1]);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == c.out[i]);
  }
}

static void normal_is_finite_and_deterministic() {
  double sum = 0, sum_sq = 0;
  const int n = 200000;
  for (int e = 0; e < n; ++e) {  // 50 planes of 4,000 elements
    const double z = kaleido::philox_normal_at<double>(42, static_cast<uint64_t>(e / 4000), static_cast<uint32_t>(e % 4000));
    CHECK(std::isfinite(z));
    sum += z;
    sum_sq += z * z;
  }
  CHECK(std::fabs(sum / n) < 0.01);
  CHECK(std::fabs(sum_sq / n - 1.0) < 0.02);
  CHECK(kaleido::philox_normal_at<float>(7, 3, 123) == kaleido::philox_normal_at<float>(7, 3, 123));
  // One block, four normals: the lanes of a group are the block's two Box-Muller pairs.
  const kaleido::Normals4<double> four = kaleido::philox_normals4<double>(7, 30, 3);
  for (int l = 0; l < 4; ++l) CHECK(kaleido::philox_normal_at<double>(7, 3, 120 + l) == four.z[l]);
  CHECK(four.z[0] != four.z[1] && four.z[2] != four.z[3] && four.z[0] != four.z[2]);
}

static void padding_rules() {
  // Reflection about the pixel edges -0.5 and size - 0.5 (grid_sample, align_corners=False).
  CHECK(std::fabs(kaleido::reflect_coordinate(-1.0, 4) - 0.0) < 1e-12);
  CHECK(std::fabs(kaleido::reflect_coordinate(4.0, 4) - 3.0) < 1e-12);
  CHECK(std::fabs(kaleido::reflect_coordinate(-0.25, 4) - 0.0) < 1e-12);  // clipped into the image
  CHECK(std::fabs(kaleido::reflect_coordinate(9.0, 4) - 1.0) < 1e-12);    // two bounces
  CHECK(kaleido::clip_coordinate(-5.0, 4) == 0.0 && kaleido::clip_coordinate(7.0, 4) == 3.0);
  CHECK(kaleido::clip_coordinate(NAN, 4) == 0.0);
  CHECK(kaleido::pad_coordinate<kaleido::kZeros>(1e300, 4) == 5.0);
  CHECK(kaleido::pad_coordinate<kaleido::kZeros>(NAN, 4) == -2.0);
}

// A parameter row in pixel space (kt_math.h, FloatParam): identity affine, fold centre (cx, cy).
template <typename acc_t>
static kaleido::SampleParams<acc_t> identity_params(int64_t fold_k, double cx, double cy) {
  double frow[kaleido::kNumFloatParams] = {};
  frow[kaleido::kP00] = 1.0;
  frow[kaleido::kP11] = 1.0;
  frow[kaleido::kCx] = cx;
  frow[kaleido::kCy] = cy;
  const double k = static_cast<double>(fold_k > 0 ? fold_k : 1);
  frow[kaleido::kWedge] = 3.14159265358979323846 / k;  // as the host's pack_params makes them
  frow[kaleido::kTurnsPerRadian] = k / 6.283185307179586476925;
  frow[kaleido::kContrast] = 1.0;
  frow[kaleido::kSaturation] = 1.0;
  const int64_t irow[kaleido::kNumIntParams] = {fold_k, -1, -1, -1, -1};  // empty cutout
  return kaleido::load_params<acc_t>(frow, irow);
}

template <typename acc_t>
static void fold_mirror() {
  // A single mirror along the x axis through the centre (2, 2): points below it come back above.
  kaleido::SampleParams<acc_t> p = identity_params<acc_t>(1, 2.0, 2.0);
  acc_t x = static_cast<acc_t>(2.3), y = static_cast<acc_t>(1.6);
  kaleido::fold_unchecked(p, &x, &y);
  CHECK(std::fabs(x - static_cast<acc_t>(2.3)) < 1e-5 && std::fabs(y - static_cast<acc_t>(2.4)) < 1e-5);
  // Fold off, identity affine: every pixel samples itself, exactly, in float and in double.
  p = identity_params<acc_t>(0, 0.0, 0.0);
  for (int64_t i = 0; i < 6; ++i) {
    for (int64_t j = 0; j < 5; ++j) {
      const auto taps = kaleido::compute_taps<acc_t, int64_t>(p, i, j, 6, 5, kaleido::kZeros);
      acc_t sampled_index = 0;
      for (int t = 0; t < 4; ++t) sampled_index += taps.weight[t] * static_cast<acc_t>(taps.offset[t]);
      CHECK(sampled_index == static_cast<acc_t>(i * 5 + j));
      CHECK(taps.weight_sum == static_cast<acc_t>(1));
    }
  }
}

static void fastmath_matches_libm() {
  double worst_atan2 = 0, worst_sin = 0, worst_cos = 0;
  for (int a = -200; a <= 200; ++a) {
    for (int b = -200; b <= 200; ++b) {
      const double y = a * 0.173, x = b * 0.291;
      if (x == 0 && y == 0) continue;
      worst_atan2 = std::fmax(worst_atan2, std::fabs(kaleido::fastmath::atan2(y, x) - std::atan2(y, x)));
    }
  }
  for (int k = -100000; k <= 100000; ++k) {
    const double x = k * 3.1e-4;  // [-31, 31] radians: the fold's range of m + phase
    double s, c;
    kaleido::fastmath::sincos(x, &s, &c);
    worst_sin = std::fmax(worst_sin, std::fabs(s - std::sin(x)));
    worst_cos = std::fmax(worst_cos, std::fabs(c - std::cos(x)));
  }
  CHECK(worst_atan2 < 2e-15);
  CHECK(worst_sin < 2e-15 && worst_cos < 2e-15);
  float worst_log = 0, worst_cos_turns = 0, worst_sin_turns = 0;
  for (uint32_t r = 0; r < 4000000u; ++r) {
    const uint32_t bits = r * 1073u + 12345u;  // spread over the Philox output range
    const float u1 = (static_cast<float>(bits) + 1.0f) * 2.3283064365386963e-10f;
    worst_log = std::fmax(worst_log, std::fabs(kaleido::fastmath::log(u1) - std::log(u1)) / std::fmax(1.0f, std::fabs(std::log(u1))));
    const float u2 = static_cast<float>(bits) * 2.3283064365386963e-10f;
    float s_t, c_t;
    kaleido::fastmath::sincos_turns(u2, &s_t, &c_t);
    worst_cos_turns = std::fmax(worst_cos_turns, std::fabs(c_t - static_cast<float>(std::cos(6.283185307179586 * u2))));
    worst_sin_turns = std::fmax(worst_sin_turns, std::fabs(s_t - static_cast<float>(std::sin(6.283185307179586 * u2))));
    CHECK(kaleido::fastmath::cos_turns(u2) == c_t);
  }
  // The float versions that the geometry of float32/half/bfloat16 inputs uses.
  float worst_atan2f = 0, worst_sinf = 0, worst_cosf = 0;
  for (int a = -200; a <= 200; ++a) {
    for (int b = -200; b <= 200; ++b) {
      const float y = a * 0.173f, x = b * 0.291f;
      if (x == 0 && y == 0) continue;
      worst_atan2f = std::fmax(worst_atan2f, std::fabs(kaleido::fastmath::atan2(y, x) -
                                                       static_cast<float>(std::atan2(double(y), double(x)))));
    }
  }
  for (int k = -100000; k <= 100000; ++k) {
    const float x = k * 3.1e-4f;
    float s, c;
    kaleido::fastmath::sincos(x, &s, &c);
    worst_sinf = std::fmax(worst_sinf, std::fabs(s - static_cast<float>(std::sin(double(x)))));
    worst_cosf = std::fmax(worst_cosf, std::fabs(c - static_cast<float>(std::cos(double(x)))));
  }
  CHECK(worst_atan2f < 1e-6f);  // a few ulp of pi
  CHECK(worst_sinf < 3e-7f && worst_cosf < 3e-7f);
  std::printf("fastmath float: atan2 %.1e, sin %.1e, cos %.1e\n", worst_atan2f, worst_sinf, worst_cosf);
  CHECK(worst_log < 5e-7f);
  CHECK(worst_cos_turns < 5e-7f && worst_sin_turns < 5e-7f);
  std::printf("fastmath: atan2 %.1e, sin %.1e, cos %.1e, logf %.1e, cos_turns %.1e, sin_turns %.1e\n", worst_atan2,
              worst_sin, worst_cos, worst_log, worst_cos_turns, worst_sin_turns);
}

int main() {
  fastmath_matches_libm();
  philox_known_answers();
  normal_is_finite_and_deterministic();
  padding_rules();
  fold_mirror<double>();
  fold_mirror<float>();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return EXIT_FAILURE;
  }
  std::printf("kt_math: all checks passed\n");
  return EXIT_SUCCESS;
}
