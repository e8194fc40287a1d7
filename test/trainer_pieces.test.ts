// The pieces every trainer is built from: one reading of model references (an adapter folder
// that also holds a config.json means the adapter, for sft and merge alike), the policy's
// reference model (LoRA: the base with adapters off and no weights copied; full: a frozen copy of
// the start), parameter groups with their own learning rate, a batch source that produces its
// batches as it goes and resumes exactly with a pending batch, a normalizer that is not a token
// count, per-step metrics, config pieces, and deep imports of the tensor layer.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import { loadWeightsInto } from './helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(root, 'test/fixtures');
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-pieces-'));
const llama = join(fixtures, 'models', 'llama');
const adapter = join(fixtures, 'peft', 'llama_lora');

/** Policy args from the SFT schema (the shared pieces' defaults), for a model reference. */
const policyArgs = (model: string, over: Record<string, unknown> = {}) => T.SFT_SCHEMA.parse({ model, dataset: 'unused', ...over });

function logitsOf(model: T.CausalLM, ids: number[]): Float32Array {
  return T.noGrad(() => T.scope(() => model.forward({ inputIds: T.fromArray(Int32Array.from(ids), [1, ids.length], { device: model.device }) }).logits.toArray() as Float32Array));
}

test('resolveAdapterRef: a folder with adapter_config.json means the adapter, even beside a config.json; BASE+ADAPTER; --adapter', () => {
  // Run from the repository root: the fixture adapter names its base by a relative path.
  const cwd = process.cwd();
  process.chdir(root);
  try {
    assert.deepEqual(T.resolveAdapterRef(llama), { base: llama, adapter: null });
    assert.deepEqual(T.resolveAdapterRef(adapter), { base: 'test/fixtures/models/llama', adapter });
    assert.deepEqual(T.resolveAdapterRef(`builtin:tiny+${adapter}`), { base: 'builtin:tiny', adapter });
    assert.deepEqual(T.resolveAdapterRef(null, { adapter }), { base: 'test/fixtures/models/llama', adapter });
    assert.deepEqual(T.resolveAdapterRef('other-base', { adapter }), { base: 'other-base', adapter });
    const both = tmp();
    cpSync(adapter, both, { recursive: true });
    cpSync(join(llama, 'config.json'), join(both, 'config.json'));
    assert.deepEqual(T.resolveAdapterRef(both), { base: 'test/fixtures/models/llama', adapter: both });
    assert.throws(() => T.resolveAdapterRef(null, { adapter: join(both, 'nope') }), /adapter .*nope: no such folder/);
  } finally {
    process.chdir(cwd);
  }
});

test('sft and merge read a folder holding both adapter_config.json and config.json the same way', async () => {
  // An adapter on builtin:tiny (with its tokenizer files), and beside it another model's config.json and weights.
  const both = tmp();
  {
    using p = await T.Policy.load(policyArgs('builtin:tiny', { use_peft: true, lora_dropout: 0 }), { trainer: 'test' });
    T.noGrad(() => {
      for (const [n, t] of p.trainableParameters()) if (n.includes('lora_B')) T.assign(t, T.fullLike(t, 0.02));
    });
    p.saveWeights(both);
  }
  cpSync(llama, both, { recursive: true, filter: (f) => !f.endsWith('generation_config.json') });
  using policy = await T.Policy.load(policyArgs(both), { trainer: 'test' });
  assert.ok(policy.lora, 'sft continues the adapter');
  assert.equal(policy.ref.base, 'builtin:tiny');
  // merge: the folder as a single linear input equals base+adapter merged, not the model beside it.
  const viaFolder = tmp(), viaPlus = tmp();
  const cfg = (m: string) => T.parseMergeConfig({ merge_method: 'linear', models: [{ model: m, parameters: { weight: 1 } }] });
  await T.runMerge(cfg(both), viaFolder, { onProgress: () => {} });
  await T.runMerge(cfg(`builtin:tiny+${both}`), viaPlus, { onProgress: () => {} });
  assert.deepEqual(readFileSync(join(viaFolder, 'model.safetensors')), readFileSync(join(viaPlus, 'model.safetensors')));
  assert.equal(JSON.parse(readFileSync(join(viaFolder, 'config.json'), 'utf8')).vocab_size, 512, "builtin:tiny's config, not the fixture's");
});

