// Datasets as rows of plain objects, each remembering its file and line: a .jsonl/.json/.csv/
// .parquet file, a folder of them (split by file name, HF style), or a hub id via the HF cache.
// Not a streaming or Arrow-backed table (rows load whole); rows -> tokens is src/text/'s job.
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { BUILTIN_PREFIX, resolveBuiltinDataset } from './builtin.js';
import { extname, join, relative, sep } from 'node:path';
import { getHFHubCachePath } from '@huggingface/hub';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { TemperError } from '../tensor/index.js';
import { downloadRepoFiles, listRepoFiles, snapshotDir, type DownloadProgress } from './hub_cache.js';
import { decodeUtf8 } from './utf8.js';

/** One dataset row: column name -> value (strings, numbers, lists, nested objects, …). */
export type DatasetRow = Record<string, unknown>;

export interface LoadDatasetOptions {
  /** Split to read from a folder or hub dataset (default "train"); a single file is read whole. */
  split?: string;
  /** Configuration (subset) of a dataset laid out as `<name>/<split>…`; needed when there are several. */
  name?: string;
  /** Hub branch, tag or commit (default "main"). */
  revision?: string;
  /** Hub cache directory (default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Download progress, a few times a second while hub files are fetched. */
  onProgress?: (p: DownloadProgress) => void;
  /**
   * Skip JSON Lines lines that are not valid UTF-8, not valid JSON or not an object, listing
   * each in `skippedLines`, instead of stopping at the first (TRL users' skip_invalid_rows).
   */
  skipInvalidLines?: boolean;
}

/** Rows read from one file, with each row's 1-based line (text files) or row number (JSON arrays, parquet). */
export interface DatasetPart {
  file: string;
  unit: 'line' | 'row';
  rows: DatasetRow[];
  positions: number[];
  /** Lines skipped with skipInvalidLines, each as "file line N: why". */
  skipped?: string[];
}

/**
 * Rows of a dataset in file order, each with its origin (`data.jsonl line 17`,
 * `org/name/data/train-00000-of-00001.parquet row 3`).
 *
 * @example
 * const ds = await loadDataset('data/chat.jsonl');
 * ds.rows[0].messages;   // [{role: 'user', content: …}, …]
 * ds.origin(0);          // 'data/chat.jsonl line 1'
 */
export class DatasetRows {
  readonly rows: readonly DatasetRow[];
  /** The files read, in order (paths as given, or `org/name/<path>` for hub files). */
  readonly files: readonly string[];
  /** Lines left out because they could not be read (LoadDatasetOptions.skipInvalidLines), each as "file line N: why". */
  readonly skippedLines: readonly string[];
  private readonly fileOf: Int32Array;
  private readonly posOf: Int32Array;
  private readonly units: readonly ('line' | 'row')[];

  private constructor(rows: DatasetRow[], files: string[], units: ('line' | 'row')[], fileOf: Int32Array, posOf: Int32Array, skippedLines: string[] = []) {
    this.rows = rows;
    this.skippedLines = skippedLines;
    this.files = files;
    this.units = units;
    this.fileOf = fileOf;
    this.posOf = posOf;
  }

  /** Concatenates the rows of several files, in order. */
  static fromParts(parts: readonly DatasetPart[]): DatasetRows {
    const n = parts.reduce((s, p) => s + p.rows.length, 0);
    const rows: DatasetRow[] = [];
    const fileOf = new Int32Array(n);
    const posOf = new Int32Array(n);
    parts.forEach((p, f) => {
      fileOf.fill(f, rows.length, rows.length + p.rows.length);
      posOf.set(p.positions, rows.length);
      for (const r of p.rows) rows.push(r);
    });
    return new DatasetRows(rows, parts.map((p) => p.file), parts.map((p) => p.unit), fileOf, posOf, parts.flatMap((p) => p.skipped ?? []));
  }

  /** Rows built in memory; their origins read `<name> row i` (1-based). */
  static fromRows(rows: readonly DatasetRow[], name = 'rows'): DatasetRows {
    return DatasetRows.fromParts([{ file: name, unit: 'row', rows: [...rows], positions: rows.map((_, i) => i + 1) }]);
  }

