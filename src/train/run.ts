// The two ends of a trainer's run that every trainer shares: before the loop, the checks on
// the prepared data and the run's config written beside its outputs; after it, the final
// weights (unless Ctrl-C stopped the run early, when the checkpoint it saved is the output)
// and the HTML report.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError } from '../tensor/index.js';
import type { PretrainedModel } from '../models/index.js';
import { withFsErrors } from '../io/index.js';
import { writeReport } from './report.js';
import type { TrainResult } from './loop.js';
import type { Policy } from './policy.js';

/**
 * Checks that there is something to train on (and to evaluate on, when evaluation is on) and
 * writes output_dir/run_config.json. `cfg` is the trainer's whole parsed config.
 */
export function startRun(
  trainer: string,
  cfg: { output_dir: string; eval_strategy: string } & Record<string, unknown>,
  data: { trainExamples: number; evalExamples: number; dataset: string },
): void {
  if (data.trainExamples === 0) throw new TemperError(`${trainer}: no training examples in ${data.dataset}`);
  if (cfg.eval_strategy !== 'no' && data.evalExamples === 0)
    throw new TemperError(`${trainer}: eval_strategy is '${cfg.eval_strategy}' but there is no evaluation set (set eval_dataset or eval_ratio)`);
  const path = join(cfg.output_dir, 'run_config.json');
  withFsErrors(`writing ${path}`, () => writeFileSync(path, JSON.stringify({ trainer, ...cfg }, null, 2) + '\n'));
}

/**
 * Saves the final weights into output_dir when the run reached its end, and writes report.html.
 * Returns what was saved ('adapter' or 'model'; null when interrupted).
 */
export function finishRun<M extends PretrainedModel>(policy: Policy<M>, outputDir: string, result: TrainResult, title: string): { reportPath: string; saved: 'adapter' | 'model' | null } {
  let saved: 'adapter' | 'model' | null = null;
  if (!result.interrupted) {
    policy.saveWeights(outputDir);
    saved = policy.lora ? 'adapter' : 'model';
  }
  const reportPath = withFsErrors(`writing the report in ${outputDir}`, () => writeReport(outputDir, title));
  return { reportPath, saved };
}
