// Autocast's mixed-precision attention on tensor cores (kernels.h: attention_forward_mixed,
// attention_backward_mixed): bf16 q, k, v (and dout), f32 out, lse and gradients. FlashAttention-2
// structure with mma.sync m16n8k16 (bf16 inputs, f32 accumulate) through inline PTX, for D in
// {64, 128} on sm_80+; other head dims, older GPUs, unaligned buffers (or TEMPER_ATTENTION_MMA=0)
// widen q, k, v (dout) into scratch and run the f32 kernels of attention.cu.
//
//   forward   one CTA (4 warps, 16 query rows each) per (query tile of 64, b, head); K/V tiles of
//             64 keys staged in shared memory with cp.async (V_j loads while S_j = Q K_j^T is
//             computed, K_{j+1} while O += P V_j is), online softmax in registers (exp2 domain),
//             causal tiles past the last query skipped, GQA by kv head = h / (Hq/Hkv).
//   backward  delta = rowsum(dout * out) per row; dQ in its own pass, one CTA per (query tile
//             of 64, b, head) looping over key tiles (double-buffered K/V); dK, dV one CTA per
//             (key tile of 64, b, kv head), each warp owning 16 keys, looping over every query
//             tile of every head of its GQA group (double-buffered Q/dO). Each output element
//             has exactly one writer: no atomics, deterministic.
// Masks as attention.cu / attention.cc: query i sits at absolute position Tk - Tq + i; key s is
// visible when (causal ? s <= pos : true) && key_mask[b, s] != 0 && doc[b, s] == doc[b, pos]
// (a query at pos < 0 sees nothing with docs on); invisible scores are -inf before the softmax,
// rows with no visible key give out 0 and lse -inf, and P = dS = 0 in the backward.
// Precision: S, dP and every sum accumulate in f32; P (for P V and P^T dO) and dS (for dS K and
// dS^T Q) are rounded to bf16 as the A operand of their second product, as FlashAttention does,
// so results match the CPU definition (f32 kernels on the widened inputs) to bf16 tolerance.
//
// ---- fragment layouts (PTX ISA, "mma.m16n8k16" for .bf16; "ldmatrix") ------------------------
// lane = threadIdx.x % 32, gr = lane >> 2 ("groupID"), tg = lane & 3 ("threadID_in_group").
// A (16x16, row-major, .row), 4 b32 registers of 2 bf16 each, the lower column in the low half:
//     a0: (row gr,   cols 2tg, 2tg+1)      a1: (row gr+8, cols 2tg, 2tg+1)
//     a2: (row gr,   cols 2tg+8, 2tg+9)    a3: (row gr+8, cols 2tg+8, 2tg+9)
// B (16x8, k x n, .col), 2 registers, the lower k in the low half:
//     b0: (k 2tg, 2tg+1;   n gr)           b1: (k 2tg+8, 2tg+9; n gr)
// C/D (16x8 f32), 4 registers:
//     c0: (row gr, col 2tg)  c1: (row gr, col 2tg+1)  c2: (row gr+8, col 2tg)  c3: (row gr+8, col 2tg+1)
// ldmatrix.m8n8.x4.b16: lanes 8m..8m+7 give the 16-byte row addresses (rows 0..7) of matrix m;
// register m receives (row lane/4, cols 2(lane%4), 2(lane%4)+1) of matrix m, or with .trans
// (rows 2(lane%4), 2(lane%4)+1; col lane/4), i.e. the transposed element pair.
// Tiles in shared memory are row-major bf16 with a row stride of D + 8 elements (16 bytes of
// padding: the 8 rows of an ldmatrix hit distinct bank quads, and cp.async rows stay 16-aligned).
// Used as:
//   A from a row-major tile X (rows m, cols k contiguous: Q, dO, K, V rows): ldmatrix.x4 with lane
//     address X[m0 + (lane & 15)][k0 + (lane >> 4) * 8]: matrices (rows 0-7, k 0-7), (rows 8-15,
//     k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15) = a0, a1, a2, a3.
//   B = Y^T from a row-major tile Y (rows n, cols k contiguous: K for S = Q K^T, Q for S^T = K Q^T,
//     V / dO for dP): ldmatrix.x4 (no .trans) at Y[n0 + (lane & 7) + (lane >> 4) * 8][k0 + ((lane >> 3) & 1) * 8]:
//     registers 0, 1 = b0, b1 of n-block n0..n0+7; registers 2, 3 = b0, b1 of n-block n0+8..n0+15
//     (non-transposed row n = gr, cols k = 2tg, 2tg+1: exactly Y[n][k] = B[k][n]).
//   B = Z from a row-major tile Z (rows k, cols n contiguous: V for P V, K for dS K, dO for P^T dO,
//     Q for dS^T Q): ldmatrix.x4.trans at Z[k0 + (lane & 7) + ((lane >> 3) & 1) * 8][n0 + (lane >> 4) * 8]:
//     registers 0, 1 = b0, b1 of n-block n0..n0+7; 2, 3 = b0, b1 of n-block n0+8..n0+15
//     (transposed: rows k = 2tg, 2tg+1 of col n = gr).
//   A from accumulators: C fragments of a 16 x N score tile, n-blocks 2kk and 2kk+1, become the A
//     fragment of k-step kk: a0 = (c0, c1) of block 2kk, a1 = (c2, c3) of 2kk, a2 = (c0, c1) of
//     2kk+1, a3 = (c2, c3) of 2kk+1 (rounded to bf16, low half = the lower column).
// A thread's accumulator element e of n-block nb is at row gr + 8 * (e >> 1), col nb * 8 + 2tg + (e & 1).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include "common.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define TEMPER_NO_MMA 1  // device code for older GPUs: the kernels are stubs, the host never launches them
#pragma nv_diag_suppress 177  // the helpers the stubs leave unused
#endif

