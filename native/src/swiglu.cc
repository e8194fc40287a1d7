// Fused SwiGLU (Liger / Unsloth style): out = silu(gate) * up in one pass, and a backward that
// recomputes silu from gate, so autograd saves only gate and up (no silu(gate) activation).
// The expressions are those of the unfused chain, term for term, so results are bit-identical to
// unary_f32(U_SILU) followed by binary_f32(B_MUL), and to that chain's backward:
//   mul's rule gives g*up and g*silu(gate); unary_backward_f32(U_SILU) then gives (g*up)*silu'(gate).
#include <cstring>
#include <stdexcept>
#include <string>
#include "bf16.h"
#include "kernels.h"
#include "simd.h"

namespace temper {
namespace {

constexpr int64_t kGrain = 1 << 15;  // as elementwise.cc: below this, threads cost more than they save
constexpr int kF32 = 0, kBF16 = 3;


TEMPER_CLONES void swiglu_f32(const float* gate, const float* up, float* out, int64_t n) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float v = gate[i];
    float a = v / (1.0f + fast_exp(-v));  // elementwise.cc U_SILU
    out[i] = a * up[i];
  }
}

// bf16 storage: silu(gate) is rounded to bf16 before the product, which is rounded again: the
// unfused bf16 chain (unary then binary, each rounding once), HF's act_fn(gate) * up in bf16, and
// what Liger's and Unsloth's kernels compute.
TEMPER_CLONES void swiglu_bf16(const uint16_t* gate, const uint16_t* up, uint16_t* out, int64_t n) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float v = bf16_to_f32(gate[i]);
    float a = bf16_to_f32(f32_to_bf16(v / (1.0f + fast_exp(-v))));
    out[i] = f32_to_bf16(a * bf16_to_f32(up[i]));
  }
}

}  // namespace

void swiglu(const void* gate, const void* up, void* out, int64_t n, int dtype) {
  if (dtype == kF32)
    return swiglu_f32(static_cast<const float*>(gate), static_cast<const float*>(up), static_cast<float*>(out), n);
  if (dtype == kBF16)
    return swiglu_bf16(static_cast<const uint16_t*>(gate), static_cast<const uint16_t*>(up), static_cast<uint16_t*>(out),
                       n);
  throw std::invalid_argument("swiglu: dtype code " + std::to_string(dtype) + " is not f32 or bf16");
}

TEMPER_CLONES void swiglu_backward_f32(const float* gate, const float* up, const float* g, float* dgate, float* dup,
                                       int64_t n) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float v = gate[i], gi = g[i];
    float gu = gi * up[i];                    // mul's rule: d(silu) = g * up
    float s = 1.0f / (1.0f + fast_exp(-v));   // unary_backward_f32 U_SILU, term for term
    dgate[i] = gu * s * (1.0f + v * (1.0f - s));
    dup[i] = gi * (v / (1.0f + fast_exp(-v)));  // mul's rule: d(up) = g * silu(gate)
  }
}

}  // namespace temper
