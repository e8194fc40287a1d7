// Learning-rate schedules with transformers' get_scheduler semantics: the multiplier of
// the base rate for optimizer step s (0-based), with linear warmup from 0. Pure functions.
import { TemperError } from '../tensor/index.js';

export const SCHEDULES = ['constant', 'constant_with_warmup', 'linear', 'cosine', 'warmup_stable_decay'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

export interface ScheduleConfig {
  type: ScheduleName;
  warmupSteps: number;
  totalSteps: number;
  /** warmup_stable_decay: steps of the final decay (default 10% of totalSteps). */
  decaySteps?: number;
  /** warmup_stable_decay: floor as a fraction of the base rate (default 0). */
  minLrRatio?: number;
}

/** Warmup steps from warmup_steps, else ceil(warmup_ratio * total), as TrainingArguments.get_warmup_steps. */
export function warmupSteps(total: number, steps: number, ratio: number): number {
  return steps > 0 ? steps : Math.ceil(total * ratio);
}

/** lr multiplier for step s. */
export function lrLambda(c: ScheduleConfig, s: number): number {
  const w = c.warmupSteps, T = c.totalSteps;
  if (c.type !== 'constant' && s < w) return s / Math.max(1, w);
  switch (c.type) {
    case 'constant':
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (T - s) / Math.max(1, T - w));
    case 'cosine': {
      const progress = (s - w) / Math.max(1, T - w);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
    case 'warmup_stable_decay': {
      const decay = c.decaySteps ?? Math.ceil(0.1 * T);
      const stableEnd = T - decay;
      if (s < stableEnd) return 1;
      const progress = Math.min(1, (s - stableEnd) / Math.max(1, decay));
      const min = c.minLrRatio ?? 0;
      return min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
    }
    default:
      throw new TemperError(`unknown lr_scheduler_type '${(c as { type: string }).type}' (${SCHEDULES.join(', ')})`);
  }
}
