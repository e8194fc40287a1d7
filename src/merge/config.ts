// mergekit's YAML schema (mergekit a6e4028 `config.py`): the `models:` form, and `slices:` with
// one source each for passthrough; parsing, validation with errors that name the key, and
// per-tensor parameter resolution (scalar, layer gradient, [{filter, value}] lists; model >
// global). Not `modules:` and not several sources within a slice.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { TemperError } from '../tensor/index.js';

/** A parameter as written in YAML: scalar, layer-gradient list, or [{filter, value}] entries. */
export type ParamValue = Scalar | number[] | FilterEntry[];
/** One resolved value (strings are for options such as rescale_mode: l1). */
export type Scalar = number | boolean | string;
export interface FilterEntry {
  /** Substring of the tensor name; absent = fallback. */
  filter?: string;
  value: Scalar | number[];
}

export interface MergeModelEntry {
  /** Folder, hub id, builtin:NAME, an adapter folder, or `base+adapter` (mergekit's LoRA syntax). */
  model: string;
  parameters: Record<string, ParamValue>;
}

export interface MergeConfig {
  merge_method: string;
  models: MergeModelEntry[];
  base_model: string | null;
  /** Global parameters (used when a model does not set the key). */
  parameters: Record<string, ParamValue>;
  /** Compute/load dtype in mergekit; here the output dtype when out_dtype is not set. */
  dtype: string | null;
  out_dtype: string | null;
  /** Where tokenizer files come from: 'base', 'union' or a model reference. */
  tokenizer_source: string | null;
  /** tokenizer.pad_to_multiple_of: round the union vocabulary's rows up. */
  pad_to_multiple_of: number | null;
  /** A Jinja template, or 'auto' (keep the tokenizer's own). */
  chat_template: string | null;
  /** passthrough layer stacking: output layers are these source layer ranges, in order. */
  slices: MergeSlice[] | null;
}

/** One output slice: layers [from, to) of one model (mergekit `slices: - sources: [{model, layer_range}]`). */
export interface MergeSlice {
  model: string;
  layer_range: [number, number];
}

