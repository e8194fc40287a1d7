// Fused scaled dot-product attention on the GPU; mirrors native/src/attention.cc.
// Forward: an online softmax over 32-key tiles staged in shared memory, one lane per key when
// scoring and lanes across D when accumulating P V; when the grid would be small (decoding: a few
// queries, many keys) the keys are split across blocks and the partials merged by a second kernel.
// Backward (FlashAttention-2, P recomputed from lse): dq and delta per query tile, then dk/dv per
// key tile looping over every query of its GQA group, so each output has one writer (no atomics).
// A block's rows are (query, head) pairs sharing one kv head, so K/V tiles are shared by the group.
// The forward also runs on bf16 q, k, v, out: tiles are widened to f32 as they are staged, the math
// is the f32 kernel's, and each output is rounded once (lse stays f32). The backward is f32 only.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <stdexcept>
#include <string>
#include "common.cuh"

namespace temper {

namespace {
using cuda::bf16;
using cuda::from_f32;
using cuda::to_f32;

using cuda::stream;
using cuda::warp_sum;

constexpr int BK = 32;                 // keys per tile: one per lane when scoring
constexpr int RW = 8;                  // query rows per warp (forward, dq)
constexpr int NWQ = 4;                 // warps of a query-tile block (forward at most, dq always)
constexpr int BR = RW * NWQ;           // rows of a dq block; equals BK (out rows are staged in the K buffer)
constexpr int RWK = 4;                 // rows per warp when the dk/dv kernel scores a 32-row tile
constexpr int NWK = BK / RWK;          // warps of a dk/dv block
constexpr int KPW = BK / NWK;          // keys per warp when accumulating dk/dv
constexpr unsigned FULL = 0xffffffffu;
static_assert(BR == BK, "the dq kernel stages out rows in its K tile");

// 4 consecutive elements as one load (16 bytes of f32, 8 of bf16), widened.
template <typename T>
struct alignas(4 * sizeof(T)) Pack4 {
  T v[4];
};
template <typename T>
__device__ __forceinline__ float4 load4(const T* p) {
  const Pack4<T> s = *reinterpret_cast<const Pack4<T>*>(p);
  return make_float4(to_f32(s.v[0]), to_f32(s.v[1]), to_f32(s.v[2]), to_f32(s.v[3]));
}

// Shapes and masks; AttnT adds q, k, v in their storage type.
struct Attn {
  const int32_t *km, *doc;
  int64_t B, Tq, Tk, Hq, Hkv, D, Tkc;
  float scale;
  int causal;
  int64_t G, R;  // heads per kv head; rows per (b, kv head) = Tq*G, row t = query t/G of head g*G + t%G
  int Dp, KS;    // D rounded up to 4; shared-memory row stride with KS/4 odd (per-lane float4 rows do not conflict)
  bool vq, vk, vv, vo, vdo;  // 4-element global loads allowed (D % 4 == 0 and a base aligned to 4 elements)

