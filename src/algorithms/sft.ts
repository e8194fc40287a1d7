// Supervised fine-tuning (TRL's SFTTrainer): rows -> token ids with a loss mask (completion
// or assistant tokens only where asked), batches that are padded, padding-free (one row
// per batch, attention kept per example) or packed (best-fit decreasing into max_length),
// the summed next-token loss normalized by the step's loss tokens, full or LoRA training
// through the shared loop, and an HF model folder or PEFT adapter at the end.
import { copyFileSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { TemperError, argmax, assign, autocast, crossEntropy, fromArray, noGrad, scope, type Device, type Tensor } from '../tensor/index.js';
import { CausalLM, shiftLabels } from '../models/index.js';
import { applyLora, type LoraModel } from '../nn/index.js';
import { ADAPTER_CONFIG, CheckpointReader, SafetensorsFile, loadAdapter, loadDataset, readAdapterConfig, loadModelFromDir, resolveModelRef, saveAdapter, saveModel, type DatasetRows } from '../io/index.js';
import { Tokenizer, assemblePacked, assemblePadded, assemblePaddingFree, packBestFitDecreasing, tokenizeDataset, type TokenizedExample } from '../text/index.js';
import { trainLoop, writeReport, type LoopCallbacks, type TrainResult } from '../train/index.js';
import type { SFTConfig } from './sft_config.js';

/** One micro-batch, ready for the model. */
export interface SftBatch {
  inputIds: Tensor;
  labels: Tensor;
  attentionMask: Tensor | null;
  docIds: Tensor | null;
  positionIds: Tensor | null;
}

export interface SftCallbacks extends LoopCallbacks {
  /** One-line notes while preparing (dataset sizes, skipped rows, LoRA parameter counts). */
  onNote?(msg: string): void;
}

export interface SftResult extends TrainResult {
  outputDir: string;
  reportPath: string;
  trainExamples: number;
  evalExamples: number;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'chat_template.json'];

/** A seeded permutation (xorshift + Fisher-Yates): the data order of one epoch. */
function permutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  let s = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const j = s % (i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** A micro-batch before assembly: its rows, each one example or (packing) one bin of them. */
type Rows = TokenizedExample[][];

/** Turns a micro-batch into model inputs for the configured batching. */
function makeBatch(rows: Rows, cfg: SFTConfig, padId: number): SftBatch {
  const device = cfg.device as Device;
  if (cfg.packing || cfg.padding_free) {
    // Packing: one max_length row per bin (the raw step's shape). Padding-free: the whole
    // batch as one row. Either way attention stays inside each example.
    const examples = rows.flat();
    let at = 0;
    const b = cfg.packing ? assemblePacked(examples, rows.map((r) => r.map(() => at++)), cfg.max_length ?? 1024, padId) : assemblePaddingFree(examples);
    const shape = [b.rows, b.length];
    return {
      inputIds: fromArray(b.inputIds, shape, { device }), labels: fromArray(b.labels, shape, { device }), attentionMask: null,
      docIds: fromArray(b.docIds, shape, { device }), positionIds: fromArray(b.positionIds, shape, { device })
    };
  }
  const b = assemblePadded(rows.map((r) => r[0]!), padId);
  const shape = [b.rows, b.length];
  return {
    inputIds: fromArray(b.inputIds, shape, { device }), labels: fromArray(b.labels, shape, { device }), attentionMask: fromArray(b.attentionMask, shape, { device }),
    docIds: null, positionIds: null,
  };
}

/** Positions that carry loss: the model never scores an example's first token. */
function exampleLossTokens(e: TokenizedExample): number {
  let n = 0;
  for (let i = 1; i < e.lossMask.length; i++) n += e.lossMask[i] ? 1 : 0;
  return n;
}

function disposeBatch(b: SftBatch): void {
  for (const t of [b.inputIds, b.labels, b.attentionMask, b.docIds, b.positionIds]) t?.dispose();
}

/**
 * Summed next-token loss and correct-prediction count of a batch. The LM head and the loss run
 * fused over row chunks (CausalLM.headLoss: the (B, T, V) logits never exist, the argmax for
 * the accuracy comes from each chunk); TEMPER_UNFUSED_LM_LOSS=1 materializes the logits as
 * before, for comparisons.
 */
function batchLoss(model: CausalLM, b: SftBatch): { loss: Tensor; correct: number } {
  const input = { inputIds: b.inputIds, attentionMask: b.attentionMask, docIds: b.docIds, positionIds: b.positionIds };
  const targets = shiftLabels(b.labels);
  let loss: Tensor, pred: ArrayLike<number>;
  if (process.env.TEMPER_UNFUSED_LM_LOSS === '1') {
    const { logits } = model.forward(input);
    loss = crossEntropy(logits, targets, { reduction: 'sum' });
    pred = noGrad(() => scope(() => argmax(logits, -1).toArray()));
  } else {
    const r = model.headLoss(model.hiddenStates(input), targets, { reduction: 'sum', returnArgmax: true });
    loss = r.loss;
    pred = r.argmax.toArray();
    r.argmax.dispose();
  }
  const want = targets.toArray();
  let correct = 0;
  for (let i = 0; i < want.length; i++) if (want[i] !== -100 && pred[i] === want[i]) correct++;
  return { loss, correct };
}

/**
 * Runs SFT end to end.
 * @example await runSft(SFT_SCHEMA.parse({ model: 'builtin:tiny', dataset: 'builtin:arith-chat', use_peft: true }));
 */
export async function runSft(cfg: SFTConfig, cb: SftCallbacks = {}): Promise<SftResult> {
  const note = cb.onNote ?? (() => {});
  // `model` may be a PEFT adapter folder: its base loads, and training continues the adapter.
  let adapterDir: string | null = null;
  let baseRef = cfg.model;
  if (existsSync(join(cfg.model, ADAPTER_CONFIG))) {
    adapterDir = cfg.model;
    const base = readAdapterConfig(adapterDir).base_model_name_or_path;
    if (!base) throw new TemperError(`sft: ${join(adapterDir, ADAPTER_CONFIG)} has no base_model_name_or_path to load the base model from`);
    baseRef = base;
  }
  const modelDir = await resolveModelRef(baseRef, { revision: cfg.model_revision });
  const tok = await Tokenizer.fromDir(existsSync(join(adapterDir ?? modelDir, 'tokenizer.json')) ? adapterDir ?? modelDir : modelDir);
  const model = loadModelFromDir(modelDir).to(cfg.device as Device);
  if (!(model instanceof CausalLM)) throw new TemperError(`sft: ${cfg.model} is a ${model.config.architectures[0]}, not a causal language model`);
  if (cfg.gradient_checkpointing) model.gradientCheckpointingEnable();
  const precision = cfg.bf16 ? 'bf16' : null;
  if (tok.vocabSize > model.config.vocabSize)
    throw new TemperError(`sft: the tokenizer in ${modelDir} has ${tok.vocabSize} tokens but the model's vocab_size is ${model.config.vocabSize} (mismatched tokenizer?)`);

  // Data: rows -> examples with loss masks.
  const train = await loadDataset(cfg.dataset, { split: cfg.dataset_train_split });
  let evalRows: DatasetRows | null = null;
  if (cfg.eval_dataset) evalRows = await loadDataset(cfg.eval_dataset, { split: cfg.dataset_test_split });
  else if (cfg.eval_strategy !== 'no' && cfg.eval_ratio === 0 && !(existsSync(cfg.dataset) && statSync(cfg.dataset).isFile())) {
    // A folder, hub or built-in dataset may carry its own test split.
    try {
      evalRows = await loadDataset(cfg.dataset, { split: cfg.dataset_test_split });
    } catch (e) {
      if (!(e instanceof TemperError)) throw e;
    }
  }
  const tokenize = (rows: DatasetRows, what: string) => {
    const format = cfg.dataset_format === 'auto' ? undefined : cfg.dataset_format === 'conversational' ? 'messages' : cfg.dataset_format;
    const r = tokenizeDataset(tok, rows, {
      format, datasetTextField: cfg.dataset_text_field, completionOnlyLoss: cfg.completion_only_loss, assistantOnlyLoss: cfg.assistant_only_loss,
      maxLength: cfg.max_length, skipInvalidRows: cfg.skip_invalid_rows,
    });
    if (r.skipped > 0) note(`${what}: skipped ${r.skipped} invalid row(s), e.g. ${r.skipReasons[0]}`);
    if (r.truncated > 0) note(`${what}: ${r.truncated} example(s) truncated to max_length ${cfg.max_length}`);
    if (r.warningCount > 0) note(`${what}: ${r.warningCount} warning(s), e.g. ${r.warnings[0]}`);
    return r.examples.filter((e) => exampleLossTokens(e) > 0);
  };
  let trainEx = tokenize(train, 'train');
  let evalEx = evalRows ? tokenize(evalRows, 'eval') : [];
  if (!evalRows && cfg.eval_ratio > 0) {
    const order = permutation(trainEx.length, cfg.seed + 7919);
    const nEval = Math.max(1, Math.round(cfg.eval_ratio * trainEx.length));
    const held = new Set(order.slice(0, nEval));
    evalEx = trainEx.filter((_, i) => held.has(i));
    trainEx = trainEx.filter((_, i) => !held.has(i));
  }
  if (trainEx.length === 0) throw new TemperError(`sft: no training examples in ${cfg.dataset}`);
  if (cfg.eval_strategy !== 'no' && evalEx.length === 0)
    throw new TemperError(`sft: eval_strategy is '${cfg.eval_strategy}' but there is no evaluation set (set eval_dataset or eval_ratio)`);
  const trainTokens = trainEx.reduce((n, e) => n + e.inputIds.length, 0);
  note(`data: ${trainEx.length} training examples (${trainTokens} tokens)${evalEx.length ? `, ${evalEx.length} evaluation examples` : ''}`);

  // Micro-batches of one epoch: example groups in a seeded order (packed bins when packing).
  const bs = cfg.per_device_train_batch_size;
  const groupsFor = (examples: TokenizedExample[], batchSize: number, epoch: number | null): Rows[] => {
    let units: Rows;
    if (cfg.packing) {
      const cap = cfg.max_length ?? 1024;
      units = packBestFitDecreasing(examples.map((e) => e.inputIds.length), cap).map((bin) => bin.map((i) => examples[i]!));
    } else {
      units = examples.map((e) => [e]);
    }
    const order = epoch === null ? units.map((_, i) => i) : permutation(units.length, cfg.seed * 1000 + epoch);
    const groups: Rows[] = [];
    for (let i = 0; i < order.length; i += batchSize) groups.push(order.slice(i, i + batchSize).map((u) => units[u]!));
    return groups;
  };

  // Trainable parameters: LoRA adapters, or every weight.
  let lora: LoraModel | null = null;
  if (adapterDir) {
    lora = loadAdapter(model, adapterDir, { trainable: true });
    note(`continuing the LoRA adapter in ${adapterDir} (r=${lora.config.r}) on ${baseRef}`);
  } else if (cfg.use_peft) {
    lora = applyLora(model, {
      r: cfg.lora_r, lora_alpha: cfg.lora_alpha, lora_dropout: cfg.lora_dropout, target_modules: cfg.lora_target_modules,
      use_rslora: cfg.use_rslora, modules_to_save: cfg.lora_modules_to_save, task_type: 'CAUSAL_LM',
    }, { seed: cfg.seed });
    const n = lora.trainableParameters().reduce((s, [, p]) => s + p.numel, 0);
    note(`LoRA r=${cfg.lora_r} alpha=${cfg.lora_alpha} on ${lora.layers.size} modules: ${n} trainable of ${model.numParameters()} parameters (${((100 * n) / model.numParameters()).toFixed(2)}%)`);
  }
  const params = lora ? lora.trainableParameters() : model.namedParameters();
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;

  const writeWeights = (dir: string) => {
    mkdirSync(dir, { recursive: true });
    if (lora) saveAdapter(lora, dir, { baseModelNameOrPath: baseRef });
    else saveModel(model, dir, { dtype: cfg.save_dtype });
    for (const f of TOKENIZER_FILES) if (existsSync(join(modelDir, f))) copyFileSync(join(modelDir, f), join(dir, f));
  };
  const readWeights = (dir: string) => {
    if (lora) {
      using f = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
      for (const [name, p] of lora.adapterStateDict()) {
        if (!f.tensors.has(name)) throw new TemperError(`${dir}: adapter has no '${name}'`);
        const t = f.tensor(name);
        assign(p, t);
        t.dispose();
      }
    } else {
      using r = new CheckpointReader(dir);
      for (const [name, p] of model.stateDict()) {
        const t = r.tensor(name);
        assign(p, t);
        t.dispose();
      }
    }
  };
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([cfg.dataset, cfg.dataset_train_split, trainEx.length, trainTokens, cfg.max_length, cfg.packing, cfg.padding_free, bs, cfg.gradient_accumulation_steps, cfg.seed, cfg.use_peft]))
    .digest('hex')
    .slice(0, 16);

  mkdirSync(cfg.output_dir, { recursive: true });
  writeFileSync(join(cfg.output_dir, 'run_config.json'), JSON.stringify({ trainer: 'sft', ...cfg }, null, 2) + '\n');
  let result: TrainResult;
  try {
    result = await trainLoop<Rows>(
      {
        outputDir: cfg.output_dir, learningRate: cfg.learning_rate, lrSchedulerType: cfg.lr_scheduler_type, warmupRatio: cfg.warmup_ratio,
        warmupSteps: cfg.warmup_steps, weightDecay: cfg.weight_decay, adamBeta1: cfg.adam_beta1, adamBeta2: cfg.adam_beta2,
        adamEpsilon: cfg.adam_epsilon, maxGradNorm: cfg.max_grad_norm, gradientAccumulationSteps: cfg.gradient_accumulation_steps,
        numTrainEpochs: cfg.num_train_epochs, maxSteps: cfg.max_steps, loggingSteps: cfg.logging_steps, evalStrategy: cfg.eval_strategy,
        evalSteps: cfg.eval_steps ?? cfg.logging_steps, saveStrategy: cfg.save_strategy, saveSteps: cfg.save_steps,
        saveTotalLimit: cfg.save_total_limit, seed: cfg.seed, skipNonfinite: cfg.skip_nonfinite, resumeFromCheckpoint: cfg.resume_from_checkpoint,
      },
      {
        model, params, fingerprint,
        epochBatches: (epoch) => groupsFor(trainEx, bs, epoch),
        lossTokens: (g) => g.flat().reduce((n, e) => n + exampleLossTokens(e), 0),
        lossSum: (g) => {
          const b = makeBatch(g, cfg, padId);
          try {
            const { loss, correct } = autocast(precision, () => batchLoss(model, b));
            return { loss, sums: { mean_token_accuracy: correct } };
          } finally {
            disposeBatch(b);
          }
        },
        evaluate: evalEx.length
          ? () =>
              noGrad(() => {
                let loss = 0, tokens = 0, correct = 0;
                for (const g of groupsFor(evalEx, cfg.per_device_eval_batch_size, null)) {
                  const b = makeBatch(g, cfg, padId);
                  scope(() => {
                    const r = autocast(precision, () => batchLoss(model, b));
                    loss += r.loss.item();
                    correct += r.correct;
                  });
                  tokens += g.flat().reduce((n, e) => n + exampleLossTokens(e), 0);
                  disposeBatch(b);
                }
                return { eval_loss: loss / Math.max(1, tokens), eval_token_accuracy: correct / Math.max(1, tokens), eval_tokens: tokens };
              })
          : undefined,
        saveWeights: writeWeights,
        loadWeights: readWeights,
      },
      cb,
    );
    if (!result.interrupted) writeWeights(cfg.output_dir);
  } finally {
    model.dispose();
  }
  const reportPath = writeReport(cfg.output_dir, `temper sft: ${cfg.model} on ${cfg.dataset}`);
  return { ...result, outputDir: cfg.output_dir, reportPath, trainExamples: trainEx.length, evalExamples: evalEx.length };
}
