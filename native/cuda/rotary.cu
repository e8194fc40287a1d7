// Rotary position embedding in the HF rotate_half convention on x (B, T, H, D), forward or inverse,
// on the GPU; mirrors native/src/rotary.cc. One block per (b, t) row builds the row's cos/sin table
// in shared memory (in tiles of D/2) and applies it to all H heads. The angle is the f32 product
// float(pos) * inv_freq; its cos/sin are taken in double and rounded, which matches glibc's cosf/sinf
// far more often than CUDA's 2-ulp cosf/sinf. The rotation keeps the FMAs of the CPU's AVX2/AVX-512
// build. For odd D the last element of each head is left untouched, as on the CPU.
#include "common.cuh"

namespace temper {

namespace {

constexpr int kTile = 1024;  // table entries per tile (8 KB of shared memory)
constexpr int kThreads = 256;

template <int W>
struct alignas(4 * W) Floats {
  float v[W];
};

// out may alias x exactly: each thread reads its pairs (i, i + D/2) in full before writing them,
// so x and out are deliberately not __restrict__.
template <int W>
__global__ void rotary_kernel(const float* x, const int32_t* positions, const float* inv_freq, float* out,
                              int64_t rows, int64_t H, int64_t D, float scaling, int inverse) {
  __shared__ float cs[kTile], sn[kTile];
  const int64_t half = D / 2;
  for (int64_t bt = blockIdx.x; bt < rows; bt += gridDim.x) {
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
        const Floats<W> a = *reinterpret_cast<const Floats<W>*>(x + o);
        const Floats<W> b = *reinterpret_cast<const Floats<W>*>(x + o + half);
        Floats<W> ya, yb;
#pragma unroll
        for (int q = 0; q < W; q++) {
          const float c = cs[i + q], s = sn[i + q];
          ya.v[q] = fmaf(a.v[q], c, -__fmul_rn(b.v[q], s));
          yb.v[q] = fmaf(b.v[q], c, __fmul_rn(a.v[q], s));
        }
        *reinterpret_cast<Floats<W>*>(out + o) = ya;
        *reinterpret_cast<Floats<W>*>(out + o + half) = yb;
      }
    }
  }
}

}  // namespace

void rotary_f32(const float* x, const int32_t* positions, const float* inv_freq, float* out, int64_t B, int64_t T,
                int64_t H, int64_t D, float scaling, int inverse) {
  const int64_t rows = B * T;
  if (rows == 0 || H == 0 || D < 2) return;
  // float4 needs D/2 % 4 == 0 and an even D, so every head and its second half start 16-byte aligned.
  const bool vec = D % 8 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0 && (reinterpret_cast<uintptr_t>(out) & 15) == 0;
  const unsigned grid = cuda::grid_for(rows, 1);
  if (vec)
    rotary_kernel<4><<<grid, kThreads, 0, cuda::stream()>>>(x, positions, inv_freq, out, rows, H, D, scaling, inverse);
  else
    rotary_kernel<1><<<grid, kThreads, 0, cuda::stream()>>>(x, positions, inv_freq, out, rows, H, D, scaling, inverse);
  cuda::check_launch("rotary_f32", cuda::dims({{"B", B}, {"T", T}, {"H", H}, {"D", D}}));
}

}  // namespace temper
