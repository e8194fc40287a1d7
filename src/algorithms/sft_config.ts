// SFTConfig: every key `temper sft` accepts, with TRL's names (SFTConfig, TrainingArguments,
// ModelConfig's LoRA fields) and defaults, validated by zod before any work starts. Each
// field's description is the `temper sft --help` text.
import { z } from 'zod';

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export const SFT_SCHEMA = z
  .object({
    model: z.string().min(1).describe('model folder, hub id (org/name), builtin:NAME, or a PEFT adapter folder to continue (required)'),
    model_revision: z.string().default('main').describe('hub revision of the model'),
    dataset: z.string().min(1).describe('data file (jsonl/json/csv/parquet), folder, hub dataset id or builtin:NAME (required)'),
    dataset_train_split: z.string().default('train').describe('split of `dataset` to train on'),
    dataset_test_split: z.string().default('test').describe('split of `dataset` to evaluate on, when it has one'),
    eval_dataset: z.string().nullable().default(null).describe('a separate evaluation set (same forms as dataset)'),
    eval_ratio: z.number().min(0).max(0.5).default(0).describe('hold out this fraction of the training rows for evaluation'),
    dataset_text_field: z.string().default('text').describe('column of plain-text rows'),
    dataset_format: z.enum(['auto', 'conversational', 'prompt_completion', 'text']).default('auto').describe('row format; auto-detected from the columns'),
    output_dir: z.string().default('trainer_output').describe('where checkpoints, the final model, metrics.jsonl and report.html go'),

    max_length: positiveInt.nullable().default(1024).describe('truncate examples (keep the start) to this many tokens'),
    packing: z.boolean().default(false).describe('pack examples into max_length rows (best-fit decreasing), attention kept per document'),
    padding_free: z.boolean().default(false).describe('concatenate each batch into one row without padding (implied by packing)'),
    completion_only_loss: z.boolean().nullable().default(null).describe('loss on completions only for prompt/completion data (null: true)'),
    assistant_only_loss: z.boolean().default(false).describe('loss on assistant turns only for conversational data'),
    skip_invalid_rows: z.boolean().default(false).describe('skip malformed rows (and report how many) instead of stopping'),

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
    seed: nonNegInt.default(42).describe('seed for data order, dropout and new weights (same seed, same run)'),
    device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'cpu, cuda or cuda:N').default('cpu').describe('where the model trains: cpu, cuda or cuda:N'),
    bf16: z.boolean().default(false).describe('mixed precision: matrix products in bf16 with f32 accumulation; weights, optimizer and losses stay f32'),

    logging_steps: positiveInt.default(10).describe('log train metrics every N steps'),
    eval_strategy: z.enum(['no', 'steps', 'epoch']).default('no').describe('when to evaluate'),
    eval_steps: positiveInt.nullable().default(null).describe('evaluate every N steps (eval_strategy steps; default logging_steps)'),
    save_strategy: z.enum(['no', 'steps', 'epoch']).default('steps').describe('when to write output_dir/checkpoint-N'),
    save_steps: positiveInt.default(500).describe('checkpoint every N steps'),
    save_total_limit: positiveInt.nullable().default(null).describe('keep only the newest N checkpoints'),
    resume_from_checkpoint: z.union([z.boolean(), z.string()]).nullable().default(null).describe('true (newest in output_dir) or a checkpoint folder'),
    skip_nonfinite: z.boolean().default(false).describe('skip steps whose loss or gradients are NaN/inf instead of stopping'),
    save_dtype: z.enum(['F32', 'BF16']).default('F32').describe('dtype of the saved model weights'),

    use_peft: z.boolean().default(false).describe('train a LoRA adapter instead of every weight'),
    lora_r: positiveInt.default(16).describe('LoRA rank'),
    lora_alpha: z.number().positive().default(32).describe('LoRA alpha (scale alpha/r)'),
    lora_dropout: z.number().min(0).max(1).default(0.05).describe('dropout on the LoRA input'),
    lora_target_modules: z.union([z.array(z.string()), z.string()]).nullable().default(null).describe("module names, a regex, or 'all-linear' (null: q_proj, v_proj as PEFT)"),
    use_rslora: z.boolean().default(false).describe('rank-stabilized LoRA scale alpha/sqrt(r)'),
    lora_modules_to_save: z.array(z.string()).nullable().default(null).describe('modules trained fully and saved with the adapter (e.g. lm_head)'),

    quiet: z.boolean().default(false).describe('plain log lines instead of a progress bar'),
  })
  .strict();

export type SFTConfig = z.infer<typeof SFT_SCHEMA>;
