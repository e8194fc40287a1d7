// task_arithmetic (Ilharco et al., arXiv 2212.04089): base + λ·Σ w_i δ_i, no sparsification,
// no consensus, normalize default false.
import { INT8_MASK, LAMBDA, WEIGHT, normalize, taskArithmetic } from './generalized.js';
import type { MergeMethod } from './types.js';

export const task_arithmetic: MergeMethod = {
  name: 'task_arithmetic',
  paper: 'Editing Models with Task Arithmetic (arXiv 2212.04089)',
  kind: 'task',
  globalParams: [normalize(false), LAMBDA, INT8_MASK],
  modelParams: [WEIGHT],
  merge: (inp) => taskArithmetic(inp, 'none', false),
};
