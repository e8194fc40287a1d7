// config.json -> a checked, normalized description of the architecture. Every field is
// read with its transformers default, and a missing or ill-typed one is an error naming
// the file and the key. The raw JSON is kept so a saved model writes it back unchanged.
import { TemperError } from '../tensor/index.js';
import type { RopeScaling } from '../nn/index.js';

export interface ModelConfig {
  modelType: string;
  architectures: string[];
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  normEps: number;
  hiddenAct: string;
  /** Learned positions (GPT-2) have no rope. */
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  qkNorm: boolean;
  /** Mistral-style sliding window; temper refuses sequences longer than it rather than be wrong. */
  slidingWindow: number | null;
  /** Dropout probabilities applied in train() mode. */
  dropout: { embedding: number; residual: number; attention: number };
  initializerRange: number;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  numLabels: number;
  /** generation_config.json as read, when the folder has one. */
  generationConfig: Record<string, unknown> | null;
  /** The file this came from, for error messages. */
  source: string;
  /** config.json as read (written back on save, with temper's changes merged in). */
  raw: Record<string, unknown>;
}

class Reader {
  constructor(readonly raw: Record<string, unknown>, readonly source: string) {}
  private bad(key: string, want: string): TemperError {
    return new TemperError(`${this.source}: "${key}" must be ${want}, got ${JSON.stringify(this.raw[key])}`);
  }
  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }
  int(key: string, dflt?: number): number {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) throw new TemperError(`${this.source}: missing "${key}"`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw this.bad(key, 'a non-negative integer');
    return v;
  }
  num(key: string, dflt?: number): number {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) throw new TemperError(`${this.source}: missing "${key}"`);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.bad(key, 'a number');
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'boolean') throw this.bad(key, 'true or false');
    return v;
  }
  str(key: string, dflt?: string): string {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) throw new TemperError(`${this.source}: missing "${key}"`);
    if (typeof v !== 'string') throw this.bad(key, 'a string');
    return v;
  }
  optInt(key: string): number | null {
    return this.has(key) ? this.int(key) : null;
  }
  tokenIds(key: string): number | number[] | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && v.every((x) => Number.isInteger(x))) return v as number[];
    throw this.bad(key, 'a token id or a list of token ids');
  }
}

const LLAMA_FAMILY = new Set(['llama', 'mistral', 'qwen2', 'qwen3']);

/** Parses a config.json object; `source` names the file in errors. */
export function parseConfig(raw: unknown, source = 'config.json'): ModelConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new TemperError(`${source}: expected a JSON object`);
  const r = new Reader(raw as Record<string, unknown>, source);
  const modelType = r.str('model_type');
  const architectures = Array.isArray(r.raw.architectures) ? (r.raw.architectures as string[]) : [];
  const common = {
    modelType,
    architectures,
    source,
    raw: { ...r.raw },
    generationConfig: null,
    bosTokenId: r.optInt('bos_token_id'),
    eosTokenId: r.tokenIds('eos_token_id'),
    padTokenId: r.optInt('pad_token_id'),
    numLabels: r.has('num_labels') ? r.int('num_labels') : r.has('id2label') ? Object.keys(r.raw.id2label as object).length : 2,
    initializerRange: r.num('initializer_range', 0.02),
  };
  if (modelType === 'gpt2') {
    const C = r.int('n_embd', 768), H = r.int('n_head', 12);
    if (C % H !== 0) throw new TemperError(`${source}: n_embd ${C} is not divisible by n_head ${H}`);
    if (r.bool('scale_attn_by_inverse_layer_idx', false) || r.bool('reorder_and_upcast_attn', false))
      throw new TemperError(`${source}: scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported`);
    if (!r.bool('scale_attn_weights', true)) throw new TemperError(`${source}: scale_attn_weights=false is not supported`);
    return {
      ...common,
      vocabSize: r.int('vocab_size', 50257),
      hiddenSize: C,
      intermediateSize: r.has('n_inner') ? r.int('n_inner') : 4 * C,
      numLayers: r.int('n_layer', 12),
      numHeads: H,
      numKvHeads: H,
      headDim: C / H,
      normEps: r.num('layer_norm_epsilon', 1e-5),
      hiddenAct: r.str('activation_function', 'gelu_new'),
      ropeTheta: 0,
      ropeScaling: null,
      maxPositionEmbeddings: r.int('n_positions', 1024),
      tieWordEmbeddings: r.bool('tie_word_embeddings', true),
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      qkNorm: false,
      slidingWindow: null,
      dropout: { embedding: r.num('embd_pdrop', 0.1), residual: r.num('resid_pdrop', 0.1), attention: r.num('attn_pdrop', 0.1) },
    };
  }
  if (!LLAMA_FAMILY.has(modelType))
    throw new TemperError(`${source}: model_type '${modelType}' is not supported (supported: ${[...LLAMA_FAMILY, 'gpt2'].join(', ')})`);
  const C = r.int('hidden_size'), H = r.int('num_attention_heads');
  const headDim = r.has('head_dim') ? r.int('head_dim') : C / H;
  if (!Number.isInteger(headDim)) throw new TemperError(`${source}: hidden_size ${C} is not divisible by num_attention_heads ${H}; set "head_dim"`);
  const Hkv = r.int('num_key_value_heads', H);
  if (H % Hkv !== 0) throw new TemperError(`${source}: num_attention_heads ${H} is not divisible by num_key_value_heads ${Hkv}`);
  // transformers 5 writes `rope_parameters` ({ rope_type, rope_theta, factor, … }) in place of
  // rope_theta + rope_scaling; earlier versions write those two keys.
  const ropeParams = (r.raw.rope_parameters ?? null) as (RopeScaling & { rope_theta?: number }) | null;
  const ropeScaling = ropeParams
    ? (ropeParams.rope_type ?? ropeParams.type ?? 'default') === 'default' ? null : ropeParams
    : ((r.raw.rope_scaling ?? null) as RopeScaling | null);
  const ropeTheta = typeof ropeParams?.rope_theta === 'number' ? ropeParams.rope_theta : r.num('rope_theta', 10000);
  const attentionBias = r.bool('attention_bias', false);
  const useSliding = modelType === 'mistral' ? true : r.bool('use_sliding_window', false);
  const partial = r.num('partial_rotary_factor', 1);
  if (partial !== 1) throw new TemperError(`${source}: partial_rotary_factor ${partial} is not supported (only 1)`);
  return {
    ...common,
    vocabSize: r.int('vocab_size'),
    hiddenSize: C,
    intermediateSize: r.int('intermediate_size'),
    numLayers: r.int('num_hidden_layers'),
    numHeads: H,
    numKvHeads: Hkv,
    headDim,
    normEps: r.num('rms_norm_eps', 1e-6),
    hiddenAct: r.str('hidden_act', 'silu'),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: r.int('max_position_embeddings', 2048),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    qkvBias: modelType === 'qwen2' ? true : attentionBias,
    oBias: modelType === 'qwen2' ? false : attentionBias,
    mlpBias: r.bool('mlp_bias', false),
    qkNorm: modelType === 'qwen3',
    slidingWindow: useSliding ? r.optInt('sliding_window') : null,
    dropout: { embedding: 0, residual: 0, attention: r.num('attention_dropout', 0) },
  };
}
