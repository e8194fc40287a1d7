// Model weight files as transformers writes them (what HF calls a checkpoint; "weights" here,
// since temper keeps "checkpoint" for training checkpoint-N folders): `model.safetensors`, or
// `model-0000i-of-0000K.safetensors` shards filled greedily in key order plus
// `model.safetensors.index.json` ({metadata: {total_size}, weight_map}). The index is
// written last, so a reader never sees an index naming shards that are not complete.
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, type Tensor } from '../tensor/index.js';
import { SafetensorsFile, writeSafetensors, type SaveDType } from './safetensors.js';

const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';
const BYTES: Record<string, number> = { F32: 4, BF16: 2, F16: 2, I32: 4, BOOL: 1 };

/** "5GB" -> 5e9, "500MiB" -> 500 * 2^20, numbers pass through (transformers' convention). */
export function parseSize(size: string | number): number {
  if (typeof size === 'number') return size;
  const m = /^\s*([\d.]+)\s*([KMGT]i?B|B)?\s*$/i.exec(size);
  if (!m) throw new TemperError(`invalid size '${size}' (examples: 5GB, 500MB, 2GiB)`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const mult: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };
  return Math.floor(Number(m[1]) * mult[unit]!);
}

export interface WeightsWriteOptions {
  /** Largest shard before a new one starts (default "5GB", as transformers). */
  maxShardSize?: string | number;
  /** Float output dtype (default F32; BF16 for bf16 tensors). */
  dtype?: SaveDType;
}

/** Writes tensors (in the map's order) into `dir` as one file or shards with an index. */
export function writeWeights(dir: string, tensors: ReadonlyMap<string, Tensor>, opts: WeightsWriteOptions = {}): { files: string[]; totalSize: number } {
  const limit = parseSize(opts.maxShardSize ?? '5GB');
  const shards: [string, Tensor][][] = [[]];
  let current = 0, total = 0;
  for (const [name, t] of tensors) {
    const dt = t.dtype === 'i32' ? 'I32' : t.dtype === 'bool' ? 'BOOL' : (opts.dtype ?? (t.dtype === 'bf16' ? 'BF16' : 'F32'));
    const size = t.numel * BYTES[dt]!;
    // Greedy, like huggingface_hub: a tensor that would overflow the shard starts the next one.
    if (current > 0 && current + size > limit) {
      shards.push([]);
      current = 0;
    }
    shards[shards.length - 1]!.push([name, t]);
    current += size;
    total += size;
  }
  const K = shards.length;
  const files = K === 1 ? [SINGLE] : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(K).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  shards.forEach((s, i) => {
    writeSafetensors(join(dir, files[i]!), new Map(s), { dtype: opts.dtype });
    for (const [name] of s) weightMap[name] = files[i]!;
  });
  const stale = readdirSync(dir).filter((f) => (/^model-\d{5}-of-\d{5}\.safetensors$/.test(f) || f === SINGLE) && !files.includes(f));
  if (K > 1) {
    const tmp = join(dir, `.${INDEX}.tmp-${process.pid}`);
    writeFileSync(tmp, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
    renameSync(tmp, join(dir, INDEX));
  } else if (existsSync(join(dir, INDEX))) {
    rmSync(join(dir, INDEX));
  }
  for (const f of stale) rmSync(join(dir, f));
  return { files, totalSize: total };
}

/** Reads a folder's weights, single-file or sharded, tensor by tensor. */
export class WeightsReader implements Disposable {
  private readonly files = new Map<string, SafetensorsFile>();
  /** tensor name -> file name */
  readonly weightMap = new Map<string, string>();

  constructor(readonly dir: string) {
    const indexPath = join(dir, INDEX);
    if (existsSync(indexPath)) {
      let index: { weight_map?: Record<string, string> };
      try {
        index = JSON.parse(readFileSync(indexPath, 'utf8'));
      } catch (e) {
        throw new TemperError(`${indexPath}: not valid JSON (${(e as Error).message})`);
      }
      if (!index.weight_map || typeof index.weight_map !== 'object') throw new TemperError(`${indexPath}: missing "weight_map"`);
      for (const [name, file] of Object.entries(index.weight_map)) this.weightMap.set(name, file);
      for (const file of new Set(this.weightMap.values())) {
        if (!existsSync(join(dir, file))) throw new TemperError(`${indexPath}: names shard '${file}', which is missing from ${dir}`);
      }
    } else if (existsSync(join(dir, SINGLE))) {
      for (const name of this.file(SINGLE).keys()) this.weightMap.set(name, SINGLE);
    } else {
      throw new TemperError(`${dir}: no ${SINGLE} or ${INDEX} found`);
    }
  }

  private file(name: string): SafetensorsFile {
    let f = this.files.get(name);
    if (!f) {
      f = SafetensorsFile.open(join(this.dir, name));
      this.files.set(name, f);
    }
    return f;
  }

  keys(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** Loads one tensor (f32 for float storage). */
  tensor(name: string): Tensor {
    const file = this.weightMap.get(name);
    if (!file) throw new TemperError(`${this.dir}: checkpoint has no tensor '${name}'`);
    const f = this.file(file);
    if (!f.tensors.has(name)) throw new TemperError(`${join(this.dir, file)}: index maps '${name}' here but the file does not contain it`);
    return f.tensor(name);
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
