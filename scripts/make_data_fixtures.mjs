// Writes the dataset fixtures under test/fixtures/data/ (run once; the outputs are committed).
// Parquet files come from hyparquet-writer, a writer separate from the hyparquet reader under
// test; it is not a dependency of temper. To regenerate:
//   npm install --no-save hyparquet-writer && node scripts/make_data_fixtures.mjs
// (or point HYPARQUET_WRITER at its src/node.js). ZSTD pages need the `zstd` command.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync } from 'node:zlib';

const { parquetWriteFile } = await import(process.env.HYPARQUET_WRITER ?? 'hyparquet-writer');
const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'data');
const put = (rel, text) => {
  mkdirSync(dirname(join(out, rel)), { recursive: true });
  writeFileSync(join(out, rel), text);
};

// Conversations (shared by chat.jsonl and chat.parquet, so the test compares the two readers).
const chats = [
  { id: 1, score: 0.5, tags: ['math'], messages: [{ role: 'user', content: 'What is 2+2?' }, { role: 'assistant', content: '4' }] },
  { id: 2, score: null, tags: [], messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Capital of France?' }, { role: 'assistant', content: 'Paris.' }] },
  { id: 9007199254740993n, score: -1.25, tags: ['a', 'b'], messages: [{ role: 'user', content: 'Say "hi"\nplease' }, { role: 'assistant', content: 'hi' }] },
];
const jsonSafe = (r) => ({ ...r, id: typeof r.id === 'bigint' ? r.id.toString() : r.id });
put('chat.jsonl', chats.map((r) => JSON.stringify(jsonSafe(r))).join('\n') + '\n');
put('bad.jsonl', '{"text": "one"}\n\n{"text": "two"}\n{"text": "three",}\n');
put('not_object.jsonl', '{"text": "one"}\n["text"]\n');
put('prompts.json', JSON.stringify([{ prompt: 'The sky is', completion: ' blue.' }, { prompt: 'Grass is', completion: ' green.' }], null, 2) + '\n');
put('wrapped.json', JSON.stringify({ version: 1, data: [{ text: 'first' }, { text: 'second' }] }) + '\n');
put('lines.json', '{"text": "a json file"}\n{"text": "holding json lines"}\n');
put('empty.jsonl', '\n\n');
put('notes.txt', 'not a dataset\n');
// RFC 4180: CRLF records, quoted commas, doubled quotes, a newline inside quotes, an empty field.
put('table.csv', 'prompt,completion,note\r\n"Say, ""hi""",hello,\r\nplain,"two\nlines",x\r\n');
put('ragged.csv', 'a,b\n1,2\n3\n');
put('unterminated.csv', 'a,b\n1,2\n"open,3\n4,5\n');

// A folder with HF-style split files, plus files that are not data.
put('splits/README.md', '# not data\n');
put('splits/data/train-00000-of-00002.jsonl', '{"text": "t0"}\n{"text": "t1"}\n');
put('splits/data/train-00001-of-00002.jsonl', '{"text": "t2"}\n');
put('splits/data/test-00000-of-00001.jsonl', '{"text": "e0"}\n');
put('splits/dataset_infos.json', '{"default": {}}\n');

const str = (name) => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
// pyarrow's layout for list<struct<role, content>> and list<string>.
const schema = [
  { name: 'schema', num_children: 4 },
  { name: 'id', type: 'INT64', repetition_type: 'REQUIRED' },
  { name: 'score', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
  { name: 'tags', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  str('element'),
  { name: 'messages', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
  str('role'),
  str('content'),
];
parquetWriteFile({
  filename: join(out, 'chat.parquet'),
  schema,
  columnData: [
    { name: 'id', data: chats.map((r) => BigInt(r.id)) },
    { name: 'score', data: chats.map((r) => r.score) },
    { name: 'tags', data: chats.map((r) => r.tags) },
    { name: 'messages', data: chats.map((r) => r.messages) },
  ],
  rowGroupSize: 2, // two row groups, so rows are stitched across groups
});

const zstd = (input) => new Uint8Array(execFileSync('zstd', ['-q', '-c', '--no-check'], { input }));
const texts = ['alpha', 'beta', 'gamma', 'delta'];
for (const [codec, compress] of [['GZIP', (b) => new Uint8Array(gzipSync(b))], ['ZSTD', zstd], ['BROTLI', (b) => new Uint8Array(brotliCompressSync(b))]]) {
  parquetWriteFile({
    filename: join(out, `text_${codec.toLowerCase()}.parquet`),
    columnData: [{ name: 'text', data: texts, type: 'STRING' }],
    codec,
    compressors: { [codec]: compress },
  });
}
console.log(`wrote fixtures to ${out}`);
