// RMSNorm (Llama family, Qwen3's per-head q/k norm) and LayerNorm (GPT-2), over the last dim.
import { layerNorm, rmsNorm, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import type { ParamInit } from './init.js';

export class RMSNorm extends Module {
  readonly weight: Tensor;
  constructor(dim: number, readonly eps: number, init: ParamInit) {
    super();
    this.weight = this.param('weight', init.ones([dim]));
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(dim: number, readonly eps: number, init: ParamInit) {
    super();
    this.weight = this.param('weight', init.ones([dim]));
    this.bias = this.param('bias', init.zeros([dim]));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
