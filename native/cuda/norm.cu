// Fused RMSNorm and LayerNorm over the last dim of x (N rows, C channels), forward and backward, and
// the residual add fused into an RMSNorm (add_rms_norm), on the GPU; mirrors native/src/norm.cc. Row statistics accumulate in double, one block per row. The
// f32 formulas keep the CPU's rounding, including the FMAs GCC contracts in its AVX2/AVX-512 builds,
// so only the order of the double row sums differs. dw/db use the CPU's fixed row blocks (partials
// summed in block order), which makes them deterministic and bitwise equal to the CPU. The forward
// kernels also run on bf16 storage (x, w, b, y; statistics stay f32): f32 math on the widened values
// and one round-to-nearest-even per output, as the CPU's widen / f32 kernel / round definition.
#include <algorithm>
#include <stdexcept>
#include <string>
#include "common.cuh"

namespace temper {

namespace {
using cuda::load_pack;
using cuda::store_pack;
using cuda::aligned16;
using cuda::bf16;
using cuda::from_f32;
using cuda::Pack;
using cuda::to_f32;

using cuda::block_sum;

constexpr int kColThreads = 256;

template <int W>
using Floats = Pack<float, W>;

// LayerNorm's optional w and b: W values at p + i, or W copies of `fill` when p is null (the CPU's
// ones/zeros vectors, so the fused xh*w + b rounds the same).
template <int W, typename T>
__device__ __forceinline__ Floats<W> load_or(const T* p, int64_t i, float fill) {
  if (p) return load_pack<W>(p + i);
  Floats<W> f;
#pragma unroll
  for (int q = 0; q < W; q++) f.v[q] = fill;
  return f;
}

// Threads per row block: enough for `work` items, a warp multiple, at most 256.
int row_threads(int64_t work) { return (int)std::min<int64_t>(256, std::max<int64_t>(32, (work + 31) / 32 * 32)); }

// Same row blocks as the CPU: a function of N only (at most 64 blocks).
int64_t rows_per_block(int64_t N) { return std::max<int64_t>(1, (N + 63) / 64); }

// 1 / sqrt(mean + eps) with IEEE sqrt and division, as the CPU computes it.
__device__ __forceinline__ float inv_std(double sum, int64_t C, float eps) {
  return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn((float)(sum / (double)C), eps)));
}

template <int W, typename T>
__global__ void rms_forward_kernel(const T* x, const T* w, T* y, float* rstd, int64_t N, int64_t C, float eps) {
  __shared__ double red[32];
  const int64_t cv = C / W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    T* yr = y + n * C;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W);
#pragma unroll
      for (int q = 0; q < W; q++) ss += (double)a.v[q] * a.v[q];
    }
    const float r = inv_std(block_sum(ss, red), C, eps);
    if (threadIdx.x == 0) rstd[n] = r;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W), b = load_pack<W>(w + j * W);
      Floats<W> o;
#pragma unroll
      for (int q = 0; q < W; q++) o.v[q] = b.v[q] * (a.v[q] * r);
      store_pack<W>(yr + j * W, o);
    }
  }
}

// Block-row partials (blockIdx.y = row block): part[b * C + c] = sum over the block's rows, in order.
__global__ void rms_dw_partial_kernel(const float* x, const float* rstd, const float* dy, double* part, int64_t N,
                                      int64_t C, int64_t rb) {
  const int64_t b = blockIdx.y, n0 = b * rb, n1 = min(N, n0 + rb);
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (int64_t n = n0; n < n1; n++) acc += (double)(dy[n * C + c] * (x[n * C + c] * rstd[n]));
    part[b * C + c] = acc;
  }
}

// Fused residual add + RMSNorm: sum = x + residual rounded to T and stored, then rms_forward_kernel's
// math on that rounded sum (as the CPU's add, then rms_norm on the stored sum). The second pass
// re-reads the elements this thread wrote in the first (the same j for the same thread).
template <int W, typename T>
__global__ void add_rms_forward_kernel(const T* x, const T* res, const T* w, T* sum, T* y, float* rstd, int64_t N,
                                       int64_t C, float eps) {
  __shared__ double red[32];
  const int64_t cv = C / W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    const T* rr = res + n * C;
    T* sr = sum + n * C;
    T* yr = y + n * C;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W), b = load_pack<W>(rr + j * W);
      Pack<T, W> h;