  get length(): number {
    return this.rows.length;
  }

  /** Where row `i` came from, for error messages: `file line N` or `file row N`. */
  origin(i: number): string {
    if (!(i >= 0 && i < this.rows.length)) throw new TemperError(`dataset: row index ${i} outside [0, ${this.rows.length})`);
    const f = this.fileOf[i]!;
    return `${this.files[f]} ${this.units[f]} ${this.posOf[i]}`;
  }

  /** Column names over all rows, in first-seen order. */
  columns(): string[] {
    const seen = new Set<string>();
    for (const r of this.rows) for (const k of Object.keys(r)) seen.add(k);
    return [...seen];
  }

  /** The rows at `indices` (in that order), keeping their origins: for shuffles and eval splits. */
  select(indices: readonly number[]): DatasetRows {
    const rows = indices.map((i) => {
      if (!(i >= 0 && i < this.rows.length)) throw new TemperError(`dataset: row index ${i} outside [0, ${this.rows.length})`);
      return this.rows[i]!;
    });
    const fileOf = Int32Array.from(indices, (i) => this.fileOf[i]!);
    const posOf = Int32Array.from(indices, (i) => this.posOf[i]!);
    return new DatasetRows(rows, [...this.files], [...this.units], fileOf, posOf, [...this.skippedLines]);
  }
}

const DATA_EXT = new Set(['.jsonl', '.ndjson', '.json', '.csv', '.parquet']);
/** JSON files that `datasets` writes next to data and that hold no rows. */
const METADATA = /(^|\/)(dataset_infos?|dataset_dict|state)\.json$/;
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
/** HF `datasets`' split keywords: a file named with any of them belongs to that split. */
const SPLIT_WORDS: Readonly<Record<string, readonly string[]>> = {
  train: ['train', 'training'],
  validation: ['validation', 'valid', 'val', 'dev'],
  test: ['test', 'testing', 'eval', 'evaluation'],
};
const ALL_SPLIT_WORDS = Object.values(SPLIT_WORDS).flat();

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function namesSplit(path: string, words: readonly string[]): boolean {
  const re = new RegExp(`(^|[/_.\\- ])(${words.map(escapeRe).join('|')})([/_.\\- 0-9]|$)`, 'i');
  return re.test(path);
}

function isDataFile(path: string): boolean {
  return DATA_EXT.has(extname(path).toLowerCase()) && !METADATA.test(path);
}

/**
 * The data files of a split among `paths` (relative, '/'-separated, sorted), HF `datasets` style:
 * files whose path names the split as a word (`data/train-00000-of-00002.parquet`,
 * `train.jsonl`, `default/train/0000.parquet`; "validation" also matches valid/val/dev, "test"
 * also eval), or every file when no file names any split and the split is "train". With `name`,
 * only files under a folder of that name. Throws when nothing matches, or when the split's files
 * sit in several top-level folders (several configurations) and no `name` says which.
 */
export function selectSplitFiles(paths: readonly string[], split = 'train', name?: string, where = 'dataset'): string[] {
  let data = paths.filter(isDataFile);
  if (data.length === 0) throw new TemperError(`${where}: no data files in it (temper reads .jsonl, .json, .csv and .parquet${paths.length ? `; found ${paths.slice(0, 5).join(', ')}${paths.length > 5 ? ', …' : ''}` : '; it is empty'})`);
  if (name !== undefined) data = data.filter((p) => p.split('/').slice(0, -1).includes(name));
  const words = SPLIT_WORDS[split] ?? [split];
  const picked = data.filter((p) => namesSplit(p, words));
  if (picked.length === 0 && split === 'train' && !data.some((p) => namesSplit(p, ALL_SPLIT_WORDS))) return data;
  if (picked.length === 0) {
    const shown = data.length ? data.slice(0, 8).join(', ') + (data.length > 8 ? ', …' : '') : 'none';
    throw new TemperError(`${where}: no data files for split '${split}'${name ? ` of configuration '${name}'` : ''} (data files: ${shown})`);
  }
  if (name === undefined) {
    const tops = new Set(picked.filter((p) => p.includes('/')).map((p) => p.split('/')[0]!));
    tops.delete('data');
    for (const w of ALL_SPLIT_WORDS.concat(split)) tops.delete(w);
    if (tops.size > 1) throw new TemperError(`${where}: split '${split}' has files in several configurations (${[...tops].join(', ')}); pick one with name`);
  }
  return picked;
}

