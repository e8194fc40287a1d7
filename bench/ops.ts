// `temper bench ops`: forward+backward timings of the core ops, side by side with PyTorch
// (bench/torch_ops.py) on the same machine in the same run. A benchmark, not a test.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import { envSetByTemper } from '../src/tensor/backend.js';
import type { Device, Tensor } from '../src/tensor/index.js';

export const OPS_CASES = ['matmul_1024', 'attention_T256', 'attention_T1024', 'rms_norm', 'rotary', 'cross_entropy', 'adamw_10M'] as const;
type CaseName = (typeof OPS_CASES)[number];

/** Builds the inputs once and returns one timed iteration (forward + backward). */
type Case = () => { step: () => void; cleanup: () => void };

/** A timed step: forward, backward with a fixed upstream gradient, grads freed; cleanup frees the leaves. */
export function fwdBwd(leaves: Tensor[], fwd: () => Tensor, gradShape?: readonly number[], device: Device = 'cpu'): { step: () => void; cleanup: () => void } {
  const upstream = gradShape ? T.randn(gradShape, { generator: new T.Generator(7), device }) : null;
  return {
    step: () =>
      T.scope(() => {
        const y = fwd();
        y.backward(upstream ?? undefined);
        for (const l of leaves) l.zeroGrad();
      }),
    cleanup: () => {
      upstream?.dispose();
      for (const l of leaves) l.dispose();
    },
  };
}

const gen = () => new T.Generator(0);

const CASES: { [C in CaseName]: Case } = {
  matmul_1024: () => {
    const g = gen();
    const a = T.randn([1024, 1024], { generator: g, requiresGrad: true });
    const b = T.randn([1024, 1024], { generator: g, requiresGrad: true });
    return fwdBwd([a, b], () => T.matmul(a, b), [1024, 1024]);
  },
  attention_T256: () => attentionCase(256),
  attention_T1024: () => attentionCase(1024),
  rms_norm: () => {
    const g = gen();
    const x = T.randn([4, 1024, 576], { generator: g, requiresGrad: true });
    const w = T.randn([576], { generator: g, requiresGrad: true });
    return fwdBwd([x, w], () => T.rmsNorm(x, w, 1e-6), [4, 1024, 576]);
  },
  rotary: () => {
    const g = gen();
    const x = T.randn([4, 1024, 9, 64], { generator: g, requiresGrad: true });
    const pos = T.noGrad(() => T.arange(0, 4 * 1024).reshape([4, 1024]));
    const inv = T.fromArray(Float32Array.from({ length: 32 }, (_, i) => 1 / Math.pow(10000, (2 * i) / 64)));
    const c = fwdBwd([x], () => T.rotary(x, pos, inv), [4, 1024, 9, 64]);
    return { step: c.step, cleanup: () => (c.cleanup(), pos.dispose(), inv.dispose()) };
  },
  cross_entropy: () => {
    const g = gen();
    const logits = T.randn([1024, 49152], { generator: g, requiresGrad: true });
    const labels = T.randint(0, 49152, [1024], { generator: g });
    const c = fwdBwd([logits], () => T.crossEntropy(logits, labels));
    return { step: c.step, cleanup: () => (c.cleanup(), labels.dispose()) };
  },
  adamw_10M: () => {
    const g = gen();
    const n = 10_000_000;
    const p = T.randn([n], { generator: g });
    const grad = T.randn([n], { generator: g });
    const m = T.zeros([n]);
    const v = T.zeros([n]);
    let step = 0;
    return {
      step: () => T.adamwStep(p, grad, m, v, { lr: 1e-3, weightDecay: 0.01, step: ++step }),
      cleanup: () => [p, grad, m, v].forEach((t) => t.dispose()),
    };
  },
};

function attentionCase(Tn: number): ReturnType<Case> {
  const g = gen();
  const q = T.randn([4, Tn, 9, 64], { generator: g, requiresGrad: true });
  const k = T.randn([4, Tn, 3, 64], { generator: g, requiresGrad: true });
  const v = T.randn([4, Tn, 3, 64], { generator: g, requiresGrad: true });
  return fwdBwd([q, k, v], () => T.attention(q, k, v, { causal: true }), [4, Tn, 9, 64]);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function timeCase(name: CaseName, repeats: number): number {
  const c = CASES[name]();
  try {
    for (let i = 0; i < 2; i++) c.step();
    const times: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = process.hrtime.bigint();
      c.step();
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return median(times);
  } finally {
    c.cleanup();
  }
}

/** sgemm throughput of the BLAS at 1024^3 (forward only), GFLOP/s. */
export function sgemmGflops(): number {
  const g = gen();
  const a = T.randn([1024, 1024], { generator: g });
  const b = T.randn([1024, 1024], { generator: g });
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = process.hrtime.bigint();
    T.matmul(a, b).dispose();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  a.dispose();
  b.dispose();
  return (2 * 1024 ** 3) / median(times.slice(2)) / 1e9;
}

interface PeerResult {
  name: string;
  ms: Map<string, number>;
  note?: string;
}

/** The environment a PyTorch peer starts with: ours, less the thread tuning temper applied to itself. */
export function peerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of envSetByTemper) delete env[k];
  return env;
}

