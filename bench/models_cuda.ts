// `temper bench train --device cuda[:N]` and `temper bench generate --device cuda[:N]`: the
// real model classes at GPU sizes (Qwen2.5-0.5B by default), side by side in the same run
// with transformers on the same GPU (bench/hf_train_cuda.py, bench/hf_generate_cuda.py),
// both built from one config.json. A benchmark, not a test. CUDA kernels are asynchronous:
// every timed region synchronizes before and after.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import type { Device } from '../src/tensor/index.js';
import { median, peerEnv } from './ops.js';
import { cudaTorchPython } from './ops_cuda.js';
import { TRAIN_SHAPES } from './models.js';

/** A shape: the config.json both sides build from, and the default batch and sequence length. */
interface CudaShape {
  config: Record<string, unknown>;
  batch: number;
  seq: number;
}

const QWEN25_05B = {
  model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
  num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, rope_theta: 1e6, rms_norm_eps: 1e-6, tie_word_embeddings: true,
  max_position_embeddings: 32768, use_sliding_window: false, hidden_act: 'silu', initializer_range: 0.02, attention_dropout: 0,
};

/** The CPU suite's llama shapes, as config.json, for quick checks on the GPU. */
function llamaShape(name: keyof typeof TRAIN_SHAPES): CudaShape {
  const s = TRAIN_SHAPES[name];
  return {
    config: {
      model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: s.hidden, intermediate_size: s.inter, num_hidden_layers: s.layers,
      num_attention_heads: s.heads, num_key_value_heads: s.kv, vocab_size: s.vocab, rope_theta: s.theta, tie_word_embeddings: true,
      rms_norm_eps: 1e-5, max_position_embeddings: 2048, hidden_act: 'silu', initializer_range: 0.02, attention_dropout: 0,
    },
    batch: s.batch,
    seq: s.seq,
  };
}

export const CUDA_TRAIN_SHAPES: Record<string, CudaShape> = {
  'qwen2.5-0.5b': { config: QWEN25_05B, batch: 8, seq: 2048 },
  // Qwen2-architecture smoke shape (qkv bias, tied, GQA), seconds per run.
  'qwen2-tiny': { config: { ...QWEN25_05B, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 8192 }, batch: 8, seq: 256 },
  tiny: llamaShape('tiny'),
  'smollm-135m': llamaShape('smollm-135m'),
};
export const DEFAULT_CUDA_SHAPE = 'qwen2.5-0.5b';

/** Dims of a config.json as the FLOP count needs them. */
function dims(c: Record<string, unknown>) {
  const n = (k: string) => c[k] as number;
  const heads = n('num_attention_heads');
  return {
    hidden: n('hidden_size'), inter: n('intermediate_size'), layers: n('num_hidden_layers'), heads,
    kv: n('num_key_value_heads'), vocab: n('vocab_size'), headDim: (c.head_dim as number | undefined) ?? n('hidden_size') / heads,
  };
}

/**
 * Model FLOPs per trained token (as bench/models.ts counts them): 6 x parameters used in
 * matmuls (a tied embedding once, as the LM head) + causal attention (QK^T and PV over half
 * the sequence on average), forward and backward. Recomputation (checkpointing) is not counted.
 */
export function trainFlopsPerToken(c: Record<string, unknown>, seq: number): number {
  const d = dims(c);
  const perLayer = 2 * d.hidden * d.heads * d.headDim + 2 * d.hidden * d.kv * d.headDim + 3 * d.hidden * d.inter;
  return 6 * (d.layers * perLayer + d.vocab * d.hidden) + 6 * d.layers * seq * d.heads * d.headDim;
}

const GEMM_N = 8192;

/** One line of an error, without a native stack. */
function errLine(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return (s.trim().split('\n')[0] ?? '').slice(0, 300);
}

/** 'cuda' -> 'cuda:0'; a one-line TemperError when temper has no CUDA or no such device. */
export function cudaDeviceFor(suite: string, device: string): Device {
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (!m) throw new T.TemperError(`bench ${suite}: unknown --device "${device}" (use cpu, cuda or cuda:N)`);
  const index = Number(m[1] ?? 0);
  let count: number;
  try {
    count = T.cudaDeviceCount();
  } catch (e) {
    throw new T.TemperError(`bench ${suite} --device ${device}: the CUDA backend failed to load: ${errLine(e)}`);
  }
  if (count === 0)
    throw new T.TemperError(
      `bench ${suite} --device ${device}: temper has no CUDA here (built without it, or no GPU visible: cudaDeviceCount() = 0); ` +
        'build it with `npm run build:cuda` on a machine with the CUDA toolkit, or use --device cpu.',
    );
  if (index >= count) throw new T.TemperError(`bench ${suite} --device ${device}: only ${count} CUDA device(s) visible (cuda:0..cuda:${count - 1})`);
  return `cuda:${index}` as Device;
}

