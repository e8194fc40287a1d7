// Fused scaled dot-product attention for f32 on CPU: forward with an online softmax and the
// FlashAttention-2 backward (recompute P from lse), over 64x64 tiles held in per-thread scratch.
// A few queries (decoding with a KV cache) take a direct path that reads each cached row once per kv head.
// Deliberately not: dropout, additive bias, arbitrary (Tq, Tk) masks, BLAS calls, or any O(T^2) buffer.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>
#include "kernels.h"
#include "simd.h"

namespace temper {
namespace {

constexpr int64_t BQ = 64;  // query rows per tile
constexpr int64_t BK = 64;  // keys per tile; also the row stride of every (BQ, BK) tile

#define ATTN_INLINE inline __attribute__((always_inline))

struct Attn {  // the problem, shared by every task
  const float *q, *k, *v;
  const int32_t *key_mask, *doc_ids;
  int64_t B, Tq, Tk, Hq, Hkv, D;
  float scale;
  int causal;
  int64_t Tkc;  // key rows per batch entry in k, v, key_mask, doc_ids (>= Tk: a KV cache's capacity)
  int64_t off() const { return Tk - Tq; }  // absolute position of query row 0
  int64_t group() const { return Hq / Hkv; }
};

// ---- micro GEMM ------------------------------------------------------------
// C (M, N; ldc) [+]= A (M, K) @ Bm (K, N; ldb), with A(i, kk) at A[i*ars + kk*acs] so the same
// kernel reads A or A^T. Register tiles of R rows x NB columns: with NB a compile-time constant
// the accumulator array lives in vector registers (6x16 floats: 12 ymm on AVX2, 6 zmm on
// AVX-512), each kk step loads one row of Bm and broadcasts one A element per row.
constexpr int NB = 16;

template <int R, bool FULL>  // FULL: NB columns; else nb < NB columns (edge, not in registers)
ATTN_INLINE void gemm_tile(int64_t nb, int64_t K, const float* A, int64_t ars, int64_t acs, const float* Bm,
                             int64_t ldb, float* C, int64_t ldc, bool acc) {
  const int64_t w = FULL ? NB : nb;
  float t[R][NB];
  for (int r = 0; r < R; r++)
    for (int64_t j = 0; j < w; j++) t[r][j] = acc ? C[r * ldc + j] : 0.0f;
  for (int64_t kk = 0; kk < K; kk++) {
    const float* b = Bm + kk * ldb;
    for (int r = 0; r < R; r++) {
      const float a = A[r * ars + kk * acs];
#pragma omp simd
      for (int64_t j = 0; j < w; j++) t[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < R; r++)
    for (int64_t j = 0; j < w; j++) C[r * ldc + j] = t[r][j];
}

ATTN_INLINE void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t ars, int64_t acs, const float* Bm,
                        int64_t ldb, float* C, int64_t ldc, bool acc) {
  for (int64_t n0 = 0; n0 < N; n0 += NB) {  // one NB-wide panel of Bm stays in L1 across all rows
    const int64_t nb = std::min<int64_t>(NB, N - n0);
    const float* Bp = Bm + n0;
    float* Cp = C + n0;
    int64_t i = 0;
    if (nb == NB) {
      for (; i + 6 <= M; i += 6) gemm_tile<6, true>(nb, K, A + i * ars, ars, acs, Bp, ldb, Cp + i * ldc, ldc, acc);
      for (; i + 4 <= M; i += 4) gemm_tile<4, true>(nb, K, A + i * ars, ars, acs, Bp, ldb, Cp + i * ldc, ldc, acc);
      for (; i < M; i++) gemm_tile<1, true>(nb, K, A + i * ars, ars, acs, Bp, ldb, Cp + i * ldc, ldc, acc);
    } else {
      for (; i + 4 <= M; i += 4) gemm_tile<4, false>(nb, K, A + i * ars, ars, acs, Bp, ldb, Cp + i * ldc, ldc, acc);
      for (; i < M; i++) gemm_tile<1, false>(nb, K, A + i * ars, ars, acs, Bp, ldb, Cp + i * ldc, ldc, acc);
    }
  }
}

// ---- tile helpers ----------------------------------------------------------
// dst (D, BK) = src (n, D; row stride ld)^T, so Q @ K^T runs over contiguous key index.
// Columns n..pad(n) are zeroed so score GEMMs always run full NB-wide register tiles.
ATTN_INLINE int64_t pad_nb(int64_t n) { return (n + NB - 1) / NB * NB; }
ATTN_INLINE void transpose(const float* src, int64_t ld, int64_t n, int64_t D, float* dst) {
  for (int64_t c = 0; c < n; c++)
    for (int64_t d = 0; d < D; d++) dst[d * BK + c] = src[c * ld + d];
  for (int64_t d = 0; n < pad_nb(n) && d < D; d++) std::fill(dst + d * BK + n, dst + d * BK + pad_nb(n), 0.0f);
}

// dst (n, D) = scale * src (n, D; row stride ld)
ATTN_INLINE void load_rows(const float* src, int64_t ld, int64_t n, int64_t D, float scale, float* dst) {
  for (int64_t r = 0; r < n; r++) {
#pragma omp simd
    for (int64_t d = 0; d < D; d++) dst[r * D + d] = src[r * ld + d] * scale;
  }
}

enum TileMode { NONE_VISIBLE = 0, ALL_VISIBLE = 1, PARTIAL = 2 };

// Visibility of keys [s0, s0+nk) to query rows [r0, r0+nr) of batch b; fills vis (nr, BK) with
// 0/1 only for PARTIAL. Plain causal tiles are decided from their corners. The per-key flags are
// gathered into kok/kdoc first so the row loop has no pointer tests (a masked load through a null
// key_mask costs a fault assist per vector).
ATTN_INLINE int tile_mask(const Attn& a, int64_t b, int64_t r0, int64_t nr, int64_t s0, int64_t nk, int32_t* vis,
                            int32_t* kok, int32_t* kdoc) {
  const int64_t p0 = a.off() + r0;  // absolute position of the tile's first query
  if (!a.key_mask && !a.doc_ids) {
    if (!a.causal || s0 + nk - 1 <= p0) return ALL_VISIBLE;
    if (s0 > p0 + nr - 1) return NONE_VISIBLE;
  }
  const int32_t* km = a.key_mask ? a.key_mask + b * a.Tkc + s0 : nullptr;
  const int32_t* doc = a.doc_ids ? a.doc_ids + b * a.Tkc : nullptr;
  for (int64_t c = 0; c < nk; c++) {
    kok[c] = km ? km[c] != 0 : 1;
    kdoc[c] = doc ? doc[s0 + c] : 0;
  }
  int64_t count = 0;
  for (int64_t r = 0; r < nr; r++) {
    const int64_t p = p0 + r;
    // last visible key, relative to s0; -1 hides the row. A query before position 0 (Tq > Tk)
    // has no document, so it sees nothing when docs are on.
    int64_t last = a.causal ? std::min(p - s0, nk - 1) : nk - 1;
    if (doc && p < 0) last = -1;
    const int32_t lim = (int32_t)std::max<int64_t>(last, -1);
    const int32_t qd = (doc && last >= 0) ? doc[p] : 0;
    int32_t* vr = vis + r * BK;
    int32_t rc = 0;
#pragma omp simd reduction(+ : rc)
    for (int32_t c = 0; c < (int32_t)nk; c++) {
      const int32_t ok = (c <= lim) & kok[c] & (kdoc[c] == qd);
      vr[c] = ok;
      rc += ok;
    }
    count += rc;
  }
  return count == 0 ? NONE_VISIBLE : (count == nr * nk ? ALL_VISIBLE : PARTIAL);
}

// Scores of invisible pairs become -inf (a select, so NaN from q/k there does not leak).
ATTN_INLINE void apply_mask(float* S, const int32_t* vis, int64_t nr, int64_t nk) {
  for (int64_t r = 0; r < nr; r++) {
#pragma omp simd
    for (int64_t c = 0; c < nk; c++) S[r * BK + c] = vis[r * BK + c] ? S[r * BK + c] : -INFINITY;
  }
}

// P = exp(S - lse) in place, then dS = P * (dP - Delta) in place of dP. Rows without a visible
// key (lse = -inf) get P = dS = 0, so they add nothing to dq, dk, dv.
ATTN_INLINE void probs_and_dscores(float* S, float* dP, const float* lse, const float* delta, int64_t nr,
                                     int64_t nk) {
  for (int64_t r = 0; r < nr; r++) {
    float* s = S + r * BK;
    float* dp = dP + r * BK;
    const float L = lse[r], dl = delta[r];
    if (L == -INFINITY) {
      std::fill(s, s + nk, 0.0f);
      std::fill(dp, dp + nk, 0.0f);
      continue;
    }
#pragma omp simd
    for (int64_t c = 0; c < nk; c++) {
      float p = fast_exp(s[c] - L);
      s[c] = p;
      dp[c] = p * (dp[c] - dl);
    }
  }
}

// Per-thread scratch: Qs, O/dQ (BQ, D); Kt, Vt (D, BK); S, dP (BQ, BK); dK, dV (BK, D);
// m, l (BQ) floats; vis (BQ, BK), kok, kdoc (BK) int32.
struct Scratch {
  std::vector<float> buf;
  std::vector<int32_t> ibuf;
  float *Qs, *O, *Kt, *Vt, *S, *dP, *dK, *dV, *m, *l;
  int32_t *vis, *kok, *kdoc;
  explicit Scratch(int64_t D) : buf(4 * BQ * D + 2 * D * BK + 2 * BQ * BK + 2 * BQ), ibuf(BQ * BK + 2 * BK) {
    float* p = buf.data();
    Qs = p; O = Qs + BQ * D; Kt = O + BQ * D; Vt = Kt + D * BK; S = Vt + D * BK; dP = S + BQ * BK;
    dK = dP + BQ * BK; dV = dK + BK * D; m = dV + BK * D; l = m + BQ;
    vis = ibuf.data(); kok = vis + BQ * BK; kdoc = kok + BK;
  }
};

// ---- forward: one task per (b, h, query tile) ------------------------------
TEMPER_CLONES void forward_task(const Attn& a, int64_t b, int64_t h, int64_t qb, float* out, float* lse,
                                Scratch& w) {
  const int64_t D = a.D, g = h / a.group(), qs = a.Hq * D, ks = a.Hkv * D;  // qs, ks: row strides
  const int64_t r0 = qb * BQ, nr = std::min(BQ, a.Tq - r0);
  load_rows(a.q + ((b * a.Tq + r0) * a.Hq + h) * D, qs, nr, D, a.scale, w.Qs);  // scale folded into Q
  std::fill(w.O, w.O + nr * D, 0.0f);
  std::fill(w.m, w.m + nr, -INFINITY);
  std::fill(w.l, w.l + nr, 0.0f);
  const float* kb = a.k + (b * a.Tkc * a.Hkv + g) * D;  // key s of this head at kb + s*ks
  const float* vb = a.v + (b * a.Tkc * a.Hkv + g) * D;
  // Causal: keys past the tile's last query are invisible to the whole tile, so never visited.
  const int64_t kend = a.causal ? std::clamp<int64_t>(a.off() + r0 + nr, 0, a.Tk) : a.Tk;
  for (int64_t s0 = 0; s0 < kend; s0 += BK) {
    const int64_t nk = std::min(BK, kend - s0);
    const int mode = tile_mask(a, b, r0, nr, s0, nk, w.vis, w.kok, w.kdoc);
    if (mode == NONE_VISIBLE) continue;
    transpose(kb + s0 * ks, ks, nk, D, w.Kt);
    gemm(nr, pad_nb(nk), D, w.Qs, D, 1, w.Kt, BK, w.S, BK, false);  // S (nr, nk) = Qs K^T
    if (mode == PARTIAL) apply_mask(w.S, w.vis, nr, nk);
    for (int64_t r = 0; r < nr; r++) {  // online softmax: rescale the running row by exp(m_old - m_new)
      float* s = w.S + r * BK;
      float bm = -INFINITY;
#pragma omp simd reduction(max : bm)
      for (int64_t c = 0; c < nk; c++) bm = s[c] > bm ? s[c] : bm;
      const float mn = std::max(w.m[r], bm);
      const float mu = std::max(mn, -FLT_MAX);  // all -inf so far: exp still gives 0s, NaN stays NaN
      const float corr = fast_exp(w.m[r] - mu);
#pragma omp simd
      for (int64_t c = 0; c < nk; c++) s[c] = fast_exp(s[c] - mu);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < nk; c++) sum += s[c];
      w.l[r] = w.l[r] * corr + sum;
      w.m[r] = mn;
      float* o = w.O + r * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) o[d] *= corr;
    }
    gemm(nr, D, nk, w.S, BK, 1, vb + s0 * ks, ks, w.O, D, true);  // O += P V
  }
  float* orow = out + ((b * a.Tq + r0) * a.Hq + h) * D;
  float* lrow = lse + (b * a.Hq + h) * a.Tq + r0;
  for (int64_t r = 0; r < nr; r++) {
    const float l = w.l[r];
    const float inv = l == 0.0f ? 0.0f : 1.0f / l;  // l == 0: no visible key -> zero row
    lrow[r] = l == 0.0f ? -INFINITY : w.m[r] + std::log(l);
#pragma omp simd
    for (int64_t d = 0; d < D; d++) orow[r * qs + d] = w.O[r * D + d] * inv;
  }
}

// ---- backward pass 1: dK, dV, one task per (b, kv head, key tile) ----------
// Loops over every query head of the kv group and every query tile that can see the keys, so
// each dk/dv row has exactly one writer.
TEMPER_CLONES void backward_kv_task(const Attn& a, const float* dout, const float* lse, const float* delta,
                                    int64_t b, int64_t g, int64_t kbi, float* dk, float* dv, Scratch& w) {
  const int64_t D = a.D, qs = a.Hq * D, ks = a.Hkv * D;
  const int64_t s0 = kbi * BK, nk = std::min(BK, a.Tk - s0);
  const float* kb = a.k + ((b * a.Tkc + s0) * a.Hkv + g) * D;
  const float* vb = a.v + ((b * a.Tkc + s0) * a.Hkv + g) * D;
  transpose(kb, ks, nk, D, w.Kt);
  transpose(vb, ks, nk, D, w.Vt);
  std::fill(w.dK, w.dK + nk * D, 0.0f);
  std::fill(w.dV, w.dV + nk * D, 0.0f);
  // Causal: query i sees key s0 only when off + i >= s0.
  const int64_t qfirst = a.causal ? std::max<int64_t>(0, s0 - a.off()) : 0;
  for (int64_t h = g * a.group(); h < (g + 1) * a.group(); h++) {
    for (int64_t r0 = qfirst / BQ * BQ; r0 < a.Tq; r0 += BQ) {
      const int64_t nr = std::min(BQ, a.Tq - r0);
      const int mode = tile_mask(a, b, r0, nr, s0, nk, w.vis, w.kok, w.kdoc);
      if (mode == NONE_VISIBLE) continue;
      const float* dO = dout + ((b * a.Tq + r0) * a.Hq + h) * D;  // (nr, D), row stride qs
      const int64_t row = (b * a.Hq + h) * a.Tq + r0;
      load_rows(a.q + ((b * a.Tq + r0) * a.Hq + h) * D, qs, nr, D, a.scale, w.Qs);
      gemm(nr, pad_nb(nk), D, w.Qs, D, 1, w.Kt, BK, w.S, BK, false);  // S = scale Q K^T
      if (mode == PARTIAL) apply_mask(w.S, w.vis, nr, nk);
      gemm(nr, pad_nb(nk), D, dO, qs, 1, w.Vt, BK, w.dP, BK, false);  // dP = dO V^T
      probs_and_dscores(w.S, w.dP, lse + row, delta + row, nr, nk);
      gemm(nk, D, nr, w.S, 1, BK, dO, qs, w.dV, D, true);      // dV += P^T dO
      gemm(nk, D, nr, w.dP, 1, BK, w.Qs, D, w.dK, D, true);    // dK += dS^T (scale Q)
    }
  }
  for (int64_t c = 0; c < nk; c++) {
    float* dkr = dk + ((b * a.Tkc + s0 + c) * a.Hkv + g) * D;
    float* dvr = dv + ((b * a.Tkc + s0 + c) * a.Hkv + g) * D;
    std::copy(w.dK + c * D, w.dK + (c + 1) * D, dkr);
    std::copy(w.dV + c * D, w.dV + (c + 1) * D, dvr);
  }
}

// ---- backward pass 2: dQ, one task per (b, q head, query tile) -------------
TEMPER_CLONES void backward_q_task(const Attn& a, const float* dout, const float* lse, const float* delta,
                                   int64_t b, int64_t h, int64_t qb, float* dq, Scratch& w) {
  const int64_t D = a.D, g = h / a.group(), qs = a.Hq * D, ks = a.Hkv * D;
  const int64_t r0 = qb * BQ, nr = std::min(BQ, a.Tq - r0);
  const float* dO = dout + ((b * a.Tq + r0) * a.Hq + h) * D;
  const int64_t row = (b * a.Hq + h) * a.Tq + r0;
  load_rows(a.q + ((b * a.Tq + r0) * a.Hq + h) * D, qs, nr, D, a.scale, w.Qs);
  std::fill(w.O, w.O + nr * D, 0.0f);  // dQ / scale accumulator
  const float* kb = a.k + (b * a.Tkc * a.Hkv + g) * D;
  const float* vb = a.v + (b * a.Tkc * a.Hkv + g) * D;
  const int64_t kend = a.causal ? std::clamp<int64_t>(a.off() + r0 + nr, 0, a.Tk) : a.Tk;
  for (int64_t s0 = 0; s0 < kend; s0 += BK) {
    const int64_t nk = std::min(BK, kend - s0);
    const int mode = tile_mask(a, b, r0, nr, s0, nk, w.vis, w.kok, w.kdoc);
    if (mode == NONE_VISIBLE) continue;
    transpose(kb + s0 * ks, ks, nk, D, w.Kt);
    transpose(vb + s0 * ks, ks, nk, D, w.Vt);
    gemm(nr, pad_nb(nk), D, w.Qs, D, 1, w.Kt, BK, w.S, BK, false);
    if (mode == PARTIAL) apply_mask(w.S, w.vis, nr, nk);
    gemm(nr, pad_nb(nk), D, dO, qs, 1, w.Vt, BK, w.dP, BK, false);
    probs_and_dscores(w.S, w.dP, lse + row, delta + row, nr, nk);
    gemm(nr, D, nk, w.dP, BK, 1, kb + s0 * ks, ks, w.O, D, true);  // dQ/scale += dS K
  }
  for (int64_t r = 0; r < nr; r++) {
    float* dqr = dq + ((b * a.Tq + r0 + r) * a.Hq + h) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; d++) dqr[d] = w.O[r * D + d] * a.scale;
  }
}

