// Elementwise unary and broadcast binary kernels over f32 (comparisons write u8).
// Not fused chains: autograd composes these; hot fused paths live in their own files.
#include <cmath>
#include "kernels.h"
#include "simd.h"

namespace temper {

static constexpr int64_t kGrain = 1 << 15;  // below this, threads cost more than they save

static inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
static inline float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

TEMPER_CLONES void unary_f32(int op, const float* x, float* out, int64_t n) {
#define TEMPER_UNARY(EXPR)                                             \
  _Pragma("omp parallel for simd if (n > kGrain) schedule(static)") \
  for (int64_t i = 0; i < n; i++) { float v = x[i]; out[i] = (EXPR); } \
  return;
  switch (op) {
    case U_NEG: TEMPER_UNARY(-v)
    case U_EXP: TEMPER_UNARY(fast_exp(v))
    case U_LOG: TEMPER_UNARY(std::log(v))
    case U_SQRT: TEMPER_UNARY(std::sqrt(v))
    case U_RSQRT: TEMPER_UNARY(1.0f / std::sqrt(v))
    case U_ABS: TEMPER_UNARY(std::fabs(v))
    case U_SILU: TEMPER_UNARY(v / (1.0f + fast_exp(-v)))
    case U_GELU_ERF: TEMPER_UNARY(gelu_erf(v))
    case U_GELU_TANH: TEMPER_UNARY(gelu_tanh(v))
    case U_SIGMOID: TEMPER_UNARY(1.0f / (1.0f + fast_exp(-v)))
    case U_TANH: TEMPER_UNARY(std::tanh(v))
    // torch softplus (beta=1, threshold=20): linear above the threshold.
    case U_SOFTPLUS: TEMPER_UNARY(v > 20.0f ? v : std::log1p(fast_exp(v)))
    case U_RELU: TEMPER_UNARY(v > 0.0f ? v : (v != v ? v : 0.0f))
    case U_SQUARE: TEMPER_UNARY(v * v)
    case U_RECIPROCAL: TEMPER_UNARY(1.0f / v)
    case U_SIGN: TEMPER_UNARY(v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v))
  }
#undef TEMPER_UNARY
}

TEMPER_CLONES void unary_backward_f32(int op, const float* x, const float* y, const float* g, float* dx, int64_t n) {
#define TEMPER_UNARY_BW(EXPR)                                                        \
  _Pragma("omp parallel for simd if (n > kGrain) schedule(static)")               \
  for (int64_t i = 0; i < n; i++) { float v = x[i]; float gi = g[i]; (void)v; (void)gi; dx[i] = (EXPR); } \
  return;
  switch (op) {
    case U_NEG: TEMPER_UNARY_BW(-gi)
    case U_EXP: TEMPER_UNARY_BW(gi * y[i])
    case U_LOG: TEMPER_UNARY_BW(gi / v)
    case U_SQRT: TEMPER_UNARY_BW(gi * 0.5f / y[i])
    case U_RSQRT: TEMPER_UNARY_BW(gi * -0.5f * y[i] * y[i] * y[i])
    case U_ABS: TEMPER_UNARY_BW(v > 0.0f ? gi : (v < 0.0f ? -gi : 0.0f))
    case U_SILU: {
      _Pragma("omp parallel for simd if (n > kGrain) schedule(static)")
      for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + fast_exp(-x[i]));
        dx[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
      }
      return;
    }
    case U_GELU_ERF: {
      _Pragma("omp parallel for if (n > kGrain) schedule(static)")
      for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + std::erf(v * 0.70710678118654752f));
        float pdf = 0.3989422804014327f * std::exp(-0.5f * v * v);
        dx[i] = g[i] * (cdf + v * pdf);
      }
      return;
    }
    case U_GELU_TANH: {
      _Pragma("omp parallel for if (n > kGrain) schedule(static)")
      for (int64_t i = 0; i < n; i++) {
        const float k = 0.7978845608028654f;
        float v = x[i];
        float inner = k * (v + 0.044715f * v * v * v);
        float t = std::tanh(inner);
        float dinner = k * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] = g[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dinner);
      }
      return;
    }
    case U_SIGMOID: TEMPER_UNARY_BW(gi * y[i] * (1.0f - y[i]))
    case U_TANH: TEMPER_UNARY_BW(gi * (1.0f - y[i] * y[i]))
    case U_SOFTPLUS: TEMPER_UNARY_BW(v > 20.0f ? gi : gi / (1.0f + fast_exp(-v)))
    case U_RELU: TEMPER_UNARY_BW(v > 0.0f ? gi : 0.0f)
    case U_SQUARE: TEMPER_UNARY_BW(2.0f * v * gi)
    case U_RECIPROCAL: TEMPER_UNARY_BW(-gi * y[i] * y[i])
    case U_SIGN: TEMPER_UNARY_BW(0.0f)
  }
