// Reductions over the middle dim of x viewed as (outer, R, inner).
// Sums accumulate in double in a fixed order, so results do not depend on the thread count.
#include <cmath>
#include <limits>
#include <vector>
#include "kernels.h"
#include "simd.h"

namespace temper {

// One (outer, inner) column reduced over R with stride `inner`.
static void reduce_col(int op, const float* x, int64_t R, int64_t inner, void* out, int64_t oi, int correction) {
  switch (op) {
    case R_SUM:
    case R_MEAN: {
      double s = 0;
      for (int64_t r = 0; r < R; r++) s += x[r * inner];
      ((float*)out)[oi] = (float)(op == R_MEAN ? s / (double)R : s);
      return;
    }
    case R_MAX:
    case R_MIN: {
      float m = x[0];
      for (int64_t r = 1; r < R; r++) {
        float v = x[r * inner];
        if (v != v) { m = v; break; }
        m = op == R_MAX ? (v > m ? v : m) : (v < m ? v : m);
      }
      ((float*)out)[oi] = m;
      return;
    }
    case R_ARGMAX:
    case R_ARGMIN: {
      float m = x[0];
      int32_t best = 0;
      for (int64_t r = 1; r < R; r++) {
        float v = x[r * inner];
        if (m != m) break;
        if (v != v || (op == R_ARGMAX ? v > m : v < m)) { m = v; best = (int32_t)r; }
      }
      ((int32_t*)out)[oi] = best;
      return;
    }
    case R_LOGSUMEXP: {
      float m = -INFINITY;
      for (int64_t r = 0; r < R; r++) m = x[r * inner] > m ? x[r * inner] : m;
      if (m == -INFINITY || std::isinf(m)) { ((float*)out)[oi] = m; return; }
      double s = 0;
      for (int64_t r = 0; r < R; r++) s += std::exp((double)(x[r * inner] - m));
      ((float*)out)[oi] = (float)(m + std::log(s));
      return;
    }
    case R_VAR: {
      double s = 0;
      for (int64_t r = 0; r < R; r++) s += x[r * inner];
      double mean = s / (double)R, ss = 0;
      for (int64_t r = 0; r < R; r++) {
        double d = x[r * inner] - mean;
        ss += d * d;
      }
      double denom = (double)R - correction;
      ((float*)out)[oi] = (float)(denom > 0 ? ss / denom : NAN);
      return;
    }
  }
}

TEMPER_CLONES static void sum_rows_contig(const float* x, float* out, int64_t outer, int64_t R, double scale) {
  // inner == 1: each output is a contiguous run of R values; blocks of 8 doubles vectorize.
#pragma omp parallel for if (outer * R > (1 << 15)) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    const float* p = x + o * R;
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t r = 0;
    for (; r + 8 <= R; r += 8) {
#pragma omp simd
      for (int j = 0; j < 8; j++) acc[j] += p[r + j];
    }
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; r < R; r++) s += p[r];
    out[o] = (float)(s * scale);
  }
}

TEMPER_CLONES static void sum_leading(const float* x, float* out, int64_t outer, int64_t R, int64_t inner, double scale) {
  // inner > 1: accumulate whole rows of `inner` values (contiguous) in double, parallel over inner chunks.
  const int64_t chunk = 256;
  int64_t nchunks = (inner + chunk - 1) / chunk;
#pragma omp parallel for collapse(2) if (outer * R * inner > (1 << 15)) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t c = 0; c < nchunks; c++) {
      int64_t s = c * chunk, e = s + chunk < inner ? s + chunk : inner;
      double acc[256];
      for (int64_t i = 0; i < e - s; i++) acc[i] = 0;
      for (int64_t r = 0; r < R; r++) {
        const float* p = x + (o * R + r) * inner + s;
#pragma omp simd
        for (int64_t i = 0; i < e - s; i++) acc[i] += p[i];
      }
      for (int64_t i = 0; i < e - s; i++) out[o * inner + s + i] = (float)(acc[i] * scale);
    }
  }
}

// inner == 1 arg-reductions: a vectorized max (or min) and NaN scan, then the first index
// holding it; the same answer as reduce_col (first NaN if any, else the first extremum).
TEMPER_CLONES static void arg_rows_contig(int op, const float* x, int32_t* out, int64_t outer, int64_t R) {
#pragma omp parallel for if (outer * R > (1 << 15)) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    const float* p = x + o * R;
    float m = p[0];
    int nan = 0;
    if (op == R_ARGMAX) {
#pragma omp simd reduction(max : m) reduction(| : nan)
      for (int64_t r = 0; r < R; r++) { m = p[r] > m ? p[r] : m; nan |= p[r] != p[r]; }
    } else {
#pragma omp simd reduction(min : m) reduction(| : nan)
      for (int64_t r = 0; r < R; r++) { m = p[r] < m ? p[r] : m; nan |= p[r] != p[r]; }
    }
    int64_t best = 0;
    if (nan) { while (p[best] == p[best]) best++; }
    else { while (p[best] != m) best++; }
    out[o] = (int32_t)best;
  }
}

void reduce_f32(int op, const float* x, void* out, int64_t outer, int64_t R, int64_t inner, int correction) {
  if ((op == R_ARGMAX || op == R_ARGMIN) && inner == 1 && R > 0) return arg_rows_contig(op, x, (int32_t*)out, outer, R);
  if (op == R_SUM || op == R_MEAN) {
    double scale = op == R_MEAN ? 1.0 / (double)R : 1.0;
    if (R == 0) { fill_f32((float*)out, outer * inner, op == R_MEAN ? NAN : 0.0f); return; }
    if (inner == 1) return sum_rows_contig(x, (float*)out, outer, R, scale);
    return sum_leading(x, (float*)out, outer, R, inner, scale);
  }
  int64_t cols = outer * inner;
#pragma omp parallel for if (cols * R > (1 << 15)) schedule(static)
  for (int64_t c = 0; c < cols; c++) {
    int64_t o = c / inner, i = c % inner;
    reduce_col(op, x + o * R * inner + i, R, inner, out, c, correction);
  }
}

}  // namespace temper
