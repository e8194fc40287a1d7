// The kernel interface a device backend implements, and the registry of backends.
// CPU is the native addon (native/src/addon.cc); a CUDA addon exports the same
// functions over device memory, so ops in src/tensor never name a device.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TemperError } from './errors.js';

/** Opaque handle of one native allocation. */
export type Handle = { readonly __brand: 'temper.Handle' };
/** A pointer argument: handle plus byte offset (views share one allocation). */
type P = Handle | null;
type O = number;

/**
 * Every kernel the tensor layer calls, mirrored from native/src/kernels.h. A trailing
 * `dtypeCode` (0 f32, 3 bf16) picks the storage type of the forward math kernels.
 */
export interface Kernels {
  alloc(nbytes: number): Handle;
  free(h: Handle): void;
  stats(): { liveBytes: number; peakBytes: number; cachedBytes: number; leakedBytes: number };
  resetPeak(): void;
  emptyCache(): void;
  setThreads(n: number): void;
  numThreads(): number;
  write(h: P, off: O, data: ArrayBufferView): void;
  read(h: P, off: O, nbytes: number): ArrayBuffer;
  unary(op: number, x: P, xo: O, out: P, oo: O, n: number, dtypeCode?: number): void;
  unaryBackward(op: number, x: P, xo: O, y: P, yo: O, g: P, go: O, dx: P, dxo: O, n: number): void;
  clamp(x: P, xo: O, out: P, oo: O, n: number, lo: number, hi: number, dtypeCode?: number): void;
  /** out = silu(gate) * up, one pass (f32 or bf16 storage). */
  swiglu(gate: P, go: O, up: P, uo: O, out: P, oo: O, n: number, dtypeCode?: number): void;
  /** Its backward from (gate, up, g), silu recomputed: dgate and dup written (f32). */
  swigluBackward(gate: P, go: O, up: P, uo: O, g: P, gO: O, dgate: P, dgo: O, dup: P, duo: O, n: number): void;
  binary(op: number, a: P, ao: O, as: number[], b: P, bo: O, bs: number[], out: P, oo: O, shape: number[], dtypeCode?: number): void;
  where(c: P, co: O, cs: number[], a: P, ao: O, as: number[], b: P, bo: O, bs: number[], out: P, oo: O, shape: number[],
    dtypeCode?: number): void;
  stridedCopy(src: P, so: O, ss: number[], dst: P, dO: O, ds: number[], shape: number[], elemSize: number): void;
  fill(dtypeCode: number, out: P, oo: O, n: number, value: number): void;
  cast(src: P, so: O, srcCode: number, dst: P, dO: O, dstCode: number, n: number): void;
  reduce(op: number, x: P, xo: O, out: P, oo: O, outer: number, R: number, inner: number, correction: number, dtypeCode?: number): void;
  matmul(a: P, ao: O, b: P, bo: O, c: P, co: O, batch: number, M: number, N: number, K: number, transA: number,
    transB: number, aBatchStride: number, bBatchStride: number, alpha: number, beta: number, dtypeCode?: number,
    outDtypeCode?: number): void;
  softmax(x: P, xo: O, y: P, yo: O, N: number, C: number, log: number, dtypeCode?: number): void;
  softmaxBackward(y: P, yo: O, dy: P, dyo: O, dx: P, dxo: O, N: number, C: number, log: number): void;
  indexSelect(x: P, xo: O, idx: P, io: O, out: P, oo: O, outer: number, X: number, I: number, inner: number,
    elemSize: number): number;
  gather(x: P, xo: O, idx: P, io: O, out: P, oo: O, outer: number, X: number, I: number, inner: number): number;
  scatterAdd(out: P, oo: O, idx: P, io: O, src: P, so: O, outer: number, X: number, I: number, inner: number,
    shared: number): number;
  oneHot(idx: P, io: O, out: P, oo: O, N: number, C: number): number;
  cumsum(x: P, xo: O, out: P, oo: O, outer: number, R: number, inner: number, reverse: number): void;
  sortRows(x: P, xo: O, v: P, vo: O, idx: P, io: O, N: number, C: number, k: number, desc: number): void;
  randUniform(out: P, oo: O, n: number, seed: bigint, offset: bigint, lo: number, hi: number): void;
  randNormal(out: P, oo: O, n: number, seed: bigint, offset: bigint, mean: number, std: number): void;
  randInt(out: P, oo: O, n: number, seed: bigint, offset: bigint, lo: number, hi: number): void;
  dropout(x: P, xo: O, out: P, oo: O, mask: P, mo: O, n: number, seed: bigint, offset: bigint, p: number): void;
  rmsNorm(x: P, xo: O, w: P, wo: O, y: P, yo: O, rstd: P, ro: O, N: number, C: number, eps: number, dtypeCode?: number): void;
  rmsNormBackward(x: P, xo: O, w: P, wo: O, rstd: P, ro: O, dy: P, dyo: O, dx: P, dxo: O, dw: P, dwo: O, N: number,
    C: number): void;
  /** Fused residual add + RMSNorm: sum = x + residual (rounded to the dtype), y = rmsNorm(sum), rstd (N) f32. */
  addRmsNorm(x: P, xo: O, residual: P, ro: O, w: P, wo: O, sum: P, so: O, y: P, yo: O, rstd: P, rso: O, N: number, C: number,
    eps: number, dtypeCode?: number): void;
  /** Its backward: dx = rmsNormBackward's dx of dy, plus gSum when given (null: none); dw written. */
  addRmsNormBackward(sum: P, so: O, w: P, wo: O, rstd: P, ro: O, dy: P, dyo: O, gSum: P, gso: O, dx: P, dxo: O, dw: P,
    dwo: O, N: number, C: number): void;
  layerNorm(x: P, xo: O, w: P, wo: O, b: P, bo: O, y: P, yo: O, mean: P, mo: O, rstd: P, ro: O, N: number, C: number,
    eps: number, dtypeCode?: number): void;
  layerNormBackward(x: P, xo: O, w: P, wo: O, mean: P, mo: O, rstd: P, ro: O, dy: P, dyo: O, dx: P, dxo: O, dw: P,
    dwo: O, db: P, dbo: O, N: number, C: number): void;
  rotary(x: P, xo: O, pos: P, po: O, invFreq: P, fo: O, out: P, oo: O, B: number, T: number, H: number, D: number,
    scaling: number, inverse: number, dtypeCode?: number): void;
  attention(q: P, qo: O, k: P, ko: O, v: P, vo: O, keyMask: P, kmo: O, docIds: P, dio: O, out: P, oo: O, lse: P,
    lo: O, B: number, Tq: number, Tk: number, Hq: number, Hkv: number, D: number, scale: number, causal: number,
    kvCapacity: number, dtypeCode?: number): void;
  attentionBackward(q: P, qo: O, k: P, ko: O, v: P, vo: O, out: P, oo: O, lse: P, lo: O, dout: P, doo: O,
    keyMask: P, kmo: O, docIds: P, dio: O, dq: P, dqo: O, dk: P, dko: O, dv: P, dvo: O, B: number, Tq: number,
    Tk: number, Hq: number, Hkv: number, D: number, scale: number, causal: number): void;
  /** Autocast attention: bf16 q, k, v (Tk rows each) -> f32 out and lse. */
  attentionMixed(q: P, qo: O, k: P, ko: O, v: P, vo: O, keyMask: P, kmo: O, docIds: P, dio: O, out: P, oo: O, lse: P,
    lo: O, B: number, Tq: number, Tk: number, Hq: number, Hkv: number, D: number, scale: number, causal: number): void;
  /** Its backward: bf16 q, k, v, dout; f32 out, lse -> f32 dq, dk, dv. */
  attentionBackwardMixed(q: P, qo: O, k: P, ko: O, v: P, vo: O, out: P, oo: O, lse: P, lo: O, dout: P, doo: O,
    keyMask: P, kmo: O, docIds: P, dio: O, dq: P, dqo: O, dk: P, dko: O, dv: P, dvo: O, B: number, Tq: number,
    Tk: number, Hq: number, Hkv: number, D: number, scale: number, causal: number): void;
  crossEntropy(x: P, xo: O, labels: P, lo: O, loss: P, lso: O, lse: P, leo: O, N: number, V: number,
    ignoreIndex: number, eps: number, dtypeCode?: number): number;
  crossEntropyBackward(x: P, xo: O, labels: P, lo: O, lse: P, leo: O, g: P, go: O, dx: P, dxo: O, N: number,
    V: number, ignoreIndex: number, eps: number): void;
  adamw(p: P, po: O, g: P, go: O, m: P, mo: O, v: P, vo: O, n: number, lr: number, b1: number, b2: number,
    eps: number, wd: number, step: number, gradScale: number): void;
  sumSquares(x: P, xo: O, n: number): number;
  scaleInplace(x: P, xo: O, n: number, s: number): void;
  /** adamw over many tensors in one call; p, g, m, v are flat [handle, offset, handle, offset, ...] lists. */
  adamwMulti(p: (P | O)[], g: (P | O)[], m: (P | O)[], v: (P | O)[], n: number[], wd: number[], lr: number, b1: number,
    b2: number, eps: number, step: number, gradScale: number): void;
  /** The sum of sumSquares over many tensors (x a flat [handle, offset, ...] list), in one call. */
  sumSquaresMulti(x: (P | O)[], n: number[]): number;
}

