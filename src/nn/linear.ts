// Linear (torch.nn.Linear: weight (out, in), y = x W^T + b) and GPT-2's Conv1D
// (weight stored transposed as (in, out), y = x W + b). Both keep HF parameter names.
// Either may carry an `adapter` (LoRA, nn/lora.ts) whose output is added to its own.
import { add, linear, matmul, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import type { ParamInit } from './init.js';

/** A side path added to a layer's output: y = base(x) + delta(x). null = off for this call. */
export interface LinearAdapter {
  /** x (..., in) -> (..., out), or null when the adapter is switched off. */
  delta(x: Tensor): Tensor | null;
}

/** y + adapter.delta(x), freeing the two addends (the tape keeps what backward needs). */
function withAdapter(y: Tensor, x: Tensor, adapter: LinearAdapter | null): Tensor {
  const d = adapter?.delta(x);
  if (!d) return y;
  const z = add(y, d);
  y.dispose();
  d.dispose();
  return z;
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** Set by an adapter such as LoRA; null for a plain layer. */
  adapter: LinearAdapter | null = null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias: boolean, init: ParamInit) {
    super();
    this.weight = this.param('weight', init.normal([outFeatures, inFeatures]));
    this.bias = bias ? this.param('bias', init.zeros([outFeatures])) : null;
  }
  /** x (..., in) -> (..., out) */
  forward(x: Tensor): Tensor {
    return withAdapter(linear(x, this.weight, this.bias), x, this.adapter);
  }
}

export class Conv1D extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  /** Set by an adapter such as LoRA; null for a plain layer. */
  adapter: LinearAdapter | null = null;
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
    return withAdapter(z, x, this.adapter);
  }
}
