// CUDA reduce_f32 and the f32/bf16 reduce entry point (mirrors native/src/reduce.cc and
// dtype_dispatch.cc): x viewed as (outer, R, inner), reduced over R.
// SUM/MEAN/VAR accumulate in double; MAX/MIN/ARGMAX/ARGMIN settle on the element the CPU keeps
// (the first NaN, else the first extremum), so MAX/MIN return that element bit for bit.
// bf16 input is widened exactly, reduced as f32 and the f32 result rounded once to bf16
// (argmax/argmin stay int32), which is the CPU's widen-reduce-round.
// inner == 1 and R >= 32: a warp (R <= 1024) or a block per row, 16-byte loads when aligned.
// Otherwise a 2-D block: x threads take adjacent (outer, inner) columns so loads coalesce and
// y threads split R, which keeps few-column, long-R reductions parallel.
#include <stdexcept>
#include <string>
#include "common.cuh"

namespace temper {
namespace {
using namespace cuda;

struct Arg {
  float v;
  int32_t i;
};

// The element reduce_col keeps: a NaN beats any number, then the larger (kMax) or smaller value,
// then the lower index. A total order, so partial results may be combined in any grouping.
template <bool kMax>
struct PickArg {
  __device__ Arg operator()(Arg a, Arg b) const {
    bool an = a.v != a.v, bn = b.v != b.v;
    if (an != bn) return an ? a : b;
    if (!an && a.v != b.v) return (kMax ? a.v > b.v : a.v < b.v) ? a : b;
    return a.i < b.i ? a : b;
  }
};
struct Add {
  __device__ double operator()(double a, double b) const { return a + b; }
};
// Only for the logsumexp max, which skips NaN like the CPU, so no NaN reaches it.
struct Max {
  __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};

__device__ __forceinline__ float shfl(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ double shfl(double v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ Arg shfl(Arg a, int o) { return {shfl(a.v, o), __shfl_xor_sync(0xffffffffu, a.i, o)}; }

// Butterfly: every lane ends with the same value (the combines are commutative).
template <typename T, typename F>
__device__ T warp_reduce(T v, F f) {
  for (int o = 16; o > 0; o >>= 1) v = f(v, shfl(v, o));
  return v;
}

// Combine slots: one per thread of a ColGroup block (at most 256), one per warp of a row block.
struct Shared {
  double d[256];
  float f[256];
  Arg a[256];
  __device__ double* of(double) { return d; }
  __device__ float* of(float) { return f; }
  __device__ Arg* of(Arg) { return a; }
};

// One contiguous row of S (the stored type) reduced by a warp (kWarp) or by the whole block;
// V is 1 or kPack<S>.
template <bool kWarp, int V, typename S>
struct RowGroup {
  const S* p;
  int64_t R;
  Shared* sh;

  __device__ int lane() const { return kWarp ? threadIdx.x & 31 : threadIdx.x; }
  __device__ bool leader() const { return lane() == 0; }
  template <typename F>
  __device__ void each(F f) const {
    const int64_t step = (int64_t)(kWarp ? 32 : blockDim.x) * V;
    for (int64_t c = (int64_t)lane() * V; c < R; c += step) {
      if constexpr (V > 1) {
        const Vec<S> q = *reinterpret_cast<const Vec<S>*>(p + c);
#pragma unroll
        for (int j = 0; j < V; j++) f(c + j, to_f32(q.v[j]));
      } else {
        f(c, to_f32(p[c]));
      }
    }
  }
  template <typename T, typename F>
  __device__ T all(T v, T identity, F f) const {
    v = warp_reduce(v, f);
    if constexpr (kWarp) {
      return v;
    } else {
      const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
      T* s = sh->of(T{});
      __syncthreads();  // the previous combine has read its slots
      if (lane == 0) s[warp] = v;
      __syncthreads();
      return warp_reduce(lane < (int)(blockDim.x >> 5) ? s[lane] : identity, f);
    }
  }
};

// One (outer, inner) column per threadIdx.x, its R values split over threadIdx.y (a power of two).
// Threads past the last column still join the block-wide combines, with no values.
template <typename S>
struct ColGroup {
  const S* p;
  int64_t n, inner;
  bool live;
  Shared* sh;

  __device__ bool leader() const { return live && threadIdx.y == 0; }
  template <typename F>
  __device__ void each(F f) const {
    for (int64_t r = threadIdx.y; r < n; r += blockDim.y) f(r, to_f32(p[r * inner]));
  }
  template <typename T, typename F>
  __device__ T all(T v, T, F f) const {
    T* s = sh->of(T{});
    const int nx = blockDim.x, at = threadIdx.y * nx + threadIdx.x;
    __syncthreads();  // the previous combine has read its slots
    s[at] = v;
    __syncthreads();
    for (int h = blockDim.y >> 1; h > 0; h >>= 1) {
      if ((int)threadIdx.y < h) s[at] = f(s[at], s[at + h * nx]);
      __syncthreads();
    }
    return s[threadIdx.x];
  }
};

// reduce_col for one output, computed by group g; every thread of g calls it. Values are written
// as T (the input's type), indices as int32.
template <int OP, typename T, class G>
__device__ void reduce_group(const G& g, void* out, int64_t oi, int64_t R, int correction) {
  T* const o = static_cast<T*>(out);
  if constexpr (OP == R_SUM || OP == R_MEAN) {
    double s = 0;
    g.each([&](int64_t, float v) { s += v; });
    s = g.all(s, 0.0, Add{});
    // R == 0: SUM gives 0 and MEAN 0 * inf = NaN, as the CPU's fill.
    if (g.leader()) o[oi] = from_f32<T>((float)(OP == R_MEAN ? s * (1.0 / (double)R) : s));
  } else if constexpr (OP == R_VAR) {
    double s = 0, ss = 0;
    g.each([&](int64_t, float v) { s += v; });
    const double mean = g.all(s, 0.0, Add{}) / (double)R;
    g.each([&](int64_t, float v) {
      double d = v - mean;
      ss += d * d;
    });
    ss = g.all(ss, 0.0, Add{});
    const double denom = (double)R - correction;
    if (g.leader()) o[oi] = from_f32<T>((float)(denom > 0 ? ss / denom : NAN));
  } else if constexpr (OP == R_LOGSUMEXP) {
    float m = -INFINITY;
    g.each([&](int64_t, float v) { m = v > m ? v : m; });
    m = g.all(m, -INFINITY, Max{});
    // No early return for an infinite max: other columns of a ColGroup block still combine.
    const bool finite = !isinf(m);
    double s = 0;
    if (finite) g.each([&](int64_t, float v) { s += exp((double)(v - m)); });
    s = g.all(s, 0.0, Add{});
    if (g.leader()) o[oi] = from_f32<T>(finite ? (float)(m + log(s)) : m);
  } else {
    constexpr bool kMax = OP == R_MAX || OP == R_ARGMAX;
    const PickArg<kMax> pick;
    const Arg none = {kMax ? -INFINITY : INFINITY, INT32_MAX};
    Arg a = none;
    g.each([&](int64_t r, float v) { a = pick(a, Arg{v, (int32_t)r}); });
    a = g.all(a, none, pick);
    if (g.leader()) {
      if constexpr (OP == R_ARGMAX || OP == R_ARGMIN) ((int32_t*)out)[oi] = a.i;
      else o[oi] = from_f32<T>(a.v);
    }
  }
}

template <int OP, bool kWarp, int V, typename T>
__global__ void reduce_rows_kernel(const T* x, void* out, int64_t outer, int64_t R, int correction) {
  __shared__ Shared sh;
  const int64_t per_block = kWarp ? blockDim.x >> 5 : 1;
  const int64_t first = blockIdx.x * per_block + (kWarp ? threadIdx.x >> 5 : 0);
  for (int64_t row = first; row < outer; row += gridDim.x * per_block)
    reduce_group<OP, T>(RowGroup<kWarp, V, T>{x + row * R, R, &sh}, out, row, R, correction);
}

template <int OP, typename T>
__global__ void reduce_cols_kernel(const T* x, void* out, int64_t outer, int64_t R, int64_t inner, int correction) {
  __shared__ Shared sh;
  const int64_t cols = outer * inner;
  for (int64_t c0 = (int64_t)blockIdx.x * blockDim.x; c0 < cols; c0 += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = c0 + threadIdx.x;
    const bool live = c < cols;
    const T* p = live ? x + (c / inner) * R * inner + c % inner : x;
    reduce_group<OP, T>(ColGroup<T>{p, live ? R : 0, inner, live, &sh}, out, c, R, correction);
  }
}

int pow2_at_least(int64_t n, int cap) {
  int p = 1;
  while (p < n && p < cap) p <<= 1;
  return p;
}

template <int OP, typename T>
void launch(const char* name, const T* x, void* out, int64_t outer, int64_t R, int64_t inner, int correction) {
  constexpr int V = kPack<T>;
  cudaStream_t s = stream();
  if (inner == 1 && R >= 32) {
    const bool vec = R % V == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    if (R <= 1024) {
      const unsigned grid = grid_for(outer, 8);  // 8 warps, one row each
      if (vec) reduce_rows_kernel<OP, true, V, T><<<grid, 256, 0, s>>>(x, out, outer, R, correction);
      else reduce_rows_kernel<OP, true, 1, T><<<grid, 256, 0, s>>>(x, out, outer, R, correction);
    } else {
      const int threads = (int)(R / 8 < 512 ? (R / 8 + 31) / 32 * 32 : 512);
      const unsigned grid = grid_for(outer, 1);
      if (vec) reduce_rows_kernel<OP, false, V, T><<<grid, threads, 0, s>>>(x, out, outer, R, correction);
      else reduce_rows_kernel<OP, false, 1, T><<<grid, threads, 0, s>>>(x, out, outer, R, correction);
    }
  } else {
    const int tx = pow2_at_least(outer * inner, 32), ty = pow2_at_least(R, 256 / tx);
    reduce_cols_kernel<OP, T><<<grid_for(outer * inner, tx), dim3(tx, ty), 0, s>>>(x, out, outer, R, inner, correction);
  }
  check_launch(name, dims({{"op", OP}, {"outer", outer}, {"R", R}, {"inner", inner}}));
}

template <typename T>
void reduce_t(const char* name, int op, const T* x, void* out, int64_t outer, int64_t R, int64_t inner,
              int correction) {
  if (outer * inner == 0) return;
  switch (op) {
    case R_SUM: return launch<R_SUM>(name, x, out, outer, R, inner, correction);
    case R_MEAN: return launch<R_MEAN>(name, x, out, outer, R, inner, correction);
    case R_MAX: return launch<R_MAX>(name, x, out, outer, R, inner, correction);
    case R_MIN: return launch<R_MIN>(name, x, out, outer, R, inner, correction);
    case R_LOGSUMEXP: return launch<R_LOGSUMEXP>(name, x, out, outer, R, inner, correction);
    case R_ARGMAX: return launch<R_ARGMAX>(name, x, out, outer, R, inner, correction);
    case R_ARGMIN: return launch<R_ARGMIN>(name, x, out, outer, R, inner, correction);
    case R_VAR: return launch<R_VAR>(name, x, out, outer, R, inner, correction);
  }
}

}  // namespace

void reduce_f32(int op, const float* x, void* out, int64_t outer, int64_t R, int64_t inner, int correction) {
  reduce_t("reduce_f32", op, x, out, outer, R, inner, correction);
}

// dtype 0 f32, 3 bf16 (output bf16, or int32 for argmax/argmin).
void reduce(int op, const void* x, void* out, int64_t outer, int64_t R, int64_t inner, int correction, int dtype) {
  if (dtype == 0) return reduce_f32(op, static_cast<const float*>(x), out, outer, R, inner, correction);
  if (dtype != 3) bad_dtype("reduce", dtype);
  reduce_t("reduce_bf16", op, static_cast<const bf16*>(x), out, outer, R, inner, correction);
}

}  // namespace temper
