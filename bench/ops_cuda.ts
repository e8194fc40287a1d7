// `temper bench ops --device cuda[:N]`: the ops suite at GPU sizes, side by side with PyTorch
// on the same GPU in the same run (bench/torch_ops_cuda.py). A benchmark, not a test.
// CUDA kernels are asynchronous: every timed sample synchronizes before and after.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import type { Device, Tensor } from '../src/tensor/index.js';
import { fwdBwd, median, peerEnv } from './ops.js';

const MM = 4096;
const MM_FLOPS = 2 * MM ** 3;

/** name -> shape description and, for GEMMs, FLOPs per product (TFLOP/s is printed for those). */
const CASE_INFO = {
  matmul_4096_bf16: { shape: '4096^3 bf16 (f32 acc), fwd', flops: MM_FLOPS },
  matmul_4096_f32: { shape: '4096^3 f32, fwd', flops: MM_FLOPS },
  matmul_4096_tf32: { shape: '4096^3 f32 via TF32, fwd', flops: MM_FLOPS },
  attention_T2048: { shape: 'B8 H16 T2048 D64 causal f32', flops: 0 },
  cross_entropy_152k: { shape: '8192 x 151936 f32, mean', flops: 0 },
  adamw_500M: { shape: 'one step, 500M f32 params', flops: 0 },
  rms_norm: { shape: '16384 x 4096', flops: 0 },
  softmax: { shape: '16384 x 8192', flops: 0 },
  rotary: { shape: 'B8 T2048 H16 D64', flops: 0 },
  silu_mul: { shape: 'silu(a) * b, 16384 x 8192', flops: 0 },
  add_bcast: { shape: '(16384 x 8192) + (8192)', flops: 0 },
  sum_rows: { shape: 'sum(-1) of 16384 x 8192', flops: 0 },
} as const;

export const OPS_CUDA_CASES = Object.keys(CASE_INFO) as (keyof typeof CASE_INFO)[];
type CaseName = keyof typeof CASE_INFO;

/** One timed sample runs `step` once and counts as `inner` ops (ms are reported per op). */
interface Built {
  step: () => void;
  cleanup: () => void;
  inner?: number;
}
type Case = (dev: Device) => Built;

const gen = () => new T.Generator(0);

function matmulCase(dtype: 'bf16' | 'f32', tf32: boolean, inner = 10): Case {
  return (dev) => {
    const g = gen();
    const [a, b] = T.noGrad(() =>
      [0, 1].map(() => {
        const f = T.randn([MM, MM], { generator: g, device: dev });
        if (dtype === 'f32') return f;
        const h = f.to(dtype);
        f.dispose();
        return h;
      }),
    ) as [Tensor, Tensor];
    return {
      inner,
      step: () => {
        T.setAllowTf32(tf32);
        try {
          T.noGrad(() => {
            for (let i = 0; i < inner; i++) T.matmul(a, b).dispose();
          });
        } finally {
          T.setAllowTf32(false);
        }
      },
      cleanup: () => (a.dispose(), b.dispose()),
    };
  };
}