// Delta (Hq-strided rows) = rowsum(dout * out) for nr rows of one head: the softmax-backward term.
// Each row is one sequential chain over d, in the micro GEMM's order (vectorized across rows,
// not reduced across d): a row with one visible key has out == v exactly, so dP - Delta is
// exactly 0 and its dq, dk come out exactly 0, as they must.
TEMPER_CLONES void delta_tile(const float* out, const float* dout, int64_t stride, int64_t nr, int64_t D,
                              float* delta) {
  float acc[BQ] = {};
  for (int64_t d = 0; d < D; d++) {
#pragma omp simd
    for (int64_t r = 0; r < nr; r++) acc[r] += out[r * stride + d] * dout[r * stride + d];
  }
  std::copy(acc, acc + nr, delta);
}

// ---- forward for a few queries (decoding with a KV cache) -------------------
// One task per (b, kv head): each key and value row is read once for every query head of
// its group and every query row, instead of once per 64-row query tile per head. Scores
// live in a (rows*group, Tk) scratch; invisible keys are skipped, never computed.
constexpr int64_t DECODE_MAX_TQ = 8;

TEMPER_CLONES void decode_task(const Attn& a, int64_t b, int64_t g, float* out, float* lse, std::vector<float>& sc,
                               std::vector<float>& acc, std::vector<int32_t>& vis) {
  const int64_t D = a.D, G = a.group(), ks = a.Hkv * D, Tk = a.Tk;
  const float* kb = a.k + (b * a.Tkc * a.Hkv + g) * D;
  const float* vb = a.v + (b * a.Tkc * a.Hkv + g) * D;
  const int32_t* km = a.key_mask ? a.key_mask + b * a.Tkc : nullptr;
  const int32_t* doc = a.doc_ids ? a.doc_ids + b * a.Tkc : nullptr;
  for (int64_t r = 0; r < a.Tq; r++) {
    const int64_t p = a.off() + r;
    const int64_t kend = a.causal ? std::clamp<int64_t>(p + 1, 0, Tk) : Tk;
    const int32_t qd = doc && p >= 0 ? doc[p] : 0;
    int64_t nvis = 0;
    for (int64_t s = 0; s < kend; s++) {
      const bool ok = (!km || km[s] != 0) && (!doc || (p >= 0 && doc[s] == qd));
      if (ok) vis[nvis++] = (int32_t)s;
    }
    const float* qrow = a.q + ((b * a.Tq + r) * a.Hq + g * G) * D;  // the group's G heads are adjacent
    for (int64_t j = 0; j < nvis; j++) {
      const float* kr = kb + vis[j] * ks;
      for (int64_t h = 0; h < G; h++) {
        const float* qh = qrow + h * D;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; d++) dot += qh[d] * kr[d];
        sc[h * Tk + j] = dot * a.scale;
      }
    }
    for (int64_t h = 0; h < G; h++) {
      float* srow = sc.data() + h * Tk;
      float m = -INFINITY;
      for (int64_t j = 0; j < nvis; j++) m = srow[j] > m ? srow[j] : m;
      const float mu = std::max(m, -FLT_MAX);
      float l = 0.0f;
#pragma omp simd reduction(+ : l)
      for (int64_t j = 0; j < nvis; j++) {
        srow[j] = fast_exp(srow[j] - mu);
        l += srow[j];
      }
      const float inv = l == 0.0f ? 0.0f : 1.0f / l;
      for (int64_t j = 0; j < nvis; j++) srow[j] *= inv;
      lse[(b * a.Hq + g * G + h) * a.Tq + r] = l == 0.0f ? -INFINITY : m + std::log(l);
    }
    std::fill(acc.begin(), acc.begin() + G * D, 0.0f);
    for (int64_t j = 0; j < nvis; j++) {
      const float* vr = vb + vis[j] * ks;
      for (int64_t h = 0; h < G; h++) {
        const float pj = sc[h * Tk + j];
        float* ah = acc.data() + h * D;
#pragma omp simd
        for (int64_t d = 0; d < D; d++) ah[d] += pj * vr[d];
      }
    }
    float* orow = out + ((b * a.Tq + r) * a.Hq + g * G) * D;
    std::copy(acc.begin(), acc.begin() + G * D, orow);
  }
}

}  // namespace

