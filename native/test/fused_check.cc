// Standalone check of the fused kernels (norm, rotary, cross-entropy, optimizer) against naive
// double-precision references on awkward sizes, plus thread-count determinism and timings at the
// benchmark sizes. Not part of the addon build; exits nonzero on any failure. Build:
//   g++ -std=c++17 -O3 -fopenmp -fno-math-errno -Inative/src native/src/{norm,rotary,cross_entropy,optim}.cc
//     native/test/fused_check.cc -o /tmp/fused_check
#include <omp.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <vector>
#include "kernels.h"

using namespace temper;
using vf = std::vector<float>;
using vd = std::vector<double>;

static int g_failures = 0;
static std::mt19937 g_rng(1234);

static vf randn(size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  vf v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}

// max |a-b| / (max|b| + 1e-6), reported and checked against tol.
static void check(const char* what, const float* a, const double* b, size_t n, double tol) {
  double err = 0.0, ref = 0.0;
  bool nan = false;
  for (size_t i = 0; i < n; i++) {
    if (a[i] != a[i]) nan = true;
    err = std::max(err, std::fabs((double)a[i] - b[i]));
    ref = std::max(ref, std::fabs(b[i]));
  }
  const double rel = nan ? INFINITY : err / (ref + 1e-6);
  const bool ok = rel < tol;
  if (!ok) g_failures++;
  std::printf("  %-44s max rel err %.2e  %s\n", what, rel, ok ? "ok" : "FAIL");
}
static void check(const char* what, const vf& a, const vd& b, double tol = 1e-5) {
  check(what, a.data(), b.data(), a.size(), tol);
}
static void expect(const char* what, bool ok) {
  if (!ok) g_failures++;
  std::printf("  %-44s %s\n", what, ok ? "ok" : "FAIL");
}
static bool same_bits(const vf& a, const vf& b) { return std::memcmp(a.data(), b.data(), a.size() * 4) == 0; }

// ---- references (double) ---------------------------------------------------

static void ref_rms(const vf& x, const vf& w, const vf& dy, int64_t N, int64_t C, double eps, vd& y, vd& rstd,
                    vd& dx, vd& dw) {
  y.assign(N * C, 0), rstd.assign(N, 0), dx.assign(N * C, 0), dw.assign(C, 0);
  for (int64_t n = 0; n < N; n++) {
    double ss = 0;
    for (int64_t c = 0; c < C; c++) ss += (double)x[n * C + c] * x[n * C + c];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    rstd[n] = r;
    double dot = 0;
    for (int64_t c = 0; c < C; c++) dot += (double)w[c] * dy[n * C + c] * x[n * C + c];
    for (int64_t c = 0; c < C; c++) {
      const double xv = x[n * C + c], g = (double)w[c] * dy[n * C + c];
      y[n * C + c] = w[c] * xv * r;
      dx[n * C + c] = r * (g - xv * r * r * dot / C);
      dw[c] += dy[n * C + c] * xv * r;
    }
  }
}

static void ref_ln(const vf& x, const vf& w, const float* b, const vf& dy, int64_t N, int64_t C, double eps, vd& y,
                   vd& mean, vd& rstd, vd& dx, vd& dw, vd& db) {
  y.assign(N * C, 0), mean.assign(N, 0), rstd.assign(N, 0), dx.assign(N * C, 0), dw.assign(C, 0), db.assign(C, 0);
  for (int64_t n = 0; n < N; n++) {
    const float* xr = &x[n * C];
    double s = 0, ss = 0;
    for (int64_t c = 0; c < C; c++) s += xr[c];
    const double mu = s / C;
    for (int64_t c = 0; c < C; c++) ss += (xr[c] - mu) * (xr[c] - mu);
    const double r = 1.0 / std::sqrt(ss / C + eps);
    mean[n] = mu, rstd[n] = r;
    double sg = 0, sgx = 0;
    for (int64_t c = 0; c < C; c++) {
      const double xh = (xr[c] - mu) * r, g = (double)w[c] * dy[n * C + c];
      y[n * C + c] = xh * w[c] + (b ? b[c] : 0.0);
      sg += g, sgx += g * xh;
      dw[c] += dy[n * C + c] * xh;
      db[c] += dy[n * C + c];
    }
    for (int64_t c = 0; c < C; c++) {
      const double xh = (xr[c] - mu) * r, g = (double)w[c] * dy[n * C + c];
      dx[n * C + c] = r * (g - sg / C - xh * sgx / C);
    }
  }
}

