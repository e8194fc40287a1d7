// SFTConfig: every key `temper sft` accepts, with TRL's names (SFTConfig, TrainingArguments,
// ModelConfig's LoRA fields) and defaults, validated by zod before any work starts. The shared
// model, data, training and PEFT keys come from src/train/args.ts; this file adds SFT's own.
// Each field's description is the `temper sft --help` text.
import { z } from 'zod';
import { trainerArgs } from '../train/index.js';

export const SFT_ARGS = trainerArgs('SFT', {
  dataset_text_field: z.string().default('text').describe('column of plain-text rows'),
  dataset_format: z.enum(['auto', 'conversational', 'prompt_completion', 'text']).default('auto').describe('row format; auto-detected from the columns'),
  max_length: z.number().int().positive().nullable().default(1024).describe('truncate examples (keep the start) to this many tokens'),
  packing: z.boolean().default(false).describe('pack examples into max_length rows (best-fit decreasing), attention kept per document'),
  padding_free: z.boolean().default(false).describe('concatenate each batch into one row without padding (implied by packing)'),
  completion_only_loss: z.boolean().nullable().default(null).describe('loss on completions only for prompt/completion data (null: true)'),
  assistant_only_loss: z.boolean().default(false).describe('loss on assistant turns only for conversational data'),
});

export const SFT_SCHEMA = SFT_ARGS.schema;
export type SFTConfig = z.infer<typeof SFT_SCHEMA>;