test('reference(): a new LoRA adapter is the base with adapters off (no weights copied), a continued one its starting weights; full fine-tuning a frozen copy of the start', async () => {
  const ids = [1, 5, 9, 3, 7, 2];
  const base = (await T.loadModel('builtin:tiny')) as T.CausalLM;
  const want = logitsOf(base, ids);
  base.dispose();

  using lora = await T.Policy.load(policyArgs('builtin:tiny', { use_peft: true, lora_target_modules: 'all-linear', lora_dropout: 0 }), { trainer: 'test' });
  // Move the adapters off zero so the policy differs from its base.
  T.noGrad(() => {
    for (const [n, p] of lora.trainableParameters()) if (n.includes('lora_B')) T.assign(p, T.fullLike(p, 0.05));
  });
  assert.notDeepEqual(logitsOf(lora.model, ids), want);
  const before = T.memoryStats('cpu').liveBytes;
  using ref = await lora.reference();
  assert.equal(ref.kind, 'adapters-off');
  assert.equal(T.memoryStats('cpu').liveBytes, before, 'no second copy of the weights');
  lora.model.train();
  assert.deepEqual(ref.run((m) => logitsOf(m, ids)), want);
  assert.ok(lora.model.training, 'train mode restored');
  assert.ok(lora.lora!.enabled, 'adapters switched back on');

  // A continued adapter: the reference is that adapter as loaded (TRL's "ref" copy), not the bare base.
  const saved = tmp();
  lora.saveWeights(saved);
  const wantAdapter = logitsOf(lora.model, ids);
  using again = await T.Policy.load(policyArgs(saved), { trainer: 'test' });
  using start = await again.reference();
  assert.equal(start.kind, 'initial-adapter');
  T.noGrad(() => {
    for (const [n, p] of again.trainableParameters()) if (n.includes('lora_B')) T.assign(p, T.fullLike(p, -0.03));
  });
  const trained = logitsOf(again.model, ids);
  assert.notDeepEqual(trained, wantAdapter);
  assert.deepEqual(start.run((m) => logitsOf(m, ids)), wantAdapter);
  assert.deepEqual(logitsOf(again.model, ids), trained, 'the trained adapter is back after the reference call');

  using full = await T.Policy.load(policyArgs('builtin:tiny'), { trainer: 'test' });
  using frozen = await full.reference();
  assert.equal(frozen.kind, 'frozen-copy');
  T.noGrad(() => {
    for (const [, p] of full.trainableParameters()) T.assign(p, T.mul(p, 1.1));
  });
  assert.notDeepEqual(logitsOf(full.model, ids), want);
  assert.deepEqual(frozen.run((m) => logitsOf(m, ids)), want);
  using other = await full.reference('builtin:tiny');
  assert.equal(other.kind, 'checkpoint');
  assert.deepEqual(other.run((m) => logitsOf(m, ids)), want);
});

test('AdamW parameter groups: a group with its own learning rate updates as a separate optimizer at that rate', () => {
  const make = () => {
    const w = T.keep(T.fromArray(Float32Array.from([1, -2, 3, 0.5]), [2, 2], { requiresGrad: true }));
    w.grad = T.keep(T.fromArray(Float32Array.from([0.1, 0.2, -0.3, 0.4]), [2, 2]));
    return w;
  };
  const a = make(), b = make(), a2 = make(), b2 = make();
  using grouped = new T.AdamW([{ params: [['policy.w', a]] }, { params: [['value_head.w', b]], lr: 1e-2, weightDecay: 0 }], { lr: 1e-3, weightDecay: 0.1 });
  using one = new T.AdamW([['policy.w', a2]], { lr: 1e-3, weightDecay: 0.1 });
  using two = new T.AdamW([['value_head.w', b2]], { lr: 1e-2, weightDecay: 0 });
  // The loop passes the scheduled lr of the base group; other groups scale with it.
  grouped.update(0.5e-3);
  one.update(0.5e-3);
  two.update(0.5e-2);
  assert.deepEqual(a.toArray(), a2.toArray());
  assert.deepEqual(b.toArray(), b2.toArray());
  for (const t of [a, b, a2, b2]) t.dispose();
});

/**
 * A source that produces its batches as it goes, like on-policy RL: each "generation" draws 3
 * micro-batches of random rows from its own generator and they are consumed over 3 steps, so a
 * checkpoint taken mid-generation must hold the pending ones and the generator state.
 */
