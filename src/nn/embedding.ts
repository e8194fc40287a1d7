// Token (and GPT-2 position) embedding table: weight (V, C), lookup by i32 ids.
import { embedding, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import type { ParamInit } from './init.js';

export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly dim: number, init: ParamInit) {
    super();
    this.weight = this.param('weight', init.normal([numEmbeddings, dim]));
  }
  /** ids (...) i32 -> (..., C) */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
