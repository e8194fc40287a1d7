// The dtype entry points of kernels.h on CPU: f32 goes straight to the kernels; bf16 widens
// its inputs to f32 temporaries, runs the f32 kernel and rounds the outputs back. That is the
// definition of temper's bf16 ops (f32 math on bf16-rounded values, one rounding at the end),
// which the GPU's native bf16 kernels must reproduce.
#include <stdexcept>
#include <string>
#include "kernels.h"

namespace temper {
namespace {

constexpr int kF32 = 0, kBF16 = 3;

// An f32 copy of a bf16 buffer (or a fresh f32 buffer for an output), freed on scope exit.
class Widened {
 public:
  Widened(const void* src, int64_t n) : n_(n < 0 ? 0 : n) {
    p_ = static_cast<float*>(buffer_alloc((size_t)n_ * sizeof(float)));
    if (src && n_) cast(src, kBF16, p_, kF32, n_);
  }
  ~Widened() { buffer_free(p_, (size_t)n_ * sizeof(float)); }
  Widened(const Widened&) = delete;
  Widened& operator=(const Widened&) = delete;
  float* get() const { return p_; }
  void store(void* dst) const {
    if (n_) cast(p_, kF32, dst, kBF16, n_);
  }

 private:
  int64_t n_;
  float* p_;
};

void check_dtype(int dtype, const char* op) {
  if (dtype != kF32 && dtype != kBF16)
    throw std::invalid_argument(std::string(op) + ": dtype code " + std::to_string(dtype) + " is not f32 or bf16");
}

// Elements a broadcast operand holds: the extent of every dim it does not broadcast over.
int64_t operand_numel(const int64_t* strides, const int64_t* shape, int ndim) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++)
    if (strides[d] != 0) n *= shape[d];
  return n;
}

bool is_compare(int op) { return op >= B_EQ; }

}  // namespace

void unary(int op, const void* x, void* out, int64_t n, int dtype) {
  check_dtype(dtype, "unary");
  if (dtype == kF32) return unary_f32(op, static_cast<const float*>(x), static_cast<float*>(out), n);
  Widened w(x, n);
  unary_f32(op, w.get(), w.get(), n);
  w.store(out);
}

void clamp(const void* x, void* out, int64_t n, float lo, float hi, int dtype) {
  check_dtype(dtype, "clamp");
  if (dtype == kF32) return clamp_f32(static_cast<const float*>(x), static_cast<float*>(out), n, lo, hi);
  Widened w(x, n);
  clamp_f32(w.get(), w.get(), n, lo, hi);
  w.store(out);
}

void binary(int op, const void* a, const int64_t* sa, const void* b, const int64_t* sb, void* out, const int64_t* shape,
            int ndim, int dtype) {
  check_dtype(dtype, "binary");
  if (dtype == kF32)
    return binary_f32(op, static_cast<const float*>(a), sa, static_cast<const float*>(b), sb, out, shape, ndim);
  int64_t total = 1;
  for (int d = 0; d < ndim; d++) total *= shape[d];
  Widened wa(a, operand_numel(sa, shape, ndim)), wb(b, operand_numel(sb, shape, ndim));
  if (is_compare(op)) return binary_f32(op, wa.get(), sa, wb.get(), sb, out, shape, ndim);
  Widened wo(nullptr, total);
  binary_f32(op, wa.get(), sa, wb.get(), sb, wo.get(), shape, ndim);
  wo.store(out);
}

void where(const uint8_t* cond, const int64_t* sc, const void* a, const int64_t* sa, const void* b, const int64_t* sb,
           void* out, const int64_t* shape, int ndim, int dtype) {
  check_dtype(dtype, "where");
  if (dtype == kF32)
    return where_f32(cond, sc, static_cast<const float*>(a), sa, static_cast<const float*>(b), sb, static_cast<float*>(out),
                     shape, ndim);
  int64_t total = 1;
  for (int d = 0; d < ndim; d++) total *= shape[d];
  Widened wa(a, operand_numel(sa, shape, ndim)), wb(b, operand_numel(sb, shape, ndim)), wo(nullptr, total);
  where_f32(cond, sc, wa.get(), sa, wb.get(), sb, wo.get(), shape, ndim);
  wo.store(out);
}

void reduce(int op, const void* x, void* out, int64_t outer, int64_t R, int64_t inner, int correction, int dtype) {
  check_dtype(dtype, "reduce");
  if (dtype == kF32) return reduce_f32(op, static_cast<const float*>(x), out, outer, R, inner, correction);
  Widened wx(x, outer * R * inner);
  if (op == R_ARGMAX || op == R_ARGMIN) return reduce_f32(op, wx.get(), out, outer, R, inner, correction);
  Widened wo(nullptr, outer * inner);
  reduce_f32(op, wx.get(), wo.get(), outer, R, inner, correction);
  wo.store(out);
}

void softmax_forward(const void* x, void* y, int64_t N, int64_t C, int log, int dtype) {
  check_dtype(dtype, "softmax");
  if (dtype == kF32) return softmax_forward_f32(static_cast<const float*>(x), static_cast<float*>(y), N, C, log);
  Widened w(x, N * C);
  softmax_forward_f32(w.get(), w.get(), N, C, log);
  w.store(y);
}

