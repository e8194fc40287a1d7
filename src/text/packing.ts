// Batches of SFT examples as plain typed arrays: best-fit-decreasing packing (TRL's "bfd"),
// packed / padding-free rows with document ids, and right-padded rows. Not tensors and not a
// data loader: the trainer turns these arrays into (B, T) i32 tensors and picks the order.
import { TemperError } from '../tensor/index.js';
import type { TokenizedExample } from './sft_data.js';

/**
 * Groups sequences into bins of at most `capacity` tokens, TRL's "bfd" packing: sequences in
 * decreasing length (ties in input order), each into the open bin whose remaining space is the
 * smallest that still fits it (among equal spaces, the bin that reached that space first), or
 * a new bin. Returns the indices of each bin in placement order, bins in creation order.
 * Sequences longer than `capacity` must be truncated by the caller first (tokenizeExample's
 * maxLength does it): they throw here.
 *
 * O(N log C) with a max segment tree over remaining space (C = capacity).
 *
 * @example
 * packBestFitDecreasing([5, 4, 3, 3, 2, 1], 8);   // [[0, 2], [1, 3, 5], [4]]
 */
export function packBestFitDecreasing(lengths: readonly number[], capacity: number): number[][] {
  if (!Number.isInteger(capacity) || capacity <= 0) throw new TemperError(`packing: capacity must be a positive integer, got ${capacity}`);
  lengths.forEach((n, i) => {
    if (!Number.isInteger(n) || n <= 0) throw new TemperError(`packing: sequence ${i} has length ${n}; lengths must be positive integers`);
    if (n > capacity) throw new TemperError(`packing: sequence ${i} has ${n} tokens, more than the capacity ${capacity}; truncate it first`);
  });
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);

  // tree[size + s] = s when some open bin has exactly s tokens of room (s = capacity always:
  // "open a new bin"); inner nodes hold the max of their children.
  let size = 1;
  while (size < capacity + 1) size *= 2;
  const tree = new Int32Array(2 * size);
  const set = (s: number, on: boolean) => {
    let i = size + s;
    tree[i] = on ? s : 0;
    for (i >>= 1; i >= 1; i >>= 1) tree[i] = Math.max(tree[2 * i]!, tree[2 * i + 1]!);
  };
  /** Smallest s >= need with tree leaf on (the leftmost leaf whose value >= need). */
  const search = (need: number) => {
    let i = 1;
    while (i < size) i = tree[2 * i]! >= need ? 2 * i : 2 * i + 1;
    return i - size;
  };
  set(capacity, true);
  const queues = new Map<number, { bins: number[]; head: number }>(); // room -> FIFO of bin ids
  const bins: number[][] = [];
  for (const idx of order) {
    const n = lengths[idx]!;
    const room = search(n);
    let bin: number;
    if (room < capacity) {
      const q = queues.get(room)!;
      bin = q.bins[q.head++]!;
      if (q.head === q.bins.length) {
        queues.delete(room);
        set(room, false);
      }
    } else {
      bin = bins.length;
      bins.push([]);
    }
    bins[bin]!.push(idx);
    const left = room - n;
    if (left > 0) {
      const q = queues.get(left);
      if (q) q.bins.push(bin);
      else {
        queues.set(left, { bins: [bin], head: 0 });
        set(left, true);
      }
    }
  }
  return bins;
}

/** Rows that hold several documents: attention stays inside a document (docIds), positions restart. */
export interface PackedBatch {
  /** (rows, length) token ids; padding at a row's end is padId. */
  inputIds: Int32Array;
  /** (rows, length) unshifted targets (the model shifts): the token where it counts for the loss, else -100. */
  labels: Int32Array;
  /** (rows, length) document index within the row (0, 1, …); -1 for padding. */
  docIds: Int32Array;
  /** (rows, length) position within the document (0 at each document's first token, padding too). */
  positionIds: Int32Array;
  rows: number;
  length: number;
}