namespace temper {
namespace {
using cuda::aligned16;
using cuda::bf16;

using cuda::stream;

constexpr int kThreads = 128;  // 4 warps in every kernel here
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct MixedAttn {
  const bf16 *q, *k, *v, *dout;
  const int32_t *km, *doc;
  const float *out, *lse;
  float* delta;  // (B, Hq, Tq), the backward's rowsum(dout * out)
  float *o, *l;  // forward outputs: out, lse
  float *dq, *dk, *dv;
  int B, Tq, Tk, Hq, Hkv, G, off;  // G = Hq / Hkv; off = Tk - Tq, the position of query 0
  float scale, scale_log2;         // scale_log2 = scale * log2(e): scores in the exp2 domain
  int causal;

  // Element offsets of a q/out/dout row and a k/v row; index into lse/delta.
  __device__ int64_t qrow(int b, int i, int h, int D) const { return (((int64_t)b * Tq + i) * Hq + h) * D; }
  __device__ int64_t kvrow(int b, int s, int g, int D) const { return (((int64_t)b * Tk + s) * Hkv + g) * D; }
  __device__ int64_t lse_at(int b, int h, int i) const { return ((int64_t)b * Hq + h) * Tq + i; }
};

// A query's last visible key (-1: none) and its document (0 without docs).
struct RowVis {
  int lim, doc;
};
__device__ __forceinline__ RowVis row_vis(const MixedAttn& a, int b, int i) {
  RowVis r{-1, 0};
  if (i >= a.Tq) return r;
  const int p = a.off + i;
  r.lim = a.causal ? p : a.Tk - 1;
  if (a.doc) {
    if (p < 0) r.lim = -1;
    else r.doc = a.doc[(int64_t)b * a.Tk + p];
  }
  return r;
}
// Whether key s exists and is unmasked, and its document.
__device__ __forceinline__ void key_flags(const MixedAttn& a, int b, int s, int& ok, int& doc) {
  ok = s < a.Tk;
  doc = 0;
  if (ok && a.km) ok = a.km[(int64_t)b * a.Tk + s] != 0;
  if (s < a.Tk && a.doc) doc = a.doc[(int64_t)b * a.Tk + s];
}

// ---- PTX wrappers ------------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// 16 bytes global -> shared, asynchronously; zero-fills the destination when !valid (src not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
#ifndef TEMPER_NO_MMA
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifndef TEMPER_NO_MMA
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>  // wait until at most N of this thread's committed groups are pending
__device__ __forceinline__ void cp_async_wait() {
#ifndef TEMPER_NO_MMA
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
#ifndef TEMPER_NO_MMA
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
#endif
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const bf16* p) {
#ifndef TEMPER_NO_MMA
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
#endif
}

// d += a (16x16) * b (16x8), bf16 inputs, f32 accumulate.
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifndef TEMPER_NO_MMA
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Two floats as bf16x2 (round to nearest even), lo in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

// ---- warp-level tile products ------------------------------------------------------------------
// acc (16 x NB*8) += A (16 x KD) * Y^T, A given as fragments af[KD/16], Y (NB*8 rows x KD) row-major at Y.
template <int NB, int KD, int LDS>
__device__ __forceinline__ void mma_regA_Bt(float (&acc)[NB][4], const uint32_t (&af)[KD / 16][4], const bf16* Y,
                                            int lane) {
  static_assert(NB % 2 == 0 && KD % 16 == 0, "tile shape");
  const bf16* yl = Y + ((lane & 7) + (lane >> 4) * 8) * LDS + ((lane >> 3) & 1) * 8;
#pragma unroll
  for (int ks = 0; ks < KD / 16; ks++) {
#pragma unroll
    for (int n2 = 0; n2 < NB / 2; n2++) {
      uint32_t b[4];
      ldsm_x4(b, yl + n2 * 16 * LDS + ks * 16);
      mma16816(acc[2 * n2], af[ks], b[0], b[1]);
      mma16816(acc[2 * n2 + 1], af[ks], b[2], b[3]);
    }
  }
}

// The same with A read from a row-major tile X (16 rows x KD) at X.
template <int NB, int KD, int LDS>
__device__ __forceinline__ void mma_A_Bt(float (&acc)[NB][4], const bf16* X, const bf16* Y, int lane) {
  static_assert(NB % 2 == 0 && KD % 16 == 0, "tile shape");
  const bf16* xl = X + (lane & 15) * LDS + (lane >> 4) * 8;
  const bf16* yl = Y + ((lane & 7) + (lane >> 4) * 8) * LDS + ((lane >> 3) & 1) * 8;
#pragma unroll
  for (int ks = 0; ks < KD / 16; ks++) {
    uint32_t a[4];
    ldsm_x4(a, xl + ks * 16);
#pragma unroll
    for (int n2 = 0; n2 < NB / 2; n2++) {
      uint32_t b[4];
      ldsm_x4(b, yl + n2 * 16 * LDS + ks * 16);
      mma16816(acc[2 * n2], a, b[0], b[1]);
      mma16816(acc[2 * n2 + 1], a, b[2], b[3]);
    }
  }
}

// acc (16 x ND*8) += P (16 x KN, fragments pf[KN/16]) * Z, Z (KN rows x ND*8) row-major at Z.
template <int KN, int ND, int LDS>
__device__ __forceinline__ void mma_regA_B(float (&acc)[ND][4], const uint32_t (&pf)[KN / 16][4], const bf16* Z,
                                           int lane) {
  static_assert(ND % 2 == 0 && KN % 16 == 0, "tile shape");
  const bf16* zl = Z + ((lane & 7) + ((lane >> 3) & 1) * 8) * LDS + (lane >> 4) * 8;
#pragma unroll
  for (int kk = 0; kk < KN / 16; kk++) {
#pragma unroll
    for (int d2 = 0; d2 < ND / 2; d2++) {
      uint32_t b[4];
      ldsm_x4_t(b, zl + kk * 16 * LDS + d2 * 16);
      mma16816(acc[2 * d2], pf[kk], b[0], b[1]);
      mma16816(acc[2 * d2 + 1], pf[kk], b[2], b[3]);
    }
  }
}

// C fragments of a 16 x KN tile -> A fragments (bf16) of the same tile as the left operand.
template <int KN>
__device__ __forceinline__ void to_afrag(uint32_t (&pf)[KN / 16][4], const float (&c)[KN / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < KN / 16; kk++) {
    pf[kk][0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
    pf[kk][1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
    pf[kk][2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    pf[kk][3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
  }
}

// ROWS rows of D bf16 into dst (row stride D + 8) with cp.async; row r < nvalid comes from
// base + rowoff(r), the rest are zeros. Every thread of the block takes part.
template <int D, int ROWS, typename RowOff>
__device__ __forceinline__ void load_rows(bf16* dst, const bf16* base, int nvalid, RowOff rowoff) {
  constexpr int CH = D / 8;  // 16-byte chunks per row
  static_assert(ROWS * CH % kThreads == 0, "whole rounds of chunks");
#pragma unroll
  for (int it = 0; it < ROWS * CH / kThreads; it++) {
    const int idx = it * kThreads + threadIdx.x, r = idx / CH, c = idx % CH;
    const bool ok = r < nvalid;
    cp_async16(dst + r * (D + 8) + c * 8, ok ? base + rowoff(r) + c * 8 : base, ok);
  }
}

// Key flags of keys s0 .. s0 + n - 1 into shared memory (plain loads and stores).
__device__ __forceinline__ void stage_keys(int* kok, int* kdoc, const MixedAttn& a, int b, int s0, int n) {
  for (int c = threadIdx.x; c < n; c += kThreads) key_flags(a, b, s0 + c, kok[c], kdoc[c]);
}

// ---- forward -----------------------------------------------------------------------------------
template <int D>
struct Fwd {
  static constexpr int BM = 64, BN = 64, LDS = D + 8;
  static constexpr size_t smem = (size_t)(BM + 2 * BN) * LDS * sizeof(bf16) + 2 * BN * sizeof(int);
};

template <int D>
__global__ void __launch_bounds__(kThreads) fwd_mma_kernel(const MixedAttn a, int ntq) {
#ifdef TEMPER_NO_MMA
  __trap();
#else
  using C = Fwd<D>;
  constexpr int BM = C::BM, BN = C::BN, LDS = C::LDS, NKS = D / 16, NNB = BN / 8, NDB = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* Ks = Qs + BM * LDS;
  bf16* Vs = Ks + BN * LDS;
  int* kok = reinterpret_cast<int*>(Vs + BN * LDS);
  int* kdoc = kok + BN;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tg = lane & 3;
  // Last query tiles (the most keys under causality) launch first.
  const int64_t nbh = (int64_t)a.B * a.Hq, x = blockIdx.x;
  const int bh = (int)(x % nbh), tile = ntq - 1 - (int)(x / nbh);
  const int b = bh / a.Hq, h = bh % a.Hq, g = h / a.G, i0 = tile * BM;
  const int nq = min(BM, a.Tq - i0);
  const int kend = a.causal ? max(0, min(a.Tk, a.off + i0 + nq)) : a.Tk;  // keys past it see no row
  const int nkt = (kend + BN - 1) / BN;

  load_rows<D, BM>(Qs, a.q, nq, [&](int r) { return a.qrow(b, i0 + r, h, D); });
  if (nkt > 0) {
    load_rows<D, BN>(Ks, a.k, min(BN, a.Tk), [&](int r) { return a.kvrow(b, r, g, D); });
    stage_keys(kok, kdoc, a, b, 0, BN);
  }
  cp_async_commit();
  const int rbase = i0 + warp * 16 + gr;  // this thread's rows: rbase, rbase + 8
  const RowVis rv[2] = {row_vis(a, b, rbase), row_vis(a, b, rbase + 8)};
  float o[NDB][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
  for (int d = 0; d < NDB; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[NKS][4];  // the warp's 16 query rows as A fragments, for every key tile
#pragma unroll
  for (int ks = 0; ks < NKS; ks++) ldsm_x4(qf[ks], Qs + (warp * 16 + (lane & 15)) * LDS + ks * 16 + (lane >> 4) * 8);

  for (int j = 0; j < nkt; j++) {
    const int s0 = j * BN;
    if (j > 0) {
      cp_async_wait<0>();  // K_j staged (its flags were stored before the barrier)
      __syncthreads();     // ... and every warp is done with V_{j-1}
    }
    load_rows<D, BN>(Vs, a.v, min(BN, a.Tk - s0), [&](int r) { return a.kvrow(b, s0 + r, g, D); });
    cp_async_commit();

    float s[NNB][4];
#pragma unroll
    for (int n = 0; n < NNB; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    mma_regA_Bt<NNB, D, LDS>(s, qf, Ks, lane);
    const bool need_mask = s0 + BN > a.Tk || a.km || a.doc || (a.causal && s0 + BN - 1 > a.off + i0);
#pragma unroll
    for (int n = 0; n < NNB; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = n * 8 + 2 * tg + (e & 1);
        const RowVis& r = rv[e >> 1];
        float v = s[n][e] * a.scale_log2;
        if (need_mask && !(kok[c] && s0 + c <= r.lim && kdoc[c] == r.doc)) v = -INFINITY;
        s[n][e] = v;
      }
    }
    // Online softmax per row (a row lives in the 4 lanes of a quad): rescale by exp2(m_old - m_new).
#pragma unroll
    for (int ri = 0; ri < 2; ri++) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < NNB; n++) mx = fmaxf(mx, fmaxf(s[n][2 * ri], s[n][2 * ri + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(m[ri], mx);
      const float mu = mn == -INFINITY ? 0.0f : mn;  // nothing visible yet: exp2 still gives 0s
      const float corr = exp2f(m[ri] - mu);
      m[ri] = mn;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < NNB; n++) {
        s[n][2 * ri] = exp2f(s[n][2 * ri] - mu);
        s[n][2 * ri + 1] = exp2f(s[n][2 * ri + 1] - mu);
        sum += s[n][2 * ri] + s[n][2 * ri + 1];
      }
      l[ri] = l[ri] * corr + sum;  // this thread's columns only; the quad is summed at the end
#pragma unroll
      for (int d = 0; d < NDB; d++) {
        o[d][2 * ri] *= corr;
        o[d][2 * ri + 1] *= corr;
      }
    }
    uint32_t pf[BN / 16][4];
    to_afrag<BN>(pf, s);
    cp_async_wait<0>();  // V_j staged
    __syncthreads();     // every warp is done with K_j and the key flags
    if (j + 1 < nkt) {
      const int s1 = s0 + BN;
      load_rows<D, BN>(Ks, a.k, min(BN, a.Tk - s1), [&](int r) { return a.kvrow(b, s1 + r, g, D); });
      stage_keys(kok, kdoc, a, b, s1, BN);
    }
    cp_async_commit();
    mma_regA_B<BN, NDB, LDS>(o, pf, Vs, lane);
  }

#pragma unroll
  for (int ri = 0; ri < 2; ri++) {
    float L = l[ri];
    L += __shfl_xor_sync(0xffffffffu, L, 1);
    L += __shfl_xor_sync(0xffffffffu, L, 2);
    const int i = rbase + 8 * ri;
    if (i >= a.Tq) continue;
    const float inv = L == 0.0f ? 0.0f : 1.0f / L;  // no visible key: a zero row
    float* orow = a.o + a.qrow(b, i, h, D) + 2 * tg;
#pragma unroll
    for (int d = 0; d < NDB; d++)
      *reinterpret_cast<float2*>(orow + d * 8) = make_float2(o[d][2 * ri] * inv, o[d][2 * ri + 1] * inv);
    if (tg == 0) a.l[a.lse_at(b, h, i)] = L == 0.0f ? -INFINITY : m[ri] * kLn2 + logf(L);
  }
#endif
}

// ---- backward: delta = rowsum(dout * out), one warp per row ------------------------------------
__global__ void delta_kernel(const MixedAttn a, int D, int64_t nrows) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < nrows; r += nwarps) {
    const bf16* dor = a.dout + r * D;
    const float* orow = a.out + r * D;
    float acc = 0.0f;
    for (int d = lane; d < D; d += 32) acc = fmaf(__bfloat162float(dor[d]), orow[d], acc);
    acc = cuda::warp_sum(acc);
    if (lane == 0) {
      const int h = (int)(r % a.Hq), i = (int)(r / a.Hq % a.Tq), b = (int)(r / ((int64_t)a.Hq * a.Tq));
      a.delta[a.lse_at(b, h, i)] = acc;
    }
  }
}

// ---- backward: dQ, one CTA per (query tile, b, head) -------------------------------------------
template <int D>
struct Dq {
  static constexpr int BM = 64, BN = D == 128 ? 32 : 64, LDS = D + 8;
  static constexpr size_t smem = (size_t)(2 * BM + 4 * BN) * LDS * sizeof(bf16) + 4 * BN * sizeof(int);
};

template <int D>
__global__ void __launch_bounds__(kThreads) dq_mma_kernel(const MixedAttn a, int ntq) {
#ifdef TEMPER_NO_MMA
  __trap();
#else
  using C = Dq<D>;
  constexpr int BM = C::BM, BN = C::BN, LDS = C::LDS, NNB = BN / 8, NDB = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* dOs = Qs + BM * LDS;
  bf16* Ks = dOs + BM * LDS;  // [2][BN * LDS]
  bf16* Vs = Ks + 2 * BN * LDS;
  int* kok = reinterpret_cast<int*>(Vs + 2 * BN * LDS);  // [2][BN]
  int* kdoc = kok + 2 * BN;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tg = lane & 3;
  const int64_t nbh = (int64_t)a.B * a.Hq, x = blockIdx.x;
  const int bh = (int)(x % nbh), tile = ntq - 1 - (int)(x / nbh);
  const int b = bh / a.Hq, h = bh % a.Hq, g = h / a.G, i0 = tile * BM;
  const int nq = min(BM, a.Tq - i0);
  const int kend = a.causal ? max(0, min(a.Tk, a.off + i0 + nq)) : a.Tk;
  const int nkt = (kend + BN - 1) / BN;

  auto stage = [&](int j) {
    const int s0 = j * BN, buf = j & 1;
    load_rows<D, BN>(Ks + buf * BN * LDS, a.k, min(BN, a.Tk - s0), [&](int r) { return a.kvrow(b, s0 + r, g, D); });
    load_rows<D, BN>(Vs + buf * BN * LDS, a.v, min(BN, a.Tk - s0), [&](int r) { return a.kvrow(b, s0 + r, g, D); });
    stage_keys(kok + buf * BN, kdoc + buf * BN, a, b, s0, BN);
  };
  load_rows<D, BM>(Qs, a.q, nq, [&](int r) { return a.qrow(b, i0 + r, h, D); });
  load_rows<D, BM>(dOs, a.dout, nq, [&](int r) { return a.qrow(b, i0 + r, h, D); });
  if (nkt > 0) stage(0);
  cp_async_commit();

  const int rbase = i0 + warp * 16 + gr;
  const RowVis rv[2] = {row_vis(a, b, rbase), row_vis(a, b, rbase + 8)};
  float L2[2], dl[2];  // lse (exp2 domain; -inf: no visible key or no row) and delta of the thread's rows
#pragma unroll
  for (int ri = 0; ri < 2; ri++) {
    const int i = rbase + 8 * ri;
    L2[ri] = i < a.Tq ? a.lse[a.lse_at(b, h, i)] * kLog2e : -INFINITY;
    dl[ri] = i < a.Tq ? a.delta[a.lse_at(b, h, i)] : 0.0f;
  }
  float acc[NDB][4];
#pragma unroll
  for (int d = 0; d < NDB; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.0f;

  for (int j = 0; j < nkt; j++) {
    const int s0 = j * BN, buf = j & 1;
    if (j + 1 < nkt) {
      stage(j + 1);  // into the other buffer, last read before the previous iteration's final barrier
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* Kb = Ks + buf * BN * LDS;
    const int* ko = kok + buf * BN;
    const int* kd = kdoc + buf * BN;
    float s[NNB][4], dp[NNB][4];
#pragma unroll
    for (int n = 0; n < NNB; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
    mma_A_Bt<NNB, D, LDS>(s, Qs + warp * 16 * LDS, Kb, lane);
    mma_A_Bt<NNB, D, LDS>(dp, dOs + warp * 16 * LDS, Vs + buf * BN * LDS, lane);
    const bool need_mask = s0 + BN > a.Tk || a.km || a.doc || (a.causal && s0 + BN - 1 > a.off + i0);
#pragma unroll
    for (int n = 0; n < NNB; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = n * 8 + 2 * tg + (e & 1), ri = e >> 1;
        const bool vis = !need_mask || (ko[c] && s0 + c <= rv[ri].lim && kd[c] == rv[ri].doc);
        const float p = vis && L2[ri] != -INFINITY ? exp2f(s[n][e] * a.scale_log2 - L2[ri]) : 0.0f;
        s[n][e] = p * (dp[n][e] - dl[ri]);  // dS
      }
    }
    uint32_t pf[BN / 16][4];
    to_afrag<BN>(pf, s);
    mma_regA_B<BN, NDB, LDS>(acc, pf, Kb, lane);  // dQ / scale += dS K
    __syncthreads();  // this buffer is refilled two iterations on
  }

#pragma unroll
  for (int ri = 0; ri < 2; ri++) {
    const int i = rbase + 8 * ri;
    if (i >= a.Tq) continue;
    float* dqr = a.dq + a.qrow(b, i, h, D) + 2 * tg;
#pragma unroll
    for (int d = 0; d < NDB; d++)
      *reinterpret_cast<float2*>(dqr + d * 8) = make_float2(acc[d][2 * ri] * a.scale, acc[d][2 * ri + 1] * a.scale);
  }
#endif
}

// ---- backward: dK, dV, one CTA per (key tile, b, kv head) --------------------------------------
template <int D>
struct Dkv {
  static constexpr int BN = 64, BM = D == 128 ? 32 : 64, LDS = D + 8;
  static constexpr size_t smem =
      (size_t)(2 * BN + 4 * BM) * LDS * sizeof(bf16) + 2 * BM * (2 * sizeof(float) + 2 * sizeof(int));
};

template <int D>
__global__ void __launch_bounds__(kThreads) dkv_mma_kernel(const MixedAttn a) {
#ifdef TEMPER_NO_MMA
  __trap();
#else
  using C = Dkv<D>;
  constexpr int BN = C::BN, BM = C::BM, LDS = C::LDS, NQB = BM / 8, NDB = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + BN * LDS;
  bf16* Qs = Vs + BN * LDS;     // [2][BM * LDS]
  bf16* dOs = Qs + 2 * BM * LDS;  // [2][BM * LDS]
  float* qL2 = reinterpret_cast<float*>(dOs + 2 * BM * LDS);  // [2][BM] lse * log2(e), -inf: no row
  float* qdl = qL2 + 2 * BM;                                  // [2][BM] delta
  int* qlim = reinterpret_cast<int*>(qdl + 2 * BM);           // [2][BM] last visible key
  int* qdoc = qlim + 2 * BM;                                  // [2][BM]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tg = lane & 3;
  // Key tile 0 (the most queries under causality) first.
  const int64_t nbg = (int64_t)a.B * a.Hkv, x = blockIdx.x;
  const int bg = (int)(x % nbg), kt = (int)(x / nbg);
  const int b = bg / a.Hkv, g = bg % a.Hkv, s0 = kt * BN;
  // Causal: query i sees key s0 only when off + i >= s0, so earlier query tiles are skipped.
  const int ntq = (a.Tq + BM - 1) / BM;
  const int qt0 = a.causal ? min(ntq, max(0, s0 - a.off) / BM) : 0;
  const int nqt = ntq - qt0, nsteps = a.G * nqt;

  auto stage = [&](int it) {
    const int buf = it & 1, h = g * a.G + it / nqt, q0 = (qt0 + it % nqt) * BM, nq = min(BM, a.Tq - q0);
    load_rows<D, BM>(Qs + buf * BM * LDS, a.q, nq, [&](int r) { return a.qrow(b, q0 + r, h, D); });
    load_rows<D, BM>(dOs + buf * BM * LDS, a.dout, nq, [&](int r) { return a.qrow(b, q0 + r, h, D); });
    for (int c = threadIdx.x; c < BM; c += kThreads) {
      const int i = q0 + c;
      const RowVis r = row_vis(a, b, i);
      qL2[buf * BM + c] = i < a.Tq ? a.lse[a.lse_at(b, h, i)] * kLog2e : -INFINITY;
      qdl[buf * BM + c] = i < a.Tq ? a.delta[a.lse_at(b, h, i)] : 0.0f;
      qlim[buf * BM + c] = r.lim;
      qdoc[buf * BM + c] = r.doc;
    }
  };
  load_rows<D, BN>(Ks, a.k, min(BN, a.Tk - s0), [&](int r) { return a.kvrow(b, s0 + r, g, D); });
  load_rows<D, BN>(Vs, a.v, min(BN, a.Tk - s0), [&](int r) { return a.kvrow(b, s0 + r, g, D); });
  if (nsteps > 0) stage(0);
  cp_async_commit();

  const int kbase = warp * 16 + gr;  // this thread's keys (rows of S^T): s0 + kbase, s0 + kbase + 8
  int kok[2], kdoc[2];
  key_flags(a, b, s0 + kbase, kok[0], kdoc[0]);
  key_flags(a, b, s0 + kbase + 8, kok[1], kdoc[1]);
  float dk[NDB][4], dv[NDB][4];
#pragma unroll
  for (int d = 0; d < NDB; d++)
    dk[d][0] = dk[d][1] = dk[d][2] = dk[d][3] = dv[d][0] = dv[d][1] = dv[d][2] = dv[d][3] = 0.0f;

  for (int it = 0; it < nsteps; it++) {
    const int buf = it & 1, q0 = (qt0 + it % nqt) * BM;
    if (it + 1 < nsteps) {
      stage(it + 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* Qb = Qs + buf * BM * LDS;
    const bf16* dOb = dOs + buf * BM * LDS;
    const float* L2 = qL2 + buf * BM;
    const float* dl = qdl + buf * BM;
    const int* lim = qlim + buf * BM;
    const int* qd = qdoc + buf * BM;
    float st[NQB][4], dpt[NQB][4];  // S^T and dP^T: the warp's 16 keys x BM queries
#pragma unroll
    for (int n = 0; n < NQB; n++)
      st[n][0] = st[n][1] = st[n][2] = st[n][3] = dpt[n][0] = dpt[n][1] = dpt[n][2] = dpt[n][3] = 0.0f;
    mma_A_Bt<NQB, D, LDS>(st, Ks + warp * 16 * LDS, Qb, lane);
    mma_A_Bt<NQB, D, LDS>(dpt, Vs + warp * 16 * LDS, dOb, lane);
    const bool need_mask =
        s0 + BN > a.Tk || q0 + BM > a.Tq || a.km || a.doc || (a.causal && s0 + BN - 1 > a.off + q0);
#pragma unroll
    for (int n = 0; n < NQB; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = n * 8 + 2 * tg + (e & 1), ri = e >> 1;  // query column c, key row ri
        const bool vis = !need_mask || (kok[ri] && s0 + kbase + 8 * ri <= lim[c] && kdoc[ri] == qd[c]);
        const float p = vis && L2[c] != -INFINITY ? exp2f(st[n][e] * a.scale_log2 - L2[c]) : 0.0f;
        st[n][e] = p;
        dpt[n][e] = p * (dpt[n][e] - dl[c]);  // dS^T
      }
    }
    uint32_t pf[BM / 16][4];
    to_afrag<BM>(pf, st);
    mma_regA_B<BM, NDB, LDS>(dv, pf, dOb, lane);  // dV += P^T dO
    to_afrag<BM>(pf, dpt);
    mma_regA_B<BM, NDB, LDS>(dk, pf, Qb, lane);  // dK / scale += dS^T Q
    __syncthreads();  // this buffer is refilled two steps on
  }

#pragma unroll
  for (int ri = 0; ri < 2; ri++) {
    const int s = s0 + kbase + 8 * ri;
    if (s >= a.Tk) continue;
    float* dkr = a.dk + a.kvrow(b, s, g, D) + 2 * tg;
    float* dvr = a.dv + a.kvrow(b, s, g, D) + 2 * tg;
#pragma unroll
    for (int d = 0; d < NDB; d++) {
      *reinterpret_cast<float2*>(dkr + d * 8) = make_float2(dk[d][2 * ri] * a.scale, dk[d][2 * ri + 1] * a.scale);
      *reinterpret_cast<float2*>(dvr + d * 8) = make_float2(dv[d][2 * ri], dv[d][2 * ri + 1]);
    }
  }
#endif
}

// ---- host --------------------------------------------------------------------------------------
template <typename K>
void launch(K kernel, const char* op, const std::string& detail, int64_t blocks, size_t smem, const MixedAttn& a) {
  cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), op, detail);
  kernel<<<(unsigned)blocks, kThreads, smem, stream()>>>(a);
  cuda::check_launch(op, detail);
}
template <typename K>
void launch(K kernel, const char* op, const std::string& detail, int64_t blocks, size_t smem, const MixedAttn& a,
            int n) {
  cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), op, detail);
  kernel<<<(unsigned)blocks, kThreads, smem, stream()>>>(a, n);
  cuda::check_launch(op, detail);
}

std::string shape(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D) {
  return cuda::dims({{"B", B}, {"Tq", Tq}, {"Tk", Tk}, {"Hq", Hq}, {"Hkv", Hkv}, {"D", D}});
}

// Tensor cores: D 64 or 128, sm_80+, 16-byte aligned buffers, sizes in int, not disabled by
// TEMPER_ATTENTION_MMA=0.
bool use_mma(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t D, std::initializer_list<const void*> ptrs) {
  static const bool enabled = [] {
    const char* e = std::getenv("TEMPER_ATTENTION_MMA");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  if (!enabled || (D != 64 && D != 128)) return false;
  if (Tq >= (1ll << 30) || Tk >= (1ll << 30) || B * Hq * ((Tq + 63) / 64) >= (1ll << 31)) return false;
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  static int major[64];  // per device, 0 = not asked yet
  const int dev = cuda::current_device();
  int& mj = major[dev & 63];
  if (mj == 0) cuda::check(cudaDeviceGetAttribute(&mj, cudaDevAttrComputeCapabilityMajor, dev), "attention_mixed");
  return mj >= 8;
}

MixedAttn make(const void* q, const void* k, const void* v, const int32_t* km, const int32_t* doc, int64_t B,
               int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, float scale, int causal) {
  MixedAttn a{};
  a.q = static_cast<const bf16*>(q);
  a.k = static_cast<const bf16*>(k);
  a.v = static_cast<const bf16*>(v);
  a.km = km;
  a.doc = doc;
  a.B = (int)B, a.Tq = (int)Tq, a.Tk = (int)Tk, a.Hq = (int)Hq, a.Hkv = (int)Hkv, a.G = (int)(Hq / Hkv);
  a.off = (int)(Tk - Tq);
  a.scale = scale;
  a.scale_log2 = scale * kLog2e;
  a.causal = causal;
  return a;
}

// An f32 copy of a bf16 device buffer in scratch memory, freed (stream-ordered) on scope exit.
class Widened {
 public:
  Widened(const void* src, int64_t n) : n_(n > 0 ? n : 0) {
    p_ = n_ ? static_cast<float*>(cuda::scratch_alloc((size_t)n_ * sizeof(float))) : nullptr;
    if (n_) cast(src, 3, p_, 0, n_);
  }
  ~Widened() {
    if (p_) cuda::scratch_free(p_, (size_t)n_ * sizeof(float));
  }
  Widened(const Widened&) = delete;
  Widened& operator=(const Widened&) = delete;
  const float* get() const { return p_; }

 private:
  int64_t n_;
  float* p_;
};

template <int D>
void forward_mma(const MixedAttn& a, const std::string& detail) {
  const int ntq = (a.Tq + Fwd<D>::BM - 1) / Fwd<D>::BM;
  launch(fwd_mma_kernel<D>, "attention_forward_mixed", detail, (int64_t)ntq * a.B * a.Hq, Fwd<D>::smem, a, ntq);
}

template <int D>
void backward_mma(const MixedAttn& a, const std::string& detail) {
  if (a.Tq > 0) {
    const int64_t nrows = (int64_t)a.B * a.Tq * a.Hq;
    delta_kernel<<<cuda::grid_for(nrows * 32), 256, 0, stream()>>>(a, D, nrows);
    cuda::check_launch("attention_backward_mixed_delta", detail);
    const int ntq = (a.Tq + Dq<D>::BM - 1) / Dq<D>::BM;
    launch(dq_mma_kernel<D>, "attention_backward_mixed_dq", detail, (int64_t)ntq * a.B * a.Hq, Dq<D>::smem, a, ntq);
  }
  if (a.Tk > 0) {  // with Tq == 0 this writes dk = dv = 0
    const int64_t nkt = (a.Tk + Dkv<D>::BN - 1) / Dkv<D>::BN;
    launch(dkv_mma_kernel<D>, "attention_backward_mixed_dkv", detail, nkt * a.B * a.Hkv, Dkv<D>::smem, a);
  }
}

}  // namespace

void attention_forward_mixed(const void* q, const void* k, const void* v, const int32_t* key_mask,
                             const int32_t* doc_ids, float* out, float* lse, int64_t B, int64_t Tq, int64_t Tk,
                             int64_t Hq, int64_t Hkv, int64_t D, float scale, int causal) {
  if (B * Tq * Hq == 0) return;
  const std::string detail = shape(B, Tq, Tk, Hq, Hkv, D);
  if (!use_mma(B, Tq, Tk, Hq, D, {q, k, v, out})) {
    Widened wq(q, B * Tq * Hq * D), wk(k, B * Tk * Hkv * D), wv(v, B * Tk * Hkv * D);
    return attention_forward_f32(wq.get(), wk.get(), wv.get(), key_mask, doc_ids, out, lse, B, Tq, Tk, Hq, Hkv, D,
                                 scale, causal, Tk);
  }
  MixedAttn a = make(q, k, v, key_mask, doc_ids, B, Tq, Tk, Hq, Hkv, scale, causal);
  a.o = out;
  a.l = lse;
  if (D == 64) forward_mma<64>(a, detail);
  else forward_mma<128>(a, detail);
}

void attention_backward_mixed(const void* q, const void* k, const void* v, const float* out, const float* lse,
                              const void* dout, const int32_t* key_mask, const int32_t* doc_ids, float* dq, float* dk,
                              float* dv, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                              float scale, int causal) {
  if (B * Hq * D == 0 || Tq + Tk == 0) return;
  const std::string detail = shape(B, Tq, Tk, Hq, Hkv, D);
  if (!use_mma(B, Tq, Tk, Hq, D, {q, k, v, out, dout, dq, dk, dv})) {
    Widened wq(q, B * Tq * Hq * D), wk(k, B * Tk * Hkv * D), wv(v, B * Tk * Hkv * D), wdo(dout, B * Tq * Hq * D);
    return attention_backward_f32(wq.get(), wk.get(), wv.get(), out, lse, wdo.get(), key_mask, doc_ids, dq, dk, dv, B,
                                  Tq, Tk, Hq, Hkv, D, scale, causal);
  }
  MixedAttn a = make(q, k, v, key_mask, doc_ids, B, Tq, Tk, Hq, Hkv, scale, causal);
  a.dout = static_cast<const bf16*>(dout);
  a.out = out;
  a.lse = lse;
  a.dq = dq;
  a.dk = dk;
  a.dv = dv;
  const size_t dbytes = (size_t)(B * Hq * Tq) * sizeof(float);
  a.delta = dbytes ? static_cast<float*>(cuda::scratch_alloc(dbytes)) : nullptr;
  if (D == 64) backward_mma<64>(a, detail);
  else backward_mma<128>(a, detail);
  if (a.delta) cuda::scratch_free(a.delta, dbytes);
}

}  // namespace temper
