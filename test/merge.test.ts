// Model merging against float32 references of the formulas (scripts/make_merge_fixtures.py):
// linear, task_arithmetic, ties (gradient + filter weights), slerp; DARE checked statistically;
// streaming shard output, loadability, vocab rectification, LoRA inputs, config errors, CLI.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import { mergeCommand } from '../src/cli/merge.js';
import { maxRelErr } from './helpers.js';

const root = fileURLToPath(new URL('../../test/fixtures/merge/', import.meta.url));
const fixtures = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-merge-'));
const expected: Record<string, { config: Record<string, unknown>; tensors: Record<string, number[]> }> = JSON.parse(readFileSync(join(root, 'expected.json'), 'utf8'));
const quiet = { onProgress: () => {} };

/** The fixture config with model paths made absolute. */
function fixtureConfig(raw: Record<string, unknown>): T.MergeConfig {
  const c = structuredClone(raw) as { base_model?: string; models: { model: string }[] };
  if (c.base_model) c.base_model = join(root, c.base_model);
  for (const m of c.models) m.model = join(root, m.model);
  return T.parseMergeConfig(c);
}

function readAll(dir: string): Map<string, { shape: number[]; data: Float32Array }> {
  using r = new T.WeightsReader(dir);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const k of r.keys()) {
    const t = r.tensor(k);
    out.set(k, { shape: [...t.shape], data: t.toArray() as Float32Array });
    t.dispose();
  }
  return out;
}

for (const name of ['linear', 'task_arithmetic', 'ties', 'slerp']) {
  test(`${name}: merged tensors match the float32 reference`, async () => {
    const out = tmp();
    const res = await T.runMerge(fixtureConfig(expected[name]!.config), out, quiet);
    assert.equal(res.files.length, 1);
    const got = readAll(out);
    assert.equal(got.size, res.tensors);
    for (const [tensor, want] of Object.entries(expected[name]!.tensors)) {
      const g = got.get(tensor);
      assert.ok(g, `${tensor} missing`);
      const err = maxRelErr(g.data, want);
      assert.ok(err < 1e-5, `${name} ${tensor}: max relative error ${err}`);
    }
  });
}

test('merged folder: config.json, model card, tokenizer copy, loads and runs a forward', async () => {
  const out = tmp();
  await T.runMerge(fixtureConfig(expected.ties!.config), out, { ...quiet, copyTokenizer: true, dtype: 'BF16' });
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(cfg.torch_dtype, 'bfloat16');
  assert.equal(cfg.hidden_size, 16);
  assert.ok(existsSync(join(out, 'tokenizer_config.json')) && existsSync(join(out, 'generation_config.json')));
  const card = readFileSync(join(out, 'README.md'), 'utf8');
  assert.match(card, /merge_method: ties/);
  assert.match(card, /density: 0.5/);
  const model = T.loadModelFromDir(out, { warn: () => {} }) as T.CausalLM;
  const ids = T.fromArray(Int32Array.from([1, 5, 7, 9]), [1, 4]);
  const { logits } = model.forward({ inputIds: ids });
  assert.deepEqual(logits.shape, [1, 4, 32]);
  assert.ok((logits.toArray() as Float32Array).every(Number.isFinite));
  model.dispose();
});

