// Supervised fine-tuning (TRL's SFTTrainer) on the shared trainer pieces: rows -> token ids
// with a loss mask (completion or assistant tokens only where asked), micro-batches that are
// padded, padding-free (one row per batch, attention kept per example) or packed (best-fit
// decreasing into max_length), and sft_loss.ts's summed next-token loss normalized by the
// step's loss tokens. Loading, data splits, the loop and saving are src/train's.
import { autocast, fromArray, noGrad, scope, type Device } from '../tensor/index.js';
import { Tokenizer, assemblePacked, assemblePadded, assemblePaddingFree, packBestFitDecreasing, tokenizeDataset, type TokenizedExample } from '../text/index.js';
import type { DatasetRows } from '../io/index.js';
import {
  EpochBatches, Policy, epochBatches, finishRun, holdOut, loadTrainEvalRows, loopConfig, prepareOutputDir, startRun, trainLoop,
  type LoopCallbacks, type TrainResult,
} from '../train/index.js';
import { sftLossSum, type SftBatch } from './sft_loss.js';
import type { SFTConfig } from './sft_config.js';

export interface SftCallbacks extends LoopCallbacks {
  /** One-line notes while preparing (dataset sizes, skipped rows, LoRA parameter counts). */
  onNote?(msg: string): void;
}

export interface SftResult extends TrainResult {
  outputDir: string;
  reportPath: string;
  /** What output_dir holds at the end: 'adapter' (PEFT), 'model', or null when interrupted before the end (see lastCheckpoint). */
  saved: 'adapter' | 'model' | null;
  trainExamples: number;
  evalExamples: number;
}