const TOP_KEYS = ['merge_method', 'models', 'slices', 'base_model', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source', 'tokenizer', 'chat_template', 'name'];
const DTYPES: Record<string, 'F32' | 'BF16' | 'F16'> = { float32: 'F32', fp32: 'F32', float16: 'F16', fp16: 'F16', half: 'F16', bfloat16: 'BF16', bf16: 'BF16' };

function fail(where: string, msg: string): never {
  throw new TemperError(`${where}: ${msg}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseScalarOrGradient(v: unknown, key: string, where: string): Scalar | number[] {
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number')) return v as number[];
  return fail(where, `'${key}' must be a number, a boolean, a string or a non-empty list of numbers (got ${JSON.stringify(v)})`);
}

function parseParam(v: unknown, key: string, where: string): ParamValue {
  if (Array.isArray(v) && v.length > 0 && v.some(isRecord)) {
    return v.map((e, i) => {
      if (!isRecord(e)) return fail(where, `'${key}[${i}]' must be a {filter, value} mapping (got ${JSON.stringify(e)})`);
      for (const k of Object.keys(e)) if (k !== 'filter' && k !== 'value') fail(where, `'${key}[${i}]' has unknown key '${k}' (expected filter, value)`);
      if (!('value' in e)) fail(where, `'${key}[${i}]' needs a 'value'`);
      if (e.filter !== undefined && typeof e.filter !== 'string') fail(where, `'${key}[${i}].filter' must be a string`);
      const entry: FilterEntry = { value: parseScalarOrGradient(e.value, `${key}[${i}].value`, where) };
      if (typeof e.filter === 'string') entry.filter = e.filter;
      return entry;
    });
  }
  return parseScalarOrGradient(v, key, where);
}

function parseParams(v: unknown, where: string, key: string): Record<string, ParamValue> {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) return fail(where, `'${key}' must be a mapping of name: value`);
  const out: Record<string, ParamValue> = {};
  for (const [k, x] of Object.entries(v)) out[k] = parseParam(x, `${key}.${k}`, where);
  return out;
}

function optString(v: unknown, key: string, where: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') return fail(where, `'${key}' must be a string (got ${JSON.stringify(v)})`);
  return v;
}

/**
 * Validates a parsed mergekit YAML document. Method-specific checks (parameter names, required
 * weights, base model) happen in `validateMergeConfig` against the method registry.
 * @example parseMergeConfig({ merge_method: 'linear', models: [{ model: 'a', parameters: { weight: 1 } }] })
 */
export function parseMergeConfig(raw: unknown, where = 'merge config'): MergeConfig {
  if (!isRecord(raw)) fail(where, 'expected a mapping with merge_method and models');
  for (const k of Object.keys(raw)) {
    if (k === 'modules') fail(where, `'modules' is not supported yet (use 'models', or 'slices' with passthrough)`);
    if (!TOP_KEYS.includes(k)) fail(where, `unknown key '${k}' (expected one of ${TOP_KEYS.join(', ')})`);
  }
  if (typeof raw.merge_method !== 'string') fail(where, `'merge_method' is required (a method name such as linear, ties, slerp)`);
  const slices = raw.slices === undefined ? null : parseSlices(raw.slices, raw.merge_method, where);
  if (slices && raw.models !== undefined) fail(where, `'models' and 'slices' are mutually exclusive`);
  if (!slices && (!Array.isArray(raw.models) || raw.models.length === 0)) fail(where, `'models' is required: a non-empty list of {model, parameters}`);
  const models = (slices ? [] : (raw.models as unknown[])).map((m, i): MergeModelEntry => {
    if (typeof m === 'string') return { model: m, parameters: {} };
    if (!isRecord(m)) return fail(where, `'models[${i}]' must be a mapping {model, parameters}`);
    for (const k of Object.keys(m)) if (k !== 'model' && k !== 'parameters') fail(where, `'models[${i}]' has unknown key '${k}' (expected model, parameters)`);
    if (typeof m.model !== 'string' || !m.model) fail(where, `'models[${i}].model' is required (a folder or hub id)`);
    return { model: m.model, parameters: parseParams(m.parameters, where, `models[${i}].parameters`) };
  });
  const dtype = optString(raw.dtype, 'dtype', where);
  const out_dtype = optString(raw.out_dtype, 'out_dtype', where);
  for (const [k, v] of [['dtype', dtype], ['out_dtype', out_dtype]] as const)
    if (v !== null && !(v in DTYPES)) fail(where, `'${k}' must be one of float32, bfloat16, float16 (got '${v}')`);
  if (raw.tokenizer !== undefined && raw.tokenizer_source !== undefined) fail(where, `'tokenizer' and 'tokenizer_source' are mutually exclusive`);
  let tokenizer_source: string | null;
  let padTo: number | null = null;
  if (raw.tokenizer !== undefined && raw.tokenizer !== null) {
    if (!isRecord(raw.tokenizer)) fail(where, `'tokenizer' must be a mapping {source: ...}`);
    for (const k of Object.keys(raw.tokenizer))
      if (k !== 'source' && k !== 'pad_to_multiple_of') fail(where, `'tokenizer.${k}' is not supported yet (only tokenizer.source and tokenizer.pad_to_multiple_of)`);
    tokenizer_source = optString(raw.tokenizer.source, 'tokenizer.source', where);
    const pad = raw.tokenizer.pad_to_multiple_of;
    if (pad !== undefined && pad !== null && !(Number.isInteger(pad) && (pad as number) > 0)) fail(where, `'tokenizer.pad_to_multiple_of' must be a positive integer (got ${JSON.stringify(pad)})`);
    padTo = (pad as number | undefined) ?? null;
  } else {
    tokenizer_source = optString(raw.tokenizer_source, 'tokenizer_source', where);
  }
  return {
    merge_method: raw.merge_method,
    models,
    base_model: optString(raw.base_model, 'base_model', where),
    parameters: parseParams(raw.parameters, where, 'parameters'),
    dtype,
    out_dtype,
    tokenizer_source,
    pad_to_multiple_of: padTo,
    chat_template: optString(raw.chat_template, 'chat_template', where),
    slices,
  };
}

/** `slices:` for passthrough: each slice one source with an integer layer_range [from, to). */
function parseSlices(raw: unknown, method: string, where: string): MergeSlice[] {
  if (method !== 'passthrough') fail(where, `'slices' is supported with merge_method passthrough only (got '${method}')`);
  if (!Array.isArray(raw) || raw.length === 0) fail(where, `'slices' must be a non-empty list of {sources: [{model, layer_range}]}`);
  return raw.map((s, i): MergeSlice => {
    if (!isRecord(s) || !Array.isArray(s.sources)) return fail(where, `'slices[${i}]' must be a mapping {sources: [...]}`);
    for (const k of Object.keys(s)) if (k !== 'sources') fail(where, `'slices[${i}]' has unknown key '${k}' (expected sources)`);
    if (s.sources.length !== 1) fail(where, `'slices[${i}].sources' must hold exactly one source for passthrough (merging within a slice is not supported yet)`);
    const src = s.sources[0];
    if (!isRecord(src) || typeof src.model !== 'string' || !src.model) return fail(where, `'slices[${i}].sources[0].model' is required`);
    for (const k of Object.keys(src)) if (k !== 'model' && k !== 'layer_range') fail(where, `'slices[${i}].sources[0]' has unknown key '${k}' (expected model, layer_range)`);
    const r = src.layer_range;
    if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => Number.isInteger(x) && x >= 0) || !(r[0] < r[1]))
      fail(where, `'slices[${i}].sources[0].layer_range' must be [from, to) with 0 <= from < to (got ${JSON.stringify(r)})`);
    return { model: src.model, layer_range: [r[0], r[1]] };
  });
}

/** Reads and validates a mergekit YAML file. */
export function readMergeConfig(path: string): MergeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TemperError(`merge config ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new TemperError(`merge config ${path}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  return parseMergeConfig(doc, `merge config ${path}`);
}

/** safetensors dtype for a YAML dtype name. */
export function saveDTypeOf(name: string): 'F32' | 'BF16' | 'F16' {
  const d = DTYPES[name];
  if (!d) throw new TemperError(`unknown dtype '${name}' (float32, bfloat16, float16)`);
  return d;
}

/** Layer index of a tensor name (`.layers.N.` or GPT-2's `.h.N.`), or null for non-layer tensors. */
export function layerIndex(name: string): number | null {
  const m = /(?:^|\.)(?:layers|h)\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * Value of a parameter for one tensor. A list of numbers is a layer gradient over
 * t = layer/(nLayers-1), linearly interpolated (non-layer tensors get the first element);
 * filter lists take the first entry whose filter is a substring of the name (no filter =
 * fallback); `undefined` when no entry matches.
 */
export function resolveParam(value: ParamValue, tensorName: string, nLayers: number): Scalar | undefined {
  if (typeof value !== 'object') return value;
  if (value.length > 0 && typeof value[0] === 'object') {
    for (const e of value as FilterEntry[]) if (e.filter === undefined || tensorName.includes(e.filter)) return resolveParam(e.value, tensorName, nLayers);
    return undefined;
  }
  const list = value as number[];
  const layer = layerIndex(tensorName);
  if (layer === null || list.length === 1) return list[0]!;
  const t = nLayers > 1 ? Math.min(1, Math.max(0, layer / (nLayers - 1))) : 0;
  const x = t * (list.length - 1);
  const i = Math.min(Math.floor(x), list.length - 2);
  return list[i]! + (x - i) * (list[i + 1]! - list[i]!);
}