test('sharded output: tiny out_shard_size gives shards under the limit and a complete index', async () => {
  const one = tmp(), many = tmp();
  const cfg = fixtureConfig(expected.linear!.config);
  await T.runMerge(cfg, one, quiet);
  const progress: number[] = [];
  const res = await T.runMerge(cfg, many, { outShardSize: 3000, onProgress: (_done, _total, b) => progress.push(b) });
  assert.ok(res.files.length > 2, `${res.files.length} files`);
  assert.equal(res.files[0], `model-00001-of-${String(res.files.length).padStart(5, '0')}.safetensors`);
  const index = JSON.parse(readFileSync(join(many, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(index.metadata.total_size, res.bytes);
  assert.deepEqual(new Set(Object.values(index.weight_map)), new Set(res.files));
  assert.equal(Object.keys(index.weight_map).length, res.tensors);
  assert.equal(progress.at(-1), res.bytes);
  for (const f of res.files) {
    using st = T.SafetensorsFile.open(join(many, f));
    const data = st.keys().reduce((n, k) => n + st.info(k).end - st.info(k).begin, 0);
    assert.ok(data <= 3000 || st.keys().length === 1, `${f}: ${data} bytes`);
    for (const k of st.keys()) assert.equal(index.weight_map[k], f);
  }
  assert.ok(!readdirSync(many).some((f) => f.includes('.tmp')));
  const a = readAll(one), b = readAll(many);
  assert.equal(a.size, b.size);
  for (const [k, v] of a) assert.deepEqual(b.get(k)!.data, v.data, k);
});

function dareConfig(method: string, density: number, extra: Record<string, unknown> = {}) {
  return T.parseMergeConfig({
    merge_method: method,
    base_model: join(root, 'base'),
    models: [{ model: join(root, 'ft_b'), parameters: { weight: 1, density } }],
    parameters: extra,
    dtype: 'float32',
  });
}

test('dare_linear: kept fraction ~ density, kept entries exactly delta/density, seeded', async () => {
  const density = 0.3;
  const out1 = tmp(), out2 = tmp(), out3 = tmp();
  await T.runMerge(dareConfig('dare_linear', density), out1, { ...quiet, seed: 7 });
  await T.runMerge(dareConfig('dare_linear', density), out2, { ...quiet, seed: 7 });
  await T.runMerge(dareConfig('dare_linear', density), out3, { ...quiet, seed: 8 });
  const base = readAll(join(root, 'base')), ft = readAll(join(root, 'ft_b'));
  const r1 = readAll(out1), r2 = readAll(out2), r3 = readAll(out3);
  let kept = 0, total = 0, differ = 0;
  for (const [k, b] of base) {
    const x = ft.get(k)!.data, y = r1.get(k)!.data;
    assert.deepEqual(r2.get(k)!.data, y, `${k}: same seed, same output`);
    for (let i = 0; i < y.length; i++) {
      if (r3.get(k)!.data[i] !== y[i]) differ++;
      const delta = Math.fround(x[i]! - b.data[i]!), got = y[i]! - b.data[i]!;
      total++;
      if (got === 0) continue;
      kept++;
      assert.ok(Math.abs(got - delta / density) <= 1e-5 * (Math.abs(delta / density) + 1e-3), `${k}[${i}]: ${got} vs ${delta / density}`);
    }
  }
  const frac = kept / total;
  const sd = Math.sqrt((density * (1 - density)) / total);
  assert.ok(Math.abs(frac - density) < 5 * sd, `kept fraction ${frac} (n ${total})`);
  assert.ok(differ > total / 4, `different seeds differ in ${differ} of ${total}`);
});

test('dare_ties: rescale_mode l1 keeps each tensor’s L1 norm; rescale false only drops', async () => {
  const l1 = tmp(), drop = tmp();
  await T.runMerge(dareConfig('dare_ties', 0.5, { rescale_mode: 'l1' }), l1, quiet);
  await T.runMerge(dareConfig('dare_ties', 0.5, { rescale: false }), drop, quiet);
  const base = readAll(join(root, 'base')), ft = readAll(join(root, 'ft_b'));
  const a = readAll(l1), d = readAll(drop);
  for (const [k, b] of base) {
    let n0 = 0, n1 = 0;
    for (let i = 0; i < b.data.length; i++) {
      const delta = ft.get(k)!.data[i]! - b.data[i]!;
      n0 += Math.abs(delta);
      n1 += Math.abs(a.get(k)!.data[i]! - b.data[i]!);
      const dd = d.get(k)!.data[i]! - b.data[i]!;
      assert.ok(dd === 0 || Math.abs(dd - delta) < 1e-6, `${k}[${i}] DropOnly`);
    }
    assert.ok(Math.abs(n1 - n0) < 1e-3 * n0 + 1e-6, `${k}: L1 ${n1} vs ${n0}`);
  }
});

test('sparsify: magnitude keeps the top-k, breadcrumbs drops outliers and the smallest', () => {
  const d = Float32Array.from([0.1, -0.5, 0.3, -0.2, 0.9, 0.05, -0.7, 0.4, 0.0, 0.6]);
  assert.deepEqual([...T.magnitude(Float32Array.from(d), 0.3, 'x')], [0, 0, 0, 0, 0.9, 0, -0.7, 0, 0, 0.6].map(Math.fround));
  // density 0.5 -> 5 remain; gamma 0.1 -> top 1 (0.9) dropped, then the 4 smallest.
  assert.deepEqual([...T.breadcrumbs(Float32Array.from(d), 0.5, 0.1)], [0, -0.5, 0.3, 0, 0, 0, -0.7, 0.4, 0, 0.6].map(Math.fround));
  // ties at the threshold go by index, like a stable sort: keep 2 of four equal values
  assert.deepEqual([...T.keepRankRange(Float32Array.from([1, 1, 1, 1]), 2, 4)], [0, 0, 1, 1]);
});

test('resolveParam: layer gradients, filters (first match wins), fallback', () => {
  assert.equal(T.layerIndex('model.layers.11.mlp.up_proj.weight'), 11);
  assert.equal(T.layerIndex('transformer.h.3.attn.c_attn.weight'), 3);
  assert.equal(T.layerIndex('model.embed_tokens.weight'), null);
  const g = [0, 0.3, 0.7, 1];
  assert.equal(T.resolveParam(g, 'model.norm.weight', 5), 0);
  assert.equal(T.resolveParam(g, 'model.layers.0.mlp.up_proj.weight', 5), 0);
  assert.ok(Math.abs((T.resolveParam(g, 'model.layers.2.mlp.up_proj.weight', 5) as number) - 0.5) < 1e-12); // t=0.5 -> x=1.5
  assert.equal(T.resolveParam(g, 'model.layers.4.mlp.up_proj.weight', 5), 1);
  const f = [{ filter: 'mlp', value: 0.5 }, { filter: 'mlp.up', value: 9 }, { value: 0 }];
  assert.equal(T.resolveParam(f, 'model.layers.0.mlp.up_proj.weight', 2), 0.5);
  assert.equal(T.resolveParam(f, 'model.layers.0.self_attn.q_proj.weight', 2), 0);
  assert.equal(T.resolveParam([{ filter: 'mlp', value: 1 }], 'lm_head.weight', 2), undefined);
});

test('config errors name the key', async () => {
  const bad = (raw: unknown, re: RegExp) => assert.throws(() => T.validateMergeConfig(T.parseMergeConfig(raw)), re);
  bad({ models: [{ model: 'a' }] }, /'merge_method' is required/);
  bad({ merge_method: 'linear', models: [] }, /'models' is required/);
  bad({ merge_method: 'linear', models: [{ model: 'a', parameters: { weight: 1 } }], foo: 1 }, /unknown key 'foo'/);
  bad({ merge_method: 'linear', models: [{ model: 'a', parameters: { weight: 'x' } }, { model: 'b' }] }, /'models\[1\]\.parameters\.weight' is required/);
  bad({ merge_method: 'ties', models: [{ model: 'a', parameters: { weight: 1 } }] }, /'base_model' is required/);
  bad({ merge_method: 'ties', base_model: 'b', models: [{ model: 'a', parameters: { weight: 1, densty: 0.5 } }] }, /unknown parameter 'models\[0\]\.parameters\.densty'/);
  bad({ merge_method: 'slerp', base_model: 'b', models: [{ model: 'a' }, { model: 'c' }], parameters: { t: 0.5 } }, /exactly 2 models/);
  bad({ merge_method: 'slerp', base_model: 'b', models: [{ model: 'b' }, { model: 'a' }] }, /'parameters\.t' is required/);
  bad({ merge_method: 'linear', models: [{ model: 'a', parameters: { weight: [{ filter: 1, value: 1 }] } }] }, /filter' must be a string/);
  bad({ merge_method: 'linear', models: [{ model: 'a' }], tokenizer: { source: 'union', tokens: {} } }, /'tokenizer\.tokens' is not supported yet/);
  bad({ merge_method: 'linear', models: [{ model: 'a' }], tokenizer: { source: 'union', pad_to_multiple_of: 0 } }, /pad_to_multiple_of' must be a positive integer/);
  bad({ merge_method: 'linear', models: [{ model: 'a' }], dtype: 'float64' }, /'dtype' must be one of/);
  bad({ merge_method: 'della', models: [{ model: 'a' }] }, /merge_method 'della' is not supported/);
  bad({ merge_method: 'linear', slices: [{ sources: [{ model: 'a', layer_range: [0, 1] }] }] }, /'slices' is supported with merge_method passthrough only/);
  bad({ merge_method: 'passthrough', slices: [{ sources: [{ model: 'a', layer_range: [2, 1] }] }] }, /layer_range' must be \[from, to\)/);
  bad({ merge_method: 'passthrough', slices: [{ sources: [{ model: 'a', layer_range: [0, 1] }, { model: 'b', layer_range: [0, 1] }] }] }, /exactly one source/);
});

test('passthrough with slices stacks layers, renumbered, and the result loads and runs', async () => {
  const out = tmp();
  const cfg = T.parseMergeConfig({
    merge_method: 'passthrough',
    slices: [
      { sources: [{ model: join(root, 'base'), layer_range: [0, 2] }] },
      { sources: [{ model: join(root, 'ft_a'), layer_range: [1, 2] }] },
    ],
  });
  await T.runMerge(cfg, out, quiet);
  const got = readAll(out), base = readAll(join(root, 'base')), ftA = readAll(join(root, 'ft_a'));
  const same = (a: { data: Float32Array }, b: { data: Float32Array }) => assert.deepEqual([...a.data], [...b.data]);
  same(got.get('model.layers.0.mlp.up_proj.weight')!, base.get('model.layers.0.mlp.up_proj.weight')!);
  same(got.get('model.layers.1.self_attn.q_proj.weight')!, base.get('model.layers.1.self_attn.q_proj.weight')!);
  same(got.get('model.layers.2.self_attn.q_proj.weight')!, ftA.get('model.layers.1.self_attn.q_proj.weight')!);
  same(got.get('model.embed_tokens.weight')!, base.get('model.embed_tokens.weight')!);
  assert.ok(!got.has('model.layers.3.self_attn.q_proj.weight'));
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).num_hidden_layers, 3);
  const m = T.loadModelFromDir(out) as T.CausalLM;
  T.noGrad(() => T.scope(() => assert.ok([...m.forward({ inputIds: T.tensor([[1, 2, 3]], { dtype: 'i32' }) }).logits.toArray()].every(Number.isFinite))));
  m.dispose();
  await assert.rejects(T.runMerge(T.parseMergeConfig({ merge_method: 'passthrough', slices: [{ sources: [{ model: join(root, 'base'), layer_range: [0, 5] }] }] }), tmp(), quiet), /has no tensor 'model\.layers\.2\./);
});

test('a shape mismatch names the tensor and both models', async () => {
  const odd = tmp();
  cpSync(join(root, 'ft_b'), odd, { recursive: true });
  const ts = readAll(odd);
  const tensors = new Map<string, T.Tensor>();
  for (const [k, v] of ts) tensors.set(k, k === 'model.layers.1.mlp.up_proj.weight' ? T.zeros([31, 16]) : T.fromArray(v.data, v.shape));
  T.writeSafetensors(join(odd, 'model.safetensors'), tensors);
  const cfg = T.parseMergeConfig({ merge_method: 'task_arithmetic', base_model: join(root, 'base'), models: [{ model: odd, parameters: { weight: 1 } }] });
  await assert.rejects(T.runMerge(cfg, tmp(), quiet), /tensor 'model\.layers\.1\.mlp\.up_proj\.weight' has shape \[31,16\] in '.*' but \[32,16\] in '.*base'/);
});

test('vocab mismatch: linear takes the common rows of embed_tokens / lm_head', async () => {
  const big = tmp();
  cpSync(join(root, 'ft_b'), big, { recursive: true });
  const ts = readAll(big);
  const tensors = new Map<string, T.Tensor>();
  for (const [k, v] of ts) {
    if (k === 'model.embed_tokens.weight' || k === 'lm_head.weight') {
      const grown = new Float32Array(34 * 16);
      grown.set(v.data);
      grown.fill(5, 32 * 16);
      tensors.set(k, T.fromArray(grown, [34, 16]));
    } else tensors.set(k, T.fromArray(v.data, v.shape));
  }
  T.writeSafetensors(join(big, 'model.safetensors'), tensors);
  const out = tmp();
  await T.runMerge(T.parseMergeConfig({ merge_method: 'linear', models: [{ model: big, parameters: { weight: 1 } }, { model: join(root, 'ft_c'), parameters: { weight: 3 } }] }), out, quiet);
  const got = readAll(out), b = readAll(join(root, 'ft_b')), c = readAll(join(root, 'ft_c'));
  const e = got.get('model.embed_tokens.weight')!;
  assert.deepEqual(e.shape, [32, 16]);
  const want = b.get('model.embed_tokens.weight')!.data.map((x, i) => (x + 3 * c.get('model.embed_tokens.weight')!.data[i]!) / 4);
  assert.ok(maxRelErr(e.data, want) < 1e-6);
  // a task method needs the model's vocab to cover the base's: slicing a bigger one is fine
  await T.runMerge(T.parseMergeConfig({ merge_method: 'task_arithmetic', base_model: join(root, 'base'), models: [{ model: big, parameters: { weight: 1 } }] }), tmp(), quiet);
});

test('LoRA adapter inputs are merged into their base first (base+adapter syntax)', async () => {
  const base = join(fixtures, 'models', 'llama'), adapter = join(fixtures, 'peft', 'llama_lora');
  const out = tmp();
  const cfg = T.parseMergeConfig({ merge_method: 'linear', models: [{ model: base, parameters: { weight: 1 } }, { model: `${base}+${adapter}`, parameters: { weight: 1 } }] });
  await T.runMerge(cfg, out, quiet);
  const model = T.loadModelFromDir(base, { warn: () => {} });
  T.loadAdapter(model, adapter).merge();
  const merged = model.stateDict();
  const got = readAll(out), orig = readAll(base);
  for (const k of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.self_attn.v_proj.weight', 'model.layers.0.mlp.up_proj.weight']) {
    const want = (merged.get(k)!.toArray() as Float32Array).map((x, i) => (x + orig.get(k)!.data[i]!) / 2);
    assert.ok(maxRelErr(got.get(k)!.data, want) < 1e-6, k);
  }
  model.dispose();
});

test('CLI: temper merge config.yaml OUT with --out_shard_size and --copy_tokenizer', async () => {
  const dir = tmp();
  const cfg = structuredClone(expected.slerp!.config) as { base_model: string; models: { model: string }[] };
  cfg.base_model = join(root, cfg.base_model);
  for (const m of cfg.models) m.model = join(root, m.model);
  writeFileSync(join(dir, 'slerp.yml'), JSON.stringify(cfg)); // JSON is YAML
  const out = join(dir, 'out');
  const stderr = process.stderr.write;
  process.stderr.write = () => true;
  try {
    assert.equal(await mergeCommand([join(dir, 'slerp.yml'), out, '--out_shard_size', '4KB', '--copy_tokenizer', '--seed', '3']), 0);
  } finally {
    process.stderr.write = stderr;
  }
  assert.ok(existsSync(join(out, 'model.safetensors.index.json')));
  assert.ok(existsSync(join(out, 'special_tokens_map.json')));
  const got = readAll(out);
  const want = expected.slerp!.tensors['model.layers.0.self_attn.q_proj.weight']!;
  assert.ok(maxRelErr(got.get('model.layers.0.self_attn.q_proj.weight')!.data, want) < 1e-5);
  await assert.rejects(mergeCommand([join(dir, 'slerp.yml')]), /expected CONFIG\.yaml OUTPUT_DIR/);
  await assert.rejects(mergeCommand([join(dir, 'slerp.yml'), out, '--dtype', 'F64']), /--dtype must be/);
});

/** A copy of a fixture model with a WordLevel tokenizer over the given tokens (id = position). */
function withTokenizer(name: string, tokens: string[]): string {
  const dir = tmp();
  cpSync(join(root, name), dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Whitespace' },
    post_processor: null, decoder: null, model: { type: 'WordLevel', vocab: Object.fromEntries(tokens.map((t, i) => [t, i])), unk_token: tokens[0] },
  }));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: tokens[0] }));
  return dir;
}

