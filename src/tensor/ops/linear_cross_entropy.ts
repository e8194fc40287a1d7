// The LM head fused with cross-entropy over row chunks (Liger's FusedLinearCrossEntropy,
// llm.c's fused classifier): loss = CE(hidden @ weight^T, labels) without the (N, V) logits
// ever existing. Each chunk of rows gets its logits from the matmul kernel into one reused
// buffer and is reduced at once by the cross-entropy kernel to a per-row loss and lse.
//
// The gradient comes one of two ways:
//  - a mean or sum loss (the training loss): the forward computes each chunk's dlogits right
//    after its loss and folds them into d(hidden) and d(weight) at once (Liger's scheme), so
//    the backward only scales them by the upstream scalar. Same GEMMs as the unfused head; the
//    op holds an (N, C) d(hidden) and a (V, C) d(weight) from its forward (the last op of the
//    model's) to the backward that follows;
//  - per-row losses (reduction 'none', tokenLogprobs in DPO/GRPO), whose upstream gradient
//    the forward cannot know: the backward recomputes the chunk logits (one more chunk GEMM,
//    ~1/3 more head FLOPs) and between the passes the op holds only lse and its inputs.
//
// Rows whose label is ignoreIndex (prompt tokens in SFT) are dropped before any GEMM: the op
// works on the compacted rows and scatters back (loss 0, no gradient, argmax -1).
// Under autocast('bf16') the head runs as matmul does there: bf16-rounded hidden rows and weight
// (saved in bf16), f32 logits and loss, the dlogits rounded to bf16 for the two gradient GEMMs.
import { record, type GradNode } from '../autograd.js';
import { DTYPE_CODE, DTYPE_SIZE } from '../dtype.js';
import { TemperError, fmtShape } from '../errors.js';
import type { Device, Kernels } from '../backend.js';
import { Tensor } from '../tensor.js';
import { autocastDtype, isGradEnabled } from '../scope.js';
import { FLOATS, check, empty, kern, sameDType, sameDevice } from './util.js';
import { fromArray, full, toDType, zeros } from './creation.js';
import { div, mul, sub } from './elementwise.js';
import { reshape, slice } from './shape.js';
import { sum } from './reduce.js';
import type { CrossEntropyOptions } from './fused.js';

/**
 * Bytes of f32 logits one chunk may take (the backward holds two such buffers: logits and
 * dlogits). On the CPU a chunk that stays in cache matters; on a GPU each chunk costs a GEMM
 * that wants many rows for its tensor cores and a host sync (the label check), so chunks are
 * larger there: ~1.6k rows at a 152k vocabulary instead of ~55.
 */
const CHUNK_BYTES = { cpu: 32 * 1024 * 1024, gpu: 1024 * 1024 * 1024 };
const ARGMAX = 5; // reduce op code (./reduce.ts)

/** Rows per chunk when none is given, for logits on `device`; at least one row. */
export function defaultChunkRows(vocab: number, device: Device = 'cpu'): number {
  const bytes = device === 'cpu' ? CHUNK_BYTES.cpu : CHUNK_BYTES.gpu;
  return Math.max(1, Math.floor(bytes / (4 * Math.max(1, vocab))));
}

export interface LinearCrossEntropyOptions extends CrossEntropyOptions {
  /** Rows of hidden per chunk (the chunk's logits are chunkRows x V). Default: ~32 MiB of logits on CPU, ~1 GiB on a GPU. */
  chunkRows?: number;
  /** Also return the per-row argmax of the logits (i32, labels' shape; -1 on ignored rows). */
  returnArgmax?: boolean;
}

/** Gathers `idx` rows of a contiguous (X, inner) tensor into a new (I, inner) one (no autograd). */
function selectRows(src: Tensor, idx: Tensor, X: number, inner: number): Tensor {
  const I = idx.numel;
  const out = empty(inner === 1 && src.ndim <= 1 ? [I] : [I, inner], src.dtype, src);
  const code = kern(src).indexSelect(src.handle, src.byteOffset, idx.handle, idx.byteOffset, out.handle, 0, 1, X, I, inner, DTYPE_SIZE[src.dtype]);
  if (code < 0) {
    out.dispose();
    throw new TemperError(`internal: linearCrossEntropy row index out of range (${code})`);
  }
  return out;
}

