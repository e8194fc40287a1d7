// Feed-forward blocks: the gated SwiGLU MLP of the Llama family (down(act(gate(x)) * up(x)),
// through the fused swiglu kernel when act is silu) and GPT-2's c_fc -> gelu_new -> c_proj.
import { TemperError, gelu, mul, relu, scope, silu, swiglu, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import { Conv1D, Linear } from './linear.js';
import type { ParamInit } from './init.js';

export type Activation = (x: Tensor) => Tensor;

/** transformers' ACT2FN names that temper computes exactly. */
export function activation(name: string, source = 'config.json'): Activation {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu;
    case 'gelu':
      return (x) => gelu(x, 'none');
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return (x) => gelu(x, 'tanh');
    case 'relu':
      return relu;
    default:
      throw new TemperError(`${source}: activation '${name}' is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh, relu)`);
  }
}

export class GatedMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  constructor(hidden: number, intermediate: number, bias: boolean, readonly act: Activation, init: ParamInit) {
    super();
    this.gate_proj = this.child('gate_proj', new Linear(hidden, intermediate, bias, init));
    this.up_proj = this.child('up_proj', new Linear(hidden, intermediate, bias, init));
    this.down_proj = this.child('down_proj', new Linear(intermediate, hidden, bias, init));
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const gate = this.gate_proj.forward(x), up = this.up_proj.forward(x);
      // silu: the fused kernel (bitwise the unfused chain; the tape keeps no silu(gate) copy).
      const h = this.act === silu ? swiglu(gate, up) : mul(this.act(gate), up);
      return this.down_proj.forward(h);
    });
  }
}

export class GPT2MLP extends Module {
  readonly c_fc: Conv1D;
  readonly c_proj: Conv1D;
  constructor(hidden: number, inner: number, readonly act: Activation, init: ParamInit) {
    super();
    this.c_fc = this.child('c_fc', new Conv1D(hidden, inner, init));
    this.c_proj = this.child('c_proj', new Conv1D(inner, hidden, init));
  }
  forward(x: Tensor): Tensor {
    return scope(() => this.c_proj.forward(this.act(this.c_fc.forward(x))));
  }
}