/** Every file under `dir`, relative and '/'-separated, sorted; hidden entries skipped. */
function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function checkObject(v: unknown, where: string): DatasetRow {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new TemperError(`${where}: expected a JSON object, got ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`);
  }
  return v as DatasetRow;
}

function readJsonLines(path: string, file: string, skip = false): DatasetPart {
  return jsonLines(readFileSync(path), file, skip);
}

/** JSON Lines from bytes: each line strict UTF-8 and one JSON object (blank lines ignored). */
function jsonLines(buf: Buffer, file: string, skip: boolean): DatasetPart {
  const rows: DatasetRow[] = [];
  const positions: number[] = [];
  const skipped: string[] = [];
  let start = 0;
  for (let line = 1; start < buf.length; line++) {
    let end = buf.indexOf(0x0a, start);
    if (end < 0) end = buf.length;
    const bytes = buf.subarray(start, end);
    start = end + 1;
    try {
      const text = decodeUtf8(bytes, file, line).replace(/^\uFEFF/, '');
      if (text.trim() === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        throw new TemperError(`${file} line ${line}: not valid JSON (${(e as Error).message})`);
      }
      rows.push(checkObject(v, `${file} line ${line}`));
      positions.push(line);
    } catch (e) {
      if (!skip || !(e instanceof TemperError)) throw e;
      skipped.push(e.message);
    }
  }
  return { file, unit: 'line', rows, positions, skipped };
}

/** A JSON array of objects, `{"data": [...]}` / `{"rows": [...]}`, or JSON Lines saved as .json. */
function readJson(path: string, file: string, skip = false): DatasetPart {
  const buf = readFileSync(path);
  const text = decodeUtf8(buf, file).replace(/^\uFEFF/, '');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    // Many hub datasets store JSON Lines under a .json name.
    const first = text.trimStart();
    if (first.startsWith('{') && /\}\s*\r?\n\s*\{/.test(text)) return jsonLines(buf, file, skip);
    const msg = (e as Error).message;
    const at = /at position (\d+)/.exec(msg);
    const line = at ? text.slice(0, Number(at[1])).split('\n').length : null;
    throw new TemperError(`${file}${line ? ` line ${line}` : ''}: ${msg.length > 200 ? msg.slice(0, 200) + '…' : msg}`);
  }
  let items: unknown = v;
  if (!Array.isArray(v) && typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    items = Array.isArray(o.data) ? o.data : Array.isArray(o.rows) ? o.rows : undefined;
  }
  if (!Array.isArray(items)) throw new TemperError(`${file}: expected a JSON array of objects, or an object with a "data" or "rows" array`);
  const rows = items.map((r, i) => checkObject(r, `${file} row ${i + 1}`));
  return { file, unit: 'row', rows, positions: rows.map((_, i) => i + 1) };
}

/**
 * RFC 4180 CSV with a header row: quoted fields may hold commas, doubled quotes and newlines;
 * records end with LF or CRLF; blank lines are skipped. Every value is a string (no type
 * guessing); a record must have as many fields as the header.
 */
