// Streaming model merge from a mergekit config: for each tensor of the base (or first) model,
// read it from every input, rectify vocab shapes, merge on the host in float32 with the
// method's per-tensor function, append to a ShardWriter and drop it. Peak memory is about
// (2·models + 2) × the largest tensor plus one output shard. Also passthrough with slices
// (layer stacking) and the union vocabulary (vocab.ts). LoRA inputs are merged into their
// base first, in memory.
import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { Generator, TemperError, rand, type Tensor } from '../tensor/index.js';
import { WeightsReader } from '../io/sharded.js';
import { ShardWriter, floatBytes } from '../io/shard_writer.js';
import { tensorBytes, type SaveDType } from '../io/safetensors.js';
import { resolveModelRef } from '../io/hub.js';
import { TOKENIZER_FILES } from '../io/model_folder.js';
import { ensureWritableDir } from '../io/writable.js';
import { loadWithAdapter, resolveAdapterRef } from '../io/peft.js';
import { resolveParam, saveDTypeOf, type MergeConfig, type MergeSlice, type ParamValue, type Scalar } from './config.js';
import { getMergeMethod } from './registry.js';
import { readJsonFile } from '../io/json.js';
import { permuteEmbeddings, readVocab, unionVocab, writeUnionTokenizer } from './vocab.js';
import { paramProblem, type MergeMethod, type ParamSpec } from './methods/types.js';

export interface MergeOptions {
  /** Largest output shard, bytes or "5GB" (default "5GB"; compared against tensor bytes, as mergekit). */
  outShardSize?: string | number;
  /** Seed of the random methods (DARE); default 0, so merges are reproducible. */
  seed?: number;
  /** Copy tokenizer files from the base (also done when the config sets tokenizer_source). */
  copyTokenizer?: boolean;
  /** Output dtype; default out_dtype, then dtype from the YAML, then the base's torch_dtype, then F32. */
  dtype?: SaveDType;
  /** Called after each tensor: tensors done, total tensors, bytes written so far. */
  onProgress?: (done: number, total: number, bytes: number) => void;
  /** Things the user should know that do not stop the merge (different vocabularies). Default: stderr. */
  onWarning?: (message: string) => void;
}

export interface MergeResult {
  tensors: number;
  bytes: number;
  files: string[];
}

const TORCH_DTYPE: Record<SaveDType, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };
const FROM_TORCH: Record<string, SaveDType> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' };
/** Tensors whose first dim is the vocabulary (mergekit `is_embed`). */
const EMBED = /(^|\.)(embed_tokens|lm_head|wte|embed_out|word_embeddings)\./;

/** One input model, readable tensor by tensor. */
interface Source {
  ref: string;
  /** Folder whose config.json describes the weights (the base folder for an adapter). */
  configDir: string;
  keys(): string[];
  has(name: string): boolean;
  tensor(name: string): Tensor;
  close(): void;
}

const readJson = (path: string) => readJsonFile(path) as Record<string, unknown>;

/** Opens a model reference: a folder/hub id/builtin, an adapter folder, or `base+adapter` (resolveAdapterRef). */
async function openSource(ref: string): Promise<Source> {
  const r = resolveAdapterRef(ref);
  if (r.adapter !== null) {
    // LoRA: merge W + s·B@A in memory (a whole model, unlike the streaming path).
    const { model, lora, baseDir } = await loadWithAdapter(r, { warn: () => {} });
    try {
      lora!.merge();
    } catch (e) {
      model.dispose();
      throw e;
    }
    const state = model.stateDict();
    return {
      ref,
      configDir: baseDir,
      keys: () => [...state.keys()],
      has: (n) => state.has(n),
      tensor: (n) => {
        const t = state.get(n);
        if (!t) throw new TemperError(`model '${ref}': no tensor '${n}'`);
        return t.detach();
      },
      close: () => model.dispose(),
    };
  }
  const dir = await resolveModelRef(ref);
  const reader = new WeightsReader(dir);
  return { ref, configDir: dir, keys: () => reader.keys(), has: (n) => reader.has(n), tensor: (n) => reader.tensor(n), close: () => reader.close() };
}

