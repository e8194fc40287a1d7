// In-place optimizer kernels on parameters: the fused AdamW step (per tensor, or many tensors
// in one call) and global grad-norm clipping. Not an optimizer class (param groups, schedules and state live in src/train).
import { kernelsFor, type Device, type Handle } from '../backend.js';
import { TemperError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { check, kern, sameDevice } from './util.js';

export interface AdamWStepOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** 1-based step count, for bias correction. */
  step: number;
  /** Multiplies the gradient first (fused clipping or loss-scale). Default 1. */
  gradScale?: number;
}

function checkAdamW(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor): void {
  for (const [t, n] of [[param, 'param'], [grad, 'grad'], [expAvg, 'expAvg'], [expAvgSq, 'expAvgSq']] as const) {
    check('adamwStep', t, n);
    if (t.numel !== param.numel) throw new TemperError(`adamwStep: ${n} ${fmtShape(t.shape)} does not match param ${fmtShape(param.shape)}`);
  }
}
function checkStep(o: { step: number }): void {
  if (!(o.step >= 1)) throw new TemperError(`adamwStep: step must be >= 1, got ${o.step}`);
}

/** torch.optim.AdamW's update of one parameter, in place on param, expAvg and expAvgSq. */
export function adamwStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, o: AdamWStepOptions): void {
  checkAdamW(param, grad, expAvg, expAvgSq);
  checkStep(o);
  kern(param).adamw(param.handle, param.byteOffset, grad.handle, grad.byteOffset, expAvg.handle, expAvg.byteOffset,
    expAvgSq.handle, expAvgSq.byteOffset, param.numel, o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.eps ?? 1e-8,
    o.weightDecay ?? 0.01, o.step, o.gradScale ?? 1);
}

export interface AdamWStepMultiOptions extends Omit<AdamWStepOptions, 'weightDecay'> {
  /** One for all parameters, or one per parameter. Default 0.01. */
  weightDecay?: number | readonly number[];
}

/** Flat [handle, byteOffset, ...] list of tensors, as the multi-tensor kernels take them. */
function ptrList(ts: readonly Tensor[], idx: readonly number[]): (Handle | null | number)[] {
  const out: (Handle | null | number)[] = new Array(2 * idx.length);
  idx.forEach((i, k) => {
    out[2 * k] = ts[i]!.handle;
    out[2 * k + 1] = ts[i]!.byteOffset;
  });
  return out;
}

/**
 * adamwStep on every params[i] with grads[i], expAvgs[i], expAvgSqs[i]: the same results bit for
 * bit, but one native call per device (one kernel launch on a GPU). The same errors as adamwStep,
 * all checked before anything is updated. A parameter listed twice is updated twice, in order.
 */
export function adamwStepMulti(params: readonly Tensor[], grads: readonly Tensor[], expAvgs: readonly Tensor[],
  expAvgSqs: readonly Tensor[], o: AdamWStepMultiOptions): void {
  const count = params.length;
  for (const [list, name] of [[grads, 'grads'], [expAvgs, 'expAvgs'], [expAvgSqs, 'expAvgSqs']] as const)
    if (list.length !== count) throw new TemperError(`adamwStepMulti: ${count} params but ${list.length} ${name}`);
  const wd = o.weightDecay ?? 0.01;
  if (typeof wd !== 'number' && wd.length !== count)
    throw new TemperError(`adamwStepMulti: ${count} params but ${wd.length} weight decays`);
  for (let i = 0; i < count; i++) {
    checkAdamW(params[i]!, grads[i]!, expAvgs[i]!, expAvgSqs[i]!);
    sameDevice('adamwStep', params[i], grads[i], expAvgs[i], expAvgSqs[i]);
  }
  checkStep(o);
  const run = (idx: number[]): void => {
    kern(params[idx[0]!]!).adamwMulti(ptrList(params, idx), ptrList(grads, idx), ptrList(expAvgs, idx), ptrList(expAvgSqs, idx),
      idx.map((i) => params[i]!.numel), idx.map((i) => (typeof wd === 'number' ? wd : wd[i]!)), o.lr, o.beta1 ?? 0.9,
      o.beta2 ?? 0.999, o.eps ?? 1e-8, o.step, o.gradScale ?? 1);
  };
  // One batch per device; a parameter seen again in its batch (same storage and offset) closes the
  // batch first, since the tensors of one call are updated concurrently.
  const batches = new Map<Device, { idx: number[]; seen: Map<unknown, Set<number>> }>();
  for (let i = 0; i < count; i++) {
    const p = params[i]!;
    let b = batches.get(p.device);
    if (b?.seen.get(p.handle)?.has(p.byteOffset)) {
      run(b.idx);
      b = undefined;
    }
    if (!b) batches.set(p.device, (b = { idx: [], seen: new Map() }));
    b.idx.push(i);
    let offs = b.seen.get(p.handle);
    if (!offs) b.seen.set(p.handle, (offs = new Set()));
    offs.add(p.byteOffset);
  }
  for (const b of batches.values()) if (b.idx.length) run(b.idx);
}

/**
 * L2 norm over all the tensors together (computed in double): one native call per device (on a GPU
 * one reduction and one host sync). On the CPU, bitwise the per-tensor sums of squares added in order.
 */
export function globalNorm(tensors: readonly Tensor[]): number {
  const byDevice = new Map<Device, Tensor[]>();
  for (const t of tensors) {
    check('globalNorm', t, 'tensor');
    const list = byDevice.get(t.device);
    if (list) list.push(t);
    else byDevice.set(t.device, [t]);
  }
  let ss = 0;
  for (const [device, ts] of byDevice) {
    const idx = ts.map((_, i) => i);
    ss += kernelsFor(device).sumSquaresMulti(ptrList(ts, idx), ts.map((t) => t.numel));
  }
  return Math.sqrt(ss);
}

/**
 * torch.nn.utils.clip_grad_norm_: scales every grad in place by min(1, maxNorm / (norm + 1e-6)).
 * Returns the norm before clipping (non-finite when a grad is; grads are left as they are then).
 */
export function clipGradNorm(grads: readonly Tensor[], maxNorm: number): number {
  const norm = globalNorm(grads);
  if (!Number.isFinite(norm)) return norm;
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  if (coef < 1) for (const g of grads) kern(g).scaleInplace(g.handle, g.byteOffset, g.numel, coef);
  return norm;
}

/** x *= s in place (no autograd). */
export function scaleInplace(x: Tensor, s: number): void {
  check('scaleInplace', x, 'tensor');
  kern(x).scaleInplace(x.handle, x.byteOffset, x.numel, s);
}