export function parseCsv(text: string, file = 'csv'): DatasetPart {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let i = 0;
  let atFieldStart = true; // nothing of the current field read yet (a quote opens a quoted field)
  let blank = true; // nothing of the current record read yet (a blank line is no record)
  const endRecord = () => {
    if (!blank) {
      fields.push(field);
      records.push({ fields, line: recordLine });
    }
    fields = [];
    field = '';
    atFieldStart = true;
    blank = true;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' && atFieldStart) {
      const open = line;
      atFieldStart = blank = false;
      i++;
      for (;;) {
        if (i >= text.length) throw new TemperError(`${file} line ${open}: quoted field never closed`);
        const q = text[i]!;
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new TemperError(`${file} line ${line}: unexpected '${next}' after a closing quote (quotes inside a field must be doubled)`);
      }
      continue;
    }
    if (c === ',') {
      fields.push(field);
      field = '';
      atFieldStart = true;
      blank = false;
      i++;
    } else if (c === '\n' || c === '\r') {
      endRecord();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      recordLine = line;
    } else {
      field += c;
      atFieldStart = blank = false;
      i++;
    }
  }
  endRecord();
  if (records.length === 0) return { file, unit: 'line', rows: [], positions: [] };
  const header = records[0]!.fields;
  const dup = header.find((h, k) => header.indexOf(h) !== k);
  if (dup !== undefined) throw new TemperError(`${file} line 1: column '${dup}' appears twice in the header`);
  const rows: DatasetRow[] = [];
  const positions: number[] = [];
  for (const r of records.slice(1)) {
    if (r.fields.length !== header.length) {
      throw new TemperError(`${file} line ${r.line}: ${r.fields.length} fields, but the header has ${header.length} (${header.join(', ')})`);
    }
    const row: DatasetRow = {};
    header.forEach((h, k) => (row[h] = r.fields[k]));
    rows.push(row);
    positions.push(r.line);
  }
  return { file, unit: 'line', rows, positions };
}

/** int64 values come back as bigint: numbers when exact, bigint otherwise; nested values likewise. */
function plainValue(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(plainValue);
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = plainValue(x);
    return o;
  }
  return v;
}

async function readParquet(path: string, file: string): Promise<DatasetPart> {
  const size = statSync(path).size;
  if (size === 0) throw new TemperError(`${file}: empty file (0 bytes), not a parquet file`);
  const head = Buffer.alloc(4), tail = Buffer.alloc(4);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 4, 0);
    readSync(fd, tail, 0, 4, Math.max(0, size - 4));
  } finally {
    closeSync(fd);
  }
  if (size < 12 || head.toString('latin1') !== 'PAR1' || tail.toString('latin1') !== 'PAR1')
    throw new TemperError(`${file}: not a parquet file (a parquet file starts and ends with the bytes PAR1)`);
  let rows: DatasetRow[];
  try {
    const buffer = await asyncBufferFromFile(path);
    rows = (await parquetReadObjects({ file: buffer, compressors })).map((r) => plainValue(r) as DatasetRow);
  } catch (e) {
    throw new TemperError(`${file}: cannot read parquet (${(e as Error).message})`);
  }
  return { file, unit: 'row', rows, positions: rows.map((_, i) => i + 1) };
}

/** Reads one data file; `file` is the name used in messages. */
async function readDataFile(path: string, file: string, skip: boolean): Promise<DatasetPart> {
  const ext = extname(path).toLowerCase();
  switch (ext) {
    case '.jsonl':
    case '.ndjson':
      return readJsonLines(path, file, skip);
    case '.json':
      return readJson(path, file, skip);
    case '.csv':
      return parseCsv(decodeUtf8(readFileSync(path), file), file);
    case '.parquet':
      return readParquet(path, file);
    default:
      throw new TemperError(`${file}: unknown dataset file type '${ext || '(none)'}' (expected .jsonl, .json, .csv or .parquet)`);
  }
}

async function readAll(files: readonly { path: string; name: string }[], what: string, skip = false): Promise<DatasetRows> {
  const parts: DatasetPart[] = [];
  for (const f of files) parts.push(await readDataFile(f.path, f.name, skip));
  const ds = DatasetRows.fromParts(parts);
  if (ds.length === 0)
    throw new TemperError(`${what}: the dataset has no rows (read ${files.map((f) => f.name).join(', ')}${ds.skippedLines.length ? `; ${ds.skippedLines.length} invalid line(s) skipped, e.g. ${ds.skippedLines[0]}` : ''})`);
  return ds;
}

