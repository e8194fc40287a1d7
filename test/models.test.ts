// Architectures against transformers-convention reference fixtures (scripts/make_model_fixtures.py):
// logits, loss and gradients for a left-padded batch, packed documents, greedy continuations,
// sequence-classification pooling, and save -> reload bit-identity.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import { maxRelErr } from './helpers.js';

const root = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const CAUSAL = ['llama', 'smollm', 'llama3', 'mistral', 'qwen2', 'qwen3', 'gpt2'];
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-models-'));

interface Expected {
  inv_freq: number[];
  attention_scaling?: number;
  batch: { input_ids: number[][]; attention_mask: number[][]; position_ids: number[][]; labels?: number[][]; logits: number[]; loss?: number; grads: Record<string, number[]>; grad_weights?: number[][] };
  packed?: { input_ids: number[][]; position_ids: number[][]; doc_ids: number[][]; logits: number[] };
  greedy?: { prompt_ids: number[][]; max_new_tokens: number; tokens: number[][] };
}

const expected = (c: string): Expected => JSON.parse(readFileSync(join(root, c, 'expected.json'), 'utf8'));
const ids = (rows: number[][]) => T.fromArray(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
const causal = (dir: string) => {
  const m = T.loadModelFromDir(dir, { warn: () => {} });
  assert.ok(m instanceof T.CausalLM);
  return m;
};

/** max |a - b| over positions whose mask is 1 (V values per position). */
function maskedMaxAbs(a: ArrayLike<number>, b: ArrayLike<number>, mask: number[], V: number): number {
  let m = 0;
  mask.forEach((keep, p) => {
    if (!keep) return;
    for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(a[p * V + v]! - b[p * V + v]!));
  });
  return m;
}

for (const name of CAUSAL) {
  test(`${name}: logits, loss and gradients match the reference on a left-padded batch`, () => {
    const e = expected(name);
    const model = causal(join(root, name));
    T.scope(() => {
      const V = model.config.vocabSize;
      if (model.body instanceof T.LlamaModel) assert.ok(maxRelErr(model.body.rope.invFreq.toArray(), e.inv_freq) < 1e-6, 'inv_freq');
      const mask = e.batch.attention_mask;
      assert.deepEqual([...T.defaultPositionIds(2, 8, mask.flat())], e.batch.position_ids.flat(), 'default position ids');
      const { logits, loss } = model.forward({ inputIds: ids(e.batch.input_ids), attentionMask: ids(mask), labels: ids(e.batch.labels!) });
      assert.deepEqual(logits.shape, [2, 8, V]);
      const err = maskedMaxAbs(logits.toArray(), e.batch.logits, mask.flat(), V);
      assert.ok(err < 1e-4, `logits max abs error ${err.toExponential(2)}`);
      assert.ok(Math.abs(loss!.item() - e.batch.loss!) < 1e-5, `loss ${loss!.item()} vs ${e.batch.loss}`);
      loss!.backward();
      const params = new Map(model.namedParameters());
      for (const [pname, g] of Object.entries(e.batch.grads)) {
        const p = params.get(pname);
        assert.ok(p?.grad, `gradient of ${pname}`);
        const r = maxRelErr(p.grad.toArray(), g);
        assert.ok(r < 1e-4, `${pname} gradient relative error ${r.toExponential(2)}`);
      }
    });
    model.dispose();
  });

  test(`${name}: packed documents match the reference (no attention across documents)`, () => {
    const e = expected(name).packed!;
    const model = causal(join(root, name));
    T.scope(() => {
      const docIds = ids(e.doc_ids);
      assert.deepEqual([...T.defaultPositionIds(1, 12, null, e.doc_ids.flat())], e.position_ids.flat());
      const { logits } = model.forward({ inputIds: ids(e.input_ids), docIds });
      const err = maskedMaxAbs(logits.toArray(), e.logits, e.doc_ids.flat().map(() => 1), model.config.vocabSize);
      assert.ok(err < 1e-4, `packed logits max abs error ${err.toExponential(2)}`);
    });
    model.dispose();
  });

  test(`${name}: greedy continuation by full recomputation equals the reference`, () => {
    const e = expected(name).greedy!;
    const model = causal(join(root, name));
    const rows = e.prompt_ids.map((r) => [...r]);
    T.noGrad(() => {
      for (let s = 0; s < e.max_new_tokens; s++) {
        T.scope(() => {
          const { logits } = model.forward({ inputIds: ids(rows), lastTokenOnly: true });
          const next = T.argmax(logits, -1).toArray();
          rows.forEach((r, b) => r.push(next[b]!));
        });
      }
    });
    assert.deepEqual(rows.map((r) => r.slice(e.prompt_ids[0]!.length)), e.tokens);
    model.dispose();
  });
}

