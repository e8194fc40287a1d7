// Public surface of the trainers: each is a config schema (TRL's names) and a run function.
export { SFT_ARGS, SFT_SCHEMA, type SFTConfig } from './sft_config.js';
export { runSft, type SftCallbacks, type SftResult, type SftOptions } from './sft.js';
export { sftLossSum, type SftBatch } from './sft_loss.js';
