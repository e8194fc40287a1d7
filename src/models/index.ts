// Public surface of the models layer.
export { parseConfig, type ModelConfig } from './config.js';
export { defaultPositionIds, shiftLabels, type ForwardInput, type CausalLMOutput } from './inputs.js';
export type { TransformerBody } from './body.js';
export { LlamaModel, LlamaDecoderLayer } from './llama.js';
export { GPT2Model, GPT2Block, GPT2Attention } from './gpt2.js';
export { CausalLM, type CausalLMInput, type CausalLMLossOutput } from './causal_lm.js';
export { SequenceClassifier, type SequenceClassifierOutput } from './sequence_classification.js';
export { ARCHITECTURES, architectureFor, createModel, taskOf, type Architecture, type Task, type PretrainedModel } from './registry.js';
