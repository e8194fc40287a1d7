// softmax / log_softmax over the last dim of (N, C), forward and backward, one row per task.
// Not masked or fused with a matmul: attention and cross-entropy have their own kernels.
#include <cmath>
#include "kernels.h"
#include "simd.h"

namespace temper {

TEMPER_CLONES void softmax_forward_f32(const float* x, float* y, int64_t N, int64_t C, int log) {
#pragma omp parallel for if (N * C > (1 << 14)) schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* xr = x + n * C;
    float* yr = y + n * C;
    float m = -INFINITY;
    bool nan = false;
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < C; c++) m = xr[c] > m ? xr[c] : m;
    for (int64_t c = 0; c < C; c++) nan |= xr[c] != xr[c];
    if (nan) { for (int64_t c = 0; c < C; c++) yr[c] = NAN; continue; }
    if (m == -INFINITY) m = 0.0f;  // all -inf row: exp gives 0s, the sum 0 -> NaN like torch
    float s = 0.0f;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; c++) s += fast_exp(xr[c] - m);
      float lse = m + std::log(s);
#pragma omp simd
      for (int64_t c = 0; c < C; c++) yr[c] = xr[c] - lse;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; c++) {
        float e = fast_exp(xr[c] - m);
        yr[c] = e;
        s += e;
      }
      float inv = 1.0f / s;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) yr[c] *= inv;
    }
  }
}

TEMPER_CLONES void softmax_backward_f32(const float* y, const float* dy, float* dx, int64_t N, int64_t C, int log) {
#pragma omp parallel for if (N * C > (1 << 14)) schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* yr = y + n * C;
    const float* gr = dy + n * C;
    float* dr = dx + n * C;
    float s = 0.0f;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; c++) s += gr[c];
#pragma omp simd
      for (int64_t c = 0; c < C; c++) dr[c] = gr[c] - fast_exp(yr[c]) * s;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; c++) s += gr[c] * yr[c];
#pragma omp simd
      for (int64_t c = 0; c < C; c++) dr[c] = yr[c] * (gr[c] - s);
    }
  }
}

}  // namespace temper
