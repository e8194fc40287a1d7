// The configuration pieces every trainer shares, with TRL's names and defaults: model args
// (ModelConfig), data args (ScriptArguments), training args (TrainingArguments) and PEFT args
// (ModelConfig's LoRA fields). A trainer's schema is these plus its own keys (DPO's beta, SFT's
// packing), built by trainerArgs, which also orders the --help text by section.
// Not the CLI parsing (src/cli/config.ts) and not a trainer's own keys.
import { z } from 'zod';
import type { ScheduleName } from './schedule.js';
import type { TrainingConfig } from './loop.js';

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

/** The model to train and where: ModelConfig's names, plus temper's device. */
export const MODEL_ARGS = {
  model: z.string().min(1).describe('model folder, hub id (org/name), builtin:NAME, or a PEFT adapter folder to continue (required)'),
  model_revision: z.string().default('main').describe('hub revision of the model'),
  tokenizer_name_or_path: z.string().nullable().default(null).describe("tokenizer folder or hub id (null: the adapter folder's when it has one, else the model's)"),
  device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'cpu, cuda or cuda:N').default('cpu').describe('where the model trains: cpu, cuda or cuda:N'),
};

/** Where the rows come from (ScriptArguments' names) and the evaluation set. */
export const DATA_ARGS = {
  dataset: z.string().min(1).describe('data file (jsonl/json/csv/parquet), folder, hub dataset id or builtin:NAME (required)'),
  dataset_train_split: z.string().default('train').describe('split of `dataset` to train on'),
  dataset_test_split: z.string().default('test').describe('split of `dataset` to evaluate on, when it has one'),
  eval_dataset: z.string().nullable().default(null).describe('a separate evaluation set (same forms as dataset)'),
  eval_ratio: z.number().min(0).max(0.5).default(0).describe('hold out this fraction of the training rows for evaluation'),
  skip_invalid_rows: z.boolean().default(false).describe('skip malformed rows and lines that are not valid JSON (and report how many) instead of stopping'),
};

/** The loop's settings: TrainingArguments' names and defaults. */
export const TRAINING_ARGS = {
  output_dir: z.string().min(1).default('trainer_output').describe('where checkpoints, the final model, metrics.jsonl and report.html go'),
  overwrite_output_dir: z.boolean().default(false).describe('a new run into an output_dir holding checkpoint-N folders deletes them first (otherwise it is refused)'),
  learning_rate: z.number().positive().default(2e-5).describe('peak learning rate (AdamW)'),
  lr_scheduler_type: z.enum(['constant', 'constant_with_warmup', 'linear', 'cosine', 'warmup_stable_decay']).default('linear').describe('learning-rate schedule'),
  warmup_ratio: z.number().min(0).max(1).default(0).describe('fraction of steps of linear warmup'),
  warmup_steps: nonNegInt.default(0).describe('warmup steps (overrides warmup_ratio when > 0)'),
  weight_decay: z.number().min(0).default(0).describe('decoupled weight decay (not on biases and norm weights)'),
  adam_beta1: z.number().min(0).max(1).default(0.9).describe('AdamW beta1'),
  adam_beta2: z.number().min(0).max(1).default(0.999).describe('AdamW beta2'),
  adam_epsilon: z.number().positive().default(1e-8).describe('AdamW epsilon'),
  max_grad_norm: z.number().min(0).default(1).describe('clip the global gradient norm (0 = off)'),
  num_train_epochs: z.number().positive().default(3).describe('epochs over the training set'),
  max_steps: z.number().int().default(-1).describe('optimizer steps; > 0 overrides num_train_epochs'),
  per_device_train_batch_size: positiveInt.default(8).describe('examples per micro-batch'),
  per_device_eval_batch_size: positiveInt.default(8).describe('examples per evaluation batch'),
  gradient_accumulation_steps: positiveInt.default(1).describe('micro-batches per optimizer step'),
  gradient_checkpointing: z.boolean().default(false).describe('recompute each decoder layer in backward instead of keeping its activations (less memory, slower)'),
  bf16: z.boolean().default(false).describe('mixed precision: matrix products in bf16 with f32 accumulation; weights, optimizer and losses stay f32'),
  seed: nonNegInt.default(42).describe('seed for data order, dropout and new weights (same seed, same run)'),
  logging_steps: positiveInt.default(10).describe('log train metrics every N steps'),
  eval_strategy: z.enum(['no', 'steps', 'epoch']).default('no').describe('when to evaluate'),
  eval_steps: positiveInt.nullable().default(null).describe('evaluate every N steps (eval_strategy steps; default logging_steps)'),
  save_strategy: z.enum(['no', 'steps', 'epoch']).default('steps').describe('when to write output_dir/checkpoint-N'),
  save_steps: positiveInt.default(500).describe('checkpoint every N steps'),
  save_total_limit: positiveInt.nullable().default(null).describe('keep only the newest N checkpoints'),
  resume_from_checkpoint: z.union([z.boolean(), z.string()]).nullable().default(null).describe('true (newest checkpoint in output_dir; an error when there is none) or a checkpoint folder'),
  skip_nonfinite: z.boolean().default(false).describe('skip steps whose loss or gradients are NaN/inf instead of stopping'),
  save_dtype: z.enum(['F32', 'BF16']).default('F32').describe('dtype of the saved model weights'),
  quiet: z.boolean().default(false).describe('plain log lines instead of a progress bar'),
};

