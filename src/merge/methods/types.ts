// The contract every merge method implements: declared parameters (with defaults) and one
// pure per-tensor function over host float32 arrays. Merging is per tensor, so memory stays
// at (models + 2) x one tensor. Not I/O: src/merge/merge.ts reads and writes checkpoints.
import type { Scalar } from '../config.js';

export interface ParamSpec {
  name: string;
  /** The value's type; every value given (scalars, layer-gradient entries, filter values) is checked up front. */
  type: 'number' | 'boolean' | 'string';
  /** Numbers: the allowed range, as [low, high] with each end open or closed ("(0, 1]"). */
  range?: { min?: number; max?: number; minOpen?: boolean; maxOpen?: boolean };
  /** Strings: the allowed values. */
  choices?: readonly string[];
  /** Default value; absent with `required` = the YAML must set it. */
  default?: Scalar;
  required?: boolean;
  doc: string;
}

/** "(0, 1]"-style text of a range. */
export function rangeText(r: NonNullable<ParamSpec['range']>): string {
  return `${r.minOpen ? '(' : '['}${r.min ?? '-inf'}, ${r.max ?? 'inf'}${r.maxOpen ? ')' : ']'}`;
}

/** Why `v` is not a valid value of `spec`, or null when it is. */
export function paramProblem(spec: ParamSpec, v: Scalar): string | null {
  if (spec.type === 'boolean') return typeof v === 'boolean' ? null : `must be true or false (got ${JSON.stringify(v)})`;
  if (spec.type === 'string') {
    if (typeof v !== 'string') return `must be a string (got ${JSON.stringify(v)})`;
    return spec.choices && !spec.choices.includes(v) ? `must be one of ${spec.choices.join(', ')} (got ${JSON.stringify(v)})` : null;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) return `must be a finite number (got ${JSON.stringify(v)})`;
  const r = spec.range;
  if (!r) return null;
  const low = r.min === undefined || (r.minOpen ? v > r.min : v >= r.min);
  const high = r.max === undefined || (r.maxOpen ? v < r.max : v <= r.max);
  return low && high ? null : `must be in ${rangeText(r)} (got ${v})`;
}

/** One tensor's inputs, already read as float32 and shape-rectified. */
export interface TensorInputs {
  /** Tensor name, e.g. model.layers.0.mlp.up_proj.weight */
  name: string;
  /** The base model's tensor (null for methods without a base). */
  base: Float32Array | null;
  /** The other models' tensors, in YAML order (the base excluded for task methods and slerp). */
  models: Float32Array[];
  /** Per-model parameters resolved for this tensor (model > global > default), parallel to `models`. */
  params: Record<string, Scalar>[];
  /** Global parameters resolved for this tensor (global > default). */
  global: Record<string, Scalar>;
  /**
   * n seeded uniforms in [0, 1) for model i, drawn natively (counter-based): the same seed,
   * tensor and model give the same values, whatever the processing order.
   */
  uniforms: (modelIndex: number, n: number) => Float32Array;
}

export interface MergeMethod {
  name: string;
  /** The paper (or code) the method implements. */
  paper: string;
  /** 'none': no base (linear); 'task': task vectors against base_model; 'slerp': base + exactly one other. */
  kind: 'none' | 'task' | 'slerp';
  /** Read from the top-level `parameters:` only. */
  globalParams: ParamSpec[];
  /** Read from each model's `parameters:`, falling back to the top-level ones. */
  modelParams: ParamSpec[];
  merge(inp: TensorInputs): Float32Array;
}

export const num = (v: Scalar | undefined, what: string): number => {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new Error(`${what}: expected a number, got ${JSON.stringify(v)}`);
};
export const bool = (v: Scalar | undefined): boolean => v === true || v === 1 || v === 'true';
