// Creating tensors: constants, ranges, host data, and seeded random numbers.
// Random ops draw from a counter-based generator (Philox), so a seed gives the same
// numbers on any thread count; each call advances the generator's offset.
import type { Device } from '../backend.js';
import { getDefaultDevice, kernelsFor, normalizeDevice } from '../backend.js';
import { DTYPE_CODE, DTYPE_SIZE, type DType } from '../dtype.js';
import { TemperError, fmtShape } from '../errors.js';
import { Tensor, numelOf, type NestedArray } from '../tensor.js';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

function checkShape(op: string, shape: readonly number[]): void {
  if (!shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new TemperError(`${op}: shape ${fmtShape(shape)} must be non-negative integers`);
}

export function full(shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor {
  checkShape('full', shape);
  const dtype = opts.dtype ?? 'f32';
  const t = Tensor.empty(shape, dtype === 'bf16' ? 'f32' : dtype, opts.device ?? getDefaultDevice());
  kernelsFor(t.device).fill(DTYPE_CODE[t.dtype], t.handle, 0, t.numel, value);
  if (dtype === 'bf16') {
    const b = toDType(t, 'bf16');
    t.dispose();
    return finish(b, opts);
  }
  return finish(t, opts);
}
export const zeros = (shape: readonly number[], opts: CreateOptions = {}) => full(shape, 0, opts);
export const ones = (shape: readonly number[], opts: CreateOptions = {}) => full(shape, 1, opts);
export const zerosLike = (t: Tensor, opts: CreateOptions = {}) => full(t.shape, 0, { dtype: t.dtype, device: t.device, ...opts });
export const onesLike = (t: Tensor, opts: CreateOptions = {}) => full(t.shape, 1, { dtype: t.dtype, device: t.device, ...opts });
export const fullLike = (t: Tensor, v: number, opts: CreateOptions = {}) => full(t.shape, v, { dtype: t.dtype, device: t.device, ...opts });

/** 0-d tensor on `like`'s device, bf16 beside a bf16 tensor (the value rounds), else f32. @internal */
export function scalarLike(v: number, like: Tensor): Tensor {
  return full([], v, { device: like.device, dtype: like.dtype === 'bf16' ? 'bf16' : 'f32' });
}

/** [start, end) by step, like torch.arange; i32 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new TemperError('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const dtype = opts.dtype ?? (Number.isInteger(start) && Number.isInteger(step) ? 'i32' : 'f32');
  const data = dtype === 'i32' ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = start + i * step;
  return fromArray(data, [n], { ...opts, dtype });
}

/** Copies a typed array into a new tensor of the given shape. */
export function fromArray(
  data: Float32Array | Int32Array | Uint8Array | Uint16Array,
  shape: readonly number[] = [data.length],
  opts: CreateOptions = {},
): Tensor {
  checkShape('fromArray', shape);
  if (numelOf(shape) !== data.length)
    throw new TemperError(`fromArray: ${data.length} values do not fill shape ${fmtShape(shape)} (${numelOf(shape)} elements)`);
  const dtype: DType =
    opts.dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint8Array ? 'bool' : data instanceof Uint16Array ? 'bf16' : 'f32');
  const expected = { f32: Float32Array, i32: Int32Array, bool: Uint8Array, bf16: Uint16Array }[dtype];
  let src: ArrayBufferView = data;
  if (!(data instanceof expected)) {
    if (dtype === 'bf16') throw new TemperError('fromArray: bf16 data must be a Uint16Array of raw bf16 bits');
    src = (expected as typeof Float32Array).from(data as ArrayLike<number>);
  }
  const t = Tensor.empty(shape, dtype, opts.device ?? getDefaultDevice());
  if (t.numel > 0) kernelsFor(t.device).write(t.handle, 0, src);
  return finish(t, opts);
}

/** A tensor from nested JS arrays (or a number for 0-d). f32 unless a dtype is given. */
export function tensor(data: NestedArray, opts: CreateOptions = {}): Tensor {
  const shape: number[] = [];
  let probe: NestedArray = data;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0] as NestedArray;
    if (probe === undefined) break;
  }
  const flat: number[] = [];
  const walk = (x: NestedArray, dim: number): void => {
    if (dim === shape.length) {
      if (Array.isArray(x)) throw new TemperError('tensor: ragged nested array');
      flat.push(typeof x === 'boolean' ? (x ? 1 : 0) : x);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim])
      throw new TemperError(`tensor: ragged nested array at depth ${dim} (expected length ${shape[dim]})`);
    for (const v of x) walk(v, dim + 1);
  };
  walk(data, 0);
  const dtype = opts.dtype ?? (typeof probe === 'boolean' ? 'bool' : 'f32');
  const arr = dtype === 'i32' ? Int32Array.from(flat) : dtype === 'bool' ? Uint8Array.from(flat) : Float32Array.from(flat);
  if (dtype === 'bf16') {
    const f = fromArray(arr as Float32Array, shape, { ...opts, dtype: 'f32', requiresGrad: false });
    const b = toDType(f, 'bf16');
    f.dispose();
    return b;
  }
  return fromArray(arr, shape, { ...opts, dtype });
}

