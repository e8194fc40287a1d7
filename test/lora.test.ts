// LoRA (nn/lora.ts) and PEFT adapter folders (io/peft.ts): the forward against a hand-written
// formula, gradients by finite differences, PEFT's target matching on real layouts, save/load
// round trips, merging (incl. GPT-2's transposed Conv1D), rsLoRA, errors, and an adapter
// written independently by scripts/make_peft_fixture.py (torch) loaded and checked by logits.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { mergeLoraCommand } from '../src/cli/merge_lora.js';
import { gradcheck, hostRandom } from './helpers.js';

const models = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const peftFixture = fileURLToPath(new URL('../../test/fixtures/peft/llama_lora', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-lora-'));
const load = (name: string) => {
  const m = T.loadModelFromDir(join(models, name), { warn: () => {} });
  assert.ok(m instanceof T.CausalLM);
  return m;
};
const ids = (rows: number[][]) => T.fromArray(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
const INPUT = [[5, 17, 3, 99, 42, 8, 61, 120], [33, 2, 77, 14, 90, 6, 51, 28]];
const logitsOf = (m: T.PretrainedModel) => T.scope(() => (m.forward({ inputIds: ids(INPUT) }).logits as Tensor).toArray() as Float32Array);
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** Fills every lora_B with seeded values so the adapter changes the model. */
function randomizeB(lora: T.LoraModel, seed = 7, std = 0.2): void {
  const g = new T.Generator(seed);
  T.noGrad(() => T.scope(() => { for (const l of lora.layers.values()) T.assign(l.lora_B.weight, T.randn(l.lora_B.weight.shape, { std, generator: g })); }));
}

/** base(x) + s · x A^T B^T by hand. */
function byHand(base: T.Linear | T.Conv1D, l: T.LoraLinear, x: Tensor): Tensor {
  const y = base instanceof T.Linear ? T.linear(x, base.weight, base.bias) : T.add(T.matmul(x, base.weight), base.bias);
  const xa = T.matmul(x, l.lora_A.weight, { transB: true });
  return T.add(y, T.mul(T.matmul(xa, l.lora_B.weight, { transB: true }), l.scale));
}

test('forward: base(x) + (alpha/r) x A^T B^T for Linear and Conv1D; B = 0 leaves the output unchanged', () => T.scope(() => {
  const init = T.randomInit(0.3, 1);
  for (const base of [new T.Linear(6, 5, true, init), new T.Conv1D(6, 5, init)]) {
    const x = T.fromArray(hostRandom(2 * 3 * 6, 3), [2, 3, 6]);
    const plain = T.noGrad(() => base.forward(x)).toArray();
    const l = new T.LoraLinear(base, { r: 3, alpha: 6, generator: new T.Generator(1) });
    assert.equal(l.scale, 2);
    assert.deepEqual(l.lora_A.weight.shape, [3, 6]);
    assert.deepEqual(l.lora_B.weight.shape, [5, 3]);
    // A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform a=sqrt(5)), B = 0.
    const a = l.lora_A.weight.toArray();
    assert.ok(a.every((v) => Math.abs(v) <= 1 / Math.sqrt(6)) && a.some((v) => v !== 0));
    assert.ok(l.lora_B.weight.toArray().every((v) => v === 0));
    assert.deepEqual([...l.forward(x).toArray()], [...plain], 'B = 0: bit-identical to the base layer');
    T.noGrad(() => T.assign(l.lora_B.weight, T.fromArray(hostRandom(15, 4), [5, 3])));
    const err = maxAbs(l.forward(x).toArray(), byHand(base, l, x).toArray());
    assert.ok(err < 1e-6, `${base.constructor.name}: max abs error ${err}`);
    assert.deepEqual(base.namedParameters().map(([n]) => n).sort(), ['bias', 'lora_A.weight', 'lora_B.weight', 'weight']);
    assert.equal(base.weight.requiresGrad, false);
    l.detach();
    assert.equal(base.weight.requiresGrad, true);
    assert.deepEqual(base.namedParameters().map(([n]) => n).sort(), ['bias', 'weight']);
    base.dispose();
  }
}));

test('a fresh adapter leaves model logits bit-identical; disable() gives the base model back', () => {
  const model = load('llama');
  const before = logitsOf(model);
  const lora = T.applyLora(model, { target_modules: 'all-linear' }, { seed: 3 });
  assert.deepEqual([...logitsOf(model)], [...before]);
  randomizeB(lora);
  const adapted = logitsOf(model);
  assert.ok(maxAbs(adapted, before) > 1e-2);
  assert.deepEqual([...lora.withDisabled(() => logitsOf(model))], [...before]);
  assert.equal(lora.enabled, true);
  assert.deepEqual([...logitsOf(model)], [...adapted]);
  model.dispose();
});

test('gradients: finite differences on x, A and B of a LoraLinear', () => {
  const base = new T.Linear(5, 4, true, T.randomInit(0.3, 2));
  const l = new T.LoraLinear(base, { r: 2, alpha: 4, generator: new T.Generator(2) });
  T.noGrad(() => T.assign(l.lora_B.weight, T.fromArray(hostRandom(8, 9), [4, 2])));
  gradcheck('lora x', ([x]) => l.forward(x!), [{ shape: [3, 5] }]);
  // Parameters: perturb in place, compare with backward of L = sum(y * g).
  const x = T.fromArray(hostRandom(15, 5), [3, 5]);
  const g = T.fromArray(hostRandom(12, 6), [3, 4]);
  const loss = () => T.scope(() => T.noGrad(() => T.sum(T.mul(l.forward(x), g)).item()));
  l.zeroGrad(); // gradcheck's backward above accumulated into A and B
  T.scope(() => T.sum(T.mul(l.forward(x), g)).backward());
  for (const p of [l.lora_A.weight, l.lora_B.weight]) {
    const analytic = p.grad!.toArray();
    const data = p.toArray() as Float32Array;
    for (let j = 0; j < data.length; j++) {
      const at = (v: number) => {
        const d = Float32Array.from(data);
        d[j] = v;
        T.noGrad(() => T.scope(() => T.assign(p, T.fromArray(d, p.shape))));
        return loss();
      };
      const num = (at(data[j]! + 1e-2) - at(data[j]! - 1e-2)) / 2e-2;
      at(data[j]!);
      assert.ok(Math.abs(num - analytic[j]!) < 2e-3 + 2e-2 * Math.abs(num), `d/d${p.shape}[${j}]: ${analytic[j]} vs ${num}`);
    }
  }
  assert.equal(base.weight.grad, null);
  base.dispose();
});

test('model backward: only LoRA parameters get gradients', () => {
  const model = load('llama');
  model.train();
  const lora = T.applyLora(model, { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj'] }, { seed: 1 });
  randomizeB(lora);
  T.scope(() => model.forward({ inputIds: ids(INPUT), labels: ids(INPUT) }).loss!.backward());
  const trainable = new Set(lora.trainableParameters().map(([n]) => n));
  assert.equal(trainable.size, 8);
  for (const [name, p] of model.namedParameters()) {
    const isLora = /\.lora_[AB]\.weight$/.test(name);
    assert.equal(trainable.has(name), isLora, name);
    assert.equal(p.grad !== null, isLora, `${name}: grad ${p.grad ? 'present' : 'absent'}`);
  }
  assert.ok(trainable.has('model.layers.1.self_attn.v_proj.lora_A.weight'));
  model.dispose();
});

test('memory: adapted steps leave no live tensors behind; unload() frees A and B', () => {
  const model = load('llama');
  const baseline = T.memoryStats().liveTensors;
  const lora = T.applyLora(model, { target_modules: 'all-linear', lora_dropout: 0.1 });
  model.train();
  const withLora = T.memoryStats().liveTensors;
  for (let step = 0; step < 2; step++) {
    T.scope(() => model.forward({ inputIds: ids(INPUT), labels: ids(INPUT) }).loss!.backward());
    model.zeroGrad();
    assert.equal(T.memoryStats().liveTensors, withLora, `live tensors after step ${step}`);
  }
  lora.unload();
  assert.equal(T.memoryStats().liveTensors, baseline);
  model.dispose();
});

const paths = (lora: T.LoraModel) => [...lora.layers.keys()].sort();
const perLayer = (n: number, names: string[]) => Array.from({ length: n }, (_, i) => names.map((s) => s.replace('#', String(i)))).flat().sort();

test('target_modules: lists, regexes, all-linear and defaults on llama, qwen2 and gpt2', () => {
  const llamaAll = perLayer(2, ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((n) => `model.layers.#.self_attn.${n}`).concat(['gate_proj', 'up_proj', 'down_proj'].map((n) => `model.layers.#.mlp.${n}`)));
  const cases: [string, T.LoraConfig, string[], string[] | string][] = [
    ['llama', {}, perLayer(2, ['model.layers.#.self_attn.q_proj', 'model.layers.#.self_attn.v_proj']), ['q_proj', 'v_proj']],
    ['llama', { target_modules: ['v_proj', 'q_proj', 'nope'] }, perLayer(2, ['model.layers.#.self_attn.q_proj', 'model.layers.#.self_attn.v_proj']), ['q_proj', 'v_proj']],
    ['llama', { target_modules: ['layers.1.mlp.down_proj'] }, ['model.layers.1.mlp.down_proj'], ['layers.1.mlp.down_proj']],
    ['llama', { target_modules: String.raw`.*\.1\.mlp\.(gate|up)_proj` }, ['model.layers.1.mlp.gate_proj', 'model.layers.1.mlp.up_proj'], String.raw`.*\.1\.mlp\.(gate|up)_proj`],
    ['llama', { target_modules: 'all-linear' }, llamaAll, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']],
    ['llama', { target_modules: 'all-linear', exclude_modules: ['o_proj', 'mlp.down_proj'] }, llamaAll.filter((p) => !/o_proj|down_proj/.test(p)), ['gate_proj', 'k_proj', 'q_proj', 'up_proj', 'v_proj']],
    ['llama', { target_modules: ['lm_head'] }, ['lm_head'], ['lm_head']],
    ['qwen2', { target_modules: 'ALL-LINEAR' }, llamaAll, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']],
    ['gpt2', {}, ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn'], ['c_attn']],
    ['gpt2', { target_modules: 'all-linear' }, perLayer(2, ['transformer.h.#.attn.c_attn', 'transformer.h.#.attn.c_proj', 'transformer.h.#.mlp.c_fc', 'transformer.h.#.mlp.c_proj']), ['c_attn', 'c_fc', 'c_proj']],
  ];
  for (const [name, cfg, want, saved] of cases) {
    const model = load(name);
    const lora = T.applyLora(model, cfg);
    assert.deepEqual(paths(lora), want, `${name} ${JSON.stringify(cfg)}`);
    assert.deepEqual(lora.config.target_modules, saved);
    assert.equal(lora.config.fan_in_fan_out, name === 'gpt2');
    if (name === 'qwen2') assert.ok(!model.namedParameters().some(([n]) => n.startsWith('lm_head')), 'tied head untouched');
    assert.equal(lora.trainableParameters().length, 2 * want.length);
    model.dispose();
  }
});

test('modules_to_save: trainable, saved as base_model.model.<path>.<param>', () => {
  const model = load('llama');
  const lora = T.applyLora(model, { modules_to_save: ['lm_head'] });
  const names = lora.trainableParameters().map(([n]) => n);
  assert.ok(names.includes('lm_head.weight'));
  assert.ok(lora.adapterStateDict().has('base_model.model.lm_head.weight'));
  assert.throws(() => lora.disable(), /modules_to_save/);
  model.dispose();
});

test('save -> load: PEFT key names and config, bit-identical logits; ".default" keys accepted', () => {
  const dir = tmp();
  const model = load('llama');
  const lora = T.applyLora(model, { r: 4, lora_alpha: 16, lora_dropout: 0.1 }, { seed: 5 });
  randomizeB(lora);
  const want = logitsOf(model);
  T.saveAdapter(lora, dir, { baseModelNameOrPath: 'test/fixtures/models/llama' });
  model.dispose();

  const keys = T.scope(() => {
    using f = T.SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(f.info('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight').shape, [4, 32]);
    assert.deepEqual(f.info('base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight').shape, [16, 4]);
    return f.keys().sort();
  });
  assert.deepEqual(keys, perLayer(2, ['q_proj', 'v_proj'].flatMap((n) => ['A', 'B'].map((ab) => `base_model.model.model.layers.#.self_attn.${n}.lora_${ab}.weight`))));
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  assert.deepEqual(Object.keys(cfg), Object.keys(cfg).sort(), 'keys sorted as PEFT writes them');
  const fields = { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 16, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj'], bias: 'none', fan_in_fan_out: false, use_rslora: false, use_dora: false, inference_mode: true, init_lora_weights: true, modules_to_save: null, base_model_name_or_path: 'test/fixtures/models/llama' };
  for (const [k, v] of Object.entries(fields)) assert.deepEqual(cfg[k], v, k);

  const reloaded = load('llama');
  const back = T.loadAdapter(reloaded, dir);
  assert.deepEqual([...logitsOf(reloaded)], [...want]);
  assert.equal(back.trainableParameters().length, 0, 'inference by default');
  reloaded.dispose();

  // Old PEFT versions kept the adapter name in keys: lora_A.default.weight.
  const old = tmp();
  writeFileSync(join(old, 'adapter_config.json'), readFileSync(join(dir, 'adapter_config.json')));
  T.scope(() => {
    using f = T.SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    T.writeSafetensors(join(old, 'adapter_model.safetensors'), new Map(f.keys().map((k) => [k.replace(/\.weight$/, '.default.weight'), f.tensor(k)])));
  });
  const m3 = load('llama');
  const l3 = T.loadAdapter(m3, old, { trainable: true });
  assert.deepEqual([...logitsOf(m3)], [...want]);
  assert.equal(l3.trainableParameters().length, 8);
  m3.dispose();
});

test('SEQ_CLS: the score head trains and is saved as PEFT does; loads back bit-identically', () => {
  const dir = tmp();
  const seqcls = () => T.loadModelFromDir(join(models, 'llama_seqcls'), { warn: () => {} });
  const model = seqcls();
  const lora = T.applyLora(model, { task_type: 'SEQ_CLS', target_modules: 'all-linear' });
  assert.ok(!lora.layers.has('score'), 'all-linear leaves the head to modules_to_save');
  assert.deepEqual(lora.config.modules_to_save, ['classifier', 'score']);
  assert.ok(lora.trainableParameters().some(([n]) => n === 'score.weight'));
  randomizeB(lora);
  T.noGrad(() => T.scope(() => T.assign(model.stateDict().get('score.weight')!, T.randn([model.config.numLabels, 32], { generator: new T.Generator(3) }))));
  const logits = (m: T.PretrainedModel) => T.scope(() => m.forward({ inputIds: ids([INPUT[0]!]) }).logits.toArray());
  const want = logits(model);
  T.saveAdapter(lora, dir);
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.task_type, 'SEQ_CLS');
  assert.ok(lora.adapterStateDict().has('base_model.model.score.weight'));
  model.dispose();
  const model2 = seqcls();
  T.loadAdapter(model2, dir);
  assert.deepEqual([...logits(model2)], [...want]);
  model2.dispose();
  const causal = load('llama');
  assert.throws(() => T.loadAdapter(causal, dir), /SEQ_CLS needs a sequence-classification model/);
  causal.dispose();
});

test('merge: weights become W + s B A (Conv1D transposed) and logits match the adapted model', () => {
  for (const name of ['llama', 'gpt2']) {
    const model = load(name);
    const lora = T.applyLora(model, { r: 4, lora_alpha: 8, target_modules: 'all-linear' }, { seed: 9 });
    randomizeB(lora);
    const adapted = logitsOf(model);
    const expect = new Map<string, Float32Array>();
    for (const [path, l] of lora.layers) {
      const W = l.base.weight.toArray(), A = l.lora_A.weight.toArray(), B = l.lora_B.weight.toArray();
      const [out, inn, r] = [l.base.outFeatures, l.base.inFeatures, l.r];
      const w = Float32Array.from(W);
      for (let o = 0; o < out; o++)
        for (let i = 0; i < inn; i++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += B[o * r + k]! * A[k * inn + i]!;
          w[l.fanInFanOut ? i * out + o : o * inn + i]! += l.scale * s;
        }
      expect.set(`${path}.weight`, w);
    }
    const names = model.namedParameters().map(([n]) => n).filter((n) => !n.includes('lora_'));
    lora.merge();
    assert.deepEqual(model.namedParameters().map(([n]) => n), names, 'plain parameter names again');
    assert.ok(model.parameters().every((p) => p.requiresGrad), 'requiresGrad restored');
    const params = model.stateDict();
    for (const [n, w] of expect) assert.ok(maxAbs(params.get(n)!.toArray(), w) < 1e-6, `${name} ${n}`);
    const err = maxAbs(logitsOf(model), adapted);
    assert.ok(err < 1e-5, `${name}: merged vs adapted logits max abs error ${err}`);
    assert.throws(() => lora.trainableParameters(), /merged or unloaded/);
    model.dispose();
  }
});

test('rsLoRA: scale alpha/sqrt(r), kept through save and load', () => {
  const model = load('llama');
  const lora = T.applyLora(model, { r: 4, lora_alpha: 8, use_rslora: true });
  for (const l of lora.layers.values()) assert.equal(l.scale, 4);
  randomizeB(lora);
  const want = logitsOf(model);
  const l0 = lora.layers.get('model.layers.0.self_attn.q_proj')!;
  T.scope(() => {
    const x = T.fromArray(hostRandom(2 * 32, 8), [2, 32]);
    assert.ok(maxAbs(l0.forward(x).toArray(), byHand(l0.base, l0, x).toArray()) < 1e-5);
  });
  const dir = tmp();
  T.saveAdapter(lora, dir);
  assert.equal(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).use_rslora, true);
  model.dispose();
  const m2 = load('llama');
  T.loadAdapter(m2, dir);
  assert.deepEqual([...logitsOf(m2)], [...want]);
  m2.dispose();
});

test('errors: unsupported config fields, missing and mismatched tensors, bad targets', () => {
  const dir = tmp();
  const model = load('llama');
  const lora = T.applyLora(model, { r: 4 });
  T.saveAdapter(lora, dir);
  model.dispose();
  const cfgText = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
  const withCfg = (patch: Record<string, unknown>, re: RegExp, file = 'adapter_config.json') => {
    const d = tmp();
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify({ ...JSON.parse(cfgText), ...patch }));
    writeFileSync(join(d, 'adapter_model.safetensors'), readFileSync(join(dir, 'adapter_model.safetensors')));
    const m = load('llama');
    try {
      assert.throws(() => T.loadAdapter(m, d), (e: Error) => e instanceof T.TemperError && re.test(e.message) && e.message.includes(file));
      assert.ok(!m.namedParameters().some(([n]) => n.includes('lora_')), 'a failed load leaves the model plain');
    } finally {
      m.dispose();
    }
  };
  withCfg({ use_dora: true }, /use_dora.*DoRA/);
  withCfg({ rank_pattern: { q_proj: 16 } }, /rank_pattern/);
  withCfg({ layers_to_transform: [0] }, /layers_to_transform/);
  withCfg({ peft_type: 'IA3' }, /peft_type/);
  withCfg({ r: 8 }, /lora_A\.weight' has shape \[4,32\].*expects \[8,32\]/, 'adapter_model.safetensors');

  const missing = tmp();
  writeFileSync(join(missing, 'adapter_config.json'), cfgText);
  T.scope(() => {
    using f = T.SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    T.writeSafetensors(join(missing, 'adapter_model.safetensors'), new Map(f.keys().filter((k) => !k.includes('layers.1.self_attn.v_proj.lora_B')).map((k) => [k, f.tensor(k)])));
  });
  const m = load('llama');
  assert.throws(() => T.loadAdapter(m, missing), /missing tensor 'base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight'/);
  assert.throws(() => T.applyLora(m, { target_modules: ['nope'] }), /matched no module/);
  assert.throws(() => T.applyLora(m, { target_modules: ['embed_tokens'] }), /Embedding.*Linear and Conv1D/);
  assert.throws(() => T.applyLora(m, { target_modules: '(' }), /not a valid regular expression/);
  assert.throws(() => T.applyLora(m, { modules_to_save: ['nope'] }), /modules_to_save entry 'nope'/);
  T.applyLora(m, {});
  assert.throws(() => T.applyLora(m, {}), /already has adapters/);
  m.dispose();
});

test('an adapter written by PEFT conventions in torch (scripts/make_peft_fixture.py) reproduces its logits', async () => {
  const e = JSON.parse(readFileSync(join(peftFixture, 'expected.json'), 'utf8')) as { input_ids: number[][]; logits: number[] };
  const model = load('llama');
  const base = T.scope(() => model.forward({ inputIds: ids(e.input_ids) }).logits.toArray());
  const lora = T.loadAdapter(model, peftFixture);
  assert.equal(lora.layers.size, 4);
  const got = T.scope(() => model.forward({ inputIds: ids(e.input_ids) }).logits.toArray());
  assert.ok(maxAbs(base, e.logits) > 1e-2, 'the adapter matters');
  const err = maxAbs(got, e.logits);
  assert.ok(err < 1e-4, `adapted logits max abs error ${err}`);
  lora.merge();
  const merged = T.scope(() => model.forward({ inputIds: ids(e.input_ids) }).logits.toArray());
  assert.ok(maxAbs(merged, e.logits) < 1e-4);
  model.dispose();

  // The CLI: merge-lora writes a plain model folder that loads and gives the same logits.
  const out = tmp();
  const write = process.stderr.write;
  process.stderr.write = () => true;
  try {
    assert.equal(await mergeLoraCommand(['--model', join(models, 'llama'), '--adapter', peftFixture, '--output', out]), 0);
  } finally {
    process.stderr.write = write;
  }
  const m2 = T.loadModelFromDir(out, { warn: (w) => assert.fail(w) });
  const cli = T.scope(() => m2.forward({ inputIds: ids(e.input_ids) }).logits.toArray());
  assert.ok(maxAbs(cli, e.logits) < 1e-4);
  m2.dispose();
  await assert.rejects(mergeLoraCommand(['--adapter', peftFixture]), /--output OUT is required/);
});
