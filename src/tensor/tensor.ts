// Tensor: shape, dtype, device and a handle on native storage, plus autograd state.
// Storage is always contiguous; reshape and dim-0 slices are views (shared storage with an
// offset), every other layout change is an explicit copy. Ops live in ./ops, methods in ./methods.
import type { Device } from './backend.js';
import { getDefaultDevice, kernelsFor, normalizeDevice } from './backend.js';
import { DTYPE_CODE, DTYPE_SIZE, type DType, hostArrayFor } from './dtype.js';
import { TemperError, fmtShape } from './errors.js';
import { track, untrack } from './scope.js';
import { Storage } from './storage.js';
import type { GradNode } from './autograd.js';
import { releaseNodeRef } from './autograd.js';
import { installMethods } from './methods.js';

let nextId = 1;
let liveTensors = 0;

export type NestedArray = number | boolean | NestedArray[];

export class Tensor implements Disposable {
  readonly __isTensor = true;
  readonly id = nextId++;
  /** Gradient accumulated by backward(); owned by this tensor. */
  grad: Tensor | null = null;
  /** The node that produced this tensor when it was recorded on the tape. */
  gradFn: GradNode | null = null;
  private _requiresGrad = false;
  private _disposed = false;

  private _storage: Storage;
  private _offset: number;
  private _dtype: DType;

  /** @internal use the creation functions or ops. */
  constructor(
    storage: Storage,
    readonly shape: readonly number[],
    dtype: DType,
    /** Offset into storage, in elements. */
    offset = 0,
  ) {
    this._dtype = dtype;
    this._storage = storage;
    this._offset = offset;
    liveTensors++;
    track(this);
  }

  get dtype(): DType {
    return this._dtype;
  }
  get storage(): Storage {
    return this._storage;
  }
  /** Offset into storage, in elements. */
  get offset(): number {
    return this._offset;
  }

  /**
   * Moves the data to another device in place, keeping this object (and its .grad), as
   * torch's `module.to(device)` does for parameters. Only for tensors that own their storage
   * alone: a view would be left behind on the old device. @internal use Module.to or .to(device).
   */
  relocate(device: Device): void {
    this.assertLive('to');
    const target = normalizeDevice(device);
    if (target === this.device) return;
    if (this._storage.holders > 1)
      throw new TemperError(`to(${target}): tensor #${this.id} (shape ${fmtShape(this.shape)}) shares its storage with a view; move a copy instead`);
    const nbytes = this.numel * DTYPE_SIZE[this.dtype];
    const next = Storage.allocate(target, nbytes);
    if (nbytes > 0)
      kernelsFor(target).write(next.handle, 0, new Uint8Array(kernelsFor(this.device).read(this.handle, this.byteOffset, nbytes)));
    this._storage.release();
    this._storage = next;
    this._offset = 0;
    this.grad?.relocate(target);
  }

  /**
   * Converts the data to another float dtype in place, keeping this object, as torch's
   * `module.to(torch.bfloat16)` does for parameters. bf16 tensors do not take gradients, so a
   * parameter converted to bf16 stops requiring grad (and loses .grad); back to f32 it trains
   * again. @internal use Module.to.
   */
  retype(dtype: 'f32' | 'bf16'): void {
    this.assertLive('to');
    if (dtype === this._dtype) return;
    if (this._dtype !== 'f32' && this._dtype !== 'bf16')
      throw new TemperError(`to(${dtype}): tensor #${this.id} is ${this._dtype}; only float tensors change dtype in place`);
    if (this.gradFn) throw new TemperError(`to(${dtype}): tensor #${this.id} is not a leaf; convert a copy with .to()`);
    if (this._storage.holders > 1)
      throw new TemperError(`to(${dtype}): tensor #${this.id} (shape ${fmtShape(this.shape)}) shares its storage with a view; convert a copy instead`);
    const next = Storage.allocate(this.device, this.numel * DTYPE_SIZE[dtype]);
    if (this.numel > 0) kernelsFor(this.device).cast(this.handle, this.byteOffset, DTYPE_CODE[this._dtype], next.handle, 0, DTYPE_CODE[dtype], this.numel);
    this._storage.release();
    this._storage = next;
    this._offset = 0;
    this.zeroGrad();
    this._dtype = dtype;
    this._requiresGrad = dtype === 'f32';
  }

  /** A fresh, uninitialised tensor. @internal */
  static empty(shape: readonly number[], dtype: DType = 'f32', device: Device = getDefaultDevice()): Tensor {
    const n = numelOf(shape);
    return new Tensor(Storage.allocate(device, n * DTYPE_SIZE[dtype]), [...shape], dtype);
  }