  __device__ int64_t off() const { return Tk - Tq; }  // absolute position of query 0
  // Row of q/out/dout (times D for the element offset) and index into lse/delta of row t of (b, g).
  __device__ int64_t row(int64_t b, int64_t g, int64_t t) const { return (b * Tq + t / G) * Hq + g * G + t % G; }
  __device__ int64_t lse_at(int64_t b, int64_t g, int64_t t) const { return (b * Hq + g * G + t % G) * Tq + t / G; }
  __device__ int64_t kv(int64_t b, int64_t g, int64_t s) const { return ((b * Tkc + s) * Hkv + g) * D; }
};

template <typename T>
struct AttnT : Attn {
  const T *q, *k, *v;
};

template <typename T>
bool aligned4(const T* p) { return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0; }

// out and dout (f32) are the backward's; the forward passes null.
template <typename T>
AttnT<T> make_attn(const T* q, const T* k, const T* v, const int32_t* km, const int32_t* doc, const float* out,
                   const float* dout, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                   float scale, int causal, int64_t Tkc) {
  const int64_t G = Hq / Hkv;
  const int Dp = (int)((D + 3) / 4 * 4);
  const bool d4 = D % 4 == 0;
  const Attn s{km, doc, B, Tq, Tk, Hq, Hkv, D, Tkc, scale, causal, G, Tq * G, Dp,
               (Dp / 4) % 2 ? Dp : Dp + 4, d4 && aligned4(q), d4 && aligned4(k), d4 && aligned4(v),
               d4 && out && aligned4(out), d4 && dout && aligned4(dout)};
  return AttnT<T>{s, q, k, v};
}

// Lane-owned D chunks per row: D up to 32*DC (D <= 256 supported).
int d_chunks(int64_t D, const char* op) {
  if (D <= 32) return 1;
  if (D <= 64) return 2;
  if (D <= 128) return 4;
  if (D <= 256) return 8;
  cuda::fail(op, cuda::dims({{"D", D}}) + ": head dim above 256 is not supported", cudaErrorInvalidValue);
}

// Last visible key of a query (-1: none) and its document; a query before position 0 has no
// document, so it sees nothing when documents are on.
struct RowVis {
  int64_t lim;
  int32_t doc;
};
__device__ RowVis row_vis(const Attn& a, int64_t b, int64_t i, bool valid) {
  RowVis r{-1, 0};
  if (!valid) return r;
  const int64_t p = a.off() + i;
  r.lim = a.causal ? p : a.Tk - 1;
  if (a.doc) {
    if (p < 0) r.lim = -1;
    else r.doc = a.doc[b * a.Tkc + p];
  }
  return r;
}

struct KeyVis {
  int64_t s;
  bool ok;
  int32_t doc;
};
__device__ KeyVis key_vis(const Attn& a, int64_t b, int64_t s) {
  KeyVis k{s, s < a.Tk, 0};
  if (k.ok && a.km) k.ok = a.km[b * a.Tkc + s] != 0;
  if (k.ok && a.doc) k.doc = a.doc[b * a.Tkc + s];
  return k;
}
__device__ __forceinline__ bool visible(const KeyVis& k, const RowVis& r) {
  return k.ok && k.s <= r.lim && k.doc == r.doc;
}

// Max that skips NaN, like the CPU's `s > m ? s : m` scan.
__device__ __forceinline__ float warp_fmax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
  return v;
}

__device__ __forceinline__ float fma4(float4 x, float4 y, float acc) {
  acc = fmaf(x.x, y.x, acc);
  acc = fmaf(x.y, y.y, acc);
  acc = fmaf(x.z, y.z, acc);
  return fmaf(x.w, y.w, acc);
}

// acc[r] = sum over d of A[r*ld + d] * b[d], one fma chain in d order per row (zero padding adds
// nothing). Scores, dP and delta all use this chain, so where out equals one v row (a single
// visible key) dP - delta is exactly 0 and dq, dk come out exactly 0, as on the CPU.
template <int R>
__device__ __forceinline__ void dot_rows(const float* A, int ld, const float* b, int n4, int nr, float (&acc)[R]) {
#pragma unroll
  for (int r = 0; r < R; r++) acc[r] = 0.0f;
  for (int d4 = 0; d4 < n4; d4++) {
    const float4 y = reinterpret_cast<const float4*>(b)[d4];
#pragma unroll
    for (int r = 0; r < R; r++)
      if (r < nr) acc[r] = fma4(reinterpret_cast<const float4*>(A + r * ld)[d4], y, acc[r]);
  }
}

// Tile rows [0, n) into dst (row stride ld), columns zero-padded to Dp: row rr is src(rr)[0, D) * mul,
// or zeros where src(rr) is null (src returns f32 or bf16 pointers). vec: 4-element global loads.
// acc[r][:] += sum over the tile's nk keys c of w[r] (held by lane c) * tile[c][:], for the warp's
// rows r < nr; lane owns columns lane + 32 j. The P·V product of the forward, dS·K of the backward.
template <int RW, int DC>
__device__ __forceinline__ void accumulate_tile(float (&acc)[RW][DC], const float (&w)[RW], const float* tile, int ld, int nk,
                                                int nr, int64_t D, int lane) {
  for (int c = 0; c < nk; c++) {
#pragma unroll
    for (int r = 0; r < RW; r++) {
      if (r >= nr) continue;
      const float p = __shfl_sync(FULL, w[r], c);
#pragma unroll
      for (int j = 0; j < DC; j++) {
        const int d = lane + 32 * j;
        if (d < D) acc[r][j] = fmaf(p, tile[c * ld + d], acc[r][j]);
      }
    }
  }
}

template <typename Src>
__device__ void load_tile(float* dst, int ld, int n, const Attn& a, float mul, bool vec, Src src) {
  const int n4 = a.Dp / 4;
  for (int idx = threadIdx.x; idx < n * n4; idx += blockDim.x) {
    const int rr = idx / n4, d = idx % n4 * 4;
    const auto* p = src(rr);
    float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (p && vec) {
      x = load4(p + d);
    } else if (p) {
      x.x = d < a.D ? to_f32(p[d]) : 0.0f;
      x.y = d + 1 < a.D ? to_f32(p[d + 1]) : 0.0f;
      x.z = d + 2 < a.D ? to_f32(p[d + 2]) : 0.0f;
      x.w = d + 3 < a.D ? to_f32(p[d + 3]) : 0.0f;
    }
    x.x *= mul;
    x.y *= mul;
    x.z *= mul;
    x.w *= mul;
    *reinterpret_cast<float4*>(dst + rr * ld + d) = x;
  }
}

// Keys [s0, s0 + BK) of (b, g) from base (k or v); rows past Tk are zeros.
template <typename T>
__device__ void load_keys(float* dst, const Attn& a, const T* base, bool vec, int64_t b, int64_t g, int64_t s0) {
  load_tile(dst, a.KS, BK, a, 1.0f, vec,
            [&](int rr) -> const T* { return s0 + rr < a.Tk ? base + a.kv(b, g, s0 + rr) : nullptr; });
}

// Query rows [t0, t0 + n) of (b, g) from base (q, out or dout), BK rows with zeros past n.
template <typename T>
__device__ void load_queries(float* dst, const Attn& a, const T* base, float mul, bool vec, int64_t b, int64_t g,
                             int64_t t0, int n, int rows) {
  load_tile(dst, a.KS, rows, a, mul, vec,
            [&](int rr) -> const T* { return rr < n ? base + a.row(b, g, t0 + rr) * a.D : nullptr; });
}

// Causal: keys at or past the end are invisible to every row up to query imax.
__device__ int64_t key_end(const Attn& a, int64_t imax) {
  if (!a.causal) return a.Tk;
  const int64_t e = a.off() + imax + 1;
  return e < 0 ? 0 : (e > a.Tk ? a.Tk : e);
}

// ---- forward ------------------------------------------------------------------
// Block = (row tile, b, kv head, key split); blockDim = 32 * warps, warps <= NWQ. With part set, the
// block writes its split's partial (m, l, unnormalized O) per row to part, else out and lse.
template <int DC, typename T>
__global__ void __launch_bounds__(NWQ * 32)
    forward_kernel(const AttnT<T> a, T* out, float* lse, float* part, int64_t ntr, int64_t tps) {
  extern __shared__ float4 smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, br = (blockDim.x >> 5) * RW;
  float* Qs = reinterpret_cast<float*>(smem);
  float* Ks = Qs + br * a.KS;
  float* Vs = Ks + BK * a.KS;
  // Last tiles (most keys under causality) launch first.
  const int64_t x = blockIdx.x, nbg = a.B * a.Hkv, bg = x % nbg, tile = ntr - 1 - x / nbg % ntr;
  const int64_t split = x / nbg / ntr;
  const int64_t b = bg / a.Hkv, g = bg % a.Hkv, t0 = tile * br;
  const int nrows = (int)min((int64_t)br, a.R - t0);
  load_queries(Qs, a, a.q, a.scale, a.vq, b, g, t0, nrows, br);  // scale folded into Q, as on the CPU

  const int r0 = warp * RW, wrows = max(0, min(RW, nrows - r0));
  RowVis rv[RW];
#pragma unroll
  for (int r = 0; r < RW; r++) rv[r] = row_vis(a, b, (t0 + r0 + r) / a.G, r < wrows);
  float m[RW], l[RW], o[RW][DC];
#pragma unroll
  for (int r = 0; r < RW; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int j = 0; j < DC; j++) o[r][j] = 0.0f;
  }
  const int64_t kt_end = min((split + 1) * tps, (key_end(a, (t0 + nrows - 1) / a.G) + BK - 1) / BK);
  for (int64_t kt = split * tps; kt < kt_end; kt++) {
    const int64_t s0 = kt * BK;
    __syncthreads();  // the previous tile is consumed
    load_keys(Ks, a, a.k, a.vk, b, g, s0);
    load_keys(Vs, a, a.v, a.vv, b, g, s0);
    __syncthreads();
    if (wrows == 0) continue;
    const KeyVis kv = key_vis(a, b, s0 + lane);
    bool vis[RW], any = false;
#pragma unroll
    for (int r = 0; r < RW; r++) any |= vis[r] = visible(kv, rv[r]);
    if (!__any_sync(FULL, any)) continue;  // the whole tile is masked for this warp's rows
    float s[RW];
    dot_rows<RW>(Qs + r0 * a.KS, a.KS, Ks + lane * a.KS, a.Dp / 4, wrows, s);
#pragma unroll
    for (int r = 0; r < RW; r++) {
      if (r >= wrows) continue;
      // Online softmax: rescale the running row by exp(m_old - m_new); mu keeps exp finite while
      // every score so far is -inf.
      const float sc = vis[r] ? s[r] : -INFINITY;
      const float mn = fmaxf(m[r], warp_fmax(sc));
      const float mu = fmaxf(mn, -FLT_MAX);
      const float corr = expf(m[r] - mu);
      s[r] = expf(sc - mu);
      l[r] = l[r] * corr + warp_sum(s[r]);
      m[r] = mn;
#pragma unroll
      for (int j = 0; j < DC; j++) o[r][j] *= corr;
    }
    accumulate_tile<RW, DC>(o, s, Vs, a.KS, (int)min((int64_t)BK, a.Tk - s0), wrows, a.D, lane);
  }
#pragma unroll
  for (int r = 0; r < RW; r++) {
    if (r >= wrows) continue;
    const int64_t t = t0 + r0 + r, row = a.row(b, g, t);
    if (part) {
      float* pp = part + (split * a.B * a.Tq * a.Hq + row) * (a.D + 2);
      if (lane == 0) {
        pp[0] = m[r];
        pp[1] = l[r];
      }
#pragma unroll
      for (int j = 0; j < DC; j++)
        if (lane + 32 * j < a.D) pp[2 + lane + 32 * j] = o[r][j];
    } else {
      const float inv = l[r] == 0.0f ? 0.0f : 1.0f / l[r];  // l == 0: no visible key -> zero row
#pragma unroll
      for (int j = 0; j < DC; j++)
        if (lane + 32 * j < a.D) out[row * a.D + lane + 32 * j] = from_f32<T>(o[r][j] * inv);
      if (lane == 0) lse[a.lse_at(b, g, t)] = l[r] == 0.0f ? -INFINITY : m[r] + logf(l[r]);
    }
  }
}

