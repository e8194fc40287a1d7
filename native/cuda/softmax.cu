// CUDA softmax / log_softmax over the last dim of (N, C), forward and backward (mirrors
// native/src/softmax.cc, including its exp polynomial). Rows up to 1024 go to one warp each;
// longer rows (a vocab of 152k) to one block that loops over the row, re-reading it each pass
// rather than caching it. 16-byte loads and stores (4 f32 or 8 bf16) when C is a multiple of
// them and the buffers are aligned. The forward also takes bf16 (softmax_forward, dtype 3): widened
// exactly on load, computed in f32 as the f32 kernel does, rounded once on store.
#include <stdexcept>
#include <string>
#include <type_traits>
#include "common.cuh"

namespace temper {
namespace {
using namespace cuda;

// V consecutive values (V is 1 or kPack<T>) as f32.
template <int V, typename T>
__device__ __forceinline__ void load(const T* p, float (&v)[V]) {
  if constexpr (V > 1) {
    const Vec<T> q = *reinterpret_cast<const Vec<T>*>(p);
#pragma unroll
    for (int j = 0; j < V; j++) v[j] = to_f32(q.v[j]);
  } else {
    v[0] = to_f32(*p);
  }
}
template <int V, typename T>
__device__ __forceinline__ void store(T* p, const float (&v)[V]) {
  if constexpr (V > 1) {
    Vec<T> q;
#pragma unroll
    for (int j = 0; j < V; j++) q.v[j] = from_f32<T>(v[j]);
    *reinterpret_cast<Vec<T>*>(p) = q;
  } else {
    *p = from_f32<T>(v[0]);
  }
}

// Which rows a thread works on and how its row group combines: a warp (kWarp) or the block.
template <bool kWarp>
struct Rows {
  __device__ int64_t lane() const { return kWarp ? threadIdx.x & 31 : threadIdx.x; }
  __device__ int64_t size() const { return kWarp ? 32 : blockDim.x; }
  __device__ int64_t first() const {
    return kWarp ? (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5) : blockIdx.x;
  }
  __device__ int64_t stride() const { return kWarp ? (int64_t)gridDim.x * (blockDim.x >> 5) : gridDim.x; }
  __device__ float sum(float v, float* sh) const {
    if constexpr (kWarp) return warp_sum(v);
    else return block_sum(v, sh);
  }
  __device__ float max(float v, float* sh) const {
    if constexpr (kWarp) return warp_max(v);
    else return block_max(v, sh, -INFINITY);
  }
  __device__ bool any(bool p) const {
    if constexpr (kWarp) return __any_sync(0xffffffffu, p);
    else return __syncthreads_or(p);
  }
};

template <bool kWarp, int V, typename T>
__global__ void softmax_forward_kernel(const T* x, T* y, int64_t N, int64_t C, int log) {
  __shared__ float sh[32];
  const Rows<kWarp> g;
  const int64_t c0 = g.lane() * V, step = g.size() * V;
  for (int64_t n = g.first(); n < N; n += g.stride()) {
    const T* xr = x + n * C;
    T* yr = y + n * C;
    float m = -INFINITY;
    bool nan = false;
    for (int64_t c = c0; c < C; c += step) {
      float v[V];
      load(xr + c, v);
      for (int j = 0; j < V; j++) {
        m = v[j] > m ? v[j] : m;
        nan |= v[j] != v[j];
      }
    }
    m = g.max(m, sh);
    if (g.any(nan)) {
      float v[V];
      for (int j = 0; j < V; j++) v[j] = NAN;
      for (int64_t c = c0; c < C; c += step) store(yr + c, v);
      continue;
    }
    if (m == -INFINITY) m = 0.0f;  // all -inf row: exp gives 0s, the sum 0 -> NaN like torch
    float s = 0.0f;
    for (int64_t c = c0; c < C; c += step) {
      float v[V];
      load(xr + c, v);
      for (int j = 0; j < V; j++) s += fast_exp(v[j] - m);
    }
    s = g.sum(s, sh);
    // Softmax recomputes exp instead of storing it and re-reading y: one write pass instead of two.
    const float lse = m + logf(s), inv = 1.0f / s;
    for (int64_t c = c0; c < C; c += step) {
      float v[V];
      load(xr + c, v);
      for (int j = 0; j < V; j++) v[j] = log ? v[j] - lse : fast_exp(v[j] - m) * inv;
      store(yr + c, v);
    }
  }
}

template <bool kWarp, int V>
__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx, int64_t N, int64_t C, int log) {
  __shared__ float sh[32];
  const Rows<kWarp> g;
  const int64_t c0 = g.lane() * V, step = g.size() * V;
  for (int64_t n = g.first(); n < N; n += g.stride()) {
    const float* yr = y + n * C;
    const float* gr = dy + n * C;
    float* dr = dx + n * C;
    float s = 0.0f;
    for (int64_t c = c0; c < C; c += step) {
      float a[V], b[V];
      load(gr + c, a);
      if (log) {
        for (int j = 0; j < V; j++) s += a[j];
      } else {
        load(yr + c, b);
        for (int j = 0; j < V; j++) s += a[j] * b[j];
      }
    }
    s = g.sum(s, sh);
    for (int64_t c = c0; c < C; c += step) {
      float a[V], b[V];
      load(gr + c, a);
      load(yr + c, b);
      for (int j = 0; j < V; j++) a[j] = log ? a[j] - fast_exp(b[j]) * s : b[j] * (a[j] - s);
      store(dr + c, a);
    }
  }
}

// Rows of up to 1024 take a warp each (8 per block); longer ones a block of ~C/16 threads.
// vec: VW values per load.
template <int VW, typename Launch>
void launch_rows(int64_t N, int64_t C, bool vec, Launch launch) {
  if (C <= 1024) {
    const unsigned grid = grid_for(N, 8);
    if (vec) launch(std::integral_constant<bool, true>{}, std::integral_constant<int, VW>{}, grid, 256);
    else launch(std::integral_constant<bool, true>{}, std::integral_constant<int, 1>{}, grid, 256);
  } else {
    const int threads = (int)(C / 16 < 1024 ? (C / 16 + 31) / 32 * 32 : 1024);
    const unsigned grid = grid_for(N, 1);
    if (vec) launch(std::integral_constant<bool, false>{}, std::integral_constant<int, VW>{}, grid, threads);
    else launch(std::integral_constant<bool, false>{}, std::integral_constant<int, 1>{}, grid, threads);
  }
}

template <typename T>
void forward(const char* name, const T* x, T* y, int64_t N, int64_t C, int log) {
  if (N * C == 0) return;
  constexpr int VW = kPack<T>;
  const bool vec = C % VW == 0 && aligned16(x) && aligned16(y);
  launch_rows<VW>(N, C, vec, [&](auto warp, auto v, unsigned grid, int threads) {
    softmax_forward_kernel<decltype(warp)::value, decltype(v)::value, T>
        <<<grid, threads, 0, stream()>>>(x, y, N, C, log);
  });
  check_launch(name, dims({{"N", N}, {"C", C}}));
}

}  // namespace

