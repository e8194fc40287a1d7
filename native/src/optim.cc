// Optimizer kernels: one fused AdamW step over a flat f32 parameter, a thread-count-independent
// sum of squares (for global grad-norm clipping) and an in-place scale. Not amsgrad, maximize,
// or multi-tensor: the caller loops over parameters.
#include <algorithm>
#include <cmath>
#include <vector>
#include "kernels.h"
#include "simd.h"

namespace temper {

namespace {
constexpr int64_t kParallelMin = 1 << 16;
// sum_squares chunk: each chunk is summed on its own and the chunk sums are added in order,
// so the result is the same for any thread count.
constexpr int64_t kSumChunk = 1 << 16;
}  // namespace

// torch.optim.AdamW single-tensor (torch 1.13, foreach=False), with g = grad * grad_scale:
//   p.mul_(1 - lr*wd); m.mul_(b1).add_(g, alpha=1-b1); v.mul_(b2).addcmul_(g, g, value=1-b2);
//   denom = (v.sqrt() / sqrt(1 - b2^step)).add_(eps); p.addcdiv_(m, denom, value=-lr/(1 - b1^step)).
// Scalars are formed in double and rounded to f32 once, as torch does with Python floats;
// each tensor op's f32 rounding order is kept, but all five ops run in one pass over p, g, m, v.
TEMPER_CLONES void adamw_step_f32(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1,
                                  float b2, float eps, float wd, int64_t step, float grad_scale) {
  const double bc1 = 1.0 - std::pow((double)b1, (double)step);
  const double bc2 = 1.0 - std::pow((double)b2, (double)step);
  const float decay = (float)(1.0 - (double)lr * (double)wd);
  const float a1 = (float)(1.0 - (double)b1), a2 = (float)(1.0 - (double)b2);
  const float neg_step_size = (float)-((double)lr / bc1);
  const float bc2_sqrt = (float)std::sqrt(bc2);
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * grad_scale;
    const float mi = m[i] * b1 + a1 * gi;
    const float vi = v[i] * b2 + a2 * gi * gi;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    p[i] = p[i] * decay + neg_step_size * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

// Sum of x^2 in double over fixed kSumChunk chunks, chunk sums added in index order.
TEMPER_CLONES double sum_squares_f32(const float* x, int64_t n) {
  const int64_t nc = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> part(nc);
#pragma omp parallel for if (n > kParallelMin) schedule(static)
  for (int64_t c = 0; c < nc; c++) {
    const float* xc = x + c * kSumChunk;
    const int64_t len = std::min(kSumChunk, n - c * kSumChunk);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < len; i++) s += (double)xc[i] * xc[i];
    part[c] = s;
  }
  double total = 0.0;
  for (int64_t c = 0; c < nc; c++) total += part[c];
  return total;
}

TEMPER_CLONES void scale_inplace_f32(float* x, int64_t n, float s) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) x[i] *= s;
}

}  // namespace temper
