// Reductions over any set of axes with keepdim. Contiguous axis runs reduce in place as
// (outer, R, inner); scattered axes are first permuted to the end (one copy).
import { record, type Primitive } from '../autograd.js';
import { TemperError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { DTYPE_CODE } from '../dtype.js';
import { FLOATS, check, empty, kern, normAxes, normAxis, numelOf } from './util.js';
import { permute, reshape } from './shape.js';

const REDUCE = { sum: 0, mean: 1, max: 2, min: 3, logsumexp: 4, argmax: 5, argmin: 6, var: 7 } as const;
type ReduceName = keyof typeof REDUCE;

export function keepdimShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function launch(name: ReduceName, x: Tensor, axes: number[], keepdim: boolean, correction = 0): Tensor {
  check(name, x, 'input', FLOATS);
  const kept = keepdimShape(x.shape, axes);
  const outShape = keepdim ? kept : x.shape.filter((_, i) => !axes.includes(i));
  const R = numelOf(axes.map((a) => x.shape[a]!));
  if (R === 0 && name !== 'sum' && name !== 'mean')
    throw new TemperError(`${name}: cannot reduce over an empty dim`);
  const y = empty(outShape, name === 'argmax' || name === 'argmin' ? 'i32' : x.dtype, x);
  const contiguousRun = axes.length === 0 || axes[axes.length - 1]! - axes[0]! === axes.length - 1;
  let src = x;
  let outer: number, inner: number;
  if (contiguousRun && axes.length > 0) {
    outer = numelOf(x.shape.slice(0, axes[0]));
    inner = numelOf(x.shape.slice(axes[axes.length - 1]! + 1));
  } else {
    const rest = [...x.shape.keys()].filter((i) => !axes.includes(i));
    src = permute(x, [...rest, ...axes]);
    outer = numelOf(rest.map((i) => x.shape[i]!));
    inner = 1;
  }
  kern(x).reduce(REDUCE[name], src.handle, src.byteOffset, y.handle, 0, outer, R, inner, correction, DTYPE_CODE[x.dtype]);
  if (src !== x) src.dispose();
  return y;
}

function reduction(name: ReduceName & Primitive, x: Tensor, axes: number | readonly number[] | undefined, keepdim: boolean, correction = 0): Tensor {
  const ax = normAxes(name, axes, x.ndim);
  const y = launch(name, x, ax, keepdim, correction);
  const saved = name === 'sum' || name === 'mean' ? [] : name === 'var' ? [x] : [x, y];
  record(name, [x], y, saved, { axes: ax, keepdim, correction });
  return y;
}

/** Sum over axes (all by default). */
export const sum = (x: Tensor, axes?: number | readonly number[], keepdim = false) => reduction('sum', x, axes, keepdim);
export const mean = (x: Tensor, axes?: number | readonly number[], keepdim = false) => reduction('mean', x, axes, keepdim);
/** Max values over axes (amax: gradient split evenly among ties). */
export const max = (x: Tensor, axes?: number | readonly number[], keepdim = false) => reduction('max', x, axes, keepdim);
export const min = (x: Tensor, axes?: number | readonly number[], keepdim = false) => reduction('min', x, axes, keepdim);
export const logsumexp = (x: Tensor, axes?: number | readonly number[], keepdim = false) => reduction('logsumexp', x, axes, keepdim);
/** Variance with `correction` (1 = unbiased, torch's default). */
export const variance = (x: Tensor, axes?: number | readonly number[], keepdim = false, correction = 1) =>
  reduction('var', x, axes, keepdim, correction);

/** Index of the max along one axis (first on ties; NaN wins), i32. */
export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  return launch('argmax', x, [normAxis('argmax', axis, x.ndim)], keepdim);
}
export function argmin(x: Tensor, axis = -1, keepdim = false): Tensor {
  return launch('argmin', x, [normAxis('argmin', axis, x.ndim)], keepdim);
}

/** Sums a broadcast gradient back to `shape` (the inverse of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.join() === shape.join()) return g.detach();
  const off = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < off || (shape[i - off] === 1 && g.shape[i] !== 1)) axes.push(i);
  const s = launch('sum', g, axes, true);
  const r = reshape(s, shape);
  s.dispose();
  return r;
}
