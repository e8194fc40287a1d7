// CUDA elementwise kernels (native/src/elementwise.cc on the GPU): unary ops and their backward,
// clamp, broadcast binary ops (comparisons write u8) and where, plus the f32/bf16 dtype entry
// points of kernels.h. Kernels are templated on the storage type: bf16 is widened exactly on load,
// computed in f32 like the f32 kernel and rounded once on store, as dtype_dispatch.cc defines it.
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
using cuda::kPack;
using cuda::fast_exp;
using cuda::aligned16;
using cuda::bf16;
using cuda::from_f32;
using cuda::Pack;
using cuda::to_f32;

constexpr int kThreads = 256;
constexpr int kMaxDims = 8;

// ---- storage types ------------------------------------------------------------------------------

constexpr int kF32 = 0, kBF16 = 3;

void check_dtype(int dtype, const char* op) {
  if (dtype != kF32 && dtype != kBF16) cuda::bad_dtype(op, dtype);
}

// ---- scalar math --------------------------------------------------------------------------------

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

// Comparisons write u8 0/1; arithmetic writes the operands' storage type T.
template <int OP, typename T = float>
using BinaryOut = std::conditional_t<(OP <= B_MIN), T, uint8_t>;

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

// ---- flat maps over contiguous buffers -----------------------------------------------------------

template <int N, typename T>
struct Inputs {
  const T* p[N];
};

// out[i] = f(in[0][i], ..., in[N-1][i]); with vec, 16-byte packs move at once and the tail as scalars.
template <int N, typename T, typename F>
__global__ void map_kernel(F f, Inputs<N, T> in, T* out, int64_t n, bool vec) {
  constexpr int W = kPack<T>;
  using P = Pack<T, W>;
  int64_t start = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
  int64_t nq = vec ? n / W : 0;
  for (int64_t q = start; q < nq; q += step) {
    P a[N];
#pragma unroll
    for (int k = 0; k < N; k++) a[k] = reinterpret_cast<const P*>(in.p[k])[q];
    P r;
#pragma unroll
    for (int j = 0; j < W; j++) {
      float args[N];
#pragma unroll
      for (int k = 0; k < N; k++) args[k] = to_f32(a[k].v[j]);
      r.v[j] = from_f32<T>(f(args));
    }
    reinterpret_cast<P*>(out)[q] = r;
  }
  for (int64_t i = nq * W + start; i < n; i += step) {
    float args[N];
#pragma unroll
    for (int k = 0; k < N; k++) args[k] = to_f32(in.p[k][i]);
    out[i] = from_f32<T>(f(args));
  }
}

