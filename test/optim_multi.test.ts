// Multi-tensor optimizer kernels (adamwStepMulti, globalNorm's sumSquaresMulti) against the
// per-tensor kernels on the CPU: bit-identical parameters and moments, the same norm to the last
// bit, for awkward sizes (0 and 1 elements, odd tails, chunk edges), misaligned views, mixed
// weight decay, special values and several thread counts; and AdamW.update against the loop of
// per-parameter adamwStep calls it replaced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as T from '../src/index.js';
import { kernelsFor } from '../src/tensor/backend.js';
import { AdamW } from '../src/train/index.js';

let seed = 7;
function rng(): () => number {
  let a = (seed++ * 0x9e3779b9) | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function uniform(n: number, lo: number, hi: number, specials: number[] = []): Float32Array {
  const r = rng(), a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = specials.length && r() < 0.01 ? specials[Math.floor(r() * specials.length)]! : lo + (hi - lo) * r();
  return a;
}
/** A 1-d f32 tensor holding `a`; with pad > 0, a view `pad` elements into a larger buffer (misaligned for odd pad). */
function make(a: Float32Array, pad = 0): T.Tensor {
  if (!pad) return T.fromArray(a);
  const big = new Float32Array(pad + a.length + 3).fill(123);
  big.set(a, pad);
  return T.slice(T.fromArray(big), 0, pad, pad + a.length);
}
function bits(t: T.Tensor): Uint32Array {
  const f = t.toArray() as Float32Array;
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}
function assertBits(got: T.Tensor, want: T.Tensor, what: string): void {
  const g = bits(got), w = bits(want);
  assert.equal(g.length, w.length, what);
  for (let i = 0; i < w.length; i++) if (g[i] !== w[i]) assert.fail(`${what}: element ${i} differs: ${got.toArray()[i]} vs ${want.toArray()[i]}`);
}

// Sizes: empty, one, odd tails, both sides of the CPU's 2^16 parallel/chunk threshold, and enough
// in total (> 2^16) that the threads split the concatenation mid-tensor.
const SIZES = [0, 1, 7, 3, 1000, 65535, 1, 65537, 0, 100003, 16, 5];

interface Set_ {
  p: Float32Array[];
  g: Float32Array[];
  m: Float32Array[];
  v: Float32Array[];
}
function data(sizes: number[]): Set_ {
  return {
    p: sizes.map((n) => uniform(n, -1, 1)),
    g: sizes.map((n) => uniform(n, -1, 1, [NaN, Infinity, -Infinity, 0, -0])),
    m: sizes.map((n) => uniform(n, -0.1, 0.1)),
    v: sizes.map((n) => uniform(n, 0, 0.01)),
  };
}
const tensors = (d: Set_, pads: number[]) => ({
  p: d.p.map((a, i) => make(a, pads[i]!)),
  g: d.g.map((a, i) => make(a, pads[(i + 1) % pads.length]!)),
  m: d.m.map((a, i) => make(a, pads[(i + 2) % pads.length]!)),
  v: d.v.map((a, i) => make(a, pads[(i + 3) % pads.length]!)),
});

test('adamwStepMulti is bit-identical to adamwStep per tensor (sizes 0..100003, views, mixed decay)', () => {
  const threads = T.getNumThreads();
  try {
    for (const nthreads of [1, 3, threads]) {
      T.setNumThreads(nthreads);
      for (const h of [
        { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1, gradScale: 1 },
        { lr: 3e-4, beta1: 0.8, beta2: 0.95, eps: 1e-6, step: 1000, gradScale: 0.37 },
      ]) {
        T.scope(() => {
          const d = data(SIZES);
          const wds = SIZES.map((_, i) => [0, 0.01, 0.5, 0.1][i % 4]!);
          const pads = SIZES.map((_, i) => [0, 1, 3, 4][i % 4]!);
          const a = tensors(d, pads), b = tensors(d, pads);
          a.p.forEach((p, i) => T.adamwStep(p, a.g[i]!, a.m[i]!, a.v[i]!, { ...h, weightDecay: wds[i]! }));
          T.adamwStepMulti(b.p, b.g, b.m, b.v, { ...h, weightDecay: wds });
          for (let i = 0; i < SIZES.length; i++) {
            const what = `threads ${nthreads} step ${h.step} tensor ${i} (n=${SIZES[i]})`;
            assertBits(b.p[i]!, a.p[i]!, `${what} param`);
            assertBits(b.m[i]!, a.m[i]!, `${what} exp_avg`);
            assertBits(b.v[i]!, a.v[i]!, `${what} exp_avg_sq`);
            assertBits(b.g[i]!, a.g[i]!, `${what} grad untouched`);
          }
          // One decay for all, and the default.
          T.adamwStepMulti(b.p, b.g, b.m, b.v, { ...h, weightDecay: 0.2 });
          a.p.forEach((p, i) => T.adamwStep(p, a.g[i]!, a.m[i]!, a.v[i]!, { ...h, weightDecay: 0.2 }));
          T.adamwStepMulti(b.p, b.g, b.m, b.v, h);
          a.p.forEach((p, i) => T.adamwStep(p, a.g[i]!, a.m[i]!, a.v[i]!, h));
          b.p.forEach((p, i) => assertBits(p, a.p[i]!, `threads ${nthreads} shared decay, tensor ${i}`));
        });
      }
    }
  } finally {
    T.setNumThreads(threads);
  }
});

test('adamwStepMulti: a parameter listed twice is updated twice in order; empty lists; errors before any update', () => T.scope(() => {
  const d = data([5, 9]);
  const a = tensors(d, [0, 1]), b = tensors(d, [0, 1]);
  const o = { lr: 0.01, step: 3, weightDecay: [0.1, 0.2, 0.3] };
  T.adamwStep(a.p[0]!, a.g[0]!, a.m[0]!, a.v[0]!, { ...o, weightDecay: 0.1 });
  T.adamwStep(a.p[1]!, a.g[1]!, a.m[1]!, a.v[1]!, { ...o, weightDecay: 0.2 });
  T.adamwStep(a.p[0]!, a.g[0]!, a.m[0]!, a.v[0]!, { ...o, weightDecay: 0.3 });
  T.adamwStepMulti([b.p[0]!, b.p[1]!, b.p[0]!], [b.g[0]!, b.g[1]!, b.g[0]!], [b.m[0]!, b.m[1]!, b.m[0]!], [b.v[0]!, b.v[1]!, b.v[0]!], o);
  assertBits(b.p[0]!, a.p[0]!, 'twice-listed param');
  assertBits(b.p[1]!, a.p[1]!, 'other param');
  T.adamwStepMulti([], [], [], [], { lr: 0.1, step: 1 });

  const before = [...b.p[0]!.toArray()];
  const p2 = T.zeros([4]), bad = T.zeros([5]), z4 = T.zeros([4]);
  // Per-tensor errors read as adamwStep's, and nothing is updated (b.p[0] comes first and is fine).
  assert.throws(() => T.adamwStepMulti([b.p[0]!, p2], [b.g[0]!, bad], [b.m[0]!, z4], [b.v[0]!, z4], { lr: 0.1, step: 1 }),
    /adamwStep: grad \[5\] does not match param \[4\]/);
  assert.throws(() => T.adamwStepMulti([b.p[0]!, p2], [b.g[0]!, z4.to('bf16')], [b.m[0]!, z4], [b.v[0]!, z4], { lr: 0.1, step: 1 }),
    /adamwStep: grad has dtype bf16; this op takes f32/);
  assert.throws(() => T.adamwStepMulti([b.p[0]!], [b.g[0]!], [b.m[0]!], [b.v[0]!], { lr: 0.1, step: 0 }), /adamwStep: step must be >= 1, got 0/);
  assert.throws(() => T.adamwStepMulti([b.p[0]!], [b.g[0]!], [b.m[0]!], [], { lr: 0.1, step: 1 }), /adamwStepMulti: 1 params but 0 expAvgSqs/);
  assert.throws(() => T.adamwStepMulti([b.p[0]!], [b.g[0]!], [b.m[0]!], [b.v[0]!], { lr: 0.1, step: 1, weightDecay: [0, 1] }),
    /adamwStepMulti: 1 params but 2 weight decays/);
  assert.deepEqual([...b.p[0]!.toArray()], before);
}));

test('sumSquaresMulti / globalNorm equal the per-tensor sums added in order, bit for bit', () => {
  const k = kernelsFor('cpu');
  const threads = T.getNumThreads();
  try {
    for (const nthreads of [1, 3, threads]) {
      T.setNumThreads(nthreads);
      T.scope(() => {
        for (const sizes of [[], [0], [1], SIZES, [65536, 65536, 65537, 3, 200000]]) {
          const xs = sizes.map((n, i) => make(uniform(n, -3, 3), i % 3));
          let want = 0;
          for (const x of xs) want += k.sumSquares(x.handle, x.byteOffset, x.numel);
          const got = k.sumSquaresMulti(xs.flatMap((x) => [x.handle, x.byteOffset]), xs.map((x) => x.numel));
          assert.ok(Object.is(got, want), `threads ${nthreads} sizes [${sizes}]: ${got} vs ${want}`);
          assert.ok(Object.is(T.globalNorm(xs), Math.sqrt(want)));
        }
        const withNaN = [make(uniform(10, -1, 1)), T.tensor([1, NaN]), make(uniform(3, -1, 1))];
        assert.ok(Number.isNaN(T.globalNorm(withNaN)));
        assert.equal(T.globalNorm([T.tensor([1, Infinity])]), Infinity);
      });
    }
  } finally {
    T.setNumThreads(threads);
  }
  T.scope(() => {
    // clipGradNorm still scales by max / (norm + 1e-6) and returns the norm before clipping.
    const a = T.tensor([3, 0]), b = T.tensor([4]);
    assert.equal(T.clipGradNorm([a, b], 1), 5);
    assert.deepEqual([...a.toArray(), ...b.toArray()], [...new Float32Array([3 * Math.fround(1 / (5 + 1e-6)), 0, 4 * Math.fround(1 / (5 + 1e-6))])]);
    assert.throws(() => T.globalNorm([T.tensor([1], { dtype: 'i32' })]), /globalNorm: tensor has dtype i32; this op takes f32/);
  });
});

test('AdamW.update equals the per-parameter adamwStep loop bit for bit (decay by noDecay)', () => T.scope(() => {
  const shapes: number[][] = [[3, 5], [5], [1], [0, 4], [130, 700], [7]];
  const names = ['w', 'norm.weight', 'scalar', 'empty', 'big', 'lin.bias'];
  const init = shapes.map((s) => uniform(s.reduce((x, y) => x * y, 1), -1, 1));
  const grads = [0, 1, 2].map(() => shapes.map((s) => uniform(s.reduce((x, y) => x * y, 1), -1, 1)));
  const params = shapes.map((s, i) => T.keep(T.fromArray(init[i]!, s)));
  const ref = shapes.map((s, i) => T.keep(T.fromArray(init[i]!, s)));
  const state = shapes.map((s) => ({ m: T.keep(T.zeros(s)), v: T.keep(T.zeros(s)) }));
  const cfg = { lr: 0.05, beta1: 0.85, beta2: 0.99, eps: 1e-7, weightDecay: 0.3 };
  using opt = new AdamW(names.map((n, i) => [n, params[i]!] as [string, T.Tensor]), cfg);
  for (let step = 1; step <= 3; step++) {
    params.forEach((p, i) => {
      // 'scalar' has no grad on step 2: skipped by both.
      p.grad = step === 2 && i === 2 ? null : T.keep(T.fromArray(grads[step - 1]![i]!, shapes[i]!));
    });
    opt.update(0.05 / step, 0.5);
    ref.forEach((p, i) => {
      if (step === 2 && i === 2) return;
      const decay = shapes[i]!.length < 2 || names[i]!.endsWith('.bias') ? 0 : cfg.weightDecay;
      T.adamwStep(p, params[i]!.grad!, state[i]!.m, state[i]!.v, {
        lr: 0.05 / step, beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, step, gradScale: 0.5, weightDecay: decay,
      });
    });
    params.forEach((p, i) => assertBits(p, ref[i]!, `step ${step} ${names[i]}`));
    for (const p of params) p.zeroGrad();
  }
  const st = opt.stateTensors();
  names.forEach((n, i) => {
    assertBits(st.get(`${n}.exp_avg`)!, state[i]!.m, `${n}.exp_avg`);
    assertBits(st.get(`${n}.exp_avg_sq`)!, state[i]!.v, `${n}.exp_avg_sq`);
  });
  for (const t of [...params, ...ref, ...state.flatMap((s) => [s.m, s.v])]) t.dispose();
}));
