// Sparsification of one task vector δ (flattened): magnitude top-k (TIES), DARE's random
// Bernoulli drop, and breadcrumbs' outlier+small drop. Ranks use quickselect (O(n)), not a
// full argsort, so a 500M-element embedding stays cheap; ties at a threshold go by index.
import { TemperError } from '../../tensor/index.js';

/** k-th smallest (0-based) of `a` (a scratch copy is made). */
function kthSmallest(src: Float32Array, k: number): number {
  const a = Float32Array.from(src);
  let lo = 0, hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/**
 * Keeps the entries whose ascending rank of |δ| lies in [lo, hi) (rank ties broken by index,
 * as a stable argsort would) and zeroes the rest, in place.
 */
export function keepRankRange(delta: Float32Array, lo: number, hi: number): Float32Array {
  const n = delta.length;
  if (lo <= 0 && hi >= n) return delta;
  if (hi <= lo) return delta.fill(0);
  const abs = new Float32Array(n);
  for (let i = 0; i < n; i++) abs[i] = Math.abs(delta[i]!);
  const vLo = lo > 0 ? kthSmallest(abs, lo) : -Infinity;
  const vHi = hi < n ? kthSmallest(abs, hi - 1) : Infinity;
  // rank of an entry equal to v = (#entries < v) + (#equal entries before it)
  let lessLo = 0, lessHi = 0;
  for (let i = 0; i < n; i++) {
    if (abs[i]! < vLo) lessLo++;
    if (abs[i]! < vHi) lessHi++;
  }
  let eqLo = 0, eqHi = 0;
  for (let i = 0; i < n; i++) {
    const v = abs[i]!;
    let keep = v > vLo && v < vHi;
    if (v === vLo || v === vHi) {
      const rank = v === vLo ? lessLo + eqLo : lessHi + eqHi;
      keep = rank >= lo && rank < hi;
    }
    if (v === vLo) eqLo++;
    if (v === vHi && vHi !== vLo) eqHi++;
    if (!keep) delta[i] = 0;
  }
  return delta;
}

/** TIES: keep the k = floor(density·n) largest |δ| (mergekit asserts k > 0). */
export function magnitude(delta: Float32Array, density: number, name: string): Float32Array {
  if (density >= 1) return delta;
  const k = Math.floor(density * delta.length);
  if (k <= 0) throw new TemperError(`tensor '${name}': density ${density} keeps no entries of ${delta.length} (k = floor(density·numel) must be > 0)`);
  return keepRankRange(delta, delta.length - k, delta.length);
}

/**
 * DARE (arXiv 2311.03099): keep each entry with probability `density`. rescale 'exact'
 * divides the kept entries by density (the paper, E[δ'] = δ); 'l1' multiplies by
 * ‖δ‖₁/‖kept‖₁ (mergekit since be52668); 'none' only drops.
 */
export function bernoulli(delta: Float32Array, density: number, rescale: 'exact' | 'l1' | 'none', u: Float32Array): Float32Array {
  if (density >= 1) return delta;
  let before = 0, after = 0;
  for (let i = 0; i < delta.length; i++) {
    const v = delta[i]!;
    before += Math.abs(v);
    if (u[i]! < density) after += Math.abs(v);
    else delta[i] = 0;
  }
  const scale = rescale === 'exact' ? 1 / density : rescale === 'l1' ? (after > 0 ? before / after : 1) : 1;
  if (scale !== 1) for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! * scale;
  return delta;
}

/**
 * Model Breadcrumbs (arXiv 2312.06795): drop the top gamma·n |δ| (outliers) and then the
 * smallest, so that floor(density·n) remain (mergekit `magnitude_outliers`).
 */
export function breadcrumbs(delta: Float32Array, density: number, gamma: number): Float32Array {
  if (density >= 1) return delta;
  const n = delta.length;
  const target = Math.floor(density * n);
  let nTop = Math.floor(gamma * n);
  let nBot = n - target - nTop;
  if (nBot < 0) {
    nTop = n - target;
    nBot = 0;
  }
  return keepRankRange(delta, nBot, n - nTop);
}
