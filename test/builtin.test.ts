// The built-in assets (assets/builtin/, made by scripts/make_builtin_*.mjs and
// scripts/train_builtin_tiny.mjs): the tokenizer round-trips text, builtin:tiny loads through
// loadModel and greedy-decodes sums it was measured to get right, the datasets parse and are
// arithmetically correct with test problems held out of train, and bad references fail
// with the list of what exists.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { TemperError } from '../src/tensor/index.js';
import { Tokenizer, applyChatTemplate, type ChatMessage } from '../src/text/index.js';
import { BUILTINS, listBuiltins, loadModel, resolveBuiltin, resolveBuiltinDataset, resolveModelRef } from '../src/io/index.js';
import { CausalLM } from '../src/models/index.js';
import { generate } from '../src/generate/index.js';
import { builtinCommand } from '../src/cli/builtin.js';

const tinyDir = resolveBuiltin('builtin:tiny')!;
const tok = await Tokenizer.fromDir(tinyDir);

function readJsonl<T>(path: string): T[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

test('builtin tokenizer: 512 tokens, the special tokens, exact round trips, one token per digit', () => {
  assert.equal(tok.vocabSize, 512);
  assert.deepEqual(
    ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|pad|>'].map((t) => tok.tokenToId(t)),
    [508, 509, 510, 511],
  );
  assert.equal(tok.eosTokenId, 508);
  assert.equal(tok.padTokenId, 511);
  assert.equal(tok.padTokenIsEos, false);
  assert.deepEqual([...tok.eosTokenIds].sort(), [508, 510]);
  for (const s of [
    '23 + 58 = 81\n41 - 17 = 24\n7 * 6 = 42\n',
    'Tom has 12 apples and buys 9 more. Now Tom has 21 apples.',
    "It's 5 o'clock!? {x: [1, 2.5]} — 100%",
    'Café naïve 你好 🙂👍🏽',
    '  leading\ttabs\t\tand\n\n\nnewlines   ',
    '',
  ]) {
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), s, JSON.stringify(s));
  }
  // Digits are never merged: "1234" is four tokens, each a byte token (id = byte value).
  assert.deepEqual(tok.encode('1234'), [0x31, 0x32, 0x33, 0x34]);
  assert.deepEqual(tok.encode('<|im_start|>user\n'), [509, ...tok.encode('user\n')]);
});

test('builtin tokenizer: the ChatML template renders and masks the assistant turn', () => {
  const messages: ChatMessage[] = [
    { role: 'user', content: 'What is 23 plus 58?' },
    { role: 'assistant', content: '23 + 58 = 81. Answer: 81' },
  ];
  const enc = applyChatTemplate(tok, messages);
  assert.equal(enc.text, '<|im_start|>user\nWhat is 23 plus 58?<|im_end|>\n<|im_start|>assistant\n23 + 58 = 81. Answer: 81<|im_end|>\n');
  assert.equal(tok.decode(enc.ids), enc.text);
  assert.equal(tok.decode(enc.ids.filter((_, i) => enc.assistantMask[i])), '23 + 58 = 81. Answer: 81<|im_end|>');
  const prompt = applyChatTemplate(tok, messages.slice(0, 1), { addGenerationPrompt: true });
  assert.equal(prompt.text, '<|im_start|>user\nWhat is 23 plus 58?<|im_end|>\n<|im_start|>assistant\n');
});

/** Problems builtin:tiny answered correctly in the measurement of assets/builtin/tiny/README.md. */
const KNOWN_CORRECT = ['38 + 48 = 86', '80 + 37 = 117', '69 - 18 = 51', '99 - 46 = 53', '7 * 6 = 42'];

test('builtin:tiny loads through loadModel with its config and greedy-decodes known sums', async () => {
  assert.equal(await resolveModelRef('builtin:tiny'), tinyDir);
  const model = await loadModel('builtin:tiny');
  try {
    assert.ok(model instanceof CausalLM);
    const c = model.config;
    assert.deepEqual(
      [c.modelType, c.vocabSize, c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.maxPositionEmbeddings, c.tieWordEmbeddings],
      ['llama', 512, 192, 512, 4, 6, 2, 32, 256, true],
    );
    assert.deepEqual([c.eosTokenId, c.padTokenId], [508, 511]);
    assert.ok(model.numParameters() > 1.5e6 && model.numParameters() < 2e6);
    const prompts = KNOWN_CORRECT.map((f) => tok.encode(f.slice(0, f.indexOf('=') + 1)));
    const out = generate(model, prompts, { temperature: 0, maxNewTokens: 5, tokenizer: tok, stopStrings: ['\n'] });
    KNOWN_CORRECT.forEach((f, i) => assert.equal(out[i]!.text!.trim(), f.split('= ')[1], `${f}: got ${JSON.stringify(out[i]!.text)}`));
  } finally {
    model.dispose();
  }
});

