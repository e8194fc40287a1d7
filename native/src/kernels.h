// temper CPU kernels: the flat contract between Node-API bindings and compute.
// Every kernel takes raw pointers to contiguous row-major buffers plus sizes;
// no kernel allocates its outputs or knows about tensors, autograd or JS.
// Shape letters: B batch, T time, H heads, D head dim, C channels, V vocab, N rows.
//
// defines: buffers, dtype casts, fill, strided_copy, unary/binary elementwise,
// reduce, matmul, softmax, index ops, cumsum, sort/topk, random, dropout,
// rms_norm, add_rms_norm, layer_norm, rotary, attention, cross_entropy, adamw, sum_squares.
#pragma once
#include <cstddef>
#include <cstdint>

namespace temper {

// ---- threads -------------------------------------------------------------
void set_num_threads(int n);  // OpenMP and the BLAS
int num_threads();

// ---- memory (alloc.cc) ---------------------------------------------------
// 64-byte aligned; live/peak count requested bytes. Freed blocks are kept for reuse by
// size class up to TEMPER_CPU_CACHE_BYTES (default 4 GiB); empty_cache returns them.
void* buffer_alloc(size_t nbytes);
void buffer_free(void* p, size_t nbytes);
size_t live_bytes();
size_t peak_bytes();
size_t cached_bytes();
void reset_peak_bytes();
void empty_cache();
// Host memory <-> buffer (a memcpy on CPU; pinned-staged DMA on CUDA, where reads synchronize).
void copy_to_buffer(void* dst, const void* src, size_t nbytes);
void copy_from_buffer(void* dst, const void* src, size_t nbytes);

// ---- elementwise (elementwise.cc) ----------------------------------------
enum UnaryOp : int {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_SILU, U_GELU_ERF, U_GELU_TANH,
  U_SIGMOID, U_TANH, U_SOFTPLUS, U_RELU, U_SQUARE, U_RECIPROCAL, U_SIGN,
};
// out[i] = op(x[i]); out may alias x.
void unary_f32(int op, const float* x, float* out, int64_t n);
// dx[i] = g[i] * op'(x[i]) (y is op(x), used where cheaper).
void unary_backward_f32(int op, const float* x, const float* y, const float* g, float* dx, int64_t n);
// out = clamp(x, lo, hi); NaN stays NaN.
void clamp_f32(const float* x, float* out, int64_t n, float lo, float hi);

enum BinaryOp : int {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN,
  B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE,  // comparisons write uint8 0/1
};
// Broadcast binary over an N-d shape (ndim <= 8). a/b strides are in elements
// and are 0 along broadcast dims; out is contiguous. For comparison ops out is uint8.
void binary_f32(int op, const float* a, const int64_t* a_strides, const float* b,
                const int64_t* b_strides, void* out, const int64_t* shape, int ndim);
// out = cond ? a : b with the same broadcasting scheme (cond is uint8).
void where_f32(const uint8_t* cond, const int64_t* c_strides, const float* a, const int64_t* a_strides,
               const float* b, const int64_t* b_strides, float* out, const int64_t* shape, int ndim);

// ---- copies and casts (copy.cc) ------------------------------------------
// dst[contiguous or strided] = src[strided] over `shape`; elem_size in bytes (1, 2 or 4).
void strided_copy(const void* src, const int64_t* src_strides, void* dst, const int64_t* dst_strides,
                  const int64_t* shape, int ndim, int elem_size);
void fill_f32(float* out, int64_t n, float value);
void fill_i32(int32_t* out, int64_t n, int32_t value);
void fill_u8(uint8_t* out, int64_t n, uint8_t value);
// dtype codes: 0 f32, 1 i32, 2 u8 (bool), 3 bf16 (round-to-nearest-even from f32).
void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n);

// ---- reductions (reduce.cc) ----------------------------------------------
enum ReduceOp : int { R_SUM, R_MEAN, R_MAX, R_MIN, R_LOGSUMEXP, R_ARGMAX, R_ARGMIN, R_VAR };
// x viewed as (outer, R, inner) and reduced over R -> out (outer, inner).
// ARGMAX/ARGMIN write int32 to out. VAR uses `correction` (1 = Bessel).
// Accumulation is double for SUM/MEAN/VAR so results do not depend on threads.
void reduce_f32(int op, const float* x, void* out, int64_t outer, int64_t R, int64_t inner, int correction);

