// Model merging (mergekit-compatible YAML): config parsing, the method registry, the streaming merge.
export { parseMergeConfig, readMergeConfig, resolveParam, layerIndex, type MergeConfig, type MergeModelEntry, type MergeSlice, type ParamValue, type FilterEntry, type Scalar } from './config.js';
export { MERGE_METHODS, getMergeMethod } from './registry.js';
export { runMerge, validateMergeConfig, type MergeOptions, type MergeResult } from './merge.js';
export { slerpVectors } from './methods/slerp.js';
export { keepRankRange, magnitude, bernoulli, breadcrumbs } from './methods/sparsify.js';
export { taskArithmetic } from './methods/generalized.js';
export type { MergeMethod, ParamSpec, TensorInputs } from './methods/types.js';
export { ShardWriter, f32ToBf16, floatBytes, type ShardWriterOptions } from '../io/shard_writer.js';
export { mergeLora, type MergeLoraOptions } from './merge_lora.js';
