// Causal self-attention with grouped-query heads (Llama, Mistral, Qwen2/3): q/k/v/o
// projections (optional q/k/v bias), optional per-head RMSNorm of q and k before the
// rotation (Qwen3), rotary positions, and the fused online-softmax attention kernel with
// padding and packed-document masks. With a KV cache, new keys are written into the
// cache and the queries attend over everything cached so far.
import { attention, reshape, scope, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import { Linear } from './linear.js';
import { RMSNorm } from './norm.js';
import type { ParamInit } from './init.js';
import type { Rope } from './rope.js';
import type { KVCache } from './kv_cache.js';

export interface AttentionConfig {
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Bias on q, k and v (Qwen2; Llama's attention_bias). */
  qkvBias: boolean;
  /** Bias on o (Llama's attention_bias). */
  oBias: boolean;
  /** Epsilon of Qwen3's per-head q/k RMSNorm; null when absent. */
  qkNormEps: number | null;
}

/** What every layer of one forward pass shares. */
export interface AttentionContext {
  /** (B, T) i32 position of each new token. */
  positions: Tensor;
  /** (B, Tk) key mask, 0 = padding (Tk = T, or the cache capacity with a cache). */
  keyMask: Tensor | null;
  /** (B, T) i32 document ids of packed sequences. */
  docIds: Tensor | null;
  cache: KVCache | null;
  rope: Rope | null;
}

export class SelfAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  readonly q_norm: RMSNorm | null = null;
  readonly k_norm: RMSNorm | null = null;

  constructor(readonly cfg: AttentionConfig, init: ParamInit) {
    super();
    const { hiddenSize: C, numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
    this.q_proj = this.child('q_proj', new Linear(C, H * D, cfg.qkvBias, init));
    this.k_proj = this.child('k_proj', new Linear(C, Hkv * D, cfg.qkvBias, init));
    this.v_proj = this.child('v_proj', new Linear(C, Hkv * D, cfg.qkvBias, init));
    this.o_proj = this.child('o_proj', new Linear(H * D, C, cfg.oBias, init));
    if (cfg.qkNormEps !== null) {
      this.q_norm = this.child('q_norm', new RMSNorm(D, cfg.qkNormEps, init));
      this.k_norm = this.child('k_norm', new RMSNorm(D, cfg.qkNormEps, init));
    }
  }

  /** x (B, T, C) -> (B, T, C) */
  forward(x: Tensor, ctx: AttentionContext, layer: number): Tensor {
    return scope(() => {
      const [B, T] = x.shape as [number, number];
      const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.cfg;
      let q = reshape(this.q_proj.forward(x), [B, T, H, D]);
      let k = reshape(this.k_proj.forward(x), [B, T, Hkv, D]);
      const v = reshape(this.v_proj.forward(x), [B, T, Hkv, D]);
      if (this.q_norm && this.k_norm) {
        q = this.q_norm.forward(q);
        k = this.k_norm.forward(k);
      }
      if (ctx.rope) {
        q = ctx.rope.apply(q, ctx.positions);
        k = ctx.rope.apply(k, ctx.positions);
      }
      const y = attendWithCache(q, k, v, ctx, layer);
      return this.o_proj.forward(reshape(y, [B, T, H * D]));
    });
  }
}

/** Attention over the new keys alone, or over the cache after appending them. (B, T, Hq, D) out. */
export function attendWithCache(q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext, layer: number): Tensor {
  const cache = ctx.cache;
  if (!cache) return attention(q, k, v, { keyMask: ctx.keyMask, docIds: ctx.docIds });
  cache.write(layer, k, v);
  return attention(q, cache.k[layer]!, cache.v[layer]!, { keyMask: cache.keyMask, kvLength: cache.length + q.shape[1]! });
}
