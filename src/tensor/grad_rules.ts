// One backward rule per primitive. The mapped type makes a primitive without a rule a
// compile error. Rules run with recording off and return one gradient per input.
import type { GradNode, GradRule, Primitive } from './autograd.js';
import { kernelsFor } from './backend.js';
import { Tensor, numelOf } from './tensor.js';
import { zeros, toDType } from './ops/creation.js';
import { add, div, eq, exp, ge, gt, le, lt, log, mul, neg, pow, sub, unaryBackward, where, type UnaryName } from './ops/elementwise.js';
import { gemm, matmul as plainMatmul, type MatmulOptions } from './ops/matmul.js';
import { expand, permute, reshape, slice, sliceBackward } from './ops/shape.js';
import { keepdimShape, mean, sum, sumTo } from './ops/reduce.js';
import { cumsum } from './ops/nn.js';
import { gather, indexAdd, scatterAddInto } from './ops/indexing.js';
import { addRmsNormBackward, crossEntropyBackward, rotaryInverse } from './ops/fused.js';
import { linearCrossEntropyBackward } from './ops/linear_cross_entropy.js';
import { swigluBackward } from './ops/swiglu.js';

const p = <T>(n: GradNode, k: string) => n.params[k] as T;
const s = (n: GradNode, i: number) => n.saved[i]!;
const shape = (n: GradNode, i: number) => n.inputShapes[i]!;

const unaryRule = (name: UnaryName): GradRule => (n, g) => [unaryBackward(name, s(n, 0), g)];

/** g broadcast back over the reduced axes: (kept shape) -> input shape. */
function expandReduced(n: GradNode, g: Tensor): Tensor {
  const kept = keepdimShape(shape(n, 0), p<number[]>(n, 'axes'));
  const gk = reshape(g, kept);
  return expand(gk, shape(n, 0));
}

function asF32(b: Tensor): Tensor {
  return toDType(b, 'f32');
}

function extremumRule(n: GradNode, g: Tensor): (Tensor | null)[] {
  // amax semantics: the gradient is shared evenly among tied maxima.
  const axes = p<number[]>(n, 'axes');
  const kept = keepdimShape(shape(n, 0), axes);
  const mask = asF32(eq(s(n, 0), reshape(s(n, 1), kept)));
  const count = sum(mask, axes, true);
  return [mul(div(mask, count), reshape(g, kept))];
}

function pairwiseExtremum(n: GradNode, g: Tensor, isMax: boolean): (Tensor | null)[] {
  const [a, b] = [s(n, 0), s(n, 1)];
  const wins = asF32(isMax ? gt(a, b) : lt(a, b));
  const ties = mul(asF32(eq(a, b)), 0.5);
  const wa = add(wins, ties);
  const wb = sub(1, wa);
  return [sumTo(mul(g, wa), shape(n, 0)), sumTo(mul(g, wb), shape(n, 1))];
}

function matmulRule(n: GradNode, gIn: Tensor, needs: boolean[]): (Tensor | null)[] {
  const [a, b] = [s(n, 0), s(n, 1)];
  const ta = p<boolean>(n, 'transA'), tb = p<boolean>(n, 'transB');
  // Autocast saved bf16 operands: the gradient rounds to bf16 too and the products come back f32.
  const mixed = p<boolean | undefined>(n, 'mixed') === true;
  const g = mixed ? toDType(gIn, 'bf16') : gIn;
  const matmul = mixed ? (x: Tensor, y: Tensor, o: MatmulOptions) => gemm(x, y, o, 'f32') : plainMatmul;
  let da: Tensor | null = null, db: Tensor | null = null;
  if (needs[0]) {
    const full = ta ? matmul(b, g, { transA: tb, transB: true }) : matmul(g, b, { transB: !tb });
    da = sumTo(full, a.shape);
  }
  if (needs[1]) {
    if (b.ndim === 2 && a.ndim > 2 && !ta) {
      // Shared weight: fold the batch into rows so dW is one GEMM, not a batch of them.
      const K = a.shape[a.ndim - 1]!, N = g.shape[g.ndim - 1]!;
      const a2 = reshape(a, [-1, K]), g2 = reshape(g, [-1, N]);
      db = tb ? matmul(g2, a2, { transA: true }) : matmul(a2, g2, { transA: true });
    } else {
      const full = tb ? matmul(g, a, { transA: true, transB: ta }) : matmul(a, g, { transA: !ta });
      db = sumTo(full, b.shape);
    }
  }
  if (g !== gIn) g.dispose();
  return [da, db];
}

function softmaxRule(log: boolean): GradRule {
  return (n, g) => {
    const y = s(n, 0);
    const C = y.shape[y.ndim - 1] ?? 1;
    const dx = Tensor.empty(y.shape, 'f32', y.device);
    kernelsFor(y.device).softmaxBackward(y.handle, y.byteOffset, g.handle, g.byteOffset, dx.handle, 0, y.numel / Math.max(C, 1), C, log ? 1 : 0);
    return [dx];
  };
}