template <int N, typename T, typename F>
void launch_map(const char* name, F f, Inputs<N, T> in, T* out, int64_t n) {
  if (n <= 0) return;
  constexpr int W = kPack<T>;
  bool vec = aligned16(out);
  for (int k = 0; k < N; k++) vec = vec && aligned16(in.p[k]);
  cudaStream_t s = cuda::stream();
  map_kernel<N, T><<<cuda::grid_for(vec ? (n + W - 1) / W : n, kThreads), kThreads, 0, s>>>(f, in, out, n, vec);
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

// binary_op on two stored values; arithmetic results stored as T, comparisons as u8.
template <int OP, typename T>
__device__ __forceinline__ BinaryOut<OP, T> binary_at(T x, T y) {
  if constexpr (OP <= B_MIN) return from_f32<T>(binary_op<OP>(to_f32(x), to_f32(y)));
  else return binary_op<OP>(to_f32(x), to_f32(y));
}

template <int OP, typename T>
struct BinaryF {
  const T* a;
  const T* b;
  BinaryOut<OP, T>* out;
  __device__ void operator()(int64_t i, const int64_t (&off)[2]) const { out[i] = binary_at<OP>(a[off[0]], b[off[1]]); }
};

// The selected value goes through f32 like every other bf16 result, so a signalling NaN is quieted
// as the CPU's widen-and-round does.
template <typename T>
struct WhereF {
  const uint8_t* c;
  const T* a;
  const T* b;
  T* out;
  __device__ void operator()(int64_t i, const int64_t (&off)[3]) const {
    out[i] = from_f32<T>(to_f32(c[off[0]] ? a[off[1]] : b[off[2]]));
  }
};

template <typename T>
__device__ __forceinline__ Pack<T, kPack<T>> load_pack(const T* p, bool bcast, int64_t q) {
  using P = Pack<T, kPack<T>>;
  if (!bcast) return reinterpret_cast<const P*>(p)[q];
  P r;
#pragma unroll
  for (int j = 0; j < kPack<T>; j++) r.v[j] = p[0];
  return r;
}

// The common cases: both operands contiguous or one a scalar, aligned; operands move in 16-byte
// packs, the output in packs of as many elements.
template <int OP, typename T>
__global__ void binary_vec_kernel(const T* a, bool a_bcast, const T* b, bool b_bcast, BinaryOut<OP, T>* out,
                                  int64_t n) {
  constexpr int W = kPack<T>;
  using OutPack = Pack<BinaryOut<OP, T>, W>;
  int64_t start = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
  int64_t nq = n / W;
  for (int64_t q = start; q < nq; q += step) {
    Pack<T, W> x = load_pack(a, a_bcast, q), y = load_pack(b, b_bcast, q);
    OutPack r;
#pragma unroll
    for (int j = 0; j < W; j++) r.v[j] = binary_at<OP>(x.v[j], y.v[j]);
    reinterpret_cast<OutPack*>(out)[q] = r;
  }
  for (int64_t i = nq * W + start; i < n; i += step) out[i] = binary_at<OP>(a[a_bcast ? 0 : i], b[b_bcast ? 0 : i]);
}

template <int OP, typename T>
void binary_launch(const char* name, const T* a, const int64_t* sa, const T* b, const int64_t* sb, void* out,
                   const int64_t* shape, int ndim) {
  using Out = BinaryOut<OP, T>;
  constexpr int W = kPack<T>;
  Layout<2> L{};
  int64_t n = make_layout<2>(name, shape, ndim, {sa, sb}, L);
  if (n <= 0) return;
  Out* o = static_cast<Out*>(out);
  cudaStream_t s = cuda::stream();
  int64_t la = L.ndim ? L.stride[0][0] : 0, lb = L.ndim ? L.stride[1][0] : 0;
  bool vec = L.ndim <= 1 && (la == 0 || la == 1) && (lb == 0 || lb == 1) && (la == 0 || aligned16(a)) &&
             (lb == 0 || aligned16(b)) && ((uintptr_t)o % sizeof(Pack<Out, W>)) == 0;
  if (vec) {
    binary_vec_kernel<OP, T><<<cuda::grid_for((n + W - 1) / W, kThreads), kThreads, 0, s>>>(a, la == 0, b, lb == 0, o, n);
  } else {
    layout_kernel<2><<<cuda::grid_for(n, kThreads), kThreads, 0, s>>>(BinaryF<OP, T>{a, b, o}, L, n);
  }
  cuda::check_launch(name, cuda::dims({{"op", OP}, {"n", n}, {"ndim", ndim}}));
}

template <typename T>
void binary_t(const char* name, int op, const T* a, const int64_t* sa, const T* b, const int64_t* sb, void* out,
              const int64_t* shape, int ndim) {
  switch (op) {
#define TEMPER_CASE(OP) case OP: return binary_launch<OP, T>(name, a, sa, b, sb, out, shape, ndim);
    TEMPER_CASE(B_ADD) TEMPER_CASE(B_SUB) TEMPER_CASE(B_MUL) TEMPER_CASE(B_DIV) TEMPER_CASE(B_POW)
    TEMPER_CASE(B_MAX) TEMPER_CASE(B_MIN) TEMPER_CASE(B_EQ) TEMPER_CASE(B_NE) TEMPER_CASE(B_LT)
    TEMPER_CASE(B_LE) TEMPER_CASE(B_GT) TEMPER_CASE(B_GE)
#undef TEMPER_CASE
  }
}

template <typename T>
void unary_t(const char* name, int op, const T* x, T* out, int64_t n) {
  with_unary_op(op, [&](auto tag) { launch_map<1, T>(name, UnaryF<decltype(tag)::value>{}, {{x}}, out, n); });
}

template <typename T>
void where_t(const char* name, const uint8_t* cond, const int64_t* sc, const T* a, const int64_t* sa, const T* b,
             const int64_t* sb, T* out, const int64_t* shape, int ndim) {
  Layout<3> L{};
  int64_t n = make_layout<3>(name, shape, ndim, {sc, sa, sb}, L);
  if (n <= 0) return;
  layout_kernel<3><<<cuda::grid_for(n, kThreads), kThreads, 0, cuda::stream()>>>(WhereF<T>{cond, a, b, out}, L, n);
  cuda::check_launch(name, cuda::dims({{"n", n}, {"ndim", ndim}}));
}

}  // namespace

