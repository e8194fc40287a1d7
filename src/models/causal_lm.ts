// A body plus a language-model head (lm_head, or the embedding matrix when tied):
// LlamaForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel, … Computes logits and, given
// labels, the next-token loss with the labels shifted inside, as transformers does.
import { crossEntropy, linear, noGrad, scope, slice, type Tensor } from '../tensor/index.js';
import { Linear, Module, type KVCache, type ParamInit } from '../nn/index.js';
import type { ModelConfig } from './config.js';
import type { TransformerBody } from './body.js';
import { shiftLabels, type CausalLMOutput, type ForwardInput } from './inputs.js';

export class CausalLM extends Module {
  readonly lm_head: Linear | null;

  /** `bodyName` is the body's prefix in parameter names ("model", or "transformer" for GPT-2). */
  constructor(readonly config: ModelConfig, readonly bodyName: string, readonly body: TransformerBody, init: ParamInit) {
    super();
    this.child(bodyName, body);
    this.lm_head = config.tieWordEmbeddings ? null : this.child('lm_head', new Linear(config.hiddenSize, config.vocabSize, false, init));
  }

  /** The output projection (V, C): lm_head.weight, or the embedding when tied. */
  get outputWeight(): Tensor {
    return this.lm_head ? this.lm_head.weight : this.body.embedWeight;
  }

  forward(input: ForwardInput): CausalLMOutput {
    return scope(() => {
      let h = this.body.forward(input);
      if (input.lastTokenOnly) h = slice(h, 1, h.shape[1]! - 1);
      const logits = linear(h, this.outputWeight);
      if (!input.labels) return { logits };
      return { logits, loss: crossEntropy(logits, shiftLabels(input.labels)) };
    });
  }

  /** Next-token logits (B, V) for new tokens appended to a cache (under noGrad). */
  step(inputIds: Tensor, cache: KVCache, opts: { attentionMask?: Tensor | null; positionIds?: Tensor | null } = {}): Tensor {
    return noGrad(() =>
      scope(() => {
        const { logits } = this.forward({ inputIds, cache, attentionMask: opts.attentionMask, positionIds: opts.positionIds, lastTokenOnly: true });
        return logits.reshape([logits.shape[0]!, logits.shape[2]!]);
      }),
    );
  }

  newCache(batch: number, capacity: number): KVCache {
    return this.body.newCache(batch, capacity);
  }
}
