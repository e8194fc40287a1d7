// The CUDA backend at model level: the tiny llama trains 20 steps on cuda and on cpu from the
// same weights with the same losses (f32, to 1e-4), and greedy generation with the KV cache in
// device memory picks the same tokens. Skipped where temper was built without CUDA or no GPU
// is present; the device-movement API is checked on any machine. `npm run test:devices` runs
// the whole suite with TEMPER_CUDA_EMULATE=1 (CPU kernels behind a "cuda:0", the default
// device), which checks the device plumbing (every tensor on the model's device, no stray host
// tensors) without a GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import { AdamW } from '../src/train/index.js';

const tiny = fileURLToPath(new URL('../../assets/builtin/tiny', import.meta.url));
const device = (process.env.TEMPER_TEST_CUDA_DEVICE ?? 'cuda:0') as T.Device;
const skip = T.cudaDeviceCount() === 0 ? 'temper built without CUDA, or no GPU' : false;

const rowsOf = (n: number, len: number, vocab: number, seed: number) => {
  let s = seed;
  return Array.from({ length: n }, () => Array.from({ length: len }, () => 3 + ((s = (s * 1103515245 + 12345) >>> 0) % (vocab - 3))));
};

/** Losses of `steps` full steps (forward, mean cross-entropy, backward, clip 1.0, AdamW). */
function trainLosses(model: T.CausalLM, rows: number[][], steps: number): number[] {
  const params = model.namedParameters();
  using opt = new AdamW(params, { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const batch = rows.slice((step * 4) % rows.length, ((step * 4) % rows.length) + 4);
    T.scope(() => {
      const ids = T.fromArray(Int32Array.from(batch.flat()), [batch.length, batch[0]!.length], { device: model.device });
      const { logits } = model.forward({ inputIds: ids });
      const loss = T.crossEntropy(logits, T.shiftLabels(ids));
      losses.push(loss.item());
      loss.backward();
    });
    T.clipGradNorm(params.map(([, p]) => p.grad!), 1.0);
    opt.update(3e-3);
    model.zeroGrad();
  }
  return losses;
}

test('tensors and modules move between devices; a missing device is a clear error', () => {
  const x = T.tensor([[1, 2], [3, 4]]);
  const y = x.to('cpu');
  assert.notEqual(y.storage, x.storage, '.to(device) always copies');
  assert.deepEqual(y.toNested(), [[1, 2], [3, 4]]);
  if (T.cudaDeviceCount() === 0) assert.throws(() => x.to('cuda'), /built without CUDA|0 CUDA device/);
  assert.throws(() => x.to('tpu' as T.Device), /unknown device "tpu"/);
  x.dispose();
  y.dispose();
  const model = T.loadModelFromDir(tiny) as T.CausalLM;
  assert.equal(model.to('cpu').device, 'cpu');
  model.dispose();
});

test('tiny llama: 20 training steps on cuda match cpu (f32, losses within 1e-4)', { skip }, () => {
  const rows = rowsOf(16, 64, 512, 7);
  const cpu = T.loadModelFromDir(tiny) as T.CausalLM;
  const gpu = (T.loadModelFromDir(tiny) as T.CausalLM).to(device);
  assert.equal(gpu.device, T.normalizeDevice(device));
  const a = trainLosses(cpu, rows, 20);
  const b = trainLosses(gpu, rows, 20);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-4 * Math.max(1, Math.abs(a[i]!)), `step ${i + 1}: cpu loss ${a[i]} vs ${device} ${b[i]}`);
  assert.ok(b[19]! < b[0]!, `loss did not fall on ${device}: ${b[0]} -> ${b[19]}`);
  const pc = new Map(cpu.namedParameters());
  for (const [n, p] of gpu.namedParameters()) {
    const x = p.toArray(), y = pc.get(n)!.toArray();
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
    assert.ok(m < 1e-4, `${n}: weights differ by ${m} after 20 steps`);
  }
  cpu.dispose();
  gpu.dispose();
});

test('greedy batched generation on cuda (KV cache in device memory) matches cpu', { skip }, () => {
  const cpu = T.loadModelFromDir(tiny) as T.CausalLM;
  const gpu = (T.loadModelFromDir(tiny) as T.CausalLM).to(device);
  const prompts = [[5, 9, 13], [7], [3, 4, 5, 6, 7, 8, 9], [11, 12]];
  const a = T.generate(cpu, prompts, { maxNewTokens: 24, temperature: 0 });
  const b = T.generate(gpu, prompts, { maxNewTokens: 24, temperature: 0 });
  for (let i = 0; i < prompts.length; i++) {
    assert.deepEqual(b[i]!.tokens, a[i]!.tokens, `prompt ${i}: tokens differ`);
    for (let j = 0; j < a[i]!.logprobs.length; j++) assert.ok(Math.abs(a[i]!.logprobs[j]! - b[i]!.logprobs[j]!) < 1e-4);
  }
  cpu.dispose();
  gpu.dispose();
});