// Merges the key splits of each output row (one warp per row): rescale every split to the common max.
template <typename T>
__global__ void combine_kernel(const float* part, T* out, float* lse, int64_t nrow, int nsplit, int64_t D, int64_t Tq,
                               int64_t Hq) {
  const int lane = threadIdx.x & 31;
  const int64_t stride = nrow * (D + 2), nwarps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; row < nrow; row += nwarps) {
    const float* pr = part + row * (D + 2);
    float M = -INFINITY;
    for (int sp = 0; sp < nsplit; sp++) M = fmaxf(M, pr[sp * stride]);
    const float mu = fmaxf(M, -FLT_MAX);
    float l = 0.0f;
    for (int sp = 0; sp < nsplit; sp++) l = fmaf(pr[sp * stride + 1], expf(pr[sp * stride] - mu), l);
    const float inv = l == 0.0f ? 0.0f : 1.0f / l;
    for (int64_t d = lane; d < D; d += 32) {
      float acc = 0.0f;
      for (int sp = 0; sp < nsplit; sp++) acc = fmaf(pr[sp * stride + 2 + d], expf(pr[sp * stride] - mu), acc);
      out[row * D + d] = from_f32<T>(acc * inv);
    }
    if (lane == 0) {
      const int64_t h = row % Hq, i = row / Hq % Tq, b = row / (Hq * Tq);
      lse[(b * Hq + h) * Tq + i] = l == 0.0f ? -INFINITY : M + logf(l);
    }
  }
}