interface RowsResult {
  /** Per-row loss (N) f32, recorded for autograd; 0 on ignored rows. */
  rows: Tensor;
  /** Non-ignored row count. */
  count: number;
  /** Host argmax (N), -1 on ignored rows, when asked. */
  argmax: Int32Array | null;
}

function lossRows(op: string, hidden: Tensor, weight: Tensor, labels: Tensor, ignoreIndex: number, eps: number, chunkRows: number | undefined,
  wantArgmax: boolean, scalarLoss: boolean): RowsResult {
  check(op, hidden, 'hidden', FLOATS);
  check(op, weight, 'weight', FLOATS);
  check(op, labels, 'labels', ['i32']);
  sameDevice(op, hidden, weight, labels);
  sameDType(op, hidden, weight);
  if (weight.ndim !== 2) throw new TemperError(`${op}: weight must be 2-d (V, C), got ${fmtShape(weight.shape)}`);
  const [V, C] = weight.shape as [number, number];
  if (hidden.ndim < 1 || hidden.shape[hidden.ndim - 1] !== C)
    throw new TemperError(`${op}: hidden ${fmtShape(hidden.shape)} must end in C = ${C} (weight ${fmtShape(weight.shape)})`);
  if (labels.shape.join() !== hidden.shape.slice(0, -1).join())
    throw new TemperError(`${op}: labels ${fmtShape(labels.shape)} must match hidden ${fmtShape(hidden.shape)} without the channel dim`);
  if (!(eps >= 0 && eps <= 1)) throw new TemperError(`${op}: labelSmoothing must be in [0, 1], got ${eps}`);
  if (chunkRows !== undefined && !(Number.isInteger(chunkRows) && chunkRows > 0))
    throw new TemperError(`${op}: chunkRows must be a positive integer, got ${chunkRows}`);
  const N = labels.numel;
  const ys = labels.toArray() as Int32Array;
  const keptRows: number[] = [];
  for (let n = 0; n < N; n++) {
    const y = ys[n]!;
    if (y === ignoreIndex) continue;
    if (y < 0 || y >= V) throw new TemperError(`${op}: label ${y} at row ${n} is outside the vocabulary [0, ${V}) and is not ignoreIndex (${ignoreIndex})`);
    keptRows.push(n);
  }
  const R = keptRows.length;
  const compact = R < N;
  const own: Tensor[] = [];
  const mine = (t: Tensor) => (own.push(t), t);
  try {
    // The rows that carry loss, contiguous: hc (R, C), lc (R).
    const idx = compact ? mine(fromArray(Int32Array.from(keptRows), [R], { device: hidden.device })) : null;
    let hc = idx ? mine(selectRows(hidden, idx, N, C)) : hidden;
    const lc = idx ? mine(fromArray(Int32Array.from(keptRows, (n) => ys[n]!), [R], { device: labels.device })) : labels;
    // Autocast: GEMM operands rounded to bf16, logits in f32.
    const mixed = hidden.dtype === 'f32' && autocastDtype() === 'bf16';
    const wm = mixed ? mine(toDType(weight, 'bf16')) : weight;
    if (mixed) hc = mine(toDType(hc, 'bf16'));
    const logitsDType = mixed ? 'f32' : hidden.dtype;
    const rowsC = mine(empty([R], 'f32', hidden));
    const lse = mine(empty([R], 'f32', hidden));
    const argC = wantArgmax ? mine(empty([R], 'i32', hidden)) : null;
    const cr = Math.min(chunkRows ?? defaultChunkRows(V, hidden.device), Math.max(R, 1));
    const k = kern(hidden);
    const inCode = DTYPE_CODE[hc.dtype], outCode = DTYPE_CODE[logitsDType], es = DTYPE_SIZE[hc.dtype];
    // Gradients in the forward: a scalar loss whose inputs take gradients (f32 logits, not bf16 inference).
    const grads = scalarLoss && logitsDType === 'f32' && isGradEnabled() && (hidden.requiresGrad || weight.requiresGrad);
    const dhc = grads && hidden.requiresGrad ? mine(empty([R, C], 'f32', hidden)) : null;
    const dw = grads && weight.requiresGrad ? mine(R > 0 ? empty([V, C], 'f32', weight) : zeros([V, C], { device: weight.device })) : null;
    if (R > 0) {
      const buf = mine(empty([cr, V], logitsDType, hidden));
      const dbuf = grads ? mine(empty([cr, V], 'f32', hidden)) : null;
      const ones = grads ? mine(full([cr], 1, { device: hidden.device })) : null;
      for (let r0 = 0; r0 < R; r0 += cr) {
        const m = Math.min(cr, R - r0);
        const hOff = hc.byteOffset + r0 * C * es;
        k.matmul(hc.handle, hOff, wm.handle, wm.byteOffset, buf.handle, 0, 1, m, V, C, 0, 1, 0, 0, 1, 0, inCode, outCode);
        const rc = k.crossEntropy(buf.handle, 0, lc.handle, lc.byteOffset + r0 * 4, rowsC.handle, r0 * 4, lse.handle, r0 * 4, m, V, ignoreIndex, eps, outCode);
        if (rc < 0) throw new TemperError(`internal: ${op}: the kernel rejected the label of row ${keptRows[r0 - rc - 1]}`);
        if (argC) k.reduce(ARGMAX, buf.handle, 0, argC.handle, r0 * 4, m, V, 1, 0, outCode);
        if (dbuf) chunkGrads(k, buf, dbuf, ones!, ones!.byteOffset, hc, hOff, wm, lc, lse, r0, m, V, C, ignoreIndex, eps, mixed, dhc, dw);
      }
    }
    let rows: Tensor;
    if (idx) {
      rows = zeros([N], { device: hidden.device });
      if (R > 0) k.scatterAdd(rows.handle, rows.byteOffset, idx.handle, idx.byteOffset, rowsC.handle, 0, 1, N, R, 1, 1);
    } else rows = rowsC.detach();
    let argmax: Int32Array | null = null;
    if (argC) {
      const a = argC.toArray() as Int32Array;
      argmax = compact ? new Int32Array(N).fill(-1) : a;
      if (compact) keptRows.forEach((n, i) => (argmax![n] = a[i]!));
    }
    // Precomputed: the backward needs d(hidden) rows and d(weight) only; else what it recomputes from.
    const saved = grads ? [dhc ?? rowsC, dw ?? rowsC] : [hc, wm, lc, lse];
    if (idx) saved.push(idx);
    record('linear_cross_entropy', [hidden, weight], rows, saved, { ignoreIndex, eps, chunkRows: cr, compact, mixed, precomputed: grads });
    return { rows, count: R, argmax };
  } finally {
    for (const t of own) t.dispose();
  }
}

