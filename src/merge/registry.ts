// The merge methods temper implements, as an explicit list (one small file each under
// methods/). Not: della, nuslerp, model_stock, passthrough, slices.
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
  if (!m) throw new TemperError(`merge_method '${name}' is not supported (available: ${MERGE_METHODS.map((x) => x.name).join(', ')})`);
  return m;
}
