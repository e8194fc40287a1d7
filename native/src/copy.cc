// Strided copies (permute, cat, slice, expand all reduce to one), fills and dtype casts.
// Not a view mechanism: views are metadata in src/tensor; this moves bytes.
#include <cstring>
#include "bf16.h"
#include "kernels.h"
#include "simd.h"

namespace temper {

static constexpr int64_t kGrain = 1 << 15;

template <typename T>
static void strided_copy_t(const T* src, const int64_t* ss, T* dst, const int64_t* ds, const int64_t* shape,
                           int ndim) {
  if (ndim == 0) { dst[0] = src[0]; return; }
  int64_t inner = shape[ndim - 1];
  int64_t rows = 1;
  for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
  int64_t s_in = ss[ndim - 1], d_in = ds[ndim - 1];
#pragma omp parallel for if (rows * inner > kGrain && rows > 1) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rem = r, os = 0, od = 0;
    for (int d = ndim - 2; d >= 0; d--) {
      int64_t i = rem % shape[d];
      rem /= shape[d];
      os += i * ss[d];
      od += i * ds[d];
    }
    const T* s = src + os;
    T* o = dst + od;
    if (s_in == 1 && d_in == 1) {
      std::memcpy(o, s, inner * sizeof(T));
    } else {
      for (int64_t i = 0; i < inner; i++) o[i * d_in] = s[i * s_in];
    }
  }
}

void strided_copy(const void* src, const int64_t* ss, void* dst, const int64_t* ds, const int64_t* shape, int ndim,
                  int elem_size) {
  switch (elem_size) {
    case 1: return strided_copy_t((const uint8_t*)src, ss, (uint8_t*)dst, ds, shape, ndim);
    case 2: return strided_copy_t((const uint16_t*)src, ss, (uint16_t*)dst, ds, shape, ndim);
    case 4: return strided_copy_t((const uint32_t*)src, ss, (uint32_t*)dst, ds, shape, ndim);
    case 8: return strided_copy_t((const uint64_t*)src, ss, (uint64_t*)dst, ds, shape, ndim);
  }
}

void fill_f32(float* out, int64_t n, float value) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = value;
}
void fill_i32(int32_t* out, int64_t n, int32_t value) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = value;
}
void fill_u8(uint8_t* out, int64_t n, uint8_t value) { std::memset(out, value, n); }

template <typename S, typename D, typename F>
static void cast_loop(const S* s, D* d, int64_t n, F f) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) d[i] = f(s[i]);
}

// dtype codes: 0 f32, 1 i32, 2 u8, 3 bf16. f32 -> i32 truncates toward zero like torch.
void cast(const void* src, int sd, void* dst, int dd, int64_t n) {
  if (sd == dd) { std::memcpy(dst, src, n * (sd == 0 || sd == 1 ? 4 : sd == 2 ? 1 : 2)); return; }
  auto as_f32 = [&](float* out) {
    switch (sd) {
      case 1: cast_loop((const int32_t*)src, out, n, [](int32_t v) { return (float)v; }); break;
      case 2: cast_loop((const uint8_t*)src, out, n, [](uint8_t v) { return (float)v; }); break;
      case 3: cast_loop((const uint16_t*)src, out, n, [](uint16_t v) { return bf16_to_f32(v); }); break;
    }
  };
  if (dd == 0) { as_f32((float*)dst); return; }
  if (sd == 0) {
    const float* s = (const float*)src;
    switch (dd) {
      case 1: cast_loop(s, (int32_t*)dst, n, [](float v) { return (int32_t)v; }); return;
      case 2: cast_loop(s, (uint8_t*)dst, n, [](float v) { return (uint8_t)(v != 0.0f); }); return;
      case 3: cast_loop(s, (uint16_t*)dst, n, [](float v) { return f32_to_bf16(v); }); return;
    }
  }
  // Integer/bool/bf16 to each other: through f32 (exact for |i32| < 2^24 and all u8/bf16).
  float* tmp = (float*)buffer_alloc(n * 4);
  as_f32(tmp);
  cast(tmp, 0, dst, dd, n);
  buffer_free(tmp, n * 4);
}

}  // namespace temper
