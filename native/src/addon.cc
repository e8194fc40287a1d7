// Node-API surface of the kernels. Buffers are opaque External handles; every
// pointer argument is a (handle, byteOffset) pair so views share one allocation.
// No shape logic here: src/tensor validates shapes before calling in.
// The same file builds the CPU addon (native/src) and, with TEMPER_CUDA, the CUDA addon
// (native/cuda), whose kernels take device pointers behind the same signatures.
#include <napi.h>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "kernels.h"
#ifdef TEMPER_CUDA
#include "../cuda/runtime.h"
#endif

namespace {
using namespace temper;

struct Buf {
  void* data;
  size_t nbytes;
  bool freed;
};

size_t g_leaked_bytes = 0;  // buffers whose handle was collected without dispose (reported, not freed)

// Reads positional arguments in order, with the checks every kernel needs.
class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info) {}
  void* ptr() {
    const Napi::Value& v = info_[i_++];
    return at(v, info_[i_++].As<Napi::Number>().Int64Value());
  }
  // A flat array [handle0, byteOffset0, handle1, byteOffset1, ...] of `count` pointers.
  template <typename T>
  std::vector<T*> ptrs(size_t count) {
    Napi::Array a = info_[i_++].As<Napi::Array>();
    if (a.Length() != 2 * count) throw Napi::TypeError::New(info_.Env(), "temper native: expected " + std::to_string(count) + " (handle, offset) pairs");
    std::vector<T*> out(count);
    for (uint32_t k = 0; k < count; k++) out[k] = static_cast<T*>(at(a.Get(2 * k), a.Get(2 * k + 1).As<Napi::Number>().Int64Value()));
    return out;
  }
  float* f32() { return static_cast<float*>(ptr()); }
  int32_t* i32() { return static_cast<int32_t*>(ptr()); }
  uint8_t* u8() { return static_cast<uint8_t*>(ptr()); }
  int64_t i64() { return info_[i_++].As<Napi::Number>().Int64Value(); }
  // The trailing dtype code of the dtype entry points (f32 when the caller leaves it out).
  int dtype() { return i_ < info_.Length() && info_[i_].IsNumber() ? (int)i64() : 0; }
  int i() { return (int)i64(); }
  double f64() { return info_[i_++].As<Napi::Number>().DoubleValue(); }
  float f() { return (float)f64(); }
  uint64_t u64() {  // seeds arrive as BigInt so all 64 bits survive
    bool lossless;
    return info_[i_++].As<Napi::BigInt>().Uint64Value(&lossless);
  }
  std::vector<int64_t> vec() {
    Napi::Array a = info_[i_++].As<Napi::Array>();
    std::vector<int64_t> out(a.Length());
    for (uint32_t k = 0; k < a.Length(); k++) out[k] = a.Get(k).As<Napi::Number>().Int64Value();
    return out;
  }
  std::vector<float> fvec() {
    Napi::Array a = info_[i_++].As<Napi::Array>();
    std::vector<float> out(a.Length());
    for (uint32_t k = 0; k < a.Length(); k++) out[k] = (float)a.Get(k).As<Napi::Number>().DoubleValue();
    return out;
  }

 private:
  void* at(const Napi::Value& v, int64_t off) {
    if (v.IsNull() || v.IsUndefined()) return nullptr;
    if (!v.IsExternal()) throw Napi::TypeError::New(info_.Env(), "temper native: expected a buffer handle");
    Buf* b = v.As<Napi::External<Buf>>().Data();
    if (b->freed) throw Napi::Error::New(info_.Env(), "temper native: buffer used after dispose");
    return static_cast<char*>(b->data) + off;
  }
  const Napi::CallbackInfo& info_;
  size_t i_ = 0;
};

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  size_t n = (size_t)info[0].As<Napi::Number>().Int64Value();
  void* p;
  try {
    p = buffer_alloc(n);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), "temper: out of memory allocating " + std::to_string(n) + " bytes");
  }
  Buf* b = new Buf{p, n, false};
  return Napi::External<Buf>::New(info.Env(), b, [](Napi::Env, Buf* b) {
    if (!b->freed) g_leaked_bytes += b->nbytes;  // owned memory must be disposed; we only report
    else delete b;
  });
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Buf* b = info[0].As<Napi::External<Buf>>().Data();
  if (!b->freed) {
    buffer_free(b->data, b->nbytes);
    b->freed = true;
    b->data = nullptr;
  }
  return info.Env().Undefined();
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("liveBytes", (double)live_bytes());
  o.Set("peakBytes", (double)peak_bytes());
  o.Set("cachedBytes", (double)cached_bytes());
  o.Set("leakedBytes", (double)g_leaked_bytes);
  return o;
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  reset_peak_bytes();
  return info.Env().Undefined();
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  empty_cache();
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

