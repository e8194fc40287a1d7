// The contract between a transformer body (token ids -> final hidden states) and the
// heads on top of it (causal LM, sequence classification).
import { TemperError, recompute, isGradEnabled, type Tensor } from '../tensor/index.js';
import { Module, type AttentionContext, type KVCache } from '../nn/index.js';
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

/** A task head (causal LM, sequence classification) on a transformer body. */
export abstract class HeadedModel extends Module {
  abstract readonly body: TransformerBody;

  /**
   * Activation checkpointing of the decoder layers while training (transformers'
   * gradient_checkpointing_enable): less memory for one more forward pass per step. Returns this.
   */
  gradientCheckpointingEnable(): this {
    this.setGradientCheckpointing(true);
    return this;
  }

  gradientCheckpointingDisable(): this {
    this.setGradientCheckpointing(false);
    return this;
  }

  get isGradientCheckpointing(): boolean {
    return this.body.gradientCheckpointing === true;
  }

  private setGradientCheckpointing(enabled: boolean): void {
    if (this.body.gradientCheckpointing === undefined)
      throw new TemperError(`${this.body.config.source}: ${this.body.constructor.name} does not support gradient checkpointing`);
    this.body.gradientCheckpointing = enabled;
  }
}

/**
 * One decoder layer, through `recompute` when `enabled` (and grad is on and there is no
 * KV cache). The context's tensors travel as recompute inputs, so the recomputation in
 * backward still holds them after the body's scope has freed its own handles.
 */
export function runLayer(forward: (x: Tensor, ctx: AttentionContext) => Tensor, h: Tensor, ctx: AttentionContext, enabled: boolean): Tensor {
  if (!enabled || ctx.cache || !isGradEnabled()) return forward(h, ctx);
  return recompute(
    (x: Tensor | null, positions: Tensor | null, keyMask: Tensor | null, docIds: Tensor | null) =>
      forward(x!, { ...ctx, positions: positions!, keyMask, docIds }),
    [h, ctx.positions, ctx.keyMask, ctx.docIds],
  );
}
