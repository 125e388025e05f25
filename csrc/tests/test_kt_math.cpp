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
  for (int e = 0; e < n; ++e) {
    const double z = kaleido::philox_normal<double>(42, static_cast<uint64_t>(e));
    CHECK(std::isfinite(z));
    sum += z;
    sum_sq += z * z;
  }
  CHECK(std::fabs(sum / n) < 0.01);
  CHECK(std::fabs(sum_sq / n - 1.0) < 0.02);
  CHECK(kaleido::philox_normal<float>(7, 123) == kaleido::philox_normal<float>(7, 123));
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

static void fold_mirror() {
  kaleido::SampleParams<double> p{};
  p.a00 = 1.0;
  p.a11 = 1.0;
  p.fold_k = 1;  // a single mirror along the x axis through the origin
  double u = 0.3, v = -0.4;
  kaleido::fold_unchecked(p, 8.0, 8.0, &u, &v);
  CHECK(std::fabs(u - 0.3) < 1e-12 && std::fabs(v - 0.4) < 1e-12);
  p.fold_k = 0;  // off, identity affine: every pixel samples itself (the weighted tap index is its own)
  for (int64_t i = 0; i < 6; ++i) {
    for (int64_t j = 0; j < 5; ++j) {
      const auto taps = kaleido::compute_taps<double, int64_t>(p, i, j, 6, 5, kaleido::kZeros);
      double sampled_index = 0;
      for (int t = 0; t < 4; ++t) sampled_index += taps.weight[t] * static_cast<double>(taps.offset[t]);
      CHECK(std::fabs(sampled_index - static_cast<double>(i * 5 + j)) < 1e-9);
      CHECK(std::fabs(taps.weight_sum - 1.0) < 1e-12);
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
  float worst_log = 0, worst_cos_turns = 0;
  for (uint32_t r = 0; r < 4000000u; ++r) {
    const uint32_t bits = r * 1073u + 12345u;  // spread over the Philox output range
    const float u1 = (static_cast<float>(bits) + 1.0f) * 2.3283064365386963e-10f;
    worst_log = std::fmax(worst_log, std::fabs(kaleido::fastmath::log(u1) - std::log(u1)) / std::fmax(1.0f, std::fabs(std::log(u1))));
    const float u2 = static_cast<float>(bits) * 2.3283064365386963e-10f;
    worst_cos_turns = std::fmax(worst_cos_turns, std::fabs(kaleido::fastmath::cos_turns(u2) -
                                                           static_cast<float>(std::cos(6.283185307179586 * u2))));
  }
  CHECK(worst_log < 5e-7f);
  CHECK(worst_cos_turns < 5e-7f);
  std::printf("fastmath: atan2 %.1e, sin %.1e, cos %.1e, logf %.1e, cos_turns %.1e\n", worst_atan2, worst_sin,
              worst_cos, worst_log, worst_cos_turns);
}

int main() {
  fastmath_matches_libm();
  philox_known_answers();
  normal_is_finite_and_deterministic();
  padding_rules();
  fold_mirror();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return EXIT_FAILURE;
  }
  std::printf("kt_math: all checks passed\n");
  return EXIT_SUCCESS;
}
