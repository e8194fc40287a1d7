// Public surface of the tensor layer.
export { Tensor, memoryStats, resetPeakMemory, emptyCache, numelOf, type NestedArray } from './tensor.js';
export type { DType } from './dtype.js';
export { type Device, setNumThreads, getNumThreads, normalizeDevice, getDefaultDevice, setDefaultDevice, cudaDeviceCount, runsCpuKernels, synchronize, deviceName, setAllowTf32 } from './backend.js';
export { TemperError } from './errors.js';
export { scope, keep, noGrad, withGrad, isGradEnabled, autocast, autocastDtype } from './scope.js';
export type { Primitive, BackwardOptions } from './autograd.js';
export * from './ops/creation.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export { matmul, linear, type MatmulOptions } from './ops/matmul.js';
export { reshape, flatten, unsqueeze, squeeze, permute, transpose, contiguous, slice, cat, stack, split, chunk, expand, clone, writeSlice, assign } from './ops/shape.js';
export { indexSelect, embedding, gather, scatterAdd, oneHot } from './ops/indexing.js';
export { softmax, logSoftmax, cumsum, sort, topk, dropout } from './ops/nn.js';
export { rmsNorm, addRmsNorm, layerNorm, rotary, attention, crossEntropy, type AttentionOptions, type CrossEntropyOptions } from './ops/fused.js';
export { linearCrossEntropy, tokenLogprobs, type LinearCrossEntropyOptions } from './ops/linear_cross_entropy.js';
export { swiglu } from './ops/swiglu.js';
export { adamwStep, adamwStepMulti, clipGradNorm, globalNorm, scaleInplace, type AdamWStepOptions, type AdamWStepMultiOptions } from './ops/optim.js';
export { recompute } from './recompute.js';
