// `temper sft`: a YAML config and/or --key value flags (flags win), validated up front,
// then runSft with a progress bar (or plain lines with --quiet / no TTY), eval results on
// their own lines and a summary at the end. Only parses, validates and renders.
import { SFT_SCHEMA, type SFTConfig } from '../algorithms/sft_config.js';
import { runSft } from '../algorithms/sft.js';
import { parseConfigArgs, readConfigFile, resolveConfig, schemaHelp } from './config.js';
import { createProgress, type Progress } from './progress.js';
import type { LogEntry } from '../train/index.js';

export const SFT_HELP = `Usage: temper sft [--config sft.yaml] [--key value ...]

Supervised fine-tuning (full or LoRA) of a causal LM on conversations, prompt/completion
pairs or plain text, with TRL's SFTConfig names. Flags override the config file.
Outputs in output_dir: the model (or PEFT adapter) with tokenizer files, checkpoint-N/,
metrics.jsonl and report.html.

Keys:
${schemaHelp(SFT_SCHEMA)}

Example:
  temper sft --model builtin:tiny --dataset builtin:arith-chat --use_peft true --output_dir out/sft
`;

const f = (v: number | undefined, d = 4) => (v === undefined || !Number.isFinite(v) ? String(v) : Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toFixed(d));

/** Renders training progress: a bar with the last metrics, or plain lines. */
export function trainingDisplay(quiet: boolean) {
  let bar: Progress | null = null;
  let last: LogEntry | null = null;
  const detail = () => (last ? `loss ${f(last.loss)} lr ${f(last.learning_rate, 6)} gnorm ${f(last.grad_norm, 3)} ${f(last.tokens_per_second, 0)} tok/s ep ${f(last.epoch, 2)}` : '');
  return {
    onNote: (msg: string) => process.stderr.write(`temper: ${msg}\n`),
    onStart: ({ totalSteps, startStep }: { totalSteps: number; startStep: number }) => {
      if (startStep > 0) process.stderr.write(`temper: resuming at step ${startStep} of ${totalSteps}\n`);
      bar = createProgress('train', totalSteps, 'steps', { plain: quiet });
      bar.update(startStep);
    },
    onLog: (e: LogEntry) => {
      last = e;
      if (quiet || !process.stderr.isTTY) process.stderr.write(`step ${e.step} | ${detail()}\n`);
    },
    onEval: (e: LogEntry) => process.stderr.write(`${process.stderr.isTTY && !quiet ? '\n' : ''}eval @ step ${e.step}: ${Object.entries(e).filter(([k]) => k.startsWith('eval_')).map(([k, v]) => `${k} ${f(v)}`).join('  ')}\n`),
    onSave: (dir: string) => {
      if (quiet || !process.stderr.isTTY) process.stderr.write(`saved ${dir}\n`);
    },
    onStep: (step: number) => {
      if (!quiet && process.stderr.isTTY) bar?.update(step, detail());
    },
    stop: () => bar?.stop(),
  };
}

export async function sftCommand(argv: string[]): Promise<number> {
  const { configPath, flags, help } = parseConfigArgs(argv);
  if (help) {
    process.stdout.write(SFT_HELP);
    return 0;
  }
  const file = configPath ? readConfigFile(configPath) : {};
  const cfg: SFTConfig = resolveConfig(SFT_SCHEMA, file, flags, configPath);
  const ui = trainingDisplay(cfg.quiet);
  const t0 = Date.now();
  let r;
  try {
    r = await runSft(cfg, ui);
  } finally {
    ui.stop();
  }
  const train = r.logHistory.filter((e) => 'loss' in e);
  const evals = r.logHistory.filter((e) => 'eval_loss' in e);
  const tokens = train.reduce((n, e) => n + (e.num_tokens ?? 0), 0);
  const secs = (Date.now() - t0) / 1000;
  process.stderr.write(
    [
      '',
      r.interrupted ? `interrupted at step ${r.globalStep}; checkpoint: ${r.lastCheckpoint}  (resume with --resume_from_checkpoint true)` : `done: ${r.globalStep} steps in ${secs.toFixed(1)} s, ${tokens} tokens (${(tokens / secs).toFixed(0)} tok/s)`,
      `  final train loss ${f(train.at(-1)?.loss)}${evals.length ? `, eval loss ${f(evals.at(-1)?.eval_loss)}, eval token accuracy ${f(evals.at(-1)?.eval_token_accuracy)}` : ''}`,
      `  ${cfg.use_peft ? 'adapter' : 'model'}: ${r.outputDir}`,
      `  report: ${r.reportPath}`,
      '',
    ].join('\n'),
  );
  return r.interrupted ? 130 : 0;
}
