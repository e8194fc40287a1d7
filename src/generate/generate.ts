// Batched autoregressive generation with a preallocated KV cache. Prompts are left-padded
// into one batch and prefilled together; each step feeds one token per row. Rows that
// finish (a stop token, a stop string, or max_new_tokens) are dropped from the cache
// once enough have finished, so they stop costing compute. Each row draws from its own
// seeded stream, so a row's sample does not depend on the other rows of the batch.
import { TemperError, argmax, cumsum, fromArray, gather, gt, max, mul, noGrad, reshape, scope, slice, softmax, toDType, type Tensor } from '../tensor/index.js';
import { defaultPositionIds, type CausalLM } from '../models/index.js';
import { applyRepetitionPenalty, checkSampling, pickFromProbs, softmaxRow, type Pick, type SamplingOptions } from './sampler.js';

/** What generation needs from a tokenizer: decoding, for text and stop strings. */
export interface Decoder {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most per row (default 128). */
  maxNewTokens?: number;
  /** Token ids that end a row (kept as its last token). Default: the model's eos_token_id(s). */
  stopTokenIds?: number[];
  /** Strings that end a row; the text is cut before the first one (needs a tokenizer). */
  stopStrings?: string[];
  /** Decodes completions into `text` (and enables stop strings). */
  tokenizer?: Decoder;
  /** Seed of the per-row random streams (default 0). */
  seed?: number;
  /** Called with each new token of each row (original row index), for streaming. */
  onToken?: (row: number, token: number) => void;
}

export type FinishReason = 'stop' | 'length';

export interface Generation {
  /** Generated ids (a final stop token included). */
  tokens: number[];
  /** log p(token) under the temperature-scaled distribution, before top-k/top-p/min-p. */
  logprobs: number[];
  finishReason: FinishReason;
  /** Decoded completion without special tokens, cut at a stop string (with a tokenizer). */
  text?: string;
}

/** splitmix32: a small seeded stream per row. */
function rowStream(seed: number, row: number): () => number {
  let s = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(row + 1, 0x85ebca6b)) >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return ((z ^ (z >>> 15)) >>> 0) / 4294967296;
  };
}

function defaultStopIds(model: CausalLM): number[] {
  const gen = model.config.generationConfig?.eos_token_id as number | number[] | undefined;
  const eos = gen ?? model.config.eosTokenId;
  return eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
}

/**
 * Generates a completion for each prompt (token ids).
 * @example const [g] = generate(model, [tok.encode('Hello')], { maxNewTokens: 20, temperature: 0, tokenizer: tok });
 */
export function generate(model: CausalLM, prompts: number[][], opts: GenerateOptions = {}): Generation[] {
  const sampling = checkSampling(opts);
  const maxNew = opts.maxNewTokens ?? 128;
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new TemperError(`max_new_tokens must be a positive integer, got ${maxNew}`);
  if (prompts.length === 0) return [];
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new TemperError(`generate: prompt ${i} is empty`);
  });
  const stopStrings = opts.stopStrings ?? [];
  if (stopStrings.length && !opts.tokenizer) throw new TemperError('generate: stop strings need a tokenizer');
  const stopIds = new Set(opts.stopTokenIds ?? defaultStopIds(model));
  const V = model.config.vocabSize;
  const B = prompts.length;
  const Tp = Math.max(...prompts.map((p) => p.length));
  const streams = prompts.map((_, b) => rowStream(opts.seed ?? 0, b));
  const out: Generation[] = prompts.map(() => ({ tokens: [], logprobs: [], finishReason: 'length' }));
  const done = new Array<boolean>(B).fill(false);

  return noGrad(() => {
    using cache = model.newCache(B, Tp + maxNew);
    // rows[i] = the prompt index held by cache row i.
    let rows = prompts.map((_, b) => b);
    const nextPos = prompts.map((p) => p.length);
    let logits = scope(() => {
      const ids = new Int32Array(B * Tp), mask = new Int32Array(B * Tp);
      prompts.forEach((p, b) => {
        ids.set(p, b * Tp + Tp - p.length);
        mask.fill(1, b * Tp + Tp - p.length, (b + 1) * Tp);
      });
      const device = model.device;
      return model.step(fromArray(ids, [B, Tp], { device }), cache, {
        attentionMask: fromArray(mask, [B, Tp], { device }),
        positionIds: fromArray(defaultPositionIds(B, Tp, mask), [B, Tp], { device }),
      });
    });
    const penalize = sampling.repetitionPenalty !== 1;
    // On a GPU, plain greedy or temperature sampling picks on the device and reads back two
    // numbers per row instead of the (rows, V) probabilities.
    const onDevice = model.device !== 'cpu' && !penalize && sampling.topK === 0 && sampling.topP === 1 && sampling.minP === 0;
    for (let step = 0; step < maxNew; step++) {
      // Without a repetition penalty the batch softmax runs natively; with one, the penalty
      // edits host logits first and the softmax follows on the host.
      let host: Float32Array | null = null, picks: Pick[] | null = null;
      if (onDevice) picks = devicePicks(logits, sampling.temperature, rows.map((b) => (done[b] ? 0 : streams[b]!())));
      else host = (penalize ? logits.toArray() : scope(() => softmax(mul(logits, 1 / (sampling.temperature || 1)), -1).toArray())) as Float32Array;
      logits.dispose();
      const last = new Int32Array(rows.length);
      rows.forEach((b, i) => {
        if (done[b]) return;
        let pick: Pick;
        if (picks) pick = picks[i]!;
        else {
          let row = host!.subarray(i * V, (i + 1) * V);
          if (penalize) {
            applyRepetitionPenalty(row, [...prompts[b]!, ...out[b]!.tokens], sampling.repetitionPenalty);
            row = softmaxRow(row, sampling.temperature);
          }
          pick = pickFromProbs(row, sampling, streams[b]!());
        }
        const { token, logprob } = pick;
        const g = out[b]!;
        g.tokens.push(token);
        g.logprobs.push(logprob);
        last[i] = token;
        opts.onToken?.(b, token);
        if (stopIds.has(token) || (stopStrings.length && hitsStopString(opts.tokenizer!, g.tokens, stopStrings))) {
          g.finishReason = 'stop';
          done[b] = true;
        }
      });
      if (step === maxNew - 1 || rows.every((b) => done[b])) break;
      const finished = rows.filter((b) => done[b]).length;
      // Compacting copies the whole cache, so wait until a quarter of the rows are done.
      if (finished > 0 && finished * 4 >= rows.length) {
        const keep = rows.map((b, i) => [b, i] as const).filter(([b]) => !done[b]);
        cache.selectRows(keep.map(([, i]) => i));
        rows = keep.map(([b]) => b);
        const lastKept = Int32Array.from(keep.map(([, i]) => last[i]!));
        logits = feed(model, cache, lastKept, rows, nextPos);
      } else {
        logits = feed(model, cache, last, rows, nextPos);
      }
    }
    if (opts.tokenizer) for (const g of out) g.text = completionText(opts.tokenizer, g, stopIds, stopStrings);
    return out;
  });
}

