// Standalone check of native/src/attention.cc against a naive double-precision reference
// (materialized scores, softmax, analytic backward) on awkward sizes and masks, plus a timing.
// Not part of the addon build. Exits nonzero if any relative error is >= 1e-5.
//   g++ -std=c++17 -O3 -fopenmp -fno-math-errno -Inative/src native/src/attention.cc
//       native/test/attention_check.cc -o /tmp/attention_check && /tmp/attention_check
#include <omp.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>
#include "kernels.h"

using namespace temper;
using Vec = std::vector<float>;

struct Case {
  int64_t B, Tq, Tk, Hq, Hkv, D;
  int causal, use_mask, use_docs;
};

static bool visible(const Case& c, const std::vector<int32_t>& km, const std::vector<int32_t>& doc, int64_t b,
                    int64_t i, int64_t s) {
  const int64_t p = c.Tk - c.Tq + i;
  if (c.causal && s > p) return false;
  if (c.use_mask && km[b * c.Tk + s] == 0) return false;
  if (c.use_docs && (p < 0 || doc[b * c.Tk + s] != doc[b * c.Tk + p])) return false;
  return true;
}

// Reference forward + backward in double, layout as in kernels.h.
static void reference(const Case& c, const Vec& q, const Vec& k, const Vec& v, const Vec& dout,
                      const std::vector<int32_t>& km, const std::vector<int32_t>& doc, float scale, Vec& out, Vec& lse,
                      Vec& dq, Vec& dk, Vec& dv) {
  const int64_t D = c.D, G = c.Hq / c.Hkv;
  std::vector<double> dqd(q.size()), dkd(k.size()), dvd(v.size());
  out.assign(q.size(), 0.0f);
  lse.assign(c.B * c.Hq * c.Tq, 0.0f);
  auto Q = [&](int64_t b, int64_t i, int64_t h) { return ((b * c.Tq + i) * c.Hq + h) * D; };
  auto K = [&](int64_t b, int64_t s, int64_t g) { return ((b * c.Tk + s) * c.Hkv + g) * D; };
  std::vector<double> P(c.Tk), dP(c.Tk);
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t h = 0; h < c.Hq; h++)
      for (int64_t i = 0; i < c.Tq; i++) {
        const int64_t g = h / G;
        double m = -INFINITY;
        for (int64_t s = 0; s < c.Tk; s++) {
          if (!visible(c, km, doc, b, i, s)) { P[s] = -INFINITY; continue; }
          double acc = 0;
          for (int64_t d = 0; d < D; d++) acc += (double)q[Q(b, i, h) + d] * k[K(b, s, g) + d];
          P[s] = acc * scale;
          m = std::max(m, P[s]);
        }
        if (m == -INFINITY) { lse[(b * c.Hq + h) * c.Tq + i] = -INFINITY; continue; }
        double sum = 0;
        for (int64_t s = 0; s < c.Tk; s++) sum += (P[s] = std::exp(P[s] - m));
        lse[(b * c.Hq + h) * c.Tq + i] = (float)(m + std::log(sum));
        std::vector<double> o(D, 0.0);
        for (int64_t s = 0; s < c.Tk; s++) {
          P[s] /= sum;
          for (int64_t d = 0; d < D; d++) o[d] += P[s] * v[K(b, s, g) + d];
        }
        for (int64_t d = 0; d < D; d++) out[Q(b, i, h) + d] = (float)o[d];
        // backward: dP = dO V^T; dS = P (dP - sum_s P dP); dq = scale dS K; dk = scale dS^T q; dv = P^T dO
        double delta = 0;
        for (int64_t s = 0; s < c.Tk; s++) {
          double acc = 0;
          for (int64_t d = 0; d < D; d++) acc += (double)dout[Q(b, i, h) + d] * v[K(b, s, g) + d];
          dP[s] = acc;
          delta += P[s] * acc;
        }
        for (int64_t s = 0; s < c.Tk; s++) {
          if (P[s] == 0) continue;
          const double ds = P[s] * (dP[s] - delta);
          for (int64_t d = 0; d < D; d++) {
            dqd[Q(b, i, h) + d] += scale * ds * k[K(b, s, g) + d];
            dkd[K(b, s, g) + d] += scale * ds * q[Q(b, i, h) + d];
            dvd[K(b, s, g) + d] += P[s] * dout[Q(b, i, h) + d];
          }
        }
      }
  dq.assign(dqd.begin(), dqd.end());
  dk.assign(dkd.begin(), dkd.end());
  dv.assign(dvd.begin(), dvd.end());
}

// max |a - b| / (max |b| + 1e-6); -inf must match -inf exactly; NaN anywhere is an error.
static double rel_err(const Vec& a, const Vec& b) {
  double mb = 0, me = 0;
  for (float x : b) if (std::isfinite(x)) mb = std::max(mb, (double)std::fabs(x));
  for (size_t i = 0; i < a.size(); i++) {
    if (std::isinf(b[i]) || std::isinf(a[i])) { if (a[i] != b[i]) return INFINITY; continue; }
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    me = std::max(me, (double)std::fabs(a[i] - b[i]));
  }
  return me / (mb + 1e-6);
}