#pragma unroll
      for (int q = 0; q < W; q++) {
        h.v[q] = from_f32<T>(__fadd_rn(a.v[q], b.v[q]));
        const float v = to_f32(h.v[q]);
        ss += (double)v * v;
      }
      *reinterpret_cast<Pack<T, W>*>(sr + j * W) = h;
    }
    const float r = inv_std(block_sum(ss, red), C, eps);
    if (threadIdx.x == 0) rstd[n] = r;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(static_cast<const T*>(sr) + j * W), b = load_pack<W>(w + j * W);
      Floats<W> o;
#pragma unroll
      for (int q = 0; q < W; q++) o.v[q] = b.v[q] * (a.v[q] * r);
      store_pack<W>(yr + j * W, o);
    }
  }
}

// dx = rstd * (w*dy - x * k), k = mean(w*dy*x) * rstd^2; the CPU fuses w*dy into the subtraction.
// With Sum, the residual stream's gradient g_sum is added after dx is rounded (no FMA), as the
// CPU's separate add.
template <int W, bool Sum>
__global__ void rms_backward_dx_kernel(const float* x, const float* w, const float* rstd, const float* dy,
                                       const float* gs, float* dx, int64_t N, int64_t C) {
  __shared__ double red[32];
  const int64_t cv = C / W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* xr = x + n * C;
    const float* gr = dy + n * C;
    float* dr = dx + n * C;
    const float r = rstd[n];
    double dot = 0.0;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W), g = load_pack<W>(gr + j * W), b = load_pack<W>(w + j * W);
#pragma unroll
      for (int q = 0; q < W; q++) dot += (double)(b.v[q] * g.v[q]) * a.v[q];
    }
    dot = block_sum(dot, red);
    const float k = (float)(dot / (double)C) * (r * r);
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W), g = load_pack<W>(gr + j * W), b = load_pack<W>(w + j * W);
      Floats<W> o;
#pragma unroll
      for (int q = 0; q < W; q++) o.v[q] = __fmul_rn(r, fmaf(b.v[q], g.v[q], -(a.v[q] * k)));
      if constexpr (Sum) {
        const Floats<W> e = load_pack<W>(gs + n * C + j * W);
#pragma unroll
        for (int q = 0; q < W; q++) o.v[q] = __fadd_rn(o.v[q], e.v[q]);
      }
      store_pack<W>(dr + j * W, o);
    }
  }
}

// out[c] = sum of the nb partials in block order, rounded once.
__global__ void sum_partials_kernel(const double* part, float* out, int64_t nb, int64_t C) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
    double acc = part[c];
    for (int64_t b = 1; b < nb; b++) acc += part[b * C + c];
    out[c] = (float)acc;
  }
}

template <int W, typename T>
__global__ void ln_forward_kernel(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t N,
                                  int64_t C, float eps) {
  __shared__ double red[32];
  const int64_t cv = C / W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    T* yr = y + n * C;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W);
#pragma unroll
      for (int q = 0; q < W; q++) s += a.v[q];
    }
    const double mu = block_sum(s, red) / (double)C;
    // Second pass around the double mean: no E[x^2] - E[x]^2 cancellation.
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W);
#pragma unroll
      for (int q = 0; q < W; q++) ss += ((double)a.v[q] - mu) * ((double)a.v[q] - mu);
    }
    const float m = (float)mu, r = inv_std(block_sum(ss, red), C, eps);
    if (threadIdx.x == 0) mean[n] = m, rstd[n] = r;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W), wv = load_or<W>(w, j * W, 1.0f), bv = load_or<W>(b, j * W, 0.0f);
      Floats<W> o;
#pragma unroll
      for (int q = 0; q < W; q++) o.v[q] = fmaf((a.v[q] - m) * r, wv.v[q], bv.v[q]);
      store_pack<W>(yr + j * W, o);
    }
  }
}

