// DARE (Yu et al., arXiv 2311.03099): drop each task-vector entry with probability 1−density
// (seeded per tensor and model), rescale the rest by exactly 1/density as the paper does
// (`rescale_mode: l1` for mergekit's L1-norm matching), then linear or TIES-style consensus.
import { DENSITY, INT8_MASK, LAMBDA, WEIGHT, normalize, taskArithmetic } from './generalized.js';
import type { MergeMethod, ParamSpec } from './types.js';

const RESCALE: ParamSpec[] = [
  { name: 'rescale', type: 'boolean', default: true, doc: 'rescale kept entries (false = DropOnly)' },
  { name: 'rescale_mode', type: 'string', choices: ['exact', 'l1'], default: 'exact', doc: "'exact' = 1/density (paper), 'l1' = ‖δ‖₁/‖kept‖₁ (mergekit)" },
];

export const dare_linear: MergeMethod = {
  name: 'dare_linear',
  paper: 'Language Models are Super Mario / DARE (arXiv 2311.03099)',
  kind: 'task',
  globalParams: [normalize(false), LAMBDA, INT8_MASK, ...RESCALE],
  modelParams: [WEIGHT, DENSITY],
  merge: (inp) => taskArithmetic(inp, 'random', false),
};

export const dare_ties: MergeMethod = {
  name: 'dare_ties',
  paper: 'Language Models are Super Mario / DARE (arXiv 2311.03099) + TIES sign consensus',
  kind: 'task',
  globalParams: [normalize(false), LAMBDA, INT8_MASK, ...RESCALE],
  modelParams: [WEIGHT, DENSITY],
  merge: (inp) => taskArithmetic(inp, 'random', true),
};
