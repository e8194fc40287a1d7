// Activation recomputation (what torch calls activation checkpointing,
// torch.utils.checkpoint, non-reentrant): run a block without keeping its activations, and
// recompute them during backward. Named `recompute` here because "checkpoint" in temper means
// a training checkpoint folder (src/train/checkpoint.ts). The forward pass records one
// 'recompute' node holding only the block's inputs; its rule re-runs the block with
// grad on and backpropagates through the recomputed graph, so parameters the block uses
// get their gradients exactly as without checkpointing. Random draws (dropout) replay.
import { backward, record, withoutSaving, type GradRule } from './autograd.js';
import { TemperError } from './errors.js';
import { autocast, autocastDtype, isGradEnabled, scope, withGrad } from './scope.js';
import { Tensor } from './tensor.js';
import { ones, rawCopy, setDrawObserver, type Generator } from './ops/creation.js';
import { add } from './ops/elementwise.js';

type GenState = ReturnType<Generator['getState']>;

/**
 * `fn(...inputs)` without saving the activations inside fn: backward recomputes them.
 * Tensors fn needs from outside (positions, masks) go in `inputs` too, since they may be
 * freed before backward; parameters fn reads from modules (which outlive backward) need
 * not. fn must be deterministic given its inputs and the random generators, which are
 * rewound for the recomputation and put back afterwards; the recomputation also runs
 * under the forward's autocast setting. With grad off this is just `fn(...inputs)`.
 * @example h = recompute((x) => layer.forward(x), [h]);
 */
export function recompute<A extends (Tensor | null)[]>(fn: (...inputs: A) => Tensor, inputs: [...A]): Tensor {
  if (!isGradEnabled()) return fn(...(inputs as A));
  for (const t of inputs) t?.assertLive('recompute');

  // Forward: requiresGrad still propagates (fn may use parameters that require grad even
  // when no input does), but no node keeps a tensor.
  const states = new Map<Generator, GenState>();
  const prevObserver: ((g: Generator) => void) | null = setDrawObserver((g) => {
    if (!states.has(g)) states.set(g, g.getState());
    prevObserver?.(g);
  });
  let out: Tensor;
  try {
    out = withoutSaving(() => scope(() => fn(...(inputs as A))));
  } finally {
    setDrawObserver(prevObserver);
  }
  if (!(out instanceof Tensor)) throw new TemperError('recompute: fn must return one Tensor (synchronously)');
  if (!out.requiresGrad) return out;
  const y = out.detach();
  if (!inputs.includes(out)) out.dispose(); // frees the no-save graph of fn

  const slots: number[] = [];
  const saved: Tensor[] = [];
  for (const t of inputs) {
    slots.push(t ? saved.length : -1);
    if (t) saved.push(t);
  }
  const cast = autocastDtype();
  const rule: GradRule = (node, g, needs) => {
    const resume: [Generator, GenState][] = [];
    for (const [gen, st] of states) {
      resume.push([gen, gen.getState()]);
      gen.setState(st);
    }
    try {
      return autocast(cast, () =>
        withGrad(true, () =>
          scope(() => {
            const xs = slots.map((k, i) => {
              if (k < 0) return null;
              const x = node.saved[k]!.detach();
              if (needs[i]) x.requiresGrad = true;
              return x;
            });
            const z = fn(...(xs as A));
            if (!(z instanceof Tensor) || z.shape.join() !== y.shape.join())
              throw new TemperError('recompute: the recomputation returned a different result (is fn deterministic?)');
            if (!z.requiresGrad) return xs.map(() => null);
            backward(z, g, {}, { ones: (s) => ones(s, { device: z.device }), add, clone: rawCopy });
            return xs.map((x, i) => {
              if (!x || !needs[i] || !x.grad) return null;
              const gx = x.grad; // owned by no scope: backward() disposes it after use
              x.grad = null;
              return gx;
            });
          }),
        ),
      );
    } finally {
      for (const [gen, st] of resume) gen.setState(st);
    }
  };
  record('recompute', inputs, y, saved, { rule }, true);
  return y;
}