// dx = rstd * (w*dy - mean(g) - xh * mean(g*xh)) with g = w*dy, fused as the CPU does.
template <int W>
__global__ void ln_backward_dx_kernel(const float* x, const float* w, const float* mean, const float* rstd,
                                      const float* dy, float* dx, int64_t N, int64_t C) {
  __shared__ double red[32];
  const int64_t cv = C / W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* xr = x + n * C;
    const float* gr = dy + n * C;
    float* dr = dx + n * C;
    const float m = mean[n], r = rstd[n];
    double sg = 0.0, sgx = 0.0;
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W), d = load_pack<W>(gr + j * W), wv = load_or<W>(w, j * W, 1.0f);
#pragma unroll
      for (int q = 0; q < W; q++) {
        const float g = wv.v[q] * d.v[q];
        sg += g;
        sgx += (double)g * ((a.v[q] - m) * r);
      }
    }
    const float mg = (float)(block_sum(sg, red) / (double)C);
    const float mgx = (float)(block_sum(sgx, red) / (double)C);
    for (int64_t j = threadIdx.x; j < cv; j += blockDim.x) {
      const Floats<W> a = load_pack<W>(xr + j * W), d = load_pack<W>(gr + j * W), wv = load_or<W>(w, j * W, 1.0f);
      Floats<W> o;
#pragma unroll
      for (int q = 0; q < W; q++) {
        const float xh = (a.v[q] - m) * r;
        o.v[q] = r * fmaf(-xh, mgx, fmaf(wv.v[q], d.v[q], -mg));
      }
      store_pack<W>(dr + j * W, o);
    }
  }
}

// dw and db partials (either may be null), as rms_dw_partial_kernel.
__global__ void ln_dwdb_partial_kernel(const float* x, const float* mean, const float* rstd, const float* dy,
                                       double* part_w, double* part_b, int64_t N, int64_t C, int64_t rb) {
  const int64_t b = blockIdx.y, n0 = b * rb, n1 = min(N, n0 + rb);
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
    double aw = 0.0, ab = 0.0;
    for (int64_t n = n0; n < n1; n++) {
      const float g = dy[n * C + c];
      aw += (double)(g * ((x[n * C + c] - mean[n]) * rstd[n]));
      ab += g;
    }
    if (part_w) part_w[b * C + c] = aw;
    if (part_b) part_b[b * C + c] = ab;
  }
}

void launch_sum_partials(const double* part, float* out, int64_t nb, int64_t C, const char* op) {
  sum_partials_kernel<<<cuda::grid_for(C, kColThreads), kColThreads, 0, cuda::stream()>>>(part, out, nb, C);
  cuda::check_launch(op, cuda::dims({{"nb", nb}, {"C", C}}));
}

// (nb, C) double scratch for block partials; null when the output is not wanted.
double* alloc_partials(bool wanted, int64_t nb, int64_t C) {
  return wanted ? static_cast<double*>(cuda::scratch_alloc((size_t)(nb * C) * sizeof(double))) : nullptr;
}
void free_partials(double* p, int64_t nb, int64_t C) {
  if (p) cuda::scratch_free(p, (size_t)(nb * C) * sizeof(double));
}

// 16 bytes per vector access: 4 floats or 8 bf16.
template <typename T>
void rms_forward(const T* x, const T* w, T* y, float* rstd, int64_t N, int64_t C, float eps, const char* op) {
  if (N == 0) return;  // C == 0 still writes rstd (NaN, as 0/0 on the CPU)
  constexpr int V = 16 / sizeof(T);
  const bool vec = C % V == 0 && aligned16(x) && aligned16(w) && aligned16(y);
  const int threads = row_threads(vec ? C / V : C);
  const unsigned grid = cuda::grid_for(N, 1);
  if (vec)
    rms_forward_kernel<V><<<grid, threads, 0, cuda::stream()>>>(x, w, y, rstd, N, C, eps);
  else
    rms_forward_kernel<1><<<grid, threads, 0, cuda::stream()>>>(x, w, y, rstd, N, C, eps);
  cuda::check_launch(op, cuda::dims({{"N", N}, {"C", C}}));
}

