// A body plus a `score` head read at the last non-padding token of each row
// (LlamaForSequenceClassification & co.): reward models and classifiers. The pooled index
// follows transformers: the last position whose id is not pad_token_id (the last position
// when the model has no pad token, which then needs batch size 1).
import { TemperError, fromArray, indexSelect, reshape, scope, type Tensor } from '../tensor/index.js';
import { Linear, type ParamInit } from '../nn/index.js';
import type { ModelConfig } from './config.js';
import { HeadedModel, type TransformerBody } from './body.js';
import type { ForwardInput } from './inputs.js';

export interface SequenceClassifierOutput {
  /** (B, num_labels) */
  logits: Tensor;
}

export class SequenceClassifier extends HeadedModel {
  readonly score: Linear;

  constructor(readonly config: ModelConfig, readonly bodyName: string, readonly body: TransformerBody, init: ParamInit) {
    super();
    this.child(bodyName, body);
    this.score = this.child('score', new Linear(config.hiddenSize, config.numLabels, false, init));
  }

  /** Index of the pooled token in each row. */
  poolIndices(inputIds: Tensor): Int32Array {
    const [B, T] = inputIds.shape as [number, number];
    const pad = this.config.padTokenId;
    if (pad === null) {
      if (B !== 1) throw new TemperError(`${this.config.source}: cannot pool a batch of ${B} without "pad_token_id" in the config`);
      return Int32Array.of(T - 1);
    }
    const ids = inputIds.toArray();
    const out = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      // argmax over t of t * (id != pad): the first maximum, so 0 for an all-pad row.
      let best = 0;
      for (let t = 0; t < T; t++) if (ids[b * T + t] !== pad && t > best) best = t;
      out[b] = best;
    }
    return out;
  }

  forward(input: ForwardInput): SequenceClassifierOutput {
    return scope(() => {
      const [B, T] = input.inputIds.shape as [number, number];
      const h = this.body.forward(input);
      const C = h.shape[2]!;
      const rows = Array.from(this.poolIndices(input.inputIds), (t, b) => b * T + t);
      const pooled = indexSelect(reshape(h, [B * T, C]), 0, fromArray(Int32Array.from(rows), [B], { device: h.device }));
      return { logits: this.score.forward(pooled) };
    });
  }
}
