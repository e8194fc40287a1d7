// CUDA elementwise kernels (native/src/elementwise.cc on the GPU): unary ops and their backward,
// clamp, broadcast binary ops (comparisons write u8) and where.
// Plain f32 arithmetic is bit-identical to the CPU build: fast_exp and the other mul-add chains are
// written with the fmaf GCC forms for them on x86-64-v3/v4 (its C++ default is -ffp-contract=fast).
// libm calls (erf, tanh, log, log1p, exp, pow) are evaluated in double and rounded once: correctly
// rounded, where glibc's f32 versions may be an ulp or two off, so those can differ from the CPU.
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include "common.cuh"

namespace temper {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDims = 8;

bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }

// ---- scalar math --------------------------------------------------------------------------------

// simd.h's fast_exp, FMAs placed where GCC contracts it.
__device__ __forceinline__ float fast_exp(float x) {
  const float hi = 88.72283935546875f, lo = -103.972084045410f;
  float xc = x < hi ? (x > lo ? x : lo) : hi;
  float n = rintf(xc * 1.44269504088896341f);
  float r = fmaf(-n, 0.693359375f, xc);
  r = fmaf(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  p = fmaf(p * r, r, r) + 1.0f;
  int ni = (int)n, n1 = ni >> 1, n2 = ni - n1;
  float res = p * __int_as_float((n1 + 127) << 23) * __int_as_float((n2 + 127) << 23);
  res = x > hi ? INFINITY : res;
  res = x < lo ? 0.0f : res;
  return x != x ? x : res;
}

__device__ __forceinline__ float erf_f(float v) { return (float)erf((double)v); }
__device__ __forceinline__ float tanh_f(float v) { return (float)tanh((double)v); }
__device__ __forceinline__ float exp_f(float v) { return (float)exp((double)v); }

// Sign-bit operations for results returned as is, so NaN payloads pass through as on x86.
__device__ __forceinline__ float neg_f(float v) { return __int_as_float(__float_as_int(v) ^ INT32_MIN); }
__device__ __forceinline__ float abs_f(float v) { return __int_as_float(__float_as_int(v) & INT32_MAX); }

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

__device__ __forceinline__ float gelu_tanh_inner(float v) { return kSqrt2OverPi * fmaf(kGeluCubic * v * v, v, v); }

template <int OP>
__device__ __forceinline__ float unary_op(float v) {
  if constexpr (OP == U_NEG) return neg_f(v);
  else if constexpr (OP == U_EXP) return fast_exp(v);
  else if constexpr (OP == U_LOG) return (float)log((double)v);
  else if constexpr (OP == U_SQRT) return sqrtf(v);
  else if constexpr (OP == U_RSQRT) return 1.0f / sqrtf(v);
  else if constexpr (OP == U_ABS) return abs_f(v);
  else if constexpr (OP == U_SILU) return v / (1.0f + fast_exp(-v));
  else if constexpr (OP == U_GELU_ERF) return 0.5f * v * (1.0f + erf_f(v * 0.70710678118654752f));
  else if constexpr (OP == U_GELU_TANH) return 0.5f * v * (1.0f + tanh_f(gelu_tanh_inner(v)));
  else if constexpr (OP == U_SIGMOID) return 1.0f / (1.0f + fast_exp(-v));
  else if constexpr (OP == U_TANH) return tanh_f(v);
  else if constexpr (OP == U_SOFTPLUS) return v > 20.0f ? v : (float)log1p((double)fast_exp(v));
  else if constexpr (OP == U_RELU) return v > 0.0f ? v : (v != v ? v : 0.0f);
  else if constexpr (OP == U_SQUARE) return v * v;
  else if constexpr (OP == U_RECIPROCAL) return 1.0f / v;
  else return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v);  // U_SIGN
}

// Backward ops that read y = op(x) instead of x.
template <int OP>
constexpr bool grad_uses_y() {
  return OP == U_EXP || OP == U_SQRT || OP == U_RSQRT || OP == U_SIGMOID || OP == U_TANH || OP == U_RECIPROCAL;
}

