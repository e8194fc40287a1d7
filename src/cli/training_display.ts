// What a training run shows while it runs: notes and warnings as `temper:` lines, a progress
// bar with the latest metrics (or plain lines with --quiet / without a terminal), evaluation
// results on their own lines. On stderr; stdout stays for results.
import { createProgress, type Progress } from './progress.js';
import type { LogEntry, LoopCallbacks } from '../train/index.js';

/** A number for a log line: fixed digits, exponent for tiny values. */
export const fmtMetric = (v: number | undefined, d = 4) => (v === undefined || !Number.isFinite(v) ? String(v) : Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toFixed(d));

export interface TrainingDisplay extends LoopCallbacks {
  onNote(msg: string): void;
  stop(): void;
}

/** Renders training progress: a bar with the last metrics, or plain lines. `extra` names more logged keys to show. */
export function trainingDisplay(quiet: boolean, extra: string[] = []): TrainingDisplay {
  let bar: Progress | null = null;
  let last: LogEntry | null = null;
  const plain = quiet || !process.stderr.isTTY;
  const f = fmtMetric;
  const detail = () =>
    last
      ? [`loss ${f(last.loss)}`, ...extra.filter((k) => k in last!).map((k) => `${k} ${f(last![k])}`), `lr ${f(last.learning_rate, 6)}`, `gnorm ${f(last.grad_norm, 3)}`,
          `${f(last.tokens_per_second, 0)} tok/s`, `ep ${f(last.epoch, 2)}`].join(' ')
      : '';
  const line = (s: string) => process.stderr.write(`${!plain && bar ? '\n' : ''}${s}\n`);
  return {
    onNote: (msg) => line(`temper: ${msg}`),
    onWarning: (msg) => line(`temper: warning: ${msg}`),
    onStart: ({ totalSteps, startStep }) => {
      if (startStep > 0) process.stderr.write(`temper: resuming at step ${startStep} of ${totalSteps}\n`);
      bar = createProgress('train', totalSteps, 'steps', { plain: quiet });
      bar.update(startStep);
    },
    onLog: (e) => {
      last = e;
      if (plain) process.stderr.write(`step ${e.step} | ${detail()}\n`);
    },
    onEval: (e) => line(`eval @ step ${e.step}: ${Object.entries(e).filter(([k]) => k.startsWith('eval_')).map(([k, v]) => `${k} ${f(v)}`).join('  ')}`),
    onSave: (dir) => {
      if (plain) process.stderr.write(`saved ${dir}\n`);
    },
    onStep: (step) => {
      if (!plain) bar?.update(step, detail());
    },
    stop: () => bar?.stop(),
  };
}
