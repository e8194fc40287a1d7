// TIES (Yadav et al., arXiv 2306.01708), mergekit's variant: per-tensor magnitude top-k by
// density, sign consensus by Σ w·δ (≥0 → +1), disjoint mean (normalize default true).
import { DENSITY, INT8_MASK, LAMBDA, WEIGHT, normalize, taskArithmetic } from './generalized.js';
import type { MergeMethod } from './types.js';

export const ties: MergeMethod = {
  name: 'ties',
  paper: 'TIES-Merging (arXiv 2306.01708)',
  kind: 'task',
  globalParams: [normalize(true), LAMBDA, INT8_MASK],
  modelParams: [WEIGHT, DENSITY],
  merge: (inp) => taskArithmetic(inp, 'magnitude', true),
};
