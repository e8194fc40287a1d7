// `temper merge-lora`: base model + PEFT LoRA adapter -> a plain HF model folder with
// W' = W + s·B@A (PEFT's merge_and_unload). Only parses arguments and calls mergeLora.
import { TemperError } from '../tensor/index.js';
import { mergeLora } from '../merge/index.js';
import { parseFlags } from './flags.js';

export const MERGE_LORA_HELP = `Usage: temper merge-lora --adapter DIR --output OUT [--model PATH_OR_ID] [options]

Merges a PEFT LoRA adapter into its base model and writes a plain model folder
(config.json, safetensors weights, tokenizer files from the adapter or the base).

  --adapter DIR          adapter folder (adapter_config.json + adapter_model.safetensors)
  --output OUT           folder to write (created if needed)
  --model PATH_OR_ID     base model folder or hub id (default: the adapter's base_model_name_or_path)
  --revision REV         hub revision of the base model (default main)
  --dtype F32|BF16|F16   weight dtype on disk (default F32)
  --max_shard_size SIZE  e.g. 5GB (default) or 500MB
`;

/** Runs `temper merge-lora ARGV`; returns the exit code. Throws TemperError for bad input. */
export async function mergeLoraCommand(argv: string[]): Promise<number> {
  const v = parseFlags('merge-lora', argv, {
    model: { type: 'string' },
    revision: { type: 'string' },
    adapter: { type: 'string' },
    output: { type: 'string' },
    dtype: { type: 'string', default: 'F32' },
    max_shard_size: { type: 'string' },
  });
  if (v.help) {
    process.stdout.write(MERGE_LORA_HELP);
    return 0;
  }
  if (!v.adapter) throw new TemperError('merge-lora: --adapter DIR is required');
  if (!v.output) throw new TemperError('merge-lora: --output OUT is required');
  const dtype = String(v.dtype).toUpperCase();
  if (dtype !== 'F32' && dtype !== 'BF16' && dtype !== 'F16') throw new TemperError(`merge-lora: --dtype must be F32, BF16 or F16, got '${v.dtype}'`);
  const r = await mergeLora({ adapter: v.adapter, output: v.output, model: v.model, revision: v.revision, dtype, maxShardSize: v.max_shard_size });
  process.stderr.write(`temper: merged ${r.layers} LoRA layer(s) (r ${r.r}, alpha ${r.alpha}) into ${r.base} -> ${v.output}\n`);
  return 0;
}