/**
 * Cross-entropy of the linear head `hidden @ weight^T` against i32 labels, computed in chunks
 * of rows so the (N, V) logits never exist (forward and backward). hidden (..., C), weight
 * (V, C), labels (...). Same options and results as crossEntropy(linear(hidden, weight), labels),
 * plus `chunkRows`, and `returnArgmax` for the per-row argmax of the logits (token accuracy).
 * Differentiable in hidden and weight (f32).
 */
export function linearCrossEntropy(hidden: Tensor, weight: Tensor, labels: Tensor,
  opts: LinearCrossEntropyOptions & { returnArgmax: true }): { loss: Tensor; argmax: Tensor };
export function linearCrossEntropy(hidden: Tensor, weight: Tensor, labels: Tensor, opts?: LinearCrossEntropyOptions): Tensor;
export function linearCrossEntropy(hidden: Tensor, weight: Tensor, labels: Tensor, opts: LinearCrossEntropyOptions = {}): Tensor | { loss: Tensor; argmax: Tensor } {
  const reduction = opts.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none')
    throw new TemperError(`linearCrossEntropy: reduction must be 'mean', 'sum' or 'none', got '${reduction}'`);
  const { rows, count, argmax } = lossRows('linearCrossEntropy', hidden, weight, labels, opts.ignoreIndex ?? -100, opts.labelSmoothing ?? 0,
    opts.chunkRows, !!opts.returnArgmax, reduction !== 'none');
  let loss: Tensor;
  if (reduction === 'none') loss = reshape(rows, labels.shape);
  else {
    const total = sum(rows);
    if (reduction === 'sum') loss = total;
    else {
      loss = div(total, count);
      total.dispose();
    }
  }
  rows.dispose();
  if (!opts.returnArgmax) return loss;
  return { loss, argmax: fromArray(argmax!, labels.shape, { device: labels.device }) };
}