const CASES: { [C in CaseName]: Case } = {
  matmul_4096_bf16: matmulCase('bf16', false),
  matmul_4096_f32: matmulCase('f32', false),
  matmul_4096_tf32: matmulCase('f32', true),
  attention_T2048: (dev) => {
    const [B, Tn, H, D] = [8, 2048, 16, 64];
    const g = gen();
    const q = T.randn([B, Tn, H, D], { generator: g, device: dev, requiresGrad: true });
    const k = T.randn([B, Tn, H, D], { generator: g, device: dev, requiresGrad: true });
    const v = T.randn([B, Tn, H, D], { generator: g, device: dev, requiresGrad: true });
    return fwdBwd([q, k, v], () => T.attention(q, k, v, { causal: true }), [B, Tn, H, D], dev);
  },
  cross_entropy_152k: (dev) => {
    const [N, V] = [8192, 151936];
    const g = gen();
    const logits = T.randn([N, V], { generator: g, device: dev, requiresGrad: true });
    const labels = T.randint(0, V, [N], { generator: g, device: dev });
    const c = fwdBwd([logits], () => T.crossEntropy(logits, labels), undefined, dev);
    return { step: c.step, cleanup: () => (c.cleanup(), labels.dispose()) };
  },
  adamw_500M: (dev) => {
    const n = 500_000_000;
    const g = gen();
    const p = T.randn([n], { generator: g, device: dev });
    const grad = T.randn([n], { generator: g, device: dev });
    const m = T.zeros([n], { device: dev });
    const v = T.zeros([n], { device: dev });
    let step = 0;
    return {
      step: () => T.adamwStep(p, grad, m, v, { lr: 1e-3, weightDecay: 0.01, step: ++step }),
      cleanup: () => [p, grad, m, v].forEach((t) => t.dispose()),
    };
  },
  rms_norm: (dev) => {
    const [N, C] = [16384, 4096];
    const g = gen();
    const x = T.randn([N, C], { generator: g, device: dev, requiresGrad: true });
    const w = T.randn([C], { generator: g, device: dev, mean: 1, std: 0.1, requiresGrad: true });
    return fwdBwd([x, w], () => T.rmsNorm(x, w, 1e-6), [N, C], dev);
  },
  softmax: (dev) => {
    const [N, C] = [16384, 8192];
    const x = T.randn([N, C], { generator: gen(), device: dev, requiresGrad: true });
    return fwdBwd([x], () => T.softmax(x, -1), [N, C], dev);
  },
  rotary: (dev) => {
    const [B, Tn, H, D] = [8, 2048, 16, 64];
    const x = T.randn([B, Tn, H, D], { generator: gen(), device: dev, requiresGrad: true });
    const pos = T.fromArray(Int32Array.from({ length: B * Tn }, (_, i) => i % Tn), [B, Tn], { device: dev });
    const inv = T.fromArray(Float32Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(10000, (2 * i) / D)), [D / 2], { device: dev });
    const c = fwdBwd([x], () => T.rotary(x, pos, inv), [B, Tn, H, D], dev);
    return { step: c.step, cleanup: () => (c.cleanup(), pos.dispose(), inv.dispose()) };
  },
  silu_mul: (dev) => {
    const [N, C] = [16384, 8192];
    const g = gen();
    const a = T.randn([N, C], { generator: g, device: dev, requiresGrad: true });
    const b = T.randn([N, C], { generator: g, device: dev, requiresGrad: true });
    return fwdBwd([a, b], () => T.mul(T.silu(a), b), [N, C], dev);
  },
  add_bcast: (dev) => {
    const [N, C] = [16384, 8192];
    const g = gen();
    const a = T.randn([N, C], { generator: g, device: dev, requiresGrad: true });
    const b = T.randn([C], { generator: g, device: dev, requiresGrad: true });
    return fwdBwd([a, b], () => T.add(a, b), [N, C], dev);
  },
  sum_rows: (dev) => {
    const [N, C] = [16384, 8192];
    const x = T.randn([N, C], { generator: gen(), device: dev, requiresGrad: true });
    return fwdBwd([x], () => T.sum(x, -1), [N], dev);
  },
};

const WARMUP = 3;

function timeCase(name: CaseName, dev: Device, repeats: number): number {
  const c = CASES[name](dev);
  try {
    const inner = c.inner ?? 1;
    const times: number[] = [];
    for (let i = 0; i < WARMUP + repeats; i++) {
      T.synchronize(dev);
      const t0 = process.hrtime.bigint();
      c.step();
      T.synchronize(dev);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (i >= WARMUP) times.push(ms / inner);
    }
    return median(times);
  } finally {
    c.cleanup();
  }
}

/** One line of an error, without a native stack. */
function errLine(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return (s.trim().split('\n')[0] ?? '').slice(0, 300);
}

