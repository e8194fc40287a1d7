#!/usr/bin/env node
// Pre-trains builtin:tiny, temper's offline demo base model: a 4-layer Llama (C=192, 6 heads,
// 2 KV heads, tied embeddings, V=512) from a seeded random init, on the arithmetic corpus of
// make_builtin_data.mjs, with temper itself on the CPU. Then measures greedy exact-match on
// the held-out facts and writes assets/builtin/tiny/ (BF16 weights, configs, README.md).
// Not a trainer API: a plain loop (packed rows, AdamW, warmup + cosine, clipping), so the
// recipe is visible in one place. The data and init are seeded; the number of steps is
// --steps or what fits in --max-minutes, whichever is fewer (the lr schedule follows it).
//
// Usage (from the package root, after `npm run build`, make_builtin_data.mjs and
// make_builtin_tokenizer.mjs):
//   node scripts/train_builtin_tiny.mjs [--steps 3000] [--max-minutes 8] [--batch 16] [--lr 3e-3] [--qa 0]
//   node scripts/train_builtin_tiny.mjs --init-from assets/builtin/tiny --seed 1 …   (continue
//       training a saved model: fresh optimizer and schedule, another data stream)
//   node scripts/train_builtin_tiny.mjs --eval-only      (re-measure the saved model, rewrite README.md)
// Each run is recorded in assets/builtin/tiny/training.json (runs of a model it continued
// included), from which README.md is written.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  Tokenizer, adamwStep, applyChatTemplate, clipGradNorm, createModel, fromArray, generate, keep, loadModelFromDir,
  parseConfig, randomInit, saveModel, scope, zerosLike,
} from '../dist/src/index.js';
import { ROOT, HELD_OUT, baseDocument, chatSplits, factText, keyOf, makeRng } from './make_builtin_data.mjs';

const OUT = join(ROOT, 'assets/builtin/tiny');
const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '3000' },
    'max-minutes': { type: 'string', default: '8' },
    batch: { type: 'string', default: '16' },
    seq: { type: 'string', default: '128' },
    lr: { type: 'string', default: '3e-3' },
    warmup: { type: 'string', default: '100' },
    seed: { type: 'string', default: '0' },
    qa: { type: 'string', default: '0' },
    'init-from': { type: 'string' },
    'eval-only': { type: 'boolean', default: false },
  },
});
const COMMAND = `node scripts/train_builtin_tiny.mjs ${process.argv.slice(2).join(' ')}`.trim();
const STEPS = Number(args.steps), B = Number(args.batch), T = Number(args.seq), LR = Number(args.lr);
const WARMUP = Number(args.warmup), MAX_MS = Number(args['max-minutes']) * 60_000, SEED = Number(args.seed), QA = Number(args.qa);

const tok = await Tokenizer.fromDir(OUT);
const EOT = tok.tokenToId('<|endoftext|>'), IM_END = tok.tokenToId('<|im_end|>'), PAD = tok.tokenToId('<|pad|>');

const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: tok.vocabSize,
  hidden_size: 192,
  intermediate_size: 512,
  num_hidden_layers: 4,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  head_dim: 32,
  hidden_act: 'silu',
  max_position_embeddings: 256,
  rope_theta: 10000,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
  attention_bias: false,
  attention_dropout: 0,
  mlp_bias: false,
  initializer_range: 0.02,
  bos_token_id: EOT,
  eos_token_id: EOT,
  pad_token_id: PAD,
  use_cache: true,
};
const GENERATION_CONFIG = { bos_token_id: EOT, eos_token_id: [EOT, IM_END], pad_token_id: PAD };

/**
 * Packed rows of T tokens: documents (each + <|endoftext|>) back to back, the last one of a row
 * cut off at the row's end. docIds keep attention inside a document; the label of each
 * document's first token (after the row's first) is -100, so nothing is scored across documents.
 */
function* batches(rng) {
  for (;;) {
    const ids = new Int32Array(B * T), labels = new Int32Array(B * T), docs = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      let t = 0, d = 0;
      while (t < T) {
        const doc = [...tok.encode(baseDocument(rng, { qa: QA })), EOT];
        const n = Math.min(doc.length, T - t);
        for (let i = 0; i < n; i++) {
          const at = b * T + t + i;
          ids[at] = doc[i];
          labels[at] = i === 0 && t > 0 ? -100 : doc[i];
          docs[at] = d;
        }
        t += n;
        d++;
      }
    }
    yield { ids, labels, docs };
  }
}