test('tokenizer_source union permutes embedding rows into the union vocabulary (mergekit rules)', async () => {
  const common = Array.from({ length: 30 }, (_, i) => `t${i}`);
  const a = withTokenizer('base', [...common, 't30', 't31']);
  const b = withTokenizer('ft_a', [...common, 'x30', 'x31']);
  const out = tmp();
  await T.runMerge(T.parseMergeConfig({
    merge_method: 'linear', tokenizer_source: 'union',
    models: [{ model: a, parameters: { weight: 0.5 } }, { model: b, parameters: { weight: 0.5 } }],
  }), out, quiet);
  const A = readAll(a), B = readAll(b), M = readAll(out);
  for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
    const ea = A.get(name)!.data, eb = B.get(name)!.data, em = M.get(name)!;
    assert.deepEqual(em.shape, [34, 16], name);
    const row = (x: Float32Array, r: number) => [...x.subarray(r * 16, (r + 1) * 16)];
    const close = (x: number[], y: number[]) => x.forEach((v, i) => assert.ok(Math.abs(v - y[i]!) < 1e-6, `${name}: ${v} vs ${y[i]}`));
    // Shared tokens average; a token only one model has takes that model's row in both.
    close(row(em.data, 5), row(ea, 5).map((v, i) => 0.5 * v + 0.5 * row(eb, 5)[i]!));
    close(row(em.data, 30), row(ea, 30)); // t30: only in a
    close(row(em.data, 33), row(eb, 31)); // x31: only in b, appended as id 33
  }
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).vocab_size, 34);
  const tok = await T.Tokenizer.fromDir(out);
  assert.deepEqual(tok.encode('t5 t30 x31', { addSpecialTokens: false }), [5, 30, 33]);
  const m = T.loadModelFromDir(out) as T.CausalLM;
  T.noGrad(() => T.scope(() => assert.deepEqual(m.forward({ inputIds: T.tensor([[5, 33]], { dtype: 'i32' }) }).logits.shape, [1, 2, 34])));
  m.dispose();
  // pad_to_multiple_of rounds the rows up with the mean row.
  const padded = tmp();
  await T.runMerge(T.parseMergeConfig({
    merge_method: 'linear', tokenizer: { source: 'union', pad_to_multiple_of: 8 },
    models: [{ model: a, parameters: { weight: 0.5 } }, { model: b, parameters: { weight: 0.5 } }],
  }), padded, quiet);
  assert.deepEqual(readAll(padded).get('model.embed_tokens.weight')!.shape, [40, 16]);
  // With a base: a token the base has is filled from the base for models without it, so its task vector there is 0.
  const ta = tmp();
  await T.runMerge(T.parseMergeConfig({
    merge_method: 'task_arithmetic', base_model: a, tokenizer_source: 'union', models: [{ model: b, parameters: { weight: 1 } }],
  }), ta, quiet);
  const E = readAll(ta).get('model.embed_tokens.weight')!.data, ea = A.get('model.embed_tokens.weight')!.data;
  for (let c = 0; c < 16; c++) assert.ok(Math.abs(E[30 * 16 + c]! - ea[30 * 16 + c]!) < 1e-6, 't30 stays the base row');
});