// ---- backward: dq and delta -----------------------------------------------------
// Block = (row tile of BR rows, b, kv head), NWQ warps of RW rows. delta_i = dout_i . out_i is
// computed here (out staged in the K buffer) and stored for the dk/dv kernel.
template <int DC>
__global__ void __launch_bounds__(NWQ * 32)
    dq_kernel(const AttnT<float> a, const float* out, const float* lse, const float* dout, float* delta, float* dq,
              int64_t ntr) {
  extern __shared__ float4 smem[];
  __shared__ float dls[BR];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* Qs = reinterpret_cast<float*>(smem);
  float* dOs = Qs + BR * a.KS;
  float* Ks = dOs + BR * a.KS;
  float* Vs = Ks + BK * a.KS;
  const int64_t x = blockIdx.x, nbg = a.B * a.Hkv, bg = x % nbg, tile = ntr - 1 - x / nbg;
  const int64_t b = bg / a.Hkv, g = bg % a.Hkv, t0 = tile * BR;
  const int nrows = (int)min((int64_t)BR, a.R - t0);
  load_queries(Qs, a, a.q, a.scale, a.vq, b, g, t0, nrows, BR);
  load_queries(dOs, a, dout, 1.0f, a.vdo, b, g, t0, nrows, BR);
  load_queries(Ks, a, out, 1.0f, a.vo, b, g, t0, nrows, BR);
  __syncthreads();
  if (threadIdx.x < BR) {
    float dl[1];
    dot_rows<1>(dOs + threadIdx.x * a.KS, a.KS, Ks + threadIdx.x * a.KS, a.Dp / 4, 1, dl);
    dls[threadIdx.x] = dl[0];
    if ((int)threadIdx.x < nrows) delta[a.lse_at(b, g, t0 + threadIdx.x)] = dl[0];
  }
  __syncthreads();

  const int r0 = warp * RW, wrows = max(0, min(RW, nrows - r0));
  RowVis rv[RW];
  float L[RW], dl[RW], acc[RW][DC];
#pragma unroll
  for (int r = 0; r < RW; r++) {
    rv[r] = row_vis(a, b, (t0 + r0 + r) / a.G, r < wrows);
    L[r] = r < wrows ? lse[a.lse_at(b, g, t0 + r0 + r)] : -INFINITY;
    dl[r] = dls[r0 + r];
#pragma unroll
    for (int j = 0; j < DC; j++) acc[r][j] = 0.0f;
  }
  const int64_t kt_end = (key_end(a, (t0 + nrows - 1) / a.G) + BK - 1) / BK;
  for (int64_t kt = 0; kt < kt_end; kt++) {
    const int64_t s0 = kt * BK;
    __syncthreads();
    load_keys(Ks, a, a.k, a.vk, b, g, s0);
    load_keys(Vs, a, a.v, a.vv, b, g, s0);
    __syncthreads();
    if (wrows == 0) continue;
    const KeyVis kv = key_vis(a, b, s0 + lane);
    bool vis[RW], any = false;
#pragma unroll
    for (int r = 0; r < RW; r++) any |= vis[r] = visible(kv, rv[r]);
    if (!__any_sync(FULL, any)) continue;
    float s[RW], dp[RW];
    dot_rows<RW>(Qs + r0 * a.KS, a.KS, Ks + lane * a.KS, a.Dp / 4, wrows, s);
    dot_rows<RW>(dOs + r0 * a.KS, a.KS, Vs + lane * a.KS, a.Dp / 4, wrows, dp);
#pragma unroll
    for (int r = 0; r < RW; r++) {  // s becomes dS = P * (dP - delta); rows with lse = -inf get 0
      const float p = vis[r] && L[r] != -INFINITY ? expf(s[r] - L[r]) : 0.0f;
      s[r] = vis[r] ? p * (dp[r] - dl[r]) : 0.0f;
    }
    accumulate_tile<RW, DC>(acc, s, Ks, a.KS, (int)min((int64_t)BK, a.Tk - s0), wrows, a.D, lane);
  }
#pragma unroll
  for (int r = 0; r < RW; r++) {
    if (r >= wrows) continue;
    float* dqr = dq + a.row(b, g, t0 + r0 + r) * a.D;
#pragma unroll
    for (int j = 0; j < DC; j++)
      if (lane + 32 * j < a.D) dqr[lane + 32 * j] = acc[r][j] * a.scale;  // acc is dq / scale
  }
}

