// Rotary position embedding frequencies, as transformers' ROPE_INIT_FUNCTIONS: default,
// linear and llama3 scaling. The rotation itself is the fused `rotary` op (rotate_half
// convention). Dynamic/yarn/longrope scaling are refused with a clear error, not approximated.
import { TemperError, fromArray, keep, rotary, type Tensor } from '../tensor/index.js';

export interface RopeScaling {
  rope_type?: string;
  /** Older configs spell rope_type as "type". */
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/** inv_freq (D/2) for rotary dim D; float32 like transformers computes it. */
export function ropeInvFreq(dim: number, theta: number, scaling: RopeScaling | null | undefined, source = 'config.json'): Float32Array {
  const f = Math.fround;
  const base = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) base[i] = f(1 / f(Math.pow(theta, f(f(2 * i) / dim))));
  const type = scaling ? scaling.rope_type ?? scaling.type ?? 'default' : 'default';
  const need = (key: keyof RopeScaling): number => {
    const v = scaling?.[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TemperError(`${source}: rope_scaling.${key} must be a number for rope_type '${type}'`);
    return v;
  };
  switch (type) {
    case 'default':
      return base;
    case 'linear': {
      const factor = need('factor');
      return base.map((x) => x / factor);
    }
    case 'llama3': {
      const factor = need('factor'), low = need('low_freq_factor'), high = need('high_freq_factor');
      const orig = need('original_max_position_embeddings');
      const lowWavelen = orig / low, highWavelen = orig / high;
      return base.map((inv) => {
        const wavelen = (2 * Math.PI) / inv;
        const scaled = wavelen > lowWavelen ? inv / factor : inv;
        if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
        const smooth = (orig / wavelen - low) / (high - low);
        return (1 - smooth) * (scaled / factor) + smooth * scaled;
      });
    }
    default:
      throw new TemperError(`${source}: rope_scaling type '${type}' is not supported (supported: default, linear, llama3)`);
  }
}

/** Applies the rotation to (B, T, H, D) queries or keys at (B, T) i32 positions. */
export class Rope {
  readonly invFreq: Tensor;
  constructor(readonly dim: number, theta: number, scaling?: RopeScaling | null, readonly attentionScaling = 1, source?: string) {
    // Lives as long as the model; a buffer, not a parameter, so not in the state dict.
    this.invFreq = keep(fromArray(ropeInvFreq(dim, theta, scaling, source), [dim / 2]));
  }
  apply(x: Tensor, positions: Tensor): Tensor {
    return rotary(x, positions, this.invFreq, this.attentionScaling);
  }
  dispose(): void {
    this.invFreq.dispose();
  }
}
