// Model Breadcrumbs (Davari & Belilovsky, arXiv 2312.06795): drop the top gamma fraction of
// |δ| (outliers) and the smallest so that density remains; optional TIES consensus.
import { DENSITY, INT8_MASK, LAMBDA, WEIGHT, normalize, taskArithmetic } from './generalized.js';
import type { MergeMethod, ParamSpec } from './types.js';

const GAMMA: ParamSpec = { name: 'gamma', type: 'number', range: { min: 0, max: 1, maxOpen: true }, default: 0.01, doc: 'fraction of largest |δ| dropped as outliers' };

export const breadcrumbs: MergeMethod = {
  name: 'breadcrumbs',
  paper: 'Model Breadcrumbs (arXiv 2312.06795)',
  kind: 'task',
  globalParams: [normalize(false), LAMBDA, INT8_MASK],
  modelParams: [WEIGHT, DENSITY, GAMMA],
  merge: (inp) => taskArithmetic(inp, 'breadcrumbs', false),
};

export const breadcrumbs_ties: MergeMethod = {
  ...breadcrumbs,
  name: 'breadcrumbs_ties',
  paper: 'Model Breadcrumbs (arXiv 2312.06795) + TIES sign consensus',
  merge: (inp) => taskArithmetic(inp, 'breadcrumbs', true),
};