/** Converts to another dtype (a copy; f32 -> i32 truncates toward zero). Not differentiable. */
export function toDType(x: Tensor, dtype: DType): Tensor {
  x.assertLive('to');
  const out = Tensor.empty(x.shape, dtype, x.device);
  kernelsFor(x.device).cast(x.handle, x.byteOffset, DTYPE_CODE[x.dtype], out.handle, 0, DTYPE_CODE[dtype], x.numel);
  return out;
}

/**
 * A copy on `device` (raw bytes through host memory; CUDA stages large transfers in pinned
 * memory). Always a new tensor with its own storage, also on the same device. Not
 * differentiable: the result is a leaf, as parameters and inputs are when moved before use.
 */
export function toDevice(x: Tensor, device: Device): Tensor {
  x.assertLive('to');
  const d = normalizeDevice(device);
  if (d === x.device) return rawCopy(x);
  const out = Tensor.empty(x.shape, x.dtype, d);
  const nbytes = x.numel * DTYPE_SIZE[x.dtype];
  if (nbytes > 0) kernelsFor(d).write(out.handle, 0, new Uint8Array(kernelsFor(x.device).read(x.handle, x.byteOffset, nbytes)));
  return out;
}

/** A copy with its own storage (differentiable: it is `expand` to the same shape). */
export function rawCopy(x: Tensor): Tensor {
  x.assertLive('clone');
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  kernelsFor(x.device).cast(x.handle, x.byteOffset, DTYPE_CODE[x.dtype], out.handle, 0, DTYPE_CODE[x.dtype], x.numel);
  return out;
}

/**
 * A seeded stream of random numbers. Each draw uses the next block of counters, so a
 * run that draws the same sequence of tensors gets the same values.
 */
export class Generator {
  private offset = 0n;
  constructor(private seed: bigint | number = 0) {}
  manualSeed(seed: bigint | number): this {
    this.seed = seed;
    this.offset = 0n;
    return this;
  }
  /** Serializable state, for training checkpoints and for recompute's replay. */
  getState(): { seed: string; offset: string } {
    return { seed: BigInt(this.seed).toString(), offset: this.offset.toString() };
  }
  setState(s: { seed: string; offset: string }): void {
    this.seed = BigInt(s.seed);
    this.offset = BigInt(s.offset);
  }
  /** Reserves counters for n values; returns [seed, firstCounter]. @internal */
  take(n: number): [bigint, bigint] {
    drawObserver?.(this);
    const first = this.offset;
    this.offset += BigInt(Math.ceil(n / 4));
    return [BigInt.asUintN(64, BigInt(this.seed)), first];
  }
}

let drawObserver: ((g: Generator) => void) | null = null;
/**
 * Sets the function told about each generator just before it draws (activation recomputation
 * records the states its recomputation must replay); returns the previous one. @internal
 */
export function setDrawObserver(f: ((g: Generator) => void) | null): ((g: Generator) => void) | null {
  const prev = drawObserver;
  drawObserver = f;
  return prev;
}

/** The default generator used when none is passed. */
export const defaultGenerator = new Generator(0);
export function manualSeed(seed: number | bigint): void {
  defaultGenerator.manualSeed(seed);
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

/** Uniform in [0, 1). */
export function rand(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  checkShape('rand', shape);
  const t = Tensor.empty(shape, 'f32', opts.device ?? getDefaultDevice());
  const [seed, off] = (opts.generator ?? defaultGenerator).take(t.numel);
  kernelsFor(t.device).randUniform(t.handle, 0, t.numel, seed, off, 0, 1);
  return finish(t, opts);
}

/** Standard normal (times std, plus mean). */
export function randn(shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  checkShape('randn', shape);
  const t = Tensor.empty(shape, 'f32', opts.device ?? getDefaultDevice());
  const [seed, off] = (opts.generator ?? defaultGenerator).take(t.numel);
  kernelsFor(t.device).randNormal(t.handle, 0, t.numel, seed, off, opts.mean ?? 0, opts.std ?? 1);
  return finish(t, opts);
}

/** Integers in [lo, hi), i32. */
export function randint(lo: number, hi: number, shape: readonly number[], opts: RandomOptions = {}): Tensor {
  checkShape('randint', shape);
  if (!(hi > lo)) throw new TemperError(`randint: empty range [${lo}, ${hi})`);
  const t = Tensor.empty(shape, 'i32', opts.device ?? getDefaultDevice());
  const [seed, off] = (opts.generator ?? defaultGenerator).take(t.numel);
  kernelsFor(t.device).randInt(t.handle, 0, t.numel, seed, off, lo, hi);
  return t;
}

export { DTYPE_SIZE };
