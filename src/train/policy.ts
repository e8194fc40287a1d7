// The model a trainer trains, loaded one way for every trainer: a model reference (folder, hub
// id, builtin:NAME, or a PEFT adapter folder whose training continues on its base) -> the
// model on its device with gradient checkpointing as asked, its tokenizer (checked against
// the vocabulary), LoRA applied or continued, the trainable parameters, saving and restoring
// weights (model or adapter, with the tokenizer files), and the reference model that DPO-style
// losses and KL penalties compare against. Not a loss and not the loop.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError, assign, clone, keep, noGrad, type Device, type Tensor } from '../tensor/index.js';
import { applyLora, type LoraModel, type Module } from '../nn/index.js';
import { CausalLM, type PretrainedModel, type Task } from '../models/index.js';
import {
  SafetensorsFile, WeightsReader, copyTokenizerFiles, loadModel, loadModelFromDir, loadWithAdapter, resolveAdapterRef, resolveModelRef, saveAdapter, saveModel,
  tokenizerDirFor, withFsErrors, type AdapterRef,
} from '../io/index.js';
import { Tokenizer } from '../text/index.js';
import type { ModelArgs, PeftArgs } from './args.js';

/** What loading a policy reads from a trainer's config. */
export interface PolicyArgs extends ModelArgs, PeftArgs {
  gradient_checkpointing: boolean;
  seed: number;
  save_dtype: 'F32' | 'BF16';
}

export interface LoadPolicyOptions {
  /** The trainer's name, for messages ("sft", "dpo"). */
  trainer: string;
  /** The head to train (default causal-lm). */
  task?: Task;
  /** Labels of a new classification head (reward models: 1). */
  numLabels?: number;
  /** One-line notes (LoRA parameter counts, the adapter continued). */
  note?: (message: string) => void;
}

/**
 * The weights a loss compares the policy against, in eval mode with grad off: the policy's own
 * model with the LoRA adapters switched off (no second copy in memory), or a frozen model.
 */
export interface ReferenceModel<M extends PretrainedModel = PretrainedModel> extends Disposable {
  readonly kind: 'adapters-off' | 'initial-adapter' | 'frozen-copy' | 'checkpoint';
  /** Runs fn on the reference weights (synchronously), with grad off and dropout off. */
  run<T>(fn: (model: M) => T): T;
  dispose(): void;
}

/** A loaded policy. M is CausalLM unless a trainer asks for another head. */
export class Policy<M extends PretrainedModel = CausalLM> implements Disposable {
  private constructor(
    readonly model: M,
    readonly tokenizer: Tokenizer,
    /** The base model's folder (for a continued adapter, its base). */
    readonly modelDir: string,
    /** What the model reference named: the base reference and the adapter folder continued, if any. */
    readonly ref: AdapterRef,
    /** Where the tokenizer came from (its files are saved with the weights). */
    readonly tokenizerDir: string,
    readonly lora: LoraModel<M> | null,
    private readonly args: PolicyArgs,
    private readonly task: Task,
    /** A continued adapter's weights as loaded: the reference of DPO-style losses. */
    private readonly initialAdapter: Map<string, Tensor> | null,
  ) {}