// write(handle, byteOffset, typedArray): host -> buffer copy.
Napi::Value Write(const Napi::CallbackInfo& info) {
  Args a(info);
  void* dst = a.ptr();
  Napi::TypedArray t = info[2].As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = t.ArrayBuffer();
  copy_to_buffer(dst, static_cast<char*>(ab.Data()) + t.ByteOffset(), t.ByteLength());
  return info.Env().Undefined();
}

// read(handle, byteOffset, nbytes) -> ArrayBuffer copy.
Napi::Value Read(const Napi::CallbackInfo& info) {
  Args a(info);
  void* src = a.ptr();
  int64_t n = a.i64();
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), (size_t)n);
  copy_from_buffer(ab.Data(), src, (size_t)n);
  return ab;
}

#define KERNEL(NAME) Napi::Value NAME(const Napi::CallbackInfo& info)
#define UNDEF return info.Env().Undefined()
#define NUM(x) return Napi::Number::New(info.Env(), (double)(x))

KERNEL(Unary) { Args a(info); int op = a.i(); void* x = a.ptr(); void* o = a.ptr(); auto n = a.i64(); unary(op, x, o, n, a.dtype()); UNDEF; }
KERNEL(UnaryBackward) {
  Args a(info); int op = a.i(); auto x = a.f32(); auto y = a.f32(); auto g = a.f32(); auto dx = a.f32();
  unary_backward_f32(op, x, y, g, dx, a.i64()); UNDEF;
}
KERNEL(Swiglu) { Args a(info); void* g = a.ptr(); void* u = a.ptr(); void* o = a.ptr(); auto n = a.i64(); swiglu(g, u, o, n, a.dtype()); UNDEF; }
KERNEL(SwigluBackward) {
  Args a(info); auto g = a.f32(); auto u = a.f32(); auto dy = a.f32(); auto dg = a.f32(); auto du = a.f32();
  swiglu_backward_f32(g, u, dy, dg, du, a.i64()); UNDEF;
}
KERNEL(Clamp) {
  Args a(info); void* x = a.ptr(); void* o = a.ptr(); auto n = a.i64(); float lo = a.f(); float hi = a.f(); clamp(x, o, n, lo, hi, a.dtype()); UNDEF;
}
KERNEL(Binary) {
  Args a(info); int op = a.i(); void* x = a.ptr(); auto sx = a.vec(); void* y = a.ptr(); auto sy = a.vec();
  void* o = a.ptr(); auto shape = a.vec();
  binary(op, x, sx.data(), y, sy.data(), o, shape.data(), (int)shape.size(), a.dtype()); UNDEF;
}
KERNEL(Where) {
  Args a(info); auto c = a.u8(); auto sc = a.vec(); void* x = a.ptr(); auto sx = a.vec(); void* y = a.ptr(); auto sy = a.vec();
  void* o = a.ptr(); auto shape = a.vec();
  where(c, sc.data(), x, sx.data(), y, sy.data(), o, shape.data(), (int)shape.size(), a.dtype()); UNDEF;
}
KERNEL(StridedCopy) {
  Args a(info); void* s = a.ptr(); auto ss = a.vec(); void* d = a.ptr(); auto ds = a.vec(); auto shape = a.vec();
  strided_copy(s, ss.data(), d, ds.data(), shape.data(), (int)shape.size(), a.i()); UNDEF;
}
KERNEL(Fill) {
  Args a(info); int dtype = a.i(); void* o = a.ptr(); auto n = a.i64(); double v = a.f64();
  if (dtype == 0) fill_f32((float*)o, n, (float)v);
  else if (dtype == 1) fill_i32((int32_t*)o, n, (int32_t)v);
  else if (dtype == 2) fill_u8((uint8_t*)o, n, (uint8_t)v);
  else throw Napi::TypeError::New(info.Env(), "fill: unsupported dtype code");
  UNDEF;
}
KERNEL(Cast) { Args a(info); void* s = a.ptr(); int sd = a.i(); void* d = a.ptr(); int dd = a.i(); cast(s, sd, d, dd, a.i64()); UNDEF; }
KERNEL(Reduce) {
  Args a(info); int op = a.i(); void* x = a.ptr(); void* o = a.ptr(); auto outer = a.i64(); auto R = a.i64(); auto inner = a.i64();
  int correction = a.i(); reduce(op, x, o, outer, R, inner, correction, a.dtype()); UNDEF;
}
KERNEL(Matmul) {
  Args a(info); void* A = a.ptr(); void* B = a.ptr(); void* C = a.ptr();
  auto batch = a.i64(); auto M = a.i64(); auto N = a.i64(); auto K = a.i64(); int ta = a.i(); int tb = a.i();
  auto abs_ = a.i64(); auto bbs = a.i64(); float alpha = a.f(); float beta = a.f();
  int dtype = a.dtype();
  int out_dtype = info.Length() > 17 ? a.i() : dtype;
  matmul(A, B, C, batch, M, N, K, ta, tb, abs_, bbs, alpha, beta, dtype, out_dtype); UNDEF;
}
KERNEL(Softmax) {
  Args a(info); void* x = a.ptr(); void* y = a.ptr(); auto N = a.i64(); auto C = a.i64(); int log = a.i();
  softmax_forward(x, y, N, C, log, a.dtype()); UNDEF;
}
KERNEL(SoftmaxBackward) {
  Args a(info); auto y = a.f32(); auto dy = a.f32(); auto dx = a.f32(); auto N = a.i64(); auto C = a.i64();
  softmax_backward_f32(y, dy, dx, N, C, a.i()); UNDEF;
}
KERNEL(IndexSelect) {
  Args a(info); void* x = a.ptr(); auto idx = a.i32(); void* o = a.ptr(); auto outer = a.i64(); auto X = a.i64(); auto I = a.i64();
  auto inner = a.i64(); NUM(index_select(x, idx, o, outer, X, I, inner, a.i()));
}
KERNEL(Gather) {
  Args a(info); auto x = a.f32(); auto idx = a.i32(); auto o = a.f32(); auto outer = a.i64(); auto X = a.i64(); auto I = a.i64();
  NUM(gather_f32(x, idx, o, outer, X, I, a.i64()));
}
KERNEL(ScatterAdd) {
  Args a(info); auto o = a.f32(); auto idx = a.i32(); auto src = a.f32(); auto outer = a.i64(); auto X = a.i64(); auto I = a.i64();
  auto inner = a.i64(); NUM(scatter_add_f32(o, idx, src, outer, X, I, inner, a.i()));
}
KERNEL(OneHot) { Args a(info); auto idx = a.i32(); auto o = a.f32(); auto N = a.i64(); NUM(one_hot_f32(idx, o, N, a.i64())); }
KERNEL(Cumsum) {
  Args a(info); auto x = a.f32(); auto o = a.f32(); auto outer = a.i64(); auto R = a.i64(); auto inner = a.i64();
  cumsum_f32(x, o, outer, R, inner, a.i()); UNDEF;
}
KERNEL(SortRows) {
  Args a(info); auto x = a.f32(); auto v = a.f32(); auto idx = a.i32(); auto N = a.i64(); auto C = a.i64(); auto k = a.i64();
  sort_rows_f32(x, v, idx, N, C, k, a.i()); UNDEF;
}
KERNEL(RandUniform) { Args a(info); auto o = a.f32(); auto n = a.i64(); auto s = a.u64(); auto off = a.u64(); float lo = a.f(); rand_uniform_f32(o, n, s, off, lo, a.f()); UNDEF; }
KERNEL(RandNormal) { Args a(info); auto o = a.f32(); auto n = a.i64(); auto s = a.u64(); auto off = a.u64(); float m = a.f(); rand_normal_f32(o, n, s, off, m, a.f()); UNDEF; }
KERNEL(RandInt) { Args a(info); auto o = a.i32(); auto n = a.i64(); auto s = a.u64(); auto off = a.u64(); int lo = a.i(); rand_int_i32(o, n, s, off, lo, a.i()); UNDEF; }
KERNEL(Dropout) {
  Args a(info); auto x = a.f32(); auto o = a.f32(); auto m = a.f32(); auto n = a.i64(); auto s = a.u64(); auto off = a.u64();
  dropout_f32(x, o, m, n, s, off, a.f()); UNDEF;
}
KERNEL(RmsNorm) {
  Args a(info); void* x = a.ptr(); void* w = a.ptr(); void* y = a.ptr(); auto r = a.f32(); auto N = a.i64(); auto C = a.i64();
  float eps = a.f(); rms_norm_forward(x, w, y, r, N, C, eps, a.dtype()); UNDEF;
}
KERNEL(RmsNormBackward) {
  Args a(info); auto x = a.f32(); auto w = a.f32(); auto r = a.f32(); auto dy = a.f32(); auto dx = a.f32(); auto dw = a.f32();
  auto N = a.i64(); rms_norm_backward_f32(x, w, r, dy, dx, dw, N, a.i64()); UNDEF;
}
KERNEL(AddRmsNorm) {
  Args a(info); void* x = a.ptr(); void* res = a.ptr(); void* w = a.ptr(); void* sum = a.ptr(); void* y = a.ptr(); auto r = a.f32();
  auto N = a.i64(); auto C = a.i64(); float eps = a.f(); add_rms_norm_forward(x, res, w, sum, y, r, N, C, eps, a.dtype()); UNDEF;
}
KERNEL(AddRmsNormBackward) {  // g_sum may be null
  Args a(info); auto s = a.f32(); auto w = a.f32(); auto r = a.f32(); auto gy = a.f32(); auto gs = a.f32(); auto dx = a.f32();
  auto dw = a.f32(); auto N = a.i64(); add_rms_norm_backward_f32(s, w, r, gy, gs, dx, dw, N, a.i64()); UNDEF;
}
KERNEL(LayerNorm) {
  Args a(info); void* x = a.ptr(); void* w = a.ptr(); void* b = a.ptr(); void* y = a.ptr(); auto mu = a.f32(); auto r = a.f32();
  auto N = a.i64(); auto C = a.i64(); float eps = a.f(); layer_norm_forward(x, w, b, y, mu, r, N, C, eps, a.dtype()); UNDEF;
}
KERNEL(LayerNormBackward) {
  Args a(info); auto x = a.f32(); auto w = a.f32(); auto mu = a.f32(); auto r = a.f32(); auto dy = a.f32(); auto dx = a.f32();
  auto dw = a.f32(); auto db = a.f32(); auto N = a.i64(); layer_norm_backward_f32(x, w, mu, r, dy, dx, dw, db, N, a.i64()); UNDEF;
}
KERNEL(Rotary) {
  Args a(info); void* x = a.ptr(); auto pos = a.i32(); auto inv = a.f32(); void* o = a.ptr(); auto B = a.i64(); auto T = a.i64();
  auto H = a.i64(); auto D = a.i64(); float sc = a.f(); int inverse = a.i(); rotary(x, pos, inv, o, B, T, H, D, sc, inverse, a.dtype()); UNDEF;
}
KERNEL(Attention) {
  Args a(info); void* q = a.ptr(); void* k = a.ptr(); void* v = a.ptr(); auto km = a.i32(); auto doc = a.i32(); void* o = a.ptr();
  auto lse = a.f32(); auto B = a.i64(); auto Tq = a.i64(); auto Tk = a.i64(); auto Hq = a.i64(); auto Hkv = a.i64();
  auto D = a.i64(); float sc = a.f(); int causal = a.i(); auto cap = a.i64();
  attention_forward(q, k, v, km, doc, o, lse, B, Tq, Tk, Hq, Hkv, D, sc, causal, cap, a.dtype()); UNDEF;
}
KERNEL(AttentionBackward) {
  Args a(info); auto q = a.f32(); auto k = a.f32(); auto v = a.f32(); auto o = a.f32(); auto lse = a.f32(); auto dout = a.f32();
  auto km = a.i32(); auto doc = a.i32(); auto dq = a.f32(); auto dk = a.f32(); auto dv = a.f32();
  auto B = a.i64(); auto Tq = a.i64(); auto Tk = a.i64(); auto Hq = a.i64(); auto Hkv = a.i64(); auto D = a.i64(); float sc = a.f();
  attention_backward_f32(q, k, v, o, lse, dout, km, doc, dq, dk, dv, B, Tq, Tk, Hq, Hkv, D, sc, a.i()); UNDEF;
}
KERNEL(AttentionMixed) {  // autocast: bf16 q, k, v -> f32 out
  Args a(info); void* q = a.ptr(); void* k = a.ptr(); void* v = a.ptr(); auto km = a.i32(); auto doc = a.i32(); auto o = a.f32();
  auto lse = a.f32(); auto B = a.i64(); auto Tq = a.i64(); auto Tk = a.i64(); auto Hq = a.i64(); auto Hkv = a.i64();
  auto D = a.i64(); float sc = a.f(); attention_forward_mixed(q, k, v, km, doc, o, lse, B, Tq, Tk, Hq, Hkv, D, sc, a.i()); UNDEF;
}
KERNEL(AttentionBackwardMixed) {  // bf16 q, k, v, dout; f32 out, lse and gradients
  Args a(info); void* q = a.ptr(); void* k = a.ptr(); void* v = a.ptr(); auto o = a.f32(); auto lse = a.f32(); void* dout = a.ptr();
  auto km = a.i32(); auto doc = a.i32(); auto dq = a.f32(); auto dk = a.f32(); auto dv = a.f32();
  auto B = a.i64(); auto Tq = a.i64(); auto Tk = a.i64(); auto Hq = a.i64(); auto Hkv = a.i64(); auto D = a.i64(); float sc = a.f();
  attention_backward_mixed(q, k, v, o, lse, dout, km, doc, dq, dk, dv, B, Tq, Tk, Hq, Hkv, D, sc, a.i()); UNDEF;
}
KERNEL(CrossEntropy) {
  Args a(info); void* x = a.ptr(); auto y = a.i32(); auto loss = a.f32(); auto lse = a.f32(); auto N = a.i64(); auto V = a.i64();
  int ig = a.i(); float eps = a.f(); NUM(cross_entropy_forward(x, y, loss, lse, N, V, ig, eps, a.dtype()));
}
KERNEL(CrossEntropyBackward) {
  Args a(info); auto x = a.f32(); auto y = a.i32(); auto lse = a.f32(); auto g = a.f32(); auto dx = a.f32(); auto N = a.i64();
  auto V = a.i64(); int ig = a.i(); cross_entropy_backward_f32(x, y, lse, g, dx, N, V, ig, a.f()); UNDEF;
}
KERNEL(AdamW) {
  Args a(info); auto p = a.f32(); auto g = a.f32(); auto m = a.f32(); auto v = a.f32(); auto n = a.i64(); float lr = a.f();
  float b1 = a.f(); float b2 = a.f(); float eps = a.f(); float wd = a.f(); auto step = a.i64();
  adamw_step_f32(p, g, m, v, n, lr, b1, b2, eps, wd, step, a.f()); UNDEF;
}
KERNEL(SumSquares) { Args a(info); auto x = a.f32(); NUM(sum_squares_f32(x, a.i64())); }
// adamwMulti(p, g, m, v, n, wd, lr, b1, b2, eps, step, gradScale): p..v flat (handle, offset) pair
// arrays, n and wd arrays of one entry per tensor.
KERNEL(AdamWMulti) {
  Args a(info); const size_t count = info[4].As<Napi::Array>().Length();
  auto p = a.ptrs<float>(count); auto g = a.ptrs<const float>(count); auto m = a.ptrs<float>(count); auto v = a.ptrs<float>(count);
  auto n = a.vec(); auto wd = a.fvec();
  if (wd.size() != count) throw Napi::TypeError::New(info.Env(), "temper native: adamwMulti: n and wd differ in length");
  float lr = a.f(); float b1 = a.f(); float b2 = a.f(); float eps = a.f(); auto step = a.i64();
  adamw_multi(p.data(), g.data(), m.data(), v.data(), n.data(), wd.data(), (int64_t)count, lr, b1, b2, eps, step, a.f()); UNDEF;
}
KERNEL(SumSquaresMulti) {
  Args a(info); const size_t count = info[1].As<Napi::Array>().Length();
  auto x = a.ptrs<const float>(count); auto n = a.vec(); NUM(sum_squares_multi(x.data(), n.data(), (int64_t)count));
}
KERNEL(ScaleInplace) { Args a(info); auto x = a.f32(); auto n = a.i64(); scale_inplace_f32(x, n, a.f()); UNDEF; }

