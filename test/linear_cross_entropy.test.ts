// The LM head fused with cross-entropy over row chunks: equal to crossEntropy(linear(h, w))
// in loss and gradients for every option and chunking, finite differences, token log-probs,
// a peak memory far below the unfused one, no leaks, and the fused model and SFT paths
// giving the same losses and gradients as the plain ones.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { assertClose, gradcheck, hostRandom } from './helpers.js';

const live = () => T.memoryStats().liveBytes;
const TOL = 1e-5;

/** Labels in [0, V) with every `ignoreEvery`-th row (from 1) set to ignoreIndex. */
function makeLabels(N: number, V: number, seed: number, ignoreEvery = 0, ignoreIndex = -100): Int32Array {
  const r = hostRandom(N, seed, 0, V);
  return Int32Array.from(r, (x, i) => (ignoreEvery && i % ignoreEvery === 1 ? ignoreIndex : Math.min(V - 1, Math.floor(x))));
}

interface Run {
  loss: Float32Array;
  dh: Float32Array;
  dw: Float32Array;
}

/** Loss and gradients of hidden and weight through `f` (an upstream gradient for a non-scalar loss). */
function run(f: (h: Tensor, w: Tensor, y: Tensor) => Tensor, N: number, V: number, C: number, labels: Int32Array, seed = 1): Run {
  return T.scope(() => {
    const h = T.fromArray(hostRandom(N * C, seed, -1, 1), [N, C], { requiresGrad: true });
    const w = T.fromArray(hostRandom(V * C, seed + 1, -1, 1), [V, C], { requiresGrad: true });
    const y = T.fromArray(labels, [N]);
    const loss = f(h, w, y);
    const g = loss.numel === 1 ? undefined : T.fromArray(hostRandom(loss.numel, seed + 2, -1, 1), loss.shape);
    loss.backward(g);
    return { loss: loss.toArray() as Float32Array, dh: h.grad!.toArray() as Float32Array, dw: w.grad!.toArray() as Float32Array };
  });
}

function assertSame(a: Run, b: Run, what: string): void {
  assertClose(a.loss, b.loss, TOL, `${what} loss`);
  assertClose(a.dh, b.dh, TOL, `${what} d(hidden)`);
  assertClose(a.dw, b.dw, TOL, `${what} d(weight)`);
}

test('equals crossEntropy(linear(h, w)) in loss and gradients: reductions, ignore_index, smoothing, chunk sizes', () => {
  const before = live();
  const N = 37, V = 53, C = 16;
  for (const reduction of ['mean', 'sum', 'none'] as const)
    for (const labelSmoothing of [0, 0.1])
      for (const ignoreEvery of [0, 3]) {
        const labels = makeLabels(N, V, 7 + ignoreEvery, ignoreEvery);
        const opts = { reduction, labelSmoothing };
        const want = run((h, w, y) => T.crossEntropy(T.linear(h, w), y, opts), N, V, C, labels);
        // 37 rows: chunks of 1, 8 and 10 (not dividing), 37 (one chunk), 100 (N < chunk), default.
        for (const chunkRows of [1, 8, 10, 37, 100, undefined]) {
          const got = run((h, w, y) => T.linearCrossEntropy(h, w, y, { ...opts, chunkRows }), N, V, C, labels);
          assertSame(got, want, `${reduction} eps=${labelSmoothing} ignore=${ignoreEvery} chunk=${chunkRows}`);
        }
      }
  assert.equal(live(), before, 'no leaks');
});

