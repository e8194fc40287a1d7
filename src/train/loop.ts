// The shared training loop every trainer runs: micro-batches from a batch source grouped by
// gradient_accumulation_steps, the step's summed loss divided by the step's normalizer (tokens
// for SFT, pairs for DPO; so batch 8 x accumulation 1 equals batch 1 x accumulation 8),
// clipping, AdamW over parameter groups with a schedule, logging, evaluation, atomic
// checkpoints and exact resume (weights, optimizer, batch cursor, RNG), a stop on non-finite
// loss or gradients that names the step, a warning when the model collapses, and Ctrl-C saving
// a checkpoint before exiting. What a batch is and how its loss is computed belong to the
// trainer (src/algorithms).
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, defaultGenerator, globalNorm, scope, type Tensor } from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import { withFsErrors } from '../io/index.js';
import { AdamW, type ParamGroup } from './optimizer.js';
import { lrLambda, warmupSteps, type ScheduleName } from './schedule.js';
import { changedSetting, listCheckpoints, openCheckpoint, prepareOutputDir, saveCheckpoint, type TrainerState } from './checkpoint.js';
import type { BatchSource, JsonValue } from './batch_source.js';

/** TrainingArguments' names (camelCase); args.ts maps the snake_case keys onto these. */
export interface TrainingConfig {
  outputDir: string;
  /** A new run into an output_dir with checkpoints deletes them (otherwise it is refused). Default false. */
  overwriteOutputDir?: boolean;
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
  /** Trainable parameters (LoRA: only the adapters), in groups when some have their own learning rate. */
  paramGroups: ParamGroup[];
  /** The micro-batches, with a cursor the checkpoint holds. */
  source: BatchSource<B>;
  /**
   * The micro-batch's share of the step's normalizer: the step's summed loss is divided by the
   * sum of this over its micro-batches (loss tokens for SFT, pairs for DPO).
   */
  normalizer(batch: B): number;
  /** Tokens processed, for num_tokens and tokens_per_second (default: the normalizer). */
  tokens?(batch: B): number;
  /**
   * The summed loss of a micro-batch (a scalar with a graph) and extra sums to log; each logged
   * sum is divided by the logging window's total normalizer (a per-unit mean).
   */
  lossSum(batch: B): { loss: Tensor; sums?: Record<string, number> };
  /** Extra metrics of the step just taken (called after the update); logged as means over the window's steps. */
  stepMetrics?(): Record<string, number>;
  /** Evaluation metrics (e.g. eval_loss), in eval mode; called by the loop. */
  evaluate?(): Record<string, number>;
  /** Writes the current weights (model or adapter, tokenizer files) into a folder. */
  saveWeights(dir: string): void;
  /** Restores weights from a checkpoint folder written by saveWeights. */
  loadWeights(dir: string): void;
  /** Data and batching settings a resumed run must share with the checkpoint; a change is refused, naming the key. */
  settings: Record<string, JsonValue>;
  /** The loss of uniform predictions (ln V): a loss stuck there with no gradient is reported as a collapse. */
  uniformLoss?: number;
}

export interface LogEntry {
  step: number;
  epoch: number;
  [key: string]: number;
}

export interface LoopCallbacks {
  onStart?(info: { totalSteps: number; startStep: number; stepsPerEpoch: number | null }): void;
  onLog?(entry: LogEntry): void;
  onEval?(entry: LogEntry): void;
  onSave?(dir: string): void;
  onStep?(step: number, totalSteps: number, last: LogEntry | null): void;
  /** Something the user should know that does not stop the run (a collapsed model). */
  onWarning?(message: string): void;
}

export interface TrainResult {
  globalStep: number;
  interrupted: boolean;
  logHistory: LogEntry[];
  lastCheckpoint: string | null;
}

const yieldToEvents = () => new Promise<void>((r) => setImmediate(r));
/** Consecutive steps at the uniform loss with no gradient before the collapse warning. */
const COLLAPSE_STEPS = 10;