test('llama_seqcls: pooled logits at the last non-pad token and gradients match the reference', () => {
  const e = expected('llama_seqcls');
  const model = T.loadModelFromDir(join(root, 'llama_seqcls'));
  assert.ok(model instanceof T.SequenceClassifier);
  T.scope(() => {
    const { logits } = model.forward({ inputIds: ids(e.batch.input_ids), attentionMask: ids(e.batch.attention_mask) });
    assert.deepEqual(logits.shape, [2, 2]);
    assert.ok(maxRelErr(logits.toArray(), e.batch.logits) < 1e-5, 'pooled logits');
    T.sum(T.mul(logits, T.tensor(e.batch.grad_weights!))).backward();
    const params = new Map(model.namedParameters());
    for (const [pname, g] of Object.entries(e.batch.grads)) {
      const r = maxRelErr(params.get(pname)!.grad!.toArray(), g);
      assert.ok(r < 1e-4, `${pname} gradient relative error ${r.toExponential(2)}`);
    }
  });
  model.dispose();
});

test('parameter names are the checkpoint names; tied heads list the embedding once', () => {
  for (const name of [...CAUSAL, 'llama_seqcls']) {
    const model = T.loadModelFromDir(join(root, name));
    using reader = new T.WeightsReader(join(root, name));
    assert.deepEqual(model.namedParameters().map(([n]) => n).sort(), reader.keys().sort(), name);
    assert.ok(model.parameters().every((p) => p.requiresGrad), `${name}: every parameter trainable`);
    assert.equal(model.training, false, 'from a folder in eval mode');
    assert.equal(model.train().training, true);
    model.dispose();
  }
});

test('save -> reload gives bit-identical logits (single file, sharded, and GPT-2 names)', () => {
  for (const [name, opts] of [['llama', {}], ['qwen2', { maxShardSize: '30KB' }], ['gpt2', {}], ['llama_seqcls', {}]] as const) {
    const out = tmp();
    const model = T.loadModelFromDir(join(root, name));
    T.saveModel(model, out, opts);
    if ('maxShardSize' in opts) assert.ok(existsSync(join(out, 'model.safetensors.index.json')), 'sharded save writes the index');
    const again = T.loadModelFromDir(out);
    const e = expected(name);
    T.noGrad(() => T.scope(() => {
      const input = { inputIds: ids(e.batch.input_ids), attentionMask: ids(e.batch.attention_mask) };
      assert.deepEqual(again.forward(input).logits.toArray(), model.forward(input).logits.toArray(), name);
    }));
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.model_type, model.config.modelType);
    assert.equal(cfg.torch_dtype, 'float32');
    model.dispose();
    again.dispose();
    rmSync(out, { recursive: true });
  }
});

test('bf16 save writes BF16 tensors and torch_dtype bfloat16; the tied head is not written', () => {
  const out = tmp();
  const model = T.loadModelFromDir(join(root, 'qwen3'));
  T.saveModel(model, out, { dtype: 'BF16' });
  using f = T.SafetensorsFile.open(join(out, 'model.safetensors'));
  assert.ok([...f.tensors.values()].every((i) => i.dtype === 'BF16'));
  assert.ok(!f.tensors.has('lm_head.weight'));
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  // The fixture is stored in BF16, so a BF16 round trip is exact.
  const again = T.loadModelFromDir(out);
  const a = new Map(again.namedParameters());
  for (const [n, p] of model.namedParameters()) assert.deepEqual(a.get(n)!.toArray(), p.toArray(), n);
  model.dispose();
  again.dispose();
});

