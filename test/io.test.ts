// safetensors and sharded checkpoints: reading a file made by an independent writer
// (scripts/make_safetensors_fixture.py), the byte layout temper writes, half-float
// conversion, atomic writes, sharding with an index, and errors on corrupt files.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';

const fixtures = fileURLToPath(new URL('../../test/fixtures/io/', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-io-'));

test('reads every dtype of a file written by an independent writer', () => T.scope(() => {
  const expected = JSON.parse(readFileSync(join(fixtures, 'reference.expected.json'), 'utf8')) as Record<string, { shape: number[]; values: number[] }>;
  using f = T.SafetensorsFile.open(join(fixtures, 'reference.safetensors'));
  assert.equal(f.metadata.format, 'pt');
  assert.deepEqual(f.keys().sort(), Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const t = f.tensor(name);
    assert.deepEqual(t.shape, e.shape, name);
    assert.deepEqual([...t.toArray()], e.values, name);
  }
}));

test('writes the HF layout: sorted entries, padded header, format metadata, no trailing bytes', () => T.scope(() => {
  const dir = tmp();
  const path = join(dir, 'x.safetensors');
  T.writeSafetensors(path, { 'z.weight': T.tensor([1, 2, 3]), 'a.ids': T.tensor([7], { dtype: 'i32' }), 'm.bias': T.tensor([0.5]).to('bf16') });
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  assert.deepEqual(header.__metadata__, { format: 'pt' });
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__') as [string, { dtype: string; data_offsets: number[] }][];
  entries.sort((a, b) => a[1].data_offsets[0]! - b[1].data_offsets[0]!);
  assert.deepEqual(entries.map(([k, v]) => `${k}:${v.dtype}`), ['a.ids:I32', 'z.weight:F32', 'm.bias:BF16']);
  assert.equal(8 + n + entries[entries.length - 1]![1].data_offsets[1]!, buf.length);
  assert.deepEqual(readdirSync(dir), ['x.safetensors']); // no temp file left behind
  using f = T.SafetensorsFile.open(path);
  assert.deepEqual([...f.tensor('z.weight').toArray()], [1, 2, 3]);
  assert.deepEqual([...f.tensor('m.bias').toArray()], [0.5]);
}));

test('F16 and BF16 output round-trip; every half value converts exactly both ways', () => T.scope(() => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = T.f16ToF32(all);
  const back = T.f32ToF16(f);
  for (let i = 0; i < 65536; i++) if (!Number.isNaN(f[i]!)) assert.equal(back[i], i, `half 0x${i.toString(16)}`);
  // Ties round to even: 1 + 2^-11 sits halfway between 1 and 1 + 2^-10.
  assert.deepEqual([...T.f32ToF16(Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, 1e-9))], [0x3c00, 0x3c02, 0x7c00, 0]);
  // temper's F16 bytes for the reference values equal Python's struct 'e' packing.
  using ref = T.SafetensorsFile.open(join(fixtures, 'reference.safetensors'));
  const dir = tmp();
  T.writeSafetensors(join(dir, 'h.safetensors'), { 'c.f16': ref.tensor('c.f16') }, { dtype: 'F16' });
  using mine = T.SafetensorsFile.open(join(dir, 'h.safetensors'));
  assert.deepEqual(mine.readBytes('c.f16'), ref.readBytes('c.f16'));
}));

