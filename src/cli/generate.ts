// `temper generate`: loads a model folder (or hub id) and its tokenizer, and streams a
// completion of one prompt to stdout. Only parses arguments and calls the library.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, normalizeDevice, type Device } from '../tensor/index.js';
import { loadWithAdapter, resolveAdapterRef, tokenizerDirFor } from '../io/index.js';
import { CausalLM } from '../models/index.js';
import { Tokenizer, applyChatTemplate, type ChatMessage } from '../text/index.js';
import { generate, withGenerationConfig } from '../generate/index.js';
import { createProgress, type Progress } from './progress.js';
import { parseFlags } from './flags.js';

export const GENERATE_HELP = `Usage: temper generate --model PATH_OR_ID --prompt TEXT [options]

Streams a completion of the prompt. Greedy unless sampling is asked for (or the model's
generation_config.json sets do_sample).

  --model PATH_OR_ID        model folder, hub id (org/name) resolved through the HF cache, builtin:NAME,
                            or a PEFT adapter folder (its base loads, the adapter goes on it)
  --revision REV            hub revision (default main)
  --adapter DIR             a PEFT LoRA adapter folder to apply to the model (--model defaults to its base)
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
  const v = parseFlags('generate', argv, {
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
  });
  if (v.help) {
    process.stdout.write(GENERATE_HELP);
    return 0;
  }
  if (!v.model && !v.adapter) throw new TemperError('generate: --model PATH_OR_ID is required');
  if (v.prompt === undefined) throw new TemperError('generate: --prompt TEXT is required');
  if (v.dtype !== 'f32' && v.dtype !== 'bf16') throw new TemperError(`generate: --dtype must be f32 or bf16, got '${v.dtype}'`);
  const device: Device = normalizeDevice(v.device!);
  const num = (name: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    const x = Number(s);
    if (!Number.isFinite(x)) throw new TemperError(`generate: --${name} must be a number, got '${s}'`);
    return x;
  };
  const explicit = {
    maxNewTokens: num('max_new_tokens', v.max_new_tokens), temperature: num('temperature', v.temperature), topK: num('top_k', v.top_k),
    topP: num('top_p', v.top_p), minP: num('min_p', v.min_p), repetitionPenalty: num('repetition_penalty', v.repetition_penalty), seed: num('seed', v.seed),
  };
  const ref = resolveAdapterRef(v.model ?? null, { adapter: v.adapter });
  let bar: Progress | null = null;
  const { model, baseDir } = await loadWithAdapter(ref, {
    revision: v.revision,
    onProgress: (p) => {
      bar ??= createProgress(`downloading ${ref.base}`, p.total, 'bytes');
      bar.update(p.loaded, p.file);
    },
  });
  (bar as Progress | null)?.stop();
  try {
    const tokDir = v.tokenizer ?? tokenizerDirFor(ref, baseDir);
    if (!existsSync(join(tokDir, 'tokenizer.json'))) throw new TemperError(`generate: ${tokDir} has no tokenizer.json; pass --tokenizer PATH`);
    const tok = await Tokenizer.fromDir(tokDir);
    model.to(device).to(v.dtype as 'f32' | 'bf16');
    if (!(model instanceof CausalLM)) throw new TemperError(`generate: ${ref.base} is a ${model.config.architectures[0]}, not a causal language model`);
    if (tok.vocabSize > model.config.vocabSize)
      throw new TemperError(`generate: the tokenizer in ${tokDir} has ${tok.vocabSize} tokens but the model's vocab_size is ${model.config.vocabSize}`);

    let prompt: number[];
    if (v.chat) {
      const messages: ChatMessage[] = [...(v.system ? [{ role: 'system', content: v.system }] : []), { role: 'user', content: v.prompt }];
      prompt = applyChatTemplate(tok, messages, { addGenerationPrompt: true }).ids;
    } else {
      prompt = tok.encode(v.prompt);
    }
    const opts = withGenerationConfig(model.config.generationConfig, explicit, tok.eosTokenIds);
    const stop = new Set(opts.stopTokenIds);
    const ids: number[] = [];
    let shown = 0;
    const t0 = process.hrtime.bigint();
    const [g] = generate(model, [prompt], {
      ...opts,
      tokenizer: tok,
      onToken: (_row, token) => {
        if (stop.has(token)) return;
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
  } finally {
    model.dispose();
  }
  return 0;
}
