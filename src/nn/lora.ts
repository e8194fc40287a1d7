// LoRA (Hu et al. 2021, arXiv:2106.09685) as PEFT does it: a Linear or GPT-2 Conv1D gets
// y = base(x) + s·B(A(dropout(x))), s = α/r (rsLoRA: α/√r), A (r, in) kaiming-uniform, B (out, r)
// zero. The adapter is grafted onto the loaded model, so parameter names stay HF/PEFT's
// ("…q_proj.weight" frozen, "…q_proj.lora_A.weight" trainable). Not file IO (io/peft.ts),
// and not DoRA, LoRA on embeddings, rank/alpha patterns or several named adapters at once.
import { Generator, TemperError, add, dropout, full, matmul, mul, noGrad, rand, assign, scope, sub, type Tensor } from '../tensor/index.js';
import { Module } from './module.js';
import { Conv1D, Linear, type LinearAdapter } from './linear.js';
import type { ParamInit } from './init.js';

/** PEFT's LoraConfig fields that temper implements (snake_case, as in adapter_config.json). */
export interface LoraConfig {
  /** Rank (PEFT default 8). */
  r?: number;
  /** α; the update is scaled by α/r (PEFT default 8). */
  lora_alpha?: number;
  /** Dropout on the LoRA path's input while training (default 0). */
  lora_dropout?: number;
  /**
   * A list (a module matches when its path equals an entry or ends with "." + entry), a
   * regex string (full match on the path), or "all-linear" (every Linear/Conv1D but the
   * output head). Default as PEFT for known layouts: q_proj+v_proj, or c_attn (GPT-2).
   */
  target_modules?: readonly string[] | string | null;
  /** Modules never targeted, with the same matching rules. */
  exclude_modules?: readonly string[] | string | null;
  /** Scale α/√r instead of α/r (Kalajdzievski 2023, arXiv:2312.03732). */
  use_rslora?: boolean;
  /** Modules trained in full and saved with the adapter (e.g. "lm_head", "score", "embed_tokens"). */
  modules_to_save?: readonly string[] | null;
  /** Only "none": biases stay frozen and are not saved. */
  bias?: 'none';
  /** SEQ_CLS adds the classification head ("score") to modules_to_save, as PEFT does. */
  task_type?: 'CAUSAL_LM' | 'SEQ_CLS' | null;
}

/** A LoraConfig with every field decided, as written to adapter_config.json. */
export interface ResolvedLoraConfig {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Sorted names (list / all-linear: the entries that matched), or the regex as given. */
  target_modules: string[] | string;
  exclude_modules: string[] | string | null;
  use_rslora: boolean;
  modules_to_save: string[] | null;
  bias: 'none';
  task_type: 'CAUSAL_LM' | 'SEQ_CLS' | null;
  /** True when the targets are Conv1D (weights stored (in, out)). */
  fan_in_fan_out: boolean;
}

export interface LoraLayerOptions {
  r: number;
  alpha: number;
  dropout?: number;
  rslora?: boolean;
  /** Draws A's init and the dropout masks (default: a Generator seeded 0). */
  generator?: Generator;
}

/** A layer that LoRA can adapt. */
export type LoraTarget = Linear | Conv1D;

/** s = α/r, or α/√r with rsLoRA. */
export function loraScale(r: number, alpha: number, rslora = false): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * The LoRA side path of one layer. Constructing it attaches it: the base layer's weights
 * are frozen, `lora_A`/`lora_B` become children of the base layer (so their names are
 * `<path>.lora_A.weight`) and the base layer's forward adds `delta(x)`.
 * @example const l = new LoraLinear(proj, { r: 8, alpha: 16 }); const y = l.forward(x);
 */
export class LoraLinear extends Module implements LinearAdapter {
  /** A (r, in): kaiming_uniform(a=√5), i.e. U(-1/√in, 1/√in). */
  readonly lora_A: Linear;
  /** B (out, r): zeros, so a fresh adapter leaves the model unchanged. */
  readonly lora_B: Linear;
  readonly scale: number;
  readonly dropout: number;
  /** Conv1D stores W as (in, out) (PEFT's fan_in_fan_out): the merged update is transposed. */
  readonly fanInFanOut: boolean;
  /** When false, delta() is null and the layer computes base(x) alone. */
  enabled = true;
  private readonly generator: Generator;
  private readonly baseRequiresGrad: boolean[];
  private attached = true;