/** LoRA through PEFT's adapter format: ModelConfig's names. */
export const PEFT_ARGS = {
  use_peft: z.boolean().default(false).describe('train a LoRA adapter instead of every weight'),
  lora_r: positiveInt.default(16).describe('LoRA rank'),
  lora_alpha: z.number().positive().default(32).describe('LoRA alpha (scale alpha/r)'),
  lora_dropout: z.number().min(0).max(1).default(0.05).describe('dropout on the LoRA input'),
  lora_target_modules: z.union([z.array(z.string()), z.string()]).nullable().default(null).describe("module names, a regex, or 'all-linear' (null: q_proj, v_proj as PEFT)"),
  use_rslora: z.boolean().default(false).describe('rank-stabilized LoRA scale alpha/sqrt(r)'),
  lora_modules_to_save: z.array(z.string()).nullable().default(null).describe('modules trained fully and saved with the adapter (e.g. lm_head)'),
};

type Shape = Record<string, z.ZodType>;
type Shared = typeof MODEL_ARGS & typeof DATA_ARGS & typeof TRAINING_ARGS & typeof PEFT_ARGS;

/** A trainer's schema and its --help sections (title, keys), in the order they print. */
export interface TrainerArgs<S extends z.ZodObject> {
  schema: S;
  sections: [title: string, keys: string[]][];
}

/** Another default for a shared key (DPO's learning_rate 1e-6), keeping its description. */
function redefault(field: z.ZodType, value: unknown): z.ZodType {
  const base = field instanceof z.ZodDefault ? (field.unwrap() as z.ZodType) : field;
  return base.default(value as never).describe(field.description ?? '');
}

/**
 * The full schema of a trainer: model, data, the trainer's own keys, training and PEFT args.
 * `defaults` changes shared defaults (TRL's per-trainer values); `omit` drops shared keys the
 * trainer has no use for.
 * @example const { schema } = trainerArgs('DPO', { beta: z.number().default(0.1) }, { defaults: { learning_rate: 1e-6 } });
 */
export function trainerArgs<O extends Shape>(
  title: string,
  own: O,
  opts: { defaults?: Partial<Record<keyof Shared, unknown>>; omit?: (keyof Shared)[] } = {},
): TrainerArgs<z.ZodObject<Shared & O, z.core.$strict>> {
  const pieces: [string, Shape][] = [['Model', MODEL_ARGS], ['Data', DATA_ARGS], [title, own], ['Training', TRAINING_ARGS], ['LoRA (PEFT)', PEFT_ARGS]];
  const shape: Shape = {};
  const sections: [string, string[]][] = [];
  for (const [name, piece] of pieces) {
    const keys: string[] = [];
    for (const [k, f] of Object.entries(piece)) {
      if (opts.omit?.includes(k as keyof Shared)) continue;
      const d = opts.defaults?.[k as keyof Shared];
      shape[k] = d === undefined ? f : redefault(f, d);
      keys.push(k);
    }
    if (keys.length) sections.push([name, keys]);
  }
  return { schema: z.object(shape).strict() as unknown as z.ZodObject<Shared & O, z.core.$strict>, sections };
}

/** The parsed shared keys, as every trainer's config holds them. */
export type SharedArgs = z.infer<z.ZodObject<Shared>>;
export type ModelArgs = z.infer<z.ZodObject<typeof MODEL_ARGS>>;
export type DataArgs = z.infer<z.ZodObject<typeof DATA_ARGS>>;
export type TrainingArgs = z.infer<z.ZodObject<typeof TRAINING_ARGS>>;
export type PeftArgs = z.infer<z.ZodObject<typeof PEFT_ARGS>>;

/** The loop's configuration from the training args (the one mapping of names). */
export function loopConfig(a: TrainingArgs): TrainingConfig {
  return {
    outputDir: a.output_dir, overwriteOutputDir: a.overwrite_output_dir, learningRate: a.learning_rate, lrSchedulerType: a.lr_scheduler_type as ScheduleName,
    warmupRatio: a.warmup_ratio, warmupSteps: a.warmup_steps, weightDecay: a.weight_decay, adamBeta1: a.adam_beta1, adamBeta2: a.adam_beta2,
    adamEpsilon: a.adam_epsilon, maxGradNorm: a.max_grad_norm, gradientAccumulationSteps: a.gradient_accumulation_steps, numTrainEpochs: a.num_train_epochs,
    maxSteps: a.max_steps, loggingSteps: a.logging_steps, evalStrategy: a.eval_strategy, evalSteps: a.eval_steps ?? a.logging_steps,
    saveStrategy: a.save_strategy, saveSteps: a.save_steps, saveTotalLimit: a.save_total_limit, seed: a.seed, skipNonfinite: a.skip_nonfinite,
    resumeFromCheckpoint: a.resume_from_checkpoint,
  };
}