/** Median TFLOP/s of temper's GEMM_N^3 bf16 matmul (f32 accumulation), as bench/hf_train_cuda.py times torch's. */
export function bf16GemmTflops(dev: Device, n = GEMM_N, inner = 10, repeats = 5, warmup = 3): number {
  const g = new T.Generator(0);
  const [a, b] = T.noGrad(() =>
    [0, 1].map(() => {
      const f = T.randn([n, n], { generator: g, device: dev });
      const h = f.to('bf16');
      f.dispose();
      return h;
    }),
  ) as [T.Tensor, T.Tensor];
  try {
    const times: number[] = [];
    T.noGrad(() => {
      for (let i = 0; i < warmup; i++) T.matmul(a, b).dispose();
      for (let r = 0; r < repeats; r++) {
        T.synchronize(dev);
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < inner; i++) T.matmul(a, b).dispose();
        T.synchronize(dev);
        times.push(Number(process.hrtime.bigint() - t0) / 1e9 / inner);
      }
    });
    return (2 * n ** 3) / median(times) / 1e12;
  } finally {
    a.dispose();
    b.dispose();
    T.emptyCache(dev);
  }
}

function buildModel(shape: CudaShape, what: string): T.CausalLM {
  const config = T.parseConfig(structuredClone(shape.config), what);
  return T.createModel(config, T.randomInit(0.02, 0)) as T.CausalLM;
}

type Peer = Record<string, unknown> & { ms?: number; tokens_per_s?: number; peer_name?: string; error?: string; note?: string };

/** Runs a python peer on the same GPU; its last JSON line, or a note saying why there is none. */
function runPeer(script: string, args: string[], input?: string): Peer {
  const py = cudaTorchPython();
  const path = fileURLToPath(new URL(`../../bench/${script}`, import.meta.url));
  if (!existsSync(path)) return { note: `peer script missing: ${path}` };
  const r = spawnSync(py, [path, ...args], { env: peerEnv(), encoding: 'utf8', maxBuffer: 1 << 24, input, stdio: ['pipe', 'pipe', 'pipe'] });
  if (r.error) return { note: `peer ${py} could not start (${errLine(r.error)}); set TEMPER_TORCH_PYTHON to a python with CUDA torch and transformers` };
  const line = (r.stdout ?? '').trim().split('\n').filter((l) => l.trim().startsWith('{')).pop();
  if (r.status !== 0 || !line) {
    const last = (r.stderr || '').trim().split('\n').slice(-1)[0] || `exit status ${r.status ?? r.signal}`;
    return { note: `peer (${py} ${script}) failed: ${last}` };
  }
  return JSON.parse(line) as Peer;
}

const GiB = 1024 ** 3;
const gib = (b: number | null | undefined) => (b == null ? 'n/a' : `${(b / GiB).toFixed(1)} GiB`);
const round = (x: number | null | undefined, d: number) => (x == null || !Number.isFinite(x) ? null : +x.toFixed(d));
const out = (s: string) => process.stdout.write(s + '\n');
const progress = (o: { json: boolean }, s: string) => {
  if (!o.json) process.stderr.write(s + '\n');
};

export interface TrainCudaBenchOptions {
  device: string;
  shape: string;
  json: boolean;
  repeats: number;
  warmup?: number;
  batch?: number;
  seq?: number;
  checkpointing: boolean;
  /** The LM head fused with cross-entropy (linearCrossEntropy, no logits); false: logits + crossEntropy. Default true. */
  fusedLoss?: boolean;
  peer: boolean;
}

/** The fields both GPU model benches report (JSON lines, as the CPU suites). */
interface CudaBenchRow {
  case: string;
  device: string;
  device_name: string;
  temper: number | null;
  peer: number | null;
  peer_name: string | null;
  unit: 'ms';
  ratio: number | null;
  temper_tokens_per_s: number | null;
  peer_tokens_per_s: number | null;
}