export function findTorchPython(): string | null {
  const candidates = [process.env.TEMPER_TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => !!c);
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}

function runPeer(cases: readonly string[], repeats: number): PeerResult {
  const py = findTorchPython();
  if (!py) return { name: 'torch', ms: new Map(), note: 'PyTorch not found (apt-get install python3-torch, or set TEMPER_TORCH_PYTHON): peer skipped' };
  const script = fileURLToPath(new URL('../../bench/torch_ops.py', import.meta.url));
  if (!existsSync(script)) return { name: 'torch', ms: new Map(), note: `peer script missing: ${script}` };
  const r = spawnSync(py, [script, '--threads', String(T.getNumThreads()), '--repeats', String(repeats), '--cases', cases.join(',')], {
    env: peerEnv(),
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) return { name: 'torch', ms: new Map(), note: `peer failed: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}` };
  const ms = new Map<string, number>();
  let name = 'torch cpu';
  for (const line of r.stdout.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const o = JSON.parse(line) as { case: string; ms?: number; peer_name?: string; torch?: string };
    if (o.case === '_meta') name = `torch ${o.torch} cpu`;
    else if (o.ms !== undefined) {
      ms.set(o.case, o.ms);
      if (o.peer_name) name = o.peer_name;
    }
  }
  return { name, ms };
}

export interface OpsBenchOptions {
  json: boolean;
  repeats: number;
  cases?: string[];
  peer: boolean;
}

export interface OpsBenchRow {
  suite: 'ops';
  case: string;
  temper: number;
  peer: number | null;
  peer_name: string | null;
  unit: 'ms';
  ratio: number | null;
}

/** Runs the suite, prints as it goes, and returns the rows. */
export async function runOpsBench(o: OpsBenchOptions): Promise<OpsBenchRow[]> {
  const cases = (o.cases ?? [...OPS_CASES]) as CaseName[];
  for (const c of cases) if (!(c in CASES)) throw new T.TemperError(`bench ops: unknown case '${c}' (cases: ${OPS_CASES.join(', ')})`);
  const threads = T.getNumThreads();
  const gflops = sgemmGflops();
  const out = (s: string) => process.stdout.write(s + '\n');
  if (o.json) out(JSON.stringify({ suite: 'ops', case: '_meta', threads, sgemm_gflops: +gflops.toFixed(1) }));
  else out(`temper bench ops: ${threads} threads; BLAS sgemm 1024^3: ${gflops.toFixed(1)} GFLOP/s`);
  const mine = new Map<string, number>();
  for (const c of cases) {
    const ms = timeCase(c, o.repeats);
    mine.set(c, ms);
    if (!o.json) process.stderr.write(`  temper ${c}: ${ms.toFixed(2)} ms\n`);
  }
  const peer = o.peer ? runPeer(cases, o.repeats) : { name: 'torch', ms: new Map<string, number>(), note: 'peer skipped (--no_peer)' };
  if (peer.note && !o.json) out(`note: ${peer.note}`);
  const rows: OpsBenchRow[] = cases.map((c) => {
    const p = peer.ms.get(c) ?? null;
    const t = mine.get(c)!;
    return { suite: 'ops', case: c, temper: +t.toFixed(3), peer: p === null ? null : +p.toFixed(3), peer_name: p === null ? null : peer.name, unit: 'ms', ratio: p === null ? null : +(p / t).toFixed(3) };
  });
  for (const r of rows) {
    if (o.json) out(JSON.stringify(r));
    else
      out(
        `${r.case.padEnd(16)} temper ${r.temper.toFixed(2).padStart(9)} ms   ${r.peer_name ?? 'peer'} ${r.peer === null ? '      n/a' : r.peer.toFixed(2).padStart(9) + ' ms'}   ratio ${r.ratio === null ? 'n/a' : r.ratio.toFixed(2) + 'x'}`,
      );
  }
  if (o.json && peer.note) out(JSON.stringify({ suite: 'ops', case: '_note', note: peer.note }));
  return rows;
}
