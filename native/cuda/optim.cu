// Optimizer kernels on the GPU, mirroring native/src/optim.cc: one fused AdamW step over a flat f32
// parameter (bitwise the CPU's: same host scalars, same f32 rounding order, including the FMAs GCC
// contracts in its AVX2/AVX-512 builds), a deterministic double sum of squares (for global
// grad-norm clipping) and an in-place scale; adamw_multi and sum_squares_multi do the first two over
// many tensors in one launch (adamw bitwise per element as adamw_step_f32; one host sync for the norm).
#include <algorithm>
#include <cmath>
#include <vector>
#include "common.cuh"

namespace temper {

namespace {
using cuda::aligned16;

constexpr int kThreads = 256;
constexpr int64_t kSumBlocks = 1024;  // most first-stage partials of sum_squares

template <int W>
struct alignas(4 * W) Floats {
  float v[W];
};
template <int W>
__device__ __forceinline__ Floats<W> load(const float* p) {
  return *reinterpret_cast<const Floats<W>*>(p);
}
template <int W>
__device__ __forceinline__ void store(float* p, const Floats<W>& f) {
  *reinterpret_cast<Floats<W>*>(p) = f;
}

struct AdamScalars {
  float b1, b2, eps, grad_scale, decay, a1, a2, neg_step_size, bc2_sqrt;
};

__device__ __forceinline__ void adamw_one(float& p, float g, float& m, float& v, const AdamScalars& s) {
  const float gi = __fmul_rn(g, s.grad_scale);
  const float mi = fmaf(m, s.b1, __fmul_rn(s.a1, gi));
  const float vi = fmaf(v, s.b2, __fmul_rn(__fmul_rn(s.a2, gi), gi));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2_sqrt), s.eps);
  p = fmaf(p, s.decay, __fdiv_rn(__fmul_rn(s.neg_step_size, mi), denom));
  m = mi;
  v = vi;
}

// W-wide groups first, then the n % W tail (empty for W = 1).
template <int W>
__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamScalars s) {
  const int64_t nv = n / W, stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nv; i += stride) {
    Floats<W> pp = load<W>(p + i * W), mm = load<W>(m + i * W), vv = load<W>(v + i * W);
    const Floats<W> gg = load<W>(g + i * W);
#pragma unroll
    for (int q = 0; q < W; q++) adamw_one(pp.v[q], gg.v[q], mm.v[q], vv.v[q], s);
    store<W>(p + i * W, pp);
    store<W>(m + i * W, mm);
    store<W>(v + i * W, vv);
  }
  for (int64_t i = nv * W + tid; i < n; i += stride) adamw_one(p[i], g[i], m[i], v[i], s);
}

// First stage: block b's double partial over a fixed grid-stride slice (the grid depends on n only).
template <int W>
__global__ void sum_squares_partial_kernel(const float* x, int64_t n, double* part) {
  __shared__ double red[32];
  const int64_t nv = n / W, stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  double s = 0.0;
  for (int64_t i = tid; i < nv; i += stride) {
    const Floats<W> a = load<W>(x + i * W);
#pragma unroll
    for (int q = 0; q < W; q++) s += (double)a.v[q] * a.v[q];
  }
  for (int64_t i = nv * W + tid; i < n; i += stride) s += (double)x[i] * x[i];
  s = cuda::block_sum(s, red);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// Second stage, one block: the partials in a fixed order.
__global__ void sum_partials_kernel(const double* part, int64_t nb, double* out) {
  __shared__ double red[32];
  double s = 0.0;
  for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) s += part[b];
  s = cuda::block_sum(s, red);
  if (threadIdx.x == 0) *out = s;
}

template <int W>
__global__ void scale_kernel(float* x, int64_t n, float s) {
  const int64_t nv = n / W, stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nv; i += stride) {
    Floats<W> a = load<W>(x + i * W);
#pragma unroll
    for (int q = 0; q < W; q++) a.v[q] *= s;
    store<W>(x + i * W, a);
  }
  for (int64_t i = nv * W + tid; i < n; i += stride) x[i] *= s;
}