  constructor(readonly base: LoraTarget, opts: LoraLayerOptions) {
    super();
    const { r, alpha } = opts;
    if (!(Number.isInteger(r) && r > 0)) throw new TemperError(`LoRA: r must be a positive integer, got ${r}`);
    if (!(Number.isFinite(alpha) && alpha > 0)) throw new TemperError(`LoRA: lora_alpha must be a positive number, got ${alpha}`);
    const p = opts.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new TemperError(`LoRA: lora_dropout must be in [0, 1), got ${p}`);
    if (base.adapter) throw new TemperError('LoRA: this layer already has an adapter (merge or unload it first)');
    this.generator = opts.generator ?? new Generator(0);
    this.scale = loraScale(r, alpha, opts.rslora);
    this.dropout = p;
    this.fanInFanOut = base instanceof Conv1D;
    const device = base.weight.device;
    const bound = 1 / Math.sqrt(base.inFeatures);
    const initA: ParamInit = {
      normal: (shape) => scope(() => noGrad(() => sub(mul(rand(shape, { generator: this.generator, device }), 2 * bound), bound))),
      ones: (shape) => full(shape, 1, { device }),
      zeros: (shape) => full(shape, 0, { device }),
    };
    const initB: ParamInit = { ...initA, normal: (shape) => full(shape, 0, { device }) };
    this.lora_A = this.child('lora_A', new Linear(base.inFeatures, r, false, initA));
    this.lora_B = this.child('lora_B', new Linear(r, base.outFeatures, false, initB));
    const own = base.parameters();
    this.baseRequiresGrad = own.map((t) => t.requiresGrad);
    for (const t of own) t.requiresGrad = false;
    base.setChild('lora_A', this.lora_A);
    base.setChild('lora_B', this.lora_B);
    base.adapter = this;
  }

  get r(): number {
    return this.lora_A.outFeatures;
  }

  /** s · B(A(dropout(x))): x (..., in) -> (..., out); dropout only while the base layer trains. */
  delta(x: Tensor): Tensor | null {
    if (!this.enabled) return null;
    return scope(() => {
      const h = this.dropout > 0 && this.base.training ? dropout(x, this.dropout, { training: true, generator: this.generator }) : x;
      return mul(this.lora_B.forward(this.lora_A.forward(h)), this.scale);
    });
  }

  /** The adapted layer: base(x) + delta(x). */
  forward(x: Tensor): Tensor {
    this.assertAttached('forward');
    return this.base.forward(x);
  }

  /** ΔW = s·B@A in the base weight's layout: (out, in) for Linear, (in, out) for Conv1D. */
  deltaWeight(): Tensor {
    this.assertAttached('deltaWeight');
    return noGrad(() =>
      scope(() => {
        const A = this.lora_A.weight, B = this.lora_B.weight;
        const ba = this.fanInFanOut ? matmul(A, B, { transA: true, transB: true }) : matmul(B, A);
        return mul(ba, this.scale);
      }),
    );
  }

  /** W += ΔW in place (in f32, stored back in W's dtype), then detach(). */
  merge(): void {
    const W = this.base.weight;
    noGrad(() =>
      scope(() => {
        const w = W.dtype === 'f32' ? W : W.to('f32');
        assign(W, add(w, this.deltaWeight()));
      }),
    );
    this.detach();
  }

  /** Removes the adapter from the base layer, restores its requiresGrad flags and frees A and B. */
  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.base.adapter = null;
    this.base.setChild('lora_A', null);
    this.base.setChild('lora_B', null);
    this.base.parameters().forEach((t, i) => (t.requiresGrad = this.baseRequiresGrad[i]!));
    this.dispose();
  }

  private assertAttached(op: string): void {
    if (!this.attached) throw new TemperError(`LoraLinear.${op}: the adapter was merged or unloaded`);
  }
}

/** PEFT's default targets for the layouts temper builds (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
const DEFAULT_TARGETS: readonly (readonly string[])[] = [['q_proj', 'v_proj'], ['c_attn']];
/** Output heads that "all-linear" leaves alone (PEFT: the output embedding / SEQ_CLS head). */
const HEADS = ['lm_head', 'score', 'classifier'];
const PEFT_PREFIX = 'base_model.model.';

type Matcher = (path: string) => boolean;

