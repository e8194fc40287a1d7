// `temper bench train` and `temper bench generate`: the real llama model class at the
// issue's shapes, side by side with the PyTorch peer (bench/torch_train.py,
// bench/torch_generate.py) in the same run. Prints tokens/s, the ratio and, for
// training, MFU against the measured sgemm peak. A benchmark, not a test.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import { findTorchPython, median, peerEnv, sgemmGflops } from './ops.js';

export const TRAIN_SHAPES = {
  tiny: { hidden: 256, inter: 688, layers: 4, heads: 8, kv: 4, vocab: 8192, theta: 1e4, batch: 8, seq: 256 },
  'smollm-135m': { hidden: 576, inter: 1536, layers: 30, heads: 9, kv: 3, vocab: 49152, theta: 1e5, batch: 4, seq: 256 },
} as const;
export type ShapeName = keyof typeof TRAIN_SHAPES;
export type Shape = (typeof TRAIN_SHAPES)[ShapeName];

export function buildModel(s: Shape): T.CausalLM {
  const config = T.parseConfig({
    model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: s.hidden, intermediate_size: s.inter,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kv, vocab_size: s.vocab,
    rope_theta: s.theta, tie_word_embeddings: true, rms_norm_eps: 1e-5, max_position_embeddings: 2048,
  }, `bench shape`);
  return T.createModel(config, T.randomInit(0.02, 0)) as T.CausalLM;
}

/** 6 x parameters used in matmuls (the tied embedding once, as lm_head) + causal attention, per token. */
function trainFlopsPerToken(s: Shape): number {
  const D = s.hidden / s.heads;
  const perLayer = 2 * s.hidden * s.heads * D + 2 * s.hidden * s.kv * D + 3 * s.hidden * s.inter;
  return 6 * (s.layers * perLayer + s.vocab * s.hidden) + 6 * s.layers * s.seq * s.hidden;
}

/**
 * The peers: PyTorch as Debian installs it (its BLAS is the pthread OpenBLAS, whose spinning
 * threads contend with torch's OpenMP pool), and the same PyTorch loading the OpenMP
 * OpenBLAS temper links, so no ratio rests on a packaging choice.
 */
