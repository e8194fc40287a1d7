// Hugging Face model folders: config.json + generation_config.json + safetensors weights
// (single or sharded), loaded 1:1 into a temper model by parameter name and written back
// in the same layout. Loading reads tensor by tensor, so peak host memory is one tensor.
// Not tokenizers (src/text) and not adapters (PEFT folders have their own reader).
import { copyFileSync, existsSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, assign, noGrad, randn, Generator, type Tensor } from '../tensor/index.js';
import { emptyInit } from '../nn/index.js';
import { createModel, parseConfig, type ModelConfig, type PretrainedModel, type Task } from '../models/index.js';
import { WeightsReader, writeWeights } from './sharded.js';
import type { SaveDType } from './safetensors.js';
import { resolveModelRef, type ResolveOptions } from './hub.js';
import { readJsonFile } from './json.js';

export interface LoadModelOptions extends ResolveOptions {
  /** Head to build; default from config.json's architectures. */
  task?: Task;
  /** Labels of a new sequence-classification head (reward models use 1). */
  numLabels?: number;
  /** Seed for heads the checkpoint lacks (a new `score`). */
  seed?: number;
  /** Where notes such as "initialized score.weight" go (default stderr). */
  warn?: (msg: string) => void;
}

/** Tensors in checkpoints that are buffers, not parameters. */
const IGNORED = [/\.attn\.(masked_)?bias$/, /rotary_emb\.inv_freq$/];


/** Reads and checks `dir/config.json` (and generation_config.json when present). */
export function readModelConfig(dir: string): ModelConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new TemperError(`${dir}: no config.json (not a Hugging Face model folder?)`);
  const config = parseConfig(readJsonFile(path), path);
  const gen = join(dir, 'generation_config.json');
  config.generationConfig = existsSync(gen) ? (readJsonFile(gen) as Record<string, unknown>) : null;
  return config;
}

/**
 * Loads a model from a local folder or a hub id.
 * @example const model = await loadModel('HuggingFaceTB/SmolLM2-135M');
 */
export async function loadModel(ref: string, opts: LoadModelOptions = {}): Promise<PretrainedModel> {
  return loadModelFromDir(await resolveModelRef(ref, opts), opts);
}

/** Loads a model from a folder on disk (eval mode, as transformers' from_pretrained). */
export function loadModelFromDir(dir: string, opts: LoadModelOptions = {}): PretrainedModel {
  const config = readModelConfig(dir);
  if (opts.numLabels !== undefined) {
    config.numLabels = opts.numLabels;
    config.raw.num_labels = opts.numLabels;
  }
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`temper: ${m}\n`));
  const model = createModel(config, emptyInit, opts.task);
  try {
    using reader = new WeightsReader(dir);
    const used = new Set<string>();
    noGrad(() => {
      for (const [name, param] of model.stateDict()) {
        // Original GPT-2 checkpoints name tensors without the "transformer." prefix.
        const key = reader.has(name) ? name : config.modelType === 'gpt2' && reader.has(name.replace(/^transformer\./, '')) ? name.replace(/^transformer\./, '') : null;
        if (key === null) {
          if (name === 'score.weight') {
            warn(`${dir}: checkpoint has no score.weight; initialized a new ${config.numLabels}-label head (normal, std ${config.initializerRange})`);
            const w = randn(param.shape, { std: config.initializerRange, generator: new Generator(opts.seed ?? 0) });
            assign(param, w);
            w.dispose();
            continue;
          }
          throw new TemperError(`${dir}: checkpoint has no tensor '${name}' (needed by ${config.architectures[0]})`);
        }
        used.add(key);
        const t: Tensor = reader.tensor(key);
        try {
          if (t.shape.join() !== param.shape.join())
            throw new TemperError(`${join(dir, reader.weightMap.get(key)!)}: tensor '${key}' has shape [${t.shape}], ${config.architectures[0]} expects [${param.shape}] (config.json mismatch?)`);
          assign(param, t);
        } finally {
          t.dispose();
        }
      }
    });
    const unused = reader.keys().filter((k) => !used.has(k) && !IGNORED.some((r) => r.test(k)) && !(config.tieWordEmbeddings && k === 'lm_head.weight'));
    if (unused.length) warn(`${dir}: ignored ${unused.length} checkpoint tensor(s) the model does not use: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', …' : ''}`);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model.eval();
}

export interface SaveModelOptions {
  /** Weight dtype on disk (default F32). */
  dtype?: SaveDType;
  /** Shard size limit, e.g. "5GB" (default) or "500MB". */
  maxShardSize?: string | number;
}

const TORCH_DTYPE: Record<SaveDType, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/**
 * Writes config.json, generation_config.json and the weights into `dir` (created if
 * needed). Each file is written to a temp name and renamed; the shard index and then
 * config.json come last, so an interrupted save never looks complete.
 */
export function saveModel(model: PretrainedModel, dir: string, opts: SaveModelOptions = {}): void {
  mkdirSync(dir, { recursive: true });
  const dtype = opts.dtype ?? 'F32';
  writeWeights(dir, model.stateDict(), { dtype, maxShardSize: opts.maxShardSize });
  const config = { ...model.config.raw, torch_dtype: TORCH_DTYPE[dtype] };
  if (model.config.generationConfig) writeJsonAtomic(join(dir, 'generation_config.json'), model.config.generationConfig);
  writeJsonAtomic(join(dir, 'config.json'), config);
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  renameSync(tmp, path);
}

/** The tokenizer's files in a model folder (fast and slow tokenizers, chat templates), as transformers saves them. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'chat_template.jinja', 'chat_template.json',
  'vocab.json', 'merges.txt', 'tokenizer.model',
] as const;

/** Copies the tokenizer files `from` has into `to`; `keep` leaves files `to` already holds. Returns the names copied. */
export function copyTokenizerFiles(from: string, to: string, opts: { keep?: boolean } = {}): string[] {
  const copied: string[] = [];
  for (const f of TOKENIZER_FILES) {
    if (!existsSync(join(from, f)) || (opts.keep && existsSync(join(to, f)))) continue;
    copyFileSync(join(from, f), join(to, f));
    copied.push(f);
  }
  return copied;
}
