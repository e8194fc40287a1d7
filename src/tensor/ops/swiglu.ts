// Fused SwiGLU: silu(gate) * up in one kernel (as Liger / Unsloth), with a backward kernel that
// recomputes silu from gate. The tape saves gate and up only, where the unfused silu-then-mul
// chain also keeps silu(gate) alive until the backward. Results are bitwise that chain's on CPU.
import { record } from '../autograd.js';
import { TemperError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { DTYPE_CODE } from '../dtype.js';
import { FLOATS, check, empty, kern, sameDType, sameDevice, sameShape } from './util.js';

/**
 * silu(gate) * up, elementwise over equal shapes (no broadcasting); the gated MLP activation of
 * the Llama family. f32 or bf16 (bf16 rounds silu(gate) before the product, as the unfused chain
 * and HF do). Differentiable in both inputs.
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  check('swiglu', gate, 'gate', FLOATS);
  check('swiglu', up, 'up', FLOATS);
  sameDevice('swiglu', gate, up);
  sameDType('swiglu', gate, up);
  if (!sameShape(gate.shape, up.shape))
    throw new TemperError(`swiglu: gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} must have the same shape`);
  const out = empty(gate.shape, gate.dtype, gate);
  kern(gate).swiglu(gate.handle, gate.byteOffset, up.handle, up.byteOffset, out.handle, 0, gate.numel, DTYPE_CODE[gate.dtype]);
  record('swiglu', [gate, up], out, [gate, up]);
  return out;
}

/** [dgate, dup] from the saved gate and up and the upstream gradient g (f32). @internal */
export function swigluBackward(gate: Tensor, up: Tensor, g: Tensor): [Tensor, Tensor] {
  const dgate = empty(gate.shape, 'f32', gate);
  const dup = empty(up.shape, 'f32', up);
  kern(g).swigluBackward(gate.handle, gate.byteOffset, up.handle, up.byteOffset, g.handle, g.byteOffset, dgate.handle, 0,
    dup.handle, 0, g.numel);
  return [dgate, dup];
}
