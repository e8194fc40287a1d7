// Activation recomputation: recompute(fn, inputs) gives the gradients of running fn directly
// (inputs and parameters captured by fn, dropout included), the models' gradient
// checkpointing gives the same loss and gradients with a lower peak memory, nothing leaks,
// and an SFT run with gradient_checkpointing logs the same losses.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { SFT_SCHEMA } from '../src/algorithms/sft_config.js';
import { runSft } from '../src/algorithms/sft.js';
import { hostRandom } from './helpers.js';

const tiny = fileURLToPath(new URL('../../assets/builtin/tiny', import.meta.url));
const gpt2 = fileURLToPath(new URL('../../test/fixtures/models/gpt2', import.meta.url));
const live = () => T.memoryStats().liveBytes;

/** Host copies of the gradients of `ts` (null where none), then frees them. */
function takeGrads(ts: Tensor[]): (Float32Array | null)[] {
  return ts.map((t) => {
    const g = t.grad ? (t.grad.toArray() as Float32Array) : null;
    t.zeroGrad();
    return g;
  });
}

function assertSameGrads(a: (Float32Array | null)[], b: (Float32Array | null)[], tol: number, names: string[]): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.equal(a[i] === null, b[i] === null, `${names[i]}: gradient present in only one run`);
    if (!a[i]) continue;
    let m = 0;
    for (let j = 0; j < a[i]!.length; j++) m = Math.max(m, Math.abs(a[i]![j]! - b[i]![j]!));
    assert.ok(m <= tol, `${names[i]}: gradients differ by ${m}`);
  }
}

test('recompute of several ops with a captured parameter: same output and gradients', () => {
  const before = live();
  const W = T.fromArray(hostRandom(6 * 5, 1), [6, 5], { requiresGrad: true });
  const bias = T.fromArray(hostRandom(5, 2), [5], { requiresGrad: true });
  const x0 = T.fromArray(hostRandom(4 * 6, 3), [4, 6], { requiresGrad: true });
  const mask = T.scope(() => T.gt(T.fromArray(hostRandom(4 * 5, 4), [4, 5]), 0));
  const g = T.fromArray(hostRandom(4 * 5, 5), [4, 5]);
  // x (with history), a mask input that takes no gradient, W and bias by closure.
  const f = (x: Tensor, m: Tensor) =>
    T.scope(() => {
      const h = T.tanh(T.add(T.matmul(x, W), bias));
      const s = T.softmax(T.mul(h, T.sum(T.square(x))), -1);
      return T.where(m, T.mul(s, h), T.silu(h));
    });
  const run = (ckpt: boolean) =>
    T.scope(() => {
      const x = T.mul(x0, 1.5);
      const y = ckpt ? T.recompute(f, [x, mask]) : f(x, mask);
      if (ckpt) assert.equal(y.gradFn?.prim, 'recompute');
      const out = y.toArray();
      T.sum(T.mul(y, g)).backward();
      return out;
    });
  const yPlain = run(false);
  const gPlain = takeGrads([x0, W, bias]);
  const yCkpt = run(true);
  const gCkpt = takeGrads([x0, W, bias]);
  assert.deepEqual(yCkpt, yPlain);
  assertSameGrads(gCkpt, gPlain, 0, ['x', 'W', 'bias']);

  // Only the captured parameters require grad (a frozen embedding under LoRA): the node is
  // still recorded and the parameters still get their gradients.
  const xFrozen = T.fromArray(hostRandom(4 * 6, 6), [4, 6]);
  const once = (ckpt: boolean) =>
    T.scope(() => {
      const y = ckpt ? T.recompute(f, [xFrozen, mask]) : f(xFrozen, mask);
      assert.ok(y.requiresGrad);
      T.sum(T.mul(y, g)).backward();
    });
  once(false);
  const fPlain = takeGrads([W, bias]);
  once(true);
  assertSameGrads(takeGrads([W, bias]), fPlain, 0, ['W', 'bias']);

  // Under noGrad recompute just runs fn; with nothing requiring grad it records nothing.
  T.scope(() => {
    const y = T.noGrad(() => T.recompute(f, [x0, mask]));
    assert.equal(y.gradFn, null);
    const z = T.recompute((a: Tensor) => T.exp(a), [xFrozen]);
    assert.equal(z.requiresGrad, false);
  });
  for (const t of [W, bias, x0, mask, g, xFrozen]) t.dispose();
  assert.equal(live(), before);
});