test('custom ignoreIndex, leading dims, and all rows ignored', () => {
  const before = live();
  const N = 12, V = 9, C = 5;
  // ignoreIndex 0 is also a vocabulary id: rows labelled 0 drop out.
  const labels = makeLabels(N, V, 3, 4, 0);
  const opts = { ignoreIndex: 0, chunkRows: 5 };
  assertSame(
    run((h, w, y) => T.linearCrossEntropy(h, w, y, opts), N, V, C, labels),
    run((h, w, y) => T.crossEntropy(T.linear(h, w), y, opts), N, V, C, labels),
    'ignoreIndex 0',
  );
  // (B, T, C) hidden with (B, T) labels, reduction none keeps (B, T).
  T.scope(() => {
    const h = T.fromArray(hostRandom(2 * 6 * C, 5), [2, 6, C]);
    const w = T.fromArray(hostRandom(V * C, 6), [V, C]);
    const y = T.fromArray(makeLabels(12, V, 8, 5), [2, 6]);
    const got = T.linearCrossEntropy(h, w, y, { reduction: 'none', chunkRows: 4 });
    assert.deepEqual(got.shape, [2, 6]);
    assertClose(got, T.crossEntropy(T.linear(h, w), y, { reduction: 'none' }).toArray(), TOL, '(B, T) rows');
  });
  // Every row ignored: sum is 0 with zero gradients; mean is NaN (0 / 0) as in crossEntropy.
  const none = new Int32Array(N).fill(-100);
  const s = run((h, w, y) => T.linearCrossEntropy(h, w, y, { reduction: 'sum' }), N, V, C, none);
  assert.equal(s.loss[0], 0);
  assert.ok(s.dh.every((v) => v === 0) && s.dw.every((v) => v === 0));
  const m = T.scope(() => T.linearCrossEntropy(T.ones([N, C]), T.ones([V, C]), T.fromArray(none)).item());
  const ref = T.scope(() => T.crossEntropy(T.ones([N, V]), T.fromArray(none)).item());
  assert.ok(Number.isNaN(m) && Number.isNaN(ref));
  assert.equal(live(), before, 'no leaks');
});

test('bad labels and shapes are errors naming the row', () => {
  T.scope(() => {
    const h = T.ones([4, 3]), w = T.ones([6, 3]);
    assert.throws(() => T.linearCrossEntropy(h, w, T.tensor([1, 2, -100, 6], { dtype: 'i32' })), /label 6 at row 3 is outside the vocabulary \[0, 6\)/);
    assert.throws(() => T.linearCrossEntropy(h, w, T.tensor([1, -5, 0, 0], { dtype: 'i32' })), /label -5 at row 1/);
    assert.throws(() => T.linearCrossEntropy(h, T.ones([6, 4]), T.tensor([1, 2, 3, 4], { dtype: 'i32' })), /must end in C = 4/);
    assert.throws(() => T.linearCrossEntropy(h, w, T.tensor([1, 2, 3], { dtype: 'i32' })), /labels \[3\] must match hidden/);
    assert.throws(() => T.linearCrossEntropy(h, w, T.tensor([1, 2, 3, 4], { dtype: 'i32' }), { chunkRows: 0 }), /chunkRows/);
  });
});

test('finite differences agree with the backward (tiny case, two chunks, smoothing, an ignored row)', () => {
  const y = T.tensor([2, -100, 0, 5, 1], { dtype: 'i32' });
  gradcheck('linearCrossEntropy', ([h, w]) => T.scope(() => T.linearCrossEntropy(h!, w!, y, { labelSmoothing: 0.2, chunkRows: 3 })),
    [{ shape: [5, 3], lo: -2, hi: 2 }, { shape: [6, 3], lo: -2, hi: 2 }]);
  gradcheck('tokenLogprobs', ([h, w]) => T.scope(() => T.tokenLogprobs(h!, w!, y, { chunkRows: 2 })),
    [{ shape: [5, 3], lo: -2, hi: 2 }, { shape: [6, 3], lo: -2, hi: 2 }], { seed: 2 });
  y.dispose();
});

