// Training checkpoints: `output_dir/checkpoint-N/` holds the weights (written by the
// trainer: a model folder or a PEFT adapter, plus tokenizer files), the optimizer moments
// (optimizer.safetensors) and trainer_state.json (step, data position, RNG, log history).
// A checkpoint is written into a temporary folder and renamed, so a crash mid-save leaves
// the previous checkpoints intact; old ones beyond save_total_limit are removed after.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, type Tensor } from '../tensor/index.js';
import { SafetensorsFile, writeSafetensors } from '../io/index.js';

export interface TrainerState {
  global_step: number;
  epoch: number;
  /** Micro-batches of the current epoch already consumed. */
  micro_batch: number;
  /** Default generator state (dropout), so a resumed run draws the same masks. */
  rng: { seed: string; offset: string };
  /** Every logged entry so far. */
  log_history: Record<string, number>[];
  /** Configuration fingerprint: resuming with different data or batch settings is refused. */
  fingerprint: string;
}

const PREFIX = 'checkpoint-';

/** Checkpoint folders in `dir`, oldest first. */
export function listCheckpoints(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^checkpoint-\d+$/.test(f))
    .sort((a, b) => Number(a.slice(PREFIX.length)) - Number(b.slice(PREFIX.length)))
    .map((f) => join(dir, f));
}

/** Writes checkpoint-<step> atomically; `writeWeights` fills the folder with the model files. */
export function saveCheckpoint(outputDir: string, state: TrainerState, optimizer: Map<string, Tensor>, writeWeights: (dir: string) => void, totalLimit: number | null): string {
  mkdirSync(outputDir, { recursive: true });
  const final = join(outputDir, `${PREFIX}${state.global_step}`);
  const tmp = join(outputDir, `.${PREFIX}${state.global_step}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeWeights(tmp);
  writeSafetensors(join(tmp, 'optimizer.safetensors'), optimizer);
  writeFileSync(join(tmp, 'trainer_state.json'), JSON.stringify(state, null, 1) + '\n');
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  if (totalLimit !== null && totalLimit > 0) {
    const all = listCheckpoints(outputDir);
    for (const old of all.slice(0, Math.max(0, all.length - totalLimit))) rmSync(old, { recursive: true, force: true });
  }
  return final;
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainerState;
  optimizer: SafetensorsFile;
}

/** Opens a checkpoint folder; `ref` true picks the newest in outputDir. */
export function openCheckpoint(outputDir: string, ref: true | string): LoadedCheckpoint {
  const dir = ref === true ? listCheckpoints(outputDir).pop() : ref;
  if (!dir) throw new TemperError(`resume_from_checkpoint: no checkpoint-N folder in ${outputDir}`);
  const statePath = join(dir, 'trainer_state.json');
  if (!existsSync(statePath)) throw new TemperError(`resume_from_checkpoint: ${dir} has no trainer_state.json (not a temper checkpoint)`);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8'));
  } catch (e) {
    throw new TemperError(`${statePath}: not valid JSON (${(e as Error).message})`);
  }
  return { dir, state, optimizer: SafetensorsFile.open(join(dir, 'optimizer.safetensors')) };
}