/**
 * Per-row log p(label) under softmax(hidden @ weight^T), chunked as linearCrossEntropy (the
 * logits never exist): hidden (..., C), weight (V, C), labels (...) -> (...) f32, 0 on rows
 * whose label is ignoreIndex. Differentiable in hidden and weight (DPO, GRPO).
 */
export function tokenLogprobs(hidden: Tensor, weight: Tensor, labels: Tensor, opts: { ignoreIndex?: number; chunkRows?: number } = {}): Tensor {
  const { rows } = lossRows('tokenLogprobs', hidden, weight, labels, opts.ignoreIndex ?? -100, 0, opts.chunkRows, false, false);
  const lp = sub(0, rows); // 0 - x keeps ignored rows at +0
  rows.dispose();
  const out = reshape(lp, labels.shape);
  lp.dispose();
  return out;
}

/**
 * One chunk's gradient from its f32 logits (m rows from r0): dlogits by the cross-entropy
 * backward kernel with the per-row upstream gradients at byte `gOff` of `g`, then
 * d(hidden)[rows] = dlogits @ weight and d(weight) (+)= dlogits^T @ hidden rows (the first
 * chunk writes, the others accumulate). Under autocast the dlogits are rounded to bf16 first,
 * as matmul's backward rounds its gradient, into the logits buffer (free by then).
 */
function chunkGrads(k: Kernels, logits: Tensor, dlogits: Tensor, g: Tensor, gOff: number, hc: Tensor, hOff: number, weight: Tensor, lc: Tensor,
  lse: Tensor, r0: number, m: number, V: number, C: number, ignoreIndex: number, eps: number, mixed: boolean, dhc: Tensor | null,
  dw: Tensor | null): void {
  k.crossEntropyBackward(logits.handle, 0, lc.handle, lc.byteOffset + r0 * 4, lse.handle, lse.byteOffset + r0 * 4, g.handle, gOff,
    dlogits.handle, 0, m, V, ignoreIndex, eps);
  if (mixed) k.cast(dlogits.handle, 0, 0, logits.handle, 0, 3, m * V);
  const dl = mixed ? logits : dlogits;
  const inCode = DTYPE_CODE[hc.dtype];
  if (dhc) k.matmul(dl.handle, 0, weight.handle, weight.byteOffset, dhc.handle, dhc.byteOffset + r0 * C * 4, 1, m, C, V, 0, 0, 0, 0, 1, 0, inCode, 0);
  if (dw) k.matmul(dl.handle, 0, hc.handle, hOff, dw.handle, 0, 1, V, C, m, 1, 0, 0, 0, 1, r0 === 0 ? 0 : 1, inCode, 0);
}

/**
 * Backward of a mean/sum loss whose gradients the forward computed for an upstream gradient of
 * 1 per row: the upstream gradient of such a loss is one value broadcast over the rows (sum's
 * backward), so the saved d(hidden) and d(weight) scale by it.
 */
