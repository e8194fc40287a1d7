// Fused cross-entropy with label smoothing and ignore_index over logits (N rows, V vocab) on the
// GPU; mirrors native/src/cross_entropy.cc. Forward: labels are checked first (nothing is written on
// a bad one), then one block per row takes the row max, then sum exp(x - max), in two passes.
// Backward: one block per row writes every dlogit. exp is the CPU's fast_exp, FMAs included, so
// the backward is bitwise the CPU's for the same lse; the forward differs only by summation order.
// The forward also reads bf16 logits (widened to f32 on load; loss and lse stay f32).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include "common.cuh"

namespace temper {

namespace {
using cuda::load_pack;
using cuda::fast_exp;
using cuda::aligned16;
using cuda::bf16;
using cuda::from_f32;
using cuda::Pack;
using cuda::to_f32;

using cuda::block_max;
using cuda::block_sum;

template <int W>
using Floats = Pack<float, W>;

// Threads per row block: enough for `work` items, a warp multiple, at most 256.
int row_threads(int64_t work) { return (int)std::min<int64_t>(256, std::max<int64_t>(32, (work + 31) / 32 * 32)); }

__global__ void check_labels_kernel(const int32_t* labels, int64_t N, int64_t V, int32_t ignore_index,
                                    unsigned long long* bad) {
  for (int64_t n = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; n < N; n += (int64_t)gridDim.x * blockDim.x) {
    const int32_t y = labels[n];
    if (y != ignore_index && (y < 0 || y >= V)) cuda::report_bad_index(bad, n);
  }
}

// Ignored rows get loss 0 and lse 0 without reading their logits. A row of all -inf sums to 0
// (the shift is 0, not -inf), so its lse is -inf rather than NaN, as on the CPU.
template <int W, typename T>
__global__ void ce_forward_kernel(const T* logits, const int32_t* labels, float* loss, float* lse, int64_t N, int64_t V,
                                  int32_t ignore_index, float eps) {
  __shared__ float redf[32];
  __shared__ double redd[32];
  const int64_t nv = V / W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int32_t y = labels[n];
    if (y == ignore_index) {
      if (threadIdx.x == 0) loss[n] = 0.0f, lse[n] = 0.0f;
      continue;
    }
    const T* xr = logits + n * V;
    float mx = -INFINITY;
    double sx = 0.0;  // sum x for the smoothing term; double, as the CPU's chunk sums are added
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W);
#pragma unroll
      for (int q = 0; q < W; q++) {
        mx = a.v[q] > mx ? a.v[q] : mx;
        sx += a.v[q];
      }
    }
    mx = block_max(mx, redf, -INFINITY);
    sx = block_sum(sx, redd);
    const float shift = mx == -INFINITY ? 0.0f : mx;
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W);
#pragma unroll
      for (int q = 0; q < W; q++) s += fast_exp(a.v[q] - shift);
    }
    s = block_sum(s, redf);
    if (threadIdx.x == 0) {
      // log in double, rounded: glibc's logf is (nearly always) correctly rounded, CUDA's is 1 ulp.
      const float l = __fadd_rn(mx, (float)log((double)s));
      const float nll = __fsub_rn(l, to_f32(xr[y]));
      lse[n] = l;
      // eps == 0 skips the smoothing term, so a -inf logit (masked vocab) cannot make 0 * inf = NaN.
      loss[n] = eps == 0.0f ? nll
                            : __fadd_rn(__fmul_rn(1.0f - eps, nll), __fmul_rn(eps, __fsub_rn(l, (float)(sx / (double)V))));
    }
  }
}