test('tokenLogprobs is -crossEntropy per row (0 on ignored rows), gradients included', () => {
  const before = live();
  const N = 29, V = 41, C = 8;
  const labels = makeLabels(N, V, 11, 4);
  for (const chunkRows of [7, undefined]) {
    const got = run((h, w, y) => T.tokenLogprobs(h, w, y, { chunkRows }), N, V, C, labels);
    const want = run((h, w, y) => T.neg(T.crossEntropy(T.linear(h, w), y, { reduction: 'none' })), N, V, C, labels);
    assertSame(got, want, `tokenLogprobs chunk=${chunkRows}`);
    labels.forEach((l, i) => l === -100 && assert.ok(Object.is(got.loss[i], 0), `row ${i} is +0`));
    assert.ok(got.loss.every((v) => v <= 0));
  }
  // Summed log-probs of a sequence, as DPO uses them: equal to -sum CE.
  T.scope(() => {
    const h = T.fromArray(hostRandom(N * C, 3), [N, C]), w = T.fromArray(hostRandom(V * C, 4), [V, C]), y = T.fromArray(labels);
    assertClose(T.sum(T.tokenLogprobs(h, w, y)), [-T.crossEntropy(T.linear(h, w), y, { reduction: 'sum' }).item()], TOL, 'sequence log-prob');
  });
  assert.equal(live(), before, 'no leaks');
});

test('returnArgmax gives the argmax of the logits on kept rows, -1 on ignored rows', () => {
  T.scope(() => {
    const N = 23, V = 31, C = 6;
    const labels = makeLabels(N, V, 5, 3);
    const h = T.fromArray(hostRandom(N * C, 8), [N, C]), w = T.fromArray(hostRandom(V * C, 9), [V, C]), y = T.fromArray(labels);
    const { loss, argmax } = T.linearCrossEntropy(h, w, y, { reduction: 'sum', returnArgmax: true, chunkRows: 5 });
    assert.equal(argmax.dtype, 'i32');
    assertClose(loss, T.crossEntropy(T.linear(h, w), y, { reduction: 'sum' }).toArray(), TOL, 'loss beside argmax');
    const want = T.argmax(T.linear(h, w), -1).toArray();
    const got = argmax.toArray();
    labels.forEach((l, i) => assert.equal(got[i], l === -100 ? -1 : want[i], `row ${i}`));
  });
});

// A mean or sum loss gets its gradients in the forward for an upstream gradient of 1 and scales
// them in backward; under autocast the unscaled dlogits round to bf16 (Liger does the same), where
// the unfused head rounds the scaled ones: the gradients then agree to bf16 rounding, not 1e-5.
test('under autocast(bf16) the fused head matches the mixed-precision unfused head (loss and gradients)', () => {
  const before = live();
  const N = 45, V = 67, C = 24;
  const labels = makeLabels(N, V, 31, 4);
  for (const reduction of ['mean', 'none'] as const) {
    const want = T.autocast('bf16', () => run((h, w, y) => T.crossEntropy(T.linear(h, w), y, { reduction, labelSmoothing: 0.05 }), N, V, C, labels));
    const got = T.autocast('bf16', () => run((h, w, y) => T.linearCrossEntropy(h, w, y, { reduction, labelSmoothing: 0.05, chunkRows: 16 }), N, V, C, labels));
    if (reduction === 'none') assertSame(got, want, `autocast ${reduction}`);
    else {
      assertClose(got.loss, want.loss, TOL, `autocast ${reduction} loss`);
      assertClose(got.dh, want.dh, 1e-2, `autocast ${reduction} d(hidden)`);
      assertClose(got.dw, want.dw, 1e-2, `autocast ${reduction} d(weight)`);
    }
    // and it is not the f32 result: the rounding shows
    const f32 = run((h, w, y) => T.linearCrossEntropy(h, w, y, { reduction, labelSmoothing: 0.05 }), N, V, C, labels);
    assert.ok(Math.abs(f32.loss[0]! - got.loss[0]!) > 1e-6, 'autocast rounds the operands');
  }
  assert.equal(live(), before, 'no leaks');
});

test('bf16 hidden and weight (inference) match the unfused bf16 head', () => {
  T.noGrad(() =>
    T.scope(() => {
      const N = 40, V = 70, C = 24;
      const h = T.fromArray(hostRandom(N * C, 21), [N, C]).to('bf16'), w = T.fromArray(hostRandom(V * C, 22), [V, C]).to('bf16');
      const y = T.fromArray(makeLabels(N, V, 23, 6));
      const got = T.linearCrossEntropy(h, w, y, { reduction: 'none', chunkRows: 16 });
      assertClose(got, T.crossEntropy(T.linear(h, w), y, { reduction: 'none' }).toArray(), 1e-4, 'bf16 rows');
    }),
  );
});