// g * op'(x); `v` is x or y per grad_uses_y.
template <int OP>
__device__ __forceinline__ float unary_grad(float v, float g) {
  if constexpr (OP == U_NEG) return neg_f(g);
  else if constexpr (OP == U_EXP) return g * v;
  else if constexpr (OP == U_LOG) return g / v;
  else if constexpr (OP == U_SQRT) return g * 0.5f / v;
  else if constexpr (OP == U_RSQRT) return g * -0.5f * v * v * v;
  else if constexpr (OP == U_ABS) return v > 0.0f ? g : (v < 0.0f ? neg_f(g) : 0.0f);
  else if constexpr (OP == U_SILU) {
    float s = 1.0f / (1.0f + fast_exp(-v));
    return g * s * fmaf(v, 1.0f - s, 1.0f);
  } else if constexpr (OP == U_GELU_ERF) {
    float cdf = 0.5f * (1.0f + erf_f(v * 0.70710678118654752f));
    float pdf = 0.3989422804014327f * exp_f(-0.5f * v * v);
    return g * fmaf(v, pdf, cdf);
  } else if constexpr (OP == U_GELU_TANH) {
    float t = tanh_f(gelu_tanh_inner(v));
    float dinner = kSqrt2OverPi * fmaf(3.0f * kGeluCubic * v, v, 1.0f);
    return g * fmaf(0.5f, 1.0f + t, 0.5f * v * fmaf(-t, t, 1.0f) * dinner);
  } else if constexpr (OP == U_SIGMOID) return g * v * (1.0f - v);
  else if constexpr (OP == U_TANH) return g * fmaf(-v, v, 1.0f);
  else if constexpr (OP == U_SOFTPLUS) return v > 20.0f ? g : g / (1.0f + fast_exp(-v));
  else if constexpr (OP == U_RELU) return v > 0.0f ? g : 0.0f;
  else if constexpr (OP == U_SQUARE) return 2.0f * v * g;
  else if constexpr (OP == U_RECIPROCAL) return -g * v * v;
  else return 0.0f;  // U_SIGN
}

// Comparisons write u8 0/1.
template <int OP>
using BinaryOut = std::conditional_t<(OP <= B_MIN), float, uint8_t>;

template <int OP>
__device__ __forceinline__ BinaryOut<OP> binary_op(float x, float y) {
  if constexpr (OP == B_ADD) return x + y;
  else if constexpr (OP == B_SUB) return x - y;
  else if constexpr (OP == B_MUL) return x * y;
  else if constexpr (OP == B_DIV) return x / y;
  else if constexpr (OP == B_POW) return (float)pow((double)x, (double)y);
  else if constexpr (OP == B_MAX) return (x != x || y != y) ? NAN : (x > y ? x : y);  // torch.maximum: NaN wins
  else if constexpr (OP == B_MIN) return (x != x || y != y) ? NAN : (x < y ? x : y);
  else if constexpr (OP == B_EQ) return (uint8_t)(x == y);
  else if constexpr (OP == B_NE) return (uint8_t)(x != y);
  else if constexpr (OP == B_LT) return (uint8_t)(x < y);
  else if constexpr (OP == B_LE) return (uint8_t)(x <= y);
  else if constexpr (OP == B_GT) return (uint8_t)(x > y);
  else return (uint8_t)(x >= y);  // B_GE
}

// ---- flat maps over contiguous f32 ----------------------------------------------------------------

template <int N>
struct Inputs {
  const float* p[N];
};

// out[i] = f(in[0][i], ..., in[N-1][i]); with vec, quads move as float4 and the tail as scalars.
template <int N, typename F>
__global__ void map_kernel(F f, Inputs<N> in, float* out, int64_t n, bool vec) {
  int64_t start = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
  int64_t nq = vec ? n / 4 : 0;
  for (int64_t q = start; q < nq; q += step) {
    float a[N][4];
#pragma unroll
    for (int k = 0; k < N; k++) {
      float4 t = reinterpret_cast<const float4*>(in.p[k])[q];
      a[k][0] = t.x, a[k][1] = t.y, a[k][2] = t.z, a[k][3] = t.w;
    }
    float r[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
      float args[N];
#pragma unroll
      for (int k = 0; k < N; k++) args[k] = a[k][j];
      r[j] = f(args);
    }
    reinterpret_cast<float4*>(out)[q] = make_float4(r[0], r[1], r[2], r[3]);
  }
  for (int64_t i = nq * 4 + start; i < n; i += step) {
    float args[N];
#pragma unroll
    for (int k = 0; k < N; k++) args[k] = in.p[k][i];
    out[i] = f(args);
  }
}

template <int N, typename F>
void launch_map(const char* name, F f, Inputs<N> in, float* out, int64_t n) {
  if (n <= 0) return;
  bool vec = aligned16(out);
  for (int k = 0; k < N; k++) vec = vec && aligned16(in.p[k]);
  cudaStream_t s = cuda::stream();
  map_kernel<N><<<cuda::grid_for(vec ? (n + 3) / 4 : n, kThreads), kThreads, 0, s>>>(f, in, out, n, vec);
  cuda::check_launch(name, cuda::dims({{"n", n}}));
}

