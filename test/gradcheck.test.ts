// Finite-difference gradient checks: one entry per differentiable primitive; the mapped
// type makes a primitive without a check a compile error.
import { test } from 'node:test';
import * as T from '../src/index.js';
import type { Primitive, Tensor } from '../src/index.js';
import { gradcheck, type GradInput } from './helpers.js';

type Check = { f: (xs: Tensor[]) => Tensor; inputs: GradInput[]; h?: number; rtol?: number; atol?: number }[];
const pos = (shape: number[]): GradInput => ({ shape, lo: 0.5, hi: 2 });
const any = (shape: number[]): GradInput => ({ shape });
// Distinct values at least 0.1 away from the kinks of abs/relu (0), clamp (+-0.5) and each other.
const KINKFREE = [-0.93, -0.71, -0.34, -0.22, 0.17, 0.31, 0.68, 0.84, -0.61, 0.26, -0.13, 0.77];
const spread = (shape: number[], seed = 0): GradInput => {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = KINKFREE[(i * 5 + seed * 7) % KINKFREE.length]! * (1 + Math.floor(i / KINKFREE.length) * 0.013);
  return { shape, data: d };
};

const CHECKS: { [P in Primitive]: Check } = {
  add: [{ f: ([a, b]) => T.add(a!, b!), inputs: [any([3, 1, 5]), any([4, 1])] }],
  sub: [{ f: ([a, b]) => T.sub(a!, b!), inputs: [any([2, 3]), any([3])] }],
  mul: [{ f: ([a, b]) => T.mul(a!, b!), inputs: [any([3, 1, 5]), any([4, 1])] }, { f: ([a]) => T.mul(a!, 3), inputs: [any([4])] }],
  div: [{ f: ([a, b]) => T.div(a!, b!), inputs: [any([3, 4]), pos([4])] }],
  pow: [{ f: ([a, b]) => T.pow(a!, b!), inputs: [pos([2, 3]), any([3])] }],
  maximum: [{ f: ([a, b]) => T.maximum(a!, b!), inputs: [spread([3, 4], 1), spread([3, 4], 2)] }],
  minimum: [{ f: ([a, b]) => T.minimum(a!, b!), inputs: [spread([3, 4], 1), spread([3, 4], 2)] }],
  where: [{ f: ([a, b]) => T.scope(() => { const c = T.gt(T.arange(0, 6, 1, { dtype: 'f32' }).reshape([2, 3]), 2); return T.where(c, a!, b!); }), inputs: [any([2, 3]), any([3])] }],
  clamp: [{ f: ([a]) => T.clamp(a!, -0.5, 0.5), inputs: [spread([10])] }],
  neg: [{ f: ([a]) => T.neg(a!), inputs: [any([5])] }],
  exp: [{ f: ([a]) => T.exp(a!), inputs: [any([2, 5])] }],
  log: [{ f: ([a]) => T.log(a!), inputs: [pos([7])] }],
  sqrt: [{ f: ([a]) => T.sqrt(a!), inputs: [pos([7])] }],
  rsqrt: [{ f: ([a]) => T.rsqrt(a!), inputs: [pos([7])] }],
  abs: [{ f: ([a]) => T.abs(a!), inputs: [spread([9])] }],
  silu: [{ f: ([a]) => T.silu(a!), inputs: [{ shape: [11], lo: -4, hi: 4 }] }],
  gelu: [{ f: ([a]) => T.gelu(a!), inputs: [{ shape: [11], lo: -4, hi: 4 }] }],
  gelu_tanh: [{ f: ([a]) => T.gelu(a!, 'tanh'), inputs: [{ shape: [11], lo: -4, hi: 4 }] }],
  sigmoid: [{ f: ([a]) => T.sigmoid(a!), inputs: [{ shape: [11], lo: -4, hi: 4 }] }],
  tanh: [{ f: ([a]) => T.tanh(a!), inputs: [{ shape: [11], lo: -2, hi: 2 }] }],
  softplus: [{ f: ([a]) => T.softplus(a!), inputs: [{ shape: [11], lo: -4, hi: 4 }] }],
  relu: [{ f: ([a]) => T.relu(a!), inputs: [spread([9])] }],
  square: [{ f: ([a]) => T.square(a!), inputs: [any([9])] }],
  reciprocal: [{ f: ([a]) => T.reciprocal(a!), inputs: [pos([9])] }],
  sum: [{ f: ([a]) => T.sum(a!, [0, 2]), inputs: [any([3, 4, 5])] }, { f: ([a]) => T.sum(a!), inputs: [any([3, 4])] }],
  mean: [{ f: ([a]) => T.mean(a!, 1, true), inputs: [any([3, 4, 5])] }],
  max: [{ f: ([a]) => T.max(a!, [1]), inputs: [spread([3, 4, 5])] }],
  min: [{ f: ([a]) => T.min(a!, [0, 2], true), inputs: [spread([3, 4, 5])] }],
  logsumexp: [{ f: ([a]) => T.logsumexp(a!, -1), inputs: [any([3, 7])] }],
  var: [{ f: ([a]) => T.variance(a!, [0, 2]), inputs: [any([3, 4, 5])] }],
  matmul: [
    { f: ([a, b]) => T.matmul(a!, b!), inputs: [any([5, 7]), any([7, 3])] },
    { f: ([a, b]) => T.matmul(a!, b!, { transA: true, transB: true }), inputs: [any([2, 7, 5]), any([2, 3, 7])] },
    { f: ([a, b]) => T.matmul(a!, b!), inputs: [any([2, 1, 5, 4]), any([3, 4, 2])] },
    { f: ([a, b]) => T.linear(a!, b!), inputs: [any([2, 3, 4]), any([5, 4])] },
    { f: ([a, b]) => T.matmul(a!, b!, { transA: true }), inputs: [any([3, 4, 5]), any([4, 6])] },
  ],
  softmax: [{ f: ([a]) => T.softmax(a!, -1), inputs: [any([3, 7])] }, { f: ([a]) => T.softmax(a!, 0), inputs: [any([4, 3])] }],
  log_softmax: [{ f: ([a]) => T.logSoftmax(a!), inputs: [any([3, 7])] }],
  reshape: [{ f: ([a]) => T.reshape(a!, [6, -1]), inputs: [any([2, 3, 4])] }],
  permute: [{ f: ([a]) => T.permute(a!, [2, 0, 1]), inputs: [any([2, 3, 4])] }],
  slice: [{ f: ([a]) => T.slice(a!, 1, 1, 3), inputs: [any([2, 4, 3])] }, { f: ([a]) => T.slice(a!, 0, -2), inputs: [any([4, 3])] }],
  cat: [{ f: ([a, b]) => T.cat([a!, b!], 1), inputs: [any([2, 3]), any([2, 2])] }],
  expand: [{ f: ([a]) => T.expand(a!, [3, 2, 4]), inputs: [any([2, 1])] }],
  index_select: [{ f: ([a]) => T.scope(() => T.indexSelect(a!, 0, T.tensor([2, 0, 2, 1], { dtype: 'i32' }))), inputs: [any([3, 4])] }],
  gather: [{ f: ([a]) => T.scope(() => T.gather(a!, 1, T.tensor([[0, 2], [1, 1], [3, 0]], { dtype: 'i32' }))), inputs: [any([3, 4])] }],
  scatter_add: [{ f: ([a, s]) => T.scope(() => T.scatterAdd(a!, 1, T.tensor([[0, 2], [1, 1], [3, 0]], { dtype: 'i32' }), s!)), inputs: [any([3, 4]), any([3, 2])] }],
  cumsum: [{ f: ([a]) => T.cumsum(a!, 1), inputs: [any([2, 5, 3])] }],
  sort_values: [{ f: ([a]) => T.topk(a!, 3).values, inputs: [spread([2, 6])] }, { f: ([a]) => T.sort(a!).values, inputs: [spread([2, 6], 3)] }],
  dropout: [{ f: ([a]) => T.dropout(a!, 0.3, { generator: new T.Generator(5) }), inputs: [any([4, 8])] }],
  recompute: [{
    f: ([a, b]) => T.recompute((x: Tensor, w: Tensor) => T.scope(() => T.mul(T.tanh(T.matmul(x, w)), T.sum(x))), [a!, b!]),
    inputs: [any([3, 4]), any([4, 5])],
  }],
  swiglu: [{ f: ([a, b]) => T.swiglu(a!, b!), inputs: [{ shape: [3, 7], lo: -4, hi: 4 }, any([3, 7])] }],
  rms_norm: [{ f: ([x, w]) => T.rmsNorm(x!, w!, 1e-6), inputs: [any([3, 7]), any([7])] }],
  // Both outputs feed the result. With the sum's other consumer first (processed before the norm's
  // node), backward folds its gradient into the norm's dx; with the norm first, it adds them afterwards.
  add_rms_norm: [
    { f: ([x, r, w]) => T.scope(() => { const [s, y] = T.addRmsNorm(x!, r!, w!, 1e-6); return T.add(y, T.square(s)); }), inputs: [any([3, 7]), any([3, 7]), any([7])] },
    { f: ([x, r, w]) => T.scope(() => { const [s, y] = T.addRmsNorm(x!, r!, w!, 1e-6); return T.add(T.tanh(s), y); }), inputs: [any([2, 2, 5]), any([2, 2, 5]), any([5])] },
    { f: ([x, r, w]) => T.addRmsNorm(x!, r!, w!, 1e-6)[1], inputs: [any([4, 6]), any([4, 6]), any([6])] },
  ],
  layer_norm: [
    { f: ([x, w, b]) => T.layerNorm(x!, w!, b!, 1e-5), inputs: [any([3, 7]), any([7]), any([7])] },
    { f: ([x, w]) => T.layerNorm(x!, w!, null, 1e-5), inputs: [any([2, 5]), any([5])] },
  ],
  rotary: [{
    f: ([x]) => T.scope(() => T.rotary(x!, T.tensor([[3, 4, 5], [0, 1, 9]], { dtype: 'i32' }), T.tensor([1, 0.1, 0.01]), 1)),
    inputs: [any([2, 3, 2, 6])],
  }],
  attention: [
    { f: ([q, k, v]) => T.attention(q!, k!, v!), inputs: [any([1, 5, 4, 3]), any([1, 5, 2, 3]), any([1, 5, 2, 3])] },
    {
      f: ([q, k, v]) => T.scope(() => T.attention(q!, k!, v!, {
        keyMask: T.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], { dtype: 'i32' }),
        docIds: T.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 2, 2]], { dtype: 'i32' }),
      })),
      inputs: [any([2, 6, 3, 4]), any([2, 6, 1, 4]), any([2, 6, 1, 4])],
    },
    { f: ([q, k, v]) => T.attention(q!, k!, v!, { causal: false }), inputs: [any([1, 3, 2, 4]), any([1, 6, 2, 4]), any([1, 6, 2, 4])] },
  ],
  cross_entropy: [
    { f: ([x]) => T.scope(() => T.crossEntropy(x!, T.tensor([1, -100, 4], { dtype: 'i32' }), { labelSmoothing: 0.1 })), inputs: [{ shape: [3, 6], lo: -3, hi: 3 }] },
    { f: ([x]) => T.scope(() => T.crossEntropy(x!, T.tensor([[0, 2], [5, 1]], { dtype: 'i32' }), { reduction: 'none' })), inputs: [{ shape: [2, 2, 6], lo: -3, hi: 3 }] },
  ],
  linear_cross_entropy: [
    { f: ([h, w]) => T.scope(() => T.linearCrossEntropy(h!, w!, T.tensor([1, -100, 4, 6, 0], { dtype: 'i32' }), { labelSmoothing: 0.1, chunkRows: 2 })), inputs: [{ shape: [5, 4], lo: -2, hi: 2 }, { shape: [7, 4], lo: -2, hi: 2 }] },
    { f: ([h, w]) => T.scope(() => T.linearCrossEntropy(h!, w!, T.tensor([[0, 2], [5, 1]], { dtype: 'i32' }), { reduction: 'none', chunkRows: 3 })), inputs: [{ shape: [2, 2, 4], lo: -2, hi: 2 }, { shape: [6, 4], lo: -2, hi: 2 }] },
    { f: ([h, w]) => T.scope(() => T.tokenLogprobs(h!, w!, T.tensor([3, -100, 2], { dtype: 'i32' }))), inputs: [{ shape: [3, 4], lo: -2, hi: 2 }, { shape: [5, 4], lo: -2, hi: 2 }] },
  ],
};

for (const [prim, checks] of Object.entries(CHECKS)) {
  test(`gradcheck ${prim}`, () => {
    checks.forEach((c, i) => gradcheck(`${prim}#${i}`, c.f, c.inputs, { h: c.h, rtol: c.rtol, atol: c.atol, seed: i + 1 }));
  });
}
