// Index ops over x viewed as (outer, X, inner): index_select (embedding), gather, scatter_add,
// one_hot and cumsum. Bad ids are reported, never read out of bounds.
// scatter_add is parallel over (outer, inner) columns, so duplicate ids never race.
#include <cstring>
#include "kernels.h"

namespace temper {

int64_t index_select(const void* x, const int32_t* idx, void* out, int64_t outer, int64_t X, int64_t I, int64_t inner,
                     int elem_size) {
  for (int64_t i = 0; i < I; i++)
    if (idx[i] < 0 || idx[i] >= X) return -(i + 1);
  const char* xs = (const char*)x;
  char* os = (char*)out;
  size_t row = (size_t)inner * elem_size;
#pragma omp parallel for collapse(2) if (outer * I * inner > (1 << 15)) schedule(static)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < I; i++) std::memcpy(os + (o * I + i) * row, xs + (o * X + idx[i]) * row, row);
  return 0;
}

int64_t gather_f32(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t X, int64_t I,
                   int64_t inner) {
  int64_t n = outer * I * inner;
  for (int64_t p = 0; p < n; p++)
    if (idx[p] < 0 || idx[p] >= X) return -(p + 1);
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
  for (int64_t p = 0; p < n; p++) {
    int64_t o = p / (I * inner), j = p % inner;
    out[p] = x[(o * X + idx[p]) * inner + j];
  }
  return 0;
}

int64_t scatter_add_f32(float* out, const int32_t* idx, const float* src, int64_t outer, int64_t X, int64_t I,
                        int64_t inner, int shared) {
  int64_t nidx = shared ? I : outer * I * inner;
  for (int64_t p = 0; p < nidx; p++)
    if (idx[p] < 0 || idx[p] >= X) return -(p + 1);
  const int64_t chunk = 64;
  int64_t nchunks = (inner + chunk - 1) / chunk;
#pragma omp parallel for collapse(2) if (outer * I * inner > (1 << 15)) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t c = 0; c < nchunks; c++) {
      int64_t s = c * chunk, e = s + chunk < inner ? s + chunk : inner;
      for (int64_t i = 0; i < I; i++) {
        const float* sr = src + (o * I + i) * inner;
        if (shared) {
          float* orow = out + (o * X + idx[i]) * inner;
#pragma omp simd
          for (int64_t j = s; j < e; j++) orow[j] += sr[j];
        } else {
          const int32_t* ir = idx + (o * I + i) * inner;
          for (int64_t j = s; j < e; j++) out[(o * X + ir[j]) * inner + j] += sr[j];
        }
      }
    }
  }
  return 0;
}

int64_t one_hot_f32(const int32_t* idx, float* out, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; n++)
    if (idx[n] < 0 || idx[n] >= C) return -(n + 1);
  std::memset(out, 0, N * C * sizeof(float));
  for (int64_t n = 0; n < N; n++) out[n * C + idx[n]] = 1.0f;
  return 0;
}

void cumsum_f32(const float* x, float* out, int64_t outer, int64_t R, int64_t inner, int reverse) {
#pragma omp parallel for collapse(2) if (outer * R * inner > (1 << 15)) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      double acc = 0;  // double running sum: long rows would drift in f32
      const float* xs = x + o * R * inner + i;
      float* os = out + o * R * inner + i;
      for (int64_t k = 0; k < R; k++) {
        int64_t r = reverse ? R - 1 - k : k;
        acc += xs[r * inner];
        os[r * inner] = (float)acc;
      }
    }
  }
}

}  // namespace temper
