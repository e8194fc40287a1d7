// Training checkpoints: `output_dir/checkpoint-N/` holds the weights (written by the
// trainer: a model folder or a PEFT adapter, plus tokenizer files), the optimizer moments
// (optimizer.safetensors) and trainer_state.json (step, batch cursor, RNG, log history, the
// settings a resume must match). A checkpoint is written into a hidden temporary folder and
// renamed; one that is replaced or rotated away is renamed to a hidden name before it is
// deleted. So a crash or a full disk mid-save leaves every `checkpoint-N` complete, and the
// next run clears the hidden leftovers. Not the model weight files themselves (src/io).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { TemperError, type Tensor } from '../tensor/index.js';
import { SafetensorsFile, ensureWritableDir, fsError, writeSafetensors } from '../io/index.js';
import type { JsonValue } from './batch_source.js';

export interface TrainerState {
  global_step: number;
  /** The batch source's cursor (EpochBatches: {epoch, micro_batch}). */
  data: JsonValue;
  /** Default generator state (dropout), so a resumed run draws the same masks. */
  rng: { seed: string; offset: string };
  /** Every logged entry so far. */
  log_history: Record<string, number>[];
  /** Data and batching settings: resuming with a different value is refused, naming the key. */
  settings: Record<string, JsonValue>;
}

const PREFIX = 'checkpoint-';
/** Hidden leftovers of interrupted saves and deletions: `.checkpoint-N.tmp-PID`, `.checkpoint-N.old-PID`. */
const LEFTOVER = /^\.checkpoint-\d+\.(tmp|old)-\d+$/;

/** Checkpoint folders in `dir`, oldest first. */
export function listCheckpoints(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^checkpoint-\d+$/.test(f))
    .sort((a, b) => Number(a.slice(PREFIX.length)) - Number(b.slice(PREFIX.length)))
    .map((f) => join(dir, f));
}

/** Deletes a folder by renaming it to a hidden name first, so no half-deleted folder keeps a valid name. */
function removeFolder(dir: string): void {
  const gone = join(dir, '..', `.${basename(dir)}.old-${process.pid}`);
  rmSync(gone, { recursive: true, force: true });
  renameSync(dir, gone);
  rmSync(gone, { recursive: true, force: true });
}

/**
 * Gets `outputDir` ready for a run, before the model loads: writable (or an error naming why),
 * hidden leftovers of interrupted saves cleared, and no mixing of runs. A new run into a folder
 * that holds checkpoint-N folders is refused unless `overwrite` (which deletes them and the old
 * metrics); `resume` true needs a checkpoint there.
 */
export function prepareOutputDir(outputDir: string, opts: { resume: boolean | string | null; overwrite: boolean }): void {
  ensureWritableDir(outputDir, 'output_dir');
  for (const f of readdirSync(outputDir)) if (LEFTOVER.test(f)) rmSync(join(outputDir, f), { recursive: true, force: true });
  const existing = listCheckpoints(outputDir);
  if (opts.resume === true && existing.length === 0)
    throw new TemperError(`resume_from_checkpoint: no checkpoint-N folder in output_dir ${outputDir} to resume from`);
  if (typeof opts.resume === 'string') {
    if (!existsSync(opts.resume)) throw new TemperError(`resume_from_checkpoint: ${opts.resume} does not exist`);
    if (!existsSync(join(opts.resume, 'trainer_state.json'))) throw new TemperError(`resume_from_checkpoint: ${opts.resume} has no trainer_state.json (not a temper checkpoint)`);
  }
  if (opts.resume || existing.length === 0) return;
  if (!opts.overwrite)
    throw new TemperError(
      `output_dir ${outputDir} already holds another run's checkpoints (${existing.map((d) => basename(d)).join(', ')}); ` +
        `pass --resume_from_checkpoint true to continue it, --overwrite_output_dir true to replace it, or choose another output_dir`,
    );
  for (const d of existing) removeFolder(d);
  rmSync(join(outputDir, 'metrics.jsonl'), { force: true });
}

/**
 * Writes checkpoint-<step> atomically; `writeWeights` fills the folder with the model files.
 * A failure (full disk, …) removes the partial folder and names the newest checkpoint kept.
 */
export function saveCheckpoint(outputDir: string, state: TrainerState, optimizer: Map<string, Tensor>, writeWeights: (dir: string) => void, totalLimit: number | null): string {
  const final = join(outputDir, `${PREFIX}${state.global_step}`);
  const tmp = join(outputDir, `.${PREFIX}${state.global_step}.tmp-${process.pid}`);
  try {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    writeWeights(tmp);
    writeSafetensors(join(tmp, 'optimizer.safetensors'), optimizer);
    writeFileSync(join(tmp, 'trainer_state.json'), JSON.stringify(state, null, 1) + '\n');
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    const kept = listCheckpoints(outputDir).pop();
    throw fsError(`saving ${final} (nothing of it was kept; ${kept ? `the newest complete checkpoint is ${kept}` : 'no earlier checkpoint exists'})`, e);
  }
  if (existsSync(final)) removeFolder(final);
  renameSync(tmp, final);
  if (totalLimit !== null && totalLimit > 0) {
    const all = listCheckpoints(outputDir);
    for (const old of all.slice(0, Math.max(0, all.length - totalLimit))) removeFolder(old);
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
  if (!dir) throw new TemperError(`resume_from_checkpoint: no checkpoint-N folder in output_dir ${outputDir} to resume from`);
  if (!existsSync(dir)) throw new TemperError(`resume_from_checkpoint: ${dir} does not exist`);
  const statePath = join(dir, 'trainer_state.json');
  if (!existsSync(statePath)) throw new TemperError(`resume_from_checkpoint: ${dir} has no trainer_state.json (not a temper checkpoint)`);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8'));
  } catch (e) {
    throw new TemperError(`${statePath}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof state.global_step !== 'number' || state.settings === undefined || state.data === undefined)
    throw new TemperError(`${statePath}: written by an older temper (no settings or data cursor); it cannot be resumed`);
  return { dir, state, optimizer: SafetensorsFile.open(join(dir, 'optimizer.safetensors')) };
}

/** The first setting whose value differs, as "key: then → now", or null when they all match. */
export function changedSetting(saved: Record<string, JsonValue>, now: Record<string, JsonValue>): string | null {
  for (const key of new Set([...Object.keys(saved), ...Object.keys(now)])) {
    const a = JSON.stringify(saved[key] ?? null), b = JSON.stringify(now[key] ?? null);
    if (a !== b) return `${key} was ${a}, now ${b}`;
  }
  return null;
}
