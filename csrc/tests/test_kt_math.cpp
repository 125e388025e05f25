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
  CHECK(kaleido::pad_coordinate(1e300, 4, kaleido::kZeros) == 5.0);
  CHECK(kaleido::pad_coordinate(NAN, 4, kaleido::kZeros) == -2.0);
}

static void fold_mirror() {
  kaleido::SampleParams<double> p{};
  p.fold_k = 1;  // a single mirror along the x axis through the origin
  double u = 0.3, v = -0.4;
  kaleido::kaleido_fold(p, 8.0, 8.0, &u, &v);
  CHECK(std::fabs(u - 0.3) < 1e-12 && std::fabs(v - 0.4) < 1e-12);
  p.fold_k = 0;  // off
  u = 0.3; v = -0.4;
  kaleido::kaleido_fold(p, 8.0, 8.0, &u, &v);
  CHECK(u == 0.3 && v == -0.4);
}

int main() {
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
