// Neural-net building blocks that are not fused kernels: softmax/log_softmax, cumsum,
// sort/topk (sampling needs them) and seeded dropout.
import { record } from '../autograd.js';
import { TemperError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { DTYPE_CODE } from '../dtype.js';
import { FLOATS, check, empty, kern, normAxis, numelOf } from './util.js';
import { reshape, transpose } from './shape.js';
import { defaultGenerator, type Generator } from './creation.js';

function lastDim<T>(op: string, x: Tensor, dim: number, f: (x: Tensor) => T, back: (r: T) => T): T {
  const d = normAxis(op, dim, x.ndim);
  if (d === x.ndim - 1 || x.ndim === 0) return f(x);
  const xt = transpose(x, d, -1);
  const r = f(xt);
  xt.dispose();
  return back(r);
}

function softmaxImpl(x: Tensor, dim: number, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  check(op, x, 'input', FLOATS);
  return lastDim(op, x, dim, (v) => {
    const C = v.ndim ? v.shape[v.ndim - 1]! : 1;
    const y = empty(v.shape, v.dtype, v);
    kern(v).softmax(v.handle, v.byteOffset, y.handle, 0, v.numel / Math.max(C, 1), C, log ? 1 : 0, DTYPE_CODE[v.dtype]);
    record(log ? 'log_softmax' : 'softmax', [v], y, [y]);
    return y;
  }, (y) => {
    const r = transpose(y, normAxis(op, dim, x.ndim), -1);
    y.dispose();
    return r;
  });
}

export const softmax = (x: Tensor, dim = -1) => softmaxImpl(x, dim, false);
export const logSoftmax = (x: Tensor, dim = -1) => softmaxImpl(x, dim, true);

/** Inclusive prefix sum along dim. */
export function cumsum(x: Tensor, dim = -1, reverse = false): Tensor {
  check('cumsum', x, 'input');
  const d = normAxis('cumsum', dim, x.ndim);
  const y = empty(x.shape, 'f32', x);
  kern(x).cumsum(x.handle, x.byteOffset, y.handle, 0, numelOf(x.shape.slice(0, d)), x.shape[d] ?? 1, numelOf(x.shape.slice(d + 1)), reverse ? 1 : 0);
  record('cumsum', [x], y, [], { dim: d, reverse });
  return y;
}

function sortLast(x: Tensor, k: number, desc: boolean): { values: Tensor; indices: Tensor } {
  const C = x.shape[x.ndim - 1]!;
  const N = x.numel / Math.max(C, 1);
  const shape = [...x.shape.slice(0, -1), k];
  const values = empty(shape, 'f32', x);
  const indices = empty(shape, 'i32', x);
  kern(x).sortRows(x.handle, x.byteOffset, values.handle, 0, indices.handle, 0, N, C, k, desc ? 1 : 0);
  record('sort_values', [x], values, [indices], { C });
  return { values, indices };
}

/** Stable sort along the last dim; indices are i32. NaN sorts as the largest value. */
export function sort(x: Tensor, opts: { descending?: boolean } = {}): { values: Tensor; indices: Tensor } {
  check('sort', x, 'input');
  if (x.ndim === 0) throw new TemperError('sort: input must be at least 1-d');
  return sortLast(x, x.shape[x.ndim - 1]!, !!opts.descending);
}

/** The k largest (or smallest) entries of the last dim, sorted. */
export function topk(x: Tensor, k: number, opts: { largest?: boolean } = {}): { values: Tensor; indices: Tensor } {
  check('topk', x, 'input');
  if (x.ndim === 0) throw new TemperError('topk: input must be at least 1-d');
  const C = x.shape[x.ndim - 1]!;
  if (!Number.isInteger(k) || k < 0 || k > C) throw new TemperError(`topk: k = ${k} is out of range for a last dim of ${C}`);
  return sortLast(x, k, opts.largest ?? true);
}

/** Zeroes each element with probability p and scales the rest by 1/(1-p); identity when not training. */
export function dropout(x: Tensor, p: number, opts: { training?: boolean; generator?: Generator } = {}): Tensor {
  check('dropout', x, 'input');
  if (!(p >= 0 && p <= 1)) throw new TemperError(`dropout: p must be in [0, 1], got ${p}`);
  // A same-shape view keeps the graph connected without copying.
  if (opts.training === false || p === 0) return reshape(x, x.shape);
  const y = empty(x.shape, 'f32', x);
  const mask = empty(x.shape, 'f32', x);
  const [seed, off] = (opts.generator ?? defaultGenerator).take(x.numel);
  kern(x).dropout(x.handle, x.byteOffset, y.handle, 0, mask.handle, 0, x.numel, seed, off, p);
  record('dropout', [x], y, [mask]);
  mask.dispose();
  return y;
}
