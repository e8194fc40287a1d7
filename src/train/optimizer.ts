// AdamW over named parameters, as transformers' Trainer builds it: decoupled weight decay
// on matrices and embeddings, none on biases and norm weights (1-d tensors); state by
// parameter name so checkpoints survive a change of parameter order. Parameter groups may set
// their own peak learning rate and weight decay (a value head trained faster than the policy). The update itself
// is the fused native `adamwStepMulti` (all parameters in one call). Not a scheduler
// (schedule.ts) and not clipping.
import { TemperError, adamwStepMulti, keep, zerosLike, type Tensor } from '../tensor/index.js';

export interface AdamWConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Parameters exempt from weight decay; default: 1-d tensors (biases, norm weights) and names ending in "bias". */
  noDecay?: (name: string, t: Tensor) => boolean;
}

export const defaultNoDecay = (name: string, t: Tensor): boolean => t.ndim < 2 || name.endsWith('.bias');

/** Parameters that share a learning rate and weight decay (torch's param_groups). */
export interface ParamGroup {
  params: [string, Tensor][];
  /** Peak learning rate of this group; the schedule scales it as it scales AdamWConfig.lr. Default: AdamWConfig.lr. */
  lr?: number;
  /** Weight decay of this group (still not on biases and norm weights). Default: AdamWConfig.weightDecay. */
  weightDecay?: number;
}

export class AdamW implements Disposable {
  /** Completed optimizer steps (the bias-correction count of the next step is step + 1). */
  step = 0;
  private readonly state = new Map<string, { m: Tensor; v: Tensor }>();

  readonly params: readonly [string, Tensor][];
  readonly groups: readonly ParamGroup[];

  /** `params`: one list (a single group at config.lr) or parameter groups. */
  constructor(params: readonly [string, Tensor][] | readonly ParamGroup[], readonly config: AdamWConfig) {
    this.groups = params.length > 0 && !Array.isArray(params[0]) ? (params as ParamGroup[]) : [{ params: params as [string, Tensor][] }];
    this.params = this.groups.flatMap((g) => g.params);
    const names = new Set<string>();
    for (const [n, p] of this.params) {
      if (names.has(n)) throw new TemperError(`AdamW: parameter '${n}' listed twice`);
      names.add(n);
      if (p.dtype !== 'f32') throw new TemperError(`AdamW: parameter '${n}' is ${p.dtype}; trainable parameters must be f32`);
    }
  }

  private slot(name: string, p: Tensor): { m: Tensor; v: Tensor } {
    let s = this.state.get(name);
    if (!s) {
      s = { m: keep(zerosLike(p)), v: keep(zerosLike(p)) };
      this.state.set(name, s);
    }
    return s;
  }

  /**
   * One update of every parameter that has a gradient, at learning rate `lr` (a group with its
   * own lr gets lr × group.lr / config.lr, so the schedule scales every group alike).
   * `gradScale` multiplies the gradients first (clipping folded into the update).
   */
  update(lr: number, gradScale = 1): void {
    this.step++;
    const c = this.config;
    const noDecay = c.noDecay ?? defaultNoDecay;
    for (const g of this.groups) {
      const ps: Tensor[] = [], gs: Tensor[] = [], ms: Tensor[] = [], vs: Tensor[] = [], wds: number[] = [];
      for (const [name, p] of g.params) {
        if (!p.grad) continue;
        const s = this.slot(name, p);
        ps.push(p);
        gs.push(p.grad);
        ms.push(s.m);
        vs.push(s.v);
        wds.push(noDecay(name, p) ? 0 : g.weightDecay ?? c.weightDecay ?? 0);
      }
      if (ps.length === 0) continue;
      const groupLr = g.lr === undefined ? lr : c.lr > 0 ? (lr * g.lr) / c.lr : g.lr;
      // One call per group and device (one kernel launch on a GPU), bitwise the per-parameter adamwStep.
      adamwStepMulti(ps, gs, ms, vs, { lr: groupLr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, step: this.step, gradScale, weightDecay: wds });
    }
  }

  /** Moments by name (`<name>.exp_avg`, `<name>.exp_avg_sq`) for a checkpoint. */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, p] of this.params) {
      const s = this.slot(name, p);
      out.set(`${name}.exp_avg`, s.m);
      out.set(`${name}.exp_avg_sq`, s.v);
    }
    return out;
  }

  /** Restores moments saved by stateTensors (read lazily through `get`) and the step count. */
  loadState(step: number, get: (key: string) => Tensor | undefined, source: string): void {
    this.step = step;
    for (const [name, p] of this.params) {
      const s = this.slot(name, p);
      for (const [key, dst] of [[`${name}.exp_avg`, s.m], [`${name}.exp_avg_sq`, s.v]] as const) {
        const t = get(key);
        if (!t) throw new TemperError(`${source}: optimizer state has no '${key}'`);
        if (t.shape.join() !== p.shape.join()) throw new TemperError(`${source}: '${key}' has shape [${t.shape}], parameter is [${p.shape}]`);
        dst.dispose();
        t.relocate(p.device);  // checkpoints load on the host; moments live beside their parameter
        if (dst === s.m) s.m = keep(t);
        else s.v = keep(t);
      }
    }
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.state.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
