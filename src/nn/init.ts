// How new parameters are filled: seeded random (transformers' _init_weights: normal(0,
// initializer_range) for matrices, ones for norm weights, zeros for biases) or left
// uninitialized because a checkpoint is about to overwrite every one of them.
import { Generator, Tensor, full, randn } from '../tensor/index.js';

export interface ParamInit {
  /** Weight matrices and embeddings. */
  normal(shape: readonly number[]): Tensor;
  ones(shape: readonly number[]): Tensor;
  zeros(shape: readonly number[]): Tensor;
}

/** normal(0, std) weights from a seeded generator; same seed, same model. */
export function randomInit(std: number, seed = 0): ParamInit {
  const generator = new Generator(seed);
  return {
    normal: (shape) => randn(shape, { std, generator }),
    ones: (shape) => full(shape, 1),
    zeros: (shape) => full(shape, 0),
  };
}

/** Uninitialized storage, for parameters that a loader fills (it checks that every one is). */
export const emptyInit: ParamInit = {
  normal: (shape) => Tensor.empty(shape),
  ones: (shape) => Tensor.empty(shape),
  zeros: (shape) => Tensor.empty(shape),
};