// ---- matmul (matmul.cc) --------------------------------------------------
// Batched C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]; op = transpose when trans*.
// A[b] is (M,K) (or (K,M) stored when trans_a), B[b] is (K,N) (or (N,K) when trans_b).
// a_batch_stride/b_batch_stride may be 0 (broadcast). C is (batch, M, N) contiguous.
void matmul_f32(const float* A, const float* B, float* C, int64_t batch, int64_t M, int64_t N, int64_t K,
                int trans_a, int trans_b, int64_t a_batch_stride, int64_t b_batch_stride, float alpha, float beta);
// The same with A/B in `dtype` (0 f32 or 3 bf16) and C in `out_dtype` (f32, or bf16 when the inputs
// are bf16); accumulation is always f32. bf16 inputs with an f32 C is autocast's mixed-precision GEMM.
// On CPU, bf16 widens the operands and rounds C once (the definition the GPU's cuBLASLt is tested against).
void matmul(const void* A, const void* B, void* C, int64_t batch, int64_t M, int64_t N, int64_t K, int trans_a,
            int trans_b, int64_t a_batch_stride, int64_t b_batch_stride, float alpha, float beta, int dtype,
            int out_dtype);

// ---- softmax (softmax.cc) ------------------------------------------------
// Over the last dim of (N, C). log=1 for log_softmax.
void softmax_forward_f32(const float* x, float* y, int64_t N, int64_t C, int log);
// softmax:  dx = y * (dy - sum(dy*y));  log_softmax: dx = dy - exp(y) * sum(dy)
void softmax_backward_f32(const float* y, const float* dy, float* dx, int64_t N, int64_t C, int log);

// ---- indexing (index.cc) -------------------------------------------------
// x viewed as (outer, X, inner); idx (outer, I, inner) int32 along the middle dim (gather),
// or idx (I) shared by all outer rows (index_select). Out-of-range ids return -1 (first bad position + 1 encoded as -(pos+1)).
int64_t index_select(const void* x, const int32_t* idx, void* out, int64_t outer, int64_t X, int64_t I,
                     int64_t inner, int elem_size);
int64_t gather_f32(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t X, int64_t I,
                   int64_t inner);
// out (outer, X, inner) += src (outer, I, inner) scattered along the middle dim by idx;
// shared=1 means idx has shape (I) (index_add / embedding backward).
int64_t scatter_add_f32(float* out, const int32_t* idx, const float* src, int64_t outer, int64_t X, int64_t I,
                        int64_t inner, int shared);
// one_hot: out (N, C) f32 with 1 at idx; bad idx -> returns -(pos+1).
int64_t one_hot_f32(const int32_t* idx, float* out, int64_t N, int64_t C);
// Inclusive prefix sum over the middle dim of (outer, R, inner); reverse=1 sums from the end.
void cumsum_f32(const float* x, float* out, int64_t outer, int64_t R, int64_t inner, int reverse);
// Sort each row of (N, C) by value; stable; descending if desc. Writes values and int32 indices,
// keeping the first k of each row (k = C for a full sort). NaN sorts as largest.
void sort_rows_f32(const float* x, float* values, int32_t* indices, int64_t N, int64_t C, int64_t k, int desc);

// ---- random (random.cc) --------------------------------------------------
// Philox4x32-10, counter-based: element i draws from counter (offset + i / 4), lane i % 4,
// so results are identical for any thread count.
void rand_uniform_f32(float* out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi);
void rand_normal_f32(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std);
void rand_int_i32(int32_t* out, int64_t n, uint64_t seed, uint64_t offset, int32_t lo, int32_t hi);
// mask[i] = u(i) >= p ? 1/(1-p) : 0 (stored as f32 scale), out = x * mask.
void dropout_f32(const float* x, float* out, float* mask, int64_t n, uint64_t seed, uint64_t offset, float p);

// ---- fused: normalization (norm.cc) --------------------------------------
// rms_norm over the last dim of x (N, C): rstd = 1/sqrt(mean(x^2) + eps); y = x * rstd * w.
void rms_norm_forward_f32(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t C, float eps);
// dx (N, C) written; dw (C) written (not accumulated).
void rms_norm_backward_f32(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                           float* dw, int64_t N, int64_t C);
// Backward of add_rms_norm_forward (below) given the gradients of both outputs: dx (N, C) =
// rms_norm_backward_f32's dx of g_y, plus g_sum when not null (the gradient of x and of residual);
// dw (C) written. On CPU bitwise rms_norm_backward_f32 followed by binary(B_ADD) with g_sum.
void add_rms_norm_backward_f32(const float* sum, const float* w, const float* rstd, const float* g_y,
                               const float* g_sum, float* dx, float* dw, int64_t N, int64_t C);
