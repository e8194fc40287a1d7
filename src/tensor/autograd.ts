// Reverse-mode autograd: ops record a GradNode per differentiable call; backward() walks
// the nodes in reverse topological order and applies one rule per primitive (grad_rules.ts).
// Nodes are reference counted by the tensors and nodes that point at them, so saved
// activations are freed as soon as nothing can reach them (dispose or scope end).
import { keep, scope, withGrad, isGradEnabled } from './scope.js';
import type { Tensor } from './tensor.js';
import { TemperError, fmtShape } from './errors.js';
import { GRAD_RULES } from './grad_rules.js';

/** Every differentiable primitive. Adding one without a rule in GRAD_RULES does not compile. */
export type Primitive =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'where' | 'clamp'
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'silu' | 'gelu' | 'gelu_tanh' | 'sigmoid' | 'tanh'
  | 'softplus' | 'relu' | 'square' | 'reciprocal'
  | 'sum' | 'mean' | 'max' | 'min' | 'logsumexp' | 'var'
  | 'matmul' | 'softmax' | 'log_softmax'
  | 'reshape' | 'permute' | 'slice' | 'cat' | 'expand'
  | 'index_select' | 'gather' | 'scatter_add' | 'cumsum' | 'sort_values' | 'dropout'
  | 'rms_norm' | 'layer_norm' | 'rotary' | 'attention' | 'cross_entropy' | 'linear_cross_entropy'
  | 'swiglu'
  | 'add_rms_norm'
  | 'recompute';

type Edge = { node: GradNode; leaf?: undefined } | { leaf: Tensor; node?: undefined } | null;

export interface GradNode {
  readonly prim: Primitive;
  /** Where each input's gradient goes: the node that made it, the leaf it is, or nowhere. */
  readonly edges: Edge[];
  readonly inputShapes: (readonly number[])[];
  /** Tensors the rule needs, held by the node (own handles on shared storage). */
  saved: Tensor[];
  readonly params: Readonly<Record<string, unknown>>;
  refs: number;
  released: boolean;
}

/**
 * What backward offers a rule besides its upstream gradient: prior(i) is the gradient already pending
 * for input i (the sum of what the input's other consumers have sent so far), or null (a leaf, nothing
 * yet, or a producer two edges of the node share). A rule whose gradient for input i already includes
 * prior(i) (a fused accumulate, as add_rms_norm's backward: d(sum) = g_sum + the norm's dx in one pass)
 * calls take(i), and backward stores that gradient in place of the pending one instead of adding the
 * two. The sum is the same, bitwise when the rule adds prior(i) last (IEEE addition commutes).
 */
export interface PendingGrads {
  prior(i: number): Tensor | null;
  take(i: number): void;
}

/** A gradient rule: upstream gradient -> one gradient per input (null where not needed). */
export type GradRule = (node: GradNode, g: Tensor, needs: boolean[], pending?: PendingGrads) => (Tensor | null)[];


let savingOff = 0;
/**
 * Runs a synchronous fn whose recorded nodes save no tensors: requiresGrad still flows to
 * the outputs, but nothing inside can be differentiated (recompute's forward pass). @internal
 */
export function withoutSaving<T>(fn: () => T): T {
  savingOff++;
  try {
    return fn();
  } finally {
    savingOff--;
  }
}

/**
 * Records `out = prim(inputs)` on the tape when grad mode is on and an input requires grad
 * (or `always`: recompute, whose fn may use parameters that do).
 * `saved` tensors get their own handles, owned by the node.
 */
export function record(
  prim: Primitive,
  inputs: (Tensor | null)[],
  out: Tensor,
  saved: Tensor[] = [],
  params: Record<string, unknown> = {},
  always = false,
): void {
  if (!isGradEnabled() || (!always && !inputs.some((t) => t?.requiresGrad))) return;
  const edges: Edge[] = inputs.map((t) => {
    if (!t || !t.requiresGrad) return null;
    if (t.gradFn) {
      t.gradFn.refs++;
      return { node: t.gradFn };
    }
    return { leaf: t };
  });
  const node: GradNode = {
    prim,
    edges,
    inputShapes: inputs.map((t) => (t ? t.shape : [])),
    saved: savingOff > 0 ? [] : saved.map((t) => keep(t.detach())),
    params,
    refs: 1,
    released: savingOff > 0,
  };
  out.gradFn = node;
  out.requiresGrad = true;
}

function releaseSaved(node: GradNode): void {
  for (const t of node.saved) t.dispose();
  node.saved = [];
}

