// Ownership: scopes free what they created (sync and async), `using` frees at block end,
// use-after-dispose is an error, and full training steps return live bytes to baseline.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as T from '../src/index.js';
import type { Tensor } from '../src/index.js';

const live = () => T.memoryStats().liveBytes;

test('scope frees everything but its result; the result moves to the caller', () => {
  const before = live();
  const kept = T.scope(() => {
    const a = T.ones([256]);
    const b = T.mul(a, 2);
    return T.add(b, 1);
  });
  assert.equal(live() - before, 256 * 4);
  assert.deepEqual([...kept.toArray().slice(0, 2)], [3, 3]);
  kept.dispose();
  assert.equal(live(), before);
});

test('scope works across await', async () => {
  const before = live();
  const r = await T.scope(async () => {
    const a = T.ones([64]);
    await new Promise((res) => setTimeout(res, 5));
    const b = T.add(a, 1);
    await Promise.resolve();
    return { b, note: 'x' };
  });
  assert.equal(live() - before, 64 * 4);
  r.b.dispose();
  assert.equal(live(), before);
});

test('using disposes at block end; use after dispose names the tensor', () => {
  const before = live();
  let escaped: Tensor;
  {
    using t = T.zeros([10]);
    escaped = t;
    assert.equal(live() - before, 40);
  }
  assert.equal(live(), before);
  assert.throws(() => T.add(escaped, 1), /used after dispose\(\)/);
  assert.throws(() => escaped.toArray(), /shape \[10\], f32\) was used after dispose/);
});

test('views keep storage alive until the last holder is disposed', () => {
  const before = live();
  const a = T.arange(0, 12, 1, { dtype: 'f32' });
  const v = a.reshape([3, 4]);
  const s = v.slice(0, 1, 3);
  a.dispose();
  v.dispose();
  assert.deepEqual([...s.toArray()], [4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(live() - before, 48);
  s.dispose();
  assert.equal(live(), before);
});

test('forward without backward frees saved activations when its outputs are disposed', () => {
  const w = T.randn([32, 32], { requiresGrad: true, generator: new T.Generator(1) });
  const before = live();
  T.scope(() => {
    const x = T.randn([8, 32], { generator: new T.Generator(2) });
    T.tanh(T.matmul(x, w)).sum();
  });
  assert.equal(live(), before);
  w.dispose();
});

/** A tiny transformer-shaped step: embedding, rms_norm, rotary, attention, MLP, CE, AdamW. */
test('training steps return live bytes to the same baseline after each step', () => {
  const g = new T.Generator(3);
  const V = 50, C = 16, H = 4, Hkv = 2, D = 4, B = 2, Tn = 9;
  const params = {
    emb: T.randn([V, C], { generator: g, std: 0.1 }),
    norm: T.ones([C]),
    wq: T.randn([H * D, C], { generator: g, std: 0.1 }),
    wk: T.randn([Hkv * D, C], { generator: g, std: 0.1 }),
    wv: T.randn([Hkv * D, C], { generator: g, std: 0.1 }),
    wo: T.randn([C, H * D], { generator: g, std: 0.1 }),
    up: T.randn([32, C], { generator: g, std: 0.1 }),
    down: T.randn([C, 32], { generator: g, std: 0.1 }),
    head: T.randn([V, C], { generator: g, std: 0.1 }),
  };
  const list = Object.values(params);
  for (const p of list) p.requiresGrad = true;
  const state = list.map((p) => ({ m: T.zeros(p.shape), v: T.zeros(p.shape) }));
  const ids = T.randint(0, V, [B, Tn], { generator: g });
  const labels = T.randint(0, V, [B, Tn], { generator: g });
  const positions = T.arange(0, B * Tn).reshape([B, Tn]);
  const invFreq = T.tensor([1, 0.01]);
  const mask = T.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1, 1]], { dtype: 'i32' });

  const step = (n: number): number =>
    T.scope(() => {
      const x = T.embedding(params.emb, ids);
      const h = T.rmsNorm(x, params.norm);
      const q = T.rotary(T.linear(h, params.wq).reshape([B, Tn, H, D]), positions, invFreq);
      const k = T.rotary(T.linear(h, params.wk).reshape([B, Tn, Hkv, D]), positions, invFreq);
      const v = T.linear(h, params.wv).reshape([B, Tn, Hkv, D]);
      const a = T.linear(T.attention(q, k, v, { keyMask: mask }).reshape([B, Tn, H * D]), params.wo);
      const r = T.add(x, a);
      const m = T.linear(T.silu(T.linear(r, params.up)), params.down);
      const logits = T.linear(T.add(r, m), params.head);
      const loss = T.crossEntropy(logits, labels);
      loss.backward();
      const norm = T.clipGradNorm(list.map((p) => p.grad!), 1.0);
      assert.ok(Number.isFinite(norm));
      list.forEach((p, i) => T.adamwStep(p, p.grad!, state[i]!.m, state[i]!.v, { lr: 1e-2, step: n }));
      for (const p of list) p.zeroGrad();
      return loss.item();
    });

  const first = step(1);
  const baseline = live();
  const tensorsBaseline = T.memoryStats().liveTensors;
  let last = first;
  for (let n = 2; n <= 6; n++) {
    last = step(n);
    assert.equal(live(), baseline, `live bytes after step ${n}`);
    assert.equal(T.memoryStats().liveTensors, tensorsBaseline, `live tensors after step ${n}`);
  }
  assert.ok(last < first, `loss should fall: ${first} -> ${last}`);
  for (const t of [...list, ...state.flatMap((s) => [s.m, s.v]), ids, labels, positions, invFreq, mask]) t.dispose();
});