static void fill_normal(Vec& x, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& f : x) f = nd(rng);
}

static int run_case(const Case& c, std::mt19937& rng, double& worst) {
  Vec q(c.B * c.Tq * c.Hq * c.D), k(c.B * c.Tk * c.Hkv * c.D), v(k.size()), dout(q.size());
  fill_normal(q, rng); fill_normal(k, rng); fill_normal(v, rng); fill_normal(dout, rng);
  for (float& f : q) f *= 2.0f;  // peakier softmax than unit-scale scores
  std::vector<int32_t> km(c.B * c.Tk, 1), doc(c.B * c.Tk, 0);
  std::uniform_int_distribution<int> coin(0, 5);
  for (int64_t b = 0; b < c.B; b++) {
    const int64_t pad = b == 0 ? 0 : c.Tk / 3 + 1;  // left padding; b=1 row has no visible key causally
    for (int64_t s = 0; s < c.Tk; s++) km[b * c.Tk + s] = s >= pad && coin(rng) != 0;  // plus random holes
    int32_t id = 7;
    for (int64_t s = 0; s < c.Tk; s++) { if (coin(rng) == 0) id += 3; doc[b * c.Tk + s] = id; }  // packed docs
  }
  const float scale = 1.0f / std::sqrt((float)c.D);
  Vec out(q.size()), lse(c.B * c.Hq * c.Tq), dq(q.size()), dk(k.size()), dv(v.size());
  const int32_t* kmp = c.use_mask ? km.data() : nullptr;
  const int32_t* dp = c.use_docs ? doc.data() : nullptr;
  attention_forward_f32(q.data(), k.data(), v.data(), kmp, dp, out.data(), lse.data(), c.B, c.Tq, c.Tk, c.Hq, c.Hkv,
                        c.D, scale, c.causal, c.Tk);
  attention_backward_f32(q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), kmp, dp, dq.data(),
                         dk.data(), dv.data(), c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, scale, c.causal);
  Vec ro, rl, rdq, rdk, rdv;
  reference(c, q, k, v, dout, km, doc, scale, ro, rl, rdq, rdk, rdv);
  const double e[5] = {rel_err(out, ro), rel_err(lse, rl), rel_err(dq, rdq), rel_err(dk, rdk), rel_err(dv, rdv)};
  int64_t dead = 0;
  for (float x : rl) dead += x == -INFINITY;
  double m = 0;
  for (double x : e) m = std::max(m, x);
  worst = std::max(worst, m);
  // The same keys inside a larger cache (kv_capacity > Tk, stale rows past Tk) give bitwise equal output.
  if (c.causal) {
    const int64_t cap = c.Tk + 5, row = c.Hkv * c.D;
    Vec kc(c.B * cap * row, 1e3f), vc(kc.size(), -1e3f), oc(out.size()), lc(lse.size());
    std::vector<int32_t> kmc(c.B * cap, 1), docc(c.B * cap, 0);
    for (int64_t b = 0; b < c.B; b++) {
      std::memcpy(&kc[b * cap * row], &k[b * c.Tk * row], c.Tk * row * 4);
      std::memcpy(&vc[b * cap * row], &v[b * c.Tk * row], c.Tk * row * 4);
      std::memcpy(&kmc[b * cap], &km[b * c.Tk], c.Tk * 4);
      std::memcpy(&docc[b * cap], &doc[b * c.Tk], c.Tk * 4);
    }
    attention_forward_f32(q.data(), kc.data(), vc.data(), c.use_mask ? kmc.data() : nullptr,
                          c.use_docs ? docc.data() : nullptr, oc.data(), lc.data(), c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D,
                          scale, 1, cap);
    if (std::memcmp(oc.data(), out.data(), out.size() * 4) != 0) {
      std::printf("FAIL kv_capacity %lld > Tk changes the output\n", (long long)cap);
      m = 1;
    }
  }
  const bool ok = m < 1e-5;
  std::printf("%s Tq=%-3lld Tk=%-3lld D=%-2lld Hq/Hkv=%lld/%lld causal=%d mask=%d docs=%d dead_rows=%-3lld  "
              "out %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n",
              ok ? "ok  " : "FAIL", (long long)c.Tq, (long long)c.Tk, (long long)c.D, (long long)c.Hq,
              (long long)c.Hkv, c.causal, c.use_mask, c.use_docs, (long long)dead, e[0], e[1], e[2], e[3], e[4]);
  return ok ? 0 : 1;
}

