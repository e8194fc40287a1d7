// Fused ops with hand-written backward kernels: rms_norm (alone or after a residual add), layer_norm, rotary embedding,
// causal attention (GQA, padding and packed-document masks, online softmax) and
// cross-entropy over vocab chunks. Shapes: B batch, T time, H heads, D head dim, C channels, V vocab.
import { record } from '../autograd.js';
import { TemperError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { DTYPE_CODE } from '../dtype.js';
import { FLOATS, check, empty, kern, sameDType, sameDevice } from './util.js';
import { toDType } from './creation.js';
import { div } from './elementwise.js';
import { reshape } from './shape.js';
import { autocastDtype, isGradEnabled } from '../scope.js';
import { sum } from './reduce.js';

function lastDimMatches(op: string, x: Tensor, w: Tensor, name: string): number {
  const C = x.shape[x.ndim - 1];
  if (x.ndim === 0 || w.ndim !== 1 || w.shape[0] !== C)
    throw new TemperError(`${op}: ${name} shape ${fmtShape(w.shape)} does not match the last dim of input ${fmtShape(x.shape)}`);
  return C!;
}

/** y = x / sqrt(mean(x^2, -1) + eps) * w  (HF LlamaRMSNorm). x (..., C), w (C). */
export function rmsNorm(x: Tensor, w: Tensor, eps = 1e-6): Tensor {
  check('rmsNorm', x, 'input', FLOATS);
  check('rmsNorm', w, 'weight', FLOATS);
  sameDevice('rmsNorm', x, w);
  sameDType('rmsNorm', x, w);
  const C = lastDimMatches('rmsNorm', x, w, 'weight');
  const N = x.numel / C;
  const y = empty(x.shape, x.dtype, x);
  const rstd = empty([N], 'f32', x);
  kern(x).rmsNorm(x.handle, x.byteOffset, w.handle, w.byteOffset, y.handle, 0, rstd.handle, 0, N, C, eps, DTYPE_CODE[x.dtype]);
  record('rms_norm', [x, w], y, [x, w, rstd]);
  rstd.dispose();
  return y;
}

/**
 * The pre-norm residual step fused (llm.c / Liger "fused residual"): `sum = x + residual` and
 * `normed = rmsNorm(sum, w, eps)` in one pass over each row (x and residual read once, sum and normed
 * written, rstd saved). Returns [sum, normed], bitwise `add(x, residual)` then `rmsNorm` of it (the
 * sum rounds to the dtype before the norm reads it). x and residual (..., C) of one shape, w (C).
 *
 * Autograd: the tape holds one node per output tensor, so this records two nodes sharing the
 * forward's work: sum is an ordinary 'add' node of (x, residual), and normed an 'add_rms_norm' node
 * of (sum, w) saving sum, w and rstd (what rmsNorm saves). The graph is the unfused one, so
 * gradients from both outputs flow as they would there; the fusion in backward is that the norm's
 * rule folds the gradient the sum already holds from its other consumers (g_sum) into its dx
 * (d(sum) = g_sum + rmsnorm_backward(g_normed), one kernel pass instead of a backward plus an add),
 * and the 'add' node then hands d(sum) to x and residual unchanged. A packed two-output node would
 * need zero-filled gradients for whichever output has none, and two nodes each pointing at x and
 * residual would add their gradients twice and in a different order.
 */
export function addRmsNorm(x: Tensor, residual: Tensor, w: Tensor, eps = 1e-6): [Tensor, Tensor] {
  check('addRmsNorm', x, 'input', FLOATS);
  check('addRmsNorm', residual, 'residual', FLOATS);
  check('addRmsNorm', w, 'weight', FLOATS);
  sameDevice('addRmsNorm', x, residual, w);
  sameDType('addRmsNorm', x, residual, w);
  if (x.shape.join() !== residual.shape.join())
    throw new TemperError(`addRmsNorm: residual shape ${fmtShape(residual.shape)} does not match input ${fmtShape(x.shape)} (no broadcasting)`);
  const C = lastDimMatches('addRmsNorm', x, w, 'weight');
  const N = C === 0 ? 0 : x.numel / C;
  const sum = empty(x.shape, x.dtype, x);
  const y = empty(x.shape, x.dtype, x);
  const rstd = empty([N], 'f32', x);
  kern(x).addRmsNorm(x.handle, x.byteOffset, residual.handle, residual.byteOffset, w.handle, w.byteOffset, sum.handle, 0, y.handle, 0,
    rstd.handle, 0, N, C, eps, DTYPE_CODE[x.dtype]);
  record('add', [x, residual], sum);
  record('add_rms_norm', [sum, w], y, [sum, w, rstd]);
  rstd.dispose();
  return [sum, y];
}

/** @internal backward of add_rms_norm: [d(sum), dw] with d(sum) = gSum + the norm's dx of g. */
export function addRmsNormBackward(sum: Tensor, w: Tensor, rstd: Tensor, g: Tensor, gSum: Tensor | null): [Tensor, Tensor] {
  const C = w.numel, N = C === 0 ? 0 : sum.numel / C;
  const dx = empty(sum.shape, 'f32', sum);
  const dw = empty(w.shape, 'f32', sum);
  kern(sum).addRmsNormBackward(sum.handle, sum.byteOffset, w.handle, w.byteOffset, rstd.handle, rstd.byteOffset, g.handle, g.byteOffset,
    gSum?.handle ?? null, gSum?.byteOffset ?? 0, dx.handle, 0, dw.handle, 0, N, C);
  return [dx, dw];
}

/** torch.nn.functional.layer_norm over the last dim, with weight and optional bias. */
export function layerNorm(x: Tensor, w: Tensor, b: Tensor | null = null, eps = 1e-5): Tensor {
  check('layerNorm', x, 'input', FLOATS);
  check('layerNorm', w, 'weight', FLOATS);
  if (b) check('layerNorm', b, 'bias', FLOATS);
  sameDType('layerNorm', x, w, b);
  sameDevice('layerNorm', x, w, b);
  const C = lastDimMatches('layerNorm', x, w, 'weight');
  if (b) lastDimMatches('layerNorm', x, b, 'bias');
  const N = x.numel / C;
  const y = empty(x.shape, x.dtype, x);
  const mean = empty([N], 'f32', x);
  const rstd = empty([N], 'f32', x);
  kern(x).layerNorm(x.handle, x.byteOffset, w.handle, w.byteOffset, b?.handle ?? null, b?.byteOffset ?? 0, y.handle, 0, mean.handle, 0, rstd.handle, 0, N, C, eps, DTYPE_CODE[x.dtype]);
  record('layer_norm', [x, w, b], y, [x, w, mean, rstd]);
  mean.dispose();
  rstd.dispose();
  return y;
}

/**
 * Rotary position embedding, HF rotate_half convention.
 * x (B, T, H, D), positions (B, T) i32, invFreq (D/2) f32 (rope scaling already applied);
 * `scaling` multiplies cos and sin (HF attention_scaling).
 */
export function rotary(x: Tensor, positions: Tensor, invFreq: Tensor, scaling = 1): Tensor {
  check('rotary', x, 'input', FLOATS);
  check('rotary', positions, 'positions', ['i32']);
  check('rotary', invFreq, 'invFreq');
  sameDevice('rotary', x, positions, invFreq);
  if (x.ndim !== 4) throw new TemperError(`rotary: input must be (B, T, H, D), got ${fmtShape(x.shape)}`);
  const [B, T, H, D] = x.shape as [number, number, number, number];
  if (D % 2 !== 0) throw new TemperError(`rotary: head dim ${D} must be even`);
  if (positions.shape.join() !== [B, T].join())
    throw new TemperError(`rotary: positions ${fmtShape(positions.shape)} must be (B, T) = ${fmtShape([B, T])}`);
  if (invFreq.numel !== D / 2) throw new TemperError(`rotary: invFreq has ${invFreq.numel} entries, expected D/2 = ${D / 2}`);
  const y = empty(x.shape, x.dtype, x);
  kern(x).rotary(x.handle, x.byteOffset, positions.handle, positions.byteOffset, invFreq.handle, invFreq.byteOffset, y.handle, 0, B, T, H, D, scaling, 0,
    DTYPE_CODE[x.dtype]);
  record('rotary', [x, null, null], y, [positions, invFreq], { scaling });
  return y;
}

/** The transposed rotation (the backward of rotary). @internal */
export function rotaryInverse(g: Tensor, positions: Tensor, invFreq: Tensor, scaling: number): Tensor {
  const [B, T, H, D] = g.shape as [number, number, number, number];
  const dx = empty(g.shape, 'f32', g);
  kern(g).rotary(g.handle, g.byteOffset, positions.handle, positions.byteOffset, invFreq.handle, invFreq.byteOffset, dx.handle, 0, B, T, H, D, scaling, 1);
  return dx;
}

export interface AttentionOptions {
  /** Key s visible to query i only if s <= i (offset for Tq < Tk). Default true. */
  causal?: boolean;
  /** (B, Tk) i32 or bool: 0 marks padding keys, never attended. */
  keyMask?: Tensor | null;
  /** (B, Tk) i32: packed sequences; a query attends only keys with its own document id. */
  docIds?: Tensor | null;
  /** Softmax scale, default 1/sqrt(D). */
  scale?: number;
  /**
   * Inference with a preallocated KV cache: k, v (and keyMask, docIds) hold a capacity of
   * rows per batch entry of which only the first `kvLength` are keys. Not differentiable.
   */
  kvLength?: number;
}

/**
 * Scaled dot-product attention with grouped-query heads, blocked with an online softmax
 * (memory does not grow with T^2). q (B, Tq, Hq, D), k/v (B, Tk, Hkv, D) -> (B, Tq, Hq, D).
 * A query row that sees no key returns 0. Inside `autocast('bf16', …)` (without kvLength), f32
 * q, k, v are rounded to bf16 and the result is f32 (mixed precision, tensor cores on CUDA).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  for (const [t, n] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) check('attention', t, n, FLOATS);
  sameDType('attention', q, k, v);
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4)
    throw new TemperError(`attention: q, k, v must be (B, T, H, D); got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  const [B, Tq, Hq, D] = q.shape as [number, number, number, number];
  const [Bk, Tcap, Hkv, Dk] = k.shape as [number, number, number, number];
  const Tk = opts.kvLength ?? Tcap;
  if (!(Tk >= 0 && Tk <= Tcap)) throw new TemperError(`attention: kvLength ${Tk} outside [0, ${Tcap}] for k ${fmtShape(k.shape)}`);
  if (Tk < Tcap && isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad || q.gradFn || k.gradFn || v.gradFn))
    throw new TemperError('attention: kvLength (a KV cache) is for inference; run it under noGrad()');
  if (k.shape.join() !== v.shape.join() || Bk !== B || Dk !== D || Hq % Hkv !== 0 || Tq > Tk)
    throw new TemperError(
      `attention: incompatible q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} (need same B and D, Hq divisible by Hkv, k and v equal, Tq <= Tk)`,
    );
  const masks: Tensor[] = [];
  const asI32 = (m: Tensor | null | undefined, name: string): Tensor | null => {
    if (!m) return null;
    check('attention', m, name, ['i32', 'bool']);
    if (m.shape.join() !== [B, Tcap].join()) throw new TemperError(`attention: ${name} ${fmtShape(m.shape)} must be (B, Tk) = ${fmtShape([B, Tcap])}`);
    if (m.dtype === 'i32') return m;
    const c = toDType(m, 'i32');
    masks.push(c);
    return c;
  };
  const km = asI32(opts.keyMask, 'keyMask');
  const doc = asI32(opts.docIds, 'docIds');
  sameDevice('attention', q, k, v, km, doc);
  const causal = opts.causal ?? true;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (q.dtype === 'f32' && autocastDtype() === 'bf16' && opts.kvLength === undefined) {
    // Mixed precision: bf16-rounded q, k, v in, f32 out; the backward reuses the rounded copies.
    const [q16, k16, v16] = [q, k, v].map((t) => toDType(t, 'bf16')) as [Tensor, Tensor, Tensor];
    const out = empty(q.shape, 'f32', q);
    const lse = empty([B, Hq, Tq], 'f32', q);
    kern(q).attentionMixed(q16.handle, 0, k16.handle, 0, v16.handle, 0, km?.handle ?? null, km?.byteOffset ?? 0,
      doc?.handle ?? null, doc?.byteOffset ?? 0, out.handle, 0, lse.handle, 0, B, Tq, Tk, Hq, Hkv, D, scale, causal ? 1 : 0);
    const saved = [q16, k16, v16, out, lse];
    if (km) saved.push(km);
    if (doc) saved.push(doc);
    record('attention', [q, k, v], out, saved, { scale, causal, hasMask: !!km, hasDoc: !!doc, mixed: true });
    for (const t of [q16, k16, v16, lse, ...masks]) t.dispose();
    return out;
  }
  const out = empty(q.shape, q.dtype, q);
  const lse = empty([B, Hq, Tq], 'f32', q);
  kern(q).attention(q.handle, q.byteOffset, k.handle, k.byteOffset, v.handle, v.byteOffset, km?.handle ?? null, km?.byteOffset ?? 0,
    doc?.handle ?? null, doc?.byteOffset ?? 0, out.handle, 0, lse.handle, 0, B, Tq, Tk, Hq, Hkv, D, scale, causal ? 1 : 0, Tcap,
    DTYPE_CODE[q.dtype]);
  const saved = [q, k, v, out, lse];
  if (km) saved.push(km);
  if (doc) saved.push(doc);
  record('attention', [q, k, v], out, saved, { scale, causal, hasMask: !!km, hasDoc: !!doc });
  lse.dispose();
  for (const m of masks) m.dispose();
  return out;
}

export interface CrossEntropyOptions {
  /** Labels equal to this contribute no loss and no gradient. Default -100. */
  ignoreIndex?: number;
  /** Mass eps spread uniformly over the vocabulary (torch label_smoothing). Default 0. */
  labelSmoothing?: number;
  /** 'mean' over non-ignored rows (default), 'sum', or 'none' (shape of labels). */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of logits (..., V) against i32 labels (...), computed per row in vocab
 * chunks with an online logsumexp; the backward writes the gradient in one pass.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  check('crossEntropy', logits, 'logits', FLOATS);
  check('crossEntropy', labels, 'labels', ['i32']);
  sameDevice('crossEntropy', logits, labels);
  const V = logits.shape[logits.ndim - 1]!;
  if (logits.ndim < 1 || labels.shape.join() !== logits.shape.slice(0, -1).join())
    throw new TemperError(`crossEntropy: labels ${fmtShape(labels.shape)} must match logits ${fmtShape(logits.shape)} without the vocab dim`);
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new TemperError(`crossEntropy: labelSmoothing must be in [0, 1], got ${eps}`);
  const N = labels.numel;
  const rows = empty([N], 'f32', logits);
  const lse = empty([N], 'f32', logits);
  const code = kern(logits).crossEntropy(logits.handle, logits.byteOffset, labels.handle, labels.byteOffset, rows.handle, 0, lse.handle, 0, N, V, ignoreIndex, eps,
    DTYPE_CODE[logits.dtype]);
  if (code < 0) {
    const row = -code - 1;
    const label = labels.toArray()[row];
    rows.dispose();
    lse.dispose();
    throw new TemperError(`crossEntropy: label ${label} at row ${row} is outside the vocabulary [0, ${V}) and is not ignoreIndex (${ignoreIndex})`);
  }
  record('cross_entropy', [logits, null], rows, [logits, labels, lse], { ignoreIndex, eps, V });
  lse.dispose();
  const reduction = opts.reduction ?? 'mean';
  if (reduction === 'none') {
    const r = reshape(rows, labels.shape);
    rows.dispose();
    return r;
  }
  const total = sum(rows);
  rows.dispose();
  if (reduction === 'sum') return total;
  let count = 0;
  for (const y of labels.toArray() as Int32Array) if (y !== ignoreIndex) count++;
  const m = div(total, count);
  total.dispose();
  return m;
}

/** @internal backward of cross_entropy: g (N) per-row upstream gradient. */
export function crossEntropyBackward(logits: Tensor, labels: Tensor, lse: Tensor, g: Tensor, ignoreIndex: number, eps: number): Tensor {
  const V = logits.shape[logits.ndim - 1]!;
  const dx = empty(logits.shape, 'f32', logits);
  kern(logits).crossEntropyBackward(logits.handle, logits.byteOffset, labels.handle, labels.byteOffset, lse.handle, lse.byteOffset, g.handle, g.byteOffset, dx.handle, 0, labels.numel, V, ignoreIndex, eps);
  return dx;
}