  get device(): Device {
    return this.storage.device;
  }
  get numel(): number {
    return numelOf(this.shape);
  }
  get ndim(): number {
    return this.shape.length;
  }
  get disposed(): boolean {
    return this._disposed;
  }
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }
  /** Leaf tensors only: marks a parameter whose .grad backward() fills. */
  set requiresGrad(v: boolean) {
    if (this.gradFn && !v) throw new TemperError('requiresGrad: cannot turn off on a non-leaf tensor; use detach()');
    if (v && this.dtype !== 'f32') throw new TemperError(`requiresGrad: only f32 tensors can require grad, got ${this.dtype}`);
    this._requiresGrad = v;
  }
  get isLeaf(): boolean {
    return this.gradFn === null;
  }
  /** Byte offset into the native allocation. */
  get byteOffset(): number {
    return this.offset * DTYPE_SIZE[this.dtype];
  }
  get handle() {
    this.assertLive('tensor');
    return this.storage.handle;
  }

  size(dim: number): number {
    const d = dim < 0 ? dim + this.ndim : dim;
    if (d < 0 || d >= this.ndim) throw new TemperError(`size: dim ${dim} out of range for shape ${fmtShape(this.shape)}`);
    return this.shape[d]!;
  }

  /** Throws a clear error if this tensor was disposed. */
  assertLive(op: string): void {
    if (this._disposed)
      throw new TemperError(`${op}: tensor #${this.id} (shape ${fmtShape(this.shape)}, ${this.dtype}) was used after dispose()`);
  }

  /** Frees this handle (and its grad); the storage is freed when no view still holds it. Idempotent. */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    liveTensors--;
    untrack(this);
    this.storage.release();
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    if (this.gradFn) {
      releaseNodeRef(this.gradFn);
      this.gradFn = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A new handle on the same storage, without autograd history. */
  detach(): Tensor {
    this.assertLive('detach');
    this.storage.retain();
    return new Tensor(this.storage, this.shape, this.dtype, this.offset);
  }

  /** Frees .grad. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  /** Copies the elements to a host typed array (bf16 widens to Float32Array). */
  toArray(): Float32Array | Int32Array | Uint8Array {
    this.assertLive('toArray');
    const k = kernelsFor(this.device);
    if (this.dtype === 'bf16') {
      const tmp = Tensor.empty(this.shape, 'f32', this.device);
      try {
        k.cast(this.handle, this.byteOffset, 3, tmp.handle, 0, 0, this.numel);
        return tmp.toArray();
      } finally {
        tmp.dispose();
      }
    }
    const buf = k.read(this.handle, this.byteOffset, this.numel * DTYPE_SIZE[this.dtype]);
    return hostArrayFor(this.dtype, buf);
  }

  /** Nested JS arrays (numbers; booleans for bool). */
  toNested(): NestedArray {
    const flat = this.toArray();
    const asVal = (i: number): number | boolean => (this.dtype === 'bool' ? flat[i] !== 0 : flat[i]!);
    if (this.ndim === 0) return asVal(0);
    const build = (dim: number, base: number): NestedArray[] => {
      const n = this.shape[dim]!;
      const stride = numelOf(this.shape.slice(dim + 1));
      const out: NestedArray[] = [];
      for (let i = 0; i < n; i++)
        out.push(dim === this.ndim - 1 ? asVal(base + i) : build(dim + 1, base + i * stride));
      return out;
    };
    return build(0, 0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new TemperError(`item: tensor has ${this.numel} elements (shape ${fmtShape(this.shape)}), expected 1`);
    return this.toArray()[0]!;
  }

  toString(): string {
    if (this.disposed) return `Tensor(disposed, shape=${fmtShape(this.shape)}, ${this.dtype})`;
    const body = this.numel <= 64 ? JSON.stringify(this.toNested()) : `<${this.numel} elements>`;
    return `Tensor(${body}, shape=${fmtShape(this.shape)}, ${this.dtype}${this.gradFn ? `, grad_fn=${this.gradFn.prim}` : ''})`;
  }
}
installMethods(Tensor);

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/**
 * Allocator and handle counts, for leak tests and memory reports. liveBytes/peakBytes count
 * tensor storage; cachedBytes is freed memory kept for reuse; leakedBytes counts handles the
 * garbage collector found undisposed (reported, never freed by it).
 */
export function memoryStats(device: Device = getDefaultDevice()): {
  liveBytes: number;
  peakBytes: number;
  cachedBytes: number;
  leakedBytes: number;
  liveTensors: number;
} {
  return { ...kernelsFor(device).stats(), liveTensors };
}

/** Returns cached free blocks to the system. */
export function emptyCache(device: Device = getDefaultDevice()): void {
  kernelsFor(device).emptyCache();
}

export function resetPeakMemory(device: Device = getDefaultDevice()): void {
  kernelsFor(device).resetPeak();
}