export interface TrainCudaBenchRow extends CudaBenchRow {
  suite: 'train';
  mfu: number | null;
  peer_mfu: number | null;
  bf16_gemm_tflops: number | null;
  temper_gemm_tflops: number | null;
  peer_gemm_tflops: number | null;
  temper_peak_bytes: number | null;
  peer_peak_bytes: number | null;
  temper_loss: number | null;
  peer_loss: number | null;
  batch: number;
  seq: number;
  checkpointing: boolean;
  fused_loss: boolean;
  error?: string;
  peer_error?: string;
  note?: string;
}

interface TrainResult {
  ms: number | null;
  loss: number | null;
  peakBytes: number | null;
  error?: string;
}

/**
 * One full fine-tuning step on the device: forward and loss under autocast('bf16'), backward,
 * clipping at 1.0 (folded into the update as a gradient scale, as the trainer does) and AdamW;
 * weights, gradients, AdamW moments, norms and the loss in f32. Median of `repeats` after
 * `warmup` steps. Frees everything (and the allocator cache) before it returns.
 */
export function timeTrainStepCuda(
  shape: CudaShape, dev: Device, o: { batch: number; seq: number; repeats: number; warmup: number; checkpointing: boolean; fusedLoss: boolean },
): TrainResult {
  const model = buildModel(shape, 'bench shape').to(dev).train();
  if (o.checkpointing) model.gradientCheckpointingEnable();
  const params = model.parameters();
  const state = params.map((p) => [T.keep(T.zerosLike(p)), T.keep(T.zerosLike(p))] as const);
  const ids = T.keep(T.randint(0, model.config.vocabSize, [o.batch, o.seq], { generator: new T.Generator(1), device: dev }));
  let stepNo = 0;
  let loss = NaN;
  const step = () => {
    T.scope(() => {
      const l = T.autocast('bf16', () =>
        o.fusedLoss ? model.forward({ inputIds: ids, labels: ids, returnLogits: false }).loss : model.forward({ inputIds: ids, labels: ids }).loss!,
      );
      l.backward();
      loss = l.item();
    });
    const grads = params.map((p) => p.grad!);
    const norm = T.globalNorm(grads);
    const scale = Number.isFinite(norm) ? Math.min(1, 1.0 / (norm + 1e-6)) : 1;
    stepNo++;
    T.noGrad(() => params.forEach((p, i) => T.adamwStep(p, p.grad!, state[i]![0], state[i]![1], { lr: 1e-5, weightDecay: 0, step: stepNo, gradScale: scale })));
    model.zeroGrad();
  };
  const res: TrainResult = { ms: null, loss: null, peakBytes: null };
  try {
    T.synchronize(dev);
    T.resetPeakMemory(dev);
    const times: number[] = [];
    for (let i = 0; i < o.warmup + o.repeats; i++) {
      T.synchronize(dev);
      const t0 = process.hrtime.bigint();
      step();
      T.synchronize(dev);
      if (i >= o.warmup) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    res.ms = median(times);
    res.loss = loss;
  } catch (e) {
    res.error = errLine(e);
  } finally {
    try {
      res.peakBytes = T.memoryStats(dev).peakBytes;
    } catch {
      /* the device may be unusable after a failure */
    }
    ids.dispose();
    state.flat().forEach((t) => t.dispose());
    model.dispose();
    try {
      T.emptyCache(dev); // the peer is another process on the same GPU
    } catch {
      /* reported above */
    }
  }
  return res;
}

/** `temper bench train --device cuda[:N]`: temper and transformers, one step each, median of `repeats`. */
export function runTrainCudaBench(o: TrainCudaBenchOptions): TrainCudaBenchRow {
  const shape = CUDA_TRAIN_SHAPES[o.shape];
  if (!shape) throw new T.TemperError(`bench train --device cuda: unknown --shape '${o.shape}' (${Object.keys(CUDA_TRAIN_SHAPES).join(', ')})`);
  const dev = cudaDeviceFor('train', o.device);
  const B = o.batch ?? shape.batch, S = o.seq ?? shape.seq;
  const warmup = o.warmup ?? 2, fusedLoss = o.fusedLoss ?? true;
  const name = T.deviceName(dev);
  const caseName = `${o.shape}_b${B}_s${S}${o.checkpointing ? '_ckpt' : ''}`;
  progress(o, `temper bench train on ${dev} (${name}): ${o.shape}, batch ${B} x seq ${S}, bf16 autocast, AdamW, clip 1.0` +
    `${o.checkpointing ? ', gradient checkpointing' : ''}, ${fusedLoss ? 'fused LM head + cross-entropy' : 'logits + cross-entropy'}; median of ${o.repeats} after ${warmup} warm-ups`);

  let temperGemm: number | null = null;
  let gemmError: string | undefined;
  try {
    temperGemm = bf16GemmTflops(dev);
    progress(o, `  temper bf16 GEMM ${GEMM_N}^3: ${temperGemm.toFixed(1)} TFLOP/s`);
  } catch (e) {
    gemmError = errLine(e);
  }
  const mine = timeTrainStepCuda(shape, dev, { batch: B, seq: S, repeats: o.repeats, warmup, checkpointing: o.checkpointing, fusedLoss });
  if (mine.ms !== null) progress(o, `  temper: ${mine.ms.toFixed(1)} ms/step, loss ${mine.loss?.toFixed(4)}, peak ${gib(mine.peakBytes)}`);
  else progress(o, `  temper failed: ${mine.error}`);

  let peer: Peer = { note: 'peer skipped (--no_peer)' };
  if (o.peer) {
    progress(o, '  running the transformers peer ...');
    const args = ['--device', dev, '--config', JSON.stringify(shape.config), '--batch', String(B), '--seq', String(S),
      '--repeats', String(o.repeats), '--warmup', String(warmup)];
    if (o.checkpointing) args.push('--checkpointing');
    peer = runPeer('hf_train_cuda.py', args);
  }
  const peerGemm = typeof peer.gemm_tflops === 'number' ? peer.gemm_tflops : null;
  const peak = Math.max(temperGemm ?? 0, peerGemm ?? 0) || null;
  const tokens = B * S;
  const flopsPerToken = trainFlopsPerToken(shape.config, S);
  const tps = mine.ms === null ? null : (tokens / mine.ms) * 1e3;
  const peerTps = peer.ms === undefined ? null : (tokens / peer.ms) * 1e3;
  const mfu = (t: number | null) => (t === null || peak === null ? null : (flopsPerToken * t) / (peak * 1e12));
  const notes = [gemmError && `temper GEMM failed: ${gemmError}`, peer.note].filter(Boolean).join('; ');
  const row: TrainCudaBenchRow = {
    suite: 'train', case: caseName, device: dev, device_name: name,
    temper: round(mine.ms, 2), peer: round(peer.ms, 2), peer_name: peer.peer_name ?? null, unit: 'ms',
    ratio: mine.ms !== null && peer.ms !== undefined ? round(peer.ms / mine.ms, 3) : null,
    temper_tokens_per_s: round(tps, 0), peer_tokens_per_s: round(peerTps, 0),
    mfu: round(mfu(tps), 4), peer_mfu: round(mfu(peerTps), 4),
    bf16_gemm_tflops: round(peak, 1), temper_gemm_tflops: round(temperGemm, 1), peer_gemm_tflops: round(peerGemm, 1),
    temper_peak_bytes: mine.peakBytes, peer_peak_bytes: typeof peer.peak_bytes === 'number' ? peer.peak_bytes : null,
    temper_loss: round(mine.loss, 4), peer_loss: typeof peer.loss === 'number' ? round(peer.loss, 4) : null,
    batch: B, seq: S, checkpointing: o.checkpointing, fused_loss: fusedLoss,
    ...(mine.error ? { error: mine.error } : {}), ...(peer.error ? { peer_error: peer.error } : {}), ...(notes ? { note: notes } : {}),
  };
  const peerDevice = typeof peer.device_name === 'string' ? peer.device_name : null;
  if (o.json) out(JSON.stringify(row));
  else {
    const pct = (x: number | null) => (x === null ? 'n/a' : `${(x * 100).toFixed(1)}%`);
    const tflops = (x: number | null) => (x === null ? 'n/a' : x.toFixed(x >= 10 ? 0 : 2));
    const hint = (e: string | undefined) => (e && /memory/i.test(e) && !o.checkpointing ? ' (try --checkpointing, or a smaller --batch)' : '');
    out(`train ${caseName} on ${name}${o.checkpointing ? ' (checkpointing)' : ''}:`);
    out(`  temper  ${tps === null ? `failed: ${mine.error}${hint(mine.error)}` : `${tps.toFixed(0)} tok/s (${mine.ms!.toFixed(0)} ms/step)   MFU ${pct(row.mfu)}   peak ${gib(mine.peakBytes)}   loss ${row.temper_loss}`}`);
    if (peer.ms !== undefined)
      out(`  peer    ${peerTps!.toFixed(0)} tok/s (${peer.ms.toFixed(0)} ms/step)   MFU ${pct(row.peer_mfu)}   peak ${gib(row.peer_peak_bytes)}   loss ${row.peer_loss}   [${peer.peer_name}]`);
    else if (peer.error) out(`  peer    failed: ${peer.error}${hint(peer.error)} (peak ${gib(row.peer_peak_bytes)})   [${peer.peer_name}]`);
    else out(`  peer    n/a (${peer.note})`);
    out(`  ratio   ${row.ratio === null ? 'n/a' : `${row.ratio.toFixed(2)}x`} (peer ms / temper ms)   bf16 GEMM ${GEMM_N}^3: temper ${tflops(temperGemm)}, torch ${tflops(peerGemm)} TFLOP/s; MFU vs ${tflops(peak)} TFLOP/s, ${(flopsPerToken / 1e9).toFixed(2)} GFLOP/token`);
    if (gemmError) out(`  note: temper GEMM failed: ${gemmError}`);
  }
  if (peerDevice && !name.startsWith(peerDevice)) {
    const warn = `temper's ${dev} is "${name}" but torch's is "${peerDevice}": not the same GPU model (CUDA_VISIBLE_DEVICES?)`;
    out(o.json ? JSON.stringify({ suite: 'train', case: '_note', note: warn }) : `warning: ${warn}`);
  }
  return row;
}

export interface GenerateCudaBenchOptions {
  device: string;
  shape: string;
  json: boolean;
  batch?: number;
  newTokens?: number;
  promptLength?: number;
  /** 0: greedy (default); > 0: sampling at that temperature, no top-k / top-p, on both sides. */
  temperature?: number;
  peer: boolean;
}

export interface GenerateCudaBenchRow extends CudaBenchRow {
  suite: 'generate';
  temper_peak_bytes: number | null;
  peer_peak_bytes: number | null;
  peer_first_ms: number | null;
  batch: number;
  new_tokens: number;
  prompt_length: number;
  temperature: number;
  error?: string;
  peer_error?: string;
  note?: string;
}

/**
 * `temper bench generate --device cuda[:N]`: B random prompts of P tokens, N new tokens each
 * (no stop token), weights in bf16 (model.to('bf16')), on both sides from the same prompts.
 * temper warms up on the full batch for 4 tokens; the peer's first (compiling) run is a warm-up.
 */
export function runGenerateCudaBench(o: GenerateCudaBenchOptions): GenerateCudaBenchRow {
  const shape = CUDA_TRAIN_SHAPES[o.shape];
  if (!shape) throw new T.TemperError(`bench generate --device cuda: unknown --shape '${o.shape}' (${Object.keys(CUDA_TRAIN_SHAPES).join(', ')})`);
  const dev = cudaDeviceFor('generate', o.device);
  const B = o.batch ?? 256, N = o.newTokens ?? 256, P = o.promptLength ?? 32, temperature = o.temperature ?? 0;
  const name = T.deviceName(dev);
  const mode = temperature > 0 ? `temperature ${temperature}` : 'greedy';
  const caseName = `${o.shape}_b${B}_p${P}_n${N}${temperature > 0 ? `_t${temperature}` : ''}`;
  progress(o, `temper bench generate on ${dev} (${name}): ${o.shape}, ${B} prompts x ${P} tokens -> ${N} new tokens, bf16 weights, ${mode}`);

  const V = shape.config.vocab_size as number;
  const host = T.randint(0, V, [B, P], { generator: new T.Generator(2) });
  const flat = host.toArray();
  host.dispose();
  const prompts = Array.from({ length: B }, (_, b) => Array.from(flat.subarray(b * P, (b + 1) * P)));

  let ms: number | null = null, produced = 0, peakBytes: number | null = null, error: string | undefined;
  const model = buildModel(shape, 'bench shape').to('bf16').to(dev).eval();
  try {
    const opts = { temperature, stopTokenIds: [] as number[], seed: 0 };
    T.generate(model, prompts, { ...opts, maxNewTokens: Math.min(4, N) }); // warm-up: cuBLAS handles, allocator, kernels
    T.synchronize(dev);
    T.resetPeakMemory(dev);
    const t0 = process.hrtime.bigint();
    const gens = T.generate(model, prompts, { ...opts, maxNewTokens: N });
    T.synchronize(dev);
    ms = Number(process.hrtime.bigint() - t0) / 1e6;
    produced = gens.reduce((n, g) => n + g.tokens.length, 0);
    peakBytes = T.memoryStats(dev).peakBytes;
  } catch (e) {
    error = errLine(e);
  } finally {
    model.dispose();
    try {
      T.emptyCache(dev);
    } catch {
      /* reported above */
    }
  }
  const tps = ms === null ? null : (produced / ms) * 1e3;
  if (ms !== null) progress(o, `  temper: ${(ms / 1e3).toFixed(2)} s, ${produced} tokens, peak ${gib(peakBytes)}`);
  else progress(o, `  temper failed: ${error}`);

  let peer: Peer = { note: 'peer skipped (--no_peer)' };
  if (o.peer) {
    progress(o, '  running the transformers peer (its first run compiles; not timed) ...');
    peer = runPeer('hf_generate_cuda.py', ['--device', dev, '--config', JSON.stringify(shape.config), '--new', String(N), '--temperature', String(temperature)],
      JSON.stringify(prompts));
  }
  const peerTps = typeof peer.tokens_per_s === 'number' ? peer.tokens_per_s : null;
  const notes: string[] = [];
  if (peer.note) notes.push(peer.note);
  if (ms !== null && produced !== B * N) notes.push(`temper produced ${produced} tokens, expected ${B * N}`);
  if (typeof peer.new_tokens === 'number' && peer.new_tokens !== B * N) notes.push(`peer produced ${peer.new_tokens} tokens, expected ${B * N}`);
  const row: GenerateCudaBenchRow = {
    suite: 'generate', case: caseName, device: dev, device_name: name,
    temper: round(ms, 1), peer: round(peer.ms, 1), peer_name: peer.peer_name ?? null, unit: 'ms',
    ratio: ms !== null && peer.ms !== undefined ? round(peer.ms / ms, 3) : null,
    temper_tokens_per_s: round(tps, 0), peer_tokens_per_s: round(peerTps, 0),
    temper_peak_bytes: peakBytes, peer_peak_bytes: typeof peer.peak_bytes === 'number' ? peer.peak_bytes : null,
    peer_first_ms: typeof peer.first_ms === 'number' ? round(peer.first_ms, 1) : null,
    batch: B, new_tokens: N, prompt_length: P, temperature,
    ...(error ? { error } : {}), ...(peer.error ? { peer_error: peer.error } : {}), ...(notes.length ? { note: notes.join('; ') } : {}),
  };
  if (o.json) out(JSON.stringify(row));
  else {
    out(`generate ${caseName} on ${name} (${mode}):`);
    out(`  temper  ${tps === null ? `failed: ${error}` : `${tps.toFixed(0)} tok/s (${(ms! / 1e3).toFixed(2)} s)   peak ${gib(peakBytes)}`}`);
    if (peerTps !== null)
      out(`  peer    ${peerTps.toFixed(0)} tok/s (${(peer.ms! / 1e3).toFixed(2)} s; first, compiling run ${((row.peer_first_ms ?? 0) / 1e3).toFixed(1)} s)   peak ${gib(row.peer_peak_bytes)}   [${peer.peer_name}]`);
    else if (peer.error) out(`  peer    failed: ${peer.error}   [${peer.peer_name}]`);
    else out(`  peer    n/a (${peer.note})`);
    out(`  ratio   ${row.ratio === null ? 'n/a' : `${row.ratio.toFixed(2)}x`} (peer ms / temper ms)`);
    for (const n of notes.filter((n) => n !== peer.note)) out(`  note: ${n}`);
  }
  const peerDevice = typeof peer.device_name === 'string' ? peer.device_name : null;
  if (peerDevice && !name.startsWith(peerDevice)) {
    const warn = `temper's ${dev} is "${name}" but torch's is "${peerDevice}": not the same GPU model (CUDA_VISIBLE_DEVICES?)`;
    out(o.json ? JSON.stringify({ suite: 'generate', case: '_note', note: warn }) : `warning: ${warn}`);
  }
  return row;
}