#undef TEMPER_UNARY_BW
}

TEMPER_CLONES void clamp_f32(const float* x, float* out, int64_t n, float lo, float hi) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    float r = v < lo ? lo : v;
    r = r > hi ? hi : r;
    out[i] = v != v ? v : r;
  }
}

static inline float apply_binary(int op, float a, float b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return std::pow(a, b);
    // torch.maximum/minimum propagate NaN.
    case B_MAX: return (a != a || b != b) ? NAN : (a > b ? a : b);
    case B_MIN: return (a != a || b != b) ? NAN : (a < b ? a : b);
  }
  return 0.0f;
}

// Inner loop over the last dim with strides sa, sb (0 = broadcast, 1 = contiguous).
template <int OP>
TEMPER_CLONES static void binary_row(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  auto f = [](float x, float y) -> float {
    if constexpr (OP == B_ADD) return x + y;
    else if constexpr (OP == B_SUB) return x - y;
    else if constexpr (OP == B_MUL) return x * y;
    else if constexpr (OP == B_DIV) return x / y;
    else if constexpr (OP == B_POW) return std::pow(x, y);
    else if constexpr (OP == B_MAX) return (x != x || y != y) ? NAN : (x > y ? x : y);
    else return (x != x || y != y) ? NAN : (x < y ? x : y);
  };
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) out[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    float bv = b[0];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) out[i] = f(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    float av = a[0];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) out[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++) out[i] = f(a[i * sa], b[i * sb]);
  }
}

template <int OP>
static void cmp_row(const float* a, int64_t sa, const float* b, int64_t sb, uint8_t* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float x = a[i * sa], y = b[i * sb];
    bool r;
    if constexpr (OP == B_EQ) r = x == y;
    else if constexpr (OP == B_NE) r = x != y;
    else if constexpr (OP == B_LT) r = x < y;
    else if constexpr (OP == B_LE) r = x <= y;
    else if constexpr (OP == B_GT) r = x > y;
    else r = x >= y;
    out[i] = r ? 1 : 0;
  }
}