/** 'cuda' -> 'cuda:0'; throws a TemperError when temper has no such CUDA device. */
export function checkCudaDevice(device: string): Device {
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (!m) throw new T.TemperError(`bench: unknown --device "${device}" (use cpu, cuda or cuda:N)`);
  const dev = `cuda:${Number(m[1] ?? 0)}` as Device;
  let count: number;
  try {
    count = T.cudaDeviceCount();
  } catch (e) {
    throw new T.TemperError(`bench ops --device ${device}: the CUDA backend failed to load: ${errLine(e)}`);
  }
  if (count === 0)
    throw new T.TemperError(
      `bench ops --device ${device}: temper was built without CUDA, or no CUDA device is visible (cudaDeviceCount() = 0). ` +
        'Build the CUDA backend with `npm run build:cuda` on a machine with the CUDA toolkit, or use --device cpu.',
    );
  const index = Number(dev.slice(5));
  if (index >= count) throw new T.TemperError(`bench ops --device ${device}: only ${count} CUDA device(s) visible (cuda:0..cuda:${count - 1})`);
  return dev;
}

interface PeerResult {
  name: string;
  ms: Map<string, number>;
  errors: Map<string, string>;
  meta?: Record<string, unknown>;
  note?: string;
}

/** The torch that has CUDA: TEMPER_TORCH_PYTHON if set, else python3 on PATH. */
export function cudaTorchPython(): string {
  return process.env.TEMPER_TORCH_PYTHON || 'python3';
}

function runPeer(dev: Device, cases: readonly string[], repeats: number): PeerResult {
  const res: PeerResult = { name: `torch ${dev}`, ms: new Map(), errors: new Map() };
  const py = cudaTorchPython();
  const script = fileURLToPath(new URL('../../bench/torch_ops_cuda.py', import.meta.url));
  if (!existsSync(script)) return { ...res, note: `peer script missing: ${script}` };
  const r = spawnSync(py, [script, '--device', dev, '--repeats', String(repeats), '--warmup', String(WARMUP), '--cases', cases.join(',')], {
    env: peerEnv(),
    encoding: 'utf8',
    maxBuffer: 1 << 22,
  });
  if (r.error) return { ...res, note: `peer ${py} could not start (${errLine(r.error)}); set TEMPER_TORCH_PYTHON to a python with CUDA torch` };
  for (const line of (r.stdout ?? '').split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const o = JSON.parse(line) as { case: string; ms?: number; error?: string; peer_name?: string; torch?: string };
    if (o.case === '_meta') {
      res.meta = o;
      res.name = `torch ${o.torch} ${dev}`;
    } else if (o.ms !== undefined) {
      res.ms.set(o.case, o.ms);
      if (o.peer_name) res.name = o.peer_name;
    } else if (o.error !== undefined) res.errors.set(o.case, o.error);
  }
  if (r.status !== 0) {
    const last = (r.stderr || '').trim().split('\n').slice(-1)[0] || `exit status ${r.status ?? r.signal}`;
    res.note = `peer (${py}) failed: ${last}`;
  }
  return res;
}

export interface OpsCudaBenchOptions {
  device: string;
  json: boolean;
  repeats: number;
  cases?: string[];
  peer: boolean;
}

export interface OpsCudaBenchRow {
  suite: 'ops';
  case: string;
  device: string;
  shape: string;
  /** ms per op; null when temper's case failed (see `error`). */
  temper: number | null;
  peer: number | null;
  peer_name: string | null;
  unit: 'ms';
  ratio: number | null;
  temper_tflops?: number | null;
  peer_tflops?: number | null;
  error?: string;
  peer_error?: string;
}

const tflops = (flops: number, ms: number | null) => (ms === null || !flops ? null : +(flops / (ms * 1e-3) / 1e12).toFixed(1));

