// In-place optimizer kernels on parameters: the fused AdamW step and global grad-norm
// clipping. Not an optimizer class (param groups, schedules and state live in src/train).
import { TemperError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { check, kern } from './util.js';

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

/** torch.optim.AdamW's update of one parameter, in place on param, expAvg and expAvgSq. */
export function adamwStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, o: AdamWStepOptions): void {
  for (const [t, n] of [[param, 'param'], [grad, 'grad'], [expAvg, 'expAvg'], [expAvgSq, 'expAvgSq']] as const) {
    check('adamwStep', t, n);
    if (t.numel !== param.numel) throw new TemperError(`adamwStep: ${n} ${fmtShape(t.shape)} does not match param ${fmtShape(param.shape)}`);
  }
  if (!(o.step >= 1)) throw new TemperError(`adamwStep: step must be >= 1, got ${o.step}`);
  kern(param).adamw(param.handle, param.byteOffset, grad.handle, grad.byteOffset, expAvg.handle, expAvg.byteOffset,
    expAvgSq.handle, expAvgSq.byteOffset, param.numel, o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.eps ?? 1e-8,
    o.weightDecay ?? 0.01, o.step, o.gradScale ?? 1);
}

/** L2 norm over all the tensors together (computed in double). */
export function globalNorm(tensors: readonly Tensor[]): number {
  let ss = 0;
  for (const t of tensors) {
    check('globalNorm', t, 'tensor');
    ss += kern(t).sumSquares(t.handle, t.byteOffset, t.numel);
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