// layer_norm over the last dim: y = (x - mean) * rstd * w + b; b may be null.
void layer_norm_forward_f32(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                            int64_t N, int64_t C, float eps);
// dx, dw, db written (db may be null).
void layer_norm_backward_f32(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                             float* dx, float* dw, float* db, int64_t N, int64_t C);

// ---- fused: rotary embedding (rotary.cc) ---------------------------------
// HF rotate_half convention. x, out: (B, T, H, D); positions: (B, T) int32; inv_freq: (D/2).
// angle = float(pos) * inv_freq[i] (f32); c = cos(angle) * scaling, s = sin(angle) * scaling;
// out[i] = x[i] * c - x[i + D/2] * s;  out[i + D/2] = x[i + D/2] * c + x[i] * s   (i < D/2).
// inverse=1 applies the transpose rotation (s -> -s), which is the backward. out may alias x.
void rotary_f32(const float* x, const int32_t* positions, const float* inv_freq, float* out, int64_t B, int64_t T,
                int64_t H, int64_t D, float scaling, int inverse);

// ---- fused: attention (attention.cc) -------------------------------------
// Scaled dot-product attention, blocked with an online softmax (no Tq x Tk buffer).
// q, out: (B, Tq, Hq, D); k, v: (B, Tk, Hkv, D); Hq % Hkv == 0, query head h reads kv head h / (Hq/Hkv).
// lse: (B, Hq, Tq) logsumexp of the scaled, masked scores (-inf when no key is visible; out row = 0 then).
// Query i sits at absolute position Tk - Tq + i. Key s is visible to query i when:
//   causal ? s <= Tk - Tq + i : true;  key_mask == null || key_mask[b*Tk + s] != 0;
//   doc_ids == null || doc_ids[b*Tk + s] == doc_ids[b*Tk + (Tk - Tq + i)].
// Forward only: k, v, key_mask and doc_ids may hold kv_capacity >= Tk rows per batch entry (a
// preallocated KV cache of which the first Tk are filled); batch b starts at row b*kv_capacity.
void attention_forward_f32(const float* q, const float* k, const float* v, const int32_t* key_mask,
                           const int32_t* doc_ids, float* out, float* lse, int64_t B, int64_t Tq, int64_t Tk,
                           int64_t Hq, int64_t Hkv, int64_t D, float scale, int causal, int64_t kv_capacity);
// dq, dk, dv written (not accumulated); same shapes as q, k, v.
void attention_backward_f32(const float* q, const float* k, const float* v, const float* out, const float* lse,
                            const float* dout, const int32_t* key_mask, const int32_t* doc_ids, float* dq, float* dk,
                            float* dv, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                            float scale, int causal);

// ---- fused: cross-entropy (cross_entropy.cc) -----------------------------
// Per-row loss over logits (N, V) in vocab chunks (online logsumexp, one read of the row):
//   loss_i = (1-eps) * (lse_i - x_i[y_i]) + eps * (lse_i - mean_j x_ij);  label == ignore_index -> loss 0.
// lse (N) is saved for the backward. Returns -(row+1) on a label outside [0, V) that is not ignored, else 0.
int64_t cross_entropy_forward_f32(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t N,
                                  int64_t V, int32_t ignore_index, float eps);
// dlogits_ij = g_i * (exp(x_ij - lse_i) - (1-eps)*[j == y_i] - eps/V); ignored rows -> 0.
void cross_entropy_backward_f32(const float* logits, const int32_t* labels, const float* lse, const float* g,
                                float* dlogits, int64_t N, int64_t V, int32_t ignore_index, float eps);

// ---- fused: SwiGLU (swiglu.cc) -------------------------------------------
// Backward of swiglu (below) recomputing silu from gate, bitwise the unfused chain's on CPU:
//   dup = g * silu(gate);  dgate = (g * up) * s * (1 + gate * (1 - s)),  s = sigmoid(gate).
void swiglu_backward_f32(const float* gate, const float* up, const float* g, float* dgate, float* dup, int64_t n);

// ---- fused: optimizer (optim.cc) -----------------------------------------
// torch.optim.AdamW, in place, on grad * grad_scale:
//   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
//   p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
void adamw_step_f32(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps,
                    float wd, int64_t step, float grad_scale);
// Sum of squares in double (for global grad-norm clipping).
double sum_squares_f32(const float* x, int64_t n);
// x *= s in place.
void scale_inplace_f32(float* x, int64_t n, float s);
// Multi-tensor forms (one launch per training step on a GPU). The pointer and size arrays are host
// arrays of `count` entries; the tensors are device memory on CUDA.
// adamw_step_f32 on each tensor t with weight decay weight_decay[t]: bitwise the per-tensor results.
void adamw_multi(float* const* p, const float* const* g, float* const* m, float* const* v, const int64_t* n,
                 const float* weight_decay, int64_t count, float lr, float b1, float b2, float eps, int64_t step,
                 float grad_scale);