// ---- backward: dk, dv ---------------------------------------------------------------
// Block = (key tile, b, kv head), NWK warps. Per 32-row query tile of the group (all its heads):
// warp w scores rows 4w..4w+3 against all 32 keys (lane = key) into P and dS in shared memory,
// then accumulates dk, dv for keys 4w..4w+3 with lanes across D.
template <int DC>
__global__ void __launch_bounds__(NWK * 32)
    dkv_kernel(const AttnT<float> a, const float* lse, const float* dout, const float* delta, float* dk, float* dv) {
  extern __shared__ float4 smem[];
  __shared__ float P[BK * BK], dS[BK * BK];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* Ks = reinterpret_cast<float*>(smem);
  float* Vs = Ks + BK * a.KS;
  float* Qs = Vs + BK * a.KS;
  float* dOs = Qs + BK * a.KS;
  const int64_t x = blockIdx.x, nbg = a.B * a.Hkv, bg = x % nbg, kt = x / nbg;  // key tile 0 (most queries) first
  const int64_t b = bg / a.Hkv, g = bg % a.Hkv, s0 = kt * BK;
  load_keys(Ks, a, a.k, a.vk, b, g, s0);
  load_keys(Vs, a, a.v, a.vv, b, g, s0);
  const KeyVis kv = key_vis(a, b, s0 + lane);
  float dK[KPW][DC], dV[KPW][DC];
#pragma unroll
  for (int cc = 0; cc < KPW; cc++)
#pragma unroll
    for (int j = 0; j < DC; j++) dK[cc][j] = dV[cc][j] = 0.0f;
  // Causal: query i sees key s0 only when off + i >= s0.
  const int64_t imin = a.causal ? max((int64_t)0, s0 - a.off()) : 0;
  const int r0 = warp * RWK;
  for (int64_t t0 = imin * a.G / BK * BK; t0 < a.R; t0 += BK) {
    const int nrows = (int)min((int64_t)BK, a.R - t0), wrows = max(0, min(RWK, nrows - r0));
    __syncthreads();
    load_queries(Qs, a, a.q, a.scale, a.vq, b, g, t0, nrows, BK);
    load_queries(dOs, a, dout, 1.0f, a.vdo, b, g, t0, nrows, BK);
    __syncthreads();
    bool vis[RWK], any = false;
#pragma unroll
    for (int r = 0; r < RWK; r++) any |= vis[r] = visible(kv, row_vis(a, b, (t0 + r0 + r) / a.G, r < wrows));
    float p[RWK], ds[RWK];
    if (__any_sync(FULL, any)) {
      float dp[RWK];
      dot_rows<RWK>(Qs + r0 * a.KS, a.KS, Ks + lane * a.KS, a.Dp / 4, wrows, p);
      dot_rows<RWK>(dOs + r0 * a.KS, a.KS, Vs + lane * a.KS, a.Dp / 4, wrows, dp);
#pragma unroll
      for (int r = 0; r < RWK; r++) {
        const int64_t at = a.lse_at(b, g, t0 + r0 + r);
        const float L = vis[r] ? lse[at] : -INFINITY;
        p[r] = L != -INFINITY ? expf(p[r] - L) : 0.0f;
        ds[r] = vis[r] ? p[r] * (dp[r] - delta[at]) : 0.0f;
      }
    } else {
#pragma unroll
      for (int r = 0; r < RWK; r++) p[r] = ds[r] = 0.0f;
    }
#pragma unroll
    for (int r = 0; r < RWK; r++) {
      P[(r0 + r) * BK + lane] = p[r];
      dS[(r0 + r) * BK + lane] = ds[r];
    }
    if (!__syncthreads_or(any)) continue;  // no key of the tile is visible to any of these rows
    for (int r = 0; r < nrows; r++) {
#pragma unroll
      for (int cc = 0; cc < KPW; cc++) {
        const float pv = P[r * BK + warp * KPW + cc], dsv = dS[r * BK + warp * KPW + cc];
#pragma unroll
        for (int j = 0; j < DC; j++) {
          const int d = lane + 32 * j;
          if (d < a.D) {
            dV[cc][j] = fmaf(pv, dOs[r * a.KS + d], dV[cc][j]);
            dK[cc][j] = fmaf(dsv, Qs[r * a.KS + d], dK[cc][j]);  // Qs holds scale * q
          }
        }
      }
    }
  }
#pragma unroll
  for (int cc = 0; cc < KPW; cc++) {
    const int64_t s = s0 + warp * KPW + cc;
    if (s >= a.Tk) continue;
#pragma unroll
    for (int j = 0; j < DC; j++) {
      const int d = lane + 32 * j;
      if (d < a.D) {
        dk[a.kv(b, g, s) + d] = dK[cc][j];
        dv[a.kv(b, g, s) + d] = dV[cc][j];
      }
    }
  }
}