/** Runs the CUDA suite, prints as it goes, and returns the rows. */
export async function runOpsCudaBench(o: OpsCudaBenchOptions): Promise<OpsCudaBenchRow[]> {
  const cases = (o.cases ?? [...OPS_CUDA_CASES]) as CaseName[];
  for (const c of cases) if (!(c in CASES)) throw new T.TemperError(`bench ops --device cuda: unknown case '${c}' (cases: ${OPS_CUDA_CASES.join(', ')})`);
  const dev = checkCudaDevice(o.device);
  const name = T.deviceName(dev);
  const out = (s: string) => process.stdout.write(s + '\n');
  if (o.json) out(JSON.stringify({ suite: 'ops', case: '_meta', device: dev, device_name: name, warmup: WARMUP, repeats: o.repeats, tf32: false }));
  else out(`temper bench ops on ${dev}: ${name}; median of ${o.repeats} after ${WARMUP} warm-ups, synchronized; TF32 off except *_tf32`);
  T.setAllowTf32(false);

  const mine = new Map<string, number>();
  const errors = new Map<string, string>();
  for (const c of cases) {
    try {
      const ms = timeCase(c, dev, o.repeats);
      mine.set(c, ms);
      if (!o.json) process.stderr.write(`  temper ${c}: ${ms.toFixed(3)} ms\n`);
    } catch (e) {
      errors.set(c, errLine(e));
      if (!o.json) process.stderr.write(`  temper ${c}: failed: ${errLine(e)}\n`);
    } finally {
      T.setAllowTf32(false);
      // Give the cached blocks back between cases, and to the peer (a separate process on the same GPU).
      try {
        T.emptyCache(dev);
      } catch {
        /* a failed case may have left the device unusable; the next case reports it */
      }
    }
  }

  const peer: PeerResult = o.peer ? runPeer(dev, cases, o.repeats) : { name: 'torch', ms: new Map(), errors: new Map(), note: 'peer skipped (--no_peer)' };
  const peerDevice = peer.meta?.device_name as string | undefined;
  if (o.json) {
    if (peer.meta) {
      const { case: _c, device_name: _d, ...rest } = peer.meta;
      out(JSON.stringify({ suite: 'ops', case: '_peer_meta', peer_name: peer.name, peer_device_name: peerDevice, ...rest }));
    }
  } else {
    if (peer.meta)
      out(`peer: ${peer.name} on ${peerDevice} (${peer.meta.capability}, CUDA ${peer.meta.cuda}; ${peer.meta.python})`);
    if (peer.note) out(`note: ${peer.note}`);
  }
  if (peerDevice && !name.startsWith(peerDevice)) {
    const warn = `temper's ${dev} is "${name}" but torch's is "${peerDevice}": not the same GPU model (CUDA_VISIBLE_DEVICES?)`;
    out(o.json ? JSON.stringify({ suite: 'ops', case: '_note', note: warn }) : `warning: ${warn}`);
  }

  const rows: OpsCudaBenchRow[] = cases.map((c) => {
    const t = mine.get(c) ?? null;
    const p = peer.ms.get(c) ?? null;
    const flops = CASE_INFO[c].flops;
    const row: OpsCudaBenchRow = {
      suite: 'ops', case: c, device: dev, shape: CASE_INFO[c].shape,
      temper: t === null ? null : +t.toFixed(4), peer: p === null ? null : +p.toFixed(4), peer_name: p === null ? null : peer.name, unit: 'ms',
      ratio: p === null || t === null ? null : +(p / t).toFixed(3),
    };
    if (flops) {
      row.temper_tflops = tflops(flops, t);
      row.peer_tflops = tflops(flops, p);
    }
    if (errors.has(c)) row.error = errors.get(c);
    if (peer.errors.has(c)) row.peer_error = peer.errors.get(c);
    return row;
  });
  const fmt = (ms: number | null, tf: number | null | undefined) =>
    (ms === null ? 'n/a'.padStart(10) : ms.toFixed(3).padStart(7) + ' ms') + (tf === undefined ? '' : ` (${tf === null ? 'n/a' : tf.toFixed(1)} TFLOP/s)`).padEnd(17);
  for (const r of rows) {
    if (o.json) out(JSON.stringify(r));
    else {
      out(
        `${r.case.padEnd(19)} ${r.shape.padEnd(29)} temper ${fmt(r.temper, r.temper_tflops)}   torch ${fmt(r.peer, r.peer_tflops)}   ratio ${r.ratio === null ? 'n/a' : r.ratio.toFixed(2) + 'x'}`,
      );
      if (r.error) out(`    temper failed: ${r.error}`);
      if (r.peer_error) out(`    torch failed: ${r.peer_error}`);
    }
  }
  if (o.json && peer.note) out(JSON.stringify({ suite: 'ops', case: '_note', note: peer.note }));
  return rows;
}
