// Fused RMSNorm and LayerNorm over the last dim of x (N rows, C channels), forward and backward,
// and the residual add fused into an RMSNorm (add_rms_norm). Row statistics accumulate in double;
// dw/db are summed over fixed row blocks, so every output is bitwise the same for any thread count.
// f32 only (bf16 inputs are widened to f32 by dtype_dispatch.cc). Not group/batch norm.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>
#include "bf16.h"
#include "kernels.h"
#include "simd.h"

namespace temper {

namespace {

// Below this many elements the OpenMP fork costs more than the work.
constexpr int64_t kParallelMin = 1 << 15;

// Rows per dw/db block. It depends on N only (at most 64 blocks), never on the thread count, so
// the summation order of the weight gradients is fixed: each block sums its rows in order into a
// (C) double partial, then the partials are added in block order.
inline int64_t rows_per_block(int64_t N) {
  const int64_t kMaxBlocks = 64;
  return std::max<int64_t>(1, (N + kMaxBlocks - 1) / kMaxBlocks);
}

// out[c] = sum over blocks b of part[b * C + c], in block order.
inline void sum_blocks(const double* part, float* out, int64_t nb, int64_t C) {
  std::vector<double> acc(part, part + C);
  for (int64_t b = 1; b < nb; b++) {
    const double* pb = part + b * C;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) acc[c] += pb[c];
  }
  for (int64_t c = 0; c < C; c++) out[c] = (float)acc[c];
}


}  // namespace

// ---- RMSNorm (HF LlamaRMSNorm in f32) -------------------------------------

// rstd (N) = 1/sqrt(mean(x^2) + eps) with the mean rounded to f32 first, as torch does;
// y = w * (x * rstd), the product order of HF.
// One row of the RMSNorm forward; returns its rstd. Shared (inlined) by rms_norm_forward_f32 and the
// fused add_rms_norm kernels so that both round every value the same way.
__attribute__((always_inline)) inline float rms_row_forward(const float* xr, const float* w, float* yr, int64_t C,
                                                            float eps) {
  double ss = 0.0;
#pragma omp simd reduction(+ : ss)
  for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
  const float r = 1.0f / std::sqrt((float)(ss / C) + eps);
#pragma omp simd
  for (int64_t c = 0; c < C; c++) yr[c] = w[c] * (xr[c] * r);
  return r;
}

// One row of the RMSNorm backward: writes dr, adds the row's dw terms to pw. Shared as above.
__attribute__((always_inline)) inline void rms_row_backward(const float* xr, const float* w, const float* gr, float r,
                                                            float* dr, double* pw, int64_t C) {
  double dot = 0.0;
#pragma omp simd reduction(+ : dot)
  for (int64_t c = 0; c < C; c++) dot += (double)(w[c] * gr[c]) * xr[c];
  const float k = (float)(dot / C) * (r * r);
#pragma omp simd
  for (int64_t c = 0; c < C; c++) {
    dr[c] = r * (w[c] * gr[c] - xr[c] * k);
    pw[c] += (double)(gr[c] * (xr[c] * r));
  }
}

TEMPER_CLONES void rms_norm_forward_f32(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t C,
                                        float eps) {
#pragma omp parallel for if (N * C > kParallelMin) schedule(static)
  for (int64_t n = 0; n < N; n++) rstd[n] = rms_row_forward(x + n * C, w, y + n * C, C, eps);
}

// With g = w*dy:  dx = rstd * (g - x * rstd^2 * mean(g*x));  dw = sum_n dy * (x * rstd).
TEMPER_CLONES void rms_norm_backward_f32(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                                         float* dw, int64_t N, int64_t C) {
  add_rms_norm_backward_f32(x, w, rstd, dy, nullptr, dx, dw, N, C);
}

// ---- fused residual add + RMSNorm (llm.c / Liger fused residual) -----------
// sum = x + residual, rounded to the storage dtype, then the RMSNorm row math above on that rounded
// sum while the row sits in L1: bitwise binary(B_ADD) followed by rms_norm_forward.

TEMPER_CLONES static void add_rms_norm_f32(const float* x, const float* res, const float* w, float* sum, float* y,
                                           float* rstd, int64_t N, int64_t C, float eps) {
#pragma omp parallel for if (N * C > kParallelMin) schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* xr = x + n * C;
    const float* rr = res + n * C;
    float* sr = sum + n * C;
    for (int64_t c = 0; c < C; c++) sr[c] = xr[c] + rr[c];
    rstd[n] = rms_row_forward(sr, w, y + n * C, C, eps);
  }
}

// bf16 storage: the unfused bf16 chain widens, adds in f32 and rounds the sum; the norm then widens
// that rounded sum, runs the f32 row math and rounds y once. Row temporaries are per thread.
TEMPER_CLONES static void add_rms_norm_bf16(const uint16_t* x, const uint16_t* res, const uint16_t* w, uint16_t* sum,
                                            uint16_t* y, float* rstd, int64_t N, int64_t C, float eps) {
  std::vector<float> wf(C);
  for (int64_t c = 0; c < C; c++) wf[c] = bf16_to_f32(w[c]);
#pragma omp parallel if (N * C > kParallelMin)
  {
    std::vector<float> s(C), yf(C);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const uint16_t* xr = x + n * C;
      const uint16_t* rr = res + n * C;
      uint16_t* sr = sum + n * C;
      uint16_t* yr = y + n * C;
      for (int64_t c = 0; c < C; c++) {
        const uint16_t h = f32_to_bf16(bf16_to_f32(xr[c]) + bf16_to_f32(rr[c]));
        sr[c] = h;
        s[c] = bf16_to_f32(h);
      }
      rstd[n] = rms_row_forward(s.data(), wf.data(), yf.data(), C, eps);
      for (int64_t c = 0; c < C; c++) yr[c] = f32_to_bf16(yf[c]);
    }
  }
}