test('corrupt files get errors naming the file and the problem', () => {
  const dir = tmp();
  const good = readFileSync(join(fixtures, 'reference.safetensors'));
  const write = (name: string, b: Buffer) => (writeFileSync(join(dir, name), b), join(dir, name));
  assert.throws(() => T.SafetensorsFile.open(write('trunc.safetensors', good.subarray(0, good.length - 3))), /trunc\.safetensors: tensor '.*' ends at byte \d+ of a \d+-byte buffer \(truncated file\?\)/);
  const lying = Buffer.from(good);
  lying.writeBigUInt64LE(BigInt(good.length), 0);
  assert.throws(() => T.SafetensorsFile.open(write('lying.safetensors', lying)), /lying\.safetensors: header claims \d+ bytes/);
  assert.throws(() => T.SafetensorsFile.open(write('tiny.safetensors', Buffer.from([1, 2]))), /too short/);
  const n = Number(good.readBigUInt64LE(0));
  const noBrace = Buffer.from(good);
  noBrace.write('x', 8);
  assert.throws(() => T.SafetensorsFile.open(write('brace.safetensors', noBrace)), /brace\.safetensors: header does not start with "\{"/);
  const badJson = Buffer.from(good);
  badJson.write('}', 9); // '{}' followed by the rest of the header
  assert.throws(() => T.SafetensorsFile.open(write('json.safetensors', badJson)), /json\.safetensors: header is not valid JSON/);
  const header = JSON.parse(good.subarray(8, 8 + n).toString('utf8'));
  header['a.f32'].shape = [3, 3];
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(text.length));
  const wrongShape = Buffer.concat([size, Buffer.from(text), good.subarray(8 + n)]);
  assert.throws(() => T.SafetensorsFile.open(write('shape.safetensors', wrongShape)), /tensor 'a\.f32' \(F32 \[3,3\]\) needs 36 bytes but data_offsets span 24/);
  assert.throws(() => T.SafetensorsFile.open(join(dir, 'missing.safetensors')), /missing\.safetensors: cannot open \(ENOENT\)/);
  using f = T.SafetensorsFile.open(join(fixtures, 'reference.safetensors'));
  assert.throws(() => f.tensor('nope'), /no tensor named 'nope'/);
});

test('a failed write leaves the previous file intact', () => T.scope(() => {
  const dir = tmp();
  const path = join(dir, 'w.safetensors');
  T.writeSafetensors(path, { a: T.tensor([1, 2]) });
  const before = readFileSync(path);
  const dead = T.tensor([3]);
  dead.dispose();
  assert.throws(() => T.writeSafetensors(path, { a: T.tensor([9, 9]), b: dead }), /used after dispose/);
  assert.deepEqual(readFileSync(path), before);
  assert.deepEqual(readdirSync(dir), ['w.safetensors']);
}));

test('sharded checkpoints: greedy shards in key order, index, reading back, re-saving as one file', () => T.scope(() => {
  const dir = tmp();
  const tensors = new Map<string, T.Tensor>([
    ['model.embed.weight', T.randn([10, 10], { generator: new T.Generator(1) })], // 400 B
    ['model.layers.0.w', T.randn([50], { generator: new T.Generator(2) })], // 200 B
    ['model.layers.1.w', T.randn([50], { generator: new T.Generator(3) })], // 200 B
    ['model.norm.weight', T.ones([30])], // 120 B: 400 + 120 > 500 starts a third shard
  ]);
  const r = T.writeWeights(dir, tensors, { maxShardSize: 500 });
  assert.deepEqual(r.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(index.metadata.total_size, 920);
  assert.deepEqual(index.weight_map, {
    'model.embed.weight': 'model-00001-of-00003.safetensors',
    'model.layers.0.w': 'model-00002-of-00003.safetensors',
    'model.layers.1.w': 'model-00002-of-00003.safetensors',
    'model.norm.weight': 'model-00003-of-00003.safetensors',
  });
  {
    using reader = new T.WeightsReader(dir);
    for (const [name, t] of tensors) assert.deepEqual([...reader.tensor(name).toArray()], [...t.toArray()], name);
    assert.throws(() => reader.tensor('lm_head.weight'), /checkpoint has no tensor 'lm_head.weight'/);
  }
  T.writeWeights(dir, tensors, { maxShardSize: '5GB', dtype: 'BF16' });
  assert.deepEqual(readdirSync(dir).sort(), ['model.safetensors']);
  using single = new T.WeightsReader(dir);
  assert.equal(single.keys().length, 4);
  assert.equal(T.parseSize('5GB'), 5e9);
  assert.equal(T.parseSize('2GiB'), 2 * 2 ** 30);
  const broken = tmp();
  copyFileSync(join(fixtures, 'reference.safetensors'), join(broken, 'model-00001-of-00002.safetensors'));
  writeFileSync(join(broken, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
  assert.throws(() => new T.WeightsReader(broken), /names shard 'model-00002-of-00002.safetensors', which is missing/);
}));