// Kernels above 48 KiB of dynamic shared memory must opt in.
template <typename K, typename A, typename... Args>
void launch(K kernel, const char* op, const std::string& detail, int64_t blocks, int threads, size_t smem, const A& a,
            Args... args) {
  cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), op, detail);
  kernel<<<(unsigned)blocks, threads, smem, stream()>>>(a, args...);
  cuda::check_launch(op, detail);
}

template <int DC, typename T>
void forward(const AttnT<T>& a, T* out, float* lse, const std::string& detail) {
  // Rows of one (b, kv head) may be few (decoding): fewer warps per block, and the keys split across
  // blocks until the GPU is covered (at least 4 key tiles per split).
  const int nw = (int)std::min<int64_t>(NWQ, (a.R + RW - 1) / RW), br = nw * RW;
  const int64_t ntr = (a.R + br - 1) / br, blocks = ntr * a.B * a.Hkv, nkt = (a.Tk + BK - 1) / BK;
  const int64_t target = 4 * (int64_t)cuda::sm_count();
  int64_t nsplit = 1;
  if (blocks < target && nkt >= 8) nsplit = std::min((target + blocks - 1) / blocks, nkt / 4);
  const int64_t tps = nkt == 0 ? 0 : (nkt + nsplit - 1) / nsplit;
  if (tps > 0) nsplit = (nkt + tps - 1) / tps;
  const int64_t nrow = a.B * a.Tq * a.Hq;
  const size_t pbytes = nsplit > 1 ? (size_t)(nsplit * nrow * (a.D + 2)) * sizeof(float) : 0;
  float* part = pbytes ? static_cast<float*>(cuda::scratch_alloc(pbytes)) : nullptr;
  const size_t smem = (size_t)(br + 2 * BK) * a.KS * sizeof(float);
  launch(forward_kernel<DC, T>, "attention_forward", detail, blocks * nsplit, nw * 32, smem, a, out, lse, part, ntr,
         tps);
  if (part) {
    combine_kernel<<<cuda::grid_for(nrow * 32), 256, 0, stream()>>>(part, out, lse, nrow, (int)nsplit, a.D, a.Tq, a.Hq);
    cuda::check_launch("attention_forward_combine", detail);
    cuda::scratch_free(part, pbytes);
  }
}

