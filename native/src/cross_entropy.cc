// Fused cross-entropy with label smoothing and ignore_index over logits (N rows, V vocab):
// per-row loss and lse forward, dlogits backward, each reading the logits once. Not a reduction
// (the caller sums or means the per-row loss) and no z-loss or soft/probability targets.
#include <algorithm>
#include <cmath>
#include <vector>
#include "kernels.h"
#include "simd.h"

namespace temper {

namespace {

// Vocab chunk: 16 KB of logits, so the second look at a chunk (exp after max) hits L1.
// Work items are (row, chunk) pairs, so a few rows with a huge V still spread over all threads.
// Each chunk's stats are folded per row in chunk order, so results do not depend on threads.
constexpr int64_t kChunk = 4096;
constexpr int64_t kParallelMin = 1 << 15;

struct ChunkStats {
  float max;    // max over the chunk (-inf if all -inf)
  float sum;    // sum exp(x - max) (max taken as 0 when it is -inf, so the sum is 0, not NaN)
  double sumx;  // sum x, for the smoothing term
};

inline ChunkStats chunk_stats(const float* x, int64_t n) {
  float m = -INFINITY, sx = 0.0f;
#pragma omp simd reduction(max : m) reduction(+ : sx)
  for (int64_t j = 0; j < n; j++) {
    m = x[j] > m ? x[j] : m;
    sx += x[j];
  }
  const float shift = m == -INFINITY ? 0.0f : m;
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; j++) s += fast_exp(x[j] - shift);
  return {m, s, sx};
}

// Per-(row, chunk) stats for the rows listed in `rows` (R of them): st is (R, nc).
TEMPER_CLONES void ce_chunk_pass(const float* logits, const int64_t* rows, int64_t R, int64_t V, int64_t nc,
                                 ChunkStats* st) {
#pragma omp parallel for if (R * V > kParallelMin) schedule(static)
  for (int64_t task = 0; task < R * nc; task++) {
    const int64_t r = task / nc, c = task % nc;
    const int64_t j0 = c * kChunk, len = std::min(kChunk, V - j0);
    st[task] = chunk_stats(logits + rows[r] * V + j0, len);
  }
}

}  // namespace

// loss_i = (1-eps)*(lse_i - x_i[y_i]) + eps*(lse_i - mean_j x_ij); ignored rows get loss 0 and
// lse 0 and their logits are never read (in SFT most rows can be prompt tokens).
// Labels are checked first: on a bad label nothing is written and -(row+1) is returned.
int64_t cross_entropy_forward_f32(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t N,
                                  int64_t V, int32_t ignore_index, float eps) {
  std::vector<int64_t> rows;  // rows that are not ignored
  rows.reserve(N);
  for (int64_t n = 0; n < N; n++) {
    const int32_t y = labels[n];
    if (y == ignore_index) continue;
    if (y < 0 || y >= V) return -(n + 1);
    rows.push_back(n);
  }
  for (int64_t n = 0; n < N; n++) {
    if (labels[n] == ignore_index) loss[n] = 0.0f, lse[n] = 0.0f;
  }
  const int64_t R = (int64_t)rows.size(), nc = (V + kChunk - 1) / kChunk;
  if (R == 0) return 0;
  std::vector<ChunkStats> st(R * nc);  // (R, nc)
  ce_chunk_pass(logits, rows.data(), R, V, nc, st.data());

  // Online logsumexp over the chunks of each row: running max M and sum S relative to it.
  // A factor is 1 when its exponent would be (-inf) - (-inf), which keeps all -inf chunks at 0.
#pragma omp parallel for if (R * nc > 4096) schedule(static)
  for (int64_t r = 0; r < R; r++) {
    const ChunkStats* s = st.data() + r * nc;
    float M = -INFINITY, S = 0.0f;
    double SX = 0.0;
    for (int64_t c = 0; c < nc; c++) {
      const float Mn = std::max(M, s[c].max);
      const float a = M == Mn ? 1.0f : std::exp(M - Mn);
      const float b = s[c].max == Mn ? 1.0f : std::exp(s[c].max - Mn);
      S = S * a + s[c].sum * b;
      M = Mn;
      SX += s[c].sumx;
    }
    const int64_t n = rows[r];
    const float l = M + std::log(S);
    const float nll = l - logits[n * V + labels[n]];
    lse[n] = l;
    // eps == 0 skips the smoothing term, so a -inf logit (masked vocab) cannot make 0 * inf = NaN.
    loss[n] = eps == 0.0f ? nll : (1.0f - eps) * nll + eps * (l - (float)(SX / V));
  }
  return 0;
}

// dlogits_ij = g_i * (exp(x_ij - lse_i) - eps/V) - g_i*(1-eps)*[j == y_i]; ignored rows -> 0.
// One pass: each (row, chunk) task writes its slice, the label's chunk also fixes that element.
TEMPER_CLONES void cross_entropy_backward_f32(const float* logits, const int32_t* labels, const float* lse,
                                              const float* g, float* dlogits, int64_t N, int64_t V,
                                              int32_t ignore_index, float eps) {
  const int64_t nc = (V + kChunk - 1) / kChunk;
  const float eps_v = eps / (float)V;
#pragma omp parallel for if (N * V > kParallelMin) schedule(static)
  for (int64_t task = 0; task < N * nc; task++) {
    const int64_t n = task / nc, j0 = (task % nc) * kChunk, len = std::min(kChunk, V - j0);
    const float* x = logits + n * V + j0;
    float* d = dlogits + n * V + j0;
    const int32_t y = labels[n];
    if (y == ignore_index) {
#pragma omp simd
      for (int64_t j = 0; j < len; j++) d[j] = 0.0f;
      continue;
    }
    const float gi = g[n], l = lse[n];
#pragma omp simd
    for (int64_t j = 0; j < len; j++) d[j] = gi * (fast_exp(x[j] - l) - eps_v);
    // Labels were validated by the forward; the bounds check only keeps a bad one from writing.
    if (y >= j0 && y < j0 + len) d[y - j0] = gi * (fast_exp(x[y - j0] - l) - eps_v - (1.0f - eps));
  }
}

}  // namespace temper