void rms_norm_forward(const void* x, const void* w, void* y, float* rstd, int64_t N, int64_t C, float eps, int dtype) {
  check_dtype(dtype, "rms_norm");
  if (dtype == kF32)
    return rms_norm_forward_f32(static_cast<const float*>(x), static_cast<const float*>(w), static_cast<float*>(y), rstd,
                                N, C, eps);
  Widened wx(x, N * C), ww(w, C), wy(nullptr, N * C);
  rms_norm_forward_f32(wx.get(), ww.get(), wy.get(), rstd, N, C, eps);
  wy.store(y);
}

void layer_norm_forward(const void* x, const void* w, const void* b, void* y, float* mean, float* rstd, int64_t N,
                        int64_t C, float eps, int dtype) {
  check_dtype(dtype, "layer_norm");
  if (dtype == kF32)
    return layer_norm_forward_f32(static_cast<const float*>(x), static_cast<const float*>(w),
                                  static_cast<const float*>(b), static_cast<float*>(y), mean, rstd, N, C, eps);
  Widened wx(x, N * C), ww(w, w ? C : 0), wb(b, b ? C : 0), wy(nullptr, N * C);
  layer_norm_forward_f32(wx.get(), w ? ww.get() : nullptr, b ? wb.get() : nullptr, wy.get(), mean, rstd, N, C, eps);
  wy.store(y);
}

void rotary(const void* x, const int32_t* pos, const float* inv_freq, void* out, int64_t B, int64_t T, int64_t H,
            int64_t D, float scaling, int inverse, int dtype) {
  check_dtype(dtype, "rotary");
  if (dtype == kF32)
    return rotary_f32(static_cast<const float*>(x), pos, inv_freq, static_cast<float*>(out), B, T, H, D, scaling, inverse);
  Widened w(x, B * T * H * D);
  rotary_f32(w.get(), pos, inv_freq, w.get(), B, T, H, D, scaling, inverse);
  w.store(out);
}

void attention_forward(const void* q, const void* k, const void* v, const int32_t* key_mask, const int32_t* doc_ids,
                       void* out, float* lse, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                       float scale, int causal, int64_t kv_capacity, int dtype) {
  check_dtype(dtype, "attention");
  if (dtype == kF32)
    return attention_forward_f32(static_cast<const float*>(q), static_cast<const float*>(k), static_cast<const float*>(v),
                                 key_mask, doc_ids, static_cast<float*>(out), lse, B, Tq, Tk, Hq, Hkv, D, scale, causal,
                                 kv_capacity);
  // k and v hold kv_capacity rows per batch entry; only the first Tk are read, but widening
  // all of them keeps the layout the f32 kernel expects.
  Widened wq(q, B * Tq * Hq * D), wk(k, B * kv_capacity * Hkv * D), wv(v, B * kv_capacity * Hkv * D),
      wo(nullptr, B * Tq * Hq * D);
  attention_forward_f32(wq.get(), wk.get(), wv.get(), key_mask, doc_ids, wo.get(), lse, B, Tq, Tk, Hq, Hkv, D, scale,
                        causal, kv_capacity);
  wo.store(out);
}

void attention_forward_mixed(const void* q, const void* k, const void* v, const int32_t* key_mask,
                             const int32_t* doc_ids, float* out, float* lse, int64_t B, int64_t Tq, int64_t Tk,
                             int64_t Hq, int64_t Hkv, int64_t D, float scale, int causal) {
  Widened wq(q, B * Tq * Hq * D), wk(k, B * Tk * Hkv * D), wv(v, B * Tk * Hkv * D);
  attention_forward_f32(wq.get(), wk.get(), wv.get(), key_mask, doc_ids, out, lse, B, Tq, Tk, Hq, Hkv, D, scale, causal,
                        Tk);
}

void attention_backward_mixed(const void* q, const void* k, const void* v, const float* out, const float* lse,
                              const void* dout, const int32_t* key_mask, const int32_t* doc_ids, float* dq, float* dk,
                              float* dv, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                              float scale, int causal) {
  Widened wq(q, B * Tq * Hq * D), wk(k, B * Tk * Hkv * D), wv(v, B * Tk * Hkv * D), wdo(dout, B * Tq * Hq * D);
  attention_backward_f32(wq.get(), wk.get(), wv.get(), out, lse, wdo.get(), key_mask, doc_ids, dq, dk, dv, B, Tq, Tk,
                         Hq, Hkv, D, scale, causal);
}

int64_t cross_entropy_forward(const void* logits, const int32_t* labels, float* loss, float* lse, int64_t N, int64_t V,
                              int32_t ignore_index, float eps, int dtype) {
  check_dtype(dtype, "cross_entropy");
  if (dtype == kF32)
    return cross_entropy_forward_f32(static_cast<const float*>(logits), labels, loss, lse, N, V, ignore_index, eps);
  Widened w(logits, N * V);
  return cross_entropy_forward_f32(w.get(), labels, loss, lse, N, V, ignore_index, eps);
}

}  // namespace temper
