// A model's generation_config.json applied as transformers' generate applies it: its sampling
// settings (temperature, top_k, top_p) only when it sets do_sample, otherwise greedy; its
// repetition_penalty and max_new_tokens; its eos_token_id(s) added to the stop ids. Options
// the caller gives explicitly win. Not the sampler itself (sampler.ts).
import type { GenerateOptions } from './generate.js';

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Generation options from `generationConfig` (the parsed generation_config.json, or null)
 * under the caller's `explicit` options; `eosTokenIds` are the tokenizer's end-of-sequence ids.
 * @example generate(model, prompts, withGenerationConfig(model.config.generationConfig, { maxNewTokens: 64 }, tok.eosTokenIds));
 */
export function withGenerationConfig(generationConfig: Record<string, unknown> | null, explicit: GenerateOptions = {}, eosTokenIds: readonly number[] = []): GenerateOptions {
  const gen = generationConfig ?? {};
  const sample = gen.do_sample === true;
  const genEos = Array.isArray(gen.eos_token_id) ? gen.eos_token_id : gen.eos_token_id !== undefined ? [gen.eos_token_id] : [];
  const defined = Object.fromEntries(Object.entries(explicit).filter(([, v]) => v !== undefined)) as GenerateOptions;
  return {
    maxNewTokens: num(gen.max_new_tokens),
    temperature: sample ? num(gen.temperature) ?? 1 : 0,
    topK: sample ? num(gen.top_k) : undefined,
    topP: sample ? num(gen.top_p) : undefined,
    minP: sample ? num(gen.min_p) : undefined,
    repetitionPenalty: num(gen.repetition_penalty),
    ...defined,
    stopTokenIds: [...new Set([...eosTokenIds, ...(genEos.filter((x) => typeof x === 'number') as number[]), ...(explicit.stopTokenIds ?? [])])],
  };
}