void softmax_forward_f32(const float* x, float* y, int64_t N, int64_t C, int log) {
  forward("softmax_forward_f32", x, y, N, C, log);
}

// dtype 0 f32, 3 bf16.
void softmax_forward(const void* x, void* y, int64_t N, int64_t C, int log, int dtype) {
  if (dtype == 0) return softmax_forward_f32(static_cast<const float*>(x), static_cast<float*>(y), N, C, log);
  if (dtype != 3) bad_dtype("softmax", dtype);
  forward("softmax_forward_bf16", static_cast<const bf16*>(x), static_cast<bf16*>(y), N, C, log);
}

void softmax_backward_f32(const float* y, const float* dy, float* dx, int64_t N, int64_t C, int log) {
  if (N * C == 0) return;
  const bool vec = C % 4 == 0 && aligned16(y) && aligned16(dy) && aligned16(dx);
  launch_rows<kPack<float>>(N, C, vec, [&](auto warp, auto v, unsigned grid, int threads) {
    softmax_backward_kernel<decltype(warp)::value, decltype(v)::value>
        <<<grid, threads, 0, stream()>>>(y, dy, dx, N, C, log);
  });
  check_launch("softmax_backward_f32", dims({{"N", N}, {"C", C}}));
}

}  // namespace temper
