// The Llama family body (model_type llama, mistral, qwen2, qwen3; SmolLM is llama):
// pre-norm decoder layers of RMSNorm -> GQA self-attention with rotary positions ->
// residual -> RMSNorm -> gated MLP -> residual, then a final RMSNorm. The variants differ
// only in flags read from config.json (q/k/v bias, q/k norm, head_dim, rope scaling).
import { TemperError, add, addRmsNorm, dropout, isGradEnabled, scope, type Tensor } from '../tensor/index.js';
import { Embedding, GatedMLP, KVCache, Module, ModuleList, RMSNorm, Rope, SelfAttention, activation, type AttentionContext, type ParamInit } from '../nn/index.js';
import type { ModelConfig } from './config.js';
import { checkInput, positionsFor, type ForwardInput } from './inputs.js';
import { runLayer, type TransformerBody } from './body.js';

/**
 * [a + b, norm(a + b)]: one fused addRmsNorm pass when `norm` is a plain RMSNorm (not a subclass
 * that may change its forward, and carrying no adapter), else the add and the norm's own forward.
 * Either way the same values and gradients, bitwise.
 */
function addNorm(norm: RMSNorm, a: Tensor, b: Tensor): [Tensor, Tensor] {
  if (Object.getPrototypeOf(norm) === RMSNorm.prototype && !(norm as { adapter?: unknown }).adapter)
    return addRmsNorm(a, b, norm.weight, norm.eps);
  const h = add(a, b);
  return [h, norm.forward(h)];
}

export class LlamaDecoderLayer extends Module {
  readonly input_layernorm: RMSNorm;
  readonly self_attn: SelfAttention;
  readonly post_attention_layernorm: RMSNorm;
  readonly mlp: GatedMLP;

  constructor(readonly config: ModelConfig, readonly index: number, init: ParamInit) {
    super();
    const c = config;
    this.self_attn = this.child('self_attn', new SelfAttention({
      hiddenSize: c.hiddenSize, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim,
      qkvBias: c.qkvBias, oBias: c.oBias, qkNormEps: c.qkNorm ? c.normEps : null,
    }, init));
    this.mlp = this.child('mlp', new GatedMLP(c.hiddenSize, c.intermediateSize, c.mlpBias, activation(c.hiddenAct, c.source), init));
    this.input_layernorm = this.child('input_layernorm', new RMSNorm(c.hiddenSize, c.normEps, init));
    this.post_attention_layernorm = this.child('post_attention_layernorm', new RMSNorm(c.hiddenSize, c.normEps, init));
  }

  /** x (B, T, C) -> (B, T, C) */
  forward(x: Tensor, ctx: AttentionContext): Tensor {
    return scope(() => {
      const [h, normed] = addNorm(this.post_attention_layernorm, x, this.self_attn.forward(this.input_layernorm.forward(x), ctx, this.index));
      return add(h, this.mlp.forward(normed));
    });
  }

  /**
   * forward, with the norm that follows the layer fused into its last residual add: returns
   * [out, next(out)]. `normedX` is input_layernorm(x) when the previous layer already computed it.
   */
  forwardFused(x: Tensor, normedX: Tensor | null, next: RMSNorm, ctx: AttentionContext): [Tensor, Tensor] {
    return scope(() => {
      const [h, normed] = addNorm(this.post_attention_layernorm, x, this.self_attn.forward(normedX ?? this.input_layernorm.forward(x), ctx, this.index));
      return addNorm(next, h, this.mlp.forward(normed));
    });
  }
}

export class LlamaModel extends Module implements TransformerBody {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: RMSNorm;
  readonly rope: Rope;
  /** Recompute each layer in backward instead of keeping its activations (while training). */
  gradientCheckpointing = false;

  constructor(readonly config: ModelConfig, init: ParamInit) {
    super();
    const c = config;
    this.embed_tokens = this.child('embed_tokens', new Embedding(c.vocabSize, c.hiddenSize, init));
    this.layers = this.child('layers', new ModuleList(Array.from({ length: c.numLayers }, (_, i) => new LlamaDecoderLayer(c, i, init))));
    this.norm = this.child('norm', new RMSNorm(c.hiddenSize, c.normEps, init));
    this.rope = new Rope(c.headDim, c.ropeTheta, c.ropeScaling, 1, c.source);
  }

  get embedWeight(): Tensor {
    return this.embed_tokens.weight;
  }

  newCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.config.numLayers, batch, capacity, this.config.numKvHeads, this.config.headDim, this.device, this.dtype);
  }

  protected override buffers(): Tensor[] {
    return [this.rope.invFreq];
  }

  forward(input: ForwardInput): Tensor {
    const [, T] = checkInput(input);
    const c = this.config;
    const cache = input.cache ?? null;
    const total = (cache?.length ?? 0) + T;
    if (c.slidingWindow !== null && total > c.slidingWindow)
      throw new TemperError(`${c.source}: ${total} tokens exceed sliding_window ${c.slidingWindow}, which temper does not implement`);
    return scope(() => {
      const positions = positionsFor(input);
      cache?.beginStep(T, input.attentionMask ?? null);
      const ctx: AttentionContext = { positions, keyMask: cache ? null : input.attentionMask ?? null, docIds: input.docIds ?? null, cache, rope: this.rope };
      let h = this.embed_tokens.forward(input.inputIds);
      if (this.training && c.dropout.embedding > 0) h = dropout(h, c.dropout.embedding);
      const layers = this.layers.items;
      if (this.gradientCheckpointing && this.training && !cache && isGradEnabled()) {
        // Checkpointed layers each return one tensor; only the norm inside a layer is fused.
        for (const layer of layers) {
          const next = runLayer((x, cx) => layer.forward(x, cx), h, ctx, true);
          h.dispose();
          h = next;
        }
        return this.norm.forward(h);
      }
      // Each layer's last residual add computes the next layer's input_layernorm (the final norm
      // after the last layer) in the same pass.
      let normed: Tensor | null = null;
      for (const [i, layer] of layers.entries()) {
        const [next, nextNormed] = layer.forwardFused(h, normed, layers[i + 1]?.input_layernorm ?? this.norm, ctx);
        h.dispose();
        normed?.dispose();
        [h, normed] = [next, nextNormed];
      }
      cache?.endStep(T);
      return normed ?? this.norm.forward(h);
    });
  }

  override dispose(): void {
    super.dispose();
    this.rope.dispose();
  }
}
