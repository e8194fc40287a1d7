#!/usr/bin/env node
// Deterministic generator of temper's built-in arithmetic corpus and datasets (seeded PRNG, no
// network): the pre-training text of builtin:tiny, and the builtin:arith-* datasets the demo
// fine-tunes on. Not a benchmark: numbers are small so a ~2M-parameter model can learn them.
//
//   base text    "23 + 58 = 81", "41 - 17 = 24", "7 * 6 = 42", "23 plus 58 is 81.", and word
//                problems "Tom has 12 apples and buys 9 more. Now Tom has 21 apples."
//                (a + b and a - b with 0 <= b <= a <= 99, multiplication tables 1..12); with
//                `qa`, also questions followed by their fact: "What is 23 plus 58? 23 + 58 = 81."
//   chat format  user "What is 23 plus 58?" -> assistant "23 + 58 = 81. Answer: 81": the content
//                is in the base corpus, the format (ChatML turns, "Answer: N") never is.
//   held out     200 sums/differences (HELD_OUT) appear in no pre-training text and no train
//                split; 24 products are kept out of the chat train split (all 144 are in the
//                base corpus: a table cannot be generalized to, only memorized).
//
// Writes assets/builtin/datasets/:
//   arith-text/{train,test}.jsonl  {"text"}: 1000 base documents (qa = QA_FRACTION); test = the held-out facts
//   arith-chat/{train,test}.jsonl  {"messages": [user, assistant]} 2000 / 200 rows
//   arith-pc/{train,test}.jsonl    {"prompt": [user], "completion": [assistant]} same rows
// Usage: node scripts/make_builtin_data.mjs   (the other builtin scripts import its functions)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DATA_DIR = join(ROOT, 'assets/builtin/datasets');

/** mulberry32: a small seeded stream of floats in [0, 1). */
export function makeRng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const int = (rng, lo, hi) => lo + Math.floor(rng() * (hi - lo + 1)); // inclusive
const pick = (rng, xs) => xs[Math.floor(rng() * xs.length)];

export const OPS = {
  add: { sym: '+', word: 'plus', apply: (a, b) => a + b },
  sub: { sym: '-', word: 'minus', apply: (a, b) => a - b },
  mul: { sym: '*', word: 'times', apply: (a, b) => a * b },
};

/** A problem {op, a, b, c}: a + b and a - b with 0 <= b <= a <= 99 for '-', a * b within 1..12. */
function sampleProblem(rng, op) {
  let a, b;
  if (op === 'add') [a, b] = [int(rng, 0, 99), int(rng, 0, 99)];
  else if (op === 'sub') {
    a = int(rng, 0, 99);
    b = int(rng, 0, a);
  } else [a, b] = [int(rng, 1, 12), int(rng, 1, 12)];
  return { op, a, b, c: OPS[op].apply(a, b) };
}
export const keyOf = (p) => `${p.a} ${OPS[p.op].sym} ${p.b}`;
export const factText = (p) => `${keyOf(p)} = ${p.c}`;

/** The held-out problems, from their own seed: 100 sums, 100 differences, 24 products (chat only). */
function heldOut() {
  const rng = makeRng(7001);
  const take = (op, n) => {
    const m = new Map();
    while (m.size < n) {
      const p = sampleProblem(rng, op);
      m.set(keyOf(p), p);
    }
    return [...m.values()];
  };
  return { add: take('add', 100), sub: take('sub', 100), mul: take('mul', 24) };
}
export const HELD_OUT = heldOut();
/** Keys never in the base corpus (sums and differences only). */
const BASE_EXCLUDED = new Set([...HELD_OUT.add, ...HELD_OUT.sub].map(keyOf));
/** Keys never in a chat/pc train split. */
const CHAT_EXCLUDED = new Set([...BASE_EXCLUDED, ...HELD_OUT.mul.map(keyOf)]);

const NAMES = ['Tom', 'Anna', 'Ben', 'Mia', 'Sam', 'Lily', 'Max', 'Emma', 'Leo', 'Zoe', 'Jack', 'Ella', 'Noah', 'Ruby', 'Owen', 'Ivy'];
const THINGS = ['apples', 'books', 'coins', 'pens', 'cards', 'stickers', 'marbles', 'shells', 'cookies', 'stamps'];
const BOXES = ['bags', 'boxes', 'jars', 'rows', 'packs', 'baskets'];

function drawProblem(rng, excluded, weights = [0.4, 0.35, 0.25]) {
  const r = rng();
  const op = r < weights[0] ? 'add' : r < weights[0] + weights[1] ? 'sub' : 'mul';
  for (;;) {
    const p = sampleProblem(rng, op);
    if (!excluded.has(keyOf(p))) return p;
  }
}

