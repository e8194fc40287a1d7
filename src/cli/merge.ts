// `temper merge config.yaml OUTPUT_DIR`: merges models from a mergekit YAML (linear, ties,
// dare_*, breadcrumbs*, task_arithmetic, slerp). Only parses arguments and calls src/merge.
import { TemperError } from '../tensor/index.js';
import { MERGE_METHODS, readMergeConfig, runMerge } from '../merge/index.js';
import { createProgress } from './progress.js';
import { parseFlags } from './flags.js';

export const MERGE_HELP = `Usage: temper merge CONFIG.yaml OUTPUT_DIR [options]

Merges models as described by a mergekit YAML config (models:, base_model:, parameters:,
merge_method:, dtype:, out_dtype:, tokenizer_source: base), tensor by tensor, so memory stays
at a few tensors plus one output shard.

  --out_shard_size SIZE  largest output shard, e.g. 5GB (default) or 500MB (tensor bytes)
  --seed N               seed of the random methods (dare_*) (default 0)
  --copy_tokenizer       copy tokenizer files from the base model
  --dtype F32|BF16|F16   output dtype (default: out_dtype/dtype from the YAML, else the base's)

Methods:
${MERGE_METHODS.map((m) => `  ${m.name.padEnd(18)} ${m.paper}`).join('\n')}
  ${'passthrough'.padEnd(18)} layer stacking with slices: [{sources: [{model, layer_range: [from, to]}]}]
`;

/** Runs `temper merge ARGV`; returns the exit code. Throws TemperError for bad input. */
export async function mergeCommand(argv: string[]): Promise<number> {
  const v = parseFlags('merge', argv, {
    out_shard_size: { type: 'string' },
    seed: { type: 'string' },
    copy_tokenizer: { type: 'boolean', default: false },
    dtype: { type: 'string' },
  }, { positionals: true });
  const positionals = v.positionals;
  if (v.help) {
    process.stdout.write(MERGE_HELP);
    return 0;
  }
  if (positionals.length !== 2) throw new TemperError(`merge: expected CONFIG.yaml OUTPUT_DIR (got ${positionals.length} argument(s)); see temper merge --help`);
  const [configPath, outDir] = positionals as [string, string];
  let dtype: 'F32' | 'BF16' | 'F16' | undefined;
  if (v.dtype !== undefined) {
    const d = v.dtype.toUpperCase();
    if (d !== 'F32' && d !== 'BF16' && d !== 'F16') throw new TemperError(`merge: --dtype must be F32, BF16 or F16, got '${v.dtype}'`);
    dtype = d;
  }
  let seed: number | undefined;
  if (v.seed !== undefined) {
    seed = Number(v.seed);
    if (!Number.isInteger(seed)) throw new TemperError(`merge: --seed must be an integer, got '${v.seed}'`);
  }
  const config = readMergeConfig(configPath);
  let bar: ReturnType<typeof createProgress> | null = null;
  const start = Date.now();
  const res = await runMerge(config, outDir, {
    outShardSize: v.out_shard_size,
    seed,
    copyTokenizer: v.copy_tokenizer,
    onWarning: (m) => process.stderr.write(`temper: warning: ${m}\n`),
    dtype,
    onProgress: (done, total, bytes) => {
      bar ??= createProgress(`merge ${config.merge_method}`, total, 'tensors');
      const s = (Date.now() - start) / 1000;
      bar.update(done, `${(bytes / 1e6).toFixed(1)} MB, ${s > 0 ? (bytes / 1e6 / s).toFixed(1) : '?'} MB/s`);
    },
  });
  (bar as ReturnType<typeof createProgress> | null)?.stop();
  process.stderr.write(`temper: merged ${res.tensors} tensors (${(res.bytes / 1e6).toFixed(1)} MB, ${res.files.length} file(s)) with ${config.merge_method} -> ${outDir}\n`);
  return 0;
}