/** A merged tensor must be finite: the first NaN/Inf is an error naming the tensor and where it is. */
function checkFinite(values: Float32Array, name: string, where: string): Float32Array {
  for (let i = 0; i < values.length; i++)
    if (!Number.isFinite(values[i]!)) throw new TemperError(`${where}: the merged tensor '${name}' has ${values[i]} at element ${i}; nothing was written (check the inputs and the parameters for this tensor)`);
  return values;
}

/** Vocabulary sizes and tokenizers of the inputs: a warning when they differ (mergekit warns too). */
function vocabWarning(sources: readonly Source[], config: MergeConfig): string | null {
  if (config.tokenizer_source === 'union' || sources.length < 2) return null;
  const sizes = sources.map((s) => {
    const p = join(s.configDir, 'config.json');
    const c = existsSync(p) ? readJson(p) : {};
    return Number(c.vocab_size ?? c.n_vocab ?? NaN);
  });
  const vocabs = sources.map((s) => (existsSync(join(s.configDir, 'tokenizer.json')) ? JSON.stringify((readJson(join(s.configDir, 'tokenizer.json')).model as Record<string, unknown> | undefined)?.vocab ?? null) : null));
  const sizeDiffers = sizes.some((n) => n !== sizes[0]);
  const tokDiffers = vocabs.every((v) => v !== null) && vocabs.some((v) => v !== vocabs[0]);
  if (!sizeDiffers && !tokDiffers) return null;
  return `the models' vocabularies differ (${sources.map((s, i) => `${s.ref}: ${sizes[i]} tokens`).join(', ')}${tokDiffers && !sizeDiffers ? ', with different token lists' : ''}); ` +
    `the same token id means different text in them, so embeddings are merged row by row as they are. Use tokenizer_source: union to align them`;
}

/** Checks the config against the method: base model, model count, parameter names, required values. */
export function validateMergeConfig(config: MergeConfig): MergeMethod {
  const method = getMergeMethod(config.merge_method);
  const where = `merge config (${method.name})`;
  if (method.kind !== 'none' && !config.base_model) throw new TemperError(`${where}: 'base_model' is required by ${method.name}`);
  const others = method.kind === 'none' ? config.models : config.models.filter((m) => m.model !== config.base_model);
  if (method.kind === 'slerp' && others.length !== 1)
    throw new TemperError(`${where}: 'models' must hold exactly 2 models, base_model (${config.base_model}) and one other (got ${others.length} besides the base)`);
  if (others.length === 0) throw new TemperError(`${where}: 'models' has no model to merge besides base_model`);
  const globalNames = new Set([...method.globalParams, ...method.modelParams].map((p) => p.name));
  for (const k of Object.keys(config.parameters))
    if (!globalNames.has(k)) throw new TemperError(`${where}: unknown parameter 'parameters.${k}' (${method.name} takes: ${[...globalNames].join(', ') || 'none'})`);
  config.models.forEach((m, i) => {
    for (const k of Object.keys(m.parameters))
      if (!method.modelParams.some((p) => p.name === k))
        throw new TemperError(`${where}: unknown parameter 'models[${i}].parameters.${k}' (${method.name} takes per model: ${method.modelParams.map((p) => p.name).join(', ') || 'none'})`);
  });
  for (const p of method.globalParams)
    if (p.required && config.parameters[p.name] === undefined) throw new TemperError(`${where}: 'parameters.${p.name}' is required by ${method.name} (${p.doc})`);
  config.models.forEach((m, i) => {
    if (!others.includes(m)) return;
    for (const p of method.modelParams)
      if (p.required && m.parameters[p.name] === undefined && config.parameters[p.name] === undefined)
        throw new TemperError(`${where}: 'models[${i}].parameters.${p.name}' is required by ${method.name} (${p.doc})`);
  });
  // Every value given, of the right type and in range, before any tensor is read.
  const specs = new Map([...method.globalParams, ...method.modelParams].map((p) => [p.name, p]));
  const checkValues = (params: Record<string, ParamValue>, prefix: string) => {
    for (const [k, v] of Object.entries(params)) {
      const spec = specs.get(k)!;
      const values: Scalar[] = typeof v !== 'object' ? [v] : (v as (number | { value: Scalar | number[] })[]).flatMap((e) => (typeof e === 'object' ? (Array.isArray(e.value) ? e.value : [e.value]) : [e]));
      for (const x of values) {
        const problem = paramProblem(spec, x);
        if (problem) throw new TemperError(`${where}: '${prefix}${k}' ${problem}`);
      }
    }
  };
  checkValues(config.parameters, 'parameters.');
  config.models.forEach((m, i) => checkValues(m.parameters, `models[${i}].parameters.`));
  return method;
}