/** 'cuda' is 'cuda:0'; tensors always report the indexed form. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/** The CUDA addon's device controls, beside the kernels. */
interface CudaControl {
  deviceCount(): number;
  useDevice(index: number): void;
  synchronize(): void;
  deviceName(): string;
  allowTf32(on: boolean): void;
}

/** build/Release/<file> under the package root, or null. */
function findBuilt(file: string): string | null {
  // dist/src/tensor/backend.js and src/tensor/backend.ts both sit under the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'Release', file);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

function findAddon(): string {
  const p = findBuilt('temper_native.node');
  if (p) return p;
  throw new TemperError(
    'temper: the native addon (build/Release/temper_native.node) is not built. ' +
      'Run `npm run setup` (installs the BLAS and builds it) or `npm run build:native`.',
  );
}

let defaultDevice: Device | undefined;

/**
 * Where creation functions put tensors when no device is given: 'cpu' unless set here or by
 * the TEMPER_DEVICE environment variable (as torch.set_default_device).
 */
export function getDefaultDevice(): Device {
  return (defaultDevice ??= normalizeDevice(process.env.TEMPER_DEVICE || 'cpu'));
}
export function setDefaultDevice(device: Device): void {
  defaultDevice = normalizeDevice(device);
}

/** 'cuda' means 'cuda:0'; anything else must be 'cpu' or 'cuda:N'. */
export function normalizeDevice(device: string): Device {
  if (device === 'cpu') return 'cpu';
  if (device === 'cuda') return 'cuda:0';
  if (/^cuda:\d+$/.test(device)) return device as Device;
  throw new TemperError(`unknown device "${device}" (use "cpu", "cuda" or "cuda:N")`);
}

/**
 * OpenBLAS picks its kernels from the CPU model at load time, and releases older than the
 * CPU fall back to the generic SSE3 "Prescott" kernels (5-10x slower GEMM; Debian 12's
 * 0.3.21 does this on recent Xeons). When the user has not chosen, name the kernel family
 * from an Intel CPU's feature flags before the library loads. Child processes (the
 * PyTorch peer of the benchmarks) inherit the choice.
 */
function chooseOpenBlasCore(): void {
  if (process.env.OPENBLAS_CORETYPE || process.platform !== 'linux' || process.arch !== 'x64') return;
  let flags: Set<string>;
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8').split('\n');
    // AMD parts are detected correctly by OpenBLAS's own table; the fallback hits new Intel models.
    if (!info.some((l) => l.startsWith('vendor_id') && l.includes('GenuineIntel'))) return;
    flags = new Set(info.find((l) => l.startsWith('flags'))?.split(':')[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return;
  }
  if (['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.has(f))) process.env.OPENBLAS_CORETYPE = 'SkylakeX';
  else if (['avx2', 'fma'].every((f) => flags.has(f))) process.env.OPENBLAS_CORETYPE = 'Haswell';
}

/**
 * libgomp's idle threads spin ~300k iterations before sleeping. When another process holds a
 * core, a spinning thread starves the one doing the work, and a small-kernel workload (a tiny
 * model's training step) ran ~3x slower on a loaded 2-core machine. A short spin costs ~2-7%
 * on an idle one. Applied only when the user set neither variable; must precede libgomp's load.
 */
function chooseOmpSpin(): void {
  if (process.env.OMP_WAIT_POLICY !== undefined || process.env.GOMP_SPINCOUNT !== undefined) return;
  process.env.GOMP_SPINCOUNT = '1000';
  envSetByTemper.push('GOMP_SPINCOUNT');
}

/** Environment variables temper set for itself (benchmark peers start without them). */
export const envSetByTemper: string[] = [];

let cpuKernels: Kernels | undefined;
let cudaAddon: (Kernels & CudaControl) | null | undefined;
const cudaKernels = new Map<number, Kernels>();
let cudaCurrent = -1;

function loadCuda(): (Kernels & CudaControl) | null {
  if (cudaAddon === undefined) {
    if (process.env.TEMPER_CUDA_EMULATE === '1') cudaAddon = emulatedCuda();
    else {
      const p = findBuilt('temper_cuda.node');
      cudaAddon = p ? (createRequire(import.meta.url)(p) as Kernels & CudaControl) : null;
    }
  }
  return cudaAddon;
}

/**
 * TEMPER_CUDA_EMULATE=1 (tests of the device plumbing on machines without a GPU): one "cuda:0"
 * whose kernels are the CPU's. Every tensor still carries its device, so a tensor left on the
 * wrong device, a missing `device` option or a host read the code did not plan for shows up
 * as it would on a GPU; only the arithmetic is the CPU's.
 */
function emulatedCuda(): Kernels & CudaControl {
  const cpu = kernelsFor('cpu');
  return { ...cpu, deviceCount: () => 1, useDevice: () => {}, synchronize: () => {}, deviceName: () => 'emulated on the CPU', allowTf32: () => {} };
}

/**
 * True when `device` computes with the CPU's kernels: 'cpu', or the emulated cuda:0 of
 * TEMPER_CUDA_EMULATE. Tests hold such devices to the CPU's (often bitwise) tolerances.
 */
export function runsCpuKernels(device: Device): boolean {
  return device === 'cpu' || (process.env.TEMPER_CUDA_EMULATE === '1' && device.startsWith('cuda'));
}

/** Number of CUDA devices temper can use (0 when built without CUDA or no GPU is present). */
export function cudaDeviceCount(): number {
  return loadCuda()?.deviceCount() ?? 0;
}

/** The CUDA addon for one device: every call first makes that device current (a no-op when it is). */
function cudaKernelsFor(index: number): Kernels & CudaControl {
  const addon = loadCuda();
  if (!addon)
    throw new TemperError(
      `temper was built without CUDA: device "cuda:${index}" is not available (only "cpu"). ` +
        'Build the CUDA backend with `npm run build:cuda` on a machine with the CUDA toolkit and cuBLAS.',
    );
  let k = cudaKernels.get(index);
  if (!k) {
    const count = addon.deviceCount();
    if (index >= count) throw new TemperError(`device "cuda:${index}" is not available: ${count} CUDA device(s) found`);
    const bound: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(addon)) {
      if (typeof fn !== 'function' || name === 'deviceCount') continue;
      bound[name] = (...args: unknown[]) => {
        if (cudaCurrent !== index) {
          addon.useDevice(index);
          cudaCurrent = index;
        }
        return (fn as (...a: unknown[]) => unknown)(...args);
      };
    }
    k = bound as unknown as Kernels;
    cudaKernels.set(index, k);
  }
  return k as Kernels & CudaControl;
}

/** The kernels for a device; each addon loads on first use. */
export function kernelsFor(device: Device): Kernels {
  if (device === 'cpu') {
    if (!cpuKernels) {
      chooseOpenBlasCore();
      chooseOmpSpin();
      cpuKernels = createRequire(import.meta.url)(findAddon()) as Kernels;
    }
    return cpuKernels;
  }
  return cudaKernelsFor(Number(normalizeDevice(device).slice(5)));
}

/** Waits until the device has finished all queued work (timing, host reads of device results). */
export function synchronize(device: Device): void {
  if (device !== 'cpu') cudaKernelsFor(Number(normalizeDevice(device).slice(5))).synchronize();
}

/** The device's name, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 81008 MiB)" or "cpu". */
export function deviceName(device: Device): string {
  return device === 'cpu' ? 'cpu' : cudaKernelsFor(Number(normalizeDevice(device).slice(5))).deviceName();
}

/**
 * Lets f32 GEMMs on CUDA use TF32 tensor cores (10-bit mantissa inputs, f32 accumulate), as
 * torch.backends.cuda.matmul.allow_tf32. Off by default so f32 results match the CPU to 1e-5.
 */
export function setAllowTf32(on: boolean): void {
  loadCuda()?.allowTf32(on);
}

/** Threads used by native kernels and the BLAS (default: all cores, or TEMPER_NUM_THREADS). */
export function setNumThreads(n: number): void {
  kernelsFor('cpu').setThreads(n);
}
export function getNumThreads(): number {
  return kernelsFor('cpu').numThreads();
}
