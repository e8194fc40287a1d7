// Module: a named tree of parameters and child modules, as torch.nn.Module. Names are
// the dotted paths transformers uses ("model.layers.0.self_attn.q_proj.weight"), so a
// state dict maps 1:1 onto checkpoint files. Not an autograd concept: parameters are
// ordinary leaf tensors with requiresGrad set.
import { TemperError, keep, type Device, type Tensor } from '../tensor/index.js';

export abstract class Module implements Disposable {
  private readonly params = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();
  /** Dropout and other train-only behaviour; set by train() / eval(). */
  training = true;

  /** Registers a parameter (trainable, owned by this module, kept out of any scope). */
  protected param(name: string, t: Tensor): Tensor {
    if (this.params.has(name) || this.children.has(name)) throw new TemperError(`${this.constructor.name}: '${name}' registered twice`);
    keep(t);
    if (t.dtype === 'f32') t.requiresGrad = true;
    this.params.set(name, t);
    return t;
  }

  /** Registers a child module under `name`. */
  protected child<M extends Module>(name: string, m: M): M {
    if (this.params.has(name) || this.children.has(name)) throw new TemperError(`${this.constructor.name}: '${name}' registered twice`);
    this.children.set(name, m);
    return m;
  }

  /**
   * Adds, replaces (same name) or, with null, removes a child after construction: how
   * adapters (LoRA) graft modules onto a loaded model. Typed fields keep their object.
   */
  setChild(name: string, m: Module | null): void {
    if (this.params.has(name)) throw new TemperError(`${this.constructor.name}: '${name}' is a parameter, not a child`);
    if (m) this.children.set(name, m);
    else this.children.delete(name);
  }

  /** Every (dotted path, module) of the tree, this module first as ''; a shared module listed once. */
  namedModules(): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const walk = (m: Module, path: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([path, m]);
      for (const [n, c] of m.children) walk(c, path ? `${path}.${n}` : n);
    };
    walk(this, '');
    return out;
  }

  /** Every (name, parameter), a tensor shared by two names listed once under the first (tied weights). */
  namedParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    return this.stateEntries('').filter(([, t]) => (seen.has(t) ? false : (seen.add(t), true)));
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** name -> tensor for every registered name, shared tensors under each of their names. */
  stateDict(): Map<string, Tensor> {
    return new Map(this.stateEntries(''));
  }

  private stateEntries(prefix: string): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.params) out.push([prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.stateEntries(`${prefix}${n}.`));
    return out;
  }

  /** Sets training mode on this module and every child; returns this. */
  train(mode = true): this {
    this.training = mode;
    for (const m of this.children.values()) m.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Tensors this module owns besides parameters (rotary frequencies, …), which follow it
   * across devices. Modules holding such tensors override this.
   */
  protected buffers(): Tensor[] {
    return [];
  }

  /**
   * Moves every parameter (with its gradient) and buffer to a device in place, or converts the
   * parameters to a float dtype ('bf16' halves memory for inference; bf16 parameters do not
   * train, 'f32' makes them trainable again); returns this. Buffers stay f32.
   */
  to(target: Device | 'f32' | 'bf16'): this {
    if (target === 'f32' || target === 'bf16') {
      for (const p of this.parameters()) if (p.dtype === 'f32' || p.dtype === 'bf16') p.retype(target);
      return this;
    }
    for (const p of this.parameters()) p.relocate(target);
    for (const [, m] of this.namedModules()) for (const b of m.buffers()) b.relocate(target);
    return this;
  }

  /** The float dtype of the parameters ('f32' for a module without any). */
  get dtype(): 'f32' | 'bf16' {
    return this.parameters().find((p) => p.dtype === 'bf16') ? 'bf16' : 'f32';
  }

  /** The device of the parameters ('cpu' for a module without any). */
  get device(): Device {
    return this.parameters()[0]?.device ?? 'cpu';
  }

  /** Frees every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Number of parameter elements (shared tensors counted once). */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  /** Frees every parameter (and its gradient) and every buffer. The module is unusable afterwards. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const [, m] of this.namedModules()) for (const b of m.buffers()) b.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** An indexed list of modules; children are named "0", "1", … as torch.nn.ModuleList. */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
}
