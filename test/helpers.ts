// Test helpers: seeded inputs, max relative error, and a finite-difference gradient check
// whose loss sum(out * g) is accumulated in float64 on the host.
import assert from 'node:assert/strict';
import * as T from '../src/index.js';
import type { Tensor } from '../src/index.js';

/** max |a - b| / (max |b| + 1e-6) over all elements. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(x) !== Number.isNaN(y)) return Infinity;
    if (x === y) continue;
    num = Math.max(num, Math.abs(x - y));
  }
  for (let i = 0; i < b.length; i++) den = Math.max(den, Math.abs(b[i]!));
  return num / (den + 1e-6);
}

export function assertClose(actual: Tensor | ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  const a = 'toArray' in actual ? actual.toArray() : actual;
  const e = maxRelErr(a, expected);
  assert.ok(e < tol, `${what}: max relative error ${e.toExponential(3)} >= ${tol}`);
}

/** Deterministic values in [lo, hi) from a small LCG (host side, independent of temper's RNG). */
export function hostRandom(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((s >>> 8) / 16777216) * (hi - lo);
  }
  return out;
}

export interface GradInput {
  shape: number[];
  data?: Float32Array;
  lo?: number;
  hi?: number;
  /** Not differentiated (e.g. masks passed through closures are simpler). */
  noGrad?: boolean;
}

/**
 * Compares backward() with central differences of L = sum(f(x) * g) for every
 * differentiable input, on up to `maxProbe` elements each.
 */
export function gradcheck(
  name: string,
  f: (xs: Tensor[]) => Tensor,
  inputs: GradInput[],
  opts: { h?: number; rtol?: number; atol?: number; maxProbe?: number; seed?: number } = {},
): void {
  const h = opts.h ?? 1e-2, rtol = opts.rtol ?? 2e-2, atol = opts.atol ?? 2e-3, maxProbe = opts.maxProbe ?? 24;
  const seed = opts.seed ?? 1;
  const datas = inputs.map((inp, i) => inp.data ?? hostRandom(inp.shape.reduce((a, b) => a * b, 1), seed * 31 + i, inp.lo ?? -1, inp.hi ?? 1));
  T.scope(() => {
    const leaves = inputs.map((inp, i) => T.fromArray(datas[i]!, inp.shape, { requiresGrad: !inp.noGrad }));
    const out = f(leaves);
    const g = hostRandom(out.numel, seed * 7 + 3, -1, 1);
    out.backward(T.fromArray(g, out.shape));
    const analytic = leaves.map((l) => (l.grad ? l.grad.toArray() : null));
    const lossAt = (i: number, data: Float32Array): number =>
      T.scope(() =>
        T.noGrad(() => {
          const xs = inputs.map((inp, j) => T.fromArray(j === i ? data : datas[j]!, inp.shape));
          const y = f(xs).toArray();
          let s = 0;
          for (let k = 0; k < y.length; k++) s += y[k]! * g[k]!;
          return s;
        }),
      );
    inputs.forEach((inp, i) => {
      if (inp.noGrad) return;
      const a = analytic[i];
      assert.ok(a, `${name}: input ${i} got no gradient`);
      const n = datas[i]!.length;
      const probes = n <= maxProbe ? [...Array(n).keys()] : [...Array(maxProbe).keys()].map((k) => Math.floor((k * n) / maxProbe + (k % 3)) % n);
      for (const j of probes) {
        const d = Float32Array.from(datas[i]!);
        d[j] = datas[i]![j]! + h;
        const fp = lossAt(i, d);
        d[j] = datas[i]![j]! - h;
        const fm = lossAt(i, d);
        const num = (fp - fm) / (2 * h);
        const ana = a[j]!;
        assert.ok(
          Math.abs(num - ana) <= atol + rtol * Math.abs(num),
          `${name}: d/dx${i}[${j}] analytic ${ana} vs numeric ${num}`,
        );
      }
    });
  });
}

/** Copies the weights of the model folder `dir` into `model` (a test trainer's loadWeights). */
export function loadWeightsInto(model: T.Module, dir: string): void {
  const again = T.loadModelFromDir(dir);
  const src = new Map(again.namedParameters());
  for (const [n, p] of model.namedParameters()) T.assign(p, src.get(n)!);
  again.dispose();
}
