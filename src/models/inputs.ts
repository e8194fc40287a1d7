// What a model forward takes and returns, and the default position ids: positions count
// real tokens only (a left-padded row starts at 0 at its first real token; pads get 1,
// as transformers' generate does), and restart at 0 at each packed document.
import { TemperError, fromArray, type Tensor } from '../tensor/index.js';
import type { KVCache } from '../nn/index.js';

export interface ForwardInput {
  /** (B, T) i32 token ids. */
  inputIds: Tensor;
  /** (B, T) i32/bool, 0 = padding. Without a cache only; with one, the step's mask for its new tokens. */
  attentionMask?: Tensor | null;
  /** (B, T) i32; defaults from attentionMask / docIds (see defaultPositionIds). */
  positionIds?: Tensor | null;
  /** (B, T) i32 document id of each token of packed sequences (no attention across documents). */
  docIds?: Tensor | null;
  /** (B, T) i32 targets for the causal-LM loss (unshifted: the model shifts), -100 = ignored. */
  labels?: Tensor | null;
  /** Appends to and attends over this cache (inference, under noGrad). */
  cache?: KVCache | null;
  /** Compute logits only for the last position ((B, 1, V)), as generation needs. */
  lastTokenOnly?: boolean;
}

export interface CausalLMOutput {
  /** (B, T, V), or (B, 1, V) with lastTokenOnly. */
  logits: Tensor;
  /** Mean next-token cross-entropy over labels != -100, when labels were given. */
  loss?: Tensor;
}

/**
 * Position ids on the host: per row, the count of real tokens before each token
 * (pads get 1), restarting at each change of document id.
 */
export function defaultPositionIds(B: number, T: number, mask?: ArrayLike<number> | null, docIds?: ArrayLike<number> | null): Int32Array {
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (docIds && t > 0 && docIds[i] !== docIds[i - 1]) n = 0;
      if (mask && !mask[i]) {
        out[i] = 1;
        continue;
      }
      out[i] = n++;
    }
  }
  return out;
}

/** The (B, T) i32 position tensor for an input, from positionIds or the defaults. */
export function positionsFor(input: ForwardInput): Tensor {
  const [B, T] = input.inputIds.shape as [number, number];
  if (input.positionIds) {
    if (input.positionIds.shape.join() !== [B, T].join())
      throw new TemperError(`positionIds shape [${input.positionIds.shape}] must match inputIds [${B}, ${T}]`);
    return input.positionIds.dtype === 'i32' ? input.positionIds : input.positionIds.to('i32');
  }
  const mask = input.attentionMask && !input.cache ? input.attentionMask.toArray() : null;
  const docs = input.docIds ? input.docIds.toArray() : null;
  return fromArray(defaultPositionIds(B, T, mask, docs), [B, T], { device: input.inputIds.device });
}

/** Labels shifted left by one with -100 appended, so logits at t are scored against token t+1. */
export function shiftLabels(labels: Tensor): Tensor {
  const [B, T] = labels.shape as [number, number];
  const src = labels.toArray();
  const out = new Int32Array(B * T).fill(-100);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = src[b * T + t + 1]!;
  return fromArray(out, [B, T], { device: labels.device });
}

/** Checks the (B, T) shape of ids and masks up front, naming the argument. */
export function checkInput(input: ForwardInput): [number, number] {
  const ids = input.inputIds;
  if (ids.ndim !== 2 || ids.dtype !== 'i32') throw new TemperError(`inputIds must be a (B, T) i32 tensor, got shape [${ids.shape}] ${ids.dtype}`);
  const [B, T] = ids.shape as [number, number];
  for (const key of ['attentionMask', 'docIds', 'labels'] as const) {
    const t = input[key];
    if (t && t.shape.join() !== [B, T].join()) throw new TemperError(`${key} shape [${t.shape}] must match inputIds [${B}, ${T}]`);
  }
  if (input.docIds && input.cache) throw new TemperError('docIds (packed sequences) cannot be combined with a KV cache');
  return [B, T];
}