// The angle is the f32 product float(pos) * inv_freq (the specified HF semantics); cos/sin in double.
static vd ref_rotary(const vf& x, const std::vector<int32_t>& pos, const vf& inv, int64_t B, int64_t T, int64_t H,
                     int64_t D, double scaling, int inverse) {
  vd out(x.size());
  const int64_t half = D / 2;
  for (int64_t bt = 0; bt < B * T; bt++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < half; i++) {
        const float a = (float)pos[bt] * inv[i];
        const double c = std::cos((double)a) * scaling, s = std::sin((double)a) * scaling * (inverse ? -1 : 1);
        const double x1 = x[(bt * H + h) * D + i], x2 = x[(bt * H + h) * D + i + half];
        out[(bt * H + h) * D + i] = x1 * c - x2 * s;
        out[(bt * H + h) * D + i + half] = x2 * c + x1 * s;
      }
  return out;
}

static void ref_ce(const vf& x, const std::vector<int32_t>& y, const vf& g, int64_t N, int64_t V, int32_t ign,
                   double eps, vd& loss, vd& lse, vd& dx) {
  loss.assign(N, 0), lse.assign(N, 0), dx.assign(N * V, 0);
  for (int64_t n = 0; n < N; n++) {
    if (y[n] == ign) continue;
    const float* xr = &x[n * V];
    double m = -INFINITY, s = 0, sx = 0;
    for (int64_t j = 0; j < V; j++) m = std::max(m, (double)xr[j]);
    for (int64_t j = 0; j < V; j++) s += std::exp(xr[j] - m), sx += xr[j];
    const double l = m + std::log(s);
    lse[n] = l;
    loss[n] = (1 - eps) * (l - xr[y[n]]) + eps * (l - sx / V);
    for (int64_t j = 0; j < V; j++)
      dx[n * V + j] = g[n] * (std::exp(xr[j] - l) - (1 - eps) * (j == y[n]) - eps / V);
  }
}

// ---- tests -----------------------------------------------------------------

static void test_rms(int64_t N, int64_t C) {
  std::printf("rms_norm N=%lld C=%lld\n", (long long)N, (long long)C);
  const float eps = 1e-6f;
  vf x = randn(N * C, 2.0f), w = randn(C), dy = randn(N * C);
  for (auto& v : w) v += 1.0f;
  vf y(N * C), rstd(N), dx(N * C), dw(C, 123.0f);
  rms_norm_forward_f32(x.data(), w.data(), y.data(), rstd.data(), N, C, eps);
  rms_norm_backward_f32(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), N, C);
  vd ry, rr, rdx, rdw;
  ref_rms(x, w, dy, N, C, eps, ry, rr, rdx, rdw);
  check("y", y, ry), check("rstd", rstd, rr), check("dx", dx, rdx), check("dw", dw, rdw);
  vf dx1(N * C), dw1(C);
  omp_set_num_threads(1);
  rms_norm_backward_f32(x.data(), w.data(), rstd.data(), dy.data(), dx1.data(), dw1.data(), N, C);
  omp_set_num_threads(2);
  expect("dx, dw bitwise equal with 1 and 2 threads", same_bits(dx, dx1) && same_bits(dw, dw1));
}

static void test_ln(int64_t N, int64_t C, bool bias) {
  std::printf("layer_norm N=%lld C=%lld bias=%d\n", (long long)N, (long long)C, (int)bias);
  const float eps = 1e-5f;
  vf x = randn(N * C, 3.0f), w = randn(C), b = randn(C), dy = randn(N * C);
  for (auto& v : x) v += 5.0f;  // a mean far from 0 exercises the variance
  vf y(N * C), mean(N), rstd(N), dx(N * C), dw(C), db(C);
  const float* bp = bias ? b.data() : nullptr;
  layer_norm_forward_f32(x.data(), w.data(), bp, y.data(), mean.data(), rstd.data(), N, C, eps);
  layer_norm_backward_f32(x.data(), w.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dw.data(),
                          bias ? db.data() : nullptr, N, C);
  vd ry, rm, rr, rdx, rdw, rdb;
  ref_ln(x, w, bp, dy, N, C, eps, ry, rm, rr, rdx, rdw, rdb);
  check("y", y, ry), check("mean", mean, rm), check("rstd", rstd, rr), check("dx", dx, rdx), check("dw", dw, rdw);
  if (bias) check("db", db, rdb);
}