test('recompute replays dropout draws (default and own generators) and leaves them where the forward did', () => {
  const before = live();
  const W = T.fromArray(hostRandom(8 * 8, 11), [8, 8], { requiresGrad: true });
  const x0 = T.fromArray(hostRandom(16 * 8, 12), [16, 8], { requiresGrad: true });
  const gen = new T.Generator(99);
  const f = (x: Tensor) =>
    T.scope(() => {
      const h = T.dropout(T.matmul(x, W), 0.5);
      return T.dropout(T.gelu(h), 0.3, { generator: gen });
    });
  const run = (ckpt: boolean) => {
    T.manualSeed(7);
    gen.manualSeed(99);
    const out = T.scope(() => {
      const y = ckpt ? T.recompute(f, [x0]) : f(x0);
      assert.ok(y.toArray().some((v) => v === 0), 'dropout zeroed some outputs');
      const loss = T.sum(T.square(y));
      const value = loss.item();
      // Draws between forward and backward must not change the recomputed masks.
      T.rand([32]);
      T.rand([32], { generator: gen });
      loss.backward();
      return value;
    });
    return { out, state: [T.defaultGenerator.getState(), gen.getState()] };
  };
  const a = run(false);
  const ga = takeGrads([x0, W]);
  const b = run(true);
  const gb = takeGrads([x0, W]);
  assert.equal(b.out, a.out);
  assert.deepEqual(b.state, a.state, 'generators end where the plain run left them');
  assertSameGrads(gb, ga, 0, ['x', 'W']);
  for (const t of [W, x0]) t.dispose();
  assert.equal(live(), before);
});

test('recompute: backward twice with retainGraph accumulates twice; nested recomputes match', () => {
  const before = live();
  const W = T.fromArray(hostRandom(4 * 3, 31), [4, 3], { requiresGrad: true });
  const x = T.fromArray(hostRandom(2 * 4, 32), [2, 4], { requiresGrad: true });
  const f = (a: Tensor) => T.scope(() => T.tanh(T.matmul(a, W)));
  T.scope(() => T.sum(f(x)).backward());
  const plain = takeGrads([x, W]);
  T.scope(() => {
    const l = T.sum(T.recompute(f, [x]));
    l.backward(undefined, { retainGraph: true });
    assertSameGrads([x, W].map((t) => t.grad!.toArray() as Float32Array), plain, 0, ['x', 'W']);
    l.backward();
    assertSameGrads(takeGrads([x, W]), plain.map((g) => g!.map((v) => 2 * v)), 0, ['x (twice)', 'W (twice)']);
  });
  T.scope(() => T.sum(T.recompute((a: Tensor) => T.recompute(f, [T.mul(a, 1)]), [x])).backward());
  assertSameGrads(takeGrads([x, W]), plain, 0, ['x (nested)', 'W (nested)']);
  W.dispose();
  x.dispose();
  assert.equal(live(), before);
});

function llamaStep(model: T.CausalLM, B: number, L: number, seed: number): number {
  return T.scope(() => {
    const ids = T.fromArray(Int32Array.from(hostRandom(B * L, seed, 3, 500), (v) => Math.floor(v)), [B, L]);
    const { loss } = model.forward({ inputIds: ids, labels: ids });
    const v = loss!.item();
    loss!.backward();
    return v;
  });
}

