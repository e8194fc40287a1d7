// Where the loop's micro-batches come from, with a cursor a checkpoint can hold. An offline
// trainer (SFT, DPO) walks seeded epochs of a fixed set (EpochBatches); an on-policy trainer
// (GRPO) produces its batches as it goes, and its state then includes the RNG streams and any
// generated batch not yet consumed, so a resumed run continues exactly.
import { TemperError } from '../tensor/index.js';

/** A JSON value: what a batch source's state must be, so trainer_state.json can hold it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export interface BatchSource<B> {
  /** Micro-batches in one epoch (fixes the length of epoch-based runs); null for a source without epochs, which needs max_steps. */
  readonly microBatchesPerEpoch: number | null;
  /** The micro-batches of the next optimizer step: up to `count`, never across the end of an epoch. May produce them (generation). */
  nextStep(count: number): B[] | Promise<B[]>;
  /** Epochs done, fractional (for logs). */
  readonly epoch: number;
  /** True when the last nextStep finished an epoch (eval_strategy / save_strategy 'epoch'). */
  readonly epochEnded: boolean;
  /** The cursor (and anything pending) as JSON, for a checkpoint. */
  state(): JsonValue;
  /** Puts the cursor back where state() was taken. */
  restore(state: JsonValue): void;
}

/**
 * Seeded epochs over a fixed set: `batchesOf(epoch)` gives one epoch's micro-batches in order
 * (deterministic for the epoch). A step takes up to `count` of them; an epoch's last step may
 * take fewer, as transformers' Trainer does.
 */
export class EpochBatches<B> implements BatchSource<B> {
  readonly microBatchesPerEpoch: number;
  private epochIndex = 0;
  private position = 0;
  private batches: B[];

  constructor(private readonly batchesOf: (epoch: number) => B[]) {
    this.batches = batchesOf(0);
    this.microBatchesPerEpoch = this.batches.length;
    if (this.microBatchesPerEpoch === 0) throw new TemperError('the training set produced no batches (is it empty after filtering?)');
  }

  nextStep(count: number): B[] {
    if (this.position >= this.batches.length) {
      this.epochIndex++;
      this.position = 0;
      this.batches = this.batchesOf(this.epochIndex);
    }
    const group = this.batches.slice(this.position, this.position + count);
    this.position += group.length;
    return group;
  }

  get epoch(): number {
    return this.epochIndex + this.position / this.batches.length;
  }

  get epochEnded(): boolean {
    return this.position >= this.batches.length;
  }

  state(): JsonValue {
    return { epoch: this.epochIndex, micro_batch: this.position };
  }

  restore(s: JsonValue): void {
    const o = s as { epoch?: unknown; micro_batch?: unknown } | null;
    if (!o || !Number.isInteger(o.epoch) || !Number.isInteger(o.micro_batch)) throw new TemperError(`batch cursor ${JSON.stringify(s)} is not {epoch, micro_batch}`);
    this.epochIndex = o.epoch as number;
    this.position = o.micro_batch as number;
    this.batches = this.batchesOf(this.epochIndex);
  }
}
