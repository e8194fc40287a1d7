// Layout ops. reshape and dim-0 slices are views (no copy); permute, transpose, other
// slices, cat and expand copy through one native strided-copy kernel.
import { record } from '../autograd.js';
import { DTYPE_CODE, DTYPE_SIZE } from '../dtype.js';
import { TemperError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { broadcastShapes, broadcastStrides, contiguousStrides, empty, kern, normAxis, numelOf, sameDevice } from './util.js';
import { toDevice, zeros } from './creation.js';

/** A view with a new shape (one dim may be -1). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  x.assertLive('reshape');
  const s = [...shape];
  const infer = s.indexOf(-1);
  if (infer !== s.lastIndexOf(-1)) throw new TemperError(`reshape: only one dim may be -1, got ${fmtShape(shape)}`);
  if (infer >= 0) {
    const rest = numelOf(s.filter((_, i) => i !== infer));
    if (rest === 0 || x.numel % rest !== 0)
      throw new TemperError(`reshape: cannot reshape ${fmtShape(x.shape)} (${x.numel} elements) to ${fmtShape(shape)}`);
    s[infer] = x.numel / rest;
  }
  if (numelOf(s) !== x.numel || s.some((d) => d < 0 || !Number.isInteger(d)))
    throw new TemperError(`reshape: cannot reshape ${fmtShape(x.shape)} (${x.numel} elements) to ${fmtShape(shape)}`);
  x.storage.retain();
  const y = new Tensor(x.storage, s, x.dtype, x.offset);
  record('reshape', [x], y);
  return y;
}

export const flatten = (x: Tensor, start = 0, end = -1): Tensor => {
  const a = normAxis('flatten', start, x.ndim), b = normAxis('flatten', end, x.ndim);
  return reshape(x, [...x.shape.slice(0, a), numelOf(x.shape.slice(a, b + 1)), ...x.shape.slice(b + 1)]);
};
export const unsqueeze = (x: Tensor, dim: number): Tensor => {
  const d = normAxis('unsqueeze', dim, x.ndim + 1);
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
};
export const squeeze = (x: Tensor, dim?: number): Tensor => {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normAxis('squeeze', dim, x.ndim);
  return x.shape[d] === 1 ? reshape(x, x.shape.filter((_, i) => i !== d)) : reshape(x, x.shape);
};

function copyInto(src: Tensor, srcStrides: number[], dst: Tensor, dstOffsetElems: number, dstStrides: number[], shape: readonly number[]): void {
  if (numelOf(shape) === 0) return;
  const es = DTYPE_SIZE[src.dtype];
  kern(src).stridedCopy(src.handle, src.byteOffset, srcStrides, dst.handle, dst.byteOffset + dstOffsetElems * es, dstStrides, shape as number[], es);
}

/** Reorders dims (a copy). */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  x.assertLive('permute');
  const nd = dims.map((d) => normAxis('permute', d, x.ndim));
  if (nd.length !== x.ndim || new Set(nd).size !== x.ndim)
    throw new TemperError(`permute: dims ${fmtShape(dims)} are not a permutation of ${x.ndim} dims`);
  const outShape = nd.map((d) => x.shape[d]!);
  const inStrides = contiguousStrides(x.shape);
  const y = empty(outShape, x.dtype, x);
  copyInto(x, nd.map((d) => inStrides[d]!), y, 0, contiguousStrides(outShape), outShape);
  record('permute', [x], y, [], { dims: nd });
  return y;
}

/** Swaps two dims (a copy). For matmul prefer its transA/transB flags, which copy nothing. */
export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  const a = normAxis('transpose', d0, x.ndim), b = normAxis('transpose', d1, x.ndim);
  const dims = [...x.shape.keys()];
  [dims[a], dims[b]] = [dims[b]!, dims[a]!];
  return permute(x, dims);
}

/** Storage is always contiguous: a new handle on the same data, kept for API familiarity. */
export function contiguous(x: Tensor): Tensor {
  return reshape(x, x.shape);
}

/** x[start:end] along dim (negative indices count from the end). A view along dim 0. */
export function slice(x: Tensor, dim: number, start: number, end?: number): Tensor {
  x.assertLive('slice');
  const d = normAxis('slice', dim, x.ndim);
  const n = x.shape[d]!;
  let s = start < 0 ? start + n : start;
  let e = end === undefined ? n : end < 0 ? end + n : end;
  s = Math.max(0, Math.min(n, s));
  e = Math.max(s, Math.min(n, e));
  const outShape = [...x.shape];
  outShape[d] = e - s;
  const inner = numelOf(x.shape.slice(d + 1));
  let y: Tensor;
  if (x.shape.slice(0, d).every((v) => v === 1)) {
    x.storage.retain();
    y = new Tensor(x.storage, outShape, x.dtype, x.offset + s * inner);
  } else {
    y = empty(outShape, x.dtype, x);
    const srcStrides = contiguousStrides(x.shape);
    const es = DTYPE_SIZE[x.dtype];
    if (y.numel > 0)
      kern(x).stridedCopy(x.handle, x.byteOffset + s * inner * es, srcStrides, y.handle, 0, contiguousStrides(outShape), outShape, es);
  }
  record('slice', [x], y, [], { dim: d, start: s });
  return y;
}

/** Backward of slice: g placed into zeros of the input shape. @internal */
export function sliceBackward(g: Tensor, inputShape: readonly number[], dim: number, start: number): Tensor {
  const out = zeros(inputShape, { device: g.device });
  const inner = numelOf(inputShape.slice(dim + 1));
  copyInto(g, contiguousStrides(g.shape), out, start * inner, contiguousStrides(inputShape), g.shape);
  return out;
}