test('tiny llama: gradient checkpointing gives the same loss and gradients, with a lower peak memory', () => {
  const before = live();
  const model = (T.loadModelFromDir(tiny) as T.CausalLM).train();
  const params = model.namedParameters();
  assert.equal(model.isGradientCheckpointing, false);
  const lossPlain = llamaStep(model, 2, 64, 21);
  const gPlain = takeGrads(params.map(([, p]) => p));
  model.gradientCheckpointingEnable();
  assert.equal(model.isGradientCheckpointing, true);
  const lossCkpt = llamaStep(model, 2, 64, 21);
  const gCkpt = takeGrads(params.map(([, p]) => p));
  assert.ok(Math.abs(lossCkpt - lossPlain) <= 1e-6, `loss ${lossPlain} vs ${lossCkpt} with checkpointing`);
  assertSameGrads(gCkpt, gPlain, 1e-6, params.map(([n]) => n));

  // Peak memory of forward + backward at batch 4 x 256.
  const peak = (on: boolean) => {
    if (on) model.gradientCheckpointingEnable();
    else model.gradientCheckpointingDisable();
    model.zeroGrad();
    T.resetPeakMemory();
    llamaStep(model, 4, 256, 22);
    const p = T.memoryStats().peakBytes;
    model.zeroGrad();
    return p;
  };
  const plain = peak(false);
  const ckpt = peak(true);
  console.log(`tiny llama 4x256 forward+backward peak: ${(plain / 2 ** 20).toFixed(1)} MiB without checkpointing, ${(ckpt / 2 ** 20).toFixed(1)} MiB with`);
  assert.ok(ckpt < plain, `peak ${ckpt} with checkpointing is not below ${plain}`);

  // Evaluation and no-grad passes run the layers directly.
  T.scope(() => {
    const { logits } = T.noGrad(() => model.forward({ inputIds: T.tensor([[5, 6, 7]], { dtype: 'i32' }) }));
    assert.equal(logits.gradFn, null);
  });
  model.dispose();
  assert.equal(live(), before, 'no leaks');
});

test('gpt2 with residual and embedding dropout: same loss and gradients with gradient checkpointing', () => {
  const before = live();
  const model = (T.loadModelFromDir(gpt2) as T.CausalLM).train();
  assert.ok(model.training && model.config.dropout.residual > 0);
  const params = model.namedParameters();
  const step = () => {
    T.manualSeed(5);
    return T.scope(() => {
      const ids = T.fromArray(Int32Array.from(hostRandom(2 * 32, 8, 3, 120), (v) => Math.floor(v)), [2, 32]);
      const { loss } = model.forward({ inputIds: ids, labels: ids });
      const v = loss!.item();
      loss!.backward();
      return v;
    });
  };
  const a = step();
  const ga = takeGrads(params.map(([, p]) => p));
  model.gradientCheckpointingEnable();
  const b = step();
  const gb = takeGrads(params.map(([, p]) => p));
  assert.equal(b, a);
  assertSameGrads(gb, ga, 1e-6, params.map(([n]) => n));
  model.dispose();
  assert.equal(live(), before, 'no leaks');
});

test('SFT with gradient_checkpointing logs the same losses (full and LoRA)', async () => {
  const losses = async (extra: Record<string, unknown>) => {
    const cfg = SFT_SCHEMA.parse({
      model: 'builtin:tiny', dataset: 'builtin:arith-chat', quiet: true, per_device_train_batch_size: 4, max_length: 64,
      max_steps: 3, logging_steps: 1, learning_rate: 1e-3, save_strategy: 'no', output_dir: mkdtempSync(join(tmpdir(), 'temper-ckpt-')), ...extra,
    });
    const r = await runSft(cfg);
    return r.logHistory.filter((e) => 'loss' in e).map((e) => e.loss!);
  };
  for (const extra of [{}, { use_peft: true, lora_target_modules: 'all-linear' }]) {
    const a = await losses(extra);
    const b = await losses({ ...extra, gradient_checkpointing: true });
    assert.equal(a.length, 3);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-6, `${JSON.stringify(extra)} step ${i + 1}: ${a[i]} vs ${b[i]}`);
  }
});