template <int OP>
struct UnaryF {
  __device__ float operator()(const float* a) const { return unary_op<OP>(a[0]); }
};
template <int OP>
struct UnaryGradF {
  __device__ float operator()(const float* a) const { return unary_grad<OP>(a[0], a[1]); }
};
struct ClampF {
  float lo, hi;
  __device__ float operator()(const float* a) const {
    float v = a[0];
    float r = v < lo ? lo : v;
    r = r > hi ? hi : r;
    return v != v ? v : r;
  }
};

// Calls fn(std::integral_constant<int, op>) so each op gets its own kernel.
template <typename Fn>
void with_unary_op(int op, Fn fn) {
  switch (op) {
#define TEMPER_CASE(OP) case OP: return fn(std::integral_constant<int, OP>());
    TEMPER_CASE(U_NEG) TEMPER_CASE(U_EXP) TEMPER_CASE(U_LOG) TEMPER_CASE(U_SQRT) TEMPER_CASE(U_RSQRT)
    TEMPER_CASE(U_ABS) TEMPER_CASE(U_SILU) TEMPER_CASE(U_GELU_ERF) TEMPER_CASE(U_GELU_TANH)
    TEMPER_CASE(U_SIGMOID) TEMPER_CASE(U_TANH) TEMPER_CASE(U_SOFTPLUS) TEMPER_CASE(U_RELU)
    TEMPER_CASE(U_SQUARE) TEMPER_CASE(U_RECIPROCAL) TEMPER_CASE(U_SIGN)
#undef TEMPER_CASE
  }
}

// ---- broadcast layouts ------------------------------------------------------------------------------

// The output shape with size-1 dims dropped and neighbours merged where every operand is
// contiguous across them; out is contiguous over it. Passed to kernels by value.
template <int N>
struct Layout {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t stride[N][kMaxDims];

  // Element offsets of flat output index i in each operand.
  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; k++) off[k] = 0;
    for (int d = ndim - 1; d > 0; d--) {
      int64_t c = i % shape[d];
      i /= shape[d];
#pragma unroll
      for (int k = 0; k < N; k++) off[k] += c * stride[k][d];
    }
    if (ndim > 0) {
#pragma unroll
      for (int k = 0; k < N; k++) off[k] += i * stride[k][0];
    }
  }
};

// Returns the element count; throws when the merged shape still has more than kMaxDims dims.
template <int N>
int64_t make_layout(const char* name, const int64_t* shape, int ndim, const int64_t* const (&strides)[N],
                    Layout<N>& L) {
  L.ndim = 0;
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    n *= shape[d];
    if (shape[d] == 1) continue;
    int m = L.ndim;
    bool merge = m > 0;
    for (int k = 0; k < N; k++) merge = merge && L.stride[k][m - 1] == strides[k][d] * shape[d];
    if (merge) {
      L.shape[m - 1] *= shape[d];
      for (int k = 0; k < N; k++) L.stride[k][m - 1] = strides[k][d];
      continue;
    }
    if (m == kMaxDims) throw std::runtime_error(std::string("temper cuda: ") + name + ": more than 8 dims");
    L.shape[m] = shape[d];
    for (int k = 0; k < N; k++) L.stride[k][m] = strides[k][d];
    L.ndim = m + 1;
  }
  return n;
}

// fn(i, off) for every flat output index i.
template <int N, typename F>
__global__ void layout_kernel(F f, Layout<N> L, int64_t n) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[N];
    L.offsets(i, off);
    f(i, off);
  }
}

template <int OP>
struct BinaryF {
  const float* a;
  const float* b;
  BinaryOut<OP>* out;
  __device__ void operator()(int64_t i, const int64_t (&off)[2]) const { out[i] = binary_op<OP>(a[off[0]], b[off[1]]); }
};

struct WhereF {
  const uint8_t* c;
  const float* a;
  const float* b;
  float* out;
  __device__ void operator()(int64_t i, const int64_t (&off)[3]) const { out[i] = c[off[0]] ? a[off[1]] : b[off[2]]; }
};

template <typename T>
struct Vec4;
template <>
struct Vec4<float> {
  using type = float4;
  __device__ static type make(const float* r) { return make_float4(r[0], r[1], r[2], r[3]); }
};
template <>
struct Vec4<uint8_t> {
  using type = uchar4;
  __device__ static type make(const uint8_t* r) { return make_uchar4(r[0], r[1], r[2], r[3]); }
};

__device__ __forceinline__ float4 load4(const float* p, bool bcast, int64_t q) {
  return bcast ? make_float4(p[0], p[0], p[0], p[0]) : reinterpret_cast<const float4*>(p)[q];
}

