// Shared by the CUDA kernels: the current stream, error checks that name the op and its
// shapes, launch geometry, and block/warp reductions. Kernels implement native/src/kernels.h
// with device pointers; every launch goes on stream() and is checked with check_launch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include "../src/kernels.h"

namespace temper::cuda {

// Devices a process can address (per-device state is a fixed array of this size).
constexpr int kMaxDevices = 16;

// The stream of the current device (one per device; created on first use).
cudaStream_t stream();
int current_device();
int sm_count();

// Throws std::runtime_error "temper cuda: <op> (<detail>): <cuda error name>: <message>".
[[noreturn]] void fail(const char* op, const std::string& detail, cudaError_t err);
inline void check(cudaError_t err, const char* op, const std::string& detail = "") {
  if (err != cudaSuccess) fail(op, detail, err);
}
// After a kernel launch: launch-configuration errors throw here. Faults inside a kernel surface at
// the next synchronizing call; with TEMPER_CUDA_SYNC=1 every launch synchronizes so they name their op.
void check_launch(const char* op, const std::string& detail = "");

// Throws std::invalid_argument "temper cuda: <op>: dtype code N is not f32 or bf16".
[[noreturn]] void bad_dtype(const char* op, int dtype);

// "N=4, C=7" for error messages.
std::string dims(std::initializer_list<std::pair<const char*, int64_t>> d);

// Temporary device memory from the caching allocator (counted in live bytes while held).
void* scratch_alloc(size_t nbytes);
void scratch_free(void* p, size_t nbytes);

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never more than needed.
inline unsigned grid_for(int64_t n, int threads = 256) {
  int64_t need = (n + threads - 1) / threads;
  int64_t cap = (int64_t)sm_count() * 32;
  if (need < 1) need = 1;
  return (unsigned)(need < cap ? need : cap);
}

// ---- storage types: f32 and bf16 kernels share one template; math is always f32 ----
using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
// Round to nearest even, as the CPU's cast; a NaN keeps its sign and top payload bits and turns
// quiet there, where the hardware conversion would give the canonical NaN.
template <>
__device__ __forceinline__ bf16 from_f32<bf16>(float v) {
  const unsigned u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __ushort_as_bfloat16((unsigned short)((u >> 16) | 0x40u));
  return __float2bfloat16_rn(v);
}

// W consecutive elements moved by one load or store of their combined width (16 bytes: 4 f32, 8 bf16).
template <typename T, int W>
struct alignas(sizeof(T) * W) Pack {
  T v[W];
};

// Elements of T per 16-byte load (4 f32 or 8 bf16), and such a load.
template <typename T>
constexpr int kPack = 16 / sizeof(T);
template <typename T>
using Vec = Pack<T, kPack<T>>;

// W values at p widened to f32 (p aligned to W elements), and the reverse with one rounding each.
template <int W, typename T>
__device__ __forceinline__ Pack<float, W> load_pack(const T* p) {
  const Pack<T, W> s = *reinterpret_cast<const Pack<T, W>*>(p);
  Pack<float, W> f;
#pragma unroll
  for (int q = 0; q < W; q++) f.v[q] = to_f32(s.v[q]);
  return f;
}
template <int W, typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<float, W>& f) {
  Pack<T, W> s;
#pragma unroll
  for (int q = 0; q < W; q++) s.v[q] = from_f32<T>(f.v[q]);
  *reinterpret_cast<Pack<T, W>*>(p) = s;
}

// Whether a pointer allows 16-byte vector loads (a null pointer is never dereferenced).
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// native/src/simd.h's fast_exp, with the contractions GCC makes in its AVX2/AVX-512 builds spelled
// out (fmaf where it fuses, _rn intrinsics where it must not), so results are the CPU's bits.
__device__ __forceinline__ float fast_exp(float x) {
  const float hi = 88.72283935546875f, lo = -103.972084045410f;
  const float xc = x < hi ? (x > lo ? x : lo) : hi;  // NaN becomes hi here, restored below
  const float n = rintf(__fmul_rn(xc, 1.44269504088896341f));
  float r = fmaf(-n, 0.693359375f, xc);
  r = fmaf(n, 2.12194440e-4f, r);
  float p = fmaf(1.9875691500e-4f, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  p = __fadd_rn(fmaf(__fmul_rn(p, r), r, r), 1.0f);
  // 2^n via two halves so n down to -150 (subnormals) stays exact enough.
  const int ni = (int)n, n1 = ni >> 1, n2 = ni - n1;
  float res = __fmul_rn(__fmul_rn(p, __int_as_float((n1 + 127) << 23)), __int_as_float((n2 + 127) << 23));
  res = x > hi ? INFINITY : res;
  res = x < lo ? 0.0f : res;
  return x != x ? x : res;
}

// Sum over a warp, result in every lane.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) {
    T w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024), result returned to every thread.
// `shared` holds at least 32 T. Contains __syncthreads: call from all threads.
template <typename T>
__device__ T block_sum(T v, T* shared) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? shared[lane] : T(0);
  return warp_sum(r);
}
template <typename T>
__device__ T block_max(T v, T* shared, T lowest) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? shared[lane] : lowest;
  return warp_max(r);
}

// Records the first bad position of an index kernel: kernels call report() with the position,
// the host reads result() (a synchronizing copy) as kernels.h's "-(pos+1) or 0" code.
class BadIndex {
 public:
  BadIndex();
  ~BadIndex();
  unsigned long long* device() const { return flag_; }
  int64_t result(const char* op, const std::string& detail);  // 0, or -(first bad pos + 1)

 private:
  unsigned long long* flag_;
};
__device__ __forceinline__ void report_bad_index(unsigned long long* flag, int64_t pos) {
  atomicMin(flag, (unsigned long long)pos);
}

}  // namespace temper::cuda