void unary_f32(int op, const float* x, float* out, int64_t n) { unary_t("unary_f32", op, x, out, n); }

void unary_backward_f32(int op, const float* x, const float* y, const float* g, float* dx, int64_t n) {
  with_unary_op(op, [&](auto tag) {
    constexpr int OP = decltype(tag)::value;
    launch_map<2, float>("unary_backward_f32", UnaryGradF<OP>{}, {{grad_uses_y<OP>() ? y : x, g}}, dx, n);
  });
}

void clamp_f32(const float* x, float* out, int64_t n, float lo, float hi) {
  launch_map<1, float>("clamp_f32", ClampF{lo, hi}, {{x}}, out, n);
}

void binary_f32(int op, const float* a, const int64_t* sa, const float* b, const int64_t* sb, void* out,
                const int64_t* shape, int ndim) {
  binary_t("binary_f32", op, a, sa, b, sb, out, shape, ndim);
}

void where_f32(const uint8_t* cond, const int64_t* sc, const float* a, const int64_t* sa, const float* b,
               const int64_t* sb, float* out, const int64_t* shape, int ndim) {
  where_t("where_f32", cond, sc, a, sa, b, sb, out, shape, ndim);
}

// ---- dtype entry points: f32 as above, bf16 natively ------------------------------------------------

void unary(int op, const void* x, void* out, int64_t n, int dtype) {
  check_dtype(dtype, "unary");
  if (dtype == kF32) return unary_f32(op, static_cast<const float*>(x), static_cast<float*>(out), n);
  unary_t("unary_bf16", op, static_cast<const bf16*>(x), static_cast<bf16*>(out), n);
}

void clamp(const void* x, void* out, int64_t n, float lo, float hi, int dtype) {
  check_dtype(dtype, "clamp");
  if (dtype == kF32) return clamp_f32(static_cast<const float*>(x), static_cast<float*>(out), n, lo, hi);
  launch_map<1, bf16>("clamp_bf16", ClampF{lo, hi}, {{static_cast<const bf16*>(x)}}, static_cast<bf16*>(out), n);
}

void binary(int op, const void* a, const int64_t* sa, const void* b, const int64_t* sb, void* out, const int64_t* shape,
            int ndim, int dtype) {
  check_dtype(dtype, "binary");
  if (dtype == kF32)
    return binary_f32(op, static_cast<const float*>(a), sa, static_cast<const float*>(b), sb, out, shape, ndim);
  binary_t("binary_bf16", op, static_cast<const bf16*>(a), sa, static_cast<const bf16*>(b), sb, out, shape, ndim);
}

void where(const uint8_t* cond, const int64_t* sc, const void* a, const int64_t* sa, const void* b, const int64_t* sb,
           void* out, const int64_t* shape, int ndim, int dtype) {
  check_dtype(dtype, "where");
  if (dtype == kF32)
    return where_f32(cond, sc, static_cast<const float*>(a), sa, static_cast<const float*>(b), sb,
                     static_cast<float*>(out), shape, ndim);
  where_t("where_bf16", cond, sc, static_cast<const bf16*>(a), sa, static_cast<const bf16*>(b), sb,
          static_cast<bf16*>(out), shape, ndim);
}

}  // namespace temper
