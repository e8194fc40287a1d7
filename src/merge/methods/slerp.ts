// SLERP between base_model (t = 0) and exactly one other model (mergekit `slerp.py`): each
// tensor flattened, cosine on normalized copies, |dot| > 0.9995 → lerp, else the spherical
// formula applied to the unnormalized tensors.
import { num, type MergeMethod } from './types.js';

const DOT_THRESHOLD = 0.9995, EPS = 1e-8;

/** slerp(t, v0, v1) on flat vectors (float64 accumulation, float32 result). */
export function slerpVectors(t: number, v0: Float32Array, v1: Float32Array): Float32Array {
  let n0 = 0, n1 = 0, dot = 0;
  for (let i = 0; i < v0.length; i++) {
    n0 += v0[i]! * v0[i]!;
    n1 += v1[i]! * v1[i]!;
    dot += v0[i]! * v1[i]!;
  }
  n0 = Math.sqrt(n0);
  n1 = Math.sqrt(n1);
  // mergekit only divides norms > eps.
  dot /= (n0 > EPS ? n0 : 1) * (n1 > EPS ? n1 : 1);
  const out = new Float32Array(v0.length);
  let s0: number, s1: number;
  if (Math.abs(dot) > DOT_THRESHOLD) {
    s0 = 1 - t;
    s1 = t;
  } else {
    const theta = Math.acos(dot), sin = Math.sin(theta);
    s0 = Math.sin(theta - theta * t) / sin;
    s1 = Math.sin(theta * t) / sin;
  }
  for (let i = 0; i < v0.length; i++) out[i] = s0 * v0[i]! + s1 * v1[i]!;
  return out;
}

export const slerp: MergeMethod = {
  name: 'slerp',
  paper: 'Shoemake, Animating rotation with quaternion curves (SIGGRAPH 1985); mergekit slerp',
  kind: 'slerp',
  globalParams: [{ name: 't', type: 'number', range: { min: 0, max: 1 }, required: true, doc: 'interpolation factor: 0 = base_model, 1 = the other model' }],
  modelParams: [],
  merge: (inp) => slerpVectors(num(inp.global.t, `'${inp.name}' t`), inp.base!, inp.models[0]!),
};