template <typename T>
void ln_forward(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t N, int64_t C, float eps,
                const char* op) {
  if (N == 0) return;
  constexpr int V = 16 / sizeof(T);
  const bool vec = C % V == 0 && aligned16(x) && aligned16(w) && aligned16(b) && aligned16(y);
  const int threads = row_threads(vec ? C / V : C);
  const unsigned grid = cuda::grid_for(N, 1);
  if (vec)
    ln_forward_kernel<V><<<grid, threads, 0, cuda::stream()>>>(x, w, b, y, mean, rstd, N, C, eps);
  else
    ln_forward_kernel<1><<<grid, threads, 0, cuda::stream()>>>(x, w, b, y, mean, rstd, N, C, eps);
  cuda::check_launch(op, cuda::dims({{"N", N}, {"C", C}}));
}

template <typename T>
void add_rms_forward(const T* x, const T* res, const T* w, T* sum, T* y, float* rstd, int64_t N, int64_t C, float eps,
                     const char* op) {
  if (N == 0) return;  // C == 0 still writes rstd (NaN), as rms_forward
  constexpr int V = 16 / sizeof(T);
  const bool vec = C % V == 0 && aligned16(x) && aligned16(res) && aligned16(w) && aligned16(sum) && aligned16(y);
  const int threads = row_threads(vec ? C / V : C);
  const unsigned grid = cuda::grid_for(N, 1);
  if (vec)
    add_rms_forward_kernel<V><<<grid, threads, 0, cuda::stream()>>>(x, res, w, sum, y, rstd, N, C, eps);
  else
    add_rms_forward_kernel<1><<<grid, threads, 0, cuda::stream()>>>(x, res, w, sum, y, rstd, N, C, eps);
  cuda::check_launch(op, cuda::dims({{"N", N}, {"C", C}}));
}

using cuda::bad_dtype;

}  // namespace

void rms_norm_forward_f32(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t C, float eps) {
  rms_forward(x, w, y, rstd, N, C, eps, "rms_norm_forward_f32");
}

void rms_norm_backward_f32(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                           int64_t N, int64_t C) {
  add_rms_norm_backward_f32(x, w, rstd, dy, nullptr, dx, dw, N, C);
}

void layer_norm_forward_f32(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                            int64_t N, int64_t C, float eps) {
  ln_forward(x, w, b, y, mean, rstd, N, C, eps, "layer_norm_forward_f32");
}

void layer_norm_backward_f32(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                             float* dx, float* dw, float* db, int64_t N, int64_t C) {
  if (C == 0) return;
  const std::string detail = cuda::dims({{"N", N}, {"C", C}});
  if (N == 0) {  // a sum over no rows
    for (float* out : {dw, db})
      if (out) cuda::check(cudaMemsetAsync(out, 0, (size_t)C * sizeof(float), cuda::stream()), "layer_norm_backward_f32", detail);
    return;
  }
  const bool vec = C % 4 == 0 && aligned16(x) && aligned16(w) && aligned16(dy) && aligned16(dx);
  const int threads = row_threads(vec ? C / 4 : C);
  const unsigned grid = cuda::grid_for(N, 1);
  if (vec)
    ln_backward_dx_kernel<4><<<grid, threads, 0, cuda::stream()>>>(x, w, mean, rstd, dy, dx, N, C);
  else
    ln_backward_dx_kernel<1><<<grid, threads, 0, cuda::stream()>>>(x, w, mean, rstd, dy, dx, N, C);
  cuda::check_launch("layer_norm_backward_f32", detail);
  if (!dw && !db) return;

  const int64_t rb = rows_per_block(N), nb = (N + rb - 1) / rb;
  double* part_w = alloc_partials(dw != nullptr, nb, C);
  double* part_b = alloc_partials(db != nullptr, nb, C);
  const dim3 pgrid(cuda::grid_for(C, kColThreads), (unsigned)nb);
  ln_dwdb_partial_kernel<<<pgrid, kColThreads, 0, cuda::stream()>>>(x, mean, rstd, dy, part_w, part_b, N, C, rb);
  cuda::check_launch("layer_norm_backward_f32 dw/db", detail);
  if (dw) launch_sum_partials(part_w, dw, nb, C, "layer_norm_backward_f32 dw");
  if (db) launch_sum_partials(part_b, db, nb, C, "layer_norm_backward_f32 db");
  free_partials(part_w, nb, C);
  free_partials(part_b, nb, C);
}

