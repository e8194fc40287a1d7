// Shared helpers for CPU kernels: function multiversioning (AVX-512, AVX2+FMA,
// baseline x86-64, chosen at load time by the CPU) and a vectorizable exp.
// Not a SIMD abstraction layer: kernels are plain loops the compiler vectorizes.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TEMPER_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TEMPER_CLONES
#endif

namespace temper {

// exp(x) for f32 with ~1 ulp error over the whole range, written branch-free so
// `#pragma omp simd` loops vectorize it (libm's expf does not vectorize without
// -ffast-math). Cephes-style: x = n*ln2 + r, |r| <= ln2/2, degree-6 polynomial.
#pragma omp declare simd notinbranch
static inline float fast_exp(float x) {
  const float hi = 88.72283935546875f, lo = -103.972084045410f;
  // NaN fails both comparisons and becomes hi, so the int conversion below is defined;
  // the NaN itself is restored at the end.
  float xc = x < hi ? (x > lo ? x : lo) : hi;
  float n = std::nearbyint(xc * 1.44269504088896341f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n via two halves so n down to -150 (subnormals) stays exact enough.
  int32_t ni = (int32_t)n;
  int32_t n1 = ni >> 1, n2 = ni - n1;
  int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  float res = p * s1 * s2;
  res = x > hi ? INFINITY : res;
  res = x < lo ? 0.0f : res;
  return x != x ? x : res;
}

}  // namespace temper
