// safetensors read/write (huggingface/safetensors layout: u64 LE header size, JSON header,
// byte buffer). Reads go by byte range per tensor, so a large shard never sits in the JS
// heap whole; writes go to a temp file renamed into place, so a crash leaves no half file.
// Not sharding (see sharded.ts) and not model semantics.
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TemperError, fromArray, type Tensor } from '../tensor/index.js';

/** safetensors dtypes temper converts on load; others are named in the error. */
export type StDType = 'F32' | 'BF16' | 'F16' | 'I32' | 'BOOL' | 'U8' | 'I64';
const ST_SIZE: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};
const MAX_HEADER = 100_000_000;

export interface TensorInfo {
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

function fail(file: string, msg: string): TemperError {
  return new TemperError(`safetensors ${file}: ${msg}`);
}

/** An open safetensors file: header parsed and checked, tensors read on demand. */
export class SafetensorsFile implements Disposable {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string> = {};
  private fd: number | null;

  private constructor(readonly path: string, fd: number) {
    this.fd = fd;
  }

  /** Opens and validates the header (sizes, bounds, dtypes, overlaps). */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new TemperError(`safetensors ${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
    const f = new SafetensorsFile(path, fd);
    try {
      f.parseHeader();
    } catch (e) {
      f.close();
      throw e;
    }
    return f;
  }

  private parseHeader(): void {
    const size = fstatSync(this.fd!).size;
    if (size < 8) throw fail(this.path, `file is ${size} bytes, too short for a header (truncated?)`);
    const head = Buffer.alloc(8);
    readSync(this.fd!, head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE(0));
    if (n > MAX_HEADER) throw fail(this.path, `header size ${n} exceeds the 100 MB limit (corrupt file?)`);
    if (8 + n > size) throw fail(this.path, `header claims ${n} bytes but the file has ${size - 8} after the size field (truncated?)`);
    const buf = Buffer.alloc(n);
    readSync(this.fd!, buf, 0, n, 8);
    const text = buf.toString('utf8');
    if (!text.startsWith('{')) throw fail(this.path, 'header does not start with "{"');
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw fail(this.path, `header is not valid JSON (${(e as Error).message})`);
    }
    const dataStart = 8 + n;
    const bufferSize = size - dataStart;
    const ranges: [number, number, string][] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
          if (typeof v !== 'string') throw fail(this.path, `__metadata__.${k} is not a string`);
          this.metadata[k] = v;
        }
        continue;
      }
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e?.dtype !== 'string' || !(e.dtype in ST_SIZE)) throw fail(this.path, `tensor '${name}' has unknown dtype ${JSON.stringify(e?.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
        throw fail(this.path, `tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
      const off = e.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[1] < off[0])
        throw fail(this.path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
      const numel = (e.shape as number[]).reduce((a, b) => a * b, 1);
      const expect = numel * ST_SIZE[e.dtype]!;
      if (off[1] - off[0] !== expect)
        throw fail(this.path, `tensor '${name}' (${e.dtype} ${JSON.stringify(e.shape)}) needs ${expect} bytes but data_offsets span ${off[1] - off[0]}`);
      if (off[1] > bufferSize)
        throw fail(this.path, `tensor '${name}' ends at byte ${off[1]} of a ${bufferSize}-byte buffer (truncated file?)`);
      ranges.push([off[0], off[1], name]);
      this.tensors.set(name, { dtype: e.dtype, shape: e.shape as number[], begin: dataStart + off[0], end: dataStart + off[1] });
    }
    ranges.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ranges.length; i++)
      if (ranges[i]![0] < ranges[i - 1]![1]) throw fail(this.path, `tensors '${ranges[i - 1]![2]}' and '${ranges[i]![2]}' overlap`);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  /** Raw bytes of one tensor (a fresh buffer of exactly its size). */
  readBytes(name: string): Buffer {
    const info = this.info(name);
    if (this.fd === null) throw fail(this.path, 'file was closed');
    const out = Buffer.alloc(info.end - info.begin);
    let done = 0;
    while (done < out.length) {
      const r = readSync(this.fd, out, done, out.length - done, info.begin + done);
      if (r === 0) throw fail(this.path, `unexpected end of file reading '${name}'`);
      done += r;
    }
    return out;
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw fail(this.path, `no tensor named '${name}'`);
    return info;
  }

  /** Loads a tensor: floats become f32 (BF16/F16 widened), I32/I64 become i32, BOOL/U8 bool. */
  tensor(name: string): Tensor {
    const info = this.info(name);
    const b = this.readBytes(name);
    const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    switch (info.dtype) {
      case 'F32':
        return fromArray(new Float32Array(ab), info.shape);
      case 'BF16': {
        const bf = fromArray(new Uint16Array(ab), info.shape, { dtype: 'bf16' });
        const f = bf.to('f32');
        bf.dispose();
        return f;
      }
      case 'F16':
        return fromArray(f16ToF32(new Uint16Array(ab)), info.shape);
      case 'I32':
        return fromArray(new Int32Array(ab), info.shape);
      case 'I64': {
        const src = new BigInt64Array(ab);
        const out = new Int32Array(src.length);
        for (let i = 0; i < src.length; i++) {
          const v = src[i]!;
          if (v > 2147483647n || v < -2147483648n) throw fail(this.path, `tensor '${name}' has an I64 value ${v} outside the i32 range`);
          out[i] = Number(v);
        }
        return fromArray(out, info.shape);
      }
      case 'BOOL':
      case 'U8':
        return fromArray(new Uint8Array(ab), info.shape, { dtype: 'bool' });
      default:
        throw fail(this.path, `tensor '${name}' has dtype ${info.dtype}, which temper does not load`);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

let f16Table: Float32Array | null = null;
/** IEEE half -> float through a 64K lookup table (exact for every value, NaN and inf included). */
export function f16ToF32(src: Uint16Array): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
      f16Table[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16Table[src[i]!]!;
  return out;
}

/** float -> IEEE half, round to nearest even (through Math.fround-exact arithmetic). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < src.length; i++) {
    f[0] = src[i]!;
    const x = u[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff, man = x & 0x7fffff;
    if (exp === 0xff) { out[i] = sign | 0x7c00 | (man ? 0x200 : 0); continue; }
    const e = exp - 127 + 15;
    if (e >= 31) { out[i] = sign | 0x7c00; continue; }
    if (e <= 0) {
      if (e < -10) { out[i] = sign; continue; }
      const m = man | 0x800000, shift = 14 - e;
      let h = m >>> shift;
      const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
      if (rem > half || (rem === half && h & 1)) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (man >>> 13);
    const rem = man & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
    out[i] = sign | h;
  }
  return out;
}

export type SaveDType = 'F32' | 'BF16' | 'F16';

/** Bytes of a tensor in a safetensors dtype. */
export function tensorBytes(t: Tensor, dtype?: SaveDType): { dtype: string; bytes: Uint8Array } {
  if (t.dtype === 'i32') return { dtype: 'I32', bytes: new Uint8Array((t.toArray() as Int32Array).buffer) };
  if (t.dtype === 'bool') return { dtype: 'BOOL', bytes: t.toArray() as Uint8Array };
  const want = dtype ?? (t.dtype === 'bf16' ? 'BF16' : 'F32');
  if (want === 'BF16') {
    const b = t.dtype === 'bf16' ? t.detach() : t.to('bf16');
    try {
      // A bf16 tensor reads back widened; take its raw bits from the f32 values (exact).
      const f = b.toArray() as Float32Array;
      const u = new Uint32Array(f.buffer);
      const out = new Uint16Array(u.length);
      for (let i = 0; i < u.length; i++) out[i] = u[i]! >>> 16;
      return { dtype: 'BF16', bytes: new Uint8Array(out.buffer) };
    } finally {
      b.dispose();
    }
  }
  const f = t.toArray() as Float32Array;
  if (want === 'F16') return { dtype: 'F16', bytes: new Uint8Array(f32ToF16(f).buffer) };
  return { dtype: 'F32', bytes: new Uint8Array(f.buffer) };
}

/**
 * The bytes before the tensor data: u64 LE header size, then the JSON header (entries with
 * back-to-back data_offsets in the given order, __metadata__ with {"format":"pt"}) padded
 * with spaces to a multiple of 8.
 */
export function encodeHeader(entries: readonly { name: string; dtype: string; shape: readonly number[]; nbytes: number }[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let at = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [at, at + e.nbytes] };
    at += e.nbytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([size, Buffer.from(json)]);
}

export interface WriteOptions {
  /** Output dtype for float tensors (default: F32, BF16 for bf16 tensors). */
  dtype?: SaveDType;
  /** Extra __metadata__ entries ({"format":"pt"} is always written). */
  metadata?: Record<string, string>;
}

/**
 * Writes tensors as one safetensors file, as the HF writer lays it out: entries sorted by
 * descending dtype size then name, header padded with spaces to a multiple of 8. Tensor
 * data is streamed one tensor at a time to `<path>.tmp-*`, then renamed over `path`.
 */
export function writeSafetensors(path: string, tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>, opts: WriteOptions = {}): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const plan = entries.map(([name, t]) => {
    t.assertLive(`writeSafetensors ('${name}')`);
    const dtype = t.dtype === 'i32' ? 'I32' : t.dtype === 'bool' ? 'BOOL' : (opts.dtype ?? (t.dtype === 'bf16' ? 'BF16' : 'F32'));
    return { name, t, dtype, nbytes: t.numel * ST_SIZE[dtype]! };
  });
  plan.sort((a, b) => ST_SIZE[b.dtype]! - ST_SIZE[a.dtype]! || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const head = encodeHeader(plan.map((p) => ({ name: p.name, dtype: p.dtype, shape: p.t.shape, nbytes: p.nbytes })), opts.metadata);
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, head);
    for (const p of plan) writeSync(fd, tensorBytes(p.t, p.dtype === 'I32' || p.dtype === 'BOOL' ? undefined : (p.dtype as SaveDType)).bytes);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    throw e;
  }
}
