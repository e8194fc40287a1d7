// The contract between a transformer body (token ids -> final hidden states) and the
// heads on top of it (causal LM, sequence classification).
import { TemperError, checkpoint, isGradEnabled, type Tensor } from '../tensor/index.js';
import type { AttentionContext, KVCache, Module } from '../nn/index.js';
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
  /**
   * Activation checkpointing of the decoder layers while training with grad on (HF's
   * gradient_checkpointing): each layer keeps only its input and recomputes in backward.
   * Absent on bodies that do not support it.
   */
  gradientCheckpointing?: boolean;
}

/** Turns a body's gradient checkpointing on or off; a clear error where it is not supported. */
export function setGradientCheckpointing(body: TransformerBody, enabled: boolean): void {
  if (body.gradientCheckpointing === undefined)
    throw new TemperError(`${body.config.source}: ${body.constructor.name} does not support gradient checkpointing`);
  body.gradientCheckpointing = enabled;
}

/**
 * One decoder layer, through `checkpoint` when `enabled` (and grad is on and there is no
 * KV cache). The context's tensors travel as checkpoint inputs, so the recomputation in
 * backward still holds them after the body's scope has freed its own handles.
 */
export function runLayer(forward: (x: Tensor, ctx: AttentionContext) => Tensor, h: Tensor, ctx: AttentionContext, enabled: boolean): Tensor {
  if (!enabled || ctx.cache || !isGradEnabled()) return forward(h, ctx);
  return checkpoint(
    (x: Tensor | null, positions: Tensor | null, keyMask: Tensor | null, docIds: Tensor | null) =>
      forward(x!, { ...ctx, positions: positions!, keyMask, docIds }),
    [h, ctx.positions, ctx.keyMask, ctx.docIds],
  );
}
