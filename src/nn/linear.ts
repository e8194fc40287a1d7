// Linear (torch.nn.Linear: weight (out, in), y = x W^T + b) and GPT-2's Conv1D
// (weight stored transposed as (in, out), y = x W + b). Both keep HF parameter names.
import { add, linear, matmul, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import type { ParamInit } from './init.js';

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias: boolean, init: ParamInit) {
    super();
    this.weight = this.param('weight', init.normal([outFeatures, inFeatures]));
    this.bias = bias ? this.param('bias', init.zeros([outFeatures])) : null;
  }
  /** x (..., in) -> (..., out) */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class Conv1D extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly inFeatures: number, readonly outFeatures: number, init: ParamInit) {
    super();
    this.weight = this.param('weight', init.normal([inFeatures, outFeatures]));
    this.bias = this.param('bias', init.zeros([outFeatures]));
  }
  /** x (..., in) -> (..., out) */
  forward(x: Tensor): Tensor {
    const y = matmul(x, this.weight);
    const z = add(y, this.bias);
    y.dispose();
    return z;
  }
}