function scalePrecomputed(n: GradNode, g: Tensor, needs: boolean[]): (Tensor | null)[] {
  const [dhc, dw] = n.saved as [Tensor, Tensor];
  const compact = n.params.compact as boolean;
  const idx = compact ? n.saved[2]! : null;
  const hiddenShape = n.inputShapes[0]!;
  const N = g.numel, C = hiddenShape[hiddenShape.length - 1]!;
  if (N === 0) return [needs[0] ? zeros(hiddenShape, { device: g.device }) : null, needs[1] ? zeros(dw.shape, { device: g.device }) : null];
  const g0 = slice(g, 0, 0, 1);
  try {
    const dwOut = needs[1] ? mul(dw, g0) : null;
    let dh: Tensor | null = null;
    if (needs[0]) {
      const scaled = mul(dhc, g0);
      if (idx) {
        dh = zeros(hiddenShape, { device: g.device });
        if (idx.numel > 0) kern(g).scatterAdd(dh.handle, dh.byteOffset, idx.handle, idx.byteOffset, scaled.handle, 0, 1, N, idx.numel, C, 1);
        scaled.dispose();
      } else {
        dh = reshape(scaled, hiddenShape);
        scaled.dispose();
      }
    }
    return [dh, dwOut];
  } finally {
    g0.dispose();
  }
}

/**
 * @internal backward of linear_cross_entropy: g (N) per-row upstream gradient. Recomputes each
 * chunk's logits, turns them into dlogits with the cross-entropy backward kernel (scaled by g per
 * row), and accumulates d(hidden) rows and d(weight) (beta = 1) by GEMM.
 */
export function linearCrossEntropyBackward(n: GradNode, g: Tensor, needs: boolean[]): (Tensor | null)[] {
  if (n.params.precomputed) return scalePrecomputed(n, g, needs);
  // Under autocast hc and weight were saved in bf16; the GEMMs then take bf16 and give f32.
  const [hc, weight, lc, lse] = n.saved as [Tensor, Tensor, Tensor, Tensor];
  const compact = n.params.compact as boolean, mixed = n.params.mixed as boolean;
  const inCode = DTYPE_CODE[hc.dtype], es = DTYPE_SIZE[hc.dtype];
  const idx = compact ? n.saved[4]! : null;
  const ignoreIndex = n.params.ignoreIndex as number, eps = n.params.eps as number, cr = n.params.chunkRows as number;
  const hiddenShape = n.inputShapes[0]!;
  const [V, C] = weight.shape as [number, number];
  const R = lc.numel, N = g.numel;
  const k = kern(weight);
  const own: Tensor[] = [];
  const mine = (t: Tensor) => (own.push(t), t);
  try {
    const gc = idx ? mine(selectRows(g, idx, N, 1)) : g;
    const dw = needs[1] ? (R > 0 ? empty([V, C], 'f32', weight) : zeros([V, C], { device: weight.device })) : null;
    let dh: Tensor | null = null, dhc: Tensor | null = null;
    if (needs[0]) {
      dh = compact || R === 0 ? zeros(hiddenShape, { device: weight.device }) : empty(hiddenShape, 'f32', weight);
      dhc = compact && R > 0 ? mine(empty([R, C], 'f32', weight)) : dh;
    }
    if (R > 0) {
      const logits = mine(empty([cr, V], 'f32', weight));
      const dlogits = mine(empty([cr, V], 'f32', weight));
      for (let r0 = 0; r0 < R; r0 += cr) {
        const m = Math.min(cr, R - r0);
        const hOff = hc.byteOffset + r0 * C * es;
        k.matmul(hc.handle, hOff, weight.handle, weight.byteOffset, logits.handle, 0, 1, m, V, C, 0, 1, 0, 0, 1, 0, inCode, 0);
        chunkGrads(k, logits, dlogits, gc, gc.byteOffset + r0 * 4, hc, hOff, weight, lc, lse, r0, m, V, C, ignoreIndex, eps, mixed, dhc, dw);
      }
      if (dh && dhc && dhc !== dh) k.scatterAdd(dh.handle, dh.byteOffset, idx!.handle, idx!.byteOffset, dhc.handle, 0, 1, N, R, C, 1);
    }
    return [dh, dw];
  } finally {
    for (const t of own) t.dispose();
  }
}