// dlogits = g * (exp(x - lse) - eps/V), minus g*(1-eps) at the label; ignored rows are zero.
// A bad label (the forward rejects them) matches no column, so it only goes without its term.
template <int W>
__global__ void ce_backward_kernel(const float* logits, const int32_t* labels, const float* lse, const float* g,
                                   float* dlogits, int64_t N, int64_t V, int32_t ignore_index, float eps, float eps_v) {
  const int64_t nv = V / W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* xr = logits + n * V;
    float* dr = dlogits + n * V;
    const int32_t y = labels[n];
    const bool ignored = y == ignore_index;
    const float gi = ignored ? 0.0f : g[n], l = ignored ? 0.0f : lse[n];
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
      Floats<W> o;
      if (ignored) {
#pragma unroll
        for (int q = 0; q < W; q++) o.v[q] = 0.0f;
      } else {
        const Floats<W> a = load_pack<W>(xr + j * W);
#pragma unroll
        for (int q = 0; q < W; q++) {
          float d = __fsub_rn(fast_exp(__fsub_rn(a.v[q], l)), eps_v);
          if (j * W + q == y) d = __fsub_rn(d, 1.0f - eps);
          o.v[q] = __fmul_rn(gi, d);
        }
      }
      *reinterpret_cast<Floats<W>*>(dr + j * W) = o;
    }
  }
}

// Labels first (a bad one returns its code and writes nothing), then the rows.
template <typename T>
int64_t ce_forward(const T* logits, const int32_t* labels, float* loss, float* lse, int64_t N, int64_t V,
                   int32_t ignore_index, float eps, const char* op) {
  if (N == 0) return 0;
  const std::string detail = cuda::dims({{"N", N}, {"V", V}});
  cuda::BadIndex bad;
  check_labels_kernel<<<cuda::grid_for(N), 256, 0, cuda::stream()>>>(labels, N, V, ignore_index, bad.device());
  cuda::check_launch((std::string(op) + " labels").c_str(), detail);
  if (const int64_t code = bad.result(op, detail)) return code;

  constexpr int W = 16 / sizeof(T);  // 4 floats or 8 bf16 per load
  const bool vec = V % W == 0 && aligned16(logits);
  const int threads = row_threads(vec ? V / W : V);
  const unsigned grid = cuda::grid_for(N, 1);
  if (vec)
    ce_forward_kernel<W><<<grid, threads, 0, cuda::stream()>>>(logits, labels, loss, lse, N, V, ignore_index, eps);
  else
    ce_forward_kernel<1><<<grid, threads, 0, cuda::stream()>>>(logits, labels, loss, lse, N, V, ignore_index, eps);
  cuda::check_launch(op, detail);
  return 0;
}

}  // namespace

int64_t cross_entropy_forward_f32(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t N,
                                  int64_t V, int32_t ignore_index, float eps) {
  return ce_forward(logits, labels, loss, lse, N, V, ignore_index, eps, "cross_entropy_forward_f32");
}

void cross_entropy_backward_f32(const float* logits, const int32_t* labels, const float* lse, const float* g,
                                float* dlogits, int64_t N, int64_t V, int32_t ignore_index, float eps) {
  if (N == 0 || V == 0) return;
  const float eps_v = eps / (float)V;
  const bool vec = V % 4 == 0 && aligned16(logits) && aligned16(dlogits);
  const int threads = row_threads(vec ? V / 4 : V);
  const unsigned grid = cuda::grid_for(N, 1);
  if (vec)
    ce_backward_kernel<4><<<grid, threads, 0, cuda::stream()>>>(logits, labels, lse, g, dlogits, N, V, ignore_index,
                                                                 eps, eps_v);
  else
    ce_backward_kernel<1><<<grid, threads, 0, cuda::stream()>>>(logits, labels, lse, g, dlogits, N, V, ignore_index,
                                                                 eps, eps_v);
  cuda::check_launch("cross_entropy_backward_f32", cuda::dims({{"N", N}, {"V", V}}));
}

int64_t cross_entropy_forward(const void* logits, const int32_t* labels, float* loss, float* lse, int64_t N, int64_t V,
                              int32_t ignore_index, float eps, int dtype) {
  if (dtype == 0)
    return cross_entropy_forward_f32(static_cast<const float*>(logits), labels, loss, lse, N, V, ignore_index, eps);
  if (dtype != 3) cuda::bad_dtype("cross_entropy", dtype);
  return ce_forward(static_cast<const bf16*>(logits), labels, loss, lse, N, V, ignore_index, eps,
                    "cross_entropy_forward_bf16");
}

}  // namespace temper