type Messages = { messages: ChatMessage[] };
const FACT = /^(\d+) ([-+*]) (\d+) = (\d+)$/;

/** The fact "a op b = c" of an assistant reply "a op b = c. Answer: c", checked for arithmetic. */
function checkedFact(reply: string): string {
  const m = /^(.*)\. Answer: (\d+)$/.exec(reply);
  assert.ok(m, `reply format: ${reply}`);
  const f = FACT.exec(m[1]!);
  assert.ok(f, `fact format: ${reply}`);
  const [a, b, c] = [Number(f[1]), Number(f[3]), Number(f[4])];
  assert.equal(f[2] === '+' ? a + b : f[2] === '-' ? a - b : a * b, c, reply);
  assert.equal(m[2], f[4], reply);
  return `${f[1]} ${f[2]} ${f[3]}`;
}

test('builtin:arith-chat and arith-pc: correct, same rows, test problems not in train, templates render', () => {
  const chat = { train: readJsonl<Messages>(resolveBuiltinDataset('builtin:arith-chat', 'train')), test: readJsonl<Messages>(resolveBuiltinDataset('builtin:arith-chat', 'test')) };
  assert.equal(chat.train.length, 2000);
  assert.equal(chat.test.length, 200);
  const keys = { train: new Set<string>(), test: new Set<string>() };
  for (const split of ['train', 'test'] as const) {
    for (const row of chat[split]) {
      assert.deepEqual(row.messages.map((m) => m.role), ['user', 'assistant']);
      keys[split].add(checkedFact(row.messages[1]!.content as string));
    }
    const pc = readJsonl<{ prompt: ChatMessage[]; completion: ChatMessage[] }>(resolveBuiltinDataset('builtin:arith-pc', split));
    assert.deepEqual(pc.map((r) => [...r.prompt, ...r.completion]), chat[split].map((r) => r.messages));
  }
  for (const k of keys.test) assert.ok(!keys.train.has(k), `test problem ${k} is in train`);
  for (const row of chat.test.slice(0, 20)) {
    const enc = applyChatTemplate(tok, row.messages);
    assert.equal(tok.decode(enc.ids.filter((_, i) => enc.assistantMask[i])), `${row.messages[1]!.content}<|im_end|>`);
  }
});

test('builtin:arith-text: documents of facts; the held-out test facts appear nowhere in the train sample', () => {
  const train = readJsonl<{ text: string }>(resolveBuiltinDataset('builtin:arith-text'));
  const testRows = readJsonl<{ text: string }>(resolveBuiltinDataset('builtin:arith-text', 'test'));
  assert.equal(testRows.length, 200);
  const facts = new Set(testRows.map((r) => (assert.match(r.text, FACT), r.text.slice(0, r.text.indexOf(' =')))));
  let seen = 0;
  for (const r of train) {
    assert.equal(typeof r.text, 'string');
    for (const m of r.text.matchAll(/(\d+) ([-+*]) (\d+) = (\d+)/g)) {
      seen++;
      assert.ok(!facts.has(`${m[1]} ${m[2]} ${m[3]}`), `held-out fact in train: ${m[0]}`);
    }
  }
  assert.ok(seen > 3000, `only ${seen} facts in the sample`);
});

test('builtin references: unknown names, wrong kinds and splits fail with what exists', async () => {
  const names = /builtin:tiny.*builtin:arith-chat/;
  assert.throws(() => resolveBuiltin('builtin:nope'), (e: Error) => e instanceof TemperError && /unknown built-in 'builtin:nope'/.test(e.message) && names.test(e.message));
  await assert.rejects(resolveModelRef('builtin:nope'), (e: Error) => e instanceof TemperError && /available models: builtin:tiny/.test(e.message));
  await assert.rejects(resolveModelRef('builtin:arith-chat'), /built-in dataset, not a model/);
  assert.throws(() => resolveBuiltinDataset('builtin:tiny'), /built-in model, not a dataset.*builtin:arith-chat/);
  assert.throws(() => resolveBuiltinDataset('builtin:arith-chat', 'validation'), /no split 'validation' \(splits: train, test\)/);
  assert.equal(resolveBuiltin('org/name'), null);
});

test('temper builtin lists every asset with its size', async () => {
  const original = process.stdout.write;
  let out = '';
  process.stdout.write = ((chunk: unknown) => ((out += String(chunk)), true)) as typeof process.stdout.write;
  let code: number;
  try {
    code = await builtinCommand([]);
  } finally {
    process.stdout.write = original;
  }
  assert.equal(code, 0);
  for (const b of BUILTINS) assert.match(out, new RegExp(`builtin:${b.name} +${b.kind} +[0-9.]+ [kM]?B`));
  assert.match(out, /train 2000, test 200/);
  const total = listBuiltins().reduce((n, b) => n + b.bytes, 0);
  assert.ok(total > 0 && total < 8e6, `built-in assets take ${total} bytes`);
});