template <int DC>
void backward(const AttnT<float>& a, const float* out, const float* lse, const float* dout, float* dq, float* dk,
              float* dv, const std::string& detail) {
  const size_t dbytes = (size_t)(a.B * a.Hq * a.Tq) * sizeof(float);
  float* delta = dbytes ? static_cast<float*>(cuda::scratch_alloc(dbytes)) : nullptr;
  if (a.R > 0) {
    const int64_t ntr = (a.R + BR - 1) / BR;
    launch(dq_kernel<DC>, "attention_backward_dq", detail, ntr * a.B * a.Hkv, NWQ * 32,
           (size_t)(2 * BR + 2 * BK) * a.KS * sizeof(float), a, out, lse, dout, delta, dq, ntr);
  }
  if (a.Tk > 0) {  // with Tq == 0 this writes dk = dv = 0
    const int64_t nkt = (a.Tk + BK - 1) / BK;
    launch(dkv_kernel<DC>, "attention_backward_dkv", detail, nkt * a.B * a.Hkv, NWK * 32,
           (size_t)(4 * BK) * a.KS * sizeof(float), a, lse, dout, (const float*)delta, dk, dv);
  }
  if (delta) cuda::scratch_free(delta, dbytes);
}

std::string shape(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D) {
  return cuda::dims({{"B", B}, {"Tq", Tq}, {"Tk", Tk}, {"Hq", Hq}, {"Hkv", Hkv}, {"D", D}});
}

