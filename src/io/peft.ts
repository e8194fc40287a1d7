// PEFT adapter folders (huggingface/peft): adapter_config.json + adapter_model.safetensors,
// written as PEFT writes them and read back onto a loaded base model. LoRA only; features
// temper does not implement (DoRA, rank/alpha patterns, layers_to_transform, …) fail by name.
// Not the adapter math (nn/lora.ts) and not legacy adapter_model.bin pickles.
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, assign, noGrad } from '../tensor/index.js';
import { applyLora, type LoraConfig, type LoraModel, type Module } from '../nn/index.js';
import { SequenceClassifier, type PretrainedModel } from '../models/index.js';
import { SafetensorsFile, writeSafetensors, type SaveDType } from './safetensors.js';
import { loadModelFromDir, type LoadModelOptions } from './model_folder.js';
import { resolveModelRef } from './hub.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** The PEFT release whose config layout saveAdapter writes. */
const PEFT_VERSION = '0.17.0';

export interface SaveAdapterOptions {
  /** base_model_name_or_path in adapter_config.json (hub id or folder of the base model). */
  baseModelNameOrPath?: string | null;
  /** Weight dtype on disk (default F32). */
  dtype?: SaveDType;
}

/**
 * Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` (each to a temp name,
 * then renamed; the config last, so a folder with a config is complete).
 * @example saveAdapter(lora, 'out/checkpoint-500', { baseModelNameOrPath: 'Qwen/Qwen2.5-0.5B' });
 */
export function saveAdapter(lora: LoraModel, dir: string, opts: SaveAdapterOptions = {}): void {
  mkdirSync(dir, { recursive: true });
  const c = lora.config;
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), lora.adapterStateDict(), { dtype: opts.dtype ?? 'F32' });
  const config: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: opts.baseModelNameOrPath ?? null,
    bias: c.bias,
    ...(c.exclude_modules === null ? {} : { exclude_modules: c.exclude_modules }),
    fan_in_fan_out: c.fan_in_fan_out,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: c.modules_to_save,
    peft_type: 'LORA',
    peft_version: PEFT_VERSION,
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: c.target_modules,
    task_type: c.task_type ?? (lora.model instanceof SequenceClassifier ? 'SEQ_CLS' : 'CAUSAL_LM'),
    use_dora: false,
    use_rslora: c.use_rslora,
  };
  // PEFT writes json.dumps(..., indent=2, sort_keys=True); the keys above are already sorted.
  // Optional fields of newer PEFT releases at their defaults (lora_bias, eva_config, …) are
  // omitted: from_pretrained fills absent fields with their defaults.
  const path = join(dir, ADAPTER_CONFIG);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n');
  renameSync(tmp, path);
}

