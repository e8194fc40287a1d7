// CUDA copies, fills and dtype casts (native/src/copy.cc on the GPU). Shape and stride arrays are
// host memory; only the data pointers are device pointers. Casts follow the CPU bit for bit: bf16
// rounds to nearest even with quiet NaNs, f32 -> i32 truncates with x86's INT32_MIN for NaN and
// out-of-range values, and integer/bool/bf16 pairs go through f32 as the CPU does.
#include <cstring>
#include <stdexcept>
#include "common.cuh"

namespace temper {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDims = 8;

// ---- strided copy ---------------------------------------------------------------------------------

// The copy shape with size-1 dims dropped and neighbours merged where both sides are contiguous
// across them. Passed to the kernel by value.
struct CopyLayout {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t src[kMaxDims];
  int64_t dst[kMaxDims];
};

int64_t make_layout(const int64_t* shape, int ndim, const int64_t* ss, const int64_t* ds, CopyLayout& L) {
  L.ndim = 0;
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    n *= shape[d];
    if (shape[d] == 1) continue;
    int m = L.ndim;
    if (m > 0 && L.src[m - 1] == ss[d] * shape[d] && L.dst[m - 1] == ds[d] * shape[d]) {
      L.shape[m - 1] *= shape[d];
      L.src[m - 1] = ss[d];
      L.dst[m - 1] = ds[d];
      continue;
    }
    if (m == kMaxDims) throw std::runtime_error("temper cuda: strided_copy: more than 8 dims");
    L.shape[m] = shape[d];
    L.src[m] = ss[d];
    L.dst[m] = ds[d];
    L.ndim = m + 1;
  }
  return n;
}

template <typename T>
__global__ void strided_copy_kernel(const T* src, T* dst, CopyLayout L, int64_t n) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t rem = i, os = 0, od = 0;
    for (int d = L.ndim - 1; d > 0; d--) {
      int64_t c = rem % L.shape[d];
      rem /= L.shape[d];
      os += c * L.src[d];
      od += c * L.dst[d];
    }
    if (L.ndim > 0) {
      os += rem * L.src[0];
      od += rem * L.dst[0];
    }
    dst[od] = src[os];
  }
}

template <typename T>
void strided_copy_t(const void* src, void* dst, const CopyLayout& L, int64_t n) {
  strided_copy_kernel<T><<<cuda::grid_for(n, kThreads), kThreads, 0, cuda::stream()>>>(
      static_cast<const T*>(src), static_cast<T*>(dst), L, n);
  cuda::check_launch("strided_copy", cuda::dims({{"n", n}, {"ndim", L.ndim}, {"elem_size", (int64_t)sizeof(T)}}));
}

// ---- fill -----------------------------------------------------------------------------------------

// f32 and i32 fills both write 32-bit patterns; uint4 stores when out is 16-byte aligned.
__global__ void fill32_kernel(uint32_t* out, int64_t n, uint32_t bits, bool vec) {
  int64_t start = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
  int64_t nq = vec ? n / 4 : 0;
  for (int64_t q = start; q < nq; q += step) reinterpret_cast<uint4*>(out)[q] = make_uint4(bits, bits, bits, bits);
  for (int64_t i = nq * 4 + start; i < n; i += step) out[i] = bits;
}

void fill32(const char* name, void* out, int64_t n, uint32_t bits) {
  if (n <= 0) return;
  bool vec = ((uintptr_t)out & 15) == 0;
  fill32_kernel<<<cuda::grid_for(vec ? (n + 3) / 4 : n, kThreads), kThreads, 0, cuda::stream()>>>(
      static_cast<uint32_t*>(out), n, bits, vec);
  cuda::check_launch(name, cuda::dims({{"n", n}}));
}

// ---- cast -----------------------------------------------------------------------------------------

using bf16_bits = uint16_t;  // dtype 3 is carried as raw bits

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(int32_t v) { return (float)v; }
__device__ __forceinline__ float to_f32(uint8_t v) { return (float)v; }
__device__ __forceinline__ float to_f32(bf16_bits v) { return __uint_as_float((uint32_t)v << 16); }

