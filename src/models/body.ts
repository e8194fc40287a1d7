// The contract between a transformer body (token ids -> final hidden states) and the
// heads on top of it (causal LM, sequence classification).
import type { Tensor } from '../tensor/index.js';
import type { KVCache, Module } from '../nn/index.js';
import type { ModelConfig } from './config.js';
import type { ForwardInput } from './inputs.js';

export interface TransformerBody extends Module {
  readonly config: ModelConfig;
  /** The input embedding matrix (V, C), which a tied lm_head reuses. */
  readonly embedWeight: Tensor;
  /** (B, T, C) final hidden states (after the final norm). */
  forward(input: ForwardInput): Tensor;
  /** An empty cache sized for this body. */
  newCache(batch: number, capacity: number): KVCache;
}