/** Concatenates along dim. */
export function cat(ts: readonly Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new TemperError('cat: needs at least one tensor');
  const first = ts[0]!;
  ts.forEach((t) => t.assertLive('cat'));
  sameDevice('cat', ...ts);
  const d = normAxis('cat', dim, first.ndim);
  for (const t of ts) {
    if (t.dtype !== first.dtype) throw new TemperError(`cat: dtypes differ (${first.dtype} vs ${t.dtype})`);
    if (t.ndim !== first.ndim || t.shape.some((v, i) => i !== d && v !== first.shape[i]))
      throw new TemperError(`cat: shapes ${fmtShape(first.shape)} and ${fmtShape(t.shape)} differ outside dim ${d}`);
  }
  const sizes = ts.map((t) => t.shape[d]!);
  const outShape = [...first.shape];
  outShape[d] = sizes.reduce((a, b) => a + b, 0);
  const y = empty(outShape, first.dtype, first);
  const inner = numelOf(outShape.slice(d + 1));
  const dstStrides = contiguousStrides(outShape);
  let at = 0;
  for (const t of ts) {
    copyInto(t, contiguousStrides(t.shape), y, at * inner, dstStrides, t.shape);
    at += t.shape[d]!;
  }
  record('cat', [...ts], y, [], { dim: d, sizes });
  return y;
}

/** Stacks equal-shape tensors along a new dim. */
export function stack(ts: readonly Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new TemperError('stack: needs at least one tensor');
  const d = normAxis('stack', dim, ts[0]!.ndim + 1);
  const parts = ts.map((t) => unsqueeze(t, d));
  const y = cat(parts, d);
  for (const p of parts) p.dispose();
  return y;
}

/** Splits along dim into pieces of `size` (last may be smaller) or of the given sizes. */
export function split(x: Tensor, sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
  const d = normAxis('split', dim, x.ndim);
  const n = x.shape[d]!;
  let sizes: number[];
  if (typeof sizeOrSizes === 'number') {
    if (sizeOrSizes <= 0) throw new TemperError(`split: size must be positive, got ${sizeOrSizes}`);
    sizes = [];
    for (let s = 0; s < n; s += sizeOrSizes) sizes.push(Math.min(sizeOrSizes, n - s));
  } else {
    sizes = [...sizeOrSizes];
    if (sizes.reduce((a, b) => a + b, 0) !== n)
      throw new TemperError(`split: sizes ${fmtShape(sizes)} do not sum to ${n} (dim ${d} of ${fmtShape(x.shape)})`);
  }
  const out: Tensor[] = [];
  let at = 0;
  for (const s of sizes) {
    out.push(slice(x, d, at, at + s));
    at += s;
  }
  return out;
}

/** Splits into `chunks` near-equal pieces along dim. */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const n = x.shape[normAxis('chunk', dim, x.ndim)]!;
  return split(x, Math.ceil(n / chunks), dim);
}

/** Materialized broadcast to `shape` (-1 keeps a dim). Differentiable (sums back). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  x.assertLive('expand');
  const off = shape.length - x.ndim;
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - off]! : d));
  const out = broadcastShapes('expand', x.shape, target);
  if (out.join() !== target.join())
    throw new TemperError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  const y = empty(target, x.dtype, x);
  copyInto(x, broadcastStrides(x.shape, target), y, 0, contiguousStrides(target), target);
  record('expand', [x], y);
  return y;
}

/** A copy with its own storage; differentiable. */
export function clone(x: Tensor): Tensor {
  return expand(x, x.shape);
}

/**
 * In place, not recorded: dst[..., start:start+n, ...] = src along dim (n = src.shape[dim]).
 * For buffers that outlive one step, such as a KV cache. Dtypes must match.
 */
export function writeSlice(dst: Tensor, dim: number, start: number, src: Tensor): void {
  dst.assertLive('writeSlice');
  src.assertLive('writeSlice');
  sameDevice('writeSlice', dst, src);
  const d = normAxis('writeSlice', dim, dst.ndim);
  if (src.dtype !== dst.dtype) throw new TemperError(`writeSlice: dtypes differ (${src.dtype} into ${dst.dtype})`);
  if (src.ndim !== dst.ndim || src.shape.some((v, i) => i !== d && v !== dst.shape[i]) || start < 0 || start + src.shape[d]! > dst.shape[d]!)
    throw new TemperError(`writeSlice: ${fmtShape(src.shape)} does not fit ${fmtShape(dst.shape)} at ${start} along dim ${d}`);
  copyInto(src, contiguousStrides(src.shape), dst, start * numelOf(dst.shape.slice(d + 1)), contiguousStrides(dst.shape), src.shape);
}

/** In place, not recorded: dst = src (same shape; converts dtype). Loads weights into parameters. */
export function assign(dst: Tensor, src: Tensor): void {
  dst.assertLive('assign');
  src.assertLive('assign');
  if (src.device !== dst.device) {  // a checkpoint read on the host into a parameter on a GPU
    const moved = toDevice(src, dst.device);
    try {
      assign(dst, moved);
    } finally {
      moved.dispose();
    }
    return;
  }
  if (src.shape.join() !== dst.shape.join()) throw new TemperError(`assign: shape ${fmtShape(src.shape)} into ${fmtShape(dst.shape)}`);
  if (dst.numel > 0) kern(dst).cast(src.handle, src.byteOffset, DTYPE_CODE[src.dtype], dst.handle, dst.byteOffset, DTYPE_CODE[dst.dtype], dst.numel);
}