void attention_forward_f32(const float* q, const float* k, const float* v, const int32_t* key_mask,
                           const int32_t* doc_ids, float* out, float* lse, int64_t B, int64_t Tq, int64_t Tk,
                           int64_t Hq, int64_t Hkv, int64_t D, float scale, int causal, int64_t kv_capacity) {
  const Attn a{q, k, v, key_mask, doc_ids, B, Tq, Tk, Hq, Hkv, D, scale, causal, kv_capacity};
  if (Tq <= DECODE_MAX_TQ) {
#pragma omp parallel if (B * Hkv > 1)
    {
      std::vector<float> sc(std::max<int64_t>(1, (Hq / Hkv) * Tk)), acc((Hq / Hkv) * D);
      std::vector<int32_t> vis(std::max<int64_t>(1, Tk));
#pragma omp for schedule(dynamic)
      for (int64_t t = 0; t < B * Hkv; t++) decode_task(a, t / Hkv, t % Hkv, out, lse, sc, acc, vis);
    }
    return;
  }
  const int64_t nqb = (Tq + BQ - 1) / BQ, ntask = B * Hq * nqb;
#pragma omp parallel if (ntask > 1)
  {
    Scratch w(D);
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < ntask; t++) {
      // Within a head, the last query tiles (most keys under causality) go first.
      const int64_t qb = nqb - 1 - t % nqb, bh = t / nqb;
      forward_task(a, bh / Hq, bh % Hq, qb, out, lse, w);
    }
  }
}

