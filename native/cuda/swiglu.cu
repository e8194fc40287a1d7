// CUDA fused SwiGLU (native/src/swiglu.cc on the GPU): out = silu(gate) * up in one pass (f32 and
// bf16 storage), and the f32 backward recomputing silu from gate. Grid-stride loops move 16-byte
// packs when every pointer is aligned, the tail (or a misaligned view) element by element.
// The math is elementwise.cu's U_SILU and its gradient term for term (cuda::fast_exp, the same
// fmaf where GCC contracts on x86-64-v3/v4), so the f32 results are the CPU's bits.
#include <stdexcept>
#include <string>
#include "common.cuh"

namespace temper {
namespace {
using cuda::kPack;
using cuda::aligned16;
using cuda::bf16;
using cuda::fast_exp;
using cuda::from_f32;
using cuda::Pack;
using cuda::to_f32;

constexpr int kThreads = 256;
constexpr int kF32 = 0, kBF16 = 3;

__device__ __forceinline__ float silu_f(float v) { return v / (1.0f + fast_exp(-v)); }

// silu(gate) * up with the unfused chain's roundings: for bf16, silu(gate) is stored (rounded)
// before the product, as unary then binary do.
template <typename T>
__device__ __forceinline__ T swiglu_at(T gate, T up) {
  const float a = to_f32(from_f32<T>(silu_f(to_f32(gate))));
  return from_f32<T>(a * to_f32(up));
}

template <typename T>
__global__ void swiglu_kernel(const T* gate, const T* up, T* out, int64_t n,
                              bool vec) {
  constexpr int W = kPack<T>;
  using P = Pack<T, W>;
  const int64_t start = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
  const int64_t nq = vec ? n / W : 0;
  for (int64_t q = start; q < nq; q += step) {
    const P a = reinterpret_cast<const P*>(gate)[q], b = reinterpret_cast<const P*>(up)[q];
    P r;
#pragma unroll
    for (int j = 0; j < W; j++) r.v[j] = swiglu_at(a.v[j], b.v[j]);
    reinterpret_cast<P*>(out)[q] = r;
  }
  for (int64_t i = nq * W + start; i < n; i += step) out[i] = swiglu_at(gate[i], up[i]);
}

// dup = g * silu(x);  dgate = (g * up) * s * (1 + x * (1 - s)), s = sigmoid(x): mul's rule, then
// unary_grad<U_SILU> on g * up.
__device__ __forceinline__ void swiglu_grad(float x, float u, float g, float& dgate, float& dup) {
  const float gu = g * u;
  const float s = 1.0f / (1.0f + fast_exp(-x));
  dgate = gu * s * fmaf(x, 1.0f - s, 1.0f);
  dup = g * silu_f(x);
}

__global__ void swiglu_backward_kernel(const float* gate, const float* up,
                                       const float* g, float* dgate,
                                       float* dup, int64_t n, bool vec) {
  using P = Pack<float, 4>;
  const int64_t start = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
  const int64_t nq = vec ? n / 4 : 0;
  for (int64_t q = start; q < nq; q += step) {
    const P x = reinterpret_cast<const P*>(gate)[q], u = reinterpret_cast<const P*>(up)[q],
            gg = reinterpret_cast<const P*>(g)[q];
    P dx, du;
#pragma unroll
    for (int j = 0; j < 4; j++) swiglu_grad(x.v[j], u.v[j], gg.v[j], dx.v[j], du.v[j]);
    reinterpret_cast<P*>(dgate)[q] = dx;
    reinterpret_cast<P*>(dup)[q] = du;
  }
  for (int64_t i = nq * 4 + start; i < n; i += step) swiglu_grad(gate[i], up[i], g[i], dgate[i], dup[i]);
}

template <typename T>
void swiglu_launch(const char* name, const T* gate, const T* up, T* out, int64_t n) {
  if (n <= 0) return;
  constexpr int W = kPack<T>;
  const bool vec = aligned16(gate) && aligned16(up) && aligned16(out);
  swiglu_kernel<T><<<cuda::grid_for(vec ? (n + W - 1) / W : n, kThreads), kThreads, 0, cuda::stream()>>>(gate, up, out,
                                                                                                         n, vec);
  cuda::check_launch(name, cuda::dims({{"n", n}}));
}

}  // namespace

void swiglu(const void* gate, const void* up, void* out, int64_t n, int dtype) {
  if (dtype == kF32)
    return swiglu_launch("swiglu_f32", static_cast<const float*>(gate), static_cast<const float*>(up),
                         static_cast<float*>(out), n);
  if (dtype == kBF16)
    return swiglu_launch("swiglu_bf16", static_cast<const bf16*>(gate), static_cast<const bf16*>(up),
                         static_cast<bf16*>(out), n);
  cuda::bad_dtype("swiglu", dtype);
}

void swiglu_backward_f32(const float* gate, const float* up, const float* g, float* dgate, float* dup, int64_t n) {
  if (n <= 0) return;
  const bool vec = aligned16(gate) && aligned16(up) && aligned16(g) && aligned16(dgate) && aligned16(dup);
  swiglu_backward_kernel<<<cuda::grid_for(vec ? (n + 3) / 4 : n, kThreads), kThreads, 0, cuda::stream()>>>(
      gate, up, g, dgate, dup, n, vec);
  cuda::check_launch("swiglu_backward_f32", cuda::dims({{"n", n}}));
}

}  // namespace temper