/** Runs training to the configured length (or until Ctrl-C); returns where it stopped. */
export async function trainLoop<B>(cfg: TrainingConfig, hooks: TrainerHooks<B>, cb: LoopCallbacks = {}): Promise<TrainResult> {
  const accum = cfg.gradientAccumulationSteps;
  if (!(Number.isInteger(accum) && accum >= 1)) throw new TemperError(`gradient_accumulation_steps must be a positive integer, got ${accum}`);
  const source = hooks.source;
  const microPerEpoch = source.microBatchesPerEpoch;
  const stepsPerEpoch = microPerEpoch === null ? null : Math.ceil(microPerEpoch / accum);
  if (stepsPerEpoch === null && !(cfg.maxSteps > 0)) throw new TemperError('max_steps must be set (> 0): this trainer produces its batches as it goes and has no epochs');
  const totalSteps = cfg.maxSteps > 0 ? cfg.maxSteps : Math.ceil(cfg.numTrainEpochs * stepsPerEpoch!);
  const schedule = { type: cfg.lrSchedulerType, warmupSteps: warmupSteps(totalSteps, cfg.warmupSteps, cfg.warmupRatio), totalSteps };
  prepareOutputDir(cfg.outputDir, { resume: cfg.resumeFromCheckpoint, overwrite: cfg.overwriteOutputDir ?? false });
  using opt = new AdamW(hooks.paramGroups, { lr: cfg.learningRate, beta1: cfg.adamBeta1, beta2: cfg.adamBeta2, eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay });
  const params = opt.params;
  const metricsPath = join(cfg.outputDir, 'metrics.jsonl');
  const writeMetrics = (fn: () => void) => withFsErrors(`writing ${metricsPath}`, fn);

  defaultGenerator.manualSeed(cfg.seed);
  let state: TrainerState = { global_step: 0, data: source.state(), rng: defaultGenerator.getState(), log_history: [], settings: hooks.settings };
  if (cfg.resumeFromCheckpoint && !(cfg.resumeFromCheckpoint === true && listCheckpoints(cfg.outputDir).length === 0)) {
    const ck = openCheckpoint(cfg.outputDir, cfg.resumeFromCheckpoint);
    try {
      const changed = changedSetting(ck.state.settings, hooks.settings);
      if (changed) throw new TemperError(`resume_from_checkpoint: ${ck.dir} was written with other settings (${changed}); restore it, or start a new output_dir`);
      hooks.loadWeights(ck.dir);
      opt.loadState(ck.state.global_step, (k) => (ck.optimizer.tensors.has(k) ? ck.optimizer.tensor(k) : undefined), join(ck.dir, 'optimizer.safetensors'));
      state = ck.state;
      source.restore(state.data);
      defaultGenerator.setState(state.rng);
    } finally {
      ck.optimizer.close();
    }
    // Metrics logged after the checkpoint belong to the run being replaced.
    if (existsSync(metricsPath)) {
      const kept = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l && (JSON.parse(l) as LogEntry).step <= state.global_step);
      writeMetrics(() => writeFileSync(metricsPath, kept.map((l) => l + '\n').join('')));
    }
  } else {
    writeMetrics(() => writeFileSync(metricsPath, ''));
  }

  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSigint);
  let lastCheckpoint: string | null = null;
  const save = () => {
    state.rng = defaultGenerator.getState();
    state.data = source.state();
    lastCheckpoint = saveCheckpoint(cfg.outputDir, state, opt.stateTensors(), (d) => hooks.saveWeights(d), cfg.saveTotalLimit);
    cb.onSave?.(lastCheckpoint);
  };
  const log = (entry: LogEntry) => {
    state.log_history.push(entry);
    writeMetrics(() => appendFileSync(metricsPath, JSON.stringify(entry) + '\n'));
  };
  const runEval = () => {
    if (!hooks.evaluate) return;
    hooks.model.eval();
    const m = hooks.evaluate();
    hooks.model.train();
    const entry: LogEntry = { step: state.global_step, epoch: source.epoch, ...m };
    log(entry);
    cb.onEval?.(entry);
  };

  cb.onStart?.({ totalSteps, startStep: state.global_step, stepsPerEpoch });
  hooks.model.train();
  const window = { loss: 0, weight: 0, tokens: 0, steps: 0, start: Date.now(), sums: {} as Record<string, number>, means: {} as Record<string, number> };
  let last: LogEntry | null = null;
  let collapsedSince = 0;
  let collapseWarned = false;
  try {
    while (state.global_step < totalSteps && !interrupted) {
      const group = await source.nextStep(accum);
      const N = group.reduce((n, b) => n + hooks.normalizer(b), 0);
      const tokens = hooks.tokens ? group.reduce((n, b) => n + hooks.tokens!(b), 0) : N;
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
      const grads = params.flatMap(([, p]) => (p.grad ? [p.grad] : []));
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
      for (const [, p] of params) p.zeroGrad();
      state.global_step = step;
      if (finite) {
        window.loss += lossSum;
        window.weight += N;
        window.tokens += tokens;
        for (const [k, v] of Object.entries(hooks.stepMetrics?.() ?? {})) window.means[k] = (window.means[k] ?? 0) + v;
      }
      window.steps++;

      // A loss stuck at ln V with no gradient: the weights can no longer move (learning rate too high).
      const stepLoss = N > 0 ? lossSum / N : NaN;
      const atUniform = hooks.uniformLoss === undefined || Math.abs(stepLoss - hooks.uniformLoss) <= 1e-3 * hooks.uniformLoss;
      collapsedSince = finite && gradNorm < 1e-6 && atUniform ? collapsedSince + 1 : 0;
      if (collapsedSince >= COLLAPSE_STEPS && !collapseWarned) {
        collapseWarned = true;
        cb.onWarning?.(
          `steps ${step - COLLAPSE_STEPS + 1}-${step}: the loss sits at ${stepLoss.toFixed(4)}${hooks.uniformLoss !== undefined ? ' (uniform predictions, ln of the vocabulary size)' : ''} ` +
            `with a zero gradient norm: the model has collapsed and will not learn. Lower learning_rate (now ${cfg.learningRate}) and start again`,
        );
      }

      if (step % cfg.loggingSteps === 0 || step === totalSteps) {
        const secs = (Date.now() - window.start) / 1000;
        const counted = window.steps - (window.sums.skipped_steps ?? 0);
        last = {
          step,
          epoch: source.epoch,
          loss: window.weight > 0 ? window.loss / window.weight : NaN,
          learning_rate: lr,
          grad_norm: gradNorm,
          tokens_per_second: secs > 0 ? window.tokens / secs : 0,
          num_tokens: window.tokens,
          ...Object.fromEntries(Object.entries(window.sums).map(([k, v]) => [k, k === 'skipped_steps' ? v : v / Math.max(1, window.weight)])),
          ...Object.fromEntries(Object.entries(window.means).map(([k, v]) => [k, v / Math.max(1, counted)])),
        };
        log(last);
        cb.onLog?.(last);
        Object.assign(window, { loss: 0, weight: 0, tokens: 0, steps: 0, start: Date.now(), sums: {}, means: {} });
      }
      const epochEnd = source.epochEnded;
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