function normBackward(n: GradNode, g: Tensor, layer: boolean): (Tensor | null)[] {
  const x = s(n, 0), w = s(n, 1);
  const C = w.numel, N = x.numel / C;
  const dx = Tensor.empty(x.shape, 'f32', x.device);
  const dw = Tensor.empty(w.shape, 'f32', x.device);
  const k = kernelsFor(x.device);
  if (!layer) {
    const rstd = s(n, 2);
    k.rmsNormBackward(x.handle, x.byteOffset, w.handle, w.byteOffset, rstd.handle, rstd.byteOffset, g.handle, g.byteOffset, dx.handle, 0, dw.handle, 0, N, C);
    return [dx, dw];
  }
  const mu = s(n, 2), rstd = s(n, 3);
  const hasBias = n.edges.length > 2 && n.inputShapes[2]!.length > 0;
  const db = hasBias ? Tensor.empty([C], 'f32', x.device) : null;
  k.layerNormBackward(x.handle, x.byteOffset, w.handle, w.byteOffset, mu.handle, mu.byteOffset, rstd.handle, rstd.byteOffset,
    g.handle, g.byteOffset, dx.handle, 0, dw.handle, 0, db?.handle ?? null, 0, N, C);
  return [dx, dw, db];
}

function attentionRule(n: GradNode, g: Tensor): (Tensor | null)[] {
  const [q, k, v, out, lse] = [0, 1, 2, 3, 4].map((i) => s(n, i)) as [Tensor, Tensor, Tensor, Tensor, Tensor];
  let i = 5;
  const km = p<boolean>(n, 'hasMask') ? s(n, i++) : null;
  const doc = p<boolean>(n, 'hasDoc') ? s(n, i++) : null;
  const [B, Tq, Hq, D] = q.shape as [number, number, number, number];
  const [, Tk, Hkv] = k.shape as [number, number, number];
  const dq = Tensor.empty(q.shape, 'f32', q.device);
  const dk = Tensor.empty(k.shape, 'f32', q.device);
  const dv = Tensor.empty(v.shape, 'f32', q.device);
  // Autocast saved bf16 q, k, v (f32 out): the gradient rounds to bf16 too, the results are f32.
  const mixed = p<boolean | undefined>(n, 'mixed') === true;
  const gk = mixed ? toDType(g, 'bf16') : g;
  const k_ = kernelsFor(q.device);
  (mixed ? k_.attentionBackwardMixed : k_.attentionBackward)(q.handle, q.byteOffset, k.handle, k.byteOffset, v.handle, v.byteOffset,
    out.handle, out.byteOffset, lse.handle, lse.byteOffset, gk.handle, gk.byteOffset, km?.handle ?? null, km?.byteOffset ?? 0,
    doc?.handle ?? null, doc?.byteOffset ?? 0, dq.handle, 0, dk.handle, 0, dv.handle, 0, B, Tq, Tk, Hq, Hkv, D, p<number>(n, 'scale'),
    p<boolean>(n, 'causal') ? 1 : 0);
  if (gk !== g) gk.dispose();
  return [dq, dk, dv];
}