static void test_rotary(int64_t B, int64_t T, int64_t H, int64_t D) {
  std::printf("rotary B=%lld T=%lld H=%lld D=%lld\n", (long long)B, (long long)T, (long long)H, (long long)D);
  vf x = randn(B * T * H * D), inv(D / 2);
  for (int64_t i = 0; i < D / 2; i++) inv[i] = (float)(1.0 / std::pow(10000.0, 2.0 * i / D));
  std::vector<int32_t> pos(B * T);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) pos[b * T + t] = (int32_t)(7 + 13 * b + 3 * t + (t % 2) * 400);
  const float scaling = 1.25f;
  for (int inverse = 0; inverse < 2; inverse++) {
    vf out(x.size());
    rotary_f32(x.data(), pos.data(), inv.data(), out.data(), B, T, H, D, scaling, inverse);
    vd ref = ref_rotary(x, pos, inv, B, T, H, D, scaling, inverse);
    check(inverse ? "out (inverse)" : "out", out, ref);
    vf inplace = x;
    rotary_f32(inplace.data(), pos.data(), inv.data(), inplace.data(), B, T, H, D, scaling, inverse);
    expect("in place (out == x) matches out-of-place", same_bits(inplace, out));
  }
  // forward then inverse with scaling 1 is the identity (the rotation is orthogonal).
  vf fw(x.size()), back(x.size());
  rotary_f32(x.data(), pos.data(), inv.data(), fw.data(), B, T, H, D, 1.0f, 0);
  rotary_f32(fw.data(), pos.data(), inv.data(), back.data(), B, T, H, D, 1.0f, 1);
  check("inverse(forward(x)) == x", back, vd(x.begin(), x.end()));
}

static void test_ce(int64_t N, int64_t V, float eps) {
  std::printf("cross_entropy N=%lld V=%lld eps=%g\n", (long long)N, (long long)V, eps);
  const int32_t ign = -100;
  vf x = randn(N * V, 3.0f), g = randn(N);
  std::vector<int32_t> y(N);
  for (int64_t n = 0; n < N; n++) y[n] = n % 4 == 1 ? ign : (int32_t)((n * 7919 + 13) % V);
  y[N - 1] = (int32_t)(V - 1);
  vf loss(N, 9.0f), lse(N, 9.0f), dx(N * V, 9.0f);
  const int64_t rc = cross_entropy_forward_f32(x.data(), y.data(), loss.data(), lse.data(), N, V, ign, eps);
  expect("forward returns 0", rc == 0);
  cross_entropy_backward_f32(x.data(), y.data(), lse.data(), g.data(), dx.data(), N, V, ign, eps);
  vd rl, rlse, rdx;
  ref_ce(x, y, g, N, V, ign, eps, rl, rlse, rdx);
  check("loss", loss, rl), check("lse", lse, rlse), check("dlogits", dx, rdx);
  vf loss1(N), lse1(N), dx1(N * V);
  omp_set_num_threads(1);
  cross_entropy_forward_f32(x.data(), y.data(), loss1.data(), lse1.data(), N, V, ign, eps);
  cross_entropy_backward_f32(x.data(), y.data(), lse1.data(), g.data(), dx1.data(), N, V, ign, eps);
  omp_set_num_threads(2);
  expect("bitwise equal with 1 and 2 threads", same_bits(loss, loss1) && same_bits(lse, lse1) && same_bits(dx, dx1));
}