#ifdef TEMPER_CUDA
KERNEL(DeviceCount) { NUM(cuda::device_count()); }
KERNEL(UseDevice) { cuda::set_device(info[0].As<Napi::Number>().Int32Value()); UNDEF; }
KERNEL(Synchronize) { cuda::synchronize(); UNDEF; }
KERNEL(DeviceName) { return Napi::String::New(info.Env(), cuda::device_name()); }
KERNEL(AllowTf32) { cuda::set_allow_tf32(info[0].As<Napi::Boolean>().Value()); UNDEF; }
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const char* env_threads = std::getenv("TEMPER_NUM_THREADS");
  set_num_threads(env_threads ? std::atoi(env_threads) : 0);
#define EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
  EXPORT("alloc", Alloc); EXPORT("free", Free); EXPORT("stats", Stats); EXPORT("resetPeak", ResetPeak); EXPORT("emptyCache", EmptyCache);
  EXPORT("setThreads", SetThreads); EXPORT("numThreads", NumThreads); EXPORT("write", Write); EXPORT("read", Read);
  EXPORT("unary", Unary); EXPORT("unaryBackward", UnaryBackward); EXPORT("clamp", Clamp); EXPORT("binary", Binary);
  EXPORT("swiglu", Swiglu); EXPORT("swigluBackward", SwigluBackward);
  EXPORT("where", Where); EXPORT("stridedCopy", StridedCopy); EXPORT("fill", Fill); EXPORT("cast", Cast);
  EXPORT("reduce", Reduce); EXPORT("matmul", Matmul); EXPORT("softmax", Softmax); EXPORT("softmaxBackward", SoftmaxBackward);
  EXPORT("indexSelect", IndexSelect); EXPORT("gather", Gather); EXPORT("scatterAdd", ScatterAdd); EXPORT("oneHot", OneHot);
  EXPORT("cumsum", Cumsum); EXPORT("sortRows", SortRows); EXPORT("randUniform", RandUniform); EXPORT("randNormal", RandNormal);
  EXPORT("randInt", RandInt); EXPORT("dropout", Dropout); EXPORT("rmsNorm", RmsNorm); EXPORT("rmsNormBackward", RmsNormBackward);
  EXPORT("addRmsNorm", AddRmsNorm); EXPORT("addRmsNormBackward", AddRmsNormBackward);
  EXPORT("layerNorm", LayerNorm); EXPORT("layerNormBackward", LayerNormBackward); EXPORT("rotary", Rotary);
  EXPORT("attention", Attention); EXPORT("attentionBackward", AttentionBackward); EXPORT("crossEntropy", CrossEntropy);
  EXPORT("attentionMixed", AttentionMixed); EXPORT("attentionBackwardMixed", AttentionBackwardMixed);
  EXPORT("crossEntropyBackward", CrossEntropyBackward); EXPORT("adamw", AdamW); EXPORT("sumSquares", SumSquares);
  EXPORT("scaleInplace", ScaleInplace); EXPORT("adamwMulti", AdamWMulti); EXPORT("sumSquaresMulti", SumSquaresMulti);
#ifdef TEMPER_CUDA
  EXPORT("deviceCount", DeviceCount); EXPORT("useDevice", UseDevice); EXPORT("synchronize", Synchronize);
  EXPORT("deviceName", DeviceName); EXPORT("allowTf32", AllowTf32);
#endif
#undef EXPORT
  return exports;
}

}  // namespace

NODE_API_MODULE(temper_native, Init)
