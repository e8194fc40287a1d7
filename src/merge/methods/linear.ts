// linear / model soups (Wortsman et al. 2022, arXiv 2203.05482): Σ w_i x_i, divided by
// Σ w_i when normalize (default true). No base model: every listed model is an input.
import { TemperError } from '../../tensor/index.js';
import { bool, num, type MergeMethod } from './types.js';

export const linear: MergeMethod = {
  name: 'linear',
  paper: 'Model soups (arXiv 2203.05482)',
  kind: 'none',
  globalParams: [{ name: 'normalize', type: 'boolean', default: true, doc: 'divide by the sum of weights' }],
  modelParams: [{ name: 'weight', type: 'number', required: true, doc: 'weight of this model' }],
  merge(inp) {
    const n = inp.models[0]!.length;
    const w = inp.params.map((p) => num(p.weight, `'${inp.name}' weight`));
    const sum = w.reduce((a, b) => a + b, 0);
    if (bool(inp.global.normalize) && Math.abs(sum) < 1e-8)
      throw new TemperError(`tensor '${inp.name}': the weights sum to ${sum} and normalize is true, which divides by that sum; change the weights or set normalize: false`);
    const scale = bool(inp.global.normalize) ? 1 / sum : 1;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let m = 0; m < w.length; m++) s += w[m]! * inp.models[m]![i]!;
      out[i] = s * scale;
    }
    return out;
  },
};
