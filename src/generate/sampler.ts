// Picks the next token of one row, in transformers' order: repetition penalty, then
// temperature (both before the softmax), then top-k, top-p and min-p on the probabilities,
// then a draw (argmax when greedy). The batch softmax runs natively; the filters here are
// cheap selections on a host row, never a full sort of the vocabulary. The returned
// log-probability is that of the pick under the temperature-scaled distribution before
// truncation, which is what RL losses compare against.
import { TemperError } from '../tensor/index.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose mass reaches topP (1 = off). */
  topP?: number;
  /** Keep tokens with probability >= minP * (the top probability) (0 = off). */
  minP?: number;
  /** > 1 discourages tokens already in the prompt or completion (CTRL's rule, as transformers). */
  repetitionPenalty?: number;
}

export interface Pick {
  token: number;
  logprob: number;
}

export function checkSampling(o: SamplingOptions): Required<SamplingOptions> {
  const r = { temperature: o.temperature ?? 1, topK: o.topK ?? 0, topP: o.topP ?? 1, minP: o.minP ?? 0, repetitionPenalty: o.repetitionPenalty ?? 1 };
  if (!(r.temperature >= 0)) throw new TemperError(`temperature must be >= 0, got ${r.temperature}`);
  if (!Number.isInteger(r.topK) || r.topK < 0) throw new TemperError(`top_k must be a non-negative integer, got ${r.topK}`);
  if (!(r.topP > 0 && r.topP <= 1)) throw new TemperError(`top_p must be in (0, 1], got ${r.topP}`);
  if (!(r.minP >= 0 && r.minP <= 1)) throw new TemperError(`min_p must be in [0, 1], got ${r.minP}`);
  if (!(r.repetitionPenalty > 0)) throw new TemperError(`repetition_penalty must be > 0, got ${r.repetitionPenalty}`);
  return r;
}

/** The k-th largest value of xs (1-based), by quickselect on a copy. */
function kthLargest(xs: Float32Array, k: number): number {
  const a = Float32Array.from(xs);
  let lo = 0, hi = a.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!; a[i] = a[j]!; a[j] = t;
        i++; j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target]!;
}

/** CTRL's repetition penalty in place: logits of seen tokens divided (> 0) or multiplied (< 0) by it. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const l = logits[t]!;
    logits[t] = l > 0 ? l / penalty : l * penalty;
  }
}

/** softmax(logits / temperature) of one host row, in place (temperature 0 counts as 1). */
export function softmaxRow(logits: Float32Array, temperature: number): Float32Array {
  const invT = temperature > 0 ? 1 / temperature : 1;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! * invT);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += logits[i] = Math.exp(logits[i]! * invT - max);
  for (let i = 0; i < logits.length; i++) logits[i] = logits[i]! / z;
  return logits;
}

/**
 * Draws from one row of probabilities (softmax of the temperature-scaled logits) with a
 * uniform draw `u` in [0, 1), after top-k, top-p and min-p truncation.
 */
export function pickFromProbs(probs: Float32Array, o: Required<SamplingOptions>, u: number): Pick {
  const V = probs.length;
  let pmax = -1, arg = 0;
  for (let i = 0; i < V; i++) if (probs[i]! > pmax) (pmax = probs[i]!), (arg = i);
  if (!(pmax > 0)) throw new TemperError('sampling: the probabilities are all zero or NaN (NaN logits?)');
  if (o.temperature === 0) return { token: arg, logprob: Math.log(pmax) };
  // Truncation: a token survives when its probability reaches `cut` (and is above zero).
  let cut = Number.MIN_VALUE;
  if (o.topK > 0 && o.topK < V) cut = Math.max(cut, kthLargest(probs, o.topK));
  if (o.topP < 1) cut = Math.max(cut, nucleusCut(probs, cut, pmax, o.topP));
  if (o.minP > 0) cut = Math.max(cut, o.minP * pmax);
  let mass = 0;
  for (let i = 0; i < V; i++) if (probs[i]! >= cut) mass += probs[i]!;
  let target = u * mass, last = arg;
  for (let i = 0; i < V; i++) {
    const p = probs[i]!;
    if (p < cut) continue;
    last = i;
    target -= p;
    if (target < 0) return { token: i, logprob: Math.log(p) };
  }
  return { token: last, logprob: Math.log(probs[last]!) };
}

/** Repetition penalty, softmax and draw for one row of raw logits (host only; modifies `logits`). */
export function pickToken(logits: Float32Array, o: Required<SamplingOptions>, seen: Iterable<number>, u: number): Pick {
  applyRepetitionPenalty(logits, seen, o.repetitionPenalty);
  return pickFromProbs(softmaxRow(logits, o.temperature), o, u);
}

/**
 * The smallest probability in the nucleus: the most likely tokens (among those >= floor)
 * whose mass reaches p. transformers keeps a token while the mass strictly above it is
 * below p. Only tokens within a widening factor of the top probability get sorted: once
 * those hold the goal mass, the nucleus is among them.
 */
function nucleusCut(probs: Float32Array, floor: number, pmax: number, p: number): number {
  const V = probs.length;
  let total = 0;
  for (let i = 0; i < V; i++) if (probs[i]! >= floor) total += probs[i]!;
  const goal = p * total;
  for (let ratio = 1e-3; ; ratio *= 1e-3) {
    const thresh = ratio < 1e-30 ? floor : Math.max(floor, pmax * ratio);
    const cand: number[] = [];
    let mass = 0;
    for (let i = 0; i < V; i++) {
      if (probs[i]! >= thresh) {
        cand.push(probs[i]!);
        mass += probs[i]!;
      }
    }
    if (mass < goal && thresh !== floor) continue;
    cand.sort((a, b) => b - a);
    let acc = 0;
    for (const q of cand) {
      acc += q;
      if (acc >= goal) return q;
    }
    return cand[cand.length - 1]!;
  }
}