export const GRAD_RULES: { [P in Primitive]: GradRule } = {
  add: (n, g) => [sumTo(g, shape(n, 0)), sumTo(g, shape(n, 1))],
  sub: (n, g) => [sumTo(g, shape(n, 0)), sumTo(neg(g), shape(n, 1))],
  mul: (n, g) => [sumTo(mul(g, s(n, 1)), shape(n, 0)), sumTo(mul(g, s(n, 0)), shape(n, 1))],
  div: (n, g, needs) => {
    const [a, b] = [s(n, 0), s(n, 1)];
    return [
      sumTo(div(g, b), shape(n, 0)),
      needs[1] ? sumTo(neg(div(mul(g, a), mul(b, b))), shape(n, 1)) : null,
    ];
  },
  pow: (n, g, needs) => {
    const [a, b, out] = [s(n, 0), s(n, 1), s(n, 2)];
    return [
      needs[0] ? sumTo(mul(mul(g, b), pow(a, sub(b, 1))), shape(n, 0)) : null,
      needs[1] ? sumTo(mul(mul(g, out), log(a)), shape(n, 1)) : null,
    ];
  },
  maximum: (n, g) => pairwiseExtremum(n, g, true),
  minimum: (n, g) => pairwiseExtremum(n, g, false),
  where: (n, g) => {
    const c = s(n, 0);
    return [null, sumTo(where(c, g, 0), shape(n, 1)), sumTo(where(c, 0, g), shape(n, 2))];
  },
  clamp: (n, g) => {
    const x = s(n, 0);
    return [where(ge(x, p<number>(n, 'lo')), where(le(x, p<number>(n, 'hi')), g, 0), 0)];
  },
  neg: (_n, g) => [neg(g)],
  exp: unaryRule('exp'),
  log: unaryRule('log'),
  sqrt: unaryRule('sqrt'),
  rsqrt: unaryRule('rsqrt'),
  abs: unaryRule('abs'),
  silu: unaryRule('silu'),
  gelu: unaryRule('gelu'),
  gelu_tanh: unaryRule('gelu_tanh'),
  sigmoid: unaryRule('sigmoid'),
  tanh: unaryRule('tanh'),
  softplus: unaryRule('softplus'),
  relu: unaryRule('relu'),
  square: unaryRule('square'),
  reciprocal: unaryRule('reciprocal'),
  sum: (n, g) => [expandReduced(n, g)],
  mean: (n, g) => {
    const R = numelOf(p<number[]>(n, 'axes').map((a) => shape(n, 0)[a]!));
    return [div(expandReduced(n, g), R)];
  },
  max: extremumRule,
  min: extremumRule,
  logsumexp: (n, g) => {
    const kept = keepdimShape(shape(n, 0), p<number[]>(n, 'axes'));
    // d lse / dx = softmax over the reduced axes = exp(x - lse).
    return [mul(exp(sub(s(n, 0), reshape(s(n, 1), kept))), expandReduced(n, g))];
  },
  var: (n, g) => {
    const x = s(n, 0);
    const axes = p<number[]>(n, 'axes');
    const R = numelOf(axes.map((a) => x.shape[a]!));
    const centered = sub(x, mean(x, axes, true));
    return [mul(expandReduced(n, g), mul(centered, 2 / (R - p<number>(n, 'correction'))))];
  },
  matmul: matmulRule,
  softmax: softmaxRule(false),
  log_softmax: softmaxRule(true),
  reshape: (n, g) => [reshape(g, shape(n, 0))],
  permute: (n, g) => {
    const dims = p<number[]>(n, 'dims');
    const inv = new Array<number>(dims.length);
    dims.forEach((d, i) => (inv[d] = i));
    return [permute(g, inv)];
  },
  slice: (n, g) => [sliceBackward(g, shape(n, 0), p<number>(n, 'dim'), p<number>(n, 'start'))],
  cat: (n, g, needs) => {
    const dim = p<number>(n, 'dim');
    let at = 0;
    return p<number[]>(n, 'sizes').map((size, i) => {
      const piece = needs[i] ? slice(g, dim, at, at + size) : null;
      at += size;
      return piece;
    });
  },
  expand: (n, g) => [sumTo(g, shape(n, 0))],
  index_select: (n, g) => [indexAdd(shape(n, 0), p<number>(n, 'dim'), s(n, 0), g), null],
  gather: (n, g) => {
    const out = zeros(shape(n, 0), { device: g.device });
    scatterAddInto(out, p<number>(n, 'dim'), s(n, 0), g, false);
    return [out, null];
  },
  scatter_add: (n, g, needs) => [g.detach(), null, needs[2] ? gather(g, p<number>(n, 'dim'), s(n, 0)) : null],
  cumsum: (n, g) => [cumsum(g, p<number>(n, 'dim'), !p<boolean>(n, 'reverse'))],
  sort_values: (n, g) => {
    const out = zeros(shape(n, 0), { device: g.device });
    scatterAddInto(out, out.ndim - 1, s(n, 0), g, false);
    return [out];
  },
  dropout: (n, g) => [mul(g, s(n, 0))],
  rms_norm: (n, g) => normBackward(n, g, false),
  // addRmsNorm's normed output; input 0 is its sum (an 'add' node). The gradient already pending for
  // the sum from its other consumers is folded into the norm's dx in the same pass when there is one.
  add_rms_norm: (n, g, _needs, pending) => {
    const gSum = pending?.prior(0) ?? null;
    const grads = addRmsNormBackward(s(n, 0), s(n, 1), s(n, 2), g, gSum);
    if (gSum) pending!.take(0);
    return grads;
  },
  layer_norm: (n, g) => normBackward(n, g, true),
  rotary: (n, g) => [rotaryInverse(g, s(n, 0), s(n, 1), p<number>(n, 'scaling')), null, null],
  attention: attentionRule,
  cross_entropy: (n, g) => [crossEntropyBackward(s(n, 0), s(n, 1), s(n, 2), g, p<number>(n, 'ignoreIndex'), p<number>(n, 'eps')), null],
  linear_cross_entropy: linearCrossEntropyBackward,
  swiglu: (n, g) => swigluBackward(s(n, 0), s(n, 1), g),
  // Activation recomputation: the node carries its own rule (re-run the block, then backward inside).
  recompute: (n, g, needs) => p<GradRule>(n, 'rule')(n, g, needs),
};

