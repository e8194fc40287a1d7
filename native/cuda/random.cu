// CUDA counter-based random numbers (native/src/random.cc on the GPU): Philox4x32-10, element i
// from counter block (offset + i/4), lane i%4, so the GPU draws the CPU's numbers. One thread per
// counter block. The float formulas keep the CPU's order of operations, with __fmul_rn/__dmul_rn
// so nothing is fused into an FMA the x86-64 baseline build does not use.
#include "common.cuh"

namespace temper {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint4 philox(uint64_t ctr, uint64_t key) {
  uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
#pragma unroll
  for (int r = 0; r < 10; r++) {
    uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return make_uint4(c0, c1, c2, c3);
}

// Uniform in [0, 1) with 24 random bits (exact in f32).
__device__ __forceinline__ float u01(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

// Each element sees its own lane x and its partner lane (l ^ 1) y, as on the CPU.
struct Uniform {
  using T = float;
  float lo, hi;
  __device__ float operator()(uint32_t x, uint32_t) const { return lo + __fmul_rn(hi - lo, u01(x)); }
};

// Box-Muller, cosine branch only, in double like the CPU.
struct Normal {
  using T = float;
  float mean, std;
  __device__ float operator()(uint32_t x, uint32_t y) const {
    double u1 = ((double)(x >> 8) + 1.0) / 16777217.0;  // (0, 1]: log stays finite
    double u2 = (double)(y >> 8) / 16777216.0;
    double z = __dmul_rn(sqrt(-2.0 * log(u1)), cos(6.283185307179586 * u2));
    return (float)((double)mean + __dmul_rn((double)std, z));
  }
};

struct Int {
  using T = int32_t;
  int32_t lo;
  uint64_t range;  // hi - lo, 1 when empty
  __device__ int32_t operator()(uint32_t x, uint32_t y) const {
    uint64_t r = ((uint64_t)x << 32) | y;  // 64 bits: modulo bias < 2^-32
    return (int32_t)((int64_t)lo + (int64_t)(r % range));
  }
};

__device__ __forceinline__ void store4(float* p, const float (&v)[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store4(int32_t* p, const int32_t (&v)[4]) {
  *reinterpret_cast<int4*>(p) = make_int4(v[0], v[1], v[2], v[3]);
}

// out[i] = g(lane, partner) over n elements; full blocks store 16 bytes at once when out is aligned.
template <typename G>
__global__ void rand_kernel(G g, typename G::T* out, int64_t n, uint64_t seed, uint64_t offset, bool vec) {
  int64_t blocks = (n + 3) / 4, step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < blocks; b += step) {
    uint4 r = philox(offset + (uint64_t)b, seed);
    typename G::T v[4] = {g(r.x, r.y), g(r.y, r.x), g(r.z, r.w), g(r.w, r.z)};
    int64_t i = b * 4;
    if (vec && i + 4 <= n) {
      store4(out + i, v);
    } else {
      for (int l = 0; l < 4 && i + l < n; l++) out[i + l] = v[l];
    }
  }
}

template <typename G>
void rand_launch(const char* name, G g, typename G::T* out, int64_t n, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  int64_t blocks = (n + 3) / 4;
  bool vec = ((uintptr_t)out & 15) == 0;
  rand_kernel<G><<<cuda::grid_for(blocks, kThreads), kThreads, 0, cuda::stream()>>>(g, out, n, seed, offset, vec);
  cuda::check_launch(name, cuda::dims({{"n", n}}));
}

__global__ void dropout_kernel(const float* x, float* out, float* mask, int64_t n, uint64_t seed, uint64_t offset,
                               float p, float keep_scale, bool vec) {
  int64_t blocks = (n + 3) / 4, step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < blocks; b += step) {
    uint4 r = philox(offset + (uint64_t)b, seed);
    uint32_t lanes[4] = {r.x, r.y, r.z, r.w};
    float m[4];
#pragma unroll
    for (int l = 0; l < 4; l++) m[l] = u01(lanes[l]) >= p ? keep_scale : 0.0f;
    int64_t i = b * 4;
    if (vec && i + 4 <= n) {
      float4 xv = *reinterpret_cast<const float4*>(x + i);
      *reinterpret_cast<float4*>(mask + i) = make_float4(m[0], m[1], m[2], m[3]);
      *reinterpret_cast<float4*>(out + i) = make_float4(xv.x * m[0], xv.y * m[1], xv.z * m[2], xv.w * m[3]);
    } else {
      for (int l = 0; l < 4 && i + l < n; l++) {
        mask[i + l] = m[l];
        out[i + l] = x[i + l] * m[l];
      }
    }
  }
}

}  // namespace

void rand_uniform_f32(float* out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi) {
  rand_launch("rand_uniform_f32", Uniform{lo, hi}, out, n, seed, offset);
}

void rand_normal_f32(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std) {
  rand_launch("rand_normal_f32", Normal{mean, std}, out, n, seed, offset);
}

void rand_int_i32(int32_t* out, int64_t n, uint64_t seed, uint64_t offset, int32_t lo, int32_t hi) {
  uint64_t range = (uint64_t)((int64_t)hi - (int64_t)lo);
  rand_launch("rand_int_i32", Int{lo, range ? range : 1}, out, n, seed, offset);
}

void dropout_f32(const float* x, float* out, float* mask, int64_t n, uint64_t seed, uint64_t offset, float p) {
  if (n <= 0) return;
  float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  bool vec = (((uintptr_t)x | (uintptr_t)out | (uintptr_t)mask) & 15) == 0;
  int64_t blocks = (n + 3) / 4;
  dropout_kernel<<<cuda::grid_for(blocks, kThreads), kThreads, 0, cuda::stream()>>>(x, out, mask, n, seed, offset, p,
                                                                                      keep_scale, vec);
  cuda::check_launch("dropout_f32", cuda::dims({{"n", n}}));
}

}  // namespace temper
