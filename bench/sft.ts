// `temper bench sft`: SFT end to end (dataset load, tokenization, packing, batch assembly,
// the step, logging) on the tiny train shape, against the raw `bench train` step of the
// same shape in the same run, both as mean step times after 5 warm-up steps. The
// pipeline's cost is 1 - (SFT tokens/s) / (raw tokens/s).
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/index.js';
import { SFT_SCHEMA } from '../src/algorithms/sft_config.js';
import { runSft } from '../src/algorithms/sft.js';
import { TRAIN_SHAPES, buildModel, timeTrainStep } from './models.js';

const WARMUP = 5;

export function runSftBench(o: { json: boolean; steps: number }): Promise<void> {
  if (o.steps <= WARMUP) throw new T.TemperError(`bench sft: --steps must be more than the ${WARMUP} warm-up steps`);
  return (async () => {
    const s = TRAIN_SHAPES.tiny;
    const work = mkdtempSync(join(tmpdir(), 'temper-bench-sft-'));
    try {
      // The tiny shape with the built-in tokenizer (512 tokens fit its 8192-entry vocabulary).
      const modelDir = join(work, 'model');
      const model = buildModel(s);
      T.saveModel(model, modelDir);
      model.dispose();
      const tokDir = T.resolveBuiltin('builtin:tiny', 'model')!;
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokDir, f), join(modelDir, f));

      // Both sides: mean step time after the same warm-up (the allocator settles over a few steps).
      const raw = timeTrainStep(s, o.steps - WARMUP, 'mean', WARMUP);
      const rawTps = ((s.batch * s.seq) / raw) * 1e3;
      const out = join(work, 'run');
      const t0 = Date.now();
      // Packed rows of seq tokens, batch of `batch` rows: the raw step's token count per step.
      await runSft(SFT_SCHEMA.parse({
        model: modelDir, dataset: 'builtin:arith-text', output_dir: out, packing: true, max_length: s.seq,
        per_device_train_batch_size: s.batch, max_steps: o.steps, logging_steps: 1, save_strategy: 'no', learning_rate: 1e-4, quiet: true,
      }));
      const wall = (Date.now() - t0) / 1000;
      const entries = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
      const steady = entries.slice(WARMUP);
      const tokens = steady.reduce((n, e) => n + e.num_tokens!, 0);
      const secs = steady.reduce((n, e) => n + e.num_tokens! / e.tokens_per_second!, 0);
      const sftTps = tokens / secs;
      const overhead = 1 - sftTps / rawTps;
      const totalTokens = entries.reduce((n, e) => n + e.num_tokens!, 0);
      const row = {
        suite: 'sft', case: 'tiny_packed', temper: +((1e3 * secs) / steady.length).toFixed(1), peer: +raw.toFixed(1), peer_name: 'temper bench train step (raw)',
        unit: 'ms', ratio: +(raw / ((1e3 * secs) / steady.length)).toFixed(3), sft_tokens_per_s: +sftTps.toFixed(1), raw_tokens_per_s: +rawTps.toFixed(1),
        pipeline_overhead: +overhead.toFixed(4), end_to_end_tokens_per_s: +(totalTokens / wall).toFixed(1), end_to_end_s: +wall.toFixed(2), steps: o.steps,
      };
      process.stdout.write(
        (o.json
          ? JSON.stringify(row)
          : `sft tiny (packed ${s.batch}x${s.seq}): ${sftTps.toFixed(0)} tok/s per step vs raw step ${rawTps.toFixed(0)} tok/s: pipeline costs ${(100 * overhead).toFixed(1)}% ` +
            `(target < 10%); end to end incl. data loading and tokenization ${(totalTokens / wall).toFixed(0)} tok/s over ${wall.toFixed(1)} s`) + '\n',
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  })();
}