/** Drops one reference; frees the node's saved tensors and its inputs' references at zero. */
export function releaseNodeRef(start: GradNode): void {
  const stack = [start];
  while (stack.length) {
    const node = stack.pop()!;
    if (--node.refs > 0) continue;
    releaseSaved(node);
    node.released = true;
    for (const e of node.edges) if (e?.node) stack.push(e.node);
  }
}

function topoOrder(root: GradNode): GradNode[] {
  const order: GradNode[] = [];
  const seen = new Set<GradNode>([root]);
  const stack: [GradNode, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [node, i] = top;
    if (i < node.edges.length) {
      top[1]++;
      const next = node.edges[i]?.node;
      if (next && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(node);
      stack.pop();
    }
  }
  return order.reverse(); // root first
}

function accumulateLeaf(leaf: Tensor, g: Tensor, add: (a: Tensor, b: Tensor) => Tensor, clone: (t: Tensor) => Tensor): void {
  leaf.assertLive('backward (gradient for a leaf)');
  let next: Tensor;
  if (leaf.grad) {
    next = add(leaf.grad, g);
    leaf.grad.dispose();
  } else {
    // Reuse the rule's buffer when nothing else holds it; otherwise copy so that in-place
    // updates of one grad (clipping) never touch another tensor.
    next = g.storage.holders === 1 ? g.detach() : clone(g);
  }
  leaf.grad = keep(next);
}

export interface BackwardOptions {
  /** Keep saved tensors so backward can run again through the same graph. */
  retainGraph?: boolean;
}

/**
 * Accumulates d(root)/d(leaf) into `.grad` of every leaf that requires grad.
 * `grad` defaults to 1 for a one-element root.
 */
export function backward(
  root: Tensor,
  grad: Tensor | undefined,
  opts: BackwardOptions,
  helpers: { ones: (shape: readonly number[]) => Tensor; add: (a: Tensor, b: Tensor) => Tensor; clone: (t: Tensor) => Tensor },
): void {
  root.assertLive('backward');
  if (!root.requiresGrad) throw new TemperError('backward: tensor does not require grad (no input of it had requiresGrad = true)');
  if (!grad && root.numel !== 1)
    throw new TemperError(`backward: output has shape ${fmtShape(root.shape)}; pass a gradient of that shape for a non-scalar output`);
  if (grad && grad.shape.join() !== root.shape.join())
    throw new TemperError(`backward: gradient shape ${fmtShape(grad.shape)} does not match output shape ${fmtShape(root.shape)}`);
  // The table is read here, not at import: grad_rules.ts imports the ops, which import this file.
  const table = GRAD_RULES;
  withGrad(false, () =>
    scope(() => {
      const g0 = grad ? grad.detach() : helpers.ones(root.shape);
      if (!root.gradFn) {
        accumulateLeaf(root, g0, helpers.add, helpers.clone);
        return;
      }
      const pending = new Map<GradNode, Tensor>([[root.gradFn, g0]]);
      for (const node of topoOrder(root.gradFn)) {
        const g = pending.get(node);
        if (!g) continue;
        pending.delete(node);
        if (node.released)
          throw new TemperError(`backward: the graph through '${node.prim}' was already freed; pass { retainGraph: true } to the first backward`);
        const needs = node.edges.map((e) => e !== null);
        const taken = new Set<number>();
        const offer: PendingGrads = {
          prior: (i) => {
            const e = node.edges[i];
            if (!e?.node || node.edges.some((f, j) => j !== i && f?.node === e.node)) return null;
            return pending.get(e.node) ?? null;
          },
          take: (i) => void (offer.prior(i) && taken.add(i)),
        };
        const inGrads = scope(() => table[node.prim](node, g, needs, offer));
        for (let i = 0; i < node.edges.length; i++) {
          const e = node.edges[i];
          const gi = inGrads[i];
          if (!e || !gi) continue;
          if (gi.shape.join() !== node.inputShapes[i]!.join())
            throw new TemperError(
              `internal: gradient of '${node.prim}' input ${i} has shape ${fmtShape(gi.shape)}, expected ${fmtShape(node.inputShapes[i]!)}`,
            );
          if (e.leaf) accumulateLeaf(e.leaf, gi, helpers.add, helpers.clone);
          else {
            const prev = pending.get(e.node);
            pending.set(e.node, prev && !taken.has(i) ? helpers.add(prev, gi) : gi.detach());
            prev?.dispose();
          }
        }
        for (const t of new Set(inGrads)) t?.dispose();
        g.dispose();
        if (!opts.retainGraph) {
          releaseSaved(node);
          node.released = true;
        }
      }
    }),
  );
}