class GeneratingSource implements T.BatchSource<number[][]> {
  readonly microBatchesPerEpoch = null;
  private gen = new T.Generator(11);
  private pending: number[][][] = [];
  generations = 0;
  epoch = 0;
  epochEnded = false;
  nextStep(count: number): number[][][] {
    if (this.pending.length === 0) {
      this.generations++;
      const ids = T.randint(3, 120, [3, 2, 6], { generator: this.gen });
      const flat = Array.from(ids.toArray());
      ids.dispose();
      this.pending = Array.from({ length: 3 }, (_, k) => Array.from({ length: 2 }, (_, r) => flat.slice(k * 12 + r * 6, k * 12 + r * 6 + 6)));
    }
    return this.pending.splice(0, count);
  }
  state(): T.JsonValue {
    return { rng: this.gen.getState(), pending: this.pending };
  }
  restore(s: T.JsonValue): void {
    const o = s as { rng: { seed: string; offset: string }; pending: number[][][] };
    this.gen.setState(o.rng);
    this.pending = o.pending;
  }
}

function hooks(model: T.CausalLM, source: T.BatchSource<number[][]>, extra: Partial<T.TrainerHooks<number[][]>> = {}): T.TrainerHooks<number[][]> {
  return {
    model,
    paramGroups: [{ params: model.namedParameters() }],
    source,
    settings: { kind: 'generating' },
    normalizer: (b) => b.length * (b[0]!.length - 1),
    lossSum: (b) => {
      const ids = T.fromArray(Int32Array.from(b.flat()), [b.length, b[0]!.length]);
      return { loss: T.crossEntropy(model.forward({ inputIds: ids }).logits, T.shiftLabels(ids), { reduction: 'sum' }) };
    },
    saveWeights: (dir) => T.saveModel(model, dir),
    loadWeights: (dir) => loadWeightsInto(model, dir),
    ...extra,
  };
}

const loopConfig = (outputDir: string, over: Partial<T.TrainingConfig> = {}): T.TrainingConfig => ({
  outputDir, learningRate: 1e-2, lrSchedulerType: 'linear', warmupRatio: 0, warmupSteps: 0, weightDecay: 0, adamBeta1: 0.9, adamBeta2: 0.999,
  adamEpsilon: 1e-8, maxGradNorm: 1, gradientAccumulationSteps: 1, numTrainEpochs: 1, maxSteps: 7, loggingSteps: 1, evalStrategy: 'no', evalSteps: null,
  saveStrategy: 'no', saveSteps: 500, saveTotalLimit: null, seed: 3, skipNonfinite: false, resumeFromCheckpoint: null, ...over,
});

test('a source that generates as it goes resumes exactly, pending batch and generator included; it needs max_steps', async () => {
  const full = T.loadModelFromDir(llama) as T.CausalLM;
  const whole = await T.trainLoop(loopConfig(tmp()), hooks(full, new GeneratingSource()));
  full.dispose();
  // Stop after step 4 (mid-generation: 1 of the second generation's 3 batches used), then resume.
  const out = tmp();
  const first = T.loadModelFromDir(llama) as T.CausalLM;
  await T.trainLoop(loopConfig(out, { maxSteps: 4, saveStrategy: 'steps', saveSteps: 4, lrSchedulerType: 'constant' }), hooks(first, new GeneratingSource()));
  first.dispose();
  const state = JSON.parse(readFileSync(join(out, 'checkpoint-4', 'trainer_state.json'), 'utf8'));
  assert.equal(state.data.pending.length, 2, 'the checkpoint holds the two batches not yet used');
  const wholeConst = T.loadModelFromDir(llama) as T.CausalLM;
  const ref = await T.trainLoop(loopConfig(tmp(), { lrSchedulerType: 'constant' }), hooks(wholeConst, new GeneratingSource()));
  wholeConst.dispose();
  const resumed = T.loadModelFromDir(llama) as T.CausalLM;
  const source = new GeneratingSource();
  const r = await T.trainLoop(loopConfig(out, { lrSchedulerType: 'constant', resumeFromCheckpoint: true }), hooks(resumed, source));
  resumed.dispose();
  assert.equal(source.generations, 1, 'after resuming, only the third generation was drawn');
  assert.deepEqual(r.logHistory.map((e) => e.loss), ref.logHistory.map((e) => e.loss));
  assert.equal(whole.globalStep, 7);
  await assert.rejects(T.trainLoop(loopConfig(tmp(), { maxSteps: -1 }), hooks(T.loadModelFromDir(llama) as T.CausalLM, new GeneratingSource())), /max_steps must be set/);
});