/** Fields whose non-default values change the adapter in ways temper does not implement. */
const UNSUPPORTED: [field: string, isDefault: (v: unknown) => boolean, what: string][] = [
  ['use_dora', (v) => !v, 'DoRA'],
  ['rank_pattern', (v) => v == null || Object.keys(v as object).length === 0, 'per-module ranks'],
  ['alpha_pattern', (v) => v == null || Object.keys(v as object).length === 0, 'per-module alphas'],
  ['layers_to_transform', (v) => v == null, 'layer selection'],
  ['lora_bias', (v) => !v, 'LoRA bias terms'],
  ['trainable_token_indices', (v) => v == null, 'trainable tokens'],
  ['layer_replication', (v) => v == null, 'layer replication'],
  ['target_parameters', (v) => v == null || (Array.isArray(v) && v.length === 0), 'LoRA on parameters'],
  ['use_qalora', (v) => !v, 'QALoRA'],
];

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TemperError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e}); is this a PEFT adapter folder?`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new TemperError(`${path}: not a valid JSON object (${(e as Error).message})`);
  }
}

/** Reads and checks `dir/adapter_config.json` into the LoraConfig it describes. */
export function readAdapterConfig(dir: string): LoraConfig & { base_model_name_or_path: string | null } {
  const path = join(dir, ADAPTER_CONFIG);
  const raw = readJson(path);
  const bad = (field: string, msg: string) => new TemperError(`${path}: ${field} ${msg}`);
  if (raw.peft_type !== 'LORA') throw bad('peft_type', `is ${JSON.stringify(raw.peft_type)}; temper reads LORA adapters only`);
  for (const [field, isDefault, what] of UNSUPPORTED)
    if (!isDefault(raw[field])) throw bad(field, `is ${JSON.stringify(raw[field])}: ${what} is not supported by temper`);
  if ((raw.bias ?? 'none') !== 'none') throw bad('bias', `is ${JSON.stringify(raw.bias)}; only "none" is supported`);
  const num = (field: string, dflt: number): number => {
    const v = raw[field] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(field, `must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const names = (field: string): string[] | string | null => {
    const v = raw[field];
    if (v == null || typeof v === 'string') return v ?? null;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    throw bad(field, `must be a list of names or a regex string, got ${JSON.stringify(v)}`);
  };
  const modulesToSave = names('modules_to_save');
  if (typeof modulesToSave === 'string') throw bad('modules_to_save', 'must be a list of names');
  const task = raw.task_type ?? null;
  if (task !== null && task !== 'CAUSAL_LM' && task !== 'SEQ_CLS') throw bad('task_type', `is ${JSON.stringify(task)}; temper loads CAUSAL_LM and SEQ_CLS adapters`);
  const base = raw.base_model_name_or_path;
  return {
    r: num('r', 8),
    lora_alpha: num('lora_alpha', 8),
    lora_dropout: num('lora_dropout', 0),
    target_modules: names('target_modules'),
    exclude_modules: names('exclude_modules'),
    use_rslora: raw.use_rslora === true,
    modules_to_save: modulesToSave,
    bias: 'none',
    task_type: task,
    base_model_name_or_path: typeof base === 'string' ? base : null,
  };
}

/** File key -> PEFT's saved name: drops the adapter name old versions kept ("lora_A.default.weight"). */
function canonicalKey(key: string): string {
  return key.replace(/\.(lora_[AB])\.default\./, '.$1.').replace(/\.modules_to_save\.default\./, '.');
}

export interface LoadAdapterOptions {
  /** Keep LoRA (and modules_to_save) parameters trainable, to resume training (default false: all frozen). */
  trainable?: boolean;
}

/**
 * Attaches the adapter in `dir` to `model` (a base model loaded with loadModel) and loads its
 * weights. Every adapter tensor must be used and every LoRA parameter found, with PEFT's shapes.
 * @example const lora = loadAdapter(await loadModel('Qwen/Qwen2.5-0.5B'), 'out/adapter');
 */
export function loadAdapter<M extends Module>(model: M, dir: string, opts: LoadAdapterOptions = {}): LoraModel<M> {
  const cfg = readAdapterConfig(dir);
  if (cfg.task_type === 'SEQ_CLS' && !(model instanceof SequenceClassifier))
    throw new TemperError(`${join(dir, ADAPTER_CONFIG)}: task_type SEQ_CLS needs a sequence-classification model (load the base with task 'sequence-classification')`);
  const file = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) {
    const legacy = existsSync(join(dir, 'adapter_model.bin')) ? ' (only adapter_model.bin, a pickle temper does not read: re-save with safe_serialization=True)' : '';
    throw new TemperError(`${dir}: no ${ADAPTER_WEIGHTS}${legacy}`);
  }
  const lora = applyLora(model, cfg);
  try {
    using st = SafetensorsFile.open(file);
    const byName = new Map(st.keys().map((k) => [canonicalKey(k), k]));
    const wanted = lora.adapterStateDict();
    // A SEQ_CLS head that PEFT adds to modules_to_save by itself may be absent from the file
    // (saved without task_type SEQ_CLS): the base model's head is kept then.
    const listed = cfg.modules_to_save ?? [];
    const optional = (name: string) => ['score', 'classifier'].some((h) => !listed.includes(h) && name.startsWith(`base_model.model.${h}.`));
    const extra = [...byName.keys()].filter((k) => !wanted.has(k));
    if (extra.length) throw new TemperError(`${file}: tensor '${byName.get(extra[0]!)}' matches no adapted module of this model${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''}; wrong base model, or an adapter feature temper does not support`);
    noGrad(() => {
      for (const [name, param] of wanted) {
        const key = byName.get(name);
        if (key === undefined && optional(name)) continue;
        if (key === undefined) throw new TemperError(`${file}: missing tensor '${name}' (adapter_config.json targets this module)`);
        const t = st.tensor(key);
        try {
          if (t.shape.join() !== param.shape.join()) throw new TemperError(`${file}: tensor '${key}' has shape [${t.shape}], the model expects [${param.shape}] (r or base model mismatch?)`);
          assign(param, t);
        } finally {
          t.dispose();
        }
      }
    });
  } catch (e) {
    lora.unload();
    throw e;
  }
  if (!opts.trainable) for (const [, t] of lora.trainableParameters()) t.requiresGrad = false;
  return lora;
}

