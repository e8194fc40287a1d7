// A PEFT LoRA adapter merged into its base (PEFT's merge_and_unload): W' = W + s·B@A, written as
// a plain HF model folder with the tokenizer files of the adapter (when it carries them) or
// the base. What `temper merge-lora` does, as a library call.
import { resolve } from 'node:path';
import { TemperError } from '../tensor/index.js';
import { copyTokenizerFiles, ensureWritableDir, loadWithAdapter, readAdapterConfig, resolveAdapterRef, saveModel, tokenizerDirFor, withFsErrors, type SaveDType } from '../io/index.js';

export interface MergeLoraOptions {
  /** The adapter folder (adapter_config.json + adapter_model.safetensors). */
  adapter: string;
  /** The base model; default: the adapter's base_model_name_or_path. */
  model?: string | null;
  /** Hub revision of the base. */
  revision?: string;
  /** The folder to write (created; must not be the base's folder). */
  output: string;
  /** Weight dtype on disk (default F32). */
  dtype?: SaveDType;
  /** Shard size limit, e.g. "5GB" (default) or "500MB". */
  maxShardSize?: string;
}

/**
 * Merges the adapter into its base and saves the result.
 * @example await mergeLora({ adapter: 'out/sft-lora', output: 'out/sft-merged' });
 */
export async function mergeLora(o: MergeLoraOptions): Promise<{ layers: number; r: number; alpha: number; base: string }> {
  const ref = resolveAdapterRef(o.model ?? null, { adapter: o.adapter });
  const cfg = readAdapterConfig(o.adapter);
  // A model written into the adapter folder would make it read as an adapter beside a model.
  if (resolve(o.adapter) === resolve(o.output)) throw new TemperError(`merge-lora: the output folder ${o.output} is the adapter folder; choose another`);
  ensureWritableDir(o.output, 'merge-lora output');
  const { model, lora, baseDir } = await loadWithAdapter(ref, { revision: o.revision });
  try {
    if (resolve(baseDir) === resolve(o.output)) throw new TemperError(`merge-lora: the output folder ${o.output} is the base model's folder; choose another`);
    const layers = lora!.layers.size;
    lora!.merge();
    withFsErrors(`writing ${o.output}`, () => {
      saveModel(model, o.output, { dtype: o.dtype, maxShardSize: o.maxShardSize });
      copyTokenizerFiles(tokenizerDirFor(ref, baseDir), o.output);
    });
    return { layers, r: cfg.r ?? 8, alpha: cfg.lora_alpha ?? 8, base: ref.base };
  } finally {
    model.dispose();
  }
}
