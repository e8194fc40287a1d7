// A body plus a language-model head (lm_head, or the embedding matrix when tied):
// LlamaForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel, … Computes logits and, given
// labels, the next-token loss with the labels shifted inside, as transformers does.
import { TemperError, argmax, crossEntropy, fromArray, linear, linearCrossEntropy, noGrad, scope, slice, sub, tokenLogprobs, type LinearCrossEntropyOptions, type Tensor } from '../tensor/index.js';
import { Linear, type KVCache, type ParamInit } from '../nn/index.js';
import type { ModelConfig } from './config.js';
import { HeadedModel, type TransformerBody } from './body.js';
import { shiftLabels, type CausalLMOutput, type ForwardInput } from './inputs.js';

export interface CausalLMInput extends ForwardInput {
  /**
   * false: given labels, return the loss only, computed by linearCrossEntropy from the final
   * hidden states and the output weight in row chunks, so the (B, T, V) logits never exist
   * (the plain head runs instead when lm_head carries an adapter such as LoRA). Default true.
   */
  returnLogits?: boolean;
}

/** What forward returns with returnLogits: false. */
export interface CausalLMLossOutput {
  loss: Tensor;
  logits?: undefined;
}

export class CausalLM extends HeadedModel {
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

  forward(input: CausalLMInput & { returnLogits: false }): CausalLMLossOutput;
  forward(input: CausalLMInput): CausalLMOutput;
  forward(input: CausalLMInput): CausalLMOutput | CausalLMLossOutput {
    return scope(() => {
      if (input.returnLogits === false) {
        if (!input.labels || input.lastTokenOnly) throw new TemperError('forward: returnLogits: false needs labels (and no lastTokenOnly): the loss is all it returns');
        return { loss: this.headLoss(this.body.forward(input), shiftLabels(input.labels)) };
      }
      let h = this.body.forward(input);
      if (input.lastTokenOnly) h = slice(h, 1, h.shape[1]! - 1);
      const logits = this.head(h);
      if (!input.labels) return { logits };
      return { logits, loss: crossEntropy(logits, shiftLabels(input.labels)) };
    });
  }

  /** The final hidden states (B, T, C) the LM head reads. */
  hiddenStates(input: ForwardInput): Tensor {
    return this.body.forward(input);
  }

  /** Logits (..., V) of hidden states (..., C): lm_head with its adapter, or the tied embedding. */
  head(h: Tensor): Tensor {
    return this.lm_head ? this.lm_head.forward(h) : linear(h, this.body.embedWeight);
  }

  /**
   * Cross-entropy of the LM head on hidden states h (..., C) against targets (...) i32, already
   * shifted (ignoreIndex rows skipped): linearCrossEntropy in row chunks, so the logits never
   * exist, or the plain head and crossEntropy when lm_head carries an adapter. `returnArgmax`
   * adds the per-row argmax of the logits (-1 on ignored rows) for token accuracy.
   */
  headLoss(h: Tensor, targets: Tensor, opts: LinearCrossEntropyOptions & { returnArgmax: true }): { loss: Tensor; argmax: Tensor };
  headLoss(h: Tensor, targets: Tensor, opts?: LinearCrossEntropyOptions): Tensor;
  headLoss(h: Tensor, targets: Tensor, opts: LinearCrossEntropyOptions = {}): Tensor | { loss: Tensor; argmax: Tensor } {
    if (!this.lm_head?.adapter) return linearCrossEntropy(h, this.outputWeight, targets, opts);
    return scope(() => {
      const logits = this.head(h);
      const loss = crossEntropy(logits, targets, opts);
      if (!opts.returnArgmax) return loss;
      const ignore = opts.ignoreIndex ?? -100;
      const want = targets.toArray();
      const pred = noGrad(() => argmax(logits, -1).toArray() as Int32Array);
      for (let i = 0; i < pred.length; i++) if (want[i] === ignore) pred[i] = -1;
      return { loss, argmax: fromArray(pred, targets.shape, { device: targets.device }) };
    });
  }

  /**
   * Per-token log p(target) (...) of the LM head on h (..., C), 0 where the target is
   * ignoreIndex: tokenLogprobs in row chunks (no logits), or the plain head under an adapter.
   */
  headLogprobs(h: Tensor, targets: Tensor, opts: { ignoreIndex?: number; chunkRows?: number } = {}): Tensor {
    if (!this.lm_head?.adapter) return tokenLogprobs(h, this.outputWeight, targets, opts);
    return scope(() => sub(0, crossEntropy(this.head(h), targets, { ignoreIndex: opts.ignoreIndex, reduction: 'none' })));
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
