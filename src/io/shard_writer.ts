// A streaming safetensors checkpoint writer: tensors are appended one at a time and a shard
// is written (temp file, then renamed) as soon as the next tensor would overflow it, so
// memory is bounded by one shard. Layout as transformers/mergekit: model.safetensors or
// model-0000i-of-0000N.safetensors + model.safetensors.index.json, written last.
// Not a reader (see sharded.ts), and it does not sort tensors: file order = add order.
import { closeSync, existsSync, openSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError } from '../tensor/index.js';
import { encodeHeader, f32ToF16, type SaveDType } from './safetensors.js';
import { parseSize } from './sharded.js';

const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';

/** float32 -> bfloat16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) out[i] = (x >>> 16) | 0x40;
    else out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** Bytes of float32 values stored as `dtype`. */
export function floatBytes(values: Float32Array, dtype: SaveDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const h = dtype === 'F16' ? f32ToF16(values) : f32ToBf16(values);
  return new Uint8Array(h.buffer);
}

interface Pending {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export interface ShardWriterOptions {
  /** Largest shard in bytes before a new one starts (default "5GB"); a bigger tensor gets its own. */
  maxShardSize?: string | number;
  /** Extra __metadata__ entries ({"format":"pt"} is always written). */
  metadata?: Record<string, string>;
}

/**
 * @example
 * const w = new ShardWriter(dir, { maxShardSize: '2GB' });
 * w.add('lm_head.weight', 'F32', [V, C], bytes);
 * const { files } = w.finish();
 */
export class ShardWriter {
  private readonly limit: number;
  private current: Pending[] = [];
  private currentBytes = 0;
  private readonly temps: { tmp: string; names: string[] }[] = [];
  private totalSize = 0;
  private done = false;

  constructor(readonly dir: string, private readonly opts: ShardWriterOptions = {}) {
    this.limit = parseSize(opts.maxShardSize ?? '5GB');
  }

  /** Appends one tensor; `bytes` must stay unchanged until the shard is flushed (it is not copied). */
  add(name: string, dtype: string, shape: readonly number[], bytes: Uint8Array): void {
    if (this.done) throw new TemperError('ShardWriter: add() after finish()');
    if (this.current.length > 0 && this.currentBytes + bytes.byteLength > this.limit) this.flush();
    this.current.push({ name, dtype, shape: [...shape], bytes });
    this.currentBytes += bytes.byteLength;
    this.totalSize += bytes.byteLength;
  }

  /** Bytes added so far. */
  get bytes(): number {
    return this.totalSize;
  }

  private flush(): void {
    if (this.current.length === 0) return;
    const head = encodeHeader(this.current.map((p) => ({ name: p.name, dtype: p.dtype, shape: p.shape, nbytes: p.bytes.byteLength })), this.opts.metadata);
    const tmp = join(this.dir, `.shard-${this.temps.length + 1}.tmp-${process.pid}`);
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, head);
      for (const p of this.current) {
        let off = 0;
        while (off < p.bytes.byteLength) off += writeSync(fd, p.bytes, off, p.bytes.byteLength - off);
      }
    } finally {
      closeSync(fd);
    }
    this.temps.push({ tmp, names: this.current.map((p) => p.name) });
    this.current = [];
    this.currentBytes = 0;
  }

  /** Writes the last shard, renames shards to their final names, writes the index; removes stale shards. */
  finish(): { files: string[]; totalSize: number; weightMap: Record<string, string> } {
    this.flush();
    this.done = true;
    const K = this.temps.length;
    const files = K <= 1 ? [SINGLE] : this.temps.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(K).padStart(5, '0')}.safetensors`);
    if (K === 0) writeFileSync(join(this.dir, SINGLE), encodeHeader([], this.opts.metadata)); // no tensors: an empty but valid file
    const weightMap: Record<string, string> = {};
    this.temps.forEach((t, i) => {
      renameSync(t.tmp, join(this.dir, files[i]!));
      for (const n of t.names) weightMap[n] = files[i]!;
    });
    const stale = readdirSync(this.dir).filter((f) => (/^model-\d{5}-of-\d{5}\.safetensors$/.test(f) || f === SINGLE) && !files.includes(f));
    for (const f of stale) rmSync(join(this.dir, f));
    if (K > 1) {
      const tmp = join(this.dir, `.${INDEX}.tmp-${process.pid}`);
      writeFileSync(tmp, JSON.stringify({ metadata: { total_size: this.totalSize }, weight_map: weightMap }, null, 2) + '\n');
      renameSync(tmp, join(this.dir, INDEX));
    } else if (existsSync(join(this.dir, INDEX))) {
      rmSync(join(this.dir, INDEX));
    }
    return { files, totalSize: this.totalSize, weightMap };
  }

  /** Removes the temp shards written so far (after an error). */
  abort(): void {
    this.done = true;
    for (const t of this.temps) rmSync(t.tmp, { force: true });
    this.current = [];
  }
}
