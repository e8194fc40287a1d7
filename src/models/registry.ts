// The architectures temper builds, keyed by config.json's model_type: an explicit list,
// each entry naming its body class, the body's prefix in parameter names, and the
// transformers class names it reads and writes.
import { TemperError } from '../tensor/index.js';
import type { ParamInit } from '../nn/index.js';
import type { ModelConfig } from './config.js';
import type { TransformerBody } from './body.js';
import { LlamaModel } from './llama.js';
import { GPT2Model } from './gpt2.js';
import { CausalLM } from './causal_lm.js';
import { SequenceClassifier } from './sequence_classification.js';

export interface Architecture {
  modelType: string;
  /** transformers' class-name stem: `${stem}ForCausalLM`, `${stem}ForSequenceClassification`. */
  stem: string;
  causalLMClass: string;
  bodyName: string;
  createBody(config: ModelConfig, init: ParamInit): TransformerBody;
}

export const ARCHITECTURES: readonly Architecture[] = [
  { modelType: 'llama', stem: 'Llama', causalLMClass: 'LlamaForCausalLM', bodyName: 'model', createBody: (c, i) => new LlamaModel(c, i) },
  { modelType: 'mistral', stem: 'Mistral', causalLMClass: 'MistralForCausalLM', bodyName: 'model', createBody: (c, i) => new LlamaModel(c, i) },
  { modelType: 'qwen2', stem: 'Qwen2', causalLMClass: 'Qwen2ForCausalLM', bodyName: 'model', createBody: (c, i) => new LlamaModel(c, i) },
  { modelType: 'qwen3', stem: 'Qwen3', causalLMClass: 'Qwen3ForCausalLM', bodyName: 'model', createBody: (c, i) => new LlamaModel(c, i) },
  { modelType: 'gpt2', stem: 'GPT2', causalLMClass: 'GPT2LMHeadModel', bodyName: 'transformer', createBody: (c, i) => new GPT2Model(c, i) },
];

export type Task = 'causal-lm' | 'sequence-classification';
export type PretrainedModel = CausalLM | SequenceClassifier;

export function architectureFor(config: ModelConfig): Architecture {
  const a = ARCHITECTURES.find((x) => x.modelType === config.modelType);
  if (!a) throw new TemperError(`${config.source}: unknown model_type '${config.modelType}' (supported: ${ARCHITECTURES.map((x) => x.modelType).join(', ')})`);
  return a;
}

/** The head a config asks for: sequence classification when its architectures say so. */
export function taskOf(config: ModelConfig): Task {
  return config.architectures.some((a) => a.endsWith('ForSequenceClassification')) ? 'sequence-classification' : 'causal-lm';
}

/**
 * Builds a model from a parsed config. `task` overrides the head the config names
 * (e.g. a reward model on a causal-LM checkpoint); config.architectures is updated to match.
 */
export function createModel(config: ModelConfig, init: ParamInit, task: Task = taskOf(config)): PretrainedModel {
  const arch = architectureFor(config);
  const cls = task === 'causal-lm' ? arch.causalLMClass : `${arch.stem}ForSequenceClassification`;
  config.architectures = [cls];
  config.raw.architectures = [cls];
  const body = arch.createBody(config, init);
  return task === 'causal-lm' ? new CausalLM(config, arch.bodyName, body, init) : new SequenceClassifier(config, arch.bodyName, body, init);
}
