// Shared checks and shape arithmetic for ops: dtype/device guards, broadcasting, axes.
import { type Kernels, kernelsFor } from '../backend.js';
import type { DType } from '../dtype.js';
import { TemperError, fmtShape } from '../errors.js';
import { Tensor, numelOf } from '../tensor.js';

export { numelOf };

export function kern(t: Tensor): Kernels {
  return kernelsFor(t.device);
}

/** Asserts the tensor is alive and of one of the dtypes the op accepts. */
export function check(op: string, t: Tensor, name: string, dtypes: readonly DType[] = ['f32']): void {
  t.assertLive(op);
  if (!dtypes.includes(t.dtype))
    throw new TemperError(`${op}: ${name} has dtype ${t.dtype}; this op takes ${dtypes.join(' or ')}${t.dtype === 'bf16' ? " (convert with .to('f32'))" : ''}`);
}

/** The dtypes forward math takes: f32, and bf16 (f32 inside, rounded once; never recorded for autograd). */
export const FLOATS: readonly DType[] = ['f32', 'bf16'];

/** Operands of one op share a float dtype (no implicit promotion). */
export function sameDType(op: string, ...ts: (Tensor | null | undefined)[]): void {
  const ds = new Set(ts.filter((t): t is Tensor => !!t).map((t) => t.dtype));
  if (ds.size > 1) throw new TemperError(`${op}: operands have dtypes ${[...ds].join(' and ')}; convert with .to('f32') or .to('bf16')`);
}

export function sameDevice(op: string, ...ts: (Tensor | null | undefined)[]): void {
  const devs = new Set(ts.filter((t): t is Tensor => !!t).map((t) => t.device));
  if (devs.size > 1) throw new TemperError(`${op}: tensors are on different devices (${[...devs].join(', ')}); move them with .to(device)`);
}

export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new TemperError(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together (dim ${i}: ${da} vs ${db})`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Element strides of `shape` read as broadcast to `target` (0 along broadcast dims). */
export function broadcastStrides(shape: readonly number[], target: readonly number[]): number[] {
  const own = contiguousStrides(shape);
  const off = target.length - shape.length;
  return target.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : own[i - off]!));
}

export function normAxis(op: string, axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= Math.max(ndim, 1)) throw new TemperError(`${op}: axis ${axis} is out of range for a ${ndim}-d tensor`);
  return a;
}

export function normAxes(op: string, axes: number | readonly number[] | undefined, ndim: number): number[] {
  if (axes === undefined) return [...Array(ndim).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(op, a, ndim)))].sort((x, y) => x - y);
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function empty(shape: readonly number[], dtype: DType, like: Tensor): Tensor {
  return Tensor.empty(shape, dtype, like.device);
}