test('a causal checkpoint loads as a sequence classifier with a new seeded score head', () => {
  const notes: string[] = [];
  const a = T.loadModelFromDir(join(root, 'llama'), { task: 'sequence-classification', numLabels: 1, warn: (m) => notes.push(m) });
  assert.ok(a instanceof T.SequenceClassifier);
  assert.deepEqual(a.score.weight.shape, [1, 32]);
  assert.match(notes.join('\n'), /no score\.weight/);
  assert.match(notes.join('\n'), /ignored 1 checkpoint tensor.*lm_head\.weight/);
  assert.deepEqual(a.config.architectures, ['LlamaForSequenceClassification']);
  a.dispose();
});

test('bad folders fail with errors that name the file and the tensor', () => {
  const dir = tmp();
  assert.throws(() => T.loadModelFromDir(dir), /no config\.json/);
  cpSync(join(root, 'llama'), dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'mamba' }));
  assert.throws(() => T.loadModelFromDir(dir), /config\.json: model_type 'mamba' is not supported/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, hidden_size: undefined }));
  assert.throws(() => T.loadModelFromDir(dir), /config\.json: missing "hidden_size"/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 48 }));
  assert.throws(() => T.loadModelFromDir(dir), /model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[64,32\], LlamaForCausalLM expects \[48,32\]/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const model = T.loadModelFromDir(dir);
  const state = model.stateDict();
  state.delete('model.norm.weight');
  T.writeWeights(dir, state);
  assert.throws(() => T.loadModelFromDir(dir), /checkpoint has no tensor 'model\.norm\.weight'/);
  writeFileSync(join(dir, 'model.safetensors'), readFileSync(join(root, 'llama', 'model.safetensors')).subarray(0, 5000));
  assert.throws(() => T.loadModelFromDir(dir), /model\.safetensors/);
  model.dispose();
  rmSync(dir, { recursive: true });
});

test('a hub id resolves from the HF cache layout without the network', async () => {
  const cache = tmp();
  const snap = join(cache, 'models--tiny--llama', 'snapshots', 'a'.repeat(40));
  cpSync(join(root, 'llama'), snap, { recursive: true });
  const refs = join(cache, 'models--tiny--llama', 'refs');
  mkdirSync(refs, { recursive: true });
  writeFileSync(join(refs, 'main'), 'a'.repeat(40));
  assert.equal(await T.resolveModelRef('tiny/llama', { cacheDir: cache }), snap);
  const model = await T.loadModel('tiny/llama', { cacheDir: cache });
  assert.equal(model.config.modelType, 'llama');
  model.dispose();
  await assert.rejects(T.resolveModelRef('not a ref'), /no such folder, and not a hub id/);
  rmSync(cache, { recursive: true });
});

test('config.json from transformers 5 (rope_parameters) reads as the older rope_theta + rope_scaling', () => {
  const base = { model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 128, vocab_size: 256 };
  const scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const v4 = T.parseConfig({ ...base, rope_theta: 500000, rope_scaling: scaling });
  const v5 = T.parseConfig({ ...base, rope_parameters: { rope_theta: 500000, ...scaling } });
  assert.equal(v5.ropeTheta, 500000);
  assert.deepEqual(v5.ropeScaling, { rope_theta: 500000, ...scaling });
  assert.deepEqual(T.ropeInvFreq(16, v5.ropeTheta, v5.ropeScaling), T.ropeInvFreq(16, v4.ropeTheta, v4.ropeScaling));
  const plain = T.parseConfig({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } });
  assert.equal(plain.ropeTheta, 1e6);
  assert.equal(plain.ropeScaling, null);
});