static void test_ce_edges() {
  std::printf("cross_entropy edge cases\n");
  const int64_t N = 6, V = 5000;
  vf x = randn(N * V), loss(N), lse(N);
  std::vector<int32_t> y = {1, -100, 4999, 5000, -1, 2};
  int64_t rc = cross_entropy_forward_f32(x.data(), y.data(), loss.data(), lse.data(), N, V, -100, 0.1f);
  expect("label V at row 3 -> returns -4", rc == -4);
  y[3] = 3;
  rc = cross_entropy_forward_f32(x.data(), y.data(), loss.data(), lse.data(), N, V, -100, 0.1f);
  expect("label -1 at row 4 -> returns -5", rc == -5);
  y[4] = -100;
  // A masked vocab tail (-inf logits, a whole -inf chunk included) with eps 0 gives finite losses.
  for (int64_t n = 0; n < N; n++)
    for (int64_t j = 3000; j < V; j++) x[n * V + j] = -INFINITY;
  y[2] = 7;
  rc = cross_entropy_forward_f32(x.data(), y.data(), loss.data(), lse.data(), N, V, -100, 0.0f);
  bool finite = rc == 0;
  for (int64_t n = 0; n < N; n++) finite = finite && std::isfinite(loss[n]);
  vd rl, rlse, rdx;
  ref_ce(x, y, vf(N, 1.0f), N, V, -100, 0.0, rl, rlse, rdx);
  expect("-inf logits, eps=0: finite losses", finite);
  check("-inf logits, eps=0: loss", loss, rl);
  x[5 * V + 17] = NAN;
  cross_entropy_forward_f32(x.data(), y.data(), loss.data(), lse.data(), N, V, -100, 0.0f);
  expect("NaN logit -> NaN loss for that row only", std::isnan(loss[5]) && std::isfinite(loss[0]));
}

static void test_adamw(int64_t n, float wd, float grad_scale) {
  std::printf("adamw n=%lld wd=%g grad_scale=%g (5 steps)\n", (long long)n, wd, grad_scale);
  const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  vf p = randn(n), m(n, 0.0f), v(n, 0.0f);
  vd rp(p.begin(), p.end()), rm(n, 0.0), rv(n, 0.0);
  for (int64_t step = 1; step <= 5; step++) {
    vf g = randn(n);
    if (step == 3) g[0] = 0.0f;
    adamw_step_f32(p.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd, step, grad_scale);
    const double bc1 = 1 - std::pow((double)b1, step), bc2 = 1 - std::pow((double)b2, step);
    for (int64_t i = 0; i < n; i++) {
      const double gi = (double)g[i] * grad_scale;
      rp[i] *= 1 - (double)lr * wd;
      rm[i] = b1 * rm[i] + (1 - (double)b1) * gi;
      rv[i] = b2 * rv[i] + (1 - (double)b2) * gi * gi;
      rp[i] -= (lr / bc1) * rm[i] / (std::sqrt(rv[i]) / std::sqrt(bc2) + eps);
    }
  }
  check("p", p, rp, 1e-6), check("m", m, rm, 1e-6), check("v", v, rv, 1e-6);
}

static void test_sum_scale(int64_t n) {
  std::printf("sum_squares / scale_inplace n=%lld\n", (long long)n);
  vf x = randn(n);
  double ref = 0;
  for (auto v : x) ref += (double)v * v;
  const double s2 = sum_squares_f32(x.data(), n);
  omp_set_num_threads(1);
  const double s1 = sum_squares_f32(x.data(), n);
  omp_set_num_threads(2);
  const float got = (float)s2;
  check("sum_squares", &got, &ref, 1, 1e-12 + 1e-5);
  expect("sum_squares bitwise equal with 1 and 2 threads", s1 == s2);
  std::printf("  sum_squares rel err vs double %.2e\n", std::fabs(s2 - ref) / ref);
  vf y = x;
  scale_inplace_f32(y.data(), n, -0.37f);
  vd ry(n);
  for (int64_t i = 0; i < n; i++) ry[i] = x[i] * -0.37;
  check("scale_inplace", y, ry);
}

// ---- timings ---------------------------------------------------------------

static double time_ms(const std::function<void()>& f, int reps) {
  f();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; i++) f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