/** What a model reference names: a base model, and the PEFT adapter to put on it (or null). */
export interface AdapterRef {
  /** Model folder, hub id or builtin:NAME of the base. */
  base: string;
  /** The adapter folder, or null for a plain model. */
  adapter: string | null;
}

/**
 * Reads a model reference the way every command does. `ref` may be a model; a PEFT adapter
 * folder, whose base is its adapter_config.json's base_model_name_or_path (as transformers'
 * from_pretrained reads a folder holding adapter_config.json, even one that also holds a
 * config.json); or mergekit's `BASE+ADAPTER`. An explicit `adapter` (a --adapter flag) puts
 * that adapter on `ref` (or on the adapter's own base when `ref` is null).
 * @example resolveAdapterRef('out/sft-lora')   // { base: 'builtin:tiny', adapter: 'out/sft-lora' }
 */
export function resolveAdapterRef(ref: string | null, opts: { adapter?: string | null } = {}): AdapterRef {
  const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();
  const adapterBase = (dir: string, hint: string): string => {
    if (!isDir(dir)) throw new TemperError(`adapter ${dir}: no such folder`);
    if (!existsSync(join(dir, ADAPTER_CONFIG))) throw new TemperError(`adapter ${dir}: no ${ADAPTER_CONFIG} (not a PEFT adapter folder)`);
    const base = readAdapterConfig(dir).base_model_name_or_path;
    if (!base) throw new TemperError(`${join(dir, ADAPTER_CONFIG)} has no base_model_name_or_path; ${hint}`);
    return base;
  };
  if (opts.adapter) return { base: ref ?? adapterBase(opts.adapter, `name the base model with --model`), adapter: opts.adapter };
  if (ref === null) throw new TemperError('no model given');
  const plus = ref.lastIndexOf('+');
  if (plus > 0 && !existsSync(ref)) return { base: ref.slice(0, plus), adapter: ref.slice(plus + 1) };
  if (isDir(ref) && existsSync(join(ref, ADAPTER_CONFIG))) return { base: adapterBase(ref, `write the model as BASE+${ref}`), adapter: ref };
  return { base: ref, adapter: null };
}

/** The folder whose tokenizer goes with a reference: the adapter's when it carries tokenizer.json, else the base's. */
export function tokenizerDirFor(ref: AdapterRef, baseDir: string): string {
  return ref.adapter && existsSync(join(ref.adapter, 'tokenizer.json')) ? ref.adapter : baseDir;
}

export interface LoadWithAdapterOptions extends LoadModelOptions {
  /** Keep the adapter trainable (continue training it). Default false. */
  trainable?: boolean;
}

/**
 * Loads the base of `ref` (a SEQ_CLS adapter loads a sequence-classification base) and attaches
 * the adapter when there is one.
 * @example const { model, lora } = await loadWithAdapter(resolveAdapterRef('out/sft-lora'));
 */
export async function loadWithAdapter(ref: AdapterRef, opts: LoadWithAdapterOptions = {}): Promise<{ model: PretrainedModel; lora: LoraModel | null; baseDir: string }> {
  const baseDir = await resolveModelRef(ref.base, opts);
  const task = opts.task ?? (ref.adapter && readAdapterConfig(ref.adapter).task_type === 'SEQ_CLS' ? 'sequence-classification' : undefined);
  const model = loadModelFromDir(baseDir, { ...opts, task });
  if (!ref.adapter) return { model, lora: null, baseDir };
  try {
    return { model, lora: loadAdapter(model, ref.adapter, { trainable: opts.trainable }), baseDir };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
