// CUDA index ops (mirrors native/src/index.cc) over x viewed as (outer, X, inner): index_select,
// gather, scatter_add, one_hot and cumsum. Like the CPU, every id is validated before anything is
// written, so a bad id returns -(first bad position + 1) and leaves the output untouched; that
// check is the one synchronization, the work itself is queued after it.
#include <string>
#include "common.cuh"

namespace temper {
namespace {
using namespace cuda;

__global__ void check_ids_kernel(const int32_t* idx, int64_t n, int64_t X, unsigned long long* bad) {
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (int64_t)gridDim.x * blockDim.x)
    if (idx[p] < 0 || idx[p] >= X) report_bad_index(bad, p);
}

// 0 when every idx[0..n) is in [0, X), else -(first bad position + 1).
int64_t check_ids(const char* op, const std::string& detail, const int32_t* idx, int64_t n, int64_t X) {
  if (n <= 0) return 0;
  BadIndex bad;
  check_ids_kernel<<<grid_for(n), 256, 0, stream()>>>(idx, n, X, bad.device());
  check_launch(op, detail);
  return bad.result(op, detail);
}

// Copies whole rows of `row` units of T, T being the widest type the row size and pointers allow.
template <typename T>
__global__ void index_select_kernel(const T* x, const int32_t* idx, T* out, int64_t outer, int64_t X, int64_t I,
                                    int64_t row) {
  const int64_t n = outer * I * row;
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = p % row, oi = p / row, o = oi / I, i = oi % I;
    out[p] = x[(o * X + idx[i]) * row + j];
  }
}

template <typename T>
void select_rows(const void* x, const int32_t* idx, void* out, int64_t outer, int64_t X, int64_t I, int64_t bytes) {
  const int64_t row = bytes / (int64_t)sizeof(T);
  index_select_kernel<T><<<grid_for(outer * I * row), 256, 0, stream()>>>((const T*)x, idx, (T*)out, outer, X, I, row);
}

__global__ void gather_kernel(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t X, int64_t I,
                              int64_t inner) {
  const int64_t n = outer * I * inner;
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t o = p / (I * inner), j = p % inner;
    out[p] = x[(o * X + idx[p]) * inner + j];
  }
}

// Duplicate ids add atomically, so their order (and the f32 rounding) can differ from the CPU's.
__global__ void scatter_add_kernel(float* out, const int32_t* idx, const float* src, int64_t outer, int64_t X,
                                   int64_t I, int64_t inner, int shared) {
  const int64_t n = outer * I * inner;
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t o = p / (I * inner), j = p % inner;
    const int64_t id = shared ? idx[(p / inner) % I] : idx[p];
    atomicAdd(out + (o * X + id) * inner + j, src[p]);
  }
}

__global__ void one_hot_kernel(const int32_t* idx, float* out, int64_t N, int64_t C) {
  for (int64_t n = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; n < N; n += (int64_t)gridDim.x * blockDim.x)
    out[n * C + idx[n]] = 1.0f;
}

// One thread per (outer, inner) column with the CPU's sequential double running sum: exact to it.
__global__ void cumsum_cols_kernel(const float* x, float* out, int64_t outer, int64_t R, int64_t inner,
                                   int reverse) {
  const int64_t cols = outer * inner;
  for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x) {
    const int64_t base = (c / inner) * R * inner + c % inner;
    double acc = 0;
    for (int64_t k = 0; k < R; k++) {
      const int64_t at = base + (reverse ? R - 1 - k : k) * inner;
      acc += x[at];
      out[at] = (float)acc;
    }
  }
}

// Exclusive prefix sum of one double per thread over the block; `total` gets the block's sum.
__device__ double block_exclusive_scan(double v, double* sh, double& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  double incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    double t = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += t;
  }
  double excl = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) excl = 0;
  __syncthreads();  // the previous call has read sh
  if (lane == 31) sh[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    double w = lane < nwarps ? sh[lane] : 0.0;
    for (int o = 1; o < 32; o <<= 1) {
      double t = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += t;
    }
    sh[lane] = w;
  }
  __syncthreads();
  total = sh[nwarps - 1];
  return warp > 0 ? sh[warp - 1] + excl : excl;
}

constexpr int kScanItems = 8;