/** Float32 values of a tensor (disposed). */
function hostF32(t: Tensor): Float32Array {
  try {
    return t.toArray() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** The [rows, cols] top-left block of a row-major 2-D (or 1-D) array. */
function sliceTo(data: Float32Array, shape: readonly number[], want: readonly number[]): Float32Array {
  if (shape.join() === want.join()) return data;
  if (shape.length === 1) return data.slice(0, want[0]!);
  const [, C] = shape as [number, number];
  const [r, c] = want as [number, number];
  if (c === C) return data.slice(0, r * C);
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) out.set(data.subarray(i * C, i * C + c), i * c);
  return out;
}

/** n uniforms from temper's counter-based generator, seeded by a cyrb128 hash of (seed, tensor, model). */
function seededUniforms(key: string, n: number): Float32Array {
  let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (let i = 0; i < key.length; i++) {
    const k = key.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  const seed = (BigInt((h1 ^ h2) >>> 0) << 32n) | BigInt((h2 ^ h3) >>> 0);
  const t = rand([n], { generator: new Generator(seed) });
  try {
    return t.toArray() as Float32Array;
  } finally {
    t.dispose();
  }
}

function resolveAll(specs: ParamSpec[], sources: Record<string, import('./config.js').ParamValue>[], name: string, nLayers: number, where: string): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  for (const p of specs) {
    let v: Scalar | undefined;
    for (const s of sources) {
      if (s[p.name] === undefined) continue;
      v = resolveParam(s[p.name]!, name, nLayers);
      if (v !== undefined) break;
    }
    v ??= p.default;
    if (v === undefined) throw new TemperError(`${where}: parameter '${p.name}' has no value for tensor '${name}' (no filter matches and no fallback entry)`);
    out[p.name] = v;
  }
  return out;
}

function modelCard(config: MergeConfig, method: Pick<MergeMethod, 'name' | 'paper'>): string {
  const refs = [...new Set([...(config.base_model ? [config.base_model] : []), ...config.models.map((m) => m.model), ...(config.slices ?? []).map((s) => s.model)])];
  const clean: Record<string, unknown> = { merge_method: config.merge_method };
  if (config.base_model) clean.base_model = config.base_model;
  if (config.slices) clean.slices = config.slices.map((s) => ({ sources: [{ model: s.model, layer_range: s.layer_range }] }));
  else clean.models = config.models.map((m) => (Object.keys(m.parameters).length ? { model: m.model, parameters: m.parameters } : { model: m.model }));
  if (Object.keys(config.parameters).length) clean.parameters = config.parameters;
  for (const k of ['dtype', 'out_dtype', 'tokenizer_source', 'chat_template'] as const) if (config[k] !== null) clean[k] = config[k];
  return [
    '---',
    'base_model:',
    ...refs.map((r) => `- ${JSON.stringify(r)}`),
    'library_name: transformers',
    'tags:',
    '- merge',
    '- temper',
    '---',
    '# Merged model',
    '',
    `This model was made with \`temper merge\` (mergekit-compatible YAML) using the **${method.name}** method (${method.paper}).`,
    '',
    '## Models',
    '',
    ...refs.map((r) => `- ${r}${r === config.base_model ? ' (base)' : ''}`),
    '',
    '## Configuration',
    '',
    '```yaml',
    toYaml(clean).trimEnd(),
    '```',
    '',
  ].join('\n');
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  renameSync(tmp, path);
}

/**
 * Merges the models of a mergekit config into `outputDir`, streaming tensor by tensor.
 * @example
 * const cfg = readMergeConfig('ties.yml');
 * await runMerge(cfg, 'out/merged', { outShardSize: '2GB', seed: 1 });
 */
export async function runMerge(config: MergeConfig, outputDir: string, opts: MergeOptions = {}): Promise<MergeResult> {
  if (config.slices) return runPassthrough(config, config.slices, outputDir, opts);
  const method = validateMergeConfig(config);
  ensureWritableDir(outputDir, 'merge output');
  const seed = opts.seed ?? 0;
  const sources: Source[] = [];
  try {
    // Inputs: for task methods and slerp the base is separate and excluded from `others`.
    const baseEntry = method.kind === 'none' ? null : config.base_model!;
    const otherEntries = method.kind === 'none' ? config.models : config.models.filter((m) => m.model !== baseEntry);
    const base = baseEntry !== null ? await openSource(baseEntry) : null;
    if (base) sources.push(base);
    const others: Source[] = [];
    for (const m of otherEntries) {
      const s = await openSource(m.model);
      sources.push(s);
      others.push(s);
    }
    const reference = base ?? others[0]!;
    for (const s of sources)
      if (resolve(s.configDir) === resolve(outputDir)) throw new TemperError(`merge: output folder ${outputDir} is an input model folder`);
    const warning = vocabWarning(sources, config);
    if (warning) (opts.onWarning ?? ((m: string) => process.stderr.write(`temper: warning: ${m}\n`)))(warning);
    const cfgPath = join(reference.configDir, 'config.json');
    const modelConfig = existsSync(cfgPath) ? readJson(cfgPath) : {};
    const nLayers = Number(modelConfig.num_hidden_layers ?? modelConfig.n_layer ?? 1);
    const outDtype: SaveDType =
      opts.dtype ?? (config.out_dtype ? saveDTypeOf(config.out_dtype) : config.dtype ? saveDTypeOf(config.dtype) : FROM_TORCH[String(modelConfig.torch_dtype)] ?? 'F32');

    // tokenizer_source union: one output vocabulary; embedding rows are permuted into it.
    const union = config.tokenizer_source === 'union'
      ? (() => {
          const all = base ? [base, ...others.filter((s) => s !== base)] : others;
          const vocabs = new Map(all.map((s) => [s, readVocab(s.configDir, s.ref)] as const));
          return { vocabs, vocab: unionVocab(vocabs.get(reference)!, all.filter((s) => s !== reference).map((s) => vocabs.get(s)!), config.pad_to_multiple_of) };
        })()
      : null;

    mkdirSync(outputDir, { recursive: true });
    const writer = new ShardWriter(outputDir, { maxShardSize: opts.outShardSize ?? '5GB' });
    const names = reference.keys();
    let vocabRows: number | null = union ? union.vocab.rows : null;
    try {
      names.forEach((name, idx) => {
        const where = `merge (${method.name})`;
        const refT = reference.tensor(name);
        if (refT.dtype === 'i32' || refT.dtype === 'bool') {
          // Integer buffers are not merged: copied from the base / first model.
          try {
            const { dtype, bytes } = tensorBytes(refT);
            writer.add(name, dtype, refT.shape, bytes);
          } finally {
            refT.dispose();
          }
          opts.onProgress?.(idx + 1, names.length, writer.bytes);
          return;
        }
        const refShape = [...refT.shape];
        const inputs: { data: Float32Array; shape: number[]; ref: string }[] = [];
        const refData = hostF32(refT);
        for (const s of others) {
          if (s === reference) {
            inputs.push({ data: refData, shape: refShape, ref: s.ref });
            continue;
          }
          if (!s.has(name)) throw new TemperError(`${where}: model '${s.ref}' has no tensor '${name}' (which '${reference.ref}' has)`);
          const t = s.tensor(name);
          const shape = [...t.shape];
          inputs.push({ data: hostF32(t), shape, ref: s.ref });
        }
        // Shapes: vocab-sized tensors are rectified, anything else must match exactly.
        const isEmbed = EMBED.test(name);
        if (union && isEmbed && refShape.length === 2) {
          const C = refShape[1]!;
          const all = [...(base ? [{ data: refData, shape: refShape, src: base }] : []), ...inputs.map((x, i) => ({ ...x, src: others[i]! }))];
          for (const x of all)
            if (x.shape[1] !== C) throw new TemperError(`${where}: tensor '${name}' has width ${x.shape[1]} in '${x.src.ref}' but ${C} in '${reference.ref}'; these models cannot be merged`);
          const permuted = permuteEmbeddings(union.vocab, all.map((x) => ({ data: x.data, rows: x.shape[0]!, vocab: union.vocabs.get(x.src)! })), C, !!base);
          const shape = [union.vocab.rows, C];
          const baseRows = base ? permuted[0]! : null;
          const models = base ? permuted.slice(1) : permuted;
          const params = otherEntries.map((m, i) => resolveAll(method.modelParams, [m.parameters, config.parameters], name, nLayers, `${where} models[${config.models.indexOf(m)}] (${others[i]!.ref})`));
          const global = resolveAll(method.globalParams, [config.parameters], name, nLayers, where);
          const merged = checkFinite(method.merge({ name, base: baseRows, models, params, global, uniforms: (m, n) => seededUniforms(`${seed}\u0000${name}\u0000${m}`, n) }), name, where);
          writer.add(name, outDtype, shape, floatBytes(merged, outDtype));
          opts.onProgress?.(idx + 1, names.length, writer.bytes);
          return;
        }
        let outShape = refShape;
        for (const x of inputs) {
          if (x.shape.join() === refShape.join()) continue;
          const sameRank = x.shape.length === refShape.length && x.shape.length <= 2;
          if (!isEmbed || !sameRank)
            throw new TemperError(`${where}: tensor '${name}' has shape [${x.shape}] in '${x.ref}' but [${refShape}] in '${reference.ref}'; these models cannot be merged`);
          if (method.kind === 'task' && x.shape.some((d, i) => d < refShape[i]!))
            throw new TemperError(`${where}: tensor '${name}' has shape [${x.shape}] in '${x.ref}', smaller than the base's [${refShape}] ('${reference.ref}'); task-vector methods need every model's vocabulary to cover the base's`);
          if (method.kind !== 'task') outShape = outShape.map((d, i) => Math.min(d, x.shape[i]!));
        }
        const baseData = base ? sliceTo(refData, refShape, outShape) : null;
        const models = inputs.map((x) => sliceTo(x.data, x.shape, outShape));
        if (isEmbed && outShape[0] !== refShape[0]) vocabRows = outShape[0]!;
        const params = otherEntries.map((m, i) => resolveAll(method.modelParams, [m.parameters, config.parameters], name, nLayers, `${where} models[${config.models.indexOf(m)}] (${others[i]!.ref})`));
        const global = resolveAll(method.globalParams, [config.parameters], name, nLayers, where);
        const merged = checkFinite(method.merge({ name, base: baseData, models, params, global, uniforms: (m, n) => seededUniforms(`${seed}\u0000${name}\u0000${m}`, n) }), name, where);
        writer.add(name, outDtype, outShape, floatBytes(merged, outDtype));
        opts.onProgress?.(idx + 1, names.length, writer.bytes);
      });
    } catch (e) {
      writer.abort();
      throw e;
    }
    const { files, totalSize } = writer.finish();

    // Tag-along files: generation config, tokenizer, chat template, model card, then config.json last.
    const gen = join(reference.configDir, 'generation_config.json');
    if (existsSync(gen)) copyFileSync(gen, join(outputDir, 'generation_config.json'));
    const tokSource = config.tokenizer_source && config.tokenizer_source !== 'base' && config.tokenizer_source !== 'union' ? (await openSource(config.tokenizer_source).then((s) => (s.close(), s.configDir))) : reference.configDir;
    if (union) {
      for (const f of TOKENIZER_FILES) if (existsSync(join(reference.configDir, f))) copyFileSync(join(reference.configDir, f), join(outputDir, f));
      writeUnionTokenizer(reference.configDir, outputDir, union.vocab);
    } else if (opts.copyTokenizer || config.tokenizer_source) {
      for (const f of TOKENIZER_FILES) if (existsSync(join(tokSource, f))) copyFileSync(join(tokSource, f), join(outputDir, f));
    }
    if (config.chat_template && config.chat_template !== 'auto') {
      if (!/\{[{%]/.test(config.chat_template)) throw new TemperError(`merge config: chat_template '${config.chat_template}' is not supported yet (give 'auto' or a Jinja template string)`);
      writeFileSync(join(outputDir, 'chat_template.jinja'), config.chat_template);
    }
    writeFileSync(join(outputDir, 'README.md'), modelCard(config, method));
    const outConfig: Record<string, unknown> = { ...modelConfig, torch_dtype: TORCH_DTYPE[outDtype] };
    if (vocabRows !== null) outConfig.vocab_size = vocabRows;
    writeJsonAtomic(join(outputDir, 'config.json'), outConfig);
    return { tensors: names.length, bytes: totalSize, files };
  } finally {
    for (const s of sources) s.close();
  }
}

const LAYER = /(\.layers\.|\.h\.)(\d+)\./;

/**
 * passthrough with slices (layer stacking, "frankenmerges"): the output's layers are the
 * slices' source layers in order, renumbered from 0; every other tensor (embeddings, final
 * norm, head) comes from the first slice's model. Tensors are copied, not combined.
 */
async function runPassthrough(config: MergeConfig, slices: MergeSlice[], outputDir: string, opts: MergeOptions): Promise<MergeResult> {
  const where = 'merge (passthrough)';
  ensureWritableDir(outputDir, 'merge output');
  const sources = new Map<string, Source>();
  try {
    for (const s of slices) if (!sources.has(s.model)) sources.set(s.model, await openSource(s.model));
    for (const s of sources.values())
      if (resolve(s.configDir) === resolve(outputDir)) throw new TemperError(`merge: output folder ${outputDir} is an input model folder`);
    const first = sources.get(slices[0]!.model)!;
    const cfgPath = join(first.configDir, 'config.json');
    const modelConfig = existsSync(cfgPath) ? readJson(cfgPath) : {};
    const outDtype: SaveDType =
      opts.dtype ?? (config.out_dtype ? saveDTypeOf(config.out_dtype) : config.dtype ? saveDTypeOf(config.dtype) : FROM_TORCH[String(modelConfig.torch_dtype)] ?? 'F32');
    // Output layer k = layer l of model m, in slice order.
    const plan: [Source, number][] = [];
    for (const s of slices) for (let l = s.layer_range[0]; l < s.layer_range[1]; l++) plan.push([sources.get(s.model)!, l]);
    const names = first.keys();
    const perLayer = names.filter((n) => LAYER.exec(n)?.[2] === '0');
    if (perLayer.length === 0) throw new TemperError(`${where}: '${first.ref}' has no layer tensors (names with .layers.N. or .h.N.)`);
    const outNames: [string, Source, string][] = names.filter((n) => !LAYER.test(n)).map((n) => [n, first, n]);
    plan.forEach(([src, l], k) => {
      for (const t of perLayer) {
        const from = t.replace(LAYER, `$1${l}.`);
        if (!src.has(from)) throw new TemperError(`${where}: '${src.ref}' has no tensor '${from}' (layer ${l} is outside the model, or its layers differ from '${first.ref}')`);
        outNames.push([t.replace(LAYER, `$1${k}.`), src, from]);
      }
    });
    mkdirSync(outputDir, { recursive: true });
    const writer = new ShardWriter(outputDir, { maxShardSize: opts.outShardSize ?? '5GB' });
    try {
      outNames.forEach(([out, src, from], i) => {
        const t = src.tensor(from);
        try {
          if (t.dtype === 'i32' || t.dtype === 'bool') {
            const { dtype, bytes } = tensorBytes(t);
            writer.add(out, dtype, t.shape, bytes);
          } else {
            writer.add(out, outDtype, [...t.shape], floatBytes(checkFinite(hostF32(t), out, where), outDtype));
          }
        } finally {
          if (!t.disposed) t.dispose();
        }
        opts.onProgress?.(i + 1, outNames.length, writer.bytes);
      });
    } catch (e) {
      writer.abort();
      throw e;
    }
    const { files, totalSize } = writer.finish();
    const gen = join(first.configDir, 'generation_config.json');
    if (existsSync(gen)) copyFileSync(gen, join(outputDir, 'generation_config.json'));
    if (opts.copyTokenizer || config.tokenizer_source) for (const f of TOKENIZER_FILES) if (existsSync(join(first.configDir, f))) copyFileSync(join(first.configDir, f), join(outputDir, f));
    writeFileSync(join(outputDir, 'README.md'), modelCard(config, { name: 'passthrough', paper: 'layer stacking, as mergekit passthrough with slices' }));
    const outConfig: Record<string, unknown> = { ...modelConfig, torch_dtype: TORCH_DTYPE[outDtype] };
    if ('n_layer' in modelConfig) outConfig.n_layer = plan.length;
    else outConfig.num_hidden_layers = plan.length;
    writeJsonAtomic(join(outputDir, 'config.json'), outConfig);
    return { tensors: outNames.length, bytes: totalSize, files };
  } finally {
    for (const s of sources.values()) s.close();
  }
}
