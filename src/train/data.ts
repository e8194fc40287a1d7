// Training data as every trainer reads it: the train rows and an evaluation set (a separate
// eval_dataset, else the dataset's own test split when evaluation is on, else an eval_ratio
// hold-out), the seeded epoch order and micro-batching. Not row formats or tokenization
// (src/text) and not the cursor over the batches (batch_source.ts).
import { existsSync, statSync } from 'node:fs';
import { TemperError } from '../tensor/index.js';
import { loadDataset, type DatasetRows } from '../io/index.js';
import type { DataArgs } from './args.js';

/** A seeded permutation of 0..n-1 (xorshift32 + Fisher-Yates): one epoch's order. */
export function permutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  let s = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const j = s % (i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

export interface TrainEvalRows {
  train: DatasetRows;
  /** The evaluation rows, or null when the eval_ratio hold-out (or nothing) provides them. */
  eval: DatasetRows | null;
}

/**
 * Loads the train split and, when wanted, the evaluation rows: `eval_dataset`, else (with
 * `evaluate` and no eval_ratio) the test split of a folder, hub or built-in dataset when it
 * has one. A single data file has no splits, so it gives no evaluation rows by itself.
 */
export async function loadTrainEvalRows(a: DataArgs, opts: { evaluate: boolean }): Promise<TrainEvalRows> {
  const load = (ref: string, split: string) => loadDataset(ref, { split, skipInvalidLines: a.skip_invalid_rows });
  const train = await load(a.dataset, a.dataset_train_split);
  if (a.eval_dataset) return { train, eval: await load(a.eval_dataset, a.dataset_test_split) };
  if (!opts.evaluate || a.eval_ratio > 0 || (existsSync(a.dataset) && statSync(a.dataset).isFile())) return { train, eval: null };
  try {
    return { train, eval: await load(a.dataset, a.dataset_test_split) };
  } catch (e) {
    if (!(e instanceof TemperError)) throw e;
    return { train, eval: null };
  }
}

/**
 * Splits `items` into train and a held-out evaluation part of round(ratio * n) items (at
 * least 1), chosen by a seeded permutation; both keep their original order.
 */
export function holdOut<T>(items: readonly T[], ratio: number, seed: number): { train: T[]; eval: T[] } {
  const order = permutation(items.length, seed + 7919);
  const held = new Set(order.slice(0, Math.max(1, Math.round(ratio * items.length))));
  return { train: items.filter((_, i) => !held.has(i)), eval: items.filter((_, i) => held.has(i)) };
}

/**
 * The micro-batches of one epoch: `units` in the seeded order of (seed, epoch), `batchSize`
 * per micro-batch (the last may be short). `epoch` null keeps the given order (evaluation).
 */
export function epochBatches<U>(units: readonly U[], batchSize: number, seed: number, epoch: number | null): U[][] {
  const order = epoch === null ? units.map((_, i) => i) : permutation(units.length, seed * 1000 + epoch);
  const out: U[][] = [];
  for (let i = 0; i < order.length; i += batchSize) out.push(order.slice(i, i + batchSize).map((u) => units[u]!));
  return out;
}
