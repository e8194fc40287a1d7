// Dataset loading (src/io/dataset.ts) on committed fixtures (scripts/make_data_fixtures.mjs; the
// parquet files come from hyparquet-writer and the zstd CLI, not from the reader under test):
// every file format, origins for error messages, folder split selection, and a hub id resolved
// offline from a pre-populated HF cache.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DatasetRows, loadDataset, parseCsv, selectSplitFiles } from '../src/io/index.js';

const data = fileURLToPath(new URL('../../test/fixtures/data/', import.meta.url));
const at = (f: string) => join(data, f);

const CHATS = [
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: '4' },
];

test('jsonl: rows as objects, origins name file and line', async () => {
  const ds = await loadDataset(at('chat.jsonl'));
  assert.equal(ds.length, 3);
  assert.deepEqual(ds.rows[0]!.messages, CHATS);
  assert.deepEqual(ds.columns(), ['id', 'score', 'tags', 'messages']);
  assert.equal(ds.origin(2), `${at('chat.jsonl')} line 3`);
  assert.deepEqual(ds.files, [at('chat.jsonl')]);
});

test('parquet: nested lists and structs intact, int64 as numbers when exact, equal to the jsonl rows', async () => {
  const pq = await loadDataset(at('chat.parquet'));
  const js = await loadDataset(at('chat.jsonl'));
  assert.equal(pq.length, 3);
  for (let i = 0; i < 3; i++) {
    for (const k of ['messages', 'tags', 'score']) assert.deepEqual(pq.rows[i]![k], js.rows[i]![k], `row ${i} ${k}`);
  }
  assert.equal(pq.rows[0]!.id, 1);
  assert.equal(pq.rows[2]!.id, 9007199254740993n, 'beyond 2^53 stays bigint');
  assert.equal((pq.rows[2]!.messages as { content: string }[])[0]!.content, 'Say "hi"\nplease');
  assert.equal(pq.origin(2), `${at('chat.parquet')} row 3`, 'rows stitched across the two row groups');
  for (const codec of ['gzip', 'zstd', 'brotli']) {
    const ds = await loadDataset(at(`text_${codec}.parquet`));
    assert.deepEqual(ds.rows.map((r) => r.text), ['alpha', 'beta', 'gamma', 'delta'], codec);
  }
});

test('json: an array, a {"data": [...]} wrapper, and JSON Lines saved as .json', async () => {
  const arr = await loadDataset(at('prompts.json'));
  assert.deepEqual(arr.rows[1], { prompt: 'Grass is', completion: ' green.' });
  assert.equal(arr.origin(1), `${at('prompts.json')} row 2`);
  assert.deepEqual((await loadDataset(at('wrapped.json'))).rows.map((r) => r.text), ['first', 'second']);
  const lines = await loadDataset(at('lines.json'));
  assert.deepEqual(lines.rows.map((r) => r.text), ['a json file', 'holding json lines']);
  assert.equal(lines.origin(1), `${at('lines.json')} line 2`);
});

test('csv: RFC 4180 quoting, CRLF, newlines in quotes; origins are the line a record starts on', async () => {
  const ds = await loadDataset(at('table.csv'));
  assert.deepEqual(ds.rows, [
    { prompt: 'Say, "hi"', completion: 'hello', note: '' },
    { prompt: 'plain', completion: 'two\nlines', note: 'x' },
  ]);
  assert.equal(ds.origin(0), `${at('table.csv')} line 2`);
  assert.equal(ds.origin(1), `${at('table.csv')} line 3`);
  // No final newline, a quoted empty field, blank lines, a lone-CR-free LF file.
  const p = parseCsv('a,b\n\n"",x\n1,"2\n\n3"\n4,5', 'm.csv');
  assert.deepEqual(p.rows, [{ a: '', b: 'x' }, { a: '1', b: '2\n\n3' }, { a: '4', b: '5' }]);
  assert.deepEqual(p.positions, [3, 4, 7]);
  assert.deepEqual(parseCsv('\uFEFFa\n', 'h.csv').rows, []);
  assert.throws(() => parseCsv('a,a\n1,2\n', 'd.csv'), /d\.csv line 1: column 'a' appears twice/);
  assert.throws(() => parseCsv('a,b\n"x"y,2\n', 'q.csv'), /q\.csv line 2: unexpected 'y' after a closing quote/);
});

test('errors name the file and line', async () => {
  await assert.rejects(loadDataset(at('bad.jsonl')), (e: Error) => e.message.startsWith(`${at('bad.jsonl')} line 4: `) && /JSON|property/.test(e.message));
  await assert.rejects(loadDataset(at('not_object.jsonl')), { message: `${at('not_object.jsonl')} line 2: expected a JSON object, got an array` });
  await assert.rejects(loadDataset(at('ragged.csv')), { message: `${at('ragged.csv')} line 3: 1 fields, but the header has 2 (a, b)` });
  await assert.rejects(loadDataset(at('unterminated.csv')), { message: `${at('unterminated.csv')} line 3: quoted field never closed` });
  await assert.rejects(loadDataset(at('notes.txt')), /notes\.txt: unknown dataset file type '\.txt'/);
  await assert.rejects(loadDataset(at('missing.jsonl')), /missing\.jsonl: no such file or folder$/);
  await assert.rejects(loadDataset('no such thing'), /no such file or folder, and not a hub dataset id/);
  await assert.rejects(loadDataset(at('empty.jsonl')), /empty\.jsonl: the dataset has no rows/);
  const dir = mkdtempSync(join(tmpdir(), 'temper-data-'));
  writeFileSync(join(dir, 'broken.json'), '[{"a": 1},\n {"b": 2,}\n]');
  await assert.rejects(loadDataset(join(dir, 'broken.json')), new RegExp(`broken\\.json line 2: `));
  writeFileSync(join(dir, 'scalar.json'), '42');
  await assert.rejects(loadDataset(join(dir, 'scalar.json')), /expected a JSON array of objects/);
  rmSync(dir, { recursive: true });
});

