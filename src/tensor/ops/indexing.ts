// Indexing: index_select (and embedding lookup), gather, scatter_add, one_hot.
// Ids are i32; an out-of-range id is an error naming its position, never a wild read.
import { record } from '../autograd.js';
import { DTYPE_SIZE } from '../dtype.js';
import { TemperError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { check, empty, kern, normAxis, numelOf, sameDevice } from './util.js';
import { rawCopy, zeros } from './creation.js';
import { reshape } from './shape.js';

function badIndex(op: string, code: number, idx: Tensor, limit: number): TemperError {
  const pos = -code - 1;
  const value = idx.toArray()[pos];
  return new TemperError(`${op}: index ${value} at position ${pos} is out of range [0, ${limit})`);
}

/** Rows of x along dim picked by a 1-d i32 index. */
export function indexSelect(x: Tensor, dim: number, idx: Tensor): Tensor {
  check('indexSelect', x, 'input', ['f32', 'i32', 'bool', 'bf16']);
  check('indexSelect', idx, 'index', ['i32']);
  sameDevice('indexSelect', x, idx);
  if (idx.ndim !== 1) throw new TemperError(`indexSelect: index must be 1-d, got ${fmtShape(idx.shape)}`);
  const d = normAxis('indexSelect', dim, x.ndim);
  const outShape = [...x.shape];
  outShape[d] = idx.numel;
  const y = empty(outShape, x.dtype, x);
  const outer = numelOf(x.shape.slice(0, d)), inner = numelOf(x.shape.slice(d + 1));
  const code = kern(x).indexSelect(x.handle, x.byteOffset, idx.handle, idx.byteOffset, y.handle, 0, outer, x.shape[d]!, idx.numel, inner, DTYPE_SIZE[x.dtype]);
  if (code < 0) {
    y.dispose();
    throw badIndex('indexSelect', code, idx, x.shape[d]!);
  }
  if (x.dtype === 'f32') record('index_select', [x, null], y, [idx], { dim: d });
  return y;
}

/** Embedding lookup: weight (V, C), ids (...) i32 -> (..., C). */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.ndim !== 2) throw new TemperError(`embedding: weight must be (V, C), got ${fmtShape(weight.shape)}`);
  check('embedding', ids, 'ids', ['i32']);
  const flat = ids.ndim === 1 ? ids : new Tensor((ids.storage.retain(), ids.storage), [ids.numel], 'i32', ids.offset);
  let rows: Tensor;
  try {
    rows = indexSelect(weight, 0, flat);
  } catch (e) {
    if (e instanceof TemperError) throw new TemperError(`embedding: ${e.message.replace(/^indexSelect: /, '')} (vocabulary size ${weight.shape[0]})`);
    throw e;
  } finally {
    if (flat !== ids) flat.dispose();
  }
  if (ids.ndim === 1) return rows;
  const y = reshape(rows, [...ids.shape, weight.shape[1]!]);
  rows.dispose();
  return y;
}

/** out[o, i, j] = x[o, idx[o, i, j], j] along dim; idx matches x outside dim. */
export function gather(x: Tensor, dim: number, idx: Tensor): Tensor {
  check('gather', x, 'input');
  check('gather', idx, 'index', ['i32']);
  sameDevice('gather', x, idx);
  const d = normAxis('gather', dim, x.ndim);
  if (idx.ndim !== x.ndim || idx.shape.some((v, i) => i !== d && v !== x.shape[i]))
    throw new TemperError(`gather: index shape ${fmtShape(idx.shape)} must match input ${fmtShape(x.shape)} outside dim ${d}`);
  const y = empty(idx.shape, 'f32', x);
  const outer = numelOf(x.shape.slice(0, d)), inner = numelOf(x.shape.slice(d + 1));
  const code = kern(x).gather(x.handle, x.byteOffset, idx.handle, idx.byteOffset, y.handle, 0, outer, x.shape[d]!, idx.shape[d]!, inner);
  if (code < 0) {
    y.dispose();
    throw badIndex('gather', code, idx, x.shape[d]!);
  }
  record('gather', [x, null], y, [idx], { dim: d });
  return y;
}

/** A copy of x with src added at idx along dim (torch.scatter_add). Differentiable in x and src. */
export function scatterAdd(x: Tensor, dim: number, idx: Tensor, src: Tensor): Tensor {
  check('scatterAdd', x, 'input');
  check('scatterAdd', src, 'src');
  check('scatterAdd', idx, 'index', ['i32']);
  sameDevice('scatterAdd', x, idx, src);
  const d = normAxis('scatterAdd', dim, x.ndim);
  if (idx.shape.join() !== src.shape.join() || idx.ndim !== x.ndim || idx.shape.some((v, i) => i !== d && v !== x.shape[i]))
    throw new TemperError(`scatterAdd: index ${fmtShape(idx.shape)} and src ${fmtShape(src.shape)} must match each other, and input ${fmtShape(x.shape)} outside dim ${d}`);
  const y = rawCopy(x);
  scatterAddInto(y, d, idx, src, false);
  record('scatter_add', [x, null, src], y, [idx], { dim: d });
  return y;
}

/** In-place accumulate (no autograd): out[.., idx, ..] += src. shared = idx is 1-d along dim. @internal */
export function scatterAddInto(out: Tensor, d: number, idx: Tensor, src: Tensor, shared: boolean): void {
  const outer = numelOf(out.shape.slice(0, d)), inner = numelOf(out.shape.slice(d + 1));
  const I = shared ? idx.numel : idx.shape[d]!;
  const code = kern(out).scatterAdd(out.handle, out.byteOffset, idx.handle, idx.byteOffset, src.handle, src.byteOffset, outer, out.shape[d]!, I, inner, shared ? 1 : 0);
  if (code < 0) throw badIndex('scatterAdd', code, idx, out.shape[d]!);
}

/** Backward of indexSelect: zeros with g rows added at idx. @internal */
export function indexAdd(shape: readonly number[], d: number, idx: Tensor, g: Tensor): Tensor {
  const out = zeros(shape, { device: g.device });
  scatterAddInto(out, d, idx, g, true);
  return out;
}

/** One-hot rows: idx (...) i32 -> (..., C) f32 (f32 rather than torch's int64, to feed matmul directly). */
export function oneHot(idx: Tensor, numClasses: number): Tensor {
  check('oneHot', idx, 'index', ['i32']);
  const y = empty([...idx.shape, numClasses], 'f32', idx);
  const code = kern(idx).oneHot(idx.handle, idx.byteOffset, y.handle, 0, idx.numel, numClasses);
  if (code < 0) {
    y.dispose();
    throw badIndex('oneHot', code, idx, numClasses);
  }
  return y;
}

