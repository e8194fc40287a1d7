// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011): element i uses
// counter block (offset + i/4) and lane i%4, so any thread split gives the same numbers.
// Not torch's stream: same seed gives the same temper numbers, not torch's.
#include <cmath>
#include "kernels.h"

namespace temper {

struct U4 { uint32_t v[4]; };

static inline U4 philox(uint64_t ctr, uint64_t key) {
  uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return U4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits (exactly representable in f32).
static inline float u01(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

template <typename F>
static void for_lanes(int64_t n, uint64_t seed, uint64_t offset, F f) {
  int64_t blocks = (n + 3) / 4;
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
  for (int64_t b = 0; b < blocks; b++) {
    U4 r = philox(offset + (uint64_t)b, seed);
    for (int l = 0; l < 4 && b * 4 + l < n; l++) f(b * 4 + l, r.v[l], r.v[l ^ 1]);
  }
}

void rand_uniform_f32(float* out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi) {
  for_lanes(n, seed, offset, [&](int64_t i, uint32_t x, uint32_t) { out[i] = lo + (hi - lo) * u01(x); });
}

void rand_normal_f32(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std) {
  // Box-Muller on this lane and its partner lane; the cosine branch only, so each
  // element depends on its own index alone.
  for_lanes(n, seed, offset, [&](int64_t i, uint32_t x, uint32_t y) {
    double u1 = ((double)(x >> 8) + 1.0) / 16777217.0;  // (0, 1]: log stays finite
    double u2 = (double)(y >> 8) / 16777216.0;
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    out[i] = (float)(mean + std * z);
  });
}

void rand_int_i32(int32_t* out, int64_t n, uint64_t seed, uint64_t offset, int32_t lo, int32_t hi) {
  uint64_t range = (uint64_t)((int64_t)hi - (int64_t)lo);
  for_lanes(n, seed, offset, [&](int64_t i, uint32_t x, uint32_t y) {
    uint64_t r = ((uint64_t)x << 32) | y;  // 64 bits: modulo bias < 2^-32
    out[i] = (int32_t)((int64_t)lo + (int64_t)(r % (range ? range : 1)));
  });
}

void dropout_f32(const float* x, float* out, float* mask, int64_t n, uint64_t seed, uint64_t offset, float p) {
  float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for_lanes(n, seed, offset, [&](int64_t i, uint32_t r, uint32_t) {
    float m = u01(r) >= p ? keep_scale : 0.0f;
    mask[i] = m;
    out[i] = x[i] * m;
  });
}

}  // namespace temper