/** `train-00001-of-00004.parquet`-style shards: true when every shard of each such set is present. */
function shardsComplete(paths: readonly string[]): boolean {
  const sets = new Map<string, Set<number>>();
  for (const p of paths) {
    const m = /^(.*)-(\d{5})-of-(\d{5})(\.[^/]+)$/.exec(p);
    if (!m) continue;
    const key = `${m[1]}|${m[3]}|${m[4]}`;
    if (!sets.has(key)) sets.set(key, new Set());
    sets.get(key)!.add(Number(m[2]));
  }
  for (const [key, got] of sets) if (got.size !== Number(key.split('|')[1])) return false;
  return true;
}

async function loadHubDataset(repo: string, opts: LoadDatasetOptions): Promise<DatasetRows> {
  const revision = opts.revision ?? 'main';
  const cacheDir = opts.cacheDir ?? getHFHubCachePath();
  const split = opts.split ?? 'train';
  const label = `dataset '${repo}' (revision ${revision})`;
  const named = (snap: string, paths: string[]) => paths.map((p) => ({ path: join(snap, ...p.split('/')), name: `${repo}/${p}` }));

  // Offline first: a cached snapshot that holds the split (every shard of it) needs no network.
  const snap = snapshotDir('dataset', repo, revision, cacheDir);
  if (snap) {
    let paths: string[] | null = null;
    try {
      paths = selectSplitFiles(listTree(snap), split, opts.name, label);
    } catch {
      paths = null;
    }
    if (paths && shardsComplete(paths)) return readAll(named(snap, paths), label, opts.skipInvalidLines);
  }

  const listed = await listRepoFiles('dataset', repo, revision, cacheDir, `${label}: split '${split}'`, true);
  const paths = selectSplitFiles([...listed.keys()].sort(), split, opts.name, label);
  const local = await downloadRepoFiles('dataset', repo, paths.map((p) => ({ path: p, size: listed.get(p)! })), { revision, cacheDir, what: label, onProgress: opts.onProgress });
  const files = local.map((path, i) => ({ path, name: `${repo}/${paths[i]}` }));
  return readAll(files, label, opts.skipInvalidLines);
}

/**
 * Loads a dataset's rows: a built-in (`builtin:NAME`), a local file (.jsonl, .json, .csv, .parquet), a local folder (the
 * split's files, sorted and concatenated; see selectSplitFiles), or a hub dataset id
 * `org/name` (the split's files downloaded into the HF cache, or read from it offline when
 * already there). A single file is read whole whatever the split.
 *
 * @example
 * const ds = await loadDataset('trl-lib/Capybara', { split: 'train' });
 * console.log(ds.length, ds.columns(), ds.origin(0));
 */
export async function loadDataset(ref: string, opts: LoadDatasetOptions = {}): Promise<DatasetRows> {
  if (ref.startsWith(BUILTIN_PREFIX)) {
    const path = resolveBuiltinDataset(ref, opts.split ?? 'train');
    return readAll([{ path, name: `${ref} (${opts.split ?? 'train'})` }], ref, opts.skipInvalidLines);
  }
  if (existsSync(ref)) {
    if (statSync(ref).isDirectory()) {
      const paths = selectSplitFiles(listTree(ref), opts.split ?? 'train', opts.name, ref);
      return readAll(paths.map((p) => ({ path: join(ref, ...p.split('/')), name: join(ref, ...p.split('/')) })), ref, opts.skipInvalidLines);
    }
    return readAll([{ path: ref, name: ref }], ref, opts.skipInvalidLines);
  }
  const ext = extname(ref).toLowerCase();
  if (DATA_EXT.has(ext) || ref.startsWith('.') || ref.startsWith('/')) throw new TemperError(`${ref}: no such file or folder`);
  if (!HUB_ID.test(ref)) throw new TemperError(`${ref}: no such file or folder, and not a hub dataset id of the form org/name`);
  return loadHubDataset(ref, opts);
}