// inner == 1, long rows: a block per row scans tiles of blockDim * kScanItems values in double
// (each thread a run of kScanItems), carrying the running total from tile to tile.
__global__ void cumsum_rows_kernel(const float* x, float* out, int64_t outer, int64_t R, int reverse) {
  __shared__ double sh[32];
  const int64_t tile = (int64_t)blockDim.x * kScanItems;
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const float* xr = x + row * R;
    float* yr = out + row * R;
    double carry = 0;
    for (int64_t t0 = 0; t0 < R; t0 += tile) {
      const int64_t k0 = t0 + (int64_t)threadIdx.x * kScanItems;
      double run[kScanItems], acc = 0;
      for (int j = 0; j < kScanItems; j++) {
        const int64_t k = k0 + j;
        if (k < R) acc += xr[reverse ? R - 1 - k : k];
        run[j] = acc;
      }
      double total;
      const double before = carry + block_exclusive_scan(acc, sh, total);
      for (int j = 0; j < kScanItems; j++) {
        const int64_t k = k0 + j;
        if (k < R) yr[reverse ? R - 1 - k : k] = (float)(before + run[j]);
      }
      carry += total;
    }
  }
}

}  // namespace

int64_t index_select(const void* x, const int32_t* idx, void* out, int64_t outer, int64_t X, int64_t I,
                     int64_t inner, int elem_size) {
  const std::string d = dims({{"outer", outer}, {"X", X}, {"I", I}, {"inner", inner}, {"elem_size", elem_size}});
  if (int64_t bad = check_ids("index_select", d, idx, I, X)) return bad;
  const int64_t bytes = inner * elem_size;
  if (outer * I * bytes == 0) return 0;
  const uintptr_t align = reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out) | (uintptr_t)bytes;
  if (align % 16 == 0) select_rows<uint4>(x, idx, out, outer, X, I, bytes);
  else if (align % 8 == 0) select_rows<uint2>(x, idx, out, outer, X, I, bytes);
  else if (align % 4 == 0) select_rows<uint32_t>(x, idx, out, outer, X, I, bytes);
  else if (align % 2 == 0) select_rows<uint16_t>(x, idx, out, outer, X, I, bytes);
  else select_rows<uint8_t>(x, idx, out, outer, X, I, bytes);
  check_launch("index_select", d);
  return 0;
}

int64_t gather_f32(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t X, int64_t I,
                   int64_t inner) {
  const std::string d = dims({{"outer", outer}, {"X", X}, {"I", I}, {"inner", inner}});
  const int64_t n = outer * I * inner;
  if (int64_t bad = check_ids("gather_f32", d, idx, n, X)) return bad;
  if (n == 0) return 0;
  gather_kernel<<<grid_for(n), 256, 0, stream()>>>(x, idx, out, outer, X, I, inner);
  check_launch("gather_f32", d);
  return 0;
}

int64_t scatter_add_f32(float* out, const int32_t* idx, const float* src, int64_t outer, int64_t X, int64_t I,
                        int64_t inner, int shared) {
  const std::string d = dims({{"outer", outer}, {"X", X}, {"I", I}, {"inner", inner}, {"shared", shared}});
  const int64_t n = outer * I * inner;
  if (int64_t bad = check_ids("scatter_add_f32", d, idx, shared ? I : n, X)) return bad;
  if (n == 0) return 0;
  scatter_add_kernel<<<grid_for(n), 256, 0, stream()>>>(out, idx, src, outer, X, I, inner, shared);
  check_launch("scatter_add_f32", d);
  return 0;
}

int64_t one_hot_f32(const int32_t* idx, float* out, int64_t N, int64_t C) {
  const std::string d = dims({{"N", N}, {"C", C}});
  if (int64_t bad = check_ids("one_hot_f32", d, idx, N, C)) return bad;
  if (N * C == 0) return 0;
  check(cudaMemsetAsync(out, 0, (size_t)(N * C) * sizeof(float), stream()), "one_hot_f32", d);
  one_hot_kernel<<<grid_for(N), 256, 0, stream()>>>(idx, out, N, C);
  check_launch("one_hot_f32", d);
  return 0;
}

void cumsum_f32(const float* x, float* out, int64_t outer, int64_t R, int64_t inner, int reverse) {
  if (outer * R * inner == 0) return;
  if (inner == 1 && R > 64) {
    const int64_t per_thread = (R + kScanItems - 1) / kScanItems;
    const int threads = (int)(per_thread < 256 ? (per_thread + 31) / 32 * 32 : 256);
    cumsum_rows_kernel<<<grid_for(outer, 1), threads, 0, stream()>>>(x, out, outer, R, reverse);
  } else {
    cumsum_cols_kernel<<<grid_for(outer * inner), 256, 0, stream()>>>(x, out, outer, R, inner, reverse);
  }
  check_launch("cumsum_f32", dims({{"outer", outer}, {"R", R}, {"inner", inner}}));
}

}  // namespace temper