// ---- multi-tensor kernels: one launch over many tensors ----
// The tensors are cut into chunks of kChunk elements (a tensor's last chunk may be shorter; an empty
// tensor has none); a device table holds each tensor and the index of its first chunk, and a block
// takes chunks in a grid-stride loop, finding a chunk's tensor by binary search over those indices.
constexpr int64_t kChunk = 16384;  // a multiple of 4, so a chunk of an aligned tensor starts aligned

struct AdamTensor {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  float decay;
  int vec;  // p, g, m, v all 16-byte aligned
};
struct SumTensor {
  const float* x;
  int64_t n;
  int64_t vec;  // x 16-byte aligned
};

// The tensor chunk c belongs to: the last t with first[t] <= c. first[0] = 0 and first[count] is
// the chunk count, so that t is never an empty tensor.
__device__ __forceinline__ int64_t chunk_tensor(const int64_t* first, int64_t count, int64_t c) {
  int64_t lo = 0, hi = count - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) >> 1;
    if (first[mid] <= c) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// adamw_one per element as adamw_kernel does it, with the tensor's own decay.
__global__ void adamw_multi_kernel(const AdamTensor* ts, const int64_t* first, int64_t count, int64_t nchunks,
                                   AdamScalars s) {
  for (int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const int64_t t = chunk_tensor(first, count, c);
    const AdamTensor a = ts[t];
    AdamScalars st = s;
    st.decay = a.decay;
    const int64_t b = (c - first[t]) * kChunk, e = min(b + kChunk, a.n);
    int64_t tail = b;
    if (a.vec) {
      tail = b + (e - b) / 4 * 4;
      for (int64_t i = b + 4 * (int64_t)threadIdx.x; i < tail; i += 4 * (int64_t)blockDim.x) {
        Floats<4> pp = load<4>(a.p + i), mm = load<4>(a.m + i), vv = load<4>(a.v + i);
        const Floats<4> gg = load<4>(a.g + i);
#pragma unroll
        for (int q = 0; q < 4; q++) adamw_one(pp.v[q], gg.v[q], mm.v[q], vv.v[q], st);
        store<4>(a.p + i, pp);
        store<4>(a.m + i, mm);
        store<4>(a.v + i, vv);
      }
    }
    for (int64_t i = tail + threadIdx.x; i < e; i += blockDim.x) adamw_one(a.p[i], a.g[i], a.m[i], a.v[i], st);
  }
}

