// A preallocated key/value cache for batched decoding: per layer k and v of shape
// (B, Tcap, Hkv, D), and a (B, Tcap) i32 key mask (0 = padding) shared by all layers.
// All rows advance together (prompts are left-padded), so one `length` describes the
// batch. Rows can be dropped (finished sequences) without touching the others.
import { TemperError, indexSelect, keep, fromArray, writeSlice, zeros, type Device, type Tensor } from '../tensor/index.js';

export class KVCache implements Disposable {
  k: Tensor[];
  v: Tensor[];
  keyMask: Tensor;
  /** Rows filled so far (the same for every batch entry). */
  length = 0;

  constructor(
    numLayers: number,
    public batch: number,
    readonly capacity: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly device: Device = 'cpu',
    readonly dtype: 'f32' | 'bf16' = 'f32',
  ) {
    const shape = [batch, capacity, kvHeads, headDim];
    this.k = Array.from({ length: numLayers }, () => keep(zeros(shape, { device, dtype })));
    this.v = Array.from({ length: numLayers }, () => keep(zeros(shape, { device, dtype })));
    this.keyMask = keep(zeros([batch, capacity], { dtype: 'i32', device }));
  }

  /** Checks room for T more rows and records their key mask ((B, T) i32; all ones when absent). */
  beginStep(T: number, mask: Tensor | null): void {
    if (this.length + T > this.capacity)
      throw new TemperError(`KV cache: ${this.length} + ${T} tokens exceed its capacity of ${this.capacity}`);
    const m = mask ?? fromArray(new Int32Array(this.batch * T).fill(1), [this.batch, T], { device: this.device });
    writeSlice(this.keyMask, 1, this.length, m.dtype === 'i32' ? m : m.to('i32'));
    if (m !== mask) m.dispose();
  }

  /** Stores one layer's new keys and values ((B, T, Hkv, D)) after the filled rows. */
  write(layer: number, k: Tensor, v: Tensor): void {
    writeSlice(this.k[layer]!, 1, this.length, k);
    writeSlice(this.v[layer]!, 1, this.length, v);
  }

  /** Advances past the T rows written this step (after every layer has written). */
  endStep(T: number): void {
    this.length += T;
  }

  /** Keeps only the given batch rows, in that order (drops finished sequences). */
  selectRows(rows: readonly number[]): void {
    const idx = fromArray(Int32Array.from(rows), [rows.length], { device: this.device });
    const pick = (t: Tensor): Tensor => {
      const r = keep(indexSelect(t, 0, idx));
      t.dispose();
      return r;
    };
    this.k = this.k.map(pick);
    this.v = this.v.map(pick);
    this.keyMask = pick(this.keyMask);
    this.batch = rows.length;
    idx.dispose();
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v, this.keyMask]) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