// The common cases: both operands contiguous or one a scalar, aligned; quads as float4 (uchar4 out).
template <int OP, typename Out>
__global__ void binary_vec_kernel(const float* a, bool a_bcast, const float* b, bool b_bcast, Out* out, int64_t n) {
  int64_t start = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
  int64_t nq = n / 4;
  for (int64_t q = start; q < nq; q += step) {
    float4 x = load4(a, a_bcast, q), y = load4(b, b_bcast, q);
    Out r[4] = {binary_op<OP>(x.x, y.x), binary_op<OP>(x.y, y.y), binary_op<OP>(x.z, y.z), binary_op<OP>(x.w, y.w)};
    reinterpret_cast<typename Vec4<Out>::type*>(out)[q] = Vec4<Out>::make(r);
  }
  for (int64_t i = nq * 4 + start; i < n; i += step) out[i] = binary_op<OP>(a[a_bcast ? 0 : i], b[b_bcast ? 0 : i]);
}

template <int OP>
void binary_launch(const float* a, const int64_t* sa, const float* b, const int64_t* sb, void* out,
                   const int64_t* shape, int ndim) {
  using Out = BinaryOut<OP>;
  Layout<2> L{};
  int64_t n = make_layout<2>("binary_f32", shape, ndim, {sa, sb}, L);
  if (n <= 0) return;
  Out* o = static_cast<Out*>(out);
  cudaStream_t s = cuda::stream();
  int64_t la = L.ndim ? L.stride[0][0] : 0, lb = L.ndim ? L.stride[1][0] : 0;
  bool vec = L.ndim <= 1 && (la == 0 || la == 1) && (lb == 0 || lb == 1) && (la == 0 || aligned16(a)) &&
             (lb == 0 || aligned16(b)) && ((uintptr_t)o % sizeof(typename Vec4<Out>::type)) == 0;
  if (vec) {
    binary_vec_kernel<OP, Out><<<cuda::grid_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(a, la == 0, b, lb == 0, o, n);
  } else {
    layout_kernel<2><<<cuda::grid_for(n, kThreads), kThreads, 0, s>>>(BinaryF<OP>{a, b, o}, L, n);
  }
  cuda::check_launch("binary_f32", cuda::dims({{"op", OP}, {"n", n}, {"ndim", ndim}}));
}

}  // namespace

void unary_f32(int op, const float* x, float* out, int64_t n) {
  with_unary_op(op, [&](auto tag) { launch_map<1>("unary_f32", UnaryF<decltype(tag)::value>{}, Inputs<1>{{x}}, out, n); });
}

void unary_backward_f32(int op, const float* x, const float* y, const float* g, float* dx, int64_t n) {
  with_unary_op(op, [&](auto tag) {
    constexpr int OP = decltype(tag)::value;
    launch_map<2>("unary_backward_f32", UnaryGradF<OP>{}, Inputs<2>{{grad_uses_y<OP>() ? y : x, g}}, dx, n);
  });
}

void clamp_f32(const float* x, float* out, int64_t n, float lo, float hi) {
  launch_map<1>("clamp_f32", ClampF{lo, hi}, Inputs<1>{{x}}, out, n);
}

void binary_f32(int op, const float* a, const int64_t* sa, const float* b, const int64_t* sb, void* out,
                const int64_t* shape, int ndim) {
  switch (op) {
#define TEMPER_CASE(OP) case OP: return binary_launch<OP>(a, sa, b, sb, out, shape, ndim);
    TEMPER_CASE(B_ADD) TEMPER_CASE(B_SUB) TEMPER_CASE(B_MUL) TEMPER_CASE(B_DIV) TEMPER_CASE(B_POW)
    TEMPER_CASE(B_MAX) TEMPER_CASE(B_MIN) TEMPER_CASE(B_EQ) TEMPER_CASE(B_NE) TEMPER_CASE(B_LT)
    TEMPER_CASE(B_LE) TEMPER_CASE(B_GT) TEMPER_CASE(B_GE)
#undef TEMPER_CASE
  }
}

void where_f32(const uint8_t* cond, const int64_t* sc, const float* a, const int64_t* sa, const float* b,
               const int64_t* sb, float* out, const int64_t* shape, int ndim) {
  Layout<3> L{};
  int64_t n = make_layout<3>("where_f32", shape, ndim, {sc, sa, sb}, L);
  if (n <= 0) return;
  layout_kernel<3><<<cuda::grid_for(n, kThreads), kThreads, 0, cuda::stream()>>>(WhereF{cond, a, b, out}, L, n);
  cuda::check_launch("where_f32", cuda::dims({{"n", n}, {"ndim", ndim}}));
}

}  // namespace temper