/**
 * Linear warmup, then cosine decay to 10% of LR. Progress is the larger of the step fraction
 * and the time fraction of --max-minutes, so on a busy machine the decay still completes.
 */
function lrAt(step, elapsedMs) {
  if (step <= WARMUP) return (LR * step) / WARMUP;
  const p = Math.min(1, Math.max((step - WARMUP) / Math.max(1, STEPS - WARMUP), elapsedMs / MAX_MS));
  return 0.1 * LR + 0.45 * LR * (1 + Math.cos(Math.PI * p));
}

/** Greedy completions of `prompts` (ids), batched. */
function complete(model, prompts, maxNewTokens, stopTokenIds) {
  const out = [];
  for (let i = 0; i < prompts.length; i += 64) {
    out.push(...generate(model, prompts.slice(i, i + 64), { temperature: 0, maxNewTokens, tokenizer: tok, stopTokenIds }).map((g) => g.text));
  }
  return out;
}

/** Exact match of the greedy continuation of "a op b =" against " c\n" (first line, trimmed). */
function factAccuracy(model, problems) {
  const texts = complete(model, problems.map((p) => tok.encode(`${keyOf(p)} =`)), 5, [tok.tokenToId('Ċ'), EOT]);
  const right = problems.filter((p, i) => texts[i].split('\n')[0].trim() === String(p.c));
  return { n: problems.length, correct: right.length, examples: right.slice(0, 8).map(factText) };
}

/** Chat test split: the number after "Answer:" in the greedy reply equals the answer. */
function chatAccuracy(model) {
  const rows = chatSplits().test;
  const prompts = rows.map((m) => applyChatTemplate(tok, [m[0]], { addGenerationPrompt: true }).ids);
  const texts = complete(model, prompts, 24, [IM_END, EOT]);
  const correct = rows.filter((m, i) => /Answer: (\d+)/.exec(texts[i])?.[1] === m[1].content.split('Answer: ')[1]).length;
  return { n: rows.length, correct, sample: texts[0] };
}

/** The chat test questions as plain text: the greedy first line must restate the question as its fact. */
function questionAccuracy(model) {
  const rows = chatSplits().test;
  const texts = complete(model, rows.map((m) => tok.encode(m[0].content)), 16, [tok.tokenToId('Ċ'), EOT]);
  const correct = rows.filter((m, i) => texts[i].split('\n')[0].trim() === `${m[1].content.split('. Answer')[0]}.`).length;
  return { n: rows.length, correct };
}

function evaluate(model) {
  const mul = [];
  for (let a = 1; a <= 12; a++) for (let b = 1; b <= 12; b++) mul.push({ op: 'mul', a, b, c: a * b });
  return { add: factAccuracy(model, HELD_OUT.add), sub: factAccuracy(model, HELD_OUT.sub), mul: factAccuracy(model, mul), question: questionAccuracy(model), chat: chatAccuracy(model) };
}

const pct = (r) => `${((100 * r.correct) / r.n).toFixed(1)}% (${r.correct}/${r.n})`;