function peerVariants(): { label: string; env: NodeJS.ProcessEnv }[] {
  const out = [{ label: '', env: peerEnv() }];
  const dir = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/openblas-openmp`;
  if (existsSync(join(dir, 'libblas.so.3')))
    out.push({ label: ' + OpenMP OpenBLAS', env: { ...peerEnv(), LD_LIBRARY_PATH: [dir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') } });
  return out;
}

type PeerResult = { ms: number; tokens_per_s: number; peer_name: string } | { note: string };

function runPeer(script: string, args: string[], env: NodeJS.ProcessEnv): PeerResult {
  const py = findTorchPython();
  if (!py) return { note: 'PyTorch not found (apt-get install python3-torch, or set TEMPER_TORCH_PYTHON): peer skipped' };
  const path = fileURLToPath(new URL(`../../bench/${script}`, import.meta.url));
  const r = spawnSync(py, [path, '--threads', String(T.getNumThreads()), ...args], { encoding: 'utf8', maxBuffer: 1 << 20, env });
  if (r.status !== 0) return { note: `peer failed: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}` };
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  return line ? JSON.parse(line) : { note: 'peer printed no result' };
}

export interface ModelBenchOptions {
  json: boolean;
  repeats: number;
  peer: boolean;
}

function report(o: ModelBenchOptions, row: Record<string, unknown>, text: string): void {
  process.stdout.write((o.json ? JSON.stringify(row) : text) + '\n');
}

/** Median (or mean) ms of one full fine-tuning step (forward, loss, backward, AdamW) of the llama class at a shape. */
export function timeTrainStep(s: Shape, repeats: number, stat: 'median' | 'mean' = 'median', warmup = 1): number {
  const model = buildModel(s).train();
  const params = model.parameters();
  const state = params.map((p) => [T.keep(T.zerosLike(p)), T.keep(T.zerosLike(p))] as const);
  const gen = new T.Generator(1);
  const ids = T.keep(T.randint(0, s.vocab, [s.batch, s.seq], { generator: gen }));
  let stepNo = 0;
  const step = () => {
    T.scope(() => {
      const { loss } = model.forward({ inputIds: ids, labels: ids });
      loss!.backward();
    });
    stepNo++;
    T.noGrad(() => params.forEach((p, i) => T.adamwStep(p, p.grad!, state[i]![0], state[i]![1], { lr: 1e-5, weightDecay: 0, step: stepNo })));
    model.zeroGrad();
  };
  for (let i = 0; i < warmup; i++) step();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    step();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ids.dispose();
  state.flat().forEach((t) => t.dispose());
  model.dispose();
  return stat === 'median' ? median(times) : times.reduce((a, b) => a + b, 0) / times.length;
}

/** One full fine-tuning step (forward, loss, backward, AdamW), median of `repeats`, against the peers. */
export function runTrainBench(shapeName: ShapeName, o: ModelBenchOptions): void {
  const s = TRAIN_SHAPES[shapeName];
  const gflops = sgemmGflops();
  const ms = timeTrainStep(s, o.repeats);
  const tokens = s.batch * s.seq;
  const tps = (tokens / ms) * 1e3;
  const mfu = (trainFlopsPerToken(s) * tps) / (gflops * 1e9);
  const peers: [string, PeerResult][] = o.peer
    ? peerVariants().map((v) => [v.label, runPeer('torch_train.py', ['--shape', shapeName, '--repeats', String(o.repeats)], v.env)])
    : [['', { note: 'peer skipped (--no_peer)' }]];
  for (const [label, peer] of peers) {
    const p = 'ms' in peer ? { ...peer, peer_name: peer.peer_name + label } : null;
    report(o, {
      suite: 'train', case: shapeName, temper: +ms.toFixed(1), peer: p ? +p.ms.toFixed(1) : null, peer_name: p?.peer_name ?? null, unit: 'ms',
      ratio: p ? +(p.ms / ms).toFixed(3) : null, temper_tokens_per_s: +tps.toFixed(1), peer_tokens_per_s: p ? +p.tokens_per_s.toFixed(1) : null,
      mfu: +mfu.toFixed(3), sgemm_gflops: +gflops.toFixed(1), threads: T.getNumThreads(), ...('note' in peer ? { note: peer.note } : {}),
    }, `train ${shapeName}: temper ${tps.toFixed(0)} tok/s (${ms.toFixed(0)} ms/step)   ${p ? `${p.peer_name} ${p.tokens_per_s.toFixed(0)} tok/s (${p.ms.toFixed(0)} ms/step)   ratio ${(p.ms / ms).toFixed(2)}x` : `peer n/a (${(peer as { note: string }).note})`}   MFU ${(mfu * 100).toFixed(1)}% of ${gflops.toFixed(0)} GFLOP/s sgemm`);
  }
}

/** Batched sampling of 64 sequences x 128 new tokens (32-token prompts), temperature 1, no early stop. */
export function runGenerateBench(o: ModelBenchOptions & { batch?: number; newTokens?: number; promptLength?: number }): void {
  const s = TRAIN_SHAPES['smollm-135m'];
  const B = o.batch ?? 64, N = o.newTokens ?? 128, P = o.promptLength ?? 32;
  const model = buildModel(s).eval();
  const gen = new T.Generator(2);
  const ids = T.randint(0, s.vocab, [B, P], { generator: gen });
  const host = ids.toArray();
  ids.dispose();
  const prompts = Array.from({ length: B }, (_, b) => Array.from(host.subarray(b * P, (b + 1) * P)));
  const t0 = process.hrtime.bigint();
  const out = T.generate(model, prompts, { maxNewTokens: N, temperature: 1, stopTokenIds: [], seed: 0 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  model.dispose();
  const produced = out.reduce((n, g) => n + g.tokens.length, 0);
  const tps = (produced / ms) * 1e3;
  const peers: [string, PeerResult][] = o.peer
    ? peerVariants().map((v) => [v.label, runPeer('torch_generate.py', ['--batch', String(B), '--new', String(N), '--prompt', String(P)], v.env)])
    : [['', { note: 'peer skipped (--no_peer)' }]];
  for (const [label, peer] of peers) {
    const p = 'ms' in peer ? { ...peer, peer_name: peer.peer_name + label } : null;
    report(o, {
      suite: 'generate', case: `smollm-135m_b${B}_n${N}`, temper: +ms.toFixed(1), peer: p ? +p.ms.toFixed(1) : null, peer_name: p?.peer_name ?? null, unit: 'ms',
      ratio: p ? +(p.ms / ms).toFixed(3) : null, temper_tokens_per_s: +tps.toFixed(1), peer_tokens_per_s: p ? +p.tokens_per_s.toFixed(1) : null,
      threads: T.getNumThreads(), ...('note' in peer ? { note: peer.note } : {}),
    }, `generate smollm-135m ${B}x${N}: temper ${tps.toFixed(0)} tok/s (${(ms / 1e3).toFixed(1)} s)   ${p ? `${p.peer_name} ${p.tokens_per_s.toFixed(0)} tok/s (${(p.ms / 1e3).toFixed(1)} s)   ratio ${(p.ms / ms).toFixed(2)}x` : `peer n/a (${(peer as { note: string }).note})`}`);
  }
}
