// Optimizer kernels: one fused AdamW step over a flat f32 parameter, a thread-count-independent
// sum of squares (for global grad-norm clipping) and an in-place scale, each also over many tensors
// in one call (adamw_multi, sum_squares_multi; bitwise the per-tensor results). Not amsgrad or maximize.
#include <algorithm>
#include <cmath>
#include <vector>
#include <omp.h>
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

// adamw_step_f32 over `count` tensors at once: the same host scalars (decay per tensor), the same
// loop body, so every element gets bitwise the value the per-tensor kernel gives it. The threads
// split the concatenation of all tensors evenly, so many small tensors still run in parallel.
TEMPER_CLONES void adamw_multi(float* const* p, const float* const* g, float* const* m, float* const* v,
                               const int64_t* n, const float* weight_decay, int64_t count, float lr, float b1,
                               float b2, float eps, int64_t step, float grad_scale) {
  if (count <= 0) return;
  const double bc1 = 1.0 - std::pow((double)b1, (double)step);
  const double bc2 = 1.0 - std::pow((double)b2, (double)step);
  const float a1 = (float)(1.0 - (double)b1), a2 = (float)(1.0 - (double)b2);
  const float neg_step_size = (float)-((double)lr / bc1);
  const float bc2_sqrt = (float)std::sqrt(bc2);
  std::vector<float> decays(count);
  std::vector<int64_t> start(count + 1, 0);  // prefix offsets of the concatenation
  for (int64_t t = 0; t < count; t++) {
    decays[t] = (float)(1.0 - (double)lr * (double)weight_decay[t]);
    start[t + 1] = start[t] + n[t];
  }
  const int64_t total = start[count];
  const float* decay = decays.data();
  const int64_t* st = start.data();
#pragma omp parallel if (total > kParallelMin)
  {
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t lo = total / nt * id + std::min(id, total % nt);
    const int64_t hi = lo + total / nt + (id < total % nt ? 1 : 0);
    // The last tensor starting at or before lo (empty tensors are passed over by the loop).
    int64_t t = std::upper_bound(st, st + count + 1, lo) - st - 1;
    for (t = std::max<int64_t>(t, 0); t < count && st[t] < hi; t++) {
      const int64_t b = std::max(lo, st[t]) - st[t], e = std::min(hi, st[t + 1]) - st[t];
      float* pt = p[t];
      const float* gt = g[t];
      float* mt = m[t];
      float* vt = v[t];
      const float dt = decay[t];
#pragma omp simd
      for (int64_t i = b; i < e; i++) {
        const float gi = gt[i] * grad_scale;
        const float mi = mt[i] * b1 + a1 * gi;
        const float vi = vt[i] * b2 + a2 * gi * gi;
        const float denom = std::sqrt(vi) / bc2_sqrt + eps;
        pt[i] = pt[i] * dt + neg_step_size * mi / denom;
        mt[i] = mi;
        vt[i] = vi;
      }
    }
  }
}

// sum_squares_f32 of each tensor (the same kSumChunk chunks, each summed by the same loop), added
// in tensor order: bitwise the per-tensor results added one by one from 0. The chunks of all
// tensors are summed in parallel.
TEMPER_CLONES double sum_squares_multi(const float* const* x, const int64_t* n, int64_t count) {
  if (count <= 0) return 0.0;
  std::vector<const float*> cx;
  std::vector<int64_t> clen, first(count + 1, 0);  // chunks of tensor t: [first[t], first[t+1])
  int64_t total_n = 0;
  for (int64_t t = 0; t < count; t++) {
    for (int64_t off = 0; off < n[t]; off += kSumChunk) {
      cx.push_back(x[t] + off);
      clen.push_back(std::min(kSumChunk, n[t] - off));
    }
    first[t + 1] = (int64_t)cx.size();
    total_n += n[t];
  }
  const int64_t nc = (int64_t)cx.size();
  std::vector<double> part(nc);
#pragma omp parallel for if (total_n > kParallelMin) schedule(static)
  for (int64_t c = 0; c < nc; c++) {
    const float* xc = cx[c];
    const int64_t len = clen[c];
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < len; i++) s += (double)xc[i] * xc[i];
    part[c] = s;
  }
  double total = 0.0;
  for (int64_t t = 0; t < count; t++) {
    double st = 0.0;
    for (int64_t c = first[t]; c < first[t + 1]; c++) st += part[c];
    total += st;
  }
  return total;
}

TEMPER_CLONES void scale_inplace_f32(float* x, int64_t n, float s) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) x[i] *= s;
}

}  // namespace temper