static void timings() {
  std::printf("timings (2 threads, ms per call)\n");
  {
    const int64_t N = 4 * 1024, C = 576;
    vf x = randn(N * C), w = randn(C), dy = randn(N * C), y(N * C), r(N), dx(N * C), dw(C), m(N), db(C);
    const double f = time_ms([&] { rms_norm_forward_f32(x.data(), w.data(), y.data(), r.data(), N, C, 1e-6f); }, 50);
    const double b = time_ms(
        [&] { rms_norm_backward_f32(x.data(), w.data(), r.data(), dy.data(), dx.data(), dw.data(), N, C); }, 50);
    std::printf("  rms_norm 4x1024x576       fwd %7.3f  bwd %7.3f  fwd+bwd %7.3f\n", f, b, f + b);
    const double lf = time_ms(
        [&] { layer_norm_forward_f32(x.data(), w.data(), w.data(), y.data(), m.data(), r.data(), N, C, 1e-5f); }, 50);
    const double lb = time_ms([&] {
      layer_norm_backward_f32(x.data(), w.data(), m.data(), r.data(), dy.data(), dx.data(), dw.data(), db.data(), N,
                              C);
    }, 50);
    std::printf("  layer_norm 4x1024x576     fwd %7.3f  bwd %7.3f  fwd+bwd %7.3f\n", lf, lb, lf + lb);
  }
  {
    const int64_t B = 4, T = 1024, H = 9, D = 64;
    vf x = randn(B * T * H * D), out(x.size()), inv(D / 2);
    for (int64_t i = 0; i < D / 2; i++) inv[i] = (float)(1.0 / std::pow(10000.0, 2.0 * i / D));
    std::vector<int32_t> pos(B * T);
    for (int64_t i = 0; i < B * T; i++) pos[i] = (int32_t)(i % T);
    const double f = time_ms([&] { rotary_f32(x.data(), pos.data(), inv.data(), out.data(), B, T, H, D, 1, 0); }, 50);
    const double b = time_ms([&] { rotary_f32(x.data(), pos.data(), inv.data(), out.data(), B, T, H, D, 1, 1); }, 50);
    std::printf("  rotary 4x1024x9x64        fwd %7.3f  bwd %7.3f  fwd+bwd %7.3f\n", f, b, f + b);
  }
  {
    const int64_t N = 1024, V = 49152;
    vf x = randn(N * V, 2.0f), loss(N), lse(N), g(N, 1.0f), dx(N * V);
    std::vector<int32_t> y(N);
    for (int64_t n = 0; n < N; n++) y[n] = n % 7 == 0 ? -100 : (int32_t)((n * 7919) % V);
    for (float eps : {0.0f, 0.1f}) {
      const double f = time_ms(
          [&] { cross_entropy_forward_f32(x.data(), y.data(), loss.data(), lse.data(), N, V, -100, eps); }, 10);
      const double b = time_ms([&] {
        cross_entropy_backward_f32(x.data(), y.data(), lse.data(), g.data(), dx.data(), N, V, -100, eps);
      }, 10);
      std::printf("  cross_entropy 1024x49152 eps=%.1f fwd %7.3f  bwd %7.3f  fwd+bwd %7.3f\n", eps, f, b, f + b);
    }
    const int64_t n8 = 8;
    const double f8 = time_ms(
        [&] { cross_entropy_forward_f32(x.data(), y.data() + 1, loss.data(), lse.data(), n8, V, -100, 0.1f); }, 200);
    const double b8 = time_ms([&] {
      cross_entropy_backward_f32(x.data(), y.data() + 1, lse.data(), g.data(), dx.data(), n8, V, -100, 0.1f);
    }, 200);
    std::printf("  cross_entropy 8x49152 eps=0.1    fwd %7.3f  bwd %7.3f\n", f8, b8);
  }
  {
    const int64_t n = 10'000'000;
    vf p = randn(n), g = randn(n), m(n, 0.0f), v(n, 0.0f);
    int64_t step = 0;
    const double a = time_ms([&] {
      adamw_step_f32(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, ++step, 1.0f);
    }, 10);
    const double s = time_ms([&] { volatile double r = sum_squares_f32(g.data(), n); (void)r; }, 10);
    const double sc = time_ms([&] { scale_inplace_f32(g.data(), n, 1.0f); }, 10);
    std::printf("  adamw 10M %7.3f   sum_squares 10M %7.3f   scale_inplace 10M %7.3f\n", a, s, sc);
  }
}

int main() {
  omp_set_num_threads(2);
  for (int64_t C : {37, 129, 576}) test_rms(C == 576 ? 300 : 45, C);
  test_rms(1, 129);
  for (int64_t C : {37, 129}) test_ln(45, C, true), test_ln(45, C, false);
  test_ln(200, 576, true);
  for (int64_t D : {8, 64, 96}) test_rotary(2, 5, 3, D);
  test_rotary(3, 37, 9, 64);
  for (int64_t V : {1000, 4099})
    for (float eps : {0.0f, 0.1f}) test_ce(V == 1000 ? 37 : 13, V, eps);
  test_ce(3, 49152, 0.1f);
  test_ce_edges();
  test_adamw(1001, 0.0f, 1.0f);
  test_adamw(100003, 0.1f, 0.5f);
  test_sum_scale(1000);
  test_sum_scale(1000003);
  timings();
  if (g_failures) {
    std::printf("%d FAILURE(S)\n", g_failures);
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}
