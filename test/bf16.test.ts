// bf16 forward math: every op that takes bf16 gives the f32 op on the bf16-rounded inputs,
// rounded once to bf16 (the definition in native/src/dtype_dispatch.cc). The reference is always
// computed in f32 on the CPU, so with TEMPER_DEVICE=cuda:0 this file checks the GPU's native
// bf16 kernels against it (tolerance: one bf16 rounding, 1e-2 relative). Also: a bf16 model's
// logits and greedy generation against its f32 self, and the dtype errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';

const tiny = fileURLToPath(new URL('../../assets/builtin/tiny', import.meta.url));
const device = T.getDefaultDevice();
const gen = new T.Generator(3);

/** A bf16 tensor on the device under test and the same (rounded) values as f32 on the CPU. */
function pair(shape: number[], scale = 1): [T.Tensor, T.Tensor] {
  const f = T.mul(T.randn(shape, { generator: gen, device: 'cpu' }), scale);
  const b = f.to('bf16');
  const ref = b.to('f32');
  const dev = b.to(device);
  f.dispose();
  b.dispose();
  return [dev, ref];
}

/** bf16 result vs the f32 reference rounded to bf16: within one bf16 rounding, NaN where NaN. */
function close(name: string, got: T.Tensor, ref: T.Tensor, tol = 1e-2): void {
  assert.equal(got.dtype, ref.dtype === 'f32' ? 'bf16' : ref.dtype, `${name}: dtype`);
  assert.deepEqual(got.shape, ref.shape, `${name}: shape`);
  const r = ref.dtype === 'f32' ? T.scope(() => ref.to('bf16').to('f32').toArray()) : ref.toArray();
  const g = got.toArray();
  for (let i = 0; i < r.length; i++) {
    const a = g[i]!, b = r[i]!;
    if (Number.isNaN(b) || Number.isNaN(a)) assert.ok(Number.isNaN(a) && Number.isNaN(b), `${name}[${i}]: ${a} vs ${b}`);
    else assert.ok(a === b || Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${name}[${i}]: ${a} vs ${b}`);
  }
}

test(`bf16 ops on ${device} equal the f32 ops on rounded inputs, rounded once`, () => {
  T.scope(() => {
    const [x, xr] = pair([7, 33]);
    const [y, yr] = pair([7, 33]);
    const [row, rowr] = pair([33]);
    for (const op of ['exp', 'silu', 'sigmoid', 'tanh', 'neg', 'abs', 'relu', 'square'] as const) close(op, T.unary(op, x), T.unary(op, xr));
    close('gelu', T.gelu(x), T.gelu(xr));
    close('add', T.add(x, y), T.add(xr, yr));
    close('mul broadcast', T.mul(x, row), T.mul(xr, rowr));
    close('sub scalar', T.sub(x, 0.5), T.sub(xr, 0.5));
    close('maximum', T.maximum(x, y), T.maximum(xr, yr));
    assert.deepEqual([...T.lt(x, y).toArray()], [...T.lt(xr, yr).toArray()], 'lt');
    close('where', T.where(T.gt(x, 0), x, y), T.where(T.gt(xr, 0), xr, yr));
    close('clamp', T.clamp(x, -0.5, 0.5), T.clamp(xr, -0.5, 0.5));
    close('sum', T.sum(x, 1), T.sum(xr, 1));
    close('mean axis 0', T.mean(x, 0), T.mean(xr, 0));
    close('max', T.max(x, 1), T.max(xr, 1));
    close('logsumexp', T.logsumexp(x, 1), T.logsumexp(xr, 1));
    assert.deepEqual([...T.argmax(x, 1).toArray()], [...T.argmax(xr, 1).toArray()], 'argmax');
    close('softmax', T.softmax(x, -1), T.softmax(xr, -1));
    close('logSoftmax', T.logSoftmax(x, -1), T.logSoftmax(xr, -1));
    close('rmsNorm', T.rmsNorm(x, row, 1e-6), T.rmsNorm(xr, rowr, 1e-6));
    close('layerNorm', T.layerNorm(x, row, row, 1e-5), T.layerNorm(xr, rowr, rowr, 1e-5));
    const [a, ar] = pair([3, 5, 17]);
    const [b, br] = pair([3, 17, 9]);
    const [w, wr] = pair([11, 17]);
    close('matmul batched', T.matmul(a, b), T.matmul(ar, br));
    close('matmul transB', T.matmul(a, w, { transB: true }), T.matmul(ar, wr, { transB: true }));
    const [q, qr] = pair([2, 6, 4, 16]);
    const [k, kr] = pair([2, 6, 2, 16]);
    const [v, vr] = pair([2, 6, 2, 16]);
    close('attention', T.attention(q, k, v), T.attention(qr, kr, vr));
    const pos = T.fromArray(Int32Array.from({ length: 12 }, (_, i) => i % 6), [2, 6], { device });
    const posr = pos.to('cpu');
    const inv = T.fromArray(Float32Array.from({ length: 8 }, (_, i) => 10000 ** (-i / 8)), [8], { device });
    close('rotary', T.rotary(q, pos, inv), T.rotary(qr, posr, inv.to('cpu')));
    const labels = T.fromArray(Int32Array.from([3, -100, 0, 32, 5, 7, 1]), [7], { device });
    const ce = T.crossEntropy(x, labels, { reduction: 'none' });
    assert.equal(ce.dtype, 'f32', 'losses stay f32');
    const cer = T.crossEntropy(xr, labels.to('cpu'), { reduction: 'none' }).toArray();
    ce.toArray().forEach((l, i) => assert.ok(Math.abs(l - cer[i]!) < 1e-4 * Math.max(1, Math.abs(cer[i]!)), `ce[${i}]`));
  });
});

test('mixed dtypes are refused with a clear error; bf16 does not take gradients', () => {
  T.scope(() => {
    const a = T.ones([2], { dtype: 'bf16' }), b = T.ones([2]);
    assert.throws(() => T.add(a, b), /dtypes bf16 and f32/);
    assert.throws(() => T.matmul(T.ones([2, 2], { dtype: 'bf16' }), T.ones([2, 2])), /dtypes bf16 and f32/);
    assert.throws(() => {
      a.requiresGrad = true;
    }, /only f32 tensors can require grad/);
  });
});

test(`a bf16 model on ${device}: logits track f32 and greedy generation runs with a bf16 KV cache`, () => {
  const f32 = (T.loadModelFromDir(tiny) as T.CausalLM).to(device);
  const bf = (T.loadModelFromDir(tiny) as T.CausalLM).to(device).to('bf16');
  assert.equal(bf.dtype, 'bf16');
  assert.ok(bf.parameters().every((p) => !p.requiresGrad), 'bf16 parameters are frozen');
  T.scope(() => {
    const ids = T.fromArray(Int32Array.from([5, 9, 13, 17, 21, 25, 29, 33]), [1, 8], { device });
    const a = f32.forward({ inputIds: ids }).logits.toArray(), b = bf.forward({ inputIds: ids }).logits.toArray();
    let num = 0, den = 0;
    for (let i = 0; i < a.length; i++) {
      num += (a[i]! - b[i]!) ** 2;
      den += a[i]! ** 2;
    }
    assert.ok(Math.sqrt(num / den) < 0.05, `bf16 logits deviate from f32 by ${Math.sqrt(num / den)} (relative RMS)`);
  });
  const [g] = T.generate(bf, [[5, 9, 13]], { maxNewTokens: 8, temperature: 0 });
  assert.equal(g!.tokens.length, 8);
  bf.to('f32');
  assert.ok(bf.parameters().every((p) => p.requiresGrad && p.dtype === 'f32'), 'back to f32, trainable again');
  f32.dispose();
  bf.dispose();
});

test(`autocast('bf16'): f32 matmuls run on rounded operands with f32 results, forward and backward`, () => {
  T.scope(() => {
    const [x16, xr] = pair([4, 5, 24]);
    const [w16, wr] = pair([12, 24]);
    const x = x16.to('f32'), w = w16.to('f32');  // f32 tensors holding bf16-exact values
    const xa = T.randn([4, 5, 24], { generator: gen, device }), wa = T.randn([12, 24], { generator: gen, device });
    x.requiresGrad = true;
    w.requiresGrad = true;
    xa.requiresGrad = true;
    wa.requiresGrad = true;
    // Inputs already on the bf16 grid: autocast equals the f32 product exactly (up to summation order).
    const y = T.autocast('bf16', () => T.linear(x, w));
    assert.equal(y.dtype, 'f32');
    const yr = T.linear(xr, wr);
    const a = y.toArray(), b = yr.toArray();
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5 * Math.max(1, Math.abs(b[i]!)), `y[${i}]`);
    // Off-grid inputs: the product is that of the rounded operands, and so are the gradients.
    const ya = T.autocast('bf16', () => T.linear(xa, wa));
    const g = T.randn(ya.shape, { generator: gen, device });
    ya.backward(g);
    const round = (t: T.Tensor) => t.to('bf16').to('f32');
    const xq = round(xa), wq = round(wa), gq = round(g);
    const expectY = T.linear(xq, wq), expectDx = T.matmul(gq, wq), expectDw = T.matmul(T.reshape(gq, [-1, 12]), T.reshape(xq, [-1, 24]), { transA: true });
    for (const [name, got, want] of [['y', ya, expectY], ['dx', xa.grad!, expectDx], ['dw', wa.grad!, expectDw]] as const) {
      const p = got.toArray(), q = want.toArray();
      for (let i = 0; i < q.length; i++) assert.ok(Math.abs(p[i]! - q[i]!) <= 1e-5 * Math.max(1, Math.abs(q[i]!)), `${name}[${i}]: ${p[i]} vs ${q[i]}`);
    }
    assert.equal(T.autocastDtype(), null, 'autocast ends with its function');
  });
});

test(`tiny llama trains under autocast('bf16') on ${device}: losses track f32 and fall`, () => {
  const rows = Array.from({ length: 8 }, (_, r) => Array.from({ length: 32 }, (_, t) => 3 + ((r * 37 + t * 11) % 500)));
  const run = (mixed: boolean): number[] => {
    const model = (T.loadModelFromDir(tiny) as T.CausalLM).to(device);
    const params = model.parameters();
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) {
      T.scope(() => {
        const ids = T.fromArray(Int32Array.from(rows.flat()), [8, 32], { device });
        const loss = T.autocast(mixed ? 'bf16' : null, () => T.crossEntropy(model.forward({ inputIds: ids }).logits, T.shiftLabels(ids)));
        losses.push(loss.item());
        loss.backward();
      });
      for (const p of params) {
        T.noGrad(() => T.scope(() => T.assign(p, T.sub(p, T.mul(p.grad!, 0.05)))));
        p.zeroGrad();
      }
    }
    model.dispose();
    return losses;
  };
  const f = run(false), m = run(true);
  for (let i = 0; i < f.length; i++) assert.ok(Math.abs(f[i]! - m[i]!) < 0.02 * f[i]!, `step ${i}: f32 ${f[i]} vs autocast ${m[i]}`);
  assert.ok(m[7]! < m[0]!, `autocast loss did not fall: ${m[0]} -> ${m[7]}`);
});

test(`autocast('bf16') attention on ${device}: f32 out and gradients of the f32 attention on rounded q, k, v, dout`, () => {
  // The CPU defines mixed attention as the f32 kernels on the widened inputs, so it matches to
  // 1e-5; the GPU's tensor-core kernels round P and dS to bf16 for their second products.
  const tol = T.runsCpuKernels(device) ? 1e-5 : 2e-2;
  const round = (t: T.Tensor) => t.to('bf16').to('f32');
  const cases: { name: string; B: number; Tq: number; Tk: number; Hq: number; Hkv: number; D: number; opts: (B: number, Tk: number) => T.AttentionOptions }[] = [
    { name: 'causal', B: 2, Tq: 9, Tk: 9, Hq: 2, Hkv: 2, D: 16, opts: () => ({}) },
    { name: 'not causal, GQA', B: 1, Tq: 7, Tk: 7, Hq: 4, Hkv: 2, D: 8, opts: () => ({ causal: false }) },
    { name: 'causal GQA, Tq < Tk, two tiles', B: 1, Tq: 70, Tk: 80, Hq: 4, Hkv: 1, D: 64, opts: () => ({}) },
    {
      name: 'keyMask', B: 2, Tq: 10, Tk: 10, Hq: 2, Hkv: 1, D: 16,
      opts: (B, Tk) => ({ keyMask: T.fromArray(Int32Array.from({ length: B * Tk }, (_, i) => (i % Tk < 2 && i >= Tk ? 0 : 1)), [B, Tk], { device }) }),
    },
    {
      name: 'docIds + keyMask, scale', B: 1, Tq: 12, Tk: 12, Hq: 2, Hkv: 2, D: 32,
      opts: (B, Tk) => ({
        docIds: T.fromArray(Int32Array.from({ length: B * Tk }, (_, i) => (i < 5 ? 0 : i < 9 ? 1 : 2)), [B, Tk], { device }),
        keyMask: T.fromArray(Int32Array.from({ length: B * Tk }, (_, i) => (i === 6 ? 0 : 1)), [B, Tk], { device }),
        scale: 0.3,
      }),
    },
  ];
  for (const c of cases) {
    T.scope(() => {
      const opts = c.opts(c.B, c.Tk);
      const q = T.randn([c.B, c.Tq, c.Hq, c.D], { generator: gen, device });
      const k = T.randn([c.B, c.Tk, c.Hkv, c.D], { generator: gen, device });
      const v = T.randn([c.B, c.Tk, c.Hkv, c.D], { generator: gen, device });
      const g = T.randn([c.B, c.Tq, c.Hq, c.D], { generator: gen, device });
      const [qr, kr, vr] = [q, k, v].map(round) as [T.Tensor, T.Tensor, T.Tensor];
      for (const t of [q, k, v, qr, kr, vr]) t.requiresGrad = true;
      const y = T.autocast('bf16', () => T.attention(q, k, v, opts));
      assert.equal(y.dtype, 'f32', `${c.name}: out dtype`);
      y.backward(g);
      const yr = T.attention(qr, kr, vr, opts);  // f32, outside autocast
      yr.backward(round(g));
      for (const [what, got, want] of [['out', y, yr], ['dq', q.grad!, qr.grad!], ['dk', k.grad!, kr.grad!], ['dv', v.grad!, vr.grad!]] as const) {
        assert.equal(got.dtype, 'f32', `${c.name} ${what}: dtype`);
        const a = got.toArray(), b = want.toArray();
        for (let i = 0; i < b.length; i++)
          assert.ok(a[i] === b[i] || Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)), `${c.name} ${what}[${i}]: ${a[i]} vs ${b[i]}`);
      }
      if (T.runsCpuKernels(device)) {
        // Off the bf16 grid, so the rounding is real: the unrounded f32 attention differs.
        const yf = T.attention(q, k, v, opts).toArray(), ym = y.toArray();
        assert.ok(yf.some((x, i) => x !== ym[i]), `${c.name}: autocast made no difference`);
      }
    });
  }
});
