// Public surface of the nn layer.
export { Module, ModuleList } from './module.js';
export { randomInit, emptyInit, type ParamInit } from './init.js';
export { Linear, Conv1D } from './linear.js';
export { Embedding } from './embedding.js';
export { RMSNorm, LayerNorm } from './norm.js';
export { Rope, ropeInvFreq, type RopeScaling } from './rope.js';
export { KVCache } from './kv_cache.js';
export { SelfAttention, attendWithCache, type AttentionConfig, type AttentionContext } from './attention.js';
export { GatedMLP, GPT2MLP, activation, type Activation } from './mlp.js';
export { LoraLinear, LoraModel, applyLora, loraScale, type LoraConfig, type ResolvedLoraConfig, type LoraLayerOptions, type LoraTarget } from './lora.js';
export type { LinearAdapter } from './linear.js';