void rms_norm_forward(const void* x, const void* w, void* y, float* rstd, int64_t N, int64_t C, float eps, int dtype) {
  if (dtype == 0)
    return rms_norm_forward_f32(static_cast<const float*>(x), static_cast<const float*>(w), static_cast<float*>(y),
                                rstd, N, C, eps);
  if (dtype != 3) bad_dtype("rms_norm", dtype);
  rms_forward(static_cast<const bf16*>(x), static_cast<const bf16*>(w), static_cast<bf16*>(y), rstd, N, C, eps,
              "rms_norm_forward_bf16");
}

void add_rms_norm_forward(const void* x, const void* residual, const void* w, void* sum, void* y, float* rstd,
                          int64_t N, int64_t C, float eps, int dtype) {
  if (dtype == 0)
    return add_rms_forward(static_cast<const float*>(x), static_cast<const float*>(residual), static_cast<const float*>(w),
                           static_cast<float*>(sum), static_cast<float*>(y), rstd, N, C, eps, "add_rms_norm_forward_f32");
  if (dtype != 3) bad_dtype("add_rms_norm", dtype);
  add_rms_forward(static_cast<const bf16*>(x), static_cast<const bf16*>(residual), static_cast<const bf16*>(w),
                  static_cast<bf16*>(sum), static_cast<bf16*>(y), rstd, N, C, eps, "add_rms_norm_forward_bf16");
}

void add_rms_norm_backward_f32(const float* sum, const float* w, const float* rstd, const float* g_y, const float* g_sum,
                               float* dx, float* dw, int64_t N, int64_t C) {
  const char* op = g_sum ? "add_rms_norm_backward_f32" : "rms_norm_backward_f32";
  if (C == 0) return;
  const std::string detail = cuda::dims({{"N", N}, {"C", C}});
  if (N == 0) {  // a sum over no rows
    cuda::check(cudaMemsetAsync(dw, 0, (size_t)C * sizeof(float), cuda::stream()), op, detail);
    return;
  }
  const bool vec = C % 4 == 0 && aligned16(sum) && aligned16(w) && aligned16(g_y) && aligned16(g_sum) && aligned16(dx);
  const int threads = row_threads(vec ? C / 4 : C);
  const unsigned grid = cuda::grid_for(N, 1);
  auto launch = [&](auto kernel) { kernel<<<grid, threads, 0, cuda::stream()>>>(sum, w, rstd, g_y, g_sum, dx, N, C); };
  if (g_sum) vec ? launch(rms_backward_dx_kernel<4, true>) : launch(rms_backward_dx_kernel<1, true>);
  else vec ? launch(rms_backward_dx_kernel<4, false>) : launch(rms_backward_dx_kernel<1, false>);
  cuda::check_launch(op, detail);

  const int64_t rb = rows_per_block(N), nb = (N + rb - 1) / rb;
  double* part = alloc_partials(true, nb, C);
  const dim3 pgrid(cuda::grid_for(C, kColThreads), (unsigned)nb);
  rms_dw_partial_kernel<<<pgrid, kColThreads, 0, cuda::stream()>>>(sum, rstd, g_y, part, N, C, rb);
  cuda::check_launch(op, detail);
  launch_sum_partials(part, dw, nb, C, op);
  free_partials(part, nb, C);  // the allocator is stream-ordered
}

void layer_norm_forward(const void* x, const void* w, const void* b, void* y, float* mean, float* rstd, int64_t N,
                        int64_t C, float eps, int dtype) {
  if (dtype == 0)
    return layer_norm_forward_f32(static_cast<const float*>(x), static_cast<const float*>(w),
                                  static_cast<const float*>(b), static_cast<float*>(y), mean, rstd, N, C, eps);
  if (dtype != 3) bad_dtype("layer_norm", dtype);
  ln_forward(static_cast<const bf16*>(x), static_cast<const bf16*>(w), static_cast<const bf16*>(b),
             static_cast<bf16*>(y), mean, rstd, N, C, eps, "layer_norm_forward_bf16");
}

}  // namespace temper