template <typename T>
void attn_forward(const T* q, const T* k, const T* v, const int32_t* key_mask, const int32_t* doc_ids, T* out,
                  float* lse, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                  int causal, int64_t kv_capacity) {
  if (B * Tq * Hq == 0) return;  // D == 0 still has lse to write
  const std::string detail = shape(B, Tq, Tk, Hq, Hkv, D);
  const AttnT<T> a = make_attn(q, k, v, key_mask, doc_ids, nullptr, nullptr, B, Tq, Tk, Hq, Hkv, D, scale, causal,
                               kv_capacity);
  switch (d_chunks(D, "attention_forward")) {
    case 1: forward<1>(a, out, lse, detail); break;
    case 2: forward<2>(a, out, lse, detail); break;
    case 4: forward<4>(a, out, lse, detail); break;
    default: forward<8>(a, out, lse, detail); break;
  }
}

}  // namespace

void attention_forward_f32(const float* q, const float* k, const float* v, const int32_t* key_mask,
                           const int32_t* doc_ids, float* out, float* lse, int64_t B, int64_t Tq, int64_t Tk,
                           int64_t Hq, int64_t Hkv, int64_t D, float scale, int causal, int64_t kv_capacity) {
  attn_forward(q, k, v, key_mask, doc_ids, out, lse, B, Tq, Tk, Hq, Hkv, D, scale, causal, kv_capacity);
}

void attention_backward_f32(const float* q, const float* k, const float* v, const float* out, const float* lse,
                            const float* dout, const int32_t* key_mask, const int32_t* doc_ids, float* dq, float* dk,
                            float* dv, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                            float scale, int causal) {
  if (B * Hq * D == 0 || Tq + Tk == 0) return;
  const std::string detail = shape(B, Tq, Tk, Hq, Hkv, D);
  const AttnT<float> a = make_attn(q, k, v, key_mask, doc_ids, out, dout, B, Tq, Tk, Hq, Hkv, D, scale, causal, Tk);
  switch (d_chunks(D, "attention_backward")) {
    case 1: backward<1>(a, out, lse, dout, dq, dk, dv, detail); break;
    case 2: backward<2>(a, out, lse, dout, dq, dk, dv, detail); break;
    case 4: backward<4>(a, out, lse, dout, dq, dk, dv, detail); break;
    default: backward<8>(a, out, lse, dout, dq, dk, dv, detail); break;
  }
}

void attention_forward(const void* q, const void* k, const void* v, const int32_t* key_mask, const int32_t* doc_ids,
                       void* out, float* lse, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                       float scale, int causal, int64_t kv_capacity, int dtype) {
  if (dtype == 0)
    return attention_forward_f32(static_cast<const float*>(q), static_cast<const float*>(k),
                                 static_cast<const float*>(v), key_mask, doc_ids, static_cast<float*>(out), lse, B, Tq,
                                 Tk, Hq, Hkv, D, scale, causal, kv_capacity);
  if (dtype != 3) cuda::bad_dtype("attention", dtype);
  attn_forward(static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), key_mask, doc_ids,
               static_cast<bf16*>(out), lse, B, Tq, Tk, Hq, Hkv, D, scale, causal, kv_capacity);
}

}  // namespace temper
