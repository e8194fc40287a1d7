// `temper sft`: supervised fine-tuning through the shared trainer command. Only words here.
import { SFT_ARGS } from '../algorithms/sft_config.js';
import { runSft } from '../algorithms/sft.js';
import { trainerCommand, trainerHelp, type TrainerCommandSpec } from './trainer_command.js';

const SPEC: TrainerCommandSpec<typeof SFT_ARGS.schema> = {
  name: 'sft',
  summary: `Supervised fine-tuning (full or LoRA) of a causal LM on conversations, prompt/completion
pairs or plain text, with TRL's SFTConfig names. Outputs in output_dir: the model (or PEFT
adapter) with tokenizer files, checkpoint-N/, metrics.jsonl and report.html. A new run into an
output_dir that holds checkpoints is refused (resume it, or pass --overwrite_output_dir true).`,
  args: SFT_ARGS,
  example: '  temper sft --model builtin:tiny --dataset builtin:arith-chat --use_peft true --output_dir out/sft',
  summaryKeys: ['mean_token_accuracy'],
  run: (cfg, ui) => runSft(cfg, ui),
};

export const SFT_HELP = trainerHelp(SPEC);
export const sftCommand = trainerCommand(SPEC);
