// Picks the next token of one row from its logits, in transformers' order: repetition
// penalty, then temperature, top-k, top-p, min-p, then a draw (or argmax when greedy).
// Works on a host copy of the row: the filters are cheap selections, never a full sort
// of the vocabulary. Returns the log-probability of the pick under the temperature-scaled
// distribution before truncation, which is what RL losses compare against.
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

/**
 * Samples from `logits` (one row, modified in place). `seen` lists token ids for the
 * repetition penalty; `u` is a uniform draw in [0, 1).
 */
export function pickToken(logits: Float32Array, o: Required<SamplingOptions>, seen: Iterable<number>, u: number): Pick {
  const V = logits.length;
  if (o.repetitionPenalty !== 1) {
    for (const t of new Set(seen)) {
      const l = logits[t]!;
      logits[t] = l > 0 ? l / o.repetitionPenalty : l * o.repetitionPenalty;
    }
  }
  const greedy = o.temperature === 0;
  const invT = greedy ? 1 : 1 / o.temperature;
  let max = -Infinity, arg = 0;
  for (let i = 0; i < V; i++) {
    const l = (logits[i] = logits[i]! * invT);
    if (l > max) (max = l), (arg = i);
  }
  if (max === -Infinity || Number.isNaN(max)) throw new TemperError('sampling: logits are all -inf or NaN');
  let z = 0;
  for (let i = 0; i < V; i++) z += Math.exp(logits[i]! - max);
  const lse = max + Math.log(z);
  if (greedy) return { token: arg, logprob: logits[arg]! - lse };

  // Truncation: a token survives when its scaled logit reaches `cut`.
  let cut = -Infinity;
  if (o.topK > 0 && o.topK < V) cut = kthLargest(logits, o.topK);
  if (o.topP < 1) cut = Math.max(cut, nucleusCut(logits, cut, max, o.topP));
  if (o.minP > 0) cut = Math.max(cut, max + Math.log(o.minP));
  let mass = 0;
  for (let i = 0; i < V; i++) if (logits[i]! >= cut) mass += Math.exp(logits[i]! - max);
  let target = u * mass, last = arg;
  for (let i = 0; i < V; i++) {
    if (logits[i]! < cut) continue;
    last = i;
    target -= Math.exp(logits[i]! - max);
    if (target < 0) return { token: i, logprob: logits[i]! - lse };
  }
  return { token: last, logprob: logits[last]! - lse };
}

/**
 * The smallest logit of the nucleus: the most likely tokens (among those >= floor) whose
 * probability mass reaches p. transformers keeps a token while the mass strictly above it
 * is below p. Only tokens within a widening gap of the top logit get sorted: once those
 * hold the goal mass, the nucleus is among them.
 */
function nucleusCut(logits: Float32Array, floor: number, max: number, p: number): number {
  const V = logits.length;
  let total = 0;
  for (let i = 0; i < V; i++) if (logits[i]! >= floor) total += Math.exp(logits[i]! - max);
  const goal = p * total;
  for (let gap = 8; ; gap *= 2) {
    const thresh = gap > 256 ? floor : Math.max(floor, max - gap);
    const cand: number[] = [];
    let mass = 0;
    for (let i = 0; i < V; i++) {
      if (logits[i]! >= thresh) {
        cand.push(logits[i]!);
        mass += Math.exp(logits[i]! - max);
      }
    }
    if (mass < goal && thresh !== floor) continue;
    cand.sort((a, b) => b - a);
    let acc = 0;
    for (const l of cand) {
      acc += Math.exp(l - max);
      if (acc >= goal) return l;
    }
    return cand[cand.length - 1]!;
  }
}