test('a normalizer that counts rows (as DPO counts pairs) and per-step metrics averaged over the logging window', async () => {
  const rows = Array.from({ length: 8 }, (_, i) => Array.from({ length: 6 }, (_, j) => 3 + ((i * 7 + j * 5) % 100)));
  const model = T.loadModelFromDir(llama) as T.CausalLM;
  let steps = 0;
  const sumsSeen: number[] = [];
  const r = await T.trainLoop(
    loopConfig(tmp(), { maxSteps: 4, loggingSteps: 2, gradientAccumulationSteps: 2 }),
    hooks(model, new T.EpochBatches(() => [rows.slice(0, 2), rows.slice(2, 4), rows.slice(4, 6), rows.slice(6, 8)]), {
      normalizer: (b) => b.length,
      lossSum: (b) => {
        const ids = T.fromArray(Int32Array.from(b.flat()), [b.length, 6]);
        const loss = T.crossEntropy(model.forward({ inputIds: ids }).logits, T.shiftLabels(ids), { reduction: 'sum' });
        sumsSeen.push(loss.item());
        return { loss, sums: { 'rewards/margins': 2 * b.length } };
      },
      stepMetrics: () => ({ kl: ++steps }),
    }),
  );
  model.dispose();
  const [first, second] = r.logHistory;
  // Step 1 and 2 of the window: loss = Σ sums / Σ rows (4 micro-batches of 2 rows).
  const want = sumsSeen.slice(0, 4).reduce((a, b) => a + b, 0) / 8;
  assert.ok(Math.abs(first!.loss! - want) < 1e-9, `${first!.loss} vs ${want}`);
  assert.equal(first!['rewards/margins'], 2, 'sums are per-row means');
  assert.equal(first!.kl, 1.5, 'step metrics are means over the window (1, 2)');
  assert.equal(second!.kl, 3.5);
});

test('trainer config pieces: shared keys with TRL defaults, per-trainer defaults, sections in --help', () => {
  const dpoLike = T.trainerArgs('DPO', {}, { defaults: { learning_rate: 1e-6 }, omit: ['packing' as never] });
  const cfg = dpoLike.schema.parse({ model: 'm', dataset: 'd' });
  assert.equal(cfg.learning_rate, 1e-6);
  assert.equal(dpoLike.schema.shape.learning_rate.description, 'peak learning rate (AdamW)');
  assert.equal(cfg.gradient_accumulation_steps, 1);
  assert.equal(cfg.lora_r, 16);
  assert.deepEqual(dpoLike.sections.map(([t]) => t), ['Model', 'Data', 'Training', 'LoRA (PEFT)']);
  assert.equal(T.loopConfig(cfg).evalSteps, cfg.logging_steps);
  const help = spawnSync(process.execPath, [join(root, 'bin/temper.js'), 'sft', '--help'], { encoding: 'utf8' }).stdout;
  for (const section of ['Model:', 'Data:', 'SFT:', 'Training:', 'LoRA (PEFT):']) assert.ok(help.includes(`\n${section}\n`), section);
  // Every key of the schema is listed, with its default.
  for (const key of Object.keys(T.SFT_SCHEMA.shape)) assert.match(help, new RegExp(`--${key} +.*\\((default: .*|required)\\)`), key);
});

test('deep imports of the tensor layer work without the package entry (rules and methods load with the modules)', () => {
  for (const entry of ['tensor/ops/elementwise.js', 'tensor/tensor.js', 'tensor/ops/matmul.js', 'nn/linear.js']) {
    const code = `
      await import('${join(root, 'dist/src', entry)}');
      const C = await import('${join(root, 'dist/src/tensor/ops/creation.js')}');
      const E = await import('${join(root, 'dist/src/tensor/ops/elementwise.js')}');
      const x = C.ones([3], { requiresGrad: true });
      E.mul(x, 3).sum().backward();
      console.log(JSON.stringify(Array.from(x.grad.toArray())));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${entry}: ${r.stderr}`);
    assert.equal(r.stdout.trim(), '[3,3,3]', entry);
  }
});