test('peak memory of forward + backward at N=2048, V=32000, C=64 is far below the unfused head, and nothing leaks', () => {
  const N = 2048, V = 32000, C = 64;
  const labels = makeLabels(N, V, 17, 10);
  const h = T.fromArray(hostRandom(N * C, 1, -0.5, 0.5), [N, C], { requiresGrad: true });
  const w = T.fromArray(hostRandom(V * C, 2, -0.5, 0.5), [V, C], { requiresGrad: true });
  const y = T.fromArray(labels);
  const measure = (f: () => Tensor): { peak: number; loss: number; dh: Float32Array; dw: Float32Array } => {
    const start = live();
    T.resetPeakMemory();
    const loss = T.scope(() => {
      const l = f();
      l.backward();
      return l.item();
    });
    const peak = T.memoryStats().peakBytes - start;
    const out = { peak, loss, dh: h.grad!.toArray() as Float32Array, dw: w.grad!.toArray() as Float32Array };
    h.zeroGrad();
    w.zeroGrad();
    assert.equal(live(), start, 'live bytes back to the start');
    return out;
  };
  const unfused = measure(() => T.crossEntropy(T.linear(h, w), y));
  // CPU-sized chunks on any device (a GPU's default chunk would hold all 2048 rows at once).
  const fused = measure(() => T.linearCrossEntropy(h, w, y, { chunkRows: 256 }));
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  console.log(`linearCrossEntropy N=${N} V=${V} C=${C}: peak fused ${mb(fused.peak)} vs unfused ${mb(unfused.peak)} (ratio ${(fused.peak / unfused.peak).toFixed(3)})`);
  assert.ok(fused.peak < unfused.peak / 4, `fused peak ${mb(fused.peak)} not below 1/4 of unfused ${mb(unfused.peak)}`);
  assertClose([fused.loss], [unfused.loss], TOL, 'big loss');
  assertClose(fused.dh, unfused.dh, TOL, 'big d(hidden)');
  assertClose(fused.dw, unfused.dw, TOL, 'big d(weight)');
  for (const t of [h, w, y]) t.dispose();
});

/** Loss and every parameter gradient of one forward/backward. */
function modelRun(model: T.CausalLM, fused: boolean, ids: Tensor, labels: Tensor, mask: Tensor | null): { loss: number; grads: Map<string, Float32Array> } {
  model.zeroGrad();
  const loss = T.scope(() => {
    const input = { inputIds: ids, labels, attentionMask: mask };
    const out = fused ? model.forward({ ...input, returnLogits: false }) : model.forward(input);
    assert.equal(out.logits === undefined, fused);
    out.loss!.backward();
    return out.loss!.item();
  });
  const grads = new Map(model.namedParameters().filter(([, p]) => p.grad).map(([n, p]) => [n, p.grad!.toArray() as Float32Array]));
  model.zeroGrad();
  return { loss, grads };
}

function assertModelPathsAgree(model: T.CausalLM, what: string): void {
  const V = model.config.vocabSize;
  const B = 2, Tn = 9;
  const ids = T.fromArray(Int32Array.from(hostRandom(B * Tn, 3, 0, V), Math.floor), [B, Tn]);
  const lab = Int32Array.from(ids.toArray());
  lab[0] = lab[1] = lab[2] = -100; // a prompt
  lab[Tn + 7] = lab[Tn + 8] = -100; // padding at the end of row 2
  const labels = T.fromArray(lab, [B, Tn]);
  const mask = T.fromArray(Int32Array.from(lab, (_, i) => (i >= Tn + 7 ? 0 : 1)), [B, Tn]);
  const before = live();
  const a = modelRun(model, false, ids, labels, mask);
  const b = modelRun(model, true, ids, labels, mask);
  assert.equal(live(), before, `${what}: no leaks`);
  assertClose([b.loss], [a.loss], TOL, `${what} loss`);
  assert.deepEqual([...b.grads.keys()].sort(), [...a.grads.keys()].sort());
  assert.ok(a.grads.size > 0);
  // The fused head scales its precomputed gradients after the GEMMs, the unfused before: f32
  // rounding apart, a little more than TOL once it has gone back through the layers.
  for (const [n, g] of a.grads) assertClose(b.grads.get(n)!, g, 5 * TOL, `${what} d(${n})`);
  for (const t of [ids, labels, mask]) t.dispose();
}