void add_rms_norm_forward(const void* x, const void* residual, const void* w, void* sum, void* y, float* rstd,
                          int64_t N, int64_t C, float eps, int dtype) {
  if (dtype == 0)
    return add_rms_norm_f32(static_cast<const float*>(x), static_cast<const float*>(residual),
                            static_cast<const float*>(w), static_cast<float*>(sum), static_cast<float*>(y), rstd, N, C,
                            eps);
  if (dtype == 3)
    return add_rms_norm_bf16(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(residual),
                             static_cast<const uint16_t*>(w), static_cast<uint16_t*>(sum), static_cast<uint16_t*>(y),
                             rstd, N, C, eps);
  throw std::invalid_argument("add_rms_norm: dtype code " + std::to_string(dtype) + " is not f32 or bf16");
}

// The RMSNorm backward of each row, then (a separate pass over the row, so the compiler cannot fuse
// the add into an FMA) dx += g_sum: bitwise rms_norm_backward_f32's dx followed by binary(B_ADD).
TEMPER_CLONES void add_rms_norm_backward_f32(const float* sum, const float* w, const float* rstd, const float* g_y,
                                             const float* g_sum, float* dx, float* dw, int64_t N, int64_t C) {
  const int64_t rb = rows_per_block(N), nb = (N + rb - 1) / rb;
  std::vector<double> part(nb * C, 0.0);  // (nb, C) dw partials
#pragma omp parallel for if (N * C > kParallelMin) schedule(static)
  for (int64_t b = 0; b < nb; b++) {
    double* pw = part.data() + b * C;
    const int64_t n_end = std::min(N, (b + 1) * rb);
    for (int64_t n = b * rb; n < n_end; n++) {
      float* dr = dx + n * C;
      rms_row_backward(sum + n * C, w, g_y + n * C, rstd[n], dr, pw, C);
      if (g_sum) {
        const float* gs = g_sum + n * C;
        for (int64_t c = 0; c < C; c++) dr[c] += gs[c];
      }
    }
  }
  sum_blocks(part.data(), dw, nb, C);
}

// ---- LayerNorm (torch.nn.functional.layer_norm, biased variance) ----------
// w may also be null (no affine); then dw is not written. The spec only promises w.

// mean, rstd (N); y = (x - mean) * rstd * w + b. Two passes over the row (it sits in L1) give an
// exact-as-double variance instead of E[x^2] - E[x]^2 cancellation.
TEMPER_CLONES void layer_norm_forward_f32(const float* x, const float* w, const float* b, float* y, float* mean,
                                          float* rstd, int64_t N, int64_t C, float eps) {
  std::vector<float> ones;
  if (!w) ones.assign(C, 1.0f), w = ones.data();
  std::vector<float> zeros;
  if (!b) zeros.assign(C, 0.0f), b = zeros.data();
#pragma omp parallel for if (N * C > kParallelMin) schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* xr = x + n * C;
    float* yr = y + n * C;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; c++) s += xr[c];
    const double mu = s / C;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; c++) ss += ((double)xr[c] - mu) * ((double)xr[c] - mu);
    const float m = (float)mu;
    const float r = 1.0f / std::sqrt((float)(ss / C) + eps);
    mean[n] = m;
    rstd[n] = r;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - m) * r * w[c] + b[c];
  }
}

// With xh = (x - mean) * rstd and g = w*dy:
//   dx = rstd * (g - mean(g) - xh * mean(g*xh));  dw = sum_n dy * xh;  db = sum_n dy.
TEMPER_CLONES void layer_norm_backward_f32(const float* x, const float* w, const float* mean, const float* rstd,
                                           const float* dy, float* dx, float* dw, float* db, int64_t N, int64_t C) {
  std::vector<float> ones;
  if (!w) ones.assign(C, 1.0f), w = ones.data();
  const int64_t rb = rows_per_block(N), nb = (N + rb - 1) / rb;
  std::vector<double> part_w(nb * C, 0.0), part_b(nb * C, 0.0);  // (nb, C) dw and db partials
#pragma omp parallel for if (N * C > kParallelMin) schedule(static)
  for (int64_t blk = 0; blk < nb; blk++) {
    double* pw = part_w.data() + blk * C;
    double* pb = part_b.data() + blk * C;
    const int64_t n_end = std::min(N, (blk + 1) * rb);
    for (int64_t n = blk * rb; n < n_end; n++) {
      const float* xr = x + n * C;
      const float* gr = dy + n * C;
      float* dr = dx + n * C;
      const float m = mean[n], r = rstd[n];
      double sg = 0.0, sgx = 0.0;
#pragma omp simd reduction(+ : sg, sgx)
      for (int64_t c = 0; c < C; c++) {
        const float g = w[c] * gr[c];
        sg += g;
        sgx += (double)g * ((xr[c] - m) * r);
      }
      const float mg = (float)(sg / C), mgx = (float)(sgx / C);
#pragma omp simd
      for (int64_t c = 0; c < C; c++) {
        const float xh = (xr[c] - m) * r;
        dr[c] = r * (w[c] * gr[c] - mg - xh * mgx);
        pw[c] += (double)(gr[c] * xh);
        pb[c] += gr[c];
      }
    }
  }
  if (dw) sum_blocks(part_w.data(), dw, nb, C);
  if (db) sum_blocks(part_b.data(), db, nb, C);
}

}  // namespace temper
