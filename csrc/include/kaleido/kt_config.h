// Function and loop attributes shared by the kernel headers (host and device).
#pragma once

#if defined(__CUDACC__)
#define KT_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Always inlined: an out-of-line call inside a loop over pixels stops g++ from vectorising it.
#define KT_HD inline __attribute__((always_inline))
#else
#define KT_HD inline
#endif

// Full unrolling of the fixed 4-tap and 10-round loops: it also lets g++ vectorise the loops
// over pixels that contain them.
#if defined(__CUDACC__)
#define KT_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__clang__)
#define KT_UNROLL _Pragma("GCC unroll 16")
#else
#define KT_UNROLL
#endif
