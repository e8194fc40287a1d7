// `temper demo`: the built-in default job, no network. Measures the built-in base model
// (builtin:tiny, pre-trained on arithmetic text, never shown a chat turn) on held-out chat
// questions from builtin:arith-chat, fine-tunes a LoRA adapter on the training split with
// `temper sft`'s code path, and measures again: exact match of the "Answer: N" the format
// asks for. Only orchestration; every step is a library call.
import { TemperError } from '../tensor/index.js';
import { CausalLM } from '../models/index.js';
import { loadAdapter, loadDataset, loadModel, resolveModelRef } from '../io/index.js';
import { Tokenizer, applyChatTemplate, type ChatMessage } from '../text/index.js';
import { generate } from '../generate/index.js';
import { SFT_SCHEMA } from '../algorithms/sft_config.js';
import { runSft } from '../algorithms/sft.js';
import { parseConfigArgs, resolveConfig } from './config.js';
import { trainingDisplay } from './training_display.js';
import { z } from 'zod';

const DEMO_SCHEMA = z
  .object({
    output_dir: z.string().default('temper-demo').describe('where the adapter, checkpoints, metrics and report go (an earlier demo run there is replaced)'),
    eval_examples: z.number().int().positive().max(200).default(200).describe('held-out questions to score before and after'),
    max_steps: z.number().int().positive().default(1200).describe('LoRA training steps'),
    quiet: z.boolean().default(false).describe('plain log lines instead of a progress bar'),
  })
  .strict();

export const DEMO_HELP = `Usage: temper demo [--output_dir DIR] [--eval_examples N] [--max_steps N] [--quiet true]

Fine-tunes temper's built-in tiny Llama (builtin:tiny) with LoRA on the built-in chat
dataset builtin:arith-chat, on the CPU with no network, and prints the held-out accuracy
of its answers before and after. The same run as:

  temper sft --model builtin:tiny --dataset builtin:arith-chat --use_peft true \\
    --lora_target_modules all-linear --learning_rate 4e-3 --max_steps 1200 ...
`;

const ANSWER = /Answer:\s*(-?\d+)/;

interface Scored {
  accuracy: number;
  /** Each question with the model's reply and whether its "Answer: N" is right. */
  results: { question: string; reply: string; correct: boolean }[];
}

/** Exact-match accuracy of "Answer: N" on chat rows, greedy, batched. */
function answerAccuracy(model: CausalLM, tok: Tokenizer, rows: ChatMessage[][]): Scored {
  const prompts = rows.map((m) => applyChatTemplate(tok, m.slice(0, -1), { addGenerationPrompt: true }).ids);
  const out = generate(model, prompts, { temperature: 0, maxNewTokens: 32, tokenizer: tok, stopTokenIds: tok.eosTokenIds });
  const results = out.map((g, i) => {
    const want = ANSWER.exec(String(rows[i]!.at(-1)!.content))?.[1];
    const got = ANSWER.exec(g.text ?? '')?.[1];
    return { question: String(rows[i]!.at(-2)!.content), reply: (g.text ?? '').trim(), correct: want !== undefined && got === want };
  });
  return { accuracy: results.filter((r) => r.correct).length / rows.length, results };
}

/** "question -> reply (right|wrong)" for the first result with the given outcome, or null. */
function example(s: Scored, correct: boolean): string | null {
  const r = s.results.find((x) => x.correct === correct);
  return r ? `${r.question} -> ${JSON.stringify(r.reply)}  (${correct ? 'right' : 'wrong'})` : null;
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { configPath, flags, help } = parseConfigArgs(argv);
  if (help) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  if (configPath) throw new TemperError('demo: takes no --config; its options are --output_dir, --eval_examples, --max_steps, --quiet');
  const o = resolveConfig(DEMO_SCHEMA, {}, flags, null);
  const say = (s: string) => process.stdout.write(s + '\n');
  const t0 = Date.now();

  const test = await loadDataset('builtin:arith-chat', { split: 'test' });
  const rows = test.rows.slice(0, o.eval_examples).map((r) => r.messages as ChatMessage[]);
  const dir = await resolveModelRef('builtin:tiny');
  const tok = await Tokenizer.fromDir(dir);

  say('temper demo: LoRA fine-tuning of builtin:tiny on builtin:arith-chat (CPU, no network)');
  const base = (await loadModel(dir)) as CausalLM;
  const before = answerAccuracy(base, tok, rows);
  base.dispose();
  say(`  before: ${(100 * before.accuracy).toFixed(1)}% exact answers on ${rows.length} held-out questions`);
  say(`    e.g. ${example(before, false) ?? example(before, true)}`);

  const cfg = SFT_SCHEMA.parse({
    model: 'builtin:tiny', dataset: 'builtin:arith-chat', output_dir: o.output_dir, use_peft: true, lora_r: 16, lora_alpha: 32,
    lora_dropout: 0, lora_target_modules: 'all-linear', learning_rate: 4e-3, lr_scheduler_type: 'cosine', warmup_ratio: 0.05,
    per_device_train_batch_size: 16, max_steps: o.max_steps, logging_steps: 10, eval_strategy: 'steps', eval_steps: 100,
    save_steps: 200, save_total_limit: 1, max_length: 128, assistant_only_loss: true, quiet: o.quiet, seed: 42, overwrite_output_dir: true,
  });
  const ui = trainingDisplay(cfg.quiet);
  let result;
  try {
    result = await runSft(cfg, ui);
  } finally {
    ui.stop();
  }
  if (result.interrupted) return 130;

  const tuned = loadAdapter((await loadModel(dir)) as CausalLM, o.output_dir);
  const after = answerAccuracy(tuned.model, tok, rows);
  tuned.model.dispose();
  say(`  after:  ${(100 * after.accuracy).toFixed(1)}% exact answers on the same questions`);
  for (const line of [example(after, true), example(after, false)]) if (line) say(`    e.g. ${line}`);
  say(`  ${result.globalStep} LoRA steps, ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
  say(`  adapter (PEFT format): ${o.output_dir}   report: ${result.reportPath}`);
  say(`  merge it:  temper merge-lora --model builtin:tiny --adapter ${o.output_dir} --output ${o.output_dir}-merged`);
  return 0;
}