/** One document per row, right-padded to the longest. */
export interface PaddedBatch {
  inputIds: Int32Array;
  labels: Int32Array;
  /** (rows, length) 1 for tokens, 0 for padding. */
  attentionMask: Int32Array;
  rows: number;
  length: number;
}

/**
 * Label of token t of a document: the token if lossMask says so, else -100; and -100 at the
 * document's first token always. That first rule is what keeps packed rows honest: the model
 * scores logits at t against label t+1 within a row, so the last token of document k would
 * otherwise be trained to predict the first token of document k+1.
 */
function writeDocument(ex: TokenizedExample, at: number, doc: number, b: { inputIds: Int32Array; labels: Int32Array; docIds?: Int32Array; positionIds?: Int32Array }) {
  const n = ex.inputIds.length;
  if (ex.lossMask.length !== n) throw new TemperError(`batch: an example has ${n} tokens but ${ex.lossMask.length} loss-mask entries`);
  for (let t = 0; t < n; t++) {
    const id = ex.inputIds[t]!;
    b.inputIds[at + t] = id;
    b.labels[at + t] = t > 0 && ex.lossMask[t] ? id : -100;
    if (b.docIds) b.docIds[at + t] = doc;
    if (b.positionIds) b.positionIds[at + t] = t;
  }
}

/**
 * Packed rows of width `capacity`, one per bin (from packBestFitDecreasing), documents in bin
 * order; the tail of a row is padding (padId, label -100, docId -1, position 0).
 *
 * @example
 * const bins = packBestFitDecreasing(examples.map((e) => e.inputIds.length), 1024);
 * const batch = assemblePacked(examples, bins.slice(0, 8), 1024, tok.padTokenId ?? 0);
 */
export function assemblePacked(examples: readonly TokenizedExample[], bins: readonly (readonly number[])[], capacity: number, padId = 0): PackedBatch {
  const rows = bins.length;
  const b: PackedBatch = {
    inputIds: new Int32Array(rows * capacity).fill(padId),
    labels: new Int32Array(rows * capacity).fill(-100),
    docIds: new Int32Array(rows * capacity).fill(-1),
    positionIds: new Int32Array(rows * capacity),
    rows,
    length: capacity,
  };
  bins.forEach((bin, r) => {
    let at = r * capacity;
    bin.forEach((idx, doc) => {
      const ex = examples[idx];
      if (!ex) throw new TemperError(`batch: bin ${r} names example ${idx}, but there are ${examples.length}`);
      if (at + ex.inputIds.length > (r + 1) * capacity) throw new TemperError(`batch: bin ${r} holds more than ${capacity} tokens`);
      writeDocument(ex, at, doc, b);
      at += ex.inputIds.length;
    });
  });
  return b;
}

/**
 * The examples concatenated into ONE row with document ids and restarting positions, no
 * padding (TRL's padding_free without packing).
 */
export function assemblePaddingFree(examples: readonly TokenizedExample[]): PackedBatch {
  const total = examples.reduce((n, e) => n + e.inputIds.length, 0);
  if (total === 0) throw new TemperError('batch: no tokens');
  return assemblePacked(examples, [examples.map((_, i) => i)], total);
}

/**
 * One example per row, right-padded with padId to the longest (labels -100 and attentionMask 0
 * on padding).
 */
export function assemblePadded(examples: readonly TokenizedExample[], padId: number): PaddedBatch {
  const rows = examples.length;
  const length = examples.reduce((m, e) => Math.max(m, e.inputIds.length), 0);
  if (rows === 0 || length === 0) throw new TemperError('batch: no tokens');
  const b: PaddedBatch = {
    inputIds: new Int32Array(rows * length).fill(padId),
    labels: new Int32Array(rows * length).fill(-100),
    attentionMask: new Int32Array(rows * length),
    rows,
    length,
  };
  examples.forEach((ex, r) => {
    writeDocument(ex, r * length, 0, b);
    b.attentionMask.fill(1, r * length, r * length + ex.inputIds.length);
  });
  return b;
}