// NaN in q reaches only its own output row; NaN in k reaches every row that sees that key but not
// rows that mask it; results are bitwise identical for 1 and 2 threads.
static int nan_and_threads_check() {
  const int64_t B = 1, T = 70, H = 2, D = 16, row = 40, key = 50;
  std::mt19937 rng(7);
  Vec q(B * T * H * D), k(q.size()), v(q.size()), out(q.size()), lse(B * H * T), out1(q.size());
  fill_normal(q, rng); fill_normal(k, rng); fill_normal(v, rng);
  int fails = 0;
  omp_set_num_threads(1);
  attention_forward_f32(q.data(), k.data(), v.data(), nullptr, nullptr, out1.data(), lse.data(), B, T, T, H, H, D,
                        0.25f, 1, T);
  omp_set_num_threads(2);
  attention_forward_f32(q.data(), k.data(), v.data(), nullptr, nullptr, out.data(), lse.data(), B, T, T, H, H, D,
                        0.25f, 1, T);
  if (std::memcmp(out.data(), out1.data(), out.size() * 4) != 0) { std::printf("FAIL thread-count dependence\n"); fails++; }
  q[(row * H + 0) * D + 3] = NAN;  // query row 40, head 0
  k[(key * H + 1) * D + 5] = NAN;  // key 50, head 1: visible (causal) to rows >= 50 only
  attention_forward_f32(q.data(), k.data(), v.data(), nullptr, nullptr, out.data(), lse.data(), B, T, T, H, H, D,
                        0.25f, 1, T);
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < H; h++) {
      const bool want_nan = (h == 0 && t == row) || (h == 1 && t >= key);
      bool any_nan = false, all_nan = true;
      for (int64_t d = 0; d < D; d++) {
        const bool n = std::isnan(out[(t * H + h) * D + d]);
        any_nan |= n;
        all_nan &= n;
      }
      if (want_nan ? !all_nan : any_nan) {
        std::printf("FAIL NaN propagation at row %lld head %lld\n", (long long)t, (long long)h);
        return fails + 1;
      }
    }
  std::printf("%s NaN propagation (q row -> its row only; k row -> rows that see it) and 1 vs 2 threads bitwise\n",
              fails ? "FAIL" : "ok  ");
  return fails;
}

static double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

static void bench(int64_t T) {
  const int64_t B = 4, Hq = 9, Hkv = 3, D = 64;
  std::mt19937 rng(1);
  Vec q(B * T * Hq * D), k(B * T * Hkv * D), v(k.size()), dout(q.size()), out(q.size()), lse(B * Hq * T);
  Vec dq(q.size()), dk(k.size()), dv(v.size());
  fill_normal(q, rng); fill_normal(k, rng); fill_normal(v, rng); fill_normal(dout, rng);
  const float scale = 0.125f;
  double best_f = 1e30, best_b = 1e30;
  for (int rep = 0; rep < 5; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    attention_forward_f32(q.data(), k.data(), v.data(), nullptr, nullptr, out.data(), lse.data(), B, T, T, Hq, Hkv, D,
                          scale, 1, T);
    best_f = std::min(best_f, ms_since(t0));
    t0 = std::chrono::steady_clock::now();
    attention_backward_f32(q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), nullptr, nullptr,
                           dq.data(), dk.data(), dv.data(), B, T, T, Hq, Hkv, D, scale, 1);
    best_b = std::min(best_b, ms_since(t0));
  }
  std::printf("timing B=4 Hq=9 Hkv=3 D=64 T=%lld causal, %d threads, best of 5: fwd %.1f ms  bwd %.1f ms  "
              "total %.1f ms\n", (long long)T, omp_get_max_threads(), best_f, best_b, best_f + best_b);
}

int main() {
  std::mt19937 rng(1234);
  int fails = 0;
  double worst = 0;
  const int64_t Ds[] = {8, 64, 80}, Ts[] = {1, 37, 130}, ratios[] = {1, 2, 3};
  for (int64_t D : Ds)
    for (int64_t T : Ts)
      for (int64_t r : ratios)
        for (int flags = 0; flags < 8; flags++)
          fails += run_case({2, T, T, 2 * r, 2, D, flags & 1, (flags >> 1) & 1, (flags >> 2) & 1}, rng, worst);
  for (int flags = 0; flags < 8; flags++)  // fewer queries than keys: queries sit at the end
    fails += run_case({2, 5, 70, 6, 2, 64, flags & 1, (flags >> 1) & 1, (flags >> 2) & 1}, rng, worst);
  fails += run_case({1, 200, 200, 4, 1, 256, 1, 1, 1}, rng, worst);  // large D, one kv head
  for (int flags = 0; flags < 4; flags++)  // more queries than keys: the first rows sit before position 0
    fails += run_case({2, 9, 4, 2, 1, 8, flags & 1, 0, (flags >> 1) & 1}, rng, worst);
  fails += run_case({1, 3, 0, 2, 2, 8, 0, 0, 0}, rng, worst);  // no keys at all
  for (int flags = 0; flags < 8; flags++)  // decoding: one or a few queries over a long cache, GQA 3:1
    for (int64_t tq : {1, 3, 8})
      fails += run_case({3, tq, 160, 9, 3, 64, 1, flags & 1, (flags >> 1) & 1}, rng, worst);
  fails += nan_and_threads_check();
  std::printf("%s: %d failing cases, worst relative error %.2e\n", fails ? "FAILED" : "PASSED", fails, worst);
  omp_set_num_threads(2);
  bench(256);
  bench(1024);
  return fails ? 1 : 0;
}