// First stage of sum_squares_multi: block b's double partial over chunks b, b + gridDim.x, ...
// (the grid depends on the chunk count only, so the result is the same on every run).
__global__ void sum_squares_multi_kernel(const SumTensor* ts, const int64_t* first, int64_t count, int64_t nchunks,
                                         double* part) {
  __shared__ double red[32];
  double s = 0.0;
  for (int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const int64_t t = chunk_tensor(first, count, c);
    const SumTensor a = ts[t];
    const int64_t b = (c - first[t]) * kChunk, e = min(b + kChunk, a.n);
    int64_t tail = b;
    if (a.vec) {
      tail = b + (e - b) / 4 * 4;
      for (int64_t i = b + 4 * (int64_t)threadIdx.x; i < tail; i += 4 * (int64_t)blockDim.x) {
        const Floats<4> f = load<4>(a.x + i);
#pragma unroll
        for (int q = 0; q < 4; q++) s += (double)f.v[q] * f.v[q];
      }
    }
    for (int64_t i = tail + threadIdx.x; i < e; i += blockDim.x) s += (double)a.x[i] * a.x[i];
  }
  s = cuda::block_sum(s, red);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// Device memory from scratch_alloc, given back on scope exit (stream-ordered: queued kernels may
// still read it, as the one stream runs them before any later user of the block).
struct Scratch {
  void* p;
  size_t bytes;
  explicit Scratch(size_t n) : p(cuda::scratch_alloc(n)), bytes(n) {}
  ~Scratch() { cuda::scratch_free(p, bytes); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

}  // namespace

void adamw_step_f32(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps,
                    float wd, int64_t step, float grad_scale) {
  if (n == 0) return;
  // The CPU's scalars, formed in double and rounded once. lr*wd is exact in double, so the CPU's
  // fused 1 - lr*wd equals this unfused one.
  const double bc1 = 1.0 - std::pow((double)b1, (double)step);
  const double bc2 = 1.0 - std::pow((double)b2, (double)step);
  AdamScalars s;
  s.b1 = b1, s.b2 = b2, s.eps = eps, s.grad_scale = grad_scale;
  s.decay = (float)(1.0 - (double)lr * (double)wd);
  s.a1 = (float)(1.0 - (double)b1), s.a2 = (float)(1.0 - (double)b2);
  s.neg_step_size = (float)-((double)lr / bc1);
  s.bc2_sqrt = (float)std::sqrt(bc2);
  const bool vec = aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v);
  if (vec)
    adamw_kernel<4><<<cuda::grid_for((n + 3) / 4, kThreads), kThreads, 0, cuda::stream()>>>(p, g, m, v, n, s);
  else
    adamw_kernel<1><<<cuda::grid_for(n, kThreads), kThreads, 0, cuda::stream()>>>(p, g, m, v, n, s);
  cuda::check_launch("adamw_step_f32", cuda::dims({{"n", n}}));
}

double sum_squares_f32(const float* x, int64_t n) {
  if (n == 0) return 0.0;
  const std::string detail = cuda::dims({{"n", n}});
  const bool vec = aligned16(x);
  const int64_t nv = vec ? n / 4 : n;
  const int64_t nb = std::clamp<int64_t>((nv + kThreads - 1) / kThreads, 1, kSumBlocks);
  const size_t bytes = (size_t)(nb + 1) * sizeof(double);
  double* part = static_cast<double*>(cuda::scratch_alloc(bytes));  // nb partials, then the total
  if (vec)
    sum_squares_partial_kernel<4><<<(unsigned)nb, kThreads, 0, cuda::stream()>>>(x, n, part);
  else
    sum_squares_partial_kernel<1><<<(unsigned)nb, kThreads, 0, cuda::stream()>>>(x, n, part);
  cuda::check_launch("sum_squares_f32", detail);
  sum_partials_kernel<<<1, kThreads, 0, cuda::stream()>>>(part, nb, part + nb);
  cuda::check_launch("sum_squares_f32 total", detail);
  double total = 0.0;
  cuda::check(cudaMemcpyAsync(&total, part + nb, sizeof total, cudaMemcpyDeviceToHost, cuda::stream()),
              "sum_squares_f32", detail);
  cuda::check(cudaStreamSynchronize(cuda::stream()), "sum_squares_f32", detail);
  cuda::scratch_free(part, bytes);
  return total;
}

// One launch: the descriptor table (tensors, then first-chunk indices) is built on the host, copied
// in stream order through the pinned staging of copy_to_buffer, and freed in stream order.
void adamw_multi(float* const* p, const float* const* g, float* const* m, float* const* v, const int64_t* n,
                 const float* weight_decay, int64_t count, float lr, float b1, float b2, float eps, int64_t step,
                 float grad_scale) {
  if (count <= 0) return;
  // adamw_step_f32's scalars; only the decay differs between tensors.
  const double bc1 = 1.0 - std::pow((double)b1, (double)step);
  const double bc2 = 1.0 - std::pow((double)b2, (double)step);
  AdamScalars s;
  s.b1 = b1, s.b2 = b2, s.eps = eps, s.grad_scale = grad_scale;
  s.decay = 1.0f;
  s.a1 = (float)(1.0 - (double)b1), s.a2 = (float)(1.0 - (double)b2);
  s.neg_step_size = (float)-((double)lr / bc1);
  s.bc2_sqrt = (float)std::sqrt(bc2);
  const size_t table = (size_t)count * sizeof(AdamTensor), bytes = table + (size_t)(count + 1) * sizeof(int64_t);
  std::vector<char> host(bytes);
  AdamTensor* ts = reinterpret_cast<AdamTensor*>(host.data());
  int64_t* first = reinterpret_cast<int64_t*>(host.data() + table);
  first[0] = 0;
  int64_t total = 0;
  for (int64_t t = 0; t < count; t++) {
    ts[t] = AdamTensor{p[t], g[t], m[t], v[t], n[t], (float)(1.0 - (double)lr * (double)weight_decay[t]),
                       aligned16(p[t]) && aligned16(g[t]) && aligned16(m[t]) && aligned16(v[t]) ? 1 : 0};
    first[t + 1] = first[t] + (n[t] + kChunk - 1) / kChunk;
    total += n[t];
  }
  const int64_t nchunks = first[count];
  if (nchunks == 0) return;
  const std::string detail = cuda::dims({{"tensors", count}, {"n", total}});
  Scratch dev(bytes);
  copy_to_buffer(dev.p, host.data(), bytes);
  const AdamTensor* dts = static_cast<const AdamTensor*>(dev.p);
  const int64_t* dfirst = reinterpret_cast<const int64_t*>(static_cast<const char*>(dev.p) + table);
  adamw_multi_kernel<<<cuda::grid_for(nchunks * kThreads, kThreads), kThreads, 0, cuda::stream()>>>(
      dts, dfirst, count, nchunks, s);
  cuda::check_launch("adamw_multi", detail);
}

// One launch of the first stage over all tensors, the second stage, and one synchronizing read-back.
double sum_squares_multi(const float* const* x, const int64_t* n, int64_t count) {
  if (count <= 0) return 0.0;
  const size_t table = (size_t)count * sizeof(SumTensor), head = table + (size_t)(count + 1) * sizeof(int64_t);
  std::vector<char> host(head);
  SumTensor* ts = reinterpret_cast<SumTensor*>(host.data());
  int64_t* first = reinterpret_cast<int64_t*>(host.data() + table);
  first[0] = 0;
  int64_t total_n = 0;
  for (int64_t t = 0; t < count; t++) {
    ts[t] = SumTensor{x[t], n[t], aligned16(x[t]) ? 1 : 0};
    first[t + 1] = first[t] + (n[t] + kChunk - 1) / kChunk;
    total_n += n[t];
  }
  const int64_t nchunks = first[count];
  if (nchunks == 0) return 0.0;
  const std::string detail = cuda::dims({{"tensors", count}, {"n", total_n}});
  const int64_t nb = std::min<int64_t>(nchunks, kSumBlocks);
  Scratch dev(head + (size_t)(nb + 1) * sizeof(double));  // the table, nb partials, then the total
  copy_to_buffer(dev.p, host.data(), head);
  char* base = static_cast<char*>(dev.p);
  double* part = reinterpret_cast<double*>(base + head);
  sum_squares_multi_kernel<<<(unsigned)nb, kThreads, 0, cuda::stream()>>>(
      reinterpret_cast<const SumTensor*>(base), reinterpret_cast<const int64_t*>(base + table), count, nchunks, part);
  cuda::check_launch("sum_squares_multi", detail);
  sum_partials_kernel<<<1, kThreads, 0, cuda::stream()>>>(part, nb, part + nb);
  cuda::check_launch("sum_squares_multi total", detail);
  double total = 0.0;
  cuda::check(cudaMemcpyAsync(&total, part + nb, sizeof total, cudaMemcpyDeviceToHost, cuda::stream()),
              "sum_squares_multi", detail);
  cuda::check(cudaStreamSynchronize(cuda::stream()), "sum_squares_multi", detail);
  return total;
}

void scale_inplace_f32(float* x, int64_t n, float s) {
  if (n == 0) return;
  if (aligned16(x))
    scale_kernel<4><<<cuda::grid_for((n + 3) / 4, kThreads), kThreads, 0, cuda::stream()>>>(x, n, s);
  else
    scale_kernel<1><<<cuda::grid_for(n, kThreads), kThreads, 0, cuda::stream()>>>(x, n, s);
  cuda::check_launch("scale_inplace_f32", cuda::dims({{"n", n}}));
}

}  // namespace temper