test('tiny llama (tied head): fused and unfused model paths give the same loss and gradients', () => {
  const model = T.loadModelFromDir(fileURLToPath(new URL('../../assets/builtin/tiny', import.meta.url)));
  assert.ok(model instanceof T.CausalLM && model.lm_head === null);
  assertModelPathsAgree(model, 'tiny llama');
  assert.throws(() => model.forward({ inputIds: T.tensor([[1, 2]], { dtype: 'i32' }), returnLogits: false }), /returnLogits: false needs labels/);
  model.dispose();
});

test('untied lm_head: fused path equal, and a LoRA adapter on lm_head falls back to the plain head', () => {
  const config = T.parseConfig({
    model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, vocab_size: 97, tie_word_embeddings: false,
  });
  const model = T.createModel(config, T.randomInit(0.2, 5)) as T.CausalLM;
  assert.ok(model.lm_head);
  assertModelPathsAgree(model, 'untied llama');
  const lora = T.applyLora(model, { r: 4, lora_alpha: 8, target_modules: ['lm_head', 'q_proj'] }, { seed: 1 });
  // Give the adapter an effect (B starts at zero), so that ignoring it would show.
  T.noGrad(() => {
    for (const [n, p] of model.namedParameters()) if (n.includes('lora_B')) T.assign(p, T.full(p.shape, 0.05));
  });
  assert.ok(model.lm_head!.adapter);
  assertModelPathsAgree(model, 'LoRA on lm_head');
  lora.model.dispose();
});

test('SFT logs the same losses and token accuracy with the fused head as with the logits', () => {
  const bin = fileURLToPath(new URL('../../bin/temper.js', import.meta.url));
  const args = ['sft', '--model', 'builtin:tiny', '--dataset', 'builtin:arith-chat', '--quiet', 'true', '--per_device_train_batch_size', '4',
    '--max_length', '64', '--max_steps', '4', '--logging_steps', '1', '--learning_rate', '1e-3'];
  const logs = (env: Record<string, string>, extra: string[]): Record<string, number>[] => {
    const out = mkdtempSync(join(tmpdir(), 'temper-lce-'));
    const r = spawnSync(process.execPath, [bin, ...args, ...extra, '--output_dir', out], { encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => 'loss' in e);
  };
  // f32, and mixed precision (the fused head under autocast).
  for (const extra of [[], ['--bf16', 'true']]) {
    const fused = logs({ TEMPER_UNFUSED_LM_LOSS: '0' }, extra);
    const plain = logs({ TEMPER_UNFUSED_LM_LOSS: '1' }, extra);
    assert.equal(fused.length, 4);
    assert.equal(plain.length, 4);
    fused.forEach((e, i) => {
      const p = plain[i]!;
      const what = `${extra.join(' ') || 'f32'} step ${e.step}`;
      assert.equal(e.step, p.step);
      // Under autocast the gradients agree to bf16 rounding (see above), so later steps drift a little.
      const bf16 = extra.length > 0;
      assert.ok(Math.abs(e.loss! - p.loss!) <= (bf16 ? 2e-3 : 1e-5) * Math.abs(p.loss!), `${what}: loss ${e.loss} vs ${p.loss}`);
      assert.ok('mean_token_accuracy' in e, JSON.stringify(e));
      assert.ok(Math.abs(e.mean_token_accuracy! - p.mean_token_accuracy!) <= (bf16 ? 0.02 : 1e-9), `${what}: accuracy ${e.mean_token_accuracy} vs ${p.mean_token_accuracy}`);
    });
  }
});
