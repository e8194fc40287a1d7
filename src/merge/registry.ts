// The merge methods that combine tensors, as an explicit list (one small file each under
// methods/). passthrough with slices copies layers and combines nothing: merge.ts does it.
// Not: della, nuslerp, model_stock.
import { TemperError } from '../tensor/index.js';
import { breadcrumbs, breadcrumbs_ties } from './methods/breadcrumbs.js';
import { dare_linear, dare_ties } from './methods/dare.js';
import { linear } from './methods/linear.js';
import { slerp } from './methods/slerp.js';
import { task_arithmetic } from './methods/task_arithmetic.js';
import { ties } from './methods/ties.js';
import type { MergeMethod } from './methods/types.js';

export const MERGE_METHODS: readonly MergeMethod[] = [linear, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, slerp];

export function getMergeMethod(name: string): MergeMethod {
  const m = MERGE_METHODS.find((x) => x.name === name);
  if (!m && name === 'passthrough') throw new TemperError(`merge_method passthrough needs 'slices' (layer stacking: slices: [{sources: [{model, layer_range: [from, to]}]}])`);
  if (!m) throw new TemperError(`merge_method '${name}' is not supported (available: ${MERGE_METHODS.map((x) => x.name).join(', ')})`);
  return m;
}
