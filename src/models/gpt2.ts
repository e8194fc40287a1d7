// The GPT-2 body (model_type gpt2): token + learned position embeddings, pre-LayerNorm
// blocks of fused-qkv attention (Conv1D layout, weight (in, out)) and a gelu_new MLP,
// then ln_f. Attention-probability dropout (attn_pdrop) is not applied: the fused
// attention kernel never materializes the probabilities; embedding and residual dropout are.
import { TemperError, add, dropout, reshape, scope, split, type Tensor } from '../tensor/index.js';
import { Conv1D, Embedding, GPT2MLP, KVCache, LayerNorm, Module, ModuleList, activation, attendWithCache, type AttentionContext, type ParamInit } from '../nn/index.js';
import type { ModelConfig } from './config.js';
import { checkInput, positionsFor, type ForwardInput } from './inputs.js';
import { runLayer, type TransformerBody } from './body.js';

export class GPT2Attention extends Module {
  readonly c_attn: Conv1D;
  readonly c_proj: Conv1D;
  constructor(readonly config: ModelConfig, init: ParamInit) {
    super();
    const C = config.hiddenSize;
    this.c_attn = this.child('c_attn', new Conv1D(C, 3 * C, init));
    this.c_proj = this.child('c_proj', new Conv1D(C, C, init));
  }
  forward(x: Tensor, ctx: AttentionContext, layer: number): Tensor {
    return scope(() => {
      const [B, T, C] = x.shape as [number, number, number];
      const { numHeads: H, headDim: D } = this.config;
      const [q, k, v] = split(this.c_attn.forward(x), C, 2).map((t) => reshape(t, [B, T, H, D])) as [Tensor, Tensor, Tensor];
      const y = attendWithCache(q, k, v, ctx, layer);
      return this.c_proj.forward(reshape(y, [B, T, C]));
    });
  }
}

export class GPT2Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: GPT2Attention;
  readonly ln_2: LayerNorm;
  readonly mlp: GPT2MLP;
  constructor(readonly config: ModelConfig, readonly index: number, init: ParamInit) {
    super();
    const c = config;
    this.ln_1 = this.child('ln_1', new LayerNorm(c.hiddenSize, c.normEps, init));
    this.attn = this.child('attn', new GPT2Attention(c, init));
    this.ln_2 = this.child('ln_2', new LayerNorm(c.hiddenSize, c.normEps, init));
    this.mlp = this.child('mlp', new GPT2MLP(c.hiddenSize, c.intermediateSize, activation(c.hiddenAct, c.source), init));
  }
  forward(x: Tensor, ctx: AttentionContext): Tensor {
    return scope(() => {
      const p = this.training ? this.config.dropout.residual : 0;
      const h = add(x, dropout(this.attn.forward(this.ln_1.forward(x), ctx, this.index), p, { training: this.training }));
      return add(h, dropout(this.mlp.forward(this.ln_2.forward(h)), p, { training: this.training }));
    });
  }
}

export class GPT2Model extends Module implements TransformerBody {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly h: ModuleList<GPT2Block>;
  readonly ln_f: LayerNorm;
  /** Recompute each block in backward instead of keeping its activations (while training). */
  gradientCheckpointing = false;
  constructor(readonly config: ModelConfig, init: ParamInit) {
    super();
    const c = config;
    this.wte = this.child('wte', new Embedding(c.vocabSize, c.hiddenSize, init));
    this.wpe = this.child('wpe', new Embedding(c.maxPositionEmbeddings, c.hiddenSize, init));
    this.h = this.child('h', new ModuleList(Array.from({ length: c.numLayers }, (_, i) => new GPT2Block(c, i, init))));
    this.ln_f = this.child('ln_f', new LayerNorm(c.hiddenSize, c.normEps, init));
  }

  get embedWeight(): Tensor {
    return this.wte.weight;
  }

  newCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.config.numLayers, batch, capacity, this.config.numHeads, this.config.headDim, this.device, this.dtype);
  }

  forward(input: ForwardInput): Tensor {
    const [, T] = checkInput(input);
    const cache = input.cache ?? null;
    const c = this.config;
    if ((cache?.length ?? 0) + T > c.maxPositionEmbeddings)
      throw new TemperError(`${c.source}: ${(cache?.length ?? 0) + T} positions exceed n_positions ${c.maxPositionEmbeddings}`);
    return scope(() => {
      const positions = positionsFor(input);
      cache?.beginStep(T, input.attentionMask ?? null);
      const ctx: AttentionContext = { positions, keyMask: cache ? null : input.attentionMask ?? null, docIds: input.docIds ?? null, cache, rope: null };
      let h = add(this.wte.forward(input.inputIds), this.wpe.forward(positions));
      h = dropout(h, c.dropout.embedding, { training: this.training });
      for (const block of this.h.items) h = runLayer((x, cx) => block.forward(x, cx), h, ctx, this.gradientCheckpointing && this.training);
      cache?.endStep(T);
      return this.ln_f.forward(h);
    });
  }
}
