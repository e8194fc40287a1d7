// One CLI command per trainer, built the same way: `temper <name> [--config F.yaml] [--key
// value ...]` (flags win over the file, kebab-case spellings accepted), validated up front
// against the trainer's schema, run with a progress display, and closed by a summary that names
// what was written (the model or adapter, or on Ctrl-C the checkpoint saved). `--help` lists
// every key with its default, by section. A trainer's CLI file is this plus its words.
import type { z } from 'zod';
import { parseConfigArgs, readConfigFile, resolveConfig, schemaHelp } from './config.js';
import { fmtMetric, trainingDisplay, type TrainingDisplay } from './training_display.js';
import type { TrainResult, TrainerArgs } from '../train/index.js';

/** What every trainer's run returns to its command. */
export interface TrainerRunResult extends TrainResult {
  outputDir: string;
  reportPath: string;
  saved: 'adapter' | 'model' | null;
}

export interface TrainerCommandSpec<S extends z.ZodObject> {
  /** The command name (`sft`). */
  name: string;
  /** What the trainer does, for --help (a few lines). */
  summary: string;
  args: TrainerArgs<S>;
  /** One or more example command lines for --help. */
  example: string;
  /** Logged keys shown in the progress line besides the loss (e.g. rewards/margins). */
  show?: string[];
  /** Extra keys of the final train / eval entries for the summary line. */
  summaryKeys?: string[];
  run(cfg: z.infer<S>, ui: TrainingDisplay): Promise<TrainerRunResult>;
}

/** The --help text of a trainer command. */
export function trainerHelp<S extends z.ZodObject>(spec: TrainerCommandSpec<S>): string {
  return `Usage: temper ${spec.name} [--config ${spec.name}.yaml] [--key value ...]

${spec.summary}
Flags override the config file; --some-key is the same as --some_key.

${schemaHelp(spec.args.schema, spec.args.sections)}

Example:
${spec.example}
`;
}

/** `temper <name> ARGV` for a trainer; returns the exit code (130 after Ctrl-C). */
export function trainerCommand<S extends z.ZodObject>(spec: TrainerCommandSpec<S>): (argv: string[]) => Promise<number> {
  return async (argv) => {
    const { configPath, flags, help } = parseConfigArgs(argv);
    if (help) {
      process.stdout.write(trainerHelp(spec));
      return 0;
    }
    const file = configPath ? readConfigFile(configPath) : {};
    const cfg = resolveConfig(spec.args.schema, file, flags, configPath) as z.infer<S> & { quiet: boolean };
    const ui = trainingDisplay(cfg.quiet, spec.show);
    const t0 = Date.now();
    let r: TrainerRunResult;
    try {
      r = await spec.run(cfg, ui);
    } finally {
      ui.stop();
    }
    const train = r.logHistory.filter((e) => 'loss' in e);
    const evals = r.logHistory.filter((e) => Object.keys(e).some((k) => k.startsWith('eval_')));
    const tokens = train.reduce((n, e) => n + (e.num_tokens ?? 0), 0);
    const secs = (Date.now() - t0) / 1000;
    const lastTrain = train.at(-1), lastEval = evals.at(-1);
    const keys = (e: Record<string, number> | undefined, ks: string[]) => ks.filter((k) => e && k in e).map((k) => `${k.replace(/_/g, ' ')} ${fmtMetric(e![k])}`);
    const metrics = [
      `final train loss ${fmtMetric(lastTrain?.loss)}`,
      ...keys(lastTrain, spec.summaryKeys ?? []),
      ...keys(lastEval, Object.keys(lastEval ?? {}).filter((k) => k.startsWith('eval_') && k !== 'eval_tokens')),
    ];
    process.stderr.write(
      [
        '',
        r.interrupted
          ? `interrupted at step ${r.globalStep}; saved checkpoint ${r.lastCheckpoint} (continue with --resume_from_checkpoint true --output_dir ${r.outputDir})`
          : `done: ${r.globalStep} steps in ${secs.toFixed(1)} s, ${tokens} tokens (${(tokens / secs).toFixed(0)} tok/s)`,
        `  ${metrics.join(', ')}`,
        ...(r.saved ? [`  ${r.saved}: ${r.outputDir}`] : []),
        `  report: ${r.reportPath}`,
        '',
      ].join('\n'),
    );
    return r.interrupted ? 130 : 0;
  };
}