void attention_backward_f32(const float* q, const float* k, const float* v, const float* out, const float* lse,
                            const float* dout, const int32_t* key_mask, const int32_t* doc_ids, float* dq, float* dk,
                            float* dv, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                            float scale, int causal) {
  const Attn a{q, k, v, key_mask, doc_ids, B, Tq, Tk, Hq, Hkv, D, scale, causal, Tk};
  const int64_t nkb = (Tk + BK - 1) / BK, nqb = (Tq + BQ - 1) / BQ;
  const int64_t nkv = B * Hkv * nkb, nq = B * Hq * nqb;
  std::vector<float> delta(B * Hq * Tq);  // (B, Hq, Tq): O(B H T), not O(T^2)
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < nq; t++) {
      const int64_t qb = t % nqb, bh = t / nqb, b = bh / Hq, h = bh % Hq, r0 = qb * BQ;
      const int64_t at = ((b * Tq + r0) * Hq + h) * D;
      delta_tile(out + at, dout + at, Hq * D, std::min(BQ, Tq - r0), D, delta.data() + bh * Tq + r0);
    }
    Scratch w(D);
    // Key tile 0 sees the most queries under causality, so kv tasks are heaviest-first as listed.
#pragma omp for schedule(dynamic) nowait
    for (int64_t t = 0; t < nkv; t++)
      backward_kv_task(a, dout, lse, delta.data(), t / (Hkv * nkb), t / nkb % Hkv, t % nkb, dk, dv, w);
    // The dQ pass writes a disjoint output, so no barrier between the two loops.
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < nq; t++) {
      const int64_t qb = nqb - 1 - t % nqb, bh = t / nqb;
      backward_q_task(a, dout, lse, delta.data(), bh / Hq, bh % Hq, qb, dq, w);
    }
  }
}

}  // namespace temper
