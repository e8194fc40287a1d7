// CUDA sort_rows_f32 (mirrors native/src/sort.cc): stable sort of each row of (N, C), keeping
// the first k. Floats become order-preserving uint32 keys, CUB's stable segmented sort carries the
// column indices along, and the first k per row take their values from x (so bit for bit, -0.0 and
// NaN payloads included).
#include <cub/cub.cuh>
#include "common.cuh"

namespace temper {
namespace {
using namespace cuda;

// The CPU order as an unsigned key: all NaNs tie as the largest, -0.0 ties with 0.0 (they compare
// equal there), ties keep column order. Descending inverts the key so the sort itself stays
// ascending and stable, which keeps equal values in column order as the CPU's comparator does.
__device__ __forceinline__ uint32_t sort_key(float v, int desc) {
  const uint32_t u = __float_as_uint(v);
  uint32_t key = v != v ? 0xffffffffu : v == 0.0f ? 0x80000000u : (u & 0x80000000u) ? ~u : u | 0x80000000u;
  return desc ? ~key : key;
}

__global__ void sort_keys_kernel(const float* x, uint32_t* keys, int32_t* cols, int64_t n, int64_t C, int desc) {
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (int64_t)gridDim.x * blockDim.x) {
    keys[p] = sort_key(x[p], desc);
    cols[p] = (int32_t)(p % C);
  }
}

__global__ void row_offsets_kernel(int64_t* offsets, int64_t N, int64_t C) {
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p <= N; p += (int64_t)gridDim.x * blockDim.x)
    offsets[p] = p * C;
}

__global__ void sort_take_kernel(const float* x, const int32_t* order, float* values, int32_t* indices, int64_t N,
                                 int64_t C, int64_t k) {
  const int64_t n = N * k;
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = p / k;
    const int32_t c = order[row * C + p % k];
    values[p] = x[row * C + c];
    indices[p] = c;
  }
}

// scratch_alloc'd buffer freed on scope exit, so an exception from check() does not leak it.
template <typename T>
struct Scratch {
  T* p;
  size_t bytes;
  explicit Scratch(size_t count) : p((T*)scratch_alloc(count * sizeof(T))), bytes(count * sizeof(T)) {}
  ~Scratch() { scratch_free(p, bytes); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

}  // namespace

void sort_rows_f32(const float* x, float* values, int32_t* indices, int64_t N, int64_t C, int64_t k, int desc) {
  if (N * C == 0 || k <= 0) return;
  const std::string d = dims({{"N", N}, {"C", C}, {"k", k}});
  const int64_t n = N * C;
  cudaStream_t s = stream();
  Scratch<uint32_t> keys_in(n), keys_out(n);
  Scratch<int32_t> cols_in(n), cols_out(n);
  Scratch<int64_t> offsets(N + 1);
  sort_keys_kernel<<<grid_for(n), 256, 0, s>>>(x, keys_in.p, cols_in.p, n, C, desc);
  check_launch("sort_rows_f32", d);
  row_offsets_kernel<<<grid_for(N + 1), 256, 0, s>>>(offsets.p, N, C);
  check_launch("sort_rows_f32", d);

  size_t temp_bytes = 0;
  check(cub::DeviceSegmentedSort::StableSortPairs(nullptr, temp_bytes, keys_in.p, keys_out.p, cols_in.p, cols_out.p,
                                                  n, N, offsets.p, offsets.p + 1, s),
        "sort_rows_f32", d);
  Scratch<unsigned char> temp(temp_bytes);
  check(cub::DeviceSegmentedSort::StableSortPairs(temp.p, temp_bytes, keys_in.p, keys_out.p, cols_in.p, cols_out.p,
                                                  n, N, offsets.p, offsets.p + 1, s),
        "sort_rows_f32", d);

  sort_take_kernel<<<grid_for(N * k), 256, 0, s>>>(x, cols_out.p, values, indices, N, C, k);
  check_launch("sort_rows_f32", d);
}

}  // namespace temper
