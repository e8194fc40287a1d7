// Public surface of the generate layer.
export { generate, type GenerateOptions, type Generation, type FinishReason, type Decoder } from './generate.js';
export { pickToken, pickFromProbs, applyRepetitionPenalty, softmaxRow, checkSampling, type SamplingOptions, type Pick } from './sampler.js';
export { withGenerationConfig } from './generation_config.js';