/**
 * pickFromProbs for every row at once, on the logits' device: greedy takes the first most
 * likely token; sampling takes the first token whose cumulative probability exceeds u * mass
 * (inverse CDF, u from the row's stream). Only tokens and their probabilities come back. @internal
 */
export function devicePicks(logits: Tensor, temperature: number, us: number[]): Pick[] {
  return scope(() => {
    const [R, V] = logits.shape as [number, number];
    const probs = softmax(mul(logits.dtype === 'f32' ? logits : toDType(logits, 'f32'), 1 / (temperature || 1)), -1);
    let token: Tensor, p: Tensor;
    if (temperature === 0) {
      token = argmax(probs, -1);
      p = max(probs, -1);
    } else {
      const cdf = cumsum(probs, -1);
      // Just below the total, so the last token with any mass is always reached despite rounding.
      const target = mul(slice(cdf, 1, V - 1, V), fromArray(Float32Array.from(us, (u) => u * (1 - 2 ** -23)), [R, 1], { device: logits.device }));
      token = argmax(toDType(gt(cdf, target), 'f32'), -1);
      p = reshape(gather(probs, 1, reshape(token, [R, 1])), [R]);
    }
    const tokens = token.toArray(), ps = p.toArray();
    return Array.from(tokens, (t, i) => {
      if (!(ps[i]! > 0)) throw new TemperError('sampling: the probabilities are all zero or NaN (NaN logits?)');
      return { token: t, logprob: Math.log(ps[i]!) };
    });
  });
}

/** One decoding step: each cache row's last token at its next position; returns (rows, V) logits. */
function feed(model: CausalLM, cache: ReturnType<CausalLM['newCache']>, tokens: Int32Array, rows: number[], nextPos: number[]): Tensor {
  return scope(() => {
    const pos = Int32Array.from(rows, (b) => nextPos[b]!++);
    const device = model.device;
    return model.step(fromArray(tokens, [rows.length, 1], { device }), cache, { positionIds: fromArray(pos, [rows.length, 1], { device }) });
  });
}

function hitsStopString(tok: Decoder, tokens: number[], stops: string[]): boolean {
  // A stop string spans at most its length in tokens, plus one for a partial first token.
  const longest = Math.max(...stops.map((s) => s.length));
  const tail = tok.decode(tokens.slice(-(longest + 1)), { skipSpecialTokens: false });
  return stops.some((s) => tail.includes(s));
}

function completionText(tok: Decoder, g: Generation, stopIds: Set<number>, stops: string[]): string {
  const ids = g.finishReason === 'stop' && stopIds.has(g.tokens[g.tokens.length - 1]!) ? g.tokens.slice(0, -1) : g.tokens;
  let text = tok.decode(ids, { skipSpecialTokens: true });
  let cut = text.length;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && i < cut) cut = i;
  }
  text = text.slice(0, cut);
  return text;
}