export interface SftOptions {
  /** Compute the full logits instead of the fused LM head + loss (the reference path, for comparisons). */
  materializeLogits?: boolean;
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
      docIds: fromArray(b.docIds, shape, { device }), positionIds: fromArray(b.positionIds, shape, { device }),
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

const rowsLossTokens = (g: Rows) => g.flat().reduce((n, e) => n + exampleLossTokens(e), 0);

function disposeBatch(b: SftBatch): void {
  for (const t of [b.inputIds, b.labels, b.attentionMask, b.docIds, b.positionIds]) t?.dispose();
}

/** Rows -> examples with loss masks, noting what was skipped or truncated; examples without loss tokens are dropped. */
function tokenizeRows(tok: Tokenizer, rows: DatasetRows, cfg: SFTConfig, what: string, note: (m: string) => void): TokenizedExample[] {
  const format = cfg.dataset_format === 'auto' ? undefined : cfg.dataset_format === 'conversational' ? 'messages' : cfg.dataset_format;
  const r = tokenizeDataset(tok, rows, {
    format, datasetTextField: cfg.dataset_text_field, completionOnlyLoss: cfg.completion_only_loss, assistantOnlyLoss: cfg.assistant_only_loss,
    maxLength: cfg.max_length, skipInvalidRows: cfg.skip_invalid_rows,
  });
  const skipped = r.skipped + rows.skippedLines.length;
  if (skipped > 0) note(`${what}: skipped ${skipped} invalid row(s), e.g. ${rows.skippedLines[0] ?? r.skipReasons[0]}`);
  if (r.truncated > 0) note(`${what}: ${r.truncated} example(s) truncated to max_length ${cfg.max_length}`);
  if (r.warningCount > 0) note(`${what}: ${r.warningCount} warning(s), e.g. ${r.warnings[0]}`);
  return r.examples.filter((e) => exampleLossTokens(e) > 0);
}

/**
 * Runs SFT end to end.
 * @example await runSft(SFT_SCHEMA.parse({ model: 'builtin:tiny', dataset: 'builtin:arith-chat', use_peft: true }));
 */
export async function runSft(cfg: SFTConfig, cb: SftCallbacks = {}, opts: SftOptions = {}): Promise<SftResult> {
  const note = cb.onNote ?? (() => {});
  prepareOutputDir(cfg.output_dir, { resume: cfg.resume_from_checkpoint, overwrite: cfg.overwrite_output_dir });
  using policy = await Policy.load(cfg, { trainer: 'sft', note });
  const { model, tokenizer: tok } = policy;
  const precision = cfg.bf16 ? 'bf16' : null;

  const data = await loadTrainEvalRows(cfg, { evaluate: cfg.eval_strategy !== 'no' });
  let trainEx = tokenizeRows(tok, data.train, cfg, 'train', note);
  let evalEx = data.eval ? tokenizeRows(tok, data.eval, cfg, 'eval', note) : [];
  if (!data.eval && cfg.eval_ratio > 0) ({ train: trainEx, eval: evalEx } = holdOut(trainEx, cfg.eval_ratio, cfg.seed));
  startRun('sft', cfg, { trainExamples: trainEx.length, evalExamples: evalEx.length, dataset: cfg.dataset });
  const trainTokens = trainEx.reduce((n, e) => n + e.inputIds.length, 0);
  note(`data: ${trainEx.length} training examples (${trainTokens} tokens)${evalEx.length ? `, ${evalEx.length} evaluation examples` : ''}`);

  // Micro-batches of one epoch: example groups in a seeded order (packed bins when packing).
  const unitsOf = (examples: TokenizedExample[]): Rows =>
    cfg.packing ? packBestFitDecreasing(examples.map((e) => e.inputIds.length), cfg.max_length ?? 1024).map((bin) => bin.map((i) => examples[i]!)) : examples.map((e) => [e]);
  const trainUnits = unitsOf(trainEx);
  const padId = policy.padTokenId;
  const lossOf = (g: Rows) => {
    const b = makeBatch(g, cfg, padId);
    try {
      return autocast(precision, () => sftLossSum(model, b, opts));
    } finally {
      disposeBatch(b);
    }
  };

  const result = await trainLoop<Rows>(
    loopConfig(cfg),
    {
      model,
      paramGroups: [{ params: policy.trainableParameters() }],
      source: new EpochBatches((epoch) => epochBatches(trainUnits, cfg.per_device_train_batch_size, cfg.seed, epoch)),
      normalizer: rowsLossTokens,
      lossSum: (g) => {
        const { loss, correct } = lossOf(g);
        return { loss, sums: { mean_token_accuracy: correct } };
      },
      evaluate: evalEx.length
        ? () =>
            noGrad(() => {
              let loss = 0, tokens = 0, correct = 0;
              for (const g of epochBatches(unitsOf(evalEx), cfg.per_device_eval_batch_size, cfg.seed, null)) {
                scope(() => {
                  const r = lossOf(g);
                  loss += r.loss.item();
                  correct += r.correct;
                });
                tokens += rowsLossTokens(g);
              }
              return { eval_loss: loss / Math.max(1, tokens), eval_token_accuracy: correct / Math.max(1, tokens), eval_tokens: tokens };
            })
        : undefined,
      saveWeights: (dir) => policy.saveWeights(dir),
      loadWeights: (dir) => policy.loadWeights(dir),
      settings: {
        dataset: cfg.dataset, dataset_train_split: cfg.dataset_train_split, train_examples: trainEx.length, train_tokens: trainTokens, max_length: cfg.max_length,
        packing: cfg.packing, padding_free: cfg.padding_free, per_device_train_batch_size: cfg.per_device_train_batch_size,
        gradient_accumulation_steps: cfg.gradient_accumulation_steps, seed: cfg.seed, use_peft: policy.lora !== null,
      },
      uniformLoss: Math.log(model.config.vocabSize),
    },
    cb,
  );
  const { reportPath, saved } = finishRun(policy, cfg.output_dir, result, `temper sft: ${cfg.model} on ${cfg.dataset}`);
  return { ...result, outputDir: cfg.output_dir, reportPath, saved, trainExamples: trainEx.length, evalExamples: evalEx.length };
}