function matcher(spec: readonly string[] | string, field: string): Matcher {
  if (typeof spec === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${spec})$`);
    } catch (e) {
      throw new TemperError(`LoRA: ${field} '${spec}' is not a valid regular expression (${(e as Error).message})`);
    }
    return (path) => re.test(path);
  }
  return (path) => spec.some((n) => path === n || path.endsWith(`.${n}`));
}

const shortName = (path: string) => path.slice(path.lastIndexOf('.') + 1);

/**
 * Puts LoRA adapters on `model`'s targeted layers and freezes every other parameter
 * (modules_to_save stay trainable). The model object is modified in place.
 * @example
 * const lora = applyLora(model, { r: 16, lora_alpha: 32, target_modules: 'all-linear' }, { seed: 42 });
 * const opt = new AdamW(lora.trainableParameters().map(([, p]) => p));
 */
export function applyLora<M extends Module>(model: M, cfg: LoraConfig = {}, opts: { seed?: number } = {}): LoraModel<M> {
  if ((cfg.bias ?? 'none') !== 'none') throw new TemperError(`LoRA: bias '${cfg.bias}' is not supported (only "none")`);
  const modules = model.namedModules();
  const linears = modules.filter((e): e is [string, LoraTarget] => e[1] instanceof Linear || e[1] instanceof Conv1D);
  if (linears.some(([, m]) => m.adapter)) throw new TemperError('LoRA: the model already has adapters (merge() or unload() them first)');
  const present = new Set(linears.map(([p]) => shortName(p)));

  // What target_modules means, and what adapter_config.json will say.
  let spec = cfg.target_modules ?? DEFAULT_TARGETS.find((names) => names.every((n) => present.has(n)));
  if (!spec) throw new TemperError(`LoRA: no default target_modules for this model; set target_modules (linear layers: ${[...present].sort().join(', ')})`);
  if (typeof spec === 'string' && spec.toLowerCase() === 'all-linear')
    spec = [...new Set(linears.filter(([p]) => !HEADS.includes(p)).map(([p]) => shortName(p)))];
  if (Array.isArray(spec) && spec.length === 0) throw new TemperError('LoRA: target_modules is empty');
  const isTarget = matcher(spec, 'target_modules');
  const isExcluded = cfg.exclude_modules ? matcher(cfg.exclude_modules, 'exclude_modules') : () => false;
  const chosen = modules.filter(([p]) => p !== '' && isTarget(p) && !isExcluded(p));
  if (chosen.length === 0)
    throw new TemperError(`LoRA: target_modules ${JSON.stringify(spec)} matched no module (linear layers: ${[...present].sort().join(', ')})`);
  for (const [p, m] of chosen)
    if (!(m instanceof Linear || m instanceof Conv1D))
      throw new TemperError(`LoRA: target '${p}' is a ${m.constructor.name}; temper adapts Linear and Conv1D layers only`);
  const savedTargets = typeof spec === 'string' ? spec : spec.filter((n) => chosen.some(([p]) => p === n || p.endsWith(`.${n}`))).sort();

  // modules_to_save; SEQ_CLS adds the head as PEFT does (absent heads are skipped).
  const taskType = cfg.task_type ?? null;
  const toSave = [...(cfg.modules_to_save ?? [])];
  const auto = taskType === 'SEQ_CLS' ? ['classifier', 'score'] : [];
  for (const h of auto) if (!toSave.includes(h)) toSave.push(h);
  const saveMatch = matcher(toSave, 'modules_to_save');
  const savePaths = modules.filter(([p]) => p !== '' && saveMatch(p)).map(([p]) => p);
  for (const n of toSave)
    if (!auto.includes(n) && !savePaths.some((p) => p === n || p.endsWith(`.${n}`)))
      throw new TemperError(`LoRA: modules_to_save entry '${n}' matched no module${n === 'lm_head' ? ' (a tied lm_head is the embedding: use embed_tokens / wte)' : ''}`);

  const resolved: ResolvedLoraConfig = {
    r: cfg.r ?? 8,
    lora_alpha: cfg.lora_alpha ?? 8,
    lora_dropout: cfg.lora_dropout ?? 0,
    target_modules: savedTargets,
    exclude_modules: cfg.exclude_modules == null ? null : typeof cfg.exclude_modules === 'string' ? cfg.exclude_modules : [...cfg.exclude_modules],
    use_rslora: cfg.use_rslora ?? false,
    modules_to_save: toSave.length ? toSave : null,
    bias: 'none',
    task_type: taskType,
    fan_in_fan_out: chosen.some(([, m]) => m instanceof Conv1D),
  };
  return new LoraModel(model, resolved, chosen as [string, LoraTarget][], savePaths, opts.seed ?? 0);
}

/** A model with LoRA adapters attached; `model` is the same object, adapted in place. */
export class LoraModel<M extends Module = Module> {
  /** Module path -> its adapter. */
  readonly layers = new Map<string, LoraLinear>();
  /** Paths of the modules trained in full (modules_to_save). */
  readonly modulesToSave: readonly string[];
  private readonly savedFlags: [Tensor, boolean][];
  private live = true;

  /** Use applyLora(). */
  constructor(readonly model: M, readonly config: ResolvedLoraConfig, targets: [string, LoraTarget][], savePaths: string[], seed: number) {
    this.savedFlags = model.parameters().map((t) => [t, t.requiresGrad]);
    for (const t of model.parameters()) t.requiresGrad = false;
    const generator = new Generator(seed);
    try {
      for (const [path, m] of targets)
        this.layers.set(path, new LoraLinear(m, { r: config.r, alpha: config.lora_alpha, dropout: config.lora_dropout, rslora: config.use_rslora, generator }));
    } catch (e) {
      this.release(false);
      throw e;
    }
    this.modulesToSave = savePaths;
    const paths = new Map(model.namedModules());
    for (const p of savePaths) for (const t of paths.get(p)!.parameters()) if (t.dtype === 'f32') t.requiresGrad = true;
  }

  /** (name, tensor) of every parameter that trains: LoRA A/B and modules_to_save. */
  trainableParameters(): [string, Tensor][] {
    this.check('trainableParameters');
    return this.model.namedParameters().filter(([, t]) => t.requiresGrad);
  }

  /**
   * The tensors an adapter file holds, under PEFT's names: `base_model.model.<path>.lora_A.weight`
   * (r, in), `….lora_B.weight` (out, r), and `base_model.model.<path>.<param>` for modules_to_save.
   * The live parameters, not copies.
   */
  adapterStateDict(): Map<string, Tensor> {
    this.check('adapterStateDict');
    const out = new Map<string, Tensor>();
    for (const [path, l] of this.layers) {
      out.set(`${PEFT_PREFIX}${path}.lora_A.weight`, l.lora_A.weight);
      out.set(`${PEFT_PREFIX}${path}.lora_B.weight`, l.lora_B.weight);
    }
    const modules = new Map(this.model.namedModules());
    for (const p of this.modulesToSave) for (const [n, t] of modules.get(p)!.stateDict()) out.set(`${PEFT_PREFIX}${p}.${n}`, t);
    return out;
  }

  get enabled(): boolean {
    return [...this.layers.values()].every((l) => l.enabled);
  }

  /** Switches the LoRA paths off: the model computes the base model (e.g. DPO's reference). */
  disable(): void {
    this.check('disable');
    if (this.modulesToSave.length)
      throw new TemperError(`LoRA: cannot disable adapters with modules_to_save (${this.modulesToSave.join(', ')}): they are trained in place and temper keeps no original copy`);
    for (const l of this.layers.values()) l.enabled = false;
  }

  enable(): void {
    this.check('enable');
    for (const l of this.layers.values()) l.enabled = true;
  }

  /** Runs fn with the adapters off, switching them back on afterwards (also for a Promise). */
  withDisabled<T>(fn: () => T): T {
    this.disable();
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.enable();
      throw e;
    }
    if (result instanceof Promise) return result.finally(() => this.enable()) as T;
    this.enable();
    return result;
  }

  /** W += s·B@A for every layer (PEFT's merge_and_unload): returns the plain model; this LoraModel is spent. */
  merge(): M {
    this.check('merge');
    return this.release(true);
  }

  /** Removes the adapters without merging (PEFT's unload): returns the base model. */
  unload(): M {
    this.check('unload');
    return this.release(false);
  }

  private release(merge: boolean): M {
    for (const l of this.layers.values()) (merge ? l.merge() : l.detach());
    this.layers.clear();
    for (const [t, flag] of this.savedFlags) if (!t.disposed) t.requiresGrad = flag;
    this.live = false;
    return this.model;
  }

  private check(op: string): void {
    if (!this.live) throw new TemperError(`LoraModel.${op}: the adapters were merged or unloaded`);
  }
}
