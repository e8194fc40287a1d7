// The generalized task-arithmetic algorithm shared by task_arithmetic, ties, dare_* and
// breadcrumbs* (mergekit `generalized_task_arithmetic.py`), in six steps (docs/merging.md):
// δ_i = x_i − base; sparsify; ×weight; optional sign consensus; Σ, normalize; ×lambda; + base.
import { TemperError } from '../../tensor/index.js';
import { bernoulli, breadcrumbs, magnitude } from './sparsify.js';
import { bool, num, type ParamSpec, type TensorInputs } from './types.js';

export type Sparsify = 'none' | 'magnitude' | 'random' | 'breadcrumbs';

export const WEIGHT: ParamSpec = { name: 'weight', type: 'number', required: true, doc: 'scale of this model’s task vector' };
export const DENSITY: ParamSpec = { name: 'density', type: 'number', range: { min: 0, max: 1, minOpen: true }, default: 1, doc: 'fraction of task-vector entries kept' };
export const LAMBDA: ParamSpec = { name: 'lambda', type: 'number', default: 1, doc: 'scale of the merged task vector' };
export const INT8_MASK: ParamSpec = { name: 'int8_mask', type: 'boolean', default: false, doc: 'accepted for mergekit compatibility (masks are never materialized here)' };
export const normalize = (dflt: boolean): ParamSpec => ({ name: 'normalize', type: 'boolean', default: dflt, doc: 'divide by the sum of the (agreeing) weights' });

export function taskArithmetic(inp: TensorInputs, sparsify: Sparsify, consensus: boolean): Float32Array {
  const base = inp.base;
  if (!base) throw new TemperError(`tensor '${inp.name}': this method needs base_model`);
  const n = base.length, M = inp.models.length;
  const g = inp.global;
  // Steps 1-3: δ_i = x_i − base, sparsified, ×w_i; stored interleaved (W[i·M + m]) so the
  // per-element consensus below reads one contiguous run.
  const W = new Float32Array(n * M);
  const weights: number[] = [];
  const d = new Float32Array(n);
  for (let m = 0; m < M; m++) {
    const x = inp.models[m]!, p = inp.params[m]!;
    const density = sparsify === 'none' ? 1 : num(p.density, `'${inp.name}' density`);
    const w = num(p.weight, `'${inp.name}' weight`);
    weights.push(w);
    const rescale = !bool(g.rescale) ? 'none' : g.rescale_mode === 'l1' ? 'l1' : 'exact';
    if (sparsify === 'none' || density >= 1 || (sparsify === 'random' && rescale !== 'l1')) {
      // One fused pass: δ, the DARE keep test and its exact rescale, ×w.
      const u = sparsify === 'random' && density < 1 ? inp.uniforms(m, n) : null;
      const kw = u && rescale === 'exact' ? w / density : w;
      if (u) for (let i = 0; i < n; i++) W[i * M + m] = (x[i]! - base[i]!) * kw * (+(u[i]! < density)); // branch-free: random keeps mispredict
      else for (let i = 0; i < n; i++) W[i * M + m] = (x[i]! - base[i]!) * w;
      continue;
    }
    for (let i = 0; i < n; i++) d[i] = x[i]! - base[i]!;
    if (sparsify === 'magnitude') magnitude(d, density, inp.name);
    else if (sparsify === 'breadcrumbs') breadcrumbs(d, density, num(p.gamma, `'${inp.name}' gamma`));
    else bernoulli(d, density, rescale, inp.uniforms(m, n));
    for (let i = 0; i < n; i++) W[i * M + m] = d[i]! * w;
  }
  const norm = bool(g.normalize);
  const lambda = num(g.lambda, `'${inp.name}' lambda`);
  let wsum = weights.reduce((a, b) => a + b, 0);
  if (norm && !consensus && Math.abs(wsum) < 1e-8)
    throw new TemperError(`tensor '${inp.name}': the weights sum to ${wsum} and normalize is true, which divides by that sum; change the weights or set normalize: false`);
  if (Math.abs(wsum) < 1e-8) wsum = 1;
  const out = new Float32Array(n);
  for (let i = 0, at = 0; i < n; i++, at += M) {
    let mixed = 0, div = 0;
    if (consensus) {
      // Step 4: majority = sign(Σ w·δ) with ≥0 → +1; pruned zeros never agree.
      let sp = 0, sn = 0, wp = 0, wn = 0;
      for (let m = 0; m < M; m++) {
        // Branch-free: task-vector signs are close to random, so branches mispredict.
        const v = W[at + m]!, p = +(v > 0), q = +(v < 0), w = weights[m]!;
        sp += v * p;
        wp += w * p;
        sn += v * q;
        wn += w * q;
      }
      const pos = sp + sn >= 0;
      mixed = pos ? sp : sn;
      div = (pos ? wp : wn) || 1;
    } else {
      for (let m = 0; m < M; m++) mixed += W[at + m]!;
      div = wsum;
    }
    // Steps 5-6.
    if (norm) mixed /= div;
    out[i] = base[i]! + lambda * mixed;
  }
  return out;
}
