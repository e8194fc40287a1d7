// Rotary position embedding in the HF rotate_half convention on x (B, T, H, D), forward or inverse,
// on the GPU; mirrors native/src/rotary.cc. One block per (b, t) row builds the row's cos/sin table
// in shared memory (in tiles of D/2) and applies it to all H heads. The angle is the f32 product
// float(pos) * inv_freq; its cos/sin are taken in double and rounded, which matches glibc's cosf/sinf
// far more often than CUDA's 2-ulp cosf/sinf. The rotation keeps the FMAs of the CPU's AVX2/AVX-512
// build. For odd D the last element of each head is left untouched, as on the CPU. x and out may
// also be bf16: f32 math on the widened values, one round-to-nearest-even per output.
#include <stdexcept>
#include <string>
#include <type_traits>
#include "common.cuh"

namespace temper {

namespace {
using cuda::bf16;
using cuda::from_f32;
using cuda::Pack;
using cuda::to_f32;

constexpr int kTile = 1024;  // table entries per tile (8 KB of shared memory)
constexpr int kThreads = 256;

// out may alias x exactly: each thread reads its pairs (i, i + D/2) in full before writing them,
// so x and out are deliberately not __restrict__.
template <int W, typename T>
__global__ void rotary_kernel(const T* x, const int32_t* positions, const float* inv_freq, T* out, int64_t rows,
                              int64_t H, int64_t D, float scaling, int inverse) {
  __shared__ float cs[kTile], sn[kTile];
  const int64_t half = D / 2;
  for (int64_t bt = blockIdx.x; bt < rows; bt += gridDim.x) {
    // The CPU's bf16 op stores its whole widened buffer, so the element odd D skips is x rounded
    // back (a signalling NaN turns quiet); in f32 it stays untouched.
    if constexpr (std::is_same_v<T, bf16>) {
      if (D % 2)
        for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
          const int64_t o = (bt * H + h) * D + D - 1;
          out[o] = from_f32<T>(to_f32(x[o]));
        }
    }
    const float pos = (float)positions[bt];
    for (int64_t i0 = 0; i0 < half; i0 += kTile) {
      const int len = (int)min((int64_t)kTile, half - i0);
      __syncthreads();  // the previous tile's readers are done
      for (int i = threadIdx.x; i < len; i += blockDim.x) {
        double s, c;
        sincos((double)(pos * inv_freq[i0 + i]), &s, &c);
        const float sv = (float)s * scaling;
        cs[i] = (float)c * scaling;
        sn[i] = inverse ? -sv : sv;
      }
      __syncthreads();
      const int lv = len / W;  // W divides len: W > 1 only when it divides D/2
      for (int64_t k = threadIdx.x; k < H * lv; k += blockDim.x) {
        const int64_t h = k / lv;
        const int i = (int)(k - h * lv) * W;
        const int64_t o = (bt * H + h) * D + i0 + i;
        const Pack<T, W> a = *reinterpret_cast<const Pack<T, W>*>(x + o);
        const Pack<T, W> b = *reinterpret_cast<const Pack<T, W>*>(x + o + half);
        Pack<T, W> ya, yb;
#pragma unroll
        for (int q = 0; q < W; q++) {
          const float c = cs[i + q], s = sn[i + q], av = to_f32(a.v[q]), bv = to_f32(b.v[q]);
          ya.v[q] = from_f32<T>(fmaf(av, c, -__fmul_rn(bv, s)));
          yb.v[q] = from_f32<T>(fmaf(bv, c, __fmul_rn(av, s)));
        }
        *reinterpret_cast<Pack<T, W>*>(out + o) = ya;
        *reinterpret_cast<Pack<T, W>*>(out + o + half) = yb;
      }
    }
  }
}

template <typename S>
void launch(const S* x, const int32_t* positions, const float* inv_freq, S* out, int64_t B, int64_t T, int64_t H,
            int64_t D, float scaling, int inverse, const char* op) {
  const int64_t rows = B * T;
  // bf16 still has the odd last element to round back when D == 1.
  if (rows == 0 || H == 0 || D < (std::is_same_v<S, bf16> ? 1 : 2)) return;
  // 16-byte vectors (4 floats, 8 bf16) need V | D/2 and an even D, so every head and its second half
  // start 16-byte aligned.
  constexpr int V = 16 / sizeof(S);
  const bool vec = D % (2 * V) == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0 &&
                   (reinterpret_cast<uintptr_t>(out) & 15) == 0;
  const unsigned grid = cuda::grid_for(rows, 1);
  if (vec)
    rotary_kernel<V><<<grid, kThreads, 0, cuda::stream()>>>(x, positions, inv_freq, out, rows, H, D, scaling, inverse);
  else
    rotary_kernel<1><<<grid, kThreads, 0, cuda::stream()>>>(x, positions, inv_freq, out, rows, H, D, scaling, inverse);
  cuda::check_launch(op, cuda::dims({{"B", B}, {"T", T}, {"H", H}, {"D", D}}));
}

}  // namespace

void rotary_f32(const float* x, const int32_t* positions, const float* inv_freq, float* out, int64_t B, int64_t T,
                int64_t H, int64_t D, float scaling, int inverse) {
  launch(x, positions, inv_freq, out, B, T, H, D, scaling, inverse, "rotary_f32");
}

void rotary(const void* x, const int32_t* positions, const float* inv_freq, void* out, int64_t B, int64_t T, int64_t H,
            int64_t D, float scaling, int inverse, int dtype) {
  if (dtype == 0)
    return rotary_f32(static_cast<const float*>(x), positions, inv_freq, static_cast<float*>(out), B, T, H, D, scaling,
                      inverse);
  if (dtype != 3) cuda::bad_dtype("rotary", dtype);
  launch(static_cast<const bf16*>(x), positions, inv_freq, static_cast<bf16*>(out), B, T, H, D, scaling, inverse,
         "rotary_bf16");
}

}  // namespace temper