// Walks all rows (every dim but the last) of the broadcast shape and calls `row`
// with the row's base pointers. Rows are split across threads.
template <typename RowFn>
static void for_each_row(const int64_t* shape, int ndim, const int64_t* sa, const int64_t* sb, RowFn row) {
  int64_t inner = ndim > 0 ? shape[ndim - 1] : 1;
  int64_t rows = 1;
  for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
  bool par = rows * inner > kGrain && rows > 1;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rem = r, oa = 0, ob = 0;
    for (int d = ndim - 2; d >= 0; d--) {
      int64_t i = rem % shape[d];
      rem /= shape[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
    row(r * inner, oa, ob);
  }
}

template <int OP>
static void binary_dispatch(const float* a, const int64_t* sa, const float* b, const int64_t* sb, void* out,
                            const int64_t* shape, int ndim) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  bool a_contig = true, b_contig = true;
  int64_t expect = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    if (shape[d] != 1 && sa[d] != expect) a_contig = false;
    if (shape[d] != 1 && sb[d] != expect) b_contig = false;
    expect *= shape[d];
  }
  if constexpr (OP <= B_MIN) {
    float* o = static_cast<float*>(out);
    if (a_contig && b_contig) {  // flat fast path, split evenly across threads
      int64_t chunks = n > kGrain ? (n + kGrain - 1) / kGrain : 1;
#pragma omp parallel for if (chunks > 1) schedule(static)
      for (int64_t c = 0; c < chunks; c++) {
        int64_t s = c * kGrain, e = s + kGrain < n ? s + kGrain : n;
        if (chunks == 1) { s = 0; e = n; }
        binary_row<OP>(a + s, 1, b + s, 1, o + s, e - s);
      }
      return;
    }
    int64_t last_a = ndim ? sa[ndim - 1] : 0, last_b = ndim ? sb[ndim - 1] : 0;
    if (ndim == 0) { o[0] = apply_binary(OP, a[0], b[0]); return; }
    for_each_row(shape, ndim, sa, sb, [&](int64_t oo, int64_t oa, int64_t ob) {
      binary_row<OP>(a + oa, last_a, b + ob, last_b, o + oo, shape[ndim - 1]);
    });
  } else {
    uint8_t* o = static_cast<uint8_t*>(out);
    if (ndim == 0) {
      int64_t one = 1, z = 0;
      cmp_row<OP>(a, z, b, z, o, one);
      return;
    }
    int64_t last_a = sa[ndim - 1], last_b = sb[ndim - 1];
    for_each_row(shape, ndim, sa, sb, [&](int64_t oo, int64_t oa, int64_t ob) {
      cmp_row<OP>(a + oa, last_a, b + ob, last_b, o + oo, shape[ndim - 1]);
    });
  }
}

void binary_f32(int op, const float* a, const int64_t* sa, const float* b, const int64_t* sb, void* out,
                const int64_t* shape, int ndim) {
  switch (op) {
    case B_ADD: return binary_dispatch<B_ADD>(a, sa, b, sb, out, shape, ndim);
    case B_SUB: return binary_dispatch<B_SUB>(a, sa, b, sb, out, shape, ndim);
    case B_MUL: return binary_dispatch<B_MUL>(a, sa, b, sb, out, shape, ndim);
    case B_DIV: return binary_dispatch<B_DIV>(a, sa, b, sb, out, shape, ndim);
    case B_POW: return binary_dispatch<B_POW>(a, sa, b, sb, out, shape, ndim);
    case B_MAX: return binary_dispatch<B_MAX>(a, sa, b, sb, out, shape, ndim);
    case B_MIN: return binary_dispatch<B_MIN>(a, sa, b, sb, out, shape, ndim);
    case B_EQ: return binary_dispatch<B_EQ>(a, sa, b, sb, out, shape, ndim);
    case B_NE: return binary_dispatch<B_NE>(a, sa, b, sb, out, shape, ndim);
    case B_LT: return binary_dispatch<B_LT>(a, sa, b, sb, out, shape, ndim);
    case B_LE: return binary_dispatch<B_LE>(a, sa, b, sb, out, shape, ndim);
    case B_GT: return binary_dispatch<B_GT>(a, sa, b, sb, out, shape, ndim);
    case B_GE: return binary_dispatch<B_GE>(a, sa, b, sb, out, shape, ndim);
  }
}

void where_f32(const uint8_t* cond, const int64_t* sc, const float* a, const int64_t* sa, const float* b,
               const int64_t* sb, float* out, const int64_t* shape, int ndim) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
#pragma omp parallel for if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    int64_t rem = i, oc = 0, oa = 0, ob = 0;
    for (int d = ndim - 1; d >= 0; d--) {
      int64_t k = rem % shape[d];
      rem /= shape[d];
      oc += k * sc[d];
      oa += k * sa[d];
      ob += k * sb[d];
    }
    out[i] = cond[oc] ? a[oa] : b[ob];
  }
}

}  // namespace temper