test('folder: the split by file name, files sorted and concatenated; metadata files ignored', async () => {
  const dir = at('splits');
  const train = await loadDataset(dir);
  assert.deepEqual(train.rows.map((r) => r.text), ['t0', 't1', 't2']);
  assert.equal(train.origin(2), `${join(dir, 'data', 'train-00001-of-00002.jsonl')} line 1`);
  const testSplit = await loadDataset(dir, { split: 'test' });
  assert.deepEqual(testSplit.rows.map((r) => r.text), ['e0']);
  await assert.rejects(loadDataset(dir, { split: 'validation' }), /no data files for split 'validation' \(data files: data\/test-00000-of-00001\.jsonl, data\/train-00000/);
});

test('selectSplitFiles: HF naming conventions, synonyms, configurations', () => {
  const hf = ['README.md', 'data/test-00000-of-00001.parquet', 'data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet'];
  assert.deepEqual(selectSplitFiles(hf, 'train'), hf.slice(2));
  assert.deepEqual(selectSplitFiles(['a.jsonl', 'b.jsonl'], 'train'), ['a.jsonl', 'b.jsonl'], 'no split names: all files are train');
  assert.deepEqual(selectSplitFiles(['x/a.jsonl', 'y/b.jsonl'], 'train'), ['x/a.jsonl', 'y/b.jsonl'], 'shards in subfolders');
  assert.throws(() => selectSplitFiles(['a.jsonl'], 'test'), /no data files for split 'test'/);
  assert.deepEqual(selectSplitFiles(['dev.jsonl', 'train.jsonl', 'devices.jsonl'], 'validation'), ['dev.jsonl']);
  assert.deepEqual(selectSplitFiles(['my_eval.csv', 'my_train.csv', 'contest.csv'], 'test'), ['my_eval.csv']);
  const configs = ['en/train/0000.parquet', 'fr/train/0000.parquet', 'fr/test/0000.parquet'];
  assert.throws(() => selectSplitFiles(configs, 'train'), /several configurations \(en, fr\); pick one with name/);
  assert.deepEqual(selectSplitFiles(configs, 'train', 'fr'), ['fr/train/0000.parquet']);
  assert.deepEqual(selectSplitFiles(['train-00000-of-00001.parquet', 'dataset_infos.json'], 'train'), ['train-00000-of-00001.parquet']);
});

test('a hub dataset id resolves offline from the HF cache layout', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'temper-hub-'));
  const commit = 'b'.repeat(40);
  const repoDir = join(cache, 'datasets--org--chat');
  const snap = join(repoDir, 'snapshots', commit);
  mkdirSync(join(snap, 'data'), { recursive: true });
  copyFileSync(at('chat.parquet'), join(snap, 'data', 'train-00000-of-00001.parquet'));
  copyFileSync(at('prompts.json'), join(snap, 'data', 'test-00000-of-00001.json'));
  mkdirSync(join(repoDir, 'refs'));
  writeFileSync(join(repoDir, 'refs', 'main'), commit);
  const ds = await loadDataset('org/chat', { cacheDir: cache });
  assert.equal(ds.length, 3);
  assert.deepEqual(ds.rows[0]!.messages, CHATS);
  assert.equal(ds.origin(0), 'org/chat/data/train-00000-of-00001.parquet row 1');
  const t = await loadDataset('org/chat', { cacheDir: cache, split: 'test', revision: commit });
  assert.deepEqual(t.rows.map((r) => r.prompt), ['The sky is', 'Grass is']);
  // A split missing from the cache, or with a shard missing, is not read offline.
  copyFileSync(at('chat.parquet'), join(snap, 'data', 'validation-00001-of-00002.parquet'));
  const saved = process.env.HF_HUB_OFFLINE;
  process.env.HF_HUB_OFFLINE = '1';
  try {
    await assert.rejects(loadDataset('org/chat', { cacheDir: cache, split: 'validation' }), /dataset 'org\/chat' \(revision main\): split 'validation' is not in the cache .* HF_HUB_OFFLINE=1/);
    await assert.rejects(loadDataset('org/other', { cacheDir: cache }), /dataset 'org\/other' \(revision main\): split 'train' is not in the cache/);
  } finally {
    if (saved === undefined) delete process.env.HF_HUB_OFFLINE;
    else process.env.HF_HUB_OFFLINE = saved;
  }
  rmSync(cache, { recursive: true });
});

test('DatasetRows: in-memory rows, select keeps origins, bad indices throw', () => {
  const ds = DatasetRows.fromRows([{ text: 'a' }, { text: 'b' }, { other: 1 }], 'mem');
  assert.equal(ds.origin(1), 'mem row 2');
  assert.deepEqual(ds.columns(), ['text', 'other']);
  const sel = ds.select([2, 0]);
  assert.deepEqual(sel.rows, [{ other: 1 }, { text: 'a' }]);
  assert.equal(sel.origin(0), 'mem row 3');
  assert.throws(() => ds.origin(3), /row index 3 outside \[0, 3\)/);
  assert.throws(() => ds.select([5]), /row index 5/);
});
