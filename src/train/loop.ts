// The shared training loop every trainer runs: micro-batches grouped by
// gradient_accumulation_steps with the loss normalized by the step's total token count
// (so batch 8 x accumulation 1 equals batch 1 x accumulation 8), clipping, AdamW with a
// schedule, logging, evaluation, atomic checkpoints and exact resume, a stop on non-finite
// loss or gradients that names the step, and Ctrl-C saving a checkpoint before exiting.
// What a batch is and how its loss is computed belong to the trainer (src/algorithms).
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, defaultGenerator, globalNorm, scope, type Tensor } from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import { AdamW } from './optimizer.js';
import { lrLambda, warmupSteps, type ScheduleName } from './schedule.js';
import { listCheckpoints, openCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';

/** TrainingArguments' names (camelCase), with their defaults. */
export interface TrainingConfig {
  outputDir: string;
  learningRate: number;
  lrSchedulerType: ScheduleName;
  warmupRatio: number;
  warmupSteps: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  maxGradNorm: number;
  gradientAccumulationSteps: number;
  numTrainEpochs: number;
  /** > 0 overrides numTrainEpochs. */
  maxSteps: number;
  loggingSteps: number;
  evalStrategy: 'no' | 'steps' | 'epoch';
  evalSteps: number | null;
  saveStrategy: 'no' | 'steps' | 'epoch';
  saveSteps: number;
  saveTotalLimit: number | null;
  seed: number;
  skipNonfinite: boolean;
  resumeFromCheckpoint: boolean | string | null;
}

/** What the loop needs from a trainer. B is the trainer's micro-batch type. */
export interface TrainerHooks<B> {
  model: Module;
  /** Trainable parameters by name (LoRA: only the adapters). */
  params: [string, Tensor][];
  /** The micro-batches of one epoch, in order; deterministic for (seed, epoch). */
  epochBatches(epoch: number): B[];
  /** Tokens that carry loss in a micro-batch (the normalizer is their sum over a step). */
  lossTokens(batch: B): number;
  /** The summed loss of a micro-batch (a scalar with a graph) and extra sums to log. */
  lossSum(batch: B): { loss: Tensor; sums?: Record<string, number> };
  /** Evaluation metrics (e.g. eval_loss), in eval mode; called by the loop. */
  evaluate?(): Record<string, number>;
  /** Writes the current weights (model or adapter, tokenizer files) into a folder. */
  saveWeights(dir: string): void;
  /** Restores weights from a checkpoint folder written by saveWeights. */
  loadWeights(dir: string): void;
  /** Identifies data and batching; a checkpoint from a different fingerprint is not resumed. */
  fingerprint: string;
}

export interface LogEntry {
  step: number;
  epoch: number;
  [key: string]: number;
}

export interface LoopCallbacks {
  onStart?(info: { totalSteps: number; startStep: number; stepsPerEpoch: number }): void;
  onLog?(entry: LogEntry): void;
  onEval?(entry: LogEntry): void;
  onSave?(dir: string): void;
  onStep?(step: number, totalSteps: number, last: LogEntry | null): void;
}

export interface TrainResult {
  globalStep: number;
  interrupted: boolean;
  logHistory: LogEntry[];
  lastCheckpoint: string | null;
}

const yieldToEvents = () => new Promise<void>((r) => setImmediate(r));

/** Runs training to the configured length (or until Ctrl-C); returns where it stopped. */
export async function trainLoop<B>(cfg: TrainingConfig, hooks: TrainerHooks<B>, cb: LoopCallbacks = {}): Promise<TrainResult> {
  const accum = cfg.gradientAccumulationSteps;
  if (!(Number.isInteger(accum) && accum >= 1)) throw new TemperError(`gradient_accumulation_steps must be a positive integer, got ${accum}`);
  const microPerEpoch = hooks.epochBatches(0).length;
  if (microPerEpoch === 0) throw new TemperError('the training set produced no batches (is it empty after filtering?)');
  const stepsPerEpoch = Math.ceil(microPerEpoch / accum);
  const totalSteps = cfg.maxSteps > 0 ? cfg.maxSteps : Math.ceil(cfg.numTrainEpochs * stepsPerEpoch);
  const schedule = { type: cfg.lrSchedulerType, warmupSteps: warmupSteps(totalSteps, cfg.warmupSteps, cfg.warmupRatio), totalSteps };
  using opt = new AdamW(hooks.params, { lr: cfg.learningRate, beta1: cfg.adamBeta1, beta2: cfg.adamBeta2, eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay });
  mkdirSync(cfg.outputDir, { recursive: true });
  const metricsPath = join(cfg.outputDir, 'metrics.jsonl');

  defaultGenerator.manualSeed(cfg.seed);
  let state: TrainerState = { global_step: 0, epoch: 0, micro_batch: 0, rng: defaultGenerator.getState(), log_history: [], fingerprint: hooks.fingerprint };
  if (cfg.resumeFromCheckpoint && !(cfg.resumeFromCheckpoint === true && listCheckpoints(cfg.outputDir).length === 0)) {
    const ck = openCheckpoint(cfg.outputDir, cfg.resumeFromCheckpoint);
    try {
      if (ck.state.fingerprint !== hooks.fingerprint)
        throw new TemperError(`resume_from_checkpoint: ${ck.dir} was written with different data or batch settings; start a new output_dir or restore them`);
      hooks.loadWeights(ck.dir);
      opt.loadState(ck.state.global_step, (k) => (ck.optimizer.tensors.has(k) ? ck.optimizer.tensor(k) : undefined), join(ck.dir, 'optimizer.safetensors'));
      state = ck.state;
      defaultGenerator.setState(state.rng);
    } finally {
      ck.optimizer.close();
    }
    // Metrics logged after the checkpoint belong to the run being replaced.
    if (existsSync(metricsPath)) {
      const kept = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l && (JSON.parse(l) as LogEntry).step <= state.global_step);
      writeFileSync(metricsPath, kept.map((l) => l + '\n').join(''));
    }
  } else {
    writeFileSync(metricsPath, '');
  }

  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSigint);
  let lastCheckpoint: string | null = null;
  const save = () => {
    state.rng = defaultGenerator.getState();
    lastCheckpoint = saveCheckpoint(cfg.outputDir, state, opt.stateTensors(), (d) => hooks.saveWeights(d), cfg.saveTotalLimit);
    cb.onSave?.(lastCheckpoint);
  };
  const log = (entry: LogEntry) => {
    state.log_history.push(entry);
    appendFileSync(metricsPath, JSON.stringify(entry) + '\n');
  };
  const runEval = () => {
    if (!hooks.evaluate) return;
    hooks.model.eval();
    const m = hooks.evaluate();
    hooks.model.train();
    const entry: LogEntry = { step: state.global_step, epoch: state.global_step / stepsPerEpoch, ...m };
    log(entry);
    cb.onEval?.(entry);
  };

  cb.onStart?.({ totalSteps, startStep: state.global_step, stepsPerEpoch });
  hooks.model.train();
  let batches = hooks.epochBatches(state.epoch);
  const window = { loss: 0, tokens: 0, steps: 0, start: Date.now(), sums: {} as Record<string, number> };
  let last: LogEntry | null = null;
  try {
    while (state.global_step < totalSteps && !interrupted) {
      // The micro-batches of this optimizer step (an epoch's last step may have fewer).
      if (state.micro_batch >= batches.length) {
        state.epoch++;
        state.micro_batch = 0;
        batches = hooks.epochBatches(state.epoch);
      }
      const group = batches.slice(state.micro_batch, state.micro_batch + accum);
      const N = group.reduce((n, b) => n + hooks.lossTokens(b), 0);
      const step = state.global_step + 1;
      let lossSum = 0;
      for (const b of group) {
        scope(() => {
          const { loss, sums } = hooks.lossSum(b);
          lossSum += loss.item();
          for (const [k, v] of Object.entries(sums ?? {})) window.sums[k] = (window.sums[k] ?? 0) + v;
          if (N > 0) loss.div(N).backward();
        });
      }
      const grads = hooks.params.flatMap(([, p]) => (p.grad ? [p.grad] : []));
      const gradNorm = globalNorm(grads);
      const finite = Number.isFinite(lossSum) && Number.isFinite(gradNorm);
      if (!finite && !cfg.skipNonfinite) {
        throw new TemperError(
          `step ${step}: ${Number.isFinite(lossSum) ? 'gradient norm' : 'loss'} is not finite (${Number.isFinite(lossSum) ? gradNorm : lossSum}); ` +
            `stopped before the update, nothing was saved for this step${lastCheckpoint ? ` (last checkpoint: ${lastCheckpoint})` : ''}. ` +
            `Lower learning_rate, check the data, or set skip_nonfinite: true to skip such steps`,
        );
      }
      const lr = cfg.learningRate * lrLambda(schedule, state.global_step);
      if (finite) {
        // Clipping as torch's clip_grad_norm_, folded into the update as a gradient scale.
        opt.update(lr, cfg.maxGradNorm > 0 ? Math.min(1, cfg.maxGradNorm / (gradNorm + 1e-6)) : 1);
      } else {
        window.sums.skipped_steps = (window.sums.skipped_steps ?? 0) + 1;
      }
      for (const [, p] of hooks.params) p.zeroGrad();
      state.global_step = step;
      state.micro_batch += group.length;
      if (finite) {
        window.loss += lossSum;
        window.tokens += N;
      }
      window.steps++;

      if (step % cfg.loggingSteps === 0 || step === totalSteps) {
        const secs = (Date.now() - window.start) / 1000;
        last = {
          step,
          epoch: (state.epoch + state.micro_batch / batches.length),
          loss: window.tokens > 0 ? window.loss / window.tokens : NaN,
          learning_rate: lr,
          grad_norm: gradNorm,
          tokens_per_second: secs > 0 ? window.tokens / secs : 0,
          num_tokens: window.tokens,
          ...Object.fromEntries(Object.entries(window.sums).map(([k, v]) => [k, k === 'skipped_steps' ? v : v / Math.max(1, window.tokens)])),
        };
        log(last);
        cb.onLog?.(last);
        Object.assign(window, { loss: 0, tokens: 0, steps: 0, start: Date.now(), sums: {} });
      }
      const epochEnd = state.micro_batch >= batches.length;
      if ((cfg.evalStrategy === 'steps' && cfg.evalSteps && step % cfg.evalSteps === 0) || (cfg.evalStrategy === 'epoch' && epochEnd)) runEval();
      if ((cfg.saveStrategy === 'steps' && step % cfg.saveSteps === 0) || (cfg.saveStrategy === 'epoch' && epochEnd)) save();
      cb.onStep?.(step, totalSteps, last);
      await yieldToEvents();
    }
    if (interrupted && state.global_step < totalSteps) save();
    else if (cfg.evalStrategy !== 'no' && hooks.evaluate && !(state.log_history.at(-1)?.step === state.global_step && 'eval_loss' in state.log_history.at(-1)!)) runEval();
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  return { globalStep: state.global_step, interrupted, logHistory: state.log_history as LogEntry[], lastCheckpoint };
}