template <typename D>
__device__ __forceinline__ D from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
// cvttss2si semantics: NaN and values outside [-2^31, 2^31) give INT32_MIN (the GPU would saturate).
template <>
__device__ __forceinline__ int32_t from_f32<int32_t>(float v) {
  return v >= -2147483648.0f && v < 2147483648.0f ? (int32_t)v : INT32_MIN;
}
template <>
__device__ __forceinline__ uint8_t from_f32<uint8_t>(float v) { return (uint8_t)(v != 0.0f); }
template <>
__device__ __forceinline__ bf16_bits from_f32<bf16_bits>(float v) {
  uint32_t u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_bits)((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return (bf16_bits)(u >> 16);
}

template <typename S, typename D>
__global__ void cast_kernel(const S* src, D* dst, int64_t n) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) dst[i] = from_f32<D>(to_f32(src[i]));
}

template <typename S, typename D>
void cast_launch(const void* src, void* dst, int64_t n) {
  cast_kernel<S, D><<<cuda::grid_for(n, kThreads), kThreads, 0, cuda::stream()>>>(static_cast<const S*>(src),
                                                                                   static_cast<D*>(dst), n);
  cuda::check_launch("cast", cuda::dims({{"n", n}}));
}

template <typename S>
void cast_from(const void* src, void* dst, int dst_dtype, int64_t n) {
  switch (dst_dtype) {
    case 0: return cast_launch<S, float>(src, dst, n);
    case 1: return cast_launch<S, int32_t>(src, dst, n);
    case 2: return cast_launch<S, uint8_t>(src, dst, n);
    case 3: return cast_launch<S, bf16_bits>(src, dst, n);
  }
}

int64_t dtype_size(int dtype) { return dtype == 0 || dtype == 1 ? 4 : dtype == 2 ? 1 : 2; }

}  // namespace

void strided_copy(const void* src, const int64_t* ss, void* dst, const int64_t* ds, const int64_t* shape, int ndim,
                  int elem_size) {
  if (elem_size != 1 && elem_size != 2 && elem_size != 4 && elem_size != 8) return;
  CopyLayout L{};
  int64_t n = make_layout(shape, ndim, ss, ds, L);
  if (n <= 0) return;
  if (L.ndim == 0 || (L.ndim == 1 && L.src[0] == 1 && L.dst[0] == 1)) {
    cuda::check(cudaMemcpyAsync(dst, src, (size_t)(n * elem_size), cudaMemcpyDeviceToDevice, cuda::stream()),
                "strided_copy", cuda::dims({{"n", n}, {"elem_size", elem_size}}));
    return;
  }
  switch (elem_size) {
    case 1: return strided_copy_t<uint8_t>(src, dst, L, n);
    case 2: return strided_copy_t<uint16_t>(src, dst, L, n);
    case 4: return strided_copy_t<uint32_t>(src, dst, L, n);
    case 8: return strided_copy_t<uint64_t>(src, dst, L, n);
  }
}

void fill_f32(float* out, int64_t n, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  fill32("fill_f32", out, n, bits);
}
void fill_i32(int32_t* out, int64_t n, int32_t value) { fill32("fill_i32", out, n, (uint32_t)value); }
void fill_u8(uint8_t* out, int64_t n, uint8_t value) {
  if (n <= 0) return;
  cuda::check(cudaMemsetAsync(out, value, (size_t)n, cuda::stream()), "fill_u8", cuda::dims({{"n", n}}));
}

void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n) {
  if (n <= 0 || src_dtype < 0 || src_dtype > 3 || dst_dtype < 0 || dst_dtype > 3) return;
  if (src_dtype == dst_dtype) {
    cuda::check(cudaMemcpyAsync(dst, src, (size_t)(n * dtype_size(src_dtype)), cudaMemcpyDeviceToDevice, cuda::stream()),
                "cast", cuda::dims({{"n", n}}));
    return;
  }
  switch (src_dtype) {
    case 0: return cast_from<float>(src, dst, dst_dtype, n);
    case 1: return cast_from<int32_t>(src, dst, dst_dtype, n);
    case 2: return cast_from<uint8_t>(src, dst, dst_dtype, n);
    case 3: return cast_from<bf16_bits>(src, dst, dst_dtype, n);
  }
}

}  // namespace temper