  /**
   * Loads the policy a trainer's config names.
   * @example using policy = await Policy.load(cfg, { trainer: 'sft' });
   */
  static async load<M extends PretrainedModel = CausalLM>(a: PolicyArgs, opts: LoadPolicyOptions): Promise<Policy<M>> {
    const note = opts.note ?? (() => {});
    const task = opts.task ?? 'causal-lm';
    const ref = resolveAdapterRef(a.model);
    const loaded = await loadWithAdapter(ref, { revision: a.model_revision, task, numLabels: opts.numLabels, seed: a.seed, trainable: true });
    const model = loaded.model as M;
    let lora = loaded.lora as LoraModel<M> | null;
    try {
      if (task === 'causal-lm' && !(model instanceof CausalLM))
        throw new TemperError(`${opts.trainer}: ${a.model} is a ${model.config.architectures[0]}, not a causal language model`);
      const tokDir = a.tokenizer_name_or_path ? await resolveTokenizerDir(a.tokenizer_name_or_path) : tokenizerDirFor(ref, loaded.baseDir);
      const tokenizer = await Tokenizer.fromDir(tokDir);
      if (tokenizer.vocabSize > model.config.vocabSize)
        throw new TemperError(`${opts.trainer}: the tokenizer in ${tokDir} has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${model.config.vocabSize} (mismatched tokenizer?)`);
      model.to(a.device as Device);
      if (a.gradient_checkpointing) (model as unknown as CausalLM).gradientCheckpointingEnable();
      let initialAdapter: Map<string, Tensor> | null = null;
      if (lora) {
        note(`continuing the LoRA adapter in ${ref.adapter} (r=${lora.config.r}) on ${ref.base}`);
        initialAdapter = new Map([...lora.adapterStateDict()].map(([n, t]) => [n, keep(clone(t.detach()))]));
      } else if (a.use_peft) {
        const added = applyLora(model as Module, {
          r: a.lora_r, lora_alpha: a.lora_alpha, lora_dropout: a.lora_dropout, target_modules: a.lora_target_modules,
          use_rslora: a.use_rslora, modules_to_save: a.lora_modules_to_save, task_type: task === 'causal-lm' ? 'CAUSAL_LM' : 'SEQ_CLS',
        }, { seed: a.seed }) as unknown as LoraModel<M>;
        lora = added;
        const n = added.trainableParameters().reduce((s, [, p]) => s + p.numel, 0);
        const all = model.numParameters();
        note(`LoRA r=${a.lora_r} alpha=${a.lora_alpha} on ${added.layers.size} modules: ${n} trainable of ${all} parameters (${((100 * n) / all).toFixed(2)}%)`);
      }
      return new Policy<M>(model, tokenizer, loaded.baseDir, ref, tokDir, lora, a, task, initialAdapter);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  /** Parameters that train: the adapters (and modules_to_save) with LoRA, else every weight. */
  trainableParameters(): [string, Tensor][] {
    return this.lora ? this.lora.trainableParameters() : this.model.namedParameters();
  }

  /** The id that pads batches: the tokenizer's pad token, else EOS, else 0. */
  get padTokenId(): number {
    return this.tokenizer.padTokenId ?? this.tokenizer.eosTokenId ?? 0;
  }

  /** Writes the weights (PEFT adapter, or HF model folder in save_dtype) and the tokenizer files into `dir`. */
  saveWeights(dir: string): void {
    withFsErrors(`saving to ${dir}`, () => {
      mkdirSync(dir, { recursive: true });
      if (this.lora) saveAdapter(this.lora, dir, { baseModelNameOrPath: this.ref.base });
      else saveModel(this.model, dir, { dtype: this.args.save_dtype });
      copyTokenizerFiles(this.tokenizerDir, dir);
    });
  }

  /** Restores weights written by saveWeights (a checkpoint folder). */
  loadWeights(dir: string): void {
    noGrad(() => {
      if (this.lora) {
        using f = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
        for (const [name, p] of this.lora.adapterStateDict()) {
          if (!f.tensors.has(name)) throw new TemperError(`${dir}: adapter has no '${name}'`);
          const t = f.tensor(name);
          assign(p, t);
          t.dispose();
        }
      } else {
        using r = new WeightsReader(dir);
        for (const [name, p] of this.model.stateDict()) {
          const t = r.tensor(name);
          assign(p, t);
          t.dispose();
        }
      }
    });
  }

  /**
   * The reference model: `refModel` (a checkpoint to load) when given; else with a new LoRA
   * adapter the base with the adapters off (no weights copied); with a continued adapter that
   * adapter as it was loaded (its starting weights swapped in for each call, as TRL keeps a "ref"
   * copy of a re-trained adapter); else a frozen copy of the starting model read again from its
   * folder.
   */
  async reference(refModel: string | null = null): Promise<ReferenceModel<M>> {
    if (refModel !== null) return frozen((await loadModel(refModel, { task: this.task, numLabels: this.model.config.numLabels, warn: () => {} })) as M, this.args.device, 'checkpoint');
    const lora = this.lora;
    if (lora && this.initialAdapter) return this.swappedAdapter(lora, this.initialAdapter);
    if (lora && lora.modulesToSave.length === 0) {
      const model = this.model;
      return {
        kind: 'adapters-off',
        run: (fn) => {
          const wasTraining = model.training;
          model.eval();
          try {
            return noGrad(() => lora.withDisabled(() => fn(model)));
          } finally {
            model.train(wasTraining);
          }
        },
        dispose: () => {},
        [Symbol.dispose]() {},
      };
    }
    return frozen(loadModelFromDir(this.modelDir, { task: this.task, numLabels: this.model.config.numLabels, warn: () => {} }) as M, this.args.device, 'frozen-copy');
  }

  /** The adapter with `start` swapped in for each reference call and the trained weights put back after. */
  private swappedAdapter(lora: LoraModel<M>, start: Map<string, Tensor>): ReferenceModel<M> {
    const model = this.model;
    return {
      kind: 'initial-adapter',
      run: (fn) => {
        const wasTraining = model.training;
        const live = lora.adapterStateDict();
        const now = new Map([...live].map(([n, t]) => [n, keep(clone(t.detach()))]));
        model.eval();
        try {
          noGrad(() => {
            for (const [n, t] of live) assign(t, start.get(n)!);
          });
          return noGrad(() => fn(model));
        } finally {
          noGrad(() => {
            for (const [n, t] of live) assign(t, now.get(n)!);
          });
          for (const t of now.values()) t.dispose();
          model.train(wasTraining);
        }
      },
      dispose: () => {},
      [Symbol.dispose]() {},
    };
  }

  dispose(): void {
    for (const t of this.initialAdapter?.values() ?? []) t.dispose();
    this.model.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** A model that never trains, on `device`, as a reference. */
function frozen<M extends PretrainedModel>(model: M, device: string, kind: 'frozen-copy' | 'checkpoint'): ReferenceModel<M> {
  for (const t of model.parameters()) t.requiresGrad = false;
  model.to(device as Device).eval();
  return {
    kind,
    run: (fn) => noGrad(() => fn(model)),
    dispose: () => model.dispose(),
    [Symbol.dispose]() {
      model.dispose();
    },
  };
}

/** A tokenizer reference: a folder holding tokenizer.json, or a model reference resolved like a model. */
async function resolveTokenizerDir(ref: string): Promise<string> {
  if (existsSync(join(ref, 'tokenizer.json'))) return ref;
  const dir = await resolveModelRef(ref);
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new TemperError(`tokenizer_name_or_path ${ref}: no tokenizer.json there`);
  return dir;
}
