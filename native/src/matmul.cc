// Batched GEMM through the BLAS (OpenBLAS cblas_sgemm on Linux, Accelerate on macOS).
// Transposed operands are BLAS flags, never copies. Broadcast batches use stride 0.
#include <stdexcept>
#include <string>
#include "kernels.h"
#ifdef TEMPER_ACCELERATE
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace temper {

void matmul_f32(const float* A, const float* B, float* C, int64_t batch, int64_t M, int64_t N, int64_t K, int trans_a,
                int trans_b, int64_t a_bs, int64_t b_bs, float alpha, float beta) {
  int lda = trans_a ? (int)M : (int)K;
  int ldb = trans_b ? (int)K : (int)N;
  if (K == 0) {  // BLAS leaves C untouched with K = 0; the math says alpha*0 + beta*C
    for (int64_t i = 0; i < batch * M * N; i++) C[i] = beta == 0.0f ? 0.0f : beta * C[i];
    return;
  }
  // A batch of matrix-vector products with a shared B is one GEMM: fold the batch into M.
  if (!trans_a && b_bs == 0 && a_bs == M * K && batch > 1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)(batch * M), (int)N, (int)K,
                alpha, A, lda, B, ldb, beta, C, (int)N);
    return;
  }
  for (int64_t b = 0; b < batch; b++) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, alpha, A + b * a_bs, lda, B + b * b_bs, ldb, beta, C + b * M * N, (int)N);
  }
}

void matmul(const void* A, const void* B, void* C, int64_t batch, int64_t M, int64_t N, int64_t K, int trans_a,
            int trans_b, int64_t a_bs, int64_t b_bs, float alpha, float beta, int dtype, int out_dtype) {
  if (out_dtype != dtype && !(dtype == 3 && out_dtype == 0))
    throw std::invalid_argument("matmul: " + std::to_string(dtype) + " inputs cannot write dtype code " + std::to_string(out_dtype));
  if (dtype == 0)
    return matmul_f32(static_cast<const float*>(A), static_cast<const float*>(B), static_cast<float*>(C), batch, M, N, K,
                      trans_a, trans_b, a_bs, b_bs, alpha, beta);
  if (dtype != 3) throw std::invalid_argument("matmul: dtype code " + std::to_string(dtype) + " is not f32 or bf16");
  // bf16 as dtype_dispatch.cc defines it: f32 GEMM on the widened operands, one rounding of C.
  auto widen = [](const void* src, int64_t n) {
    float* p = static_cast<float*>(buffer_alloc((size_t)n * sizeof(float)));
    if (src && n) cast(src, 3, p, 0, n);
    return p;
  };
  int64_t na = (a_bs ? batch : 1) * M * K, nb = (b_bs ? batch : 1) * K * N, nc = batch * M * N;
  float *a = widen(A, na), *b = widen(B, nb);
  if (out_dtype == 0) {  // autocast: the f32 product of the rounded operands, no rounding of C
    matmul_f32(a, b, static_cast<float*>(C), batch, M, N, K, trans_a, trans_b, a_bs, b_bs, alpha, beta);
  } else {
    float* c = widen(beta != 0.0f ? C : nullptr, nc);
    matmul_f32(a, b, c, batch, M, N, K, trans_a, trans_b, a_bs, b_bs, alpha, beta);
    if (nc) cast(c, 0, C, 3, nc);
    buffer_free(c, (size_t)nc * sizeof(float));
  }
  buffer_free(a, (size_t)na * sizeof(float));
  buffer_free(b, (size_t)nb * sizeof(float));
}

}  // namespace temper