/** A word problem with its question part split off: {story, question, answerSentence}. */
function wordProblem(rng, p) {
  const name = pick(rng, NAMES), thing = pick(rng, THINGS);
  if (p.op === 'add') {
    const verb = pick(rng, [['buys', 'more'], ['finds', 'more'], ['gets', 'more']]);
    return {
      story: `${name} has ${p.a} ${thing} and ${verb[0]} ${p.b} ${verb[1]}.`,
      question: `How many ${thing} does ${name} have now?`,
      answer: `Now ${name} has ${p.c} ${thing}.`,
    };
  }
  if (p.op === 'sub') {
    const verb = pick(rng, ['gives away', 'loses', 'sells']);
    return {
      story: `${name} has ${p.a} ${thing} and ${verb} ${p.b}.`,
      question: `How many ${thing} does ${name} have now?`,
      answer: `Now ${name} has ${p.c} ${thing}.`,
    };
  }
  const box = pick(rng, BOXES);
  return {
    story: `There are ${p.a} ${box} with ${p.b} ${thing} in each.`,
    question: `How many ${thing} are there?`,
    answer: `That makes ${p.c} ${thing}.`,
  };
}

/**
 * One pre-training document: 3 to 8 lines, each a symbolic fact (70%), a worded fact (15%) or
 * a word problem (15%), newline-terminated. Never contains a held-out sum or difference.
 * With `qa` > 0, that fraction of lines is instead a question in the chat split's phrasings
 * followed by its fact ("What is 23 plus 58? 23 + 58 = 81."): the base model then knows how to
 * restate a question as a fact, and only the chat format is new to it.
 */
export function baseDocument(rng, { qa = 0 } = {}) {
  const lines = [];
  const n = int(rng, 3, 8);
  for (let i = 0; i < n; i++) {
    const p = drawProblem(rng, BASE_EXCLUDED);
    if (qa > 0 && rng() < qa) {
      lines.push(`${chatQuestion(rng, p)} ${factText(p)}.`);
      continue;
    }
    const r = rng();
    if (r < 0.7) lines.push(factText(p));
    else if (r < 0.85) lines.push(`${p.a} ${OPS[p.op].word} ${p.b} is ${p.c}.`);
    else {
      const w = wordProblem(rng, p);
      lines.push(`${w.story} ${w.answer}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** A question for a problem, in one of a few phrasings (or a word problem). */
function chatQuestion(rng, p) {
  const r = rng();
  if (r < 0.45) return `What is ${p.a} ${OPS[p.op].word} ${p.b}?`;
  if (r < 0.6) return `Compute ${keyOf(p)}.`;
  if (r < 0.75) return `How much is ${keyOf(p)}?`;
  const w = wordProblem(rng, p);
  return `${w.story} ${w.question}`;
}

/** A chat row: the question, and the fact then "Answer: c". */
function chatRow(rng, p) {
  const question = chatQuestion(rng, p);
  return [
    { role: 'user', content: question },
    { role: 'assistant', content: `${factText(p)}. Answer: ${p.c}` },
  ];
}

/** Chat rows: train (2000 distinct questions, no held-out problem) and test (200 held-out problems). */
export function chatSplits() {
  const rng = makeRng(4242);
  const train = [];
  const seen = new Set();
  while (train.length < 2000) {
    const m = chatRow(rng, drawProblem(rng, CHAT_EXCLUDED));
    const k = m[0].content;
    if (seen.has(k)) continue;
    seen.add(k);
    train.push(m);
  }
  // 88 sums + 88 differences + 24 products = 200 test rows, every problem held out of training.
  const testProblems = [...HELD_OUT.add.slice(0, 88), ...HELD_OUT.sub.slice(0, 88), ...HELD_OUT.mul];
  const test = testProblems.map((p) => chatRow(rng, p));
  return { train, test };
}

/** Share of question-then-fact lines in the last pre-training run of builtin:tiny (see its README). */
export const QA_FRACTION = 0.5;

/** A sample of the base corpus as last trained on (1000 documents) and the held-out facts, as {"text"} rows. */
export function textSplits() {
  const rng = makeRng(1);
  const train = Array.from({ length: 1000 }, () => baseDocument(rng, { qa: QA_FRACTION }));
  const test = [...HELD_OUT.add, ...HELD_OUT.sub].map(factText);
  return { train, test };
}

function writeJsonl(path, rows) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

function main() {
  const text = textSplits();
  writeJsonl(join(DATA_DIR, 'arith-text/train.jsonl'), text.train.map((t) => ({ text: t })));
  writeJsonl(join(DATA_DIR, 'arith-text/test.jsonl'), text.test.map((t) => ({ text: t })));
  const chat = chatSplits();
  for (const split of ['train', 'test']) {
    writeJsonl(join(DATA_DIR, `arith-chat/${split}.jsonl`), chat[split].map((m) => ({ messages: m })));
    writeJsonl(join(DATA_DIR, `arith-pc/${split}.jsonl`), chat[split].map((m) => ({ prompt: [m[0]], completion: [m[1]] })));
  }
  process.stdout.write(`wrote ${DATA_DIR}: arith-text ${text.train.length}/${text.test.length}, arith-chat and arith-pc ${chat.train.length}/${chat.test.length}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