function train() {
  const model = args['init-from']
    ? loadModelFromDir(args['init-from'])
    : createModel(parseConfig(structuredClone(CONFIG), 'builtin tiny config'), randomInit(CONFIG.initializer_range, SEED));
  model.config.generationConfig = GENERATION_CONFIG;
  model.train();
  const named = model.namedParameters();
  const params = named.map(([, p]) => p);
  // No weight decay on norm weights (1-D), as is usual.
  const decay = named.map(([, p]) => (p.ndim >= 2 ? 0.1 : 0));
  const m = params.map((p) => keep(zerosLike(p))), v = params.map((p) => keep(zerosLike(p)));
  process.stdout.write(`builtin:tiny: ${model.numParameters()} parameters, ${STEPS} steps of ${B}x${T} tokens, lr ${LR}\n`);
  const data = batches(makeRng(12345 + SEED));
  const t0 = performance.now();
  let step = 0, window = 0, windowN = 0, lastLoss = NaN;
  const log = [];
  while (step < STEPS && performance.now() - t0 < MAX_MS) {
    step++;
    const { ids, labels, docs } = data.next().value;
    const loss = scope(() => {
      const out = model.forward({ inputIds: fromArray(ids, [B, T]), labels: fromArray(labels, [B, T]), docIds: fromArray(docs, [B, T]) });
      out.loss.backward();
      return out.loss.item();
    });
    const norm = clipGradNorm(params.map((p) => p.grad), 1.0);
    const lr = lrAt(step, performance.now() - t0);
    params.forEach((p, i) => adamwStep(p, p.grad, m[i], v[i], { lr, weightDecay: decay[i], step, beta2: 0.98 }));
    model.zeroGrad();
    window += loss;
    windowN++;
    if (step % 50 === 0 || step === STEPS) {
      lastLoss = window / windowN;
      const line = `step ${step}  loss ${lastLoss.toFixed(4)}  lr ${lr.toExponential(2)}  grad-norm ${norm.toFixed(2)}  ${((performance.now() - t0) / 1000).toFixed(0)}s`;
      process.stdout.write(line + '\n');
      log.push(line);
      window = windowN = 0;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  if (windowN) lastLoss = window / windowN;
  m.forEach((t) => t.dispose());
  v.forEach((t) => t.dispose());
  model.eval();
  const record = { command: COMMAND, initFrom: args['init-from'] ?? null, qa: QA, steps: step, batch: B, seq: T, lr: LR, warmup: WARMUP, seconds: Math.round(seconds), finalLoss: Number(lastLoss.toFixed(4)), log };
  return { model, record };
}

/** The training runs behind a saved model: those recorded with the model it continued, then this one. */
function trainingRuns(record) {
  const prev = args['init-from'] && join(args['init-from'], 'training.json');
  const before = prev && existsSync(prev) ? JSON.parse(readFileSync(prev, 'utf8')).runs : [];
  return [...before, record];
}

function readme(runs, params, ev, sizeBytes) {
  const steps = runs.reduce((n, r) => n + r.steps, 0), tokens = runs.reduce((n, r) => n + r.steps * r.batch * r.seq, 0);
  const minutes = runs.reduce((n, r) => n + r.seconds, 0) / 60;
  const lines = [
    '# builtin:tiny',
    '',
    "temper's built-in base model, so `temper demo` and the tests run with no network. A 4-layer",
    'Llama (hidden 192, intermediate 512, 6 attention heads, 2 KV heads, head_dim 32, RoPE theta',
    `10000, tied embeddings, vocabulary 512) of ${params.toLocaleString('en-US')} parameters, pre-trained from a seeded random init on`,
    'synthetic arithmetic text only: sums and differences of numbers 0-99 and the multiplication',
    'tables to 12, in its own plain-text format ("23 + 58 = 81"). It has never seen a chat turn.',
    'A toy for demos and tests, not a language model.',
    '',
    '## Files',
    '',
    '- `config.json`, `generation_config.json`, `model.safetensors` (BF16): a standard Hugging Face',
    '  `LlamaForCausalLM` folder.',
    '- `tokenizer.json`, `tokenizer_config.json`: byte-level BPE (GPT-2 pre-tokenizer and decoder, 252',
    '  merges learned on the corpus, digits never merged so numbers are one token per digit), special',
    '  tokens `<|endoftext|>` (EOS, 508), `<|im_start|>` (509), `<|im_end|>` (510), `<|pad|>` (511),',
    '  and a ChatML chat template whose assistant turns end with `<|im_end|>`.',
    '- `training.json`: every training run (command, steps, time, loss log); `eval.json`: the numbers below.',
    '',
    '## How it was made',
    '',
    '```',
    'npm run build',
    'node scripts/make_builtin_data.mjs        # corpus generator + assets/builtin/datasets/',
    'node scripts/make_builtin_tokenizer.mjs   # tokenizer files',
    ...runs.map((r) => r.command),
    '```',
    '',
    'Documents of 3-8 lines (facts such as `41 - 17 = 24`, worded facts `7 times 6 is 42.`, word',
    'problems and, with --qa, questions followed by their fact: `What is 23 plus 58? 23 + 58 = 81.`),',
    'freshly generated for every batch and each followed by `<|endoftext|>`, are packed',
    'into rows with no attention and no loss across documents. AdamW (betas 0.9/0.98, weight decay',
    '0.1 on matrices), linear warmup then cosine decay to 10% over the steps or the time limit,',
    'whichever ends first, gradient clipping at 1.0; on a shared 2-core CPU, with temper itself.',
    '',
    ...runs.map((r, i) =>
      `- run ${i + 1}${r.initFrom ? ' (continues the model of the run before, new optimizer state and data stream)' : ' (from the random init)'}: ` +
      `${r.note ? 'about ' : ''}${r.steps} steps of ${r.batch} x ${r.seq} tokens, lr ${r.lr}, ${r.warmup} warmup steps, ${(r.seconds / 60).toFixed(1)} min, ` +
      `${r.qa ? `${100 * r.qa}% of lines question-then-fact` : 'facts and word problems only'}; ` +
      `final loss (mean of the last 50 steps) ${r.finalLoss.toFixed(4)} nats/token.`,
    ),
    '',
    `In all: ${steps} steps, ${(tokens / 1e6).toFixed(1)}M tokens, ${minutes.toFixed(1)} minutes.`,
    '',
    'Why several runs: each was capped in wall time on a shared machine, so later runs continue the',
    'saved model. Why --qa in the last ones: after the first two runs the model knew its facts but',
    'had never needed to copy a number from earlier text, and a LoRA fine-tune on builtin:arith-chat',
    'taught it the answer format but not to restate the question; the question-then-fact lines teach',
    'that restating in plain text, so the chat format is the only new thing. The chat test problems',
    'stay out of every run (they are the held-out sums and differences, and 24 products kept out of',
    'the chat train split).',
    '',
    '## Accuracy (greedy, measured by the training script on the saved BF16 weights)',
    '',
    'Prompt `a op b =`, greedy decoding, exact match of the first line of the continuation:',
    '',
    `- held-out sums (100 problems that occur in no pre-training text): ${pct(ev.add)}`,
    `- held-out differences (100 problems, same): ${pct(ev.sub)}`,
    `- the multiplication table 1..12 x 1..12 (seen in pre-training): ${pct(ev.mul)}`,
    '',
    'The questions of the `builtin:arith-chat` test split as plain text, no chat template (`What is',
    `38 plus 48?\` -> \` 38 + 48 = 86.\`, first line exact): ${pct(ev.question)}.`,
    '',
    'Zero-shot on the test split of `builtin:arith-chat` (ChatML prompt; the reply must contain',
    `\`Answer: N\` with the right N): ${pct(ev.chat)}. The base model has never seen that format; teaching`,
    'it is what the demo does with LoRA.',
    '',
    `Folder size: ${(sizeBytes / 1e6).toFixed(2)} MB. Data: scripts/make_builtin_data.mjs (seeded, synthetic; no third-party text).`,
    '',
    '## Training logs',
    '',
    ...runs.flatMap((r, i) => [`run ${i + 1}: \`${r.command}\``, '', '```', ...r.log, '```', '']),
  ];
  return lines.join('\n');
}

/** Measures the saved model (BF16, as users load it) and writes README.md and eval.json from training.json. */
function report() {
  const runs = JSON.parse(readFileSync(join(OUT, 'training.json'), 'utf8')).runs;
  const model = loadModelFromDir(OUT);
  const params = model.numParameters();
  const ev = evaluate(model);
  model.dispose();
  process.stdout.write(`held-out sums ${pct(ev.add)}, differences ${pct(ev.sub)}, products ${pct(ev.mul)}, plain questions ${pct(ev.question)}, chat zero-shot ${pct(ev.chat)}\n`);
  process.stdout.write(`correct sums: ${ev.add.examples.join(' | ')}\ncorrect differences: ${ev.sub.examples.join(' | ')}\nchat sample: ${JSON.stringify(ev.chat.sample)}\n`);
  const files = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
  const size = files.reduce((n, f) => n + readFileSync(join(OUT, f)).length, 0);
  writeFileSync(join(OUT, 'README.md'), readme(runs, params, ev, size));
  writeFileSync(join(OUT, 'eval.json'), JSON.stringify({ add: ev.add, sub: ev.sub, mul: ev.mul, question: ev.question, chat: { n: ev.chat.n, correct: ev.chat.correct } }, null, 2) + '\n');
  process.stdout.write(`wrote ${OUT}\n`);
}

if (!args['eval-only']) {
  const { model, record } = train();
  const runs = trainingRuns(record);
  saveModel(model, OUT, { dtype: 'BF16' });
  model.dispose();
  writeFileSync(join(OUT, 'training.json'), JSON.stringify({ runs }, null, 2) + '\n');
}
report();
