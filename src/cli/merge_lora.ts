// `temper merge-lora`: base model + PEFT LoRA adapter -> a plain HF model folder with
// W' = W + s·B@A (PEFT's merge_and_unload), tokenizer files copied from the base.
// Only parses arguments and calls the library (io/peft.ts, nn/lora.ts).
import { copyFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { TemperError } from '../tensor/index.js';
import { loadAdapter, loadModelFromDir, readAdapterConfig, resolveModelRef, saveModel } from '../io/index.js';

export const MERGE_LORA_HELP = `Usage: temper merge-lora --adapter DIR --output OUT [--model PATH_OR_ID] [options]

Merges a PEFT LoRA adapter into its base model and writes a plain model folder
(config.json, safetensors weights, tokenizer files copied from the base).

  --adapter DIR          adapter folder (adapter_config.json + adapter_model.safetensors)
  --output OUT           folder to write (created if needed)
  --model PATH_OR_ID     base model folder or hub id (default: the adapter's base_model_name_or_path)
  --revision REV         hub revision of the base model (default main)
  --dtype F32|BF16|F16   weight dtype on disk (default F32)
  --max_shard_size SIZE  e.g. 5GB (default) or 500MB
`;

/** Files a model folder needs besides weights and config, copied from the base when present. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'generation_config.json', 'vocab.json', 'merges.txt', 'tokenizer.model'];

/** Runs `temper merge-lora ARGV`; returns the exit code. Throws TemperError for bad input. */
export async function mergeLoraCommand(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      revision: { type: 'string' },
      adapter: { type: 'string' },
      output: { type: 'string' },
      dtype: { type: 'string', default: 'F32' },
      max_shard_size: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (v.help) {
    process.stdout.write(MERGE_LORA_HELP);
    return 0;
  }
  if (!v.adapter) throw new TemperError('merge-lora: --adapter DIR is required');
  if (!v.output) throw new TemperError('merge-lora: --output OUT is required');
  const dtype = v.dtype!.toUpperCase();
  if (dtype !== 'F32' && dtype !== 'BF16' && dtype !== 'F16') throw new TemperError(`merge-lora: --dtype must be F32, BF16 or F16, got '${v.dtype}'`);
  const cfg = readAdapterConfig(v.adapter);
  const ref = v.model ?? cfg.base_model_name_or_path;
  if (!ref) throw new TemperError(`merge-lora: --model is required (${join(v.adapter, 'adapter_config.json')} has no base_model_name_or_path)`);
  const baseDir = await resolveModelRef(ref, { revision: v.revision });
  if (resolve(baseDir) === resolve(v.output)) throw new TemperError('merge-lora: --output must differ from the base model folder');

  const model = loadModelFromDir(baseDir, { task: cfg.task_type === 'SEQ_CLS' ? 'sequence-classification' : 'causal-lm' });
  try {
    const lora = loadAdapter(model, v.adapter);
    const n = lora.layers.size;
    lora.merge();
    saveModel(model, v.output, { dtype, maxShardSize: v.max_shard_size });
    for (const f of TOKENIZER_FILES) if (existsSync(join(baseDir, f)) && !existsSync(join(v.output, f))) copyFileSync(join(baseDir, f), join(v.output, f));
    process.stderr.write(`temper: merged ${n} LoRA layer(s) (r ${cfg.r}, alpha ${cfg.lora_alpha}) into ${ref} -> ${v.output}\n`);
  } finally {
    model.dispose();
  }
  return 0;
}
