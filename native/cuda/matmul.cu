// Batched GEMM through cuBLASLt, f32 (exact, or TF32 tensor cores when allowed) and bf16 with f32
// accumulation. temper is row-major and cuBLASLt column-major: a row-major C = op(A) @ op(B) is the
// column-major C^T = op(B)^T @ op(A)^T, so the operands swap and no data moves. A plan (descriptors
// plus the heuristic's algorithm) is built once per shape and reused, as training repeats shapes.
#include <cublasLt.h>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include "common.cuh"
#include "runtime.h"

namespace temper::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLASLt's recommendation for Hopper

void check_lt(cublasStatus_t st, const char* what, const std::string& detail) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("temper cuda: matmul (") + detail + "): " + what + ": " + cublasLtGetStatusName(st) +
                             ": " + cublasLtGetStatusString(st));
}

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo;
};

// dtype, out dtype, tf32, ta, tb, M, N, K, batch, a stride, b stride, beta != 0, alignment of A, B, C
using Key = std::tuple<int, int, bool, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, uint32_t, uint32_t,
                       uint32_t>;

// The largest power of two (at most 256, cuBLASLt's default assumption) dividing the address.
// Views start at any element, and an algorithm picked for 256-byte aligned buffers may fail or
// read wrongly on a 4-byte aligned one, so the plan is chosen for the alignment at hand.
uint32_t alignment(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t k = 256;
  while (k > 1 && (a & (k - 1))) k >>= 1;
  return k;
}

struct DeviceLt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<Key, Plan> plans;
};

std::mutex g_mu;
DeviceLt g_lt[kMaxDevices];

DeviceLt& lt() {
  DeviceLt& d = g_lt[current_device()];
  if (!d.handle) {
    check_lt(cublasLtCreate(&d.handle), "cublasLtCreate", "init");
    check(cudaMalloc(&d.workspace, kWorkspaceBytes), "matmul workspace");
  }
  return d;
}

cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                              int64_t stride, const std::string& detail) {
  cublasLtMatrixLayout_t l;
  check_lt(cublasLtMatrixLayoutCreate(&l, type, (uint64_t)rows, (uint64_t)cols, ld), "layout", detail);
  if (batch > 1) {
    int32_t count = (int32_t)batch;
    check_lt(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count), "layout", detail);
    check_lt(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
             "layout", detail);
  }
  return l;
}

Plan make_plan(DeviceLt& d, const Key& key, const std::string& detail) {
  auto [dtype, out_dtype, tf32, ta, tb, M, N, K, batch, a_bs, b_bs, has_beta, align_a, align_b, align_c] = key;
  cudaDataType_t type = dtype == 3 ? CUDA_R_16BF : CUDA_R_32F;
  cudaDataType_t out_type = out_dtype == 3 ? CUDA_R_16BF : CUDA_R_32F;
  cublasComputeType_t compute = dtype == 0 && tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  Plan p;
  check_lt(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F), "desc", detail);
  // Column-major view: first operand is B (N x K after op), second is A (K x M after op).
  cublasOperation_t op_first = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_second = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_lt(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first), "desc", detail);
  check_lt(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second), "desc", detail);
  p.a = tb ? layout(type, K, N, K, batch, b_bs, detail) : layout(type, N, K, N, batch, b_bs, detail);
  p.b = ta ? layout(type, M, K, M, batch, a_bs, detail) : layout(type, K, M, K, batch, a_bs, detail);
  p.c = layout(out_type, N, M, N, batch, M * N, detail);
  cublasLtMatmulPreference_t pref;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "preference", detail);
  uint64_t ws = kWorkspaceBytes;
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "preference",
           detail);
  // cuBLASLt's first operand is temper's B, its second temper's A (see the file comment).
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_b}, {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c}, {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c}};
  for (const auto& [attr, bytes] : aligns)
    check_lt(cublasLtMatmulPreferenceSetAttribute(pref, attr, &bytes, sizeof bytes), "preference", detail);
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(d.handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  check_lt(st, "heuristic", detail);
  if (found == 0) throw std::runtime_error("temper cuda: matmul (" + detail + "): cuBLASLt has no algorithm for this shape");
  p.algo = result.algo;
  (void)has_beta;
  return p;
}

}  // namespace

}  // namespace temper::cuda

namespace temper {
using namespace temper::cuda;

namespace {
__global__ void scale_c_kernel(float* c, int64_t n, float beta) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    c[i] = beta == 0.0f ? 0.0f : beta * c[i];
}
__global__ void scale_c_bf16_kernel(__nv_bfloat16* c, int64_t n, float beta) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    c[i] = __float2bfloat16(beta == 0.0f ? 0.0f : beta * __bfloat162float(c[i]));
}
}  // namespace

void matmul(const void* A, const void* B, void* C, int64_t batch, int64_t M, int64_t N, int64_t K, int trans_a,
            int trans_b, int64_t a_bs, int64_t b_bs, float alpha, float beta, int dtype, int out_dtype) {
  std::string detail = dims({{"batch", batch}, {"M", M}, {"N", N}, {"K", K}, {"transA", trans_a}, {"transB", trans_b},
                             {"dtype", dtype}, {"out_dtype", out_dtype}});
  if ((dtype != 0 && dtype != 3) || (out_dtype != dtype && !(dtype == 3 && out_dtype == 0)))
    throw std::invalid_argument("temper cuda: matmul (" + detail + "): inputs f32 -> f32, bf16 -> bf16 or bf16 -> f32");
  int64_t total = batch * M * N;
  if (total == 0) return;
  if (K == 0) {  // the math says alpha*0 + beta*C; cuBLASLt rejects k = 0
    if (out_dtype == 0) scale_c_kernel<<<grid_for(total), 256, 0, stream()>>>(static_cast<float*>(C), total, beta);
    else scale_c_bf16_kernel<<<grid_for(total), 256, 0, stream()>>>(static_cast<__nv_bfloat16*>(C), total, beta);
    check_launch("matmul", detail);
    return;
  }
  // A batch sharing one B, with A's batches contiguous, is one GEMM with the batch folded into M.
  if (!trans_a && b_bs == 0 && a_bs == M * K && batch > 1) {
    M *= batch;
    batch = 1;
    a_bs = 0;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  DeviceLt& d = lt();
  Key key{dtype, out_dtype, allow_tf32(), trans_a, trans_b, M, N, K, batch, a_bs, b_bs, beta != 0.0f,
          alignment(A), alignment(B), alignment(C)};
  auto it = d.plans.find(key);
  if (it == d.plans.end()) it = d.plans.emplace(key, make_plan(d, key, detail)).first;
  const Plan& p = it->second;
  check_lt(cublasLtMatmul(d.handle, p.desc, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo, d.workspace,
                          kWorkspaceBytes, stream()),
           "cublasLtMatmul", detail);
  check_launch("matmul", detail);
}

// The f32 entry point kernels.h names; the Node-API binding calls matmul().
void matmul_f32(const float* A, const float* B, float* C, int64_t batch, int64_t M, int64_t N, int64_t K, int trans_a,
                int trans_b, int64_t a_bs, int64_t b_bs, float alpha, float beta) {
  matmul(A, B, C, batch, M, N, K, trans_a, trans_b, a_bs, b_bs, alpha, beta, 0, 0);
}

}  // namespace temper
