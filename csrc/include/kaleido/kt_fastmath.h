// Branch-free elementary functions for the KT kernels, host and device.
//
// Why not libm: the scalar calls (atan2, sin, cos, log) cost 50-100 cycles each and stop the
// compiler from vectorising the per-pixel loops; on the GPU the CUDA versions are a different
// implementation than the CPU's. These are written once, as plain arithmetic and selects, so
// g++ vectorises them and both backends run the same code.
// Polynomials: Cephes (S. L. Moshier) minimax coefficients; accuracy is checked against libm
// in csrc/tests/test_kt_math.cpp (double: < 4e-16 relative, float: a few ulp).
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kaleido/kt_config.h"

namespace kaleido {
namespace fastmath {

KT_HD double select(bool c, double a, double b) { return c ? a : b; }
KT_HD float select(bool c, float a, float b) { return c ? a : b; }
KT_HD double kt_floor_any(double a) { return floor(a); }
KT_HD float kt_floor_any(float a) { return floorf(a); }
KT_HD double kt_fabs_any(double a) { return fabs(a); }
KT_HD float kt_fabs_any(float a) { return fabsf(a); }
KT_HD double atan_ratio(double lo, double hi);  // defined below, one per precision
KT_HD float atan_ratio(float lo, float hi);

// atan2 from atan_ratio (one of the overloads below): the octant logic, shared by both precisions.
template <typename T>
KT_HD T atan2_octants(T y, T x) {
  const T zero = static_cast<T>(0);
  const T ax = kt_fabs_any(x), ay = kt_fabs_any(y);
  const T hi = ax > ay ? ax : ay, lo = ax > ay ? ay : ax;
  T r = atan_ratio(lo, hi > zero ? hi : static_cast<T>(1));
  r = ay > ax ? static_cast<T>(1.57079632679489661923) - r : r;
  r = x < zero ? static_cast<T>(3.14159265358979323846) - r : r;
  return y < zero ? -r : r;
}

// sin and cos of x from the polynomials ps, pc on the reduced argument and the even octant
// index j of |x| (Cephes): the quadrant logic, shared by both precisions.
template <typename T>
KT_HD void sincos_quadrants(T x, T j, T ps, T pc, T* s, T* c) {
  const T one = static_cast<T>(1);
  const T quadrant = static_cast<T>(0.5) * j - static_cast<T>(4) * kt_floor_any(static_cast<T>(0.125) * j);
  const bool odd = quadrant == one || quadrant == static_cast<T>(3);
  const T sin_ax = select(odd, pc, ps) * select(quadrant >= static_cast<T>(2), -one, one);
  const T cos_ax = select(odd, ps, pc) * select(quadrant == one || quadrant == static_cast<T>(2), -one, one);
  *s = x < static_cast<T>(0) ? -sin_ax : sin_ax;
  *c = cos_ax;
}

// ---- double: atan2 and sincos, for the fold's geometry of float64 inputs ----

// atan(lo / hi) for 0 <= lo <= hi, hi > 0 (Cephes atan: direct below 0.66, else
// pi/4 + atan((a - 1) / (a + 1)), written with one division).
KT_HD double atan_ratio(double lo, double hi) {
  const bool high = lo > 0.66 * hi;
  const double x = high ? (lo - hi) / (lo + hi) : lo / hi;
  const double base = high ? 0.78539816339744830962 : 0.0;
  const double tail = high ? 0.5 * 6.123233995736765886130e-17 : 0.0;  // pi/4's low bits
  const double z = x * x;
  const double p = ((((-8.750608600031904122785e-1 * z - 1.615753718733365076637e1) * z -
                      7.500855792314704667340e1) * z - 1.228866684490136173410e2) * z -
                    6.485021904942025371773e1);
  const double q = (((((z + 2.485846490142306297962e1) * z + 1.650270098316988542046e2) * z +
                      4.328810604912902668951e2) * z + 4.853903996359136964868e2) * z +
                    1.945506571482613964425e2);
  return base + (x + x * z * p / q + tail);
}

// atan2(y, x) in (-pi, pi], for finite arguments; atan2(0, 0) = 0.
KT_HD double atan2(double y, double x) { return atan2_octants(y, x); }

// sin and cos of x (|x| < 1e6), Cephes reduction by pi/4 in three parts.
KT_HD void sincos(double x, double* s, double* c) {
  const double ax = fabs(x);
  // Octant index as a double (no int conversion, which keeps the caller's loop vectorisable),
  // rounded up to even as in Cephes.
  double j = floor(ax * 1.27323954473516268615);  // 4 / pi
  j += j - 2.0 * floor(0.5 * j);
  const double z = ((ax - j * 7.85398125648498535156e-1) - j * 3.77489470793079817668e-8) -
                   j * 2.69515142907905952645e-15;
  const double zz = z * z;
  const double ps = z + z * zz * (((((1.58962301576546568060e-10 * zz - 2.50507477628578072866e-8) * zz +
                                     2.75573136213857245213e-6) * zz - 1.98412698295895385996e-4) * zz +
                                   8.33333333332211858878e-3) * zz - 1.66666666666666307295e-1);
  const double pc = 1.0 - 0.5 * zz + zz * zz * (((((-1.13585365213876817300e-11 * zz + 2.08757008419747316778e-9) * zz -
                                                   2.75573141792967388112e-7) * zz + 2.48015872888517045348e-5) * zz -
                                                 1.38888888888730564116e-3) * zz + 4.16666666666665929218e-2);
  sincos_quadrants(x, j, ps, pc, s, c);
}

// ---- float: the same functions for float geometry (float32, half and bfloat16 inputs) ----
// Written with float constants and float libm calls only, so that nvcc emits no float64
// instruction for them (scripts/sass_report.py checks).

// atan(lo / hi) for 0 <= lo <= hi, hi > 0 (Cephes atanf: direct below tan(pi/8), else
// pi/4 + atan((a - 1) / (a + 1)), written with one division).
KT_HD float atan_ratio(float lo, float hi) {
  const bool high = lo > 0.414213562373095f * hi;
  const float x = high ? (lo - hi) / (lo + hi) : lo / hi;
  const float base = high ? 0.785398163397448f : 0.0f;
  const float z = x * x;
  const float p = (((8.05374449538e-2f * z - 1.38776856032e-1f) * z + 1.99777106478e-1f) * z -
                   3.33329491539e-1f) * z * x + x;
  return base + p;
}

// atan2(y, x) in (-pi, pi], for finite arguments; atan2(0, 0) = 0.
KT_HD float atan2(float y, float x) { return atan2_octants(y, x); }

// sin and cos of x (|x| < 8192), Cephes sinf/cosf: reduction by pi/4 in three parts.
KT_HD void sincos(float x, float* s, float* c) {
  const float ax = fabsf(x);
  float j = floorf(ax * 1.27323954473516268615f);  // 4 / pi
  j += j - 2.0f * floorf(0.5f * j);                 // rounded up to even
  const float z = ((ax - j * 0.78515625f) - j * 2.4187564849853515625e-4f) - j * 3.77489497744594108e-8f;
  const float zz = z * z;
  const float ps = ((-1.9515295891e-4f * zz + 8.3321608736e-3f) * zz - 1.6666654611e-1f) * zz * z + z;
  const float pc = ((2.443315711809948e-5f * zz - 1.388731625493765e-3f) * zz + 4.166664568298827e-2f) * zz * zz -
                   0.5f * zz + 1.0f;
  sincos_quadrants(x, j, ps, pc, s, c);
}

// ---- float: the Box-Muller transform of the noise ----

KT_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
#endif
}

KT_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Natural log for positive normal floats (Cephes logf).
KT_HD float log(float x) {
  const uint32_t bits = float_bits(x);
  int e = static_cast<int>((bits >> 23) & 0xffu) - 126;
  float m = bits_float((bits & 0x807fffffu) | 0x3f000000u);  // mantissa in [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e -= low ? 1 : 0;
  m = low ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = ((((((((7.0376836292e-2f * m - 1.1514610310e-1f) * m + 1.1676998740e-1f) * m -
                  1.2420140846e-1f) * m + 1.4249322787e-1f) * m - 1.6668057665e-1f) * m +
               2.0000714765e-1f) * m - 2.4999993993e-1f) * m + 3.3333331174e-1f) * m * z;
  const float fe = static_cast<float>(e);
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  return (m + y) + 0.693359375f * fe;
}

// sin(2 pi t) and cos(2 pi t) for t in [0, 1]: the reduction by quarter turns is exact in t.
KT_HD void sincos_turns(float t, float* s, float* c) {
  const float q = rintf(4.0f * t);
  const float f = t - 0.25f * q;  // exact, in [-1/8, 1/8]
  const float a = 6.28318530717958647693f * f;
  const float z = a * a;
  const float sin_a = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * a + a;
  const float cos_a = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z -
                      0.5f * z + 1.0f;
  // 2 pi t = q pi / 2 + a: quadrant q turns (cos a, sin a) by q right angles.
  const int quadrant = static_cast<int>(q) & 3;
  const float cos_v = (quadrant & 1) ? sin_a : cos_a, sin_v = (quadrant & 1) ? cos_a : sin_a;
  *c = ((quadrant + 1) & 2) ? -cos_v : cos_v;
  *s = (quadrant & 2) ? -sin_v : sin_v;
}

// cos(2 pi t) alone.
KT_HD float cos_turns(float t) {
  float s, c;
  sincos_turns(t, &s, &c);
  return c;
}

}  // namespace fastmath
}  // namespace kaleido