// Sum over the tensors of their sums of squares, in double. CPU: bitwise the per-tensor
// sum_squares_f32 added in order from 0. CUDA: one deterministic reduction, one read-back.
double sum_squares_multi(const float* const* x, const int64_t* n, int64_t count);

// ---- dtype entry points (dtype_dispatch.cc on CPU; native/cuda on GPU) ---------
// The binding calls these. `dtype` is a cast code: 0 f32, or 3 bf16 = the same op on bf16
// storage with f32 math inside and bf16 (round-to-nearest-even) outputs. Statistics saved for
// a backward (rstd, mean, lse) and losses stay f32; comparisons write uint8, argmax/argmin int32.
// The CPU computes bf16 by widening to f32 temporaries, which defines the reference the GPU's
// native bf16 kernels are tested against. Backward kernels are f32 only.
void unary(int op, const void* x, void* out, int64_t n, int dtype);
void clamp(const void* x, void* out, int64_t n, float lo, float hi, int dtype);
// out = silu(gate) * up in one pass (swiglu.cc, implemented directly for both dtypes): bitwise the
// unfused unary(U_SILU) then binary(B_MUL). For bf16 that chain rounds silu(gate) to bf16 before
// the product (as HF's act_fn(gate) * up, Liger and Unsloth do), so this op rounds twice too.
void swiglu(const void* gate, const void* up, void* out, int64_t n, int dtype);
void binary(int op, const void* a, const int64_t* a_strides, const void* b, const int64_t* b_strides, void* out,
            const int64_t* shape, int ndim, int dtype);
void where(const uint8_t* cond, const int64_t* c_strides, const void* a, const int64_t* a_strides, const void* b,
           const int64_t* b_strides, void* out, const int64_t* shape, int ndim, int dtype);
void reduce(int op, const void* x, void* out, int64_t outer, int64_t R, int64_t inner, int correction, int dtype);
void softmax_forward(const void* x, void* y, int64_t N, int64_t C, int log, int dtype);
void rms_norm_forward(const void* x, const void* w, void* y, float* rstd, int64_t N, int64_t C, float eps, int dtype);
// Fused residual add + RMSNorm (norm.cc, implemented directly for both dtypes): sum = x + residual,
// rounded to the storage dtype, and y = rms_norm(sum) with rstd (N) saved, in one pass over each row.
// Bitwise binary(B_ADD) followed by rms_norm_forward in the same dtype.
void add_rms_norm_forward(const void* x, const void* residual, const void* w, void* sum, void* y, float* rstd,
                          int64_t N, int64_t C, float eps, int dtype);
void layer_norm_forward(const void* x, const void* w, const void* b, void* y, float* mean, float* rstd, int64_t N,
                        int64_t C, float eps, int dtype);
void rotary(const void* x, const int32_t* positions, const float* inv_freq, void* out, int64_t B, int64_t T, int64_t H,
            int64_t D, float scaling, int inverse, int dtype);
void attention_forward(const void* q, const void* k, const void* v, const int32_t* key_mask, const int32_t* doc_ids,
                       void* out, float* lse, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                       float scale, int causal, int64_t kv_capacity, int dtype);
// Autocast's mixed-precision attention: q, k, v (and dout) are bf16, everything else f32, k/v hold
// exactly Tk rows per batch entry. The definition (the CPU's) is the f32 kernels on the widened
// inputs: out (not rounded) and lse as attention_forward_f32; dq, dk, dv (written) as
// attention_backward_f32 with the widened dout. The GPU's tensor-core kernels round P and dS to
// bf16 for their second products (as FlashAttention does) and so match it to bf16 tolerance.
void attention_forward_mixed(const void* q, const void* k, const void* v, const int32_t* key_mask,
                             const int32_t* doc_ids, float* out, float* lse, int64_t B, int64_t Tq, int64_t Tk,
                             int64_t Hq, int64_t Hkv, int64_t D, float scale, int causal);
void attention_backward_mixed(const void* q, const void* k, const void* v, const float* out, const float* lse,
                              const void* dout, const int32_t* key_mask, const int32_t* doc_ids, float* dq, float* dk,
                              float* dv, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                              float scale, int causal);
int64_t cross_entropy_forward(const void* logits, const int32_t* labels, float* loss, float* lse, int64_t N, int64_t V,
                              int32_t ignore_index, float eps, int dtype);

}  // namespace temper
