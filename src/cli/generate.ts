// `temper generate`: loads a model folder (or hub id) and its tokenizer, and streams a
// completion of one prompt to stdout. Only parses arguments and calls the library.
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, normalizeDevice, type Device } from '../tensor/index.js';
import { loadAdapter, loadModelFromDir, resolveModelRef } from '../io/index.js';
import { CausalLM } from '../models/index.js';
import { Tokenizer, applyChatTemplate, type ChatMessage } from '../text/index.js';
import { generate } from '../generate/index.js';
import { createProgress, type Progress } from './progress.js';

export const GENERATE_HELP = `Usage: temper generate --model PATH_OR_ID --prompt TEXT [options]

Streams a completion of the prompt. Greedy unless sampling is asked for (or the model's
generation_config.json sets do_sample).

  --model PATH_OR_ID        model folder, or a hub id (org/name) resolved through the HF cache
  --revision REV            hub revision (default main)
  --adapter DIR             a PEFT LoRA adapter folder to apply to the model
  --tokenizer PATH          tokenizer folder (default: the model folder)
  --prompt TEXT             the prompt
  --chat                    wrap the prompt as a user turn with the tokenizer's chat template
  --system TEXT             a system turn before it (with --chat)
  --max_new_tokens N        default 256
  --temperature T           0 = greedy
  --top_k K  --top_p P  --min_p P  --repetition_penalty R
  --seed S                  sampling seed (default 0)
  --device D                cpu (default), cuda or cuda:N
  --dtype D                 f32 (default) or bf16 (half the weight memory; f32 math inside)
`;

/** Runs `temper generate ARGV`; returns the exit code. */
export async function generateCommand(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      revision: { type: 'string' },
      tokenizer: { type: 'string' },
      adapter: { type: 'string' },
      prompt: { type: 'string' },
      chat: { type: 'boolean', default: false },
      system: { type: 'string' },
      max_new_tokens: { type: 'string', default: '256' },
      temperature: { type: 'string' },
      top_k: { type: 'string' },
      top_p: { type: 'string' },
      min_p: { type: 'string' },
      repetition_penalty: { type: 'string' },
      seed: { type: 'string', default: '0' },
      device: { type: 'string', default: 'cpu' },
      dtype: { type: 'string', default: 'f32' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(GENERATE_HELP);
    return 0;
  }
  if (!v.model) throw new TemperError('generate: --model PATH_OR_ID is required');
  if (v.prompt === undefined) throw new TemperError('generate: --prompt TEXT is required');
  if (v.dtype !== 'f32' && v.dtype !== 'bf16') throw new TemperError(`generate: --dtype must be f32 or bf16, got '${v.dtype}'`);
  const device: Device = normalizeDevice(v.device!);
  const num = (name: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    const x = Number(s);
    if (!Number.isFinite(x)) throw new TemperError(`generate: --${name} must be a number, got '${s}'`);
    return x;
  };
  let bar: Progress | null = null;
  const dir = await resolveModelRef(v.model, {
    revision: v.revision,
    onProgress: (p) => {
      bar ??= createProgress(`downloading ${v.model}`, p.total, 'bytes');
      bar.update(p.loaded, p.file);
    },
  });
  (bar as Progress | null)?.stop();
  const tokDir = v.tokenizer ?? dir;
  if (!existsSync(join(tokDir, 'tokenizer.json')))
    throw new TemperError(`generate: ${tokDir} has no tokenizer.json; pass --tokenizer PATH`);
  const tok = await Tokenizer.fromDir(tokDir);
  const model = loadModelFromDir(dir);
  if (v.adapter) loadAdapter(model, v.adapter);
  model.to(device).to(v.dtype as 'f32' | 'bf16');
  if (!(model instanceof CausalLM)) throw new TemperError(`generate: ${dir} is a ${model.config.architectures[0]}, not a causal language model`);
  if (tok.vocabSize > model.config.vocabSize)
    throw new TemperError(`generate: the tokenizer in ${tokDir} has ${tok.vocabSize} tokens but the model's vocab_size is ${model.config.vocabSize}`);

  let prompt: number[];
  if (v.chat) {
    const messages: ChatMessage[] = [...(v.system ? [{ role: 'system', content: v.system }] : []), { role: 'user', content: v.prompt }];
    prompt = applyChatTemplate(tok, messages, { addGenerationPrompt: true }).ids;
  } else {
    prompt = tok.encode(v.prompt);
  }
  const gen = model.config.generationConfig ?? {};
  const sample = gen.do_sample === true;
  const temperature = num('temperature', v.temperature) ?? (sample ? (gen.temperature as number | undefined) ?? 1 : 0);
  const stopTokenIds = [...new Set([...tok.eosTokenIds, ...((Array.isArray(gen.eos_token_id) ? gen.eos_token_id : gen.eos_token_id !== undefined ? [gen.eos_token_id] : []) as number[])])];

  const ids: number[] = [];
  let shown = 0;
  const t0 = process.hrtime.bigint();
  const [g] = generate(model, [prompt], {
    maxNewTokens: num('max_new_tokens', v.max_new_tokens),
    temperature,
    topK: num('top_k', v.top_k) ?? (sample ? (gen.top_k as number | undefined) : undefined),
    topP: num('top_p', v.top_p) ?? (sample ? (gen.top_p as number | undefined) : undefined),
    minP: num('min_p', v.min_p),
    repetitionPenalty: num('repetition_penalty', v.repetition_penalty) ?? (gen.repetition_penalty as number | undefined),
    seed: num('seed', v.seed),
    stopTokenIds,
    tokenizer: tok,
    onToken: (_row, token) => {
      if (stopTokenIds.includes(token)) return;
      ids.push(token);
      const text = tok.decode(ids, { skipSpecialTokens: true });
      // Hold back an incomplete UTF-8 sequence until its last byte arrives.
      if (text.endsWith('\uFFFD')) return;
      process.stdout.write(text.slice(shown));
      shown = text.length;
    },
  });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write('\n');
  process.stderr.write(`temper: ${g!.tokens.length} tokens in ${s.toFixed(2)} s (${(g!.tokens.length / s).toFixed(1)} tok/s), finish: ${g!.finishReason}\n`);
  model.dispose();
  return 0;
}
