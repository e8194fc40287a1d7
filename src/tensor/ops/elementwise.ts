// Elementwise ops: unary math and activations, broadcast binary arithmetic, comparisons,
// where and clamp. Every differentiable one records a primitive with its own grad rule.
import { record, type Primitive } from '../autograd.js';
import { TemperError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { DTYPE_CODE } from '../dtype.js';
import { FLOATS, broadcastShapes, broadcastStrides, check, empty, kern, sameDType, sameDevice } from './util.js';
import { scalarLike } from './creation.js';

/** Op codes of native/src/kernels.h UnaryOp, and what the backward needs saved (x or y). */
const UNARY = {
  neg: [0, 'none'], exp: [1, 'y'], log: [2, 'x'], sqrt: [3, 'y'], rsqrt: [4, 'y'], abs: [5, 'x'],
  silu: [6, 'x'], gelu: [7, 'x'], gelu_tanh: [8, 'x'], sigmoid: [9, 'y'], tanh: [10, 'y'],
  softplus: [11, 'x'], relu: [12, 'x'], square: [13, 'x'], reciprocal: [14, 'y'],
} as const satisfies Record<string, readonly [number, 'x' | 'y' | 'none']>;
export type UnaryName = keyof typeof UNARY;

export function unary(name: UnaryName, x: Tensor): Tensor {
  check(name, x, 'input', FLOATS);
  const y = empty(x.shape, x.dtype, x);
  kern(x).unary(UNARY[name][0], x.handle, x.byteOffset, y.handle, 0, x.numel, DTYPE_CODE[x.dtype]);
  const save = UNARY[name][1];
  record(name satisfies Primitive, [x], y, save === 'x' ? [x] : save === 'y' ? [y] : [], {});
  return y;
}

/** dx = g * f'(x) through the native backward kernel; `s` is the saved x or y. */
export function unaryBackward(name: UnaryName, s: Tensor, g: Tensor): Tensor {
  const dx = empty(g.shape, 'f32', g);
  const h = s.handle;
  kern(g).unaryBackward(UNARY[name][0], h, s.byteOffset, h, s.byteOffset, g.handle, g.byteOffset, dx.handle, 0, g.numel);
  return dx;
}

export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const abs = (x: Tensor) => unary('abs', x);
export const silu = (x: Tensor) => unary('silu', x);
/** GELU; `approximate: 'tanh'` is gelu_new / gelu_pytorch_tanh. */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none') => unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const softplus = (x: Tensor) => unary('softplus', x);
export const relu = (x: Tensor) => unary('relu', x);
export const square = (x: Tensor) => unary('square', x);
export const reciprocal = (x: Tensor) => unary('reciprocal', x);

const BINARY = { add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6 } as const;
const COMPARE = { eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12 } as const;
export type BinaryName = keyof typeof BINARY;
export type CompareName = keyof typeof COMPARE;

/** Scalars become 0-d tensors on the other operand's device; the caller disposes them. */
function operands(op: string, a: Tensor | number, b: Tensor | number): [Tensor, Tensor, Tensor[]] {
  if (typeof a === 'number' && typeof b === 'number') throw new TemperError(`${op}: at least one operand must be a tensor`);
  const temps: Tensor[] = [];
  const ta = typeof a === 'number' ? (temps.push(scalarLike(a, b as Tensor)), temps[temps.length - 1]!) : a;
  const tb = typeof b === 'number' ? (temps.push(scalarLike(b, ta)), temps[temps.length - 1]!) : b;
  return [ta, tb, temps];
}

function launchBinary(code: number, a: Tensor, b: Tensor, out: Tensor): void {
  kern(a).binary(code, a.handle, a.byteOffset, broadcastStrides(a.shape, out.shape), b.handle, b.byteOffset,
    broadcastStrides(b.shape, out.shape), out.handle, 0, out.shape as number[], DTYPE_CODE[a.dtype]);
}

export function binary(name: BinaryName, a: Tensor | number, b: Tensor | number): Tensor {
  const [ta, tb, temps] = operands(name, a, b);
  check(name, ta, 'a', FLOATS);
  check(name, tb, 'b', FLOATS);
  sameDevice(name, ta, tb);
  sameDType(name, ta, tb);
  const out = empty(broadcastShapes(name, ta.shape, tb.shape), ta.dtype, ta);
  launchBinary(BINARY[name], ta, tb, out);
  const saved = name === 'add' || name === 'sub' ? [] : name === 'pow' ? [ta, tb, out] : [ta, tb];
  record(name, [ta, tb], out, saved);
  for (const t of temps) t.dispose(); // saved copies hold their own handles
  return out;
}

export const add = (a: Tensor | number, b: Tensor | number) => binary('add', a, b);
export const sub = (a: Tensor | number, b: Tensor | number) => binary('sub', a, b);
export const mul = (a: Tensor | number, b: Tensor | number) => binary('mul', a, b);
export const div = (a: Tensor | number, b: Tensor | number) => binary('div', a, b);
export const pow = (a: Tensor | number, b: Tensor | number) => binary('pow', a, b);
/** Elementwise max; NaN propagates. */
export const maximum = (a: Tensor | number, b: Tensor | number) => binary('maximum', a, b);
export const minimum = (a: Tensor | number, b: Tensor | number) => binary('minimum', a, b);

/** Elementwise comparison to a bool tensor (not differentiable). */
export function compare(name: CompareName, a: Tensor | number, b: Tensor | number): Tensor {
  const [ta, tb, temps] = operands(name, a, b);
  check(name, ta, 'a', FLOATS);
  check(name, tb, 'b', FLOATS);
  sameDevice(name, ta, tb);
  sameDType(name, ta, tb);
  const out = empty(broadcastShapes(name, ta.shape, tb.shape), 'bool', ta);
  launchBinary(COMPARE[name], ta, tb, out);
  for (const t of temps) t.dispose();
  return out;
}
export const eq = (a: Tensor | number, b: Tensor | number) => compare('eq', a, b);
export const ne = (a: Tensor | number, b: Tensor | number) => compare('ne', a, b);
export const lt = (a: Tensor | number, b: Tensor | number) => compare('lt', a, b);
export const le = (a: Tensor | number, b: Tensor | number) => compare('le', a, b);
export const gt = (a: Tensor | number, b: Tensor | number) => compare('gt', a, b);
export const ge = (a: Tensor | number, b: Tensor | number) => compare('ge', a, b);

/** cond ? a : b with broadcasting; cond is bool. Differentiable in a and b. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  check('where', cond, 'cond', ['bool']);
  const [ta, tb, temps] = operands('where', a, b);
  check('where', ta, 'a', FLOATS);
  check('where', tb, 'b', FLOATS);
  sameDevice('where', cond, ta, tb);
  sameDType('where', ta, tb);
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, ta.shape), tb.shape);
  const out = empty(shape, ta.dtype, ta);
  kern(ta).where(cond.handle, cond.byteOffset, broadcastStrides(cond.shape, shape), ta.handle, ta.byteOffset,
    broadcastStrides(ta.shape, shape), tb.handle, tb.byteOffset, broadcastStrides(tb.shape, shape), out.handle, 0, shape, DTYPE_CODE[ta.dtype]);
  record('where', [null, ta, tb], out, [cond]);
  for (const t of temps) t.dispose(); // saved copies hold their own handles
  return out;
}

/** Clamps into [lo, hi]; gradient passes where lo <= x <= hi (as torch). */
export function clamp(x: Tensor, lo = -Infinity, hi = Infinity): Tensor {
  check('clamp', x, 'input', FLOATS);
  const y = empty(x.shape, x.dtype, x);
  kern(x).clamp(x.handle, x.byteOffset, y.handle, 0, x.numel, lo, hi, DTYPE_CODE[x.dtype]);
  record('clamp', [x], y, [x], { lo, hi });
  return y;
}
