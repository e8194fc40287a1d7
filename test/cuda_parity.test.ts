// Kernel parity: every function of the Kernels interface (src/tensor/backend.ts) runs on the CPU
// addon and on the device under test (TEMPER_PARITY_DEVICE, default cuda:0) with the same inputs,
// and the results are compared element by element.
//
// - Device outputs are poisoned with 0xFF bytes before each run (NaN for f32/bf16, -1 for i32, 255
//   for u8) and CPU outputs with zeros, so an element a kernel leaves unwritten shows as a mismatch.
// - f32: |dev - cpu| <= tol * max(floor, |cpu|) per element, tol 1e-5 and floor 1 unless a case
//   says why not; NaN must sit exactly where the CPU has NaN; infinities must be equal.
// - Integer outputs, error codes, copies, random streams: exact (randNormal: 1 ulp, noted there).
// - A failure names the kernel, the case, the output, and the first bad index with both values.
//
// Skipped when the device is CUDA and temper has no CUDA device. TEMPER_PARITY_DEVICE=cpu runs the
// CPU against itself, which checks the harness (every case runs; poisoned outputs must be written).
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { cudaDeviceCount, kernelsFor, normalizeDevice, type Device, type Handle, type Kernels } from '../src/tensor/backend.js';

const DEVICE: Device = normalizeDevice(process.env.TEMPER_PARITY_DEVICE ?? 'cuda:0');
const SKIP: string | false = (() => {
  if (DEVICE === 'cpu') return false;
  let count: number;
  try {
    count = cudaDeviceCount();
  } catch (e) {
    return `temper built without CUDA or no GPU (${errMsg(e)})`;
  }
  if (count === 0) return 'temper built without CUDA or no GPU';
  return Number(DEVICE.slice(5)) < count ? false : `${DEVICE} is not present (${count} CUDA device(s))`;
})();

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---- buffers ------------------------------------------------------------------------------------

type TA = Float32Array | Int32Array | Uint8Array | Uint16Array;
interface Ctor<A extends TA> {
  new (length: number): A;
  new (buffer: ArrayBuffer): A;
  readonly BYTES_PER_ELEMENT: number;
}
const F32 = Float32Array as unknown as Ctor<Float32Array>;
const I32 = Int32Array as unknown as Ctor<Int32Array>;
const U8 = Uint8Array as unknown as Ctor<Uint8Array>;
const U16 = Uint16Array as unknown as Ctor<Uint16Array>;

/** A kernel pointer argument: handle plus byte offset. */
interface Ptr {
  h: Handle | null;
  o: number;
}
const NULL: Ptr = { h: null, o: 0 };

function upload(k: Kernels, a: TA, padBytes = 0): Handle {
  const h = k.alloc(Math.max(64, padBytes + a.byteLength));
  if (a.byteLength > 0) k.write(h, padBytes, a);
  return h;
}
function download<A extends TA>(k: Kernels, h: Handle | null, nbytes: number, ctor: Ctor<A>, offset = 0): A {
  return nbytes === 0 ? new ctor(0) : new ctor(k.read(h, offset, nbytes));
}
function free(k: Kernels, h: Handle): void {
  k.free(h);
}

/** One backend's side of a case: owns its allocations, poisons its outputs. */
class Side {
  private readonly handles: Handle[] = [];
  constructor(
    readonly k: Kernels,
    private readonly poison: number,
  ) {}
  /** Uploads `a` after `pad` elements (an odd pad makes a misaligned view, as tensor views can be). */
  in(a: TA, pad = 0): Ptr {
    const o = pad * a.BYTES_PER_ELEMENT;
    const h = upload(this.k, a, o);
    this.handles.push(h);
    return { h, o };
  }
  /** Room for n elements after `pad`, the whole allocation filled with this side's poison byte. */
  out<A extends TA>(n: number, ctor: Ctor<A>, pad = 0): Ptr {
    const nbytes = Math.max(64, (pad + n) * ctor.BYTES_PER_ELEMENT);
    const h = upload(this.k, new Uint8Array(nbytes).fill(this.poison));
    this.handles.push(h);
    return { h, o: pad * ctor.BYTES_PER_ELEMENT };
  }
  get<A extends TA>(p: Ptr, n: number, ctor: Ctor<A>): A {
    return download(this.k, p.h, n * ctor.BYTES_PER_ELEMENT, ctor, p.o);
  }
  dispose(): void {
    for (const h of this.handles) free(this.k, h);
    this.handles.length = 0;
  }
}

// ---- comparison ---------------------------------------------------------------------------------

const fmt = (x: number): string => (Object.is(x, -0) ? '-0' : String(x));
const f32bits = new Float32Array(1);
const u32bits = new Uint32Array(f32bits.buffer);
function bitsOf(x: number): number {
  f32bits[0] = x;
  return u32bits[0]!;
}
/** f32 bits ordered so that adjacent floats differ by 1 (for ulp distances). */
function ordered(x: number): number {
  const u = bitsOf(x);
  return u >= 0x80000000 ? -(u - 0x80000000) : u;
}
function toBf16(x: number): number {
  const u = bitsOf(x);
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff; // quiet NaN, like the CPU cast
  return Math.floor((u + 0x7fff + ((u >>> 16) & 1)) / 65536) & 0xffff; // round to nearest even
}
function fromBf16(h: number): number {
  u32bits[0] = (h << 16) >>> 0;
  return f32bits[0]!;
}
const bf16Round = (a: Float32Array): Float32Array => a.map((x) => fromBf16(toBf16(x)));
const toBf16Array = (a: Float32Array): Uint16Array => Uint16Array.from(a, toBf16);
const fromBf16Array = (a: Uint16Array): Float32Array => Float32Array.from(a, fromBf16);

/** Failures and the worst error (as a fraction of its tolerance) over one test's cases. */
class Report {
  readonly fails: string[] = [];
  cases = 0;
  private worst = 0;
  private worstAt = '';
  note(where: string, fraction: number): void {
    if (fraction > this.worst) {
      this.worst = fraction;
      this.worstAt = where;
    }
  }
  done(t: TestContext): void {
    t.diagnostic(
      `${DEVICE} vs cpu: ${this.cases} cases, ${this.fails.length} failed checks; worst error ${this.worst.toPrecision(3)} of its tolerance` +
        (this.worstAt ? ` (${this.worstAt})` : ''),
    );
    if (this.fails.length) {
      const shown = this.fails.slice(0, 40).join('\n  ');
      const more = this.fails.length > 40 ? `\n  ... and ${this.fails.length - 40} more` : '';
      assert.fail(`${this.fails.length} parity failure(s) on ${DEVICE}:\n  ${shown}${more}`);
    }
  }
}

/** The checks of one case; every message starts with the kernel and case name. */
class Check {
  constructor(
    private readonly rep: Report,
    private readonly name: string,
  ) {}
  private fail(label: string, msg: string): void {
    this.rep.fails.push(`${this.name} [${label}]: ${msg}`);
  }
  private len(label: string, got: ArrayLike<number>, want: ArrayLike<number>): boolean {
    if (got.length === want.length) return true;
    this.fail(label, `length ${got.length} on ${DEVICE} vs ${want.length} on the cpu reference`);
    return false;
  }
  private report(label: string, bad: number, n: number, first: number, got: ArrayLike<number>, want: ArrayLike<number>, rule: string): void {
    if (bad)
      this.fail(label, `${bad} of ${n} elements differ (${rule}); first bad index ${first}: ${DEVICE} ${fmt(got[first]!)} vs cpu reference ${fmt(want[first]!)}`);
  }
  /** f32: |a - b| <= tol * max(floor, |b|); NaN only where the CPU has NaN; infinities equal. */
  close(label: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-5, floor = 1): void {
    if (!this.len(label, got, want)) return;
    let bad = 0, first = -1, worst = 0;
    for (let i = 0; i < want.length; i++) {
      const a = got[i]!, b = want[i]!;
      let ok: boolean;
      if (a !== a || b !== b) ok = a !== a && b !== b;
      else if (a === b) ok = true;
      else if (!Number.isFinite(a) || !Number.isFinite(b)) ok = false;
      else {
        const frac = Math.abs(a - b) / (tol * Math.max(floor, Math.abs(b)));
        ok = frac <= 1;
        if (ok && frac > worst) worst = frac;
      }
      if (!ok && bad++ === 0) first = i;
    }
    this.rep.note(`${this.name} [${label}]`, worst);
    this.report(label, bad, want.length, first, got, want, `tol ${tol} * max(${floor}, |cpu|)`);
  }
  /** Equal values (integers, selections, copies); NaN matches NaN. */
  exact(label: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
    if (!this.len(label, got, want)) return;
    let bad = 0, first = -1;
    for (let i = 0; i < want.length; i++) {
      const a = got[i]!, b = want[i]!;
      if (!(a === b || (a !== a && b !== b)) && bad++ === 0) first = i;
    }
    this.report(label, bad, want.length, first, got, want, 'exact');
  }
  /** Bit-identical f32 (so -0 differs from 0); any NaN matches any NaN. */
  bits(label: string, got: Float32Array, want: Float32Array): void {
    if (!this.len(label, got, want)) return;
    const gu = new Uint32Array(got.buffer, got.byteOffset, got.length);
    const wu = new Uint32Array(want.buffer, want.byteOffset, want.length);
    let bad = 0, first = -1;
    for (let i = 0; i < want.length; i++) {
      if (gu[i] !== wu[i] && !(got[i] !== got[i] && want[i] !== want[i]) && bad++ === 0) first = i;
    }
    this.report(label, bad, want.length, first, got, want, 'bit-identical');
  }
  /** At most maxUlp f32 ulps apart; NaN matches NaN. */
  ulps(label: string, got: Float32Array, want: Float32Array, maxUlp: number): void {
    if (!this.len(label, got, want)) return;
    let bad = 0, first = -1;
    for (let i = 0; i < want.length; i++) {
      const a = got[i]!, b = want[i]!;
      const ok = a !== a || b !== b ? a !== a && b !== b : Math.abs(ordered(a) - ordered(b)) <= maxUlp;
      if (!ok && bad++ === 0) first = i;
    }
    this.report(label, bad, want.length, first, got, want, `within ${maxUlp} ulp`);
  }
  /** bf16 bit patterns: equal, or both NaN. */
  bf16(label: string, got: Uint16Array, want: Uint16Array): void {
    if (!this.len(label, got, want)) return;
    const isNaN16 = (h: number): boolean => (h & 0x7fff) > 0x7f80;
    let bad = 0, first = -1;
    for (let i = 0; i < want.length; i++) {
      if (got[i] !== want[i] && !(isNaN16(got[i]!) && isNaN16(want[i]!)) && bad++ === 0) first = i;
    }
    this.report(label, bad, want.length, first, fromBf16Array(got), fromBf16Array(want), 'bit-identical bf16');
  }
  code(label: string, got: number, want: number): void {
    if (got !== want) this.fail(label, `returned ${got} on ${DEVICE} vs ${want} on the cpu reference`);
  }
}

/**
 * Runs `run` on the CPU (outputs zeroed) and on the device (outputs poisoned), each on its own
 * buffers, then compares. Returns the CPU's results (inputs of a later backward case), or undefined
 * when the CPU threw.
 */
function parity<T>(rep: Report, name: string, run: (s: Side) => T, compare: (dev: T, cpu: T, c: Check) => void): T | undefined {
  rep.cases++;
  const cpu = new Side(kernelsFor('cpu'), 0x00);
  const dev = new Side(kernelsFor(DEVICE), 0xff);
  try {
    let r: T, d: T;
    try {
      r = run(cpu);
    } catch (e) {
      rep.fails.push(`${name}: the cpu reference threw: ${errMsg(e)}`);
      return undefined;
    }
    try {
      d = run(dev);
    } catch (e) {
      rep.fails.push(`${name}: ${DEVICE} threw: ${errMsg(e)}`);
      return r;
    }
    compare(d, r, new Check(rep, name));
    return r;
  } finally {
    cpu.dispose();
    dev.dispose();
  }
}

// ---- inputs -------------------------------------------------------------------------------------

let nextSeed = 1;
/** mulberry32: deterministic uniform [0, 1) on the host, independent of temper's RNG. */
function rng(seed = nextSeed++): () => number {
  let a = (seed * 0x9e3779b9) | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** Uniform in [lo, hi); with probability pSpecial an element is one of `specials` instead. */
function uniform(n: number, lo = -1, hi = 1, specials: number[] = [], pSpecial = 0): Float32Array {
  const r = rng(), a = new Float32Array(n);
  for (let i = 0; i < n; i++)
    a[i] = specials.length && r() < pSpecial ? specials[Math.floor(r() * specials.length)]! : lo + (hi - lo) * r();
  return a;
}
/** Uniform values with every special placed at the front (when it fits), then scattered. */
function withSpecials(n: number, lo: number, hi: number, specials: number[], pSpecial = 0.05): Float32Array {
  const a = uniform(n, lo, hi, specials, pSpecial);
  if (n >= specials.length) a.set(specials);
  return a;
}
function pick(n: number, values: number[]): Float32Array {
  const r = rng(), a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = values[Math.floor(r() * values.length)]!;
  return a;
}
/** Integers in [lo, hi). */
function ints(n: number, lo: number, hi: number): Int32Array {
  const r = rng(), a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + Math.floor(r() * (hi - lo));
  return a;
}
function randomBits<A extends TA>(n: number, ctor: Ctor<A>): A {
  const r = rng(), b = new Uint8Array(n * ctor.BYTES_PER_ELEMENT);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
  return new ctor(b.buffer);
}

const prod = (s: number[]): number => s.reduce((x, y) => x * y, 1);
function contiguous(shape: number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d]!;
  }
  return st;
}

/**
 * An operand of a broadcast op over `out`: its own shape (1 where broadcast), stored in the
 * dim order `perm` (storage dim j holds view dim perm[j]); size-1 dims that are also size 1 in
 * the output get stride `unitStride` when given (any stride is valid for them).
 */
interface OperandSpec {
  shape?: number[];
  perm?: number[];
  unitStride?: number;
}
function operand(out: number[], spec: OperandSpec = {}): { n: number; strides: number[] } {
  const sh = spec.shape ?? out;
  const perm = spec.perm ?? sh.map((_, d) => d);
  const cs = contiguous(perm.map((p) => sh[p]!));
  const strides = new Array<number>(sh.length);
  perm.forEach((p, j) => (strides[p] = cs[j]!));
  for (let d = 0; d < sh.length; d++) {
    if (sh[d] === 1 && out[d] !== 1) strides[d] = 0;
    else if (sh[d] === 1 && spec.unitStride !== undefined) strides[d] = spec.unitStride;
  }
  return { n: prod(sh), strides };
}

const UNARY = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'silu', 'gelu_erf', 'gelu_tanh', 'sigmoid', 'tanh', 'softplus', 'relu', 'square', 'reciprocal', 'sign'];
const BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'];
const B_EQ = 7;
const REDUCE = ['sum', 'mean', 'max', 'min', 'logsumexp', 'argmax', 'argmin', 'var'];
const [R_MAX, R_MIN, R_ARGMAX, R_ARGMIN, R_VAR] = [2, 3, 5, 6, 7];
const DT = ['f32', 'i32', 'u8', 'bf16'];
const DT_CTOR = [F32, I32, U8, U16] as const;
const LARGE_V = 151936; // Qwen vocabulary

// ---- tests --------------------------------------------------------------------------------------

describe(`kernel parity: ${DEVICE} vs cpu`, { skip: SKIP }, () => {
  test('memory: alloc, write/read at offsets, free, stats', (t) => {
    const rep = new Report();
    for (const [n, off] of [[1, 0], [7, 3], [4099, 1], [100003, 5]] as const) {
      const data = randomBits(n, U8);
      parity(rep, `write/read n=${n} offset=${off}`, (s) => {
        const p = s.in(data, off);
        return { whole: s.get(p, n, U8), tail: s.get({ h: p.h, o: p.o + (n >> 1) }, n - (n >> 1), U8) };
      }, (d, r, c) => {
        c.exact('whole', d.whole, r.whole);
        c.exact('tail', d.tail, r.tail);
      });
    }
    rep.cases++;
    const k = kernelsFor(DEVICE);
    const before = k.stats().liveBytes;
    const h = k.alloc(1 << 20);
    const during = k.stats();
    if (during.liveBytes - before < 1 << 20) rep.fails.push(`stats: liveBytes grew by ${during.liveBytes - before} after alloc(1 MiB)`);
    if (during.peakBytes < during.liveBytes) rep.fails.push(`stats: peakBytes ${during.peakBytes} < liveBytes ${during.liveBytes}`);
    k.free(h);
    if (k.stats().liveBytes !== before) rep.fails.push(`stats: liveBytes ${k.stats().liveBytes} after free, ${before} before alloc`);
    k.resetPeak();
    k.emptyCache();
    if (k.stats().cachedBytes !== 0) rep.fails.push(`stats: cachedBytes ${k.stats().cachedBytes} after emptyCache`);
    if (!(k.numThreads() >= 1)) rep.fails.push(`numThreads() = ${k.numThreads()}`);
    rep.done(t);
  });

  test('unary and unaryBackward: every op code, special values, in place', (t) => {
    const rep = new Report();
    const specials = [NaN, Infinity, -Infinity, 0, -0, 1e-30, -1e-30, 1e-7, 0.5, -0.5, 20, 19.99, 20.01, -20, 88, -88, 100, -100, 3, -3];
    for (const n of [1, 7, 33, 1000, 100003]) {
      const x = withSpecials(n, -6, 6, specials);
      const g = uniform(n, -2, 2);
      const pad = n === 33 ? 1 : 0; // misaligned views
      for (let op = 0; op < UNARY.length; op++) {
        const name = `unary ${UNARY[op]} n=${n}${pad ? ' offset 1' : ''}`;
        const y = parity(rep, name, (s) => {
          const xi = s.in(x, pad), o = s.out(n, F32, pad);
          s.k.unary(op, xi.h, xi.o, o.h, o.o, n);
          return s.get(o, n, F32);
        }, (d, r, c) => c.close('out', d, r));
        if (!y) continue;
        parity(rep, `unaryBackward ${UNARY[op]} n=${n}${pad ? ' offset 1' : ''}`, (s) => {
          const xi = s.in(x, pad), yi = s.in(y), gi = s.in(g, pad), dx = s.out(n, F32);
          s.k.unaryBackward(op, xi.h, xi.o, yi.h, yi.o, gi.h, gi.o, dx.h, dx.o, n);
          return s.get(dx, n, F32);
        }, (d, r, c) => c.close('dx', d, r));
      }
    }
    const x = withSpecials(1000, -6, 6, specials);
    for (let op = 0; op < UNARY.length; op++) {
      parity(rep, `unary ${UNARY[op]} in place (out aliases x) n=1000`, (s) => {
        const xi = s.in(x);
        s.k.unary(op, xi.h, xi.o, xi.h, xi.o, 1000);
        return s.get(xi, 1000, F32);
      }, (d, r, c) => c.close('out', d, r));
    }
    rep.done(t);
  });

  test('swiglu (f32, bf16) and swigluBackward: special values, odd sizes, offset views', (t) => {
    const rep = new Report();
    const specials = [NaN, Infinity, -Infinity, 0, -0, 1e-30, -1e-30, 0.5, -0.5, 20, -20, 88, -88, 88.8, -104, 100, -100];
    for (const n of [1, 7, 33, 1000, 100003]) {
      const gate = withSpecials(n, -8, 8, specials), up = withSpecials(n, -3, 3, [NaN, Infinity, 0, -0], 0.02);
      const g = uniform(n, -2, 2);
      const pad = n === 33 || n === 1000 ? 1 : 0; // misaligned views take the scalar path
      const tag = `n=${n}${pad ? ' offset 1' : ''}`;
      parity(rep, `swiglu f32 ${tag}`, (s) => {
        const gi = s.in(gate, pad), ui = s.in(up, pad), o = s.out(n, F32, pad);
        s.k.swiglu(gi.h, gi.o, ui.h, ui.o, o.h, o.o, n, 0);
        return s.get(o, n, F32);
      }, (d, r, c) => c.close('out', d, r));
      parity(rep, `swiglu bf16 ${tag}`, (s) => {
        const gi = s.in(toBf16Array(gate), pad), ui = s.in(toBf16Array(up), pad), o = s.out(n, U16, pad);
        s.k.swiglu(gi.h, gi.o, ui.h, ui.o, o.h, o.o, n, 3);
        return s.get(o, n, U16);
      }, (d, r, c) => c.close('out', fromBf16Array(d), fromBf16Array(r), 2 ** -8));
      parity(rep, `swigluBackward ${tag}`, (s) => {
        const gi = s.in(gate, pad), ui = s.in(up), dyi = s.in(g, pad), dg = s.out(n, F32, pad), du = s.out(n, F32);
        s.k.swigluBackward(gi.h, gi.o, ui.h, ui.o, dyi.h, dyi.o, dg.h, dg.o, du.h, du.o, n);
        return { dgate: s.get(dg, n, F32), dup: s.get(du, n, F32) };
      }, (d, r, c) => {
        c.close('dgate', d.dgate, r.dgate);
        c.close('dup', d.dup, r.dup);
      });
    }
    rep.done(t);
  });

  test('clamp: bounds incl. infinite and lo > hi, NaN kept', (t) => {
    const rep = new Report();
    for (const n of [1, 37, 100003]) {
      const x = withSpecials(n, -3, 3, [NaN, Infinity, -Infinity, 0, -0, 1, -1]);
      for (const [lo, hi] of [[-1, 1], [-Infinity, 0.5], [0, Infinity], [2, -2], [0.25, 0.25]] as const) {
        parity(rep, `clamp n=${n} [${lo}, ${hi}]`, (s) => {
          const xi = s.in(x), o = s.out(n, F32);
          s.k.clamp(xi.h, xi.o, o.h, o.o, n, lo, hi);
          return s.get(o, n, F32);
        }, (d, r, c) => c.exact('out', d, r));
      }
    }
    rep.done(t);
  });

  interface BcastCase {
    name: string;
    out: number[];
    a?: OperandSpec;
    b?: OperandSpec;
    c?: OperandSpec;
    pad?: number;
  }
  const bcastCases: BcastCase[] = [
    { name: 'ndim 0', out: [] },
    { name: 'one element', out: [1] },
    { name: 'same shape, 100003', out: [100003] },
    { name: 'both broadcast [5,1,7] x [1,3,7]', out: [5, 3, 7], a: { shape: [5, 1, 7] }, b: { shape: [1, 3, 7] }, c: { shape: [5, 3, 1] } },
    { name: 'last dim broadcast', out: [3, 4, 5, 6], b: { shape: [3, 1, 5, 1] }, c: { shape: [1, 4, 1, 6] } },
    { name: 'scalar broadcast', out: [37, 41], b: { shape: [1, 1] }, c: { shape: [1, 1] } },
    { name: 'a transposed', out: [13, 29], a: { perm: [1, 0] }, b: { shape: [1, 29] }, c: { perm: [1, 0] } },
    { name: 'both permuted 3-d', out: [6, 10, 11], a: { perm: [2, 0, 1] }, b: { perm: [1, 2, 0] }, c: { shape: [6, 1, 11] } },
    { name: '8-d', out: [2, 1, 3, 1, 2, 3, 1, 5], a: { shape: [2, 1, 3, 1, 1, 3, 1, 5] }, b: { shape: [1, 1, 3, 1, 2, 1, 1, 5] }, c: { shape: [2, 1, 1, 1, 2, 3, 1, 1] } },
    { name: 'odd strides on size-1 dims', out: [1, 9, 1, 4], a: { unitStride: 777 }, b: { shape: [1, 9, 1, 1], unitStride: 5 }, c: { unitStride: 3 } },
    { name: 'large row broadcast, offsets 3', out: [257, 1031], b: { shape: [1, 1031] }, c: { shape: [257, 1] }, pad: 3 },
  ];
  const binSpecials = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 2, 0.5];

  test('binary: every op code incl. comparisons, broadcasting over awkward shapes', (t) => {
    const rep = new Report();
    for (const bc of bcastCases) {
      for (const mode of ['mixed', 'ties'] as const) {
        const A = operand(bc.out, bc.a), B = operand(bc.out, bc.b), n = prod(bc.out), pad = bc.pad ?? 0;
        // 'ties': few distinct values, so comparisons see many equal pairs.
        const a = mode === 'ties' ? pick(A.n, [-1, 0, 1, 2, NaN]) : uniform(A.n, -3, 3, binSpecials, 0.1);
        const b = mode === 'ties' ? pick(B.n, [-1, 0, 1, 2, NaN]) : uniform(B.n, -3, 3, binSpecials, 0.1);
        for (let op = 0; op < BINARY.length; op++) {
          const cmp = op >= B_EQ;
          parity(rep, `binary ${BINARY[op]} ${bc.name} (${mode})`, (s) => {
            const ai = s.in(a, pad), bi = s.in(b, pad);
            const o = s.out(n, (cmp ? U8 : F32) as Ctor<TA>, pad);
            s.k.binary(op, ai.h, ai.o, A.strides, bi.h, bi.o, B.strides, o.h, o.o, bc.out);
            return cmp ? s.get(o, n, U8) : s.get(o, n, F32);
          }, (d, r, c) => (cmp ? c.exact('out', d, r) : c.close('out', d, r)));
        }
      }
    }
    rep.done(t);
  });

  test('where: broadcast cond/a/b, non-0/1 cond bytes', (t) => {
    const rep = new Report();
    for (const bc of bcastCases) {
      const C = operand(bc.out, bc.c), A = operand(bc.out, bc.a), B = operand(bc.out, bc.b), n = prod(bc.out), pad = bc.pad ?? 0;
      const cond = Uint8Array.from(pick(C.n, [0, 1, 0, 2, 255]));
      const a = uniform(A.n, -3, 3, binSpecials, 0.1), b = uniform(B.n, -3, 3, binSpecials, 0.1);
      parity(rep, `where ${bc.name}`, (s) => {
        const ci = s.in(cond, pad), ai = s.in(a, pad), bi = s.in(b);
        const o = s.out(n, F32, pad);
        s.k.where(ci.h, ci.o, C.strides, ai.h, ai.o, A.strides, bi.h, bi.o, B.strides, o.h, o.o, bc.out);
        return s.get(o, n, F32);
      }, (d, r, c) => c.exact('out', d, r));
    }
    rep.done(t);
  });

  test('stridedCopy: permutes, expands, slices into a larger buffer; element sizes 1, 2, 4', (t) => {
    const rep = new Report();
    interface CopyCase {
      name: string;
      shape: number[];
      ss: number[];
      srcN: number;
      ds?: number[];
      dstN?: number; // whole destination buffer (background kept where not written)
      dstOff?: number;
      srcPad?: number;
    }
    const perm4 = operand([5, 3, 2, 4], { perm: [2, 1, 3, 0] }); // storage (2,3,4,5) viewed through a permutation
    const tBig = operand([257, 301], { perm: [1, 0] });
    const cases: CopyCase[] = [
      { name: 'ndim 0', shape: [], ss: [], srcN: 1 },
      { name: 'permuted 4-d', shape: [5, 3, 2, 4], ss: perm4.strides, srcN: 120 },
      { name: 'expand (stride 0)', shape: [3, 5, 7], ss: [7, 0, 1], srcN: 21 },
      { name: 'into a column slice (cat)', shape: [4, 7], ss: [7, 1], srcN: 28, ds: [20, 1], dstN: 80, dstOff: 5 },
      { name: 'strided src, transposed dst', shape: [5, 9], ss: [20, 2], srcN: 100, ds: [1, 5], dstN: 45 },
      { name: 'transposed 257x301, src offset 1', shape: [257, 301], ss: tBig.strides, srcN: 257 * 301, srcPad: 1 },
      { name: 'contiguous 100003, src offset 3', shape: [100003], ss: [1], srcN: 100003, srcPad: 3 },
    ];
    for (const cc of cases) {
      for (const [esize, ctor] of [[1, U8], [2, U16], [4, I32]] as const) {
        const src = randomBits(cc.srcN, ctor as Ctor<TA>);
        const n = prod(cc.shape);
        const ds = cc.ds ?? contiguous(cc.shape);
        const dstN = cc.dstN ?? n;
        const background = cc.dstN !== undefined ? randomBits(dstN, ctor as Ctor<TA>) : null;
        parity(rep, `stridedCopy ${cc.name} elemSize=${esize}`, (s) => {
          const si = s.in(src, cc.srcPad ?? 0);
          const dst = background ? s.in(background) : s.out(dstN, ctor as Ctor<TA>);
          s.k.stridedCopy(si.h, si.o, cc.ss, dst.h, dst.o + (cc.dstOff ?? 0) * esize, ds, cc.shape, esize);
          return s.get(dst, dstN, ctor as Ctor<TA>);
        }, (d, r, c) => c.exact('dst', d, r));
      }
    }
    rep.done(t);
  });

  test('fill: f32, i32, u8 values into a sub-range (outside kept)', (t) => {
    const rep = new Report();
    const values: number[][] = [
      [0, -0, 1.5, -3.25e-3, NaN, -Infinity, 1e-40, 3.4e38],
      [0, -7, 2147483647, -2147483648, 123456789],
      [0, 1, 255, 128],
    ];
    for (let dt = 0; dt < 3; dt++) {
      const ctor = DT_CTOR[dt] as Ctor<TA>;
      for (const n of [1, 7, 1000, 100003]) {
        const pad = 3, total = n + 2 * pad;
        const background = randomBits(total, ctor);
        for (const v of values[dt]!) {
          parity(rep, `fill ${DT[dt]} n=${n} value=${fmt(v)}`, (s) => {
            const b = s.in(background);
            s.k.fill(dt, b.h, b.o + pad * ctor.BYTES_PER_ELEMENT, n, v);
            return s.get(b, total, ctor);
          }, (d, r, c) => (dt === 0 ? c.bits('buffer', d as Float32Array, r as Float32Array) : c.exact('buffer', d, r)));
        }
      }
    }
    rep.done(t);
  });

  test('cast: every dtype pair', (t) => {
    const rep = new Report();
    // f32 sources: NaN/inf/-0/subnormals/bf16 ties/overflow go to f32, u8, bf16; i32 gets
    // finite in-range values only (f32 -> i32 of NaN or out of range is undefined in C++).
    const f32Specials = [NaN, -NaN, Infinity, -Infinity, 0, -0, 1e-40, -1e-45, 1.00390625, 1.01171875, -2.5, 3.4e38, -3.39e38, 65504.5, 1e-38];
    const sources = (src: number, dst: number, n: number): TA => {
      if (src === 0) return dst === 1 ? withSpecials(n, -1e9, 1e9, [0, -0, 0.5, -0.5, 1.99, -1.99, 2147483520, -2147483648]) : withSpecials(n, -300, 300, f32Specials);
      if (src === 1) {
        const a = ints(n, -2147483648, 2147483647);
        a.set([0, 1, -1, 16777217, -16777217, 2147483647, -2147483648, 33554435].slice(0, n));
        return a;
      }
      if (src === 2) return randomBits(n, U8);
      // bf16: random patterns; finite and within i32 range when the destination is i32.
      const h = randomBits(n, U16);
      if (dst === 1) for (let i = 0; i < n; i++) if ((h[i]! & 0x7f80) >= 0x4f00) h[i] = h[i]! & 0x80ff; // exponent < 31
      return h;
    };
    for (let src = 0; src < 4; src++) {
      for (let dst = 0; dst < 4; dst++) {
        for (const n of [1, 13, 4099, 100003]) {
          const data = sources(src, dst, n);
          const pad = n === 13 ? 1 : 0; // odd element offsets: misaligned u8/bf16 views
          parity(rep, `cast ${DT[src]} -> ${DT[dst]} n=${n}${pad ? ' offsets 1' : ''}`, (s) => {
            const si = s.in(data, pad), o = s.out(n, DT_CTOR[dst] as Ctor<TA>, pad);
            s.k.cast(si.h, si.o, src, o.h, o.o, dst, n);
            return s.get(o, n, DT_CTOR[dst] as Ctor<TA>);
          }, (d, r, c) => {
            if (dst === 0) c.bits('out', d as Float32Array, r as Float32Array);
            else if (dst === 3) c.bf16('out', d as Uint16Array, r as Uint16Array);
            else c.exact('out', d, r);
          });
        }
      }
    }
    rep.done(t);
  });

  test('reduce: every op, inner == 1 and > 1, R up to 5000, R = 0, NaN/inf/ties', (t) => {
    const rep = new Report();
    const special = new Float32Array([
      ...[0.3, -1.2, 2.5, 0.7, -0.1, 1.9, -2.2, 0.05, 1.1], // plain
      ...[1, 2, 3, 4, NaN, 0, -1, 9, 2], // NaN inside
      ...[2, 2, 2, 2, 2, 2, 2, 2, 2], // all equal: arg* -> 0
      ...[1, 5, 5, -Infinity, 5, -7, 0, -7, 3], // tied max and min
      ...[0, Infinity, 1, -Infinity, 2, 3, -1, 4, 5], // both infinities
      ...[-Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity],
      ...[NaN, 1, 2, 3, 4, NaN, 6, -0, 0], // NaN first
    ]);
    const shapes: { outer: number; R: number; inner: number; x?: Float32Array }[] = [
      { outer: 1, R: 1, inner: 1 },
      { outer: 7, R: 13, inner: 1 },
      { outer: 3, R: 5000, inner: 1 },
      { outer: 5, R: 17, inner: 3 },
      { outer: 2, R: 5000, inner: 33 },
      { outer: 1, R: 1, inner: 300 },
      { outer: 129, R: 64, inner: 1 },
      { outer: 7, R: 9, inner: 1, x: special },
      { outer: 1, R: 7, inner: 9, x: special },
      { outer: 4, R: 0, inner: 3 },
    ];
    for (const sh of shapes) {
      const { outer, R, inner } = sh;
      const x = sh.x ?? uniform(outer * R * inner, -2, 2);
      const label = `(outer ${outer}, R ${R}, inner ${inner})${sh.x ? ' specials' : ''}`;
      for (let op = 0; op < REDUCE.length; op++) {
        if (R === 0 && [R_MAX, R_MIN, R_ARGMAX, R_ARGMIN].includes(op)) continue; // no identity: callers reject empty
        const arg = op === R_ARGMAX || op === R_ARGMIN;
        for (const correction of op === R_VAR ? [0, 1] : [0]) {
          const n = outer * inner;
          // SUM/MEAN/VAR/LOGSUMEXP over 5000 elements: the CPU accumulates in double, a device may
          // sum f32 partials in another order, so long rows get 1e-4.
          const tol = R >= 1000 ? 1e-4 : 1e-5;
          parity(rep, `reduce ${REDUCE[op]}${op === R_VAR ? ` correction=${correction}` : ''} ${label}`, (s) => {
            const xi = s.in(x), o = s.out(n, (arg ? I32 : F32) as Ctor<TA>);
            s.k.reduce(op, xi.h, xi.o, o.h, o.o, outer, R, inner, correction);
            return arg ? s.get(o, n, I32) : s.get(o, n, F32);
          }, (d, r, c) => (arg || op === R_MAX || op === R_MIN ? c.exact('out', d, r) : c.close('out', d, r, tol)));
        }
      }
    }
    rep.done(t);
  });

  interface MmCase {
    batch: number;
    M: number;
    N: number;
    K: number;
    ta?: number;
    tb?: number;
    shareA?: boolean;
    shareB?: boolean;
    alpha?: number;
    beta?: number;
    pad?: number;
  }
  const mmCases: MmCase[] = [
    { batch: 1, M: 1, N: 1, K: 1 },
    ...[0, 1].flatMap((ta) => [0, 1].map((tb) => ({ batch: 1, M: 17, N: 13, K: 31, ta, tb }))),
    ...[0, 1].flatMap((ta) => [0, 1].map((tb) => ({ batch: 3, M: 33, N: 65, K: 7, ta, tb }))),
    { batch: 4, M: 5, N: 19, K: 23, shareA: true },
    { batch: 4, M: 5, N: 19, K: 23, shareB: true },
    { batch: 4, M: 5, N: 19, K: 23, shareB: true, ta: 1, tb: 1 },
    { batch: 2, M: 7, N: 9, K: 0 },
    { batch: 2, M: 7, N: 9, K: 0, beta: 0.5 },
    { batch: 2, M: 31, N: 37, K: 41, alpha: -1.5, beta: 0.5 },
    { batch: 2, M: 31, N: 37, K: 41, alpha: 0.25, beta: 1, tb: 1 },
    { batch: 1, M: 3, N: 5, K: 7, pad: 1 },
    { batch: 2, M: 128, N: 257, K: 96, tb: 1 },
    { batch: 1, M: 300, N: 513, K: 200, ta: 1 },
  ];
  const mmName = (m: MmCase): string =>
    `batch ${m.batch} M ${m.M} N ${m.N} K ${m.K} transA ${m.ta ?? 0} transB ${m.tb ?? 0}` +
    `${m.shareA ? ' A shared (stride 0)' : ''}${m.shareB ? ' B shared (stride 0)' : ''}` +
    `${m.alpha !== undefined ? ` alpha ${m.alpha}` : ''}${m.beta !== undefined ? ` beta ${m.beta}` : ''}${m.pad ? ' offsets 1' : ''}`;
  const mmInputs = (m: MmCase) => ({
    a: uniform((m.shareA ? 1 : m.batch) * m.M * m.K),
    b: uniform((m.shareB ? 1 : m.batch) * m.K * m.N),
    c0: m.beta ? uniform(m.batch * m.M * m.N) : null, // C is read only when beta != 0
  });

  test('matmul f32: transposes, batch broadcast, K = 0, alpha/beta', (t) => {
    const rep = new Report();
    for (const m of mmCases) {
      const { a, b, c0 } = mmInputs(m);
      const nC = m.batch * m.M * m.N, pad = m.pad ?? 0;
      parity(rep, `matmul f32 ${mmName(m)}`, (s) => {
        const ai = s.in(a, pad), bi = s.in(b, pad), ci = c0 ? s.in(c0, pad) : s.out(nC, F32, pad);
        s.k.matmul(ai.h, ai.o, bi.h, bi.o, ci.h, ci.o, m.batch, m.M, m.N, m.K, m.ta ?? 0, m.tb ?? 0,
          m.shareA ? 0 : m.M * m.K, m.shareB ? 0 : m.K * m.N, m.alpha ?? 1, m.beta ?? 0, 0);
        return s.get(ci, nC, F32);
      }, (d, r, c) => c.close('C', d, r));
    }
    rep.done(t);
  });

  test('matmul bf16 on the device vs cpu f32 of the bf16-rounded inputs', (t) => {
    const rep = new Report();
    const cpu = kernelsFor('cpu'), dev = kernelsFor(DEVICE);
    if (DEVICE === 'cpu') t.diagnostic('the cpu has no bf16 matmul: emulated with cast + f32 matmul + cast (checks the harness only)');
    for (const m of mmCases) {
      const { a, b, c0 } = mmInputs(m);
      const nA = a.length, nB = b.length, nC = m.batch * m.M * m.N, pad = m.pad ?? 0;
      const aBS = m.shareA ? 0 : m.M * m.K, bBS = m.shareB ? 0 : m.K * m.N;
      const args = [m.batch, m.M, m.N, m.K, m.ta ?? 0, m.tb ?? 0, aBS, bBS, m.alpha ?? 1, m.beta ?? 0] as const;
      const name = `matmul bf16 ${mmName(m)}`;
      rep.cases++;
      const cs = new Side(cpu, 0x00), ds = new Side(dev, 0xff);
      try {
        const ai = cs.in(bf16Round(a)), bi = cs.in(bf16Round(b)), ci = c0 ? cs.in(bf16Round(c0)) : cs.out(nC, F32);
        cpu.matmul(ai.h, ai.o, bi.h, bi.o, ci.h, ci.o, ...args, 0);
        const want = cs.get(ci, nC, F32);
        const ad = ds.in(toBf16Array(a), pad), bd = ds.in(toBf16Array(b), pad);
        const cd = c0 ? ds.in(toBf16Array(c0), pad) : ds.out(nC, U16, pad);
        if (DEVICE !== 'cpu') {
          dev.matmul(ad.h, ad.o, bd.h, bd.o, cd.h, cd.o, ...args, 3);
        } else {
          // The CPU computes f32 only: emulate a bf16 matmul (cast in, f32 GEMM, cast out) so the
          // harness itself runs without a GPU.
          const af = ds.out(nA, F32), bf = ds.out(nB, F32), cf = ds.out(nC, F32);
          dev.cast(ad.h, ad.o, 3, af.h, af.o, 0, nA);
          dev.cast(bd.h, bd.o, 3, bf.h, bf.o, 0, nB);
          if (c0) dev.cast(cd.h, cd.o, 3, cf.h, cf.o, 0, nC);
          dev.matmul(af.h, af.o, bf.h, bf.o, cf.h, cf.o, ...args, 0);
          dev.cast(cf.h, cf.o, 0, cd.h, cd.o, 3, nC);
        }
        const got = fromBf16Array(ds.get(cd, nC, U16));
        // bf16 output rounding alone is 2^-9 relative; accumulation order differs from the BLAS.
        new Check(rep, name).close('C', got, want, 1e-2);
      } catch (e) {
        rep.fails.push(`${name}: threw: ${errMsg(e)}`);
      } finally {
        cs.dispose();
        ds.dispose();
      }
    }
    rep.done(t);
  });

  test('softmax and log_softmax forward/backward, C up to 151936, special rows', (t) => {
    const rep = new Report();
    const specialRows = new Float32Array([
      ...[0.5, -1, 2, 0, 3, -2, 1, 0.25, -0.5],
      ...[-Infinity, 1, 2, -Infinity, 0, 1, -Infinity, 3, 2],
      ...Array<number>(9).fill(-Infinity),
      ...[1, 2, NaN, 0, 1, 2, 3, 4, 5],
      ...[1, 2, Infinity, 0, 1, 2, 3, 4, 5],
      ...Array<number>(9).fill(0.7),
    ]);
    const cases: { N: number; C: number; x?: Float32Array }[] = [
      { N: 1, C: 1 },
      { N: 3, C: 7 },
      { N: 4, C: 33 },
      { N: 5, C: 1000 },
      { N: 2, C: LARGE_V },
      { N: 6, C: 9, x: specialRows },
    ];
    for (const { N, C, x: given } of cases) {
      const x = given ?? uniform(N * C, -8, 8);
      const dy = uniform(N * C, -1, 1);
      const n = N * C;
      // Rows of 151936: f32 row sums in another order; the probabilities are ~1/C, so they are
      // compared relative to 1/C (floor) instead of 1.
      const long = C >= 10000;
      for (const log of [0, 1]) {
        const what = `${log ? 'log_softmax' : 'softmax'} (N ${N}, C ${C})${given ? ' specials' : ''}`;
        const y = parity(rep, what, (s) => {
          const xi = s.in(x), yo = s.out(n, F32);
          s.k.softmax(xi.h, xi.o, yo.h, yo.o, N, C, log);
          return s.get(yo, n, F32);
        }, (d, r, c) => c.close('y', d, r, 1e-5, log ? 1 : 1 / C));
        if (!y) continue;
        parity(rep, `${what} backward`, (s) => {
          const yi = s.in(y), dyi = s.in(dy), dx = s.out(n, F32);
          s.k.softmaxBackward(yi.h, yi.o, dyi.h, dyi.o, dx.h, dx.o, N, C, log);
          return s.get(dx, n, F32);
        }, (d, r, c) => c.close('dx', d, r, long ? 1e-4 : 1e-5, log ? 1 : 1 / C));
      }
    }
    rep.done(t);
  });

  test('indexSelect, gather, scatterAdd, oneHot incl. out-of-range error codes', (t) => {
    const rep = new Report();
    // indexSelect: idx (I) shared by all outer rows; element sizes 4, 2, 1.
    const isel: { outer: number; X: number; I: number; inner: number; esize: 1 | 2 | 4; bad?: [number, number][] }[] = [
      { outer: 1, X: 151, I: 37, inner: 64, esize: 4 },
      { outer: 1, X: 151, I: 37, inner: 64, esize: 2 },
      { outer: 3, X: 5, I: 11, inner: 1, esize: 4 },
      { outer: 2, X: 7, I: 13, inner: 3, esize: 1 },
      { outer: 4, X: 1, I: 5, inner: 7, esize: 2 },
      { outer: 1, X: 1000, I: 300, inner: 257, esize: 4 },
      { outer: 1, X: 10, I: 12, inner: 3, esize: 4, bad: [[5, 10], [9, -1]] },
      { outer: 2, X: 10, I: 12, inner: 3, esize: 2, bad: [[0, -1]] },
      { outer: 1, X: 10, I: 12, inner: 3, esize: 1, bad: [[11, 1000]] },
    ];
    for (const cs of isel) {
      const ctor = (cs.esize === 4 ? I32 : cs.esize === 2 ? U16 : U8) as Ctor<TA>;
      const x = randomBits(cs.outer * cs.X * cs.inner, ctor);
      const idx = ints(cs.I, 0, cs.X);
      for (const [p, v] of cs.bad ?? []) idx[p] = v;
      const n = cs.outer * cs.I * cs.inner;
      parity(rep, `indexSelect (outer ${cs.outer}, X ${cs.X}, I ${cs.I}, inner ${cs.inner}) elemSize=${cs.esize}${cs.bad ? ` bad ids ${JSON.stringify(cs.bad)}` : ''}`, (s) => {
        const xi = s.in(x), ii = s.in(idx), o = s.out(n, ctor);
        const code = s.k.indexSelect(xi.h, xi.o, ii.h, ii.o, o.h, o.o, cs.outer, cs.X, cs.I, cs.inner, cs.esize);
        return { code, out: code === 0 ? s.get(o, n, ctor) : null };
      }, (d, r, c) => {
        c.code('return code', d.code, r.code);
        if (d.out && r.out) c.exact('out', d.out, r.out);
      });
    }
    // gather: idx (outer, I, inner).
    const gat: { outer: number; X: number; I: number; inner: number; bad?: [number, number][] }[] = [
      { outer: 2, X: 7, I: 5, inner: 3 },
      { outer: 4, X: 13, I: 9, inner: 1 },
      { outer: 1, X: LARGE_V, I: 3, inner: 1 },
      { outer: 3, X: 1, I: 4, inner: 2 },
      { outer: 2, X: 50, I: 200, inner: 33 },
      { outer: 2, X: 7, I: 5, inner: 3, bad: [[17, 7], [20, -3]] },
      { outer: 2, X: 7, I: 5, inner: 3, bad: [[29, -1]] },
    ];
    for (const cs of gat) {
      const n = cs.outer * cs.I * cs.inner;
      const x = uniform(cs.outer * cs.X * cs.inner, -1, 1, [NaN, -0], 0.02);
      const idx = ints(n, 0, cs.X);
      for (const [p, v] of cs.bad ?? []) idx[p] = v;
      parity(rep, `gather (outer ${cs.outer}, X ${cs.X}, I ${cs.I}, inner ${cs.inner})${cs.bad ? ` bad ids ${JSON.stringify(cs.bad)}` : ''}`, (s) => {
        const xi = s.in(x), ii = s.in(idx), o = s.out(n, F32);
        const code = s.k.gather(xi.h, xi.o, ii.h, ii.o, o.h, o.o, cs.outer, cs.X, cs.I, cs.inner);
        return { code, out: code === 0 ? s.get(o, n, F32) : null };
      }, (d, r, c) => {
        c.code('return code', d.code, r.code);
        if (d.out && r.out) c.exact('out', d.out, r.out);
      });
    }
    // scatterAdd accumulates into out (initialized identically on both sides).
    const sca: { outer: number; X: number; I: number; inner: number; shared: number; bad?: [number, number][] }[] = [
      { outer: 2, X: 5, I: 37, inner: 3, shared: 0 },
      { outer: 1, X: 11, I: 1000, inner: 64, shared: 1 },
      { outer: 3, X: 1, I: 7, inner: 5, shared: 0 },
      { outer: 3, X: 1, I: 7, inner: 5, shared: 1 },
      { outer: 4, X: 13, I: 9, inner: 1, shared: 0 },
      { outer: 2, X: 300, I: 40, inner: 17, shared: 0 },
      { outer: 1, X: 50, I: 4000, inner: 33, shared: 1 },
      { outer: 2, X: 5, I: 6, inner: 3, shared: 0, bad: [[10, 5], [30, -1]] },
      { outer: 2, X: 5, I: 6, inner: 3, shared: 1, bad: [[4, 5]] },
    ];
    for (const cs of sca) {
      const nIdx = cs.shared ? cs.I : cs.outer * cs.I * cs.inner;
      const nOut = cs.outer * cs.X * cs.inner;
      const out0 = uniform(nOut), src = uniform(cs.outer * cs.I * cs.inner), idx = ints(nIdx, 0, cs.X);
      for (const [p, v] of cs.bad ?? []) idx[p] = v;
      parity(rep, `scatterAdd (outer ${cs.outer}, X ${cs.X}, I ${cs.I}, inner ${cs.inner}) shared=${cs.shared}${cs.bad ? ` bad ids ${JSON.stringify(cs.bad)}` : ''}`, (s) => {
        const o = s.in(out0), ii = s.in(idx), si = s.in(src);
        const code = s.k.scatterAdd(o.h, o.o, ii.h, ii.o, si.h, si.o, cs.outer, cs.X, cs.I, cs.inner, cs.shared);
        return { code, out: code === 0 ? s.get(o, nOut, F32) : null };
      }, (d, r, c) => {
        c.code('return code', d.code, r.code);
        // Duplicate ids add in a different order on a device (atomics): allow 1e-4.
        if (d.out && r.out) c.close('out', d.out, r.out, 1e-4);
      });
    }
    for (const [N, C, bad] of [[1, 1], [37, 151], [5, LARGE_V], [8, 2], [6, 10, [[3, 10]]], [6, 10, [[0, -1], [4, 12]]]] as [number, number, [number, number][]?][]) {
      const idx = ints(N, 0, C);
      for (const [p, v] of bad ?? []) idx[p] = v;
      parity(rep, `oneHot (N ${N}, C ${C})${bad ? ` bad ids ${JSON.stringify(bad)}` : ''}`, (s) => {
        const ii = s.in(idx), o = s.out(N * C, F32);
        const code = s.k.oneHot(ii.h, ii.o, o.h, o.o, N, C);
        return { code, out: code === 0 ? s.get(o, N * C, F32) : null };
      }, (d, r, c) => {
        c.code('return code', d.code, r.code);
        if (d.out && r.out) c.exact('out', d.out, r.out);
      });
    }
    rep.done(t);
  });

  test('cumsum forward and reverse', (t) => {
    const rep = new Report();
    const special = new Float32Array([1, 2, NaN, 3, 4, 5, Infinity, 1, 2, -1, 0.5, 0.25, -Infinity, 3, 1, 1, 2, 2]);
    for (const { outer, R, inner, x: given } of [
      { outer: 1, R: 1, inner: 1 },
      { outer: 3, R: 17, inner: 1 },
      { outer: 2, R: 5000, inner: 1 },
      { outer: 4, R: 13, inner: 7 },
      { outer: 2, R: 1000, inner: 33 },
      { outer: 1, R: 9, inner: 2, x: special },
    ] as { outer: number; R: number; inner: number; x?: Float32Array }[]) {
      const n = outer * R * inner;
      const x = given ?? uniform(n);
      for (const reverse of [0, 1]) {
        parity(rep, `cumsum (outer ${outer}, R ${R}, inner ${inner})${reverse ? ' reverse' : ''}${given ? ' specials' : ''}`, (s) => {
          const xi = s.in(x), o = s.out(n, F32);
          s.k.cumsum(xi.h, xi.o, o.h, o.o, outer, R, inner, reverse);
          return s.get(o, n, F32);
          // Running sums over 1000+ steps: the CPU accumulates in double, a device scan may not.
        }, (d, r, c) => c.close('out', d, r, R >= 1000 ? 1e-4 : 1e-5));
      }
    }
    rep.done(t);
  });

  test('sortRows: stable ties, NaN largest, descending, top-k', (t) => {
    const rep = new Report();
    const tiny = new Float32Array([3, NaN, 1, 3, -0, 0, NaN, 2, -Infinity, Infinity, 2, 2, 0, -0, 5, 5, 5, NaN, 1, 1, -1]);
    const cases: { N: number; C: number; k: number; x: Float32Array; label: string }[] = [
      { N: 1, C: 1, k: 1, x: new Float32Array([4]), label: 'one element' },
      { N: 3, C: 7, k: 7, x: tiny, label: 'ties, NaN, ±0, ±inf' },
      { N: 3, C: 7, k: 3, x: tiny, label: 'ties, NaN, ±0, ±inf' },
    ];
    const ties = pick(6 * 257, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, NaN, Infinity, -Infinity, -0]);
    cases.push({ N: 6, C: 257, k: 257, x: ties, label: 'many ties' }, { N: 6, C: 257, k: 10, x: ties, label: 'many ties' });
    cases.push({ N: 5, C: 1000, k: 1000, x: uniform(5000), label: 'random' });
    cases.push({ N: 4, C: 33, k: 1, x: uniform(4 * 33), label: 'random' });
    cases.push({ N: 3, C: LARGE_V, k: 50, x: uniform(3 * LARGE_V, -10, 10), label: 'vocab top-k' });
    cases.push({ N: 2, C: 32000, k: 32000, x: pick(64000, Array.from({ length: 300 }, (_, i) => i / 7)), label: 'full sort with ties' });
    for (const cs of cases) {
      for (const desc of [0, 1]) {
        if (cs.C === LARGE_V && !desc) continue;
        parity(rep, `sortRows (N ${cs.N}, C ${cs.C}, k ${cs.k}) ${desc ? 'desc' : 'asc'} ${cs.label}`, (s) => {
          const xi = s.in(cs.x), v = s.out(cs.N * cs.k, F32), ix = s.out(cs.N * cs.k, I32);
          s.k.sortRows(xi.h, xi.o, v.h, v.o, ix.h, ix.o, cs.N, cs.C, cs.k, desc);
          return { v: s.get(v, cs.N * cs.k, F32), ix: s.get(ix, cs.N * cs.k, I32) };
        }, (d, r, c) => {
          c.exact('indices', d.ix, r.ix);
          c.bits('values', d.v, r.v);
        });
      }
    }
    rep.done(t);
  });

  test('randUniform, randNormal, randInt, dropout: the same Philox stream', (t) => {
    const rep = new Report();
    const MAX64 = 0xffffffffffffffffn;
    const combos: [number, bigint, bigint][] = [];
    for (const n of [1, 3, 4, 5, 1001])
      for (const seed of [0n, 42n, MAX64]) for (const offset of [0n, 7n, (1n << 40n) + 3n]) combos.push([n, seed, offset]);
    combos.push([(1 << 20) + 3, 42n, 7n], [(1 << 20) + 3, MAX64, (1n << 40n) + 3n]);
    for (const [n, seed, offset] of combos) {
      const pad = n === 1001 ? 1 : 0;
      const tag = `n=${n} seed=${seed} offset=${offset}${pad ? ' out offset 1' : ''}`;
      for (const [lo, hi] of [[0, 1], [-2, 3]] as const) {
        parity(rep, `randUniform [${lo}, ${hi}) ${tag}`, (s) => {
          const o = s.out(n, F32, pad);
          s.k.randUniform(o.h, o.o, n, seed, offset, lo, hi);
          return s.get(o, n, F32);
          // lo + (hi - lo) * u: exact for [0, 1); scaled ranges may differ by FMA contraction (1 ulp).
        }, (d, r, c) => (lo === 0 && hi === 1 ? c.bits('out', d, r) : c.ulps('out', d, r, 1)));
      }
      for (const [mean, std] of [[0, 1], [0.5, 2]] as const) {
        parity(rep, `randNormal mean=${mean} std=${std} ${tag}`, (s) => {
          const o = s.out(n, F32, pad);
          s.k.randNormal(o.h, o.o, n, seed, offset, mean, std);
          return s.get(o, n, F32);
          // Box-Muller in double: device log/cos may differ from libm in the last double bit,
          // which can flip the f32 rounding: within 1 ulp.
        }, (d, r, c) => c.ulps('out', d, r, 1));
      }
      for (const [lo, hi] of [[0, 10], [-5, 5], [-2147483648, 2147483647], [3, 3], [0, LARGE_V]] as const) {
        parity(rep, `randInt [${lo}, ${hi}) ${tag}`, (s) => {
          const o = s.out(n, I32, pad);
          s.k.randInt(o.h, o.o, n, seed, offset, lo, hi);
          return s.get(o, n, I32);
        }, (d, r, c) => c.exact('out', d, r));
      }
      const x = withSpecials(n, -2, 2, [NaN, Infinity, -0]);
      for (const p of [0, 0.1, 0.5, 1]) {
        parity(rep, `dropout p=${p} ${tag}`, (s) => {
          const xi = s.in(x, pad), o = s.out(n, F32, pad), m = s.out(n, F32);
          s.k.dropout(xi.h, xi.o, o.h, o.o, m.h, m.o, n, seed, offset, p);
          return { out: s.get(o, n, F32), mask: s.get(m, n, F32) };
        }, (d, r, c) => {
          c.bits('mask', d.mask, r.mask);
          c.bits('out', d.out, r.out);
        });
      }
    }
    rep.done(t);
  });

  test('rmsNorm and layerNorm forward/backward', (t) => {
    const rep = new Report();
    for (const { N, C, eps, pad } of [
      { N: 1, C: 1, eps: 1e-6 },
      { N: 7, C: 13, eps: 1e-5 },
      { N: 33, C: 1000, eps: 1e-6 },
      { N: 5, C: 4099, eps: 1e-6, pad: 1 },
      { N: 1000, C: 64, eps: 1e-5 },
      { N: 3, C: 8192, eps: 1e-6 },
    ] as { N: number; C: number; eps: number; pad?: number }[]) {
      const n = N * C, p = pad ?? 0;
      const x = uniform(n, -2, 2);
      if (N >= 7) {
        x.fill(0, 2 * C, 3 * C); // a zero row: rms rstd = 1/sqrt(eps)
        x.fill(0.1, 4 * C, 5 * C); // a constant row: layer-norm variance 0
      }
      const w = uniform(C, 0.5, 1.5), b = uniform(C, -0.5, 0.5), dy = uniform(n, -1, 1);
      const shape = `(N ${N}, C ${C}) eps ${eps}${p ? ' offsets 1' : ''}`;
      const rms = parity(rep, `rmsNorm ${shape}`, (s) => {
        const xi = s.in(x, p), wi = s.in(w, p), y = s.out(n, F32, p), rstd = s.out(N, F32);
        s.k.rmsNorm(xi.h, xi.o, wi.h, wi.o, y.h, y.o, rstd.h, rstd.o, N, C, eps);
        return { y: s.get(y, n, F32), rstd: s.get(rstd, N, F32) };
      }, (d, r, c) => {
        c.close('y', d.y, r.y);
        c.close('rstd', d.rstd, r.rstd);
      });
      if (rms) {
        parity(rep, `rmsNormBackward ${shape}`, (s) => {
          const xi = s.in(x, p), wi = s.in(w), ri = s.in(rms.rstd), dyi = s.in(dy, p), dx = s.out(n, F32, p), dw = s.out(C, F32);
          s.k.rmsNormBackward(xi.h, xi.o, wi.h, wi.o, ri.h, ri.o, dyi.h, dyi.o, dx.h, dx.o, dw.h, dw.o, N, C);
          return { dx: s.get(dx, n, F32), dw: s.get(dw, C, F32) };
        }, (d, r, c) => {
          c.close('dx', d.dx, r.dx);
          c.close('dw', d.dw, r.dw);
        });
      }
      for (const withBias of [true, false]) {
        const bn = withBias ? 'with bias' : 'no bias';
        const ln = parity(rep, `layerNorm ${shape} ${bn}`, (s) => {
          const xi = s.in(x, p), wi = s.in(w), bi = withBias ? s.in(b, p) : NULL;
          const y = s.out(n, F32, p), mean = s.out(N, F32), rstd = s.out(N, F32);
          s.k.layerNorm(xi.h, xi.o, wi.h, wi.o, bi.h, bi.o, y.h, y.o, mean.h, mean.o, rstd.h, rstd.o, N, C, eps);
          return { y: s.get(y, n, F32), mean: s.get(mean, N, F32), rstd: s.get(rstd, N, F32) };
        }, (d, r, c) => {
          c.close('y', d.y, r.y);
          c.close('mean', d.mean, r.mean);
          c.close('rstd', d.rstd, r.rstd);
        });
        if (!ln) continue;
        parity(rep, `layerNormBackward ${shape} ${bn}`, (s) => {
          const xi = s.in(x, p), wi = s.in(w, p), mi = s.in(ln.mean), ri = s.in(ln.rstd), dyi = s.in(dy);
          const dx = s.out(n, F32), dw = s.out(C, F32, p), db = withBias ? s.out(C, F32) : NULL;
          s.k.layerNormBackward(xi.h, xi.o, wi.h, wi.o, mi.h, mi.o, ri.h, ri.o, dyi.h, dyi.o, dx.h, dx.o, dw.h, dw.o, db.h, db.o, N, C);
          return { dx: s.get(dx, n, F32), dw: s.get(dw, C, F32), db: withBias ? s.get(db, C, F32) : null };
        }, (d, r, c) => {
          c.close('dx', d.dx, r.dx);
          c.close('dw', d.dw, r.dw);
          if (d.db && r.db) c.close('db', d.db, r.db);
        });
      }
    }
    rep.done(t);
  });

  test('addRmsNorm (f32, bf16) and addRmsNormBackward (with and without gSum)', (t) => {
    // Also on each side: the fused kernels against that backend's own unfused chain (binary add,
    // rmsNorm; rmsNormBackward, binary add), which they match bitwise (the same row math and
    // reduction order, the same roundings).
    const rep = new Report();
    const eps = 1e-6;
    for (const { N, C, pad } of [
      { N: 1, C: 1 },
      { N: 7, C: 13 },
      { N: 33, C: 1000 },
      { N: 5, C: 4099, pad: 1 },
      { N: 64, C: 192, pad: 1 },
      { N: 1000, C: 64 },
      { N: 3, C: 8192 },
    ] as { N: number; C: number; pad?: number }[]) {
      const n = N * C, p = pad ?? 0, st = [C, 1], sh = [N, C];
      const x = uniform(n, -2, 2), r = uniform(n, -2, 2);
      if (N >= 7) {
        x.fill(0, 2 * C, 3 * C); // a zero row: rstd = 1/sqrt(eps)
        r.fill(0, 2 * C, 3 * C);
        for (let i = 4 * C; i < 5 * C; i++) r[i] = -x[i]!; // a row that cancels to zero
      }
      const w = uniform(C, 0.5, 1.5), dy = uniform(n, -1, 1), gs = uniform(n, -1, 1);
      const shape = `(N ${N}, C ${C})${p ? ' offsets 1' : ''}`;
      const fwd = parity(rep, `addRmsNorm f32 ${shape}`, (s) => {
        const xi = s.in(x, p), ri = s.in(r, p), wi = s.in(w, p), sum = s.out(n, F32, p), y = s.out(n, F32, p), rstd = s.out(N, F32);
        s.k.addRmsNorm(xi.h, xi.o, ri.h, ri.o, wi.h, wi.o, sum.h, sum.o, y.h, y.o, rstd.h, rstd.o, N, C, eps);
        const sum1 = s.out(n, F32, p), y1 = s.out(n, F32, p), rstd1 = s.out(N, F32);
        s.k.binary(0, xi.h, xi.o, st, ri.h, ri.o, st, sum1.h, sum1.o, sh);
        s.k.rmsNorm(sum1.h, sum1.o, wi.h, wi.o, y1.h, y1.o, rstd1.h, rstd1.o, N, C, eps);
        return {
          sum: s.get(sum, n, F32), y: s.get(y, n, F32), rstd: s.get(rstd, N, F32),
          sum1: s.get(sum1, n, F32), y1: s.get(y1, n, F32), rstd1: s.get(rstd1, N, F32),
        };
      }, (d, r, c) => {
        c.bits('sum', d.sum, r.sum);
        c.close('y', d.y, r.y);
        c.close('rstd', d.rstd, r.rstd);
        for (const [side, o] of [[DEVICE, d], ['cpu', r]] as const) {
          c.bits(`sum vs binary add on ${side}`, o.sum, o.sum1);
          c.bits(`y vs add + rmsNorm on ${side}`, o.y, o.y1);
          c.bits(`rstd vs add + rmsNorm on ${side}`, o.rstd, o.rstd1);
        }
      });
      const x16 = toBf16Array(x), r16 = toBf16Array(r), w16 = toBf16Array(w);
      parity(rep, `addRmsNorm bf16 ${shape}`, (s) => {
        const xi = s.in(x16, p), ri = s.in(r16, p), wi = s.in(w16, p), sum = s.out(n, U16, p), y = s.out(n, U16, p), rstd = s.out(N, F32);
        s.k.addRmsNorm(xi.h, xi.o, ri.h, ri.o, wi.h, wi.o, sum.h, sum.o, y.h, y.o, rstd.h, rstd.o, N, C, eps, 3);
        return { sum: s.get(sum, n, U16), y: s.get(y, n, U16), rstd: s.get(rstd, N, F32) };
      }, (d, r, c) => {
        c.bf16('sum', d.sum, r.sum); // one f32 add of bf16 values, one rounding: exact on both
        c.close('y', fromBf16Array(d.y), fromBf16Array(r.y), 2 ** -7); // an rstd 1 ulp apart may flip a bf16 rounding
        c.close('rstd', d.rstd, r.rstd);
      });
      if (!fwd) continue;
      for (const withSum of [true, false]) {
        parity(rep, `addRmsNormBackward ${shape}${withSum ? '' : ' gSum null'}`, (s) => {
          const si = s.in(fwd.sum, p), wi = s.in(w, p), ri = s.in(fwd.rstd), dyi = s.in(dy, p), gsi = withSum ? s.in(gs, p) : NULL;
          const dx = s.out(n, F32, p), dw = s.out(C, F32);
          s.k.addRmsNormBackward(si.h, si.o, wi.h, wi.o, ri.h, ri.o, dyi.h, dyi.o, gsi.h, gsi.o, dx.h, dx.o, dw.h, dw.o, N, C);
          const dx0 = s.out(n, F32, p), dw0 = s.out(C, F32), dx1 = s.out(n, F32, p);
          s.k.rmsNormBackward(si.h, si.o, wi.h, wi.o, ri.h, ri.o, dyi.h, dyi.o, dx0.h, dx0.o, dw0.h, dw0.o, N, C);
          if (withSum) s.k.binary(0, gsi.h, gsi.o, st, dx0.h, dx0.o, st, dx1.h, dx1.o, sh);
          const unfused = withSum ? dx1 : dx0;
          return { dx: s.get(dx, n, F32), dw: s.get(dw, C, F32), dx1: s.get(unfused, n, F32), dw0: s.get(dw0, C, F32) };
        }, (d, r, c) => {
          c.close('dx', d.dx, r.dx);
          c.close('dw', d.dw, r.dw);
          for (const [side, o] of [[DEVICE, d], ['cpu', r]] as const) {
            c.bits(`dx vs rmsNormBackward${withSum ? ' + add' : ''} on ${side}`, o.dx, o.dx1);
            c.bits(`dw vs rmsNormBackward on ${side}`, o.dw, o.dw0);
          }
        });
      }
    }
    rep.done(t);
  });

  test('rotary forward and inverse, in place', (t) => {
    const rep = new Report();
    for (const { B, T, H, D, maxPos } of [
      { B: 1, T: 1, H: 1, D: 2, maxPos: 10 },
      { B: 2, T: 7, H: 3, D: 64, maxPos: 4096 },
      { B: 1, T: 33, H: 5, D: 128, maxPos: 131072 },
      { B: 3, T: 5, H: 2, D: 80, maxPos: 32768 },
    ]) {
      const n = B * T * H * D;
      const x = uniform(n, -2, 2), pos = ints(B * T, 0, maxPos);
      pos[0] = 0;
      const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(10000, (2 * i) / D));
      for (const inverse of [0, 1]) {
        for (const scaling of [1, 0.7]) {
          const name = `rotary (B ${B}, T ${T}, H ${H}, D ${D}) positions < ${maxPos} scaling ${scaling}${inverse ? ' inverse' : ''}`;
          parity(rep, name, (s) => {
            const xi = s.in(x, 1), pi = s.in(pos), fi = s.in(invFreq), o = s.out(n, F32, 1);
            s.k.rotary(xi.h, xi.o, pi.h, pi.o, fi.h, fi.o, o.h, o.o, B, T, H, D, scaling, inverse);
            return s.get(o, n, F32);
          }, (d, r, c) => c.close('out', d, r));
          parity(rep, `${name} in place`, (s) => {
            const xi = s.in(x), pi = s.in(pos), fi = s.in(invFreq);
            s.k.rotary(xi.h, xi.o, pi.h, pi.o, fi.h, fi.o, xi.h, xi.o, B, T, H, D, scaling, inverse);
            return s.get(xi, n, F32);
          }, (d, r, c) => c.close('out', d, r));
        }
      }
    }
    rep.done(t);
  });

  test('attention forward (causal, GQA, keyMask, docIds, KV-cache decode, empty rows) and backward', (t) => {
    const rep = new Report();
    interface AttnCase {
      name: string;
      B: number;
      Tq: number;
      Tk: number;
      Hq: number;
      Hkv: number;
      D: number;
      causal: number;
      cap?: number;
      mask?: 'random' | 'hide-first' | 'hide-batch-1';
      docs?: boolean;
      scale?: number;
    }
    const cases: AttnCase[] = [
      { name: 'causal GQA', B: 2, Tq: 37, Tk: 37, Hq: 4, Hkv: 2, D: 64, causal: 1 },
      { name: 'non-causal, crosses a 64 tile', B: 1, Tq: 65, Tk: 65, Hq: 3, Hkv: 3, D: 32, causal: 0 },
      { name: 'MQA, key 0 masked: query 0 sees no key', B: 2, Tq: 19, Tk: 19, Hq: 8, Hkv: 1, D: 16, causal: 1, mask: 'hide-first' },
      { name: 'packed docs + keyMask', B: 2, Tq: 70, Tk: 70, Hq: 2, Hkv: 1, D: 80, causal: 1, mask: 'random', docs: true },
      { name: 'non-causal, batch 1 fully masked', B: 2, Tq: 9, Tk: 9, Hq: 2, Hkv: 2, D: 8, causal: 0, mask: 'hide-batch-1', scale: 0.3 },
      { name: 'decode Tq=1, kvCapacity 64', B: 2, Tq: 1, Tk: 45, Hq: 4, Hkv: 2, D: 64, causal: 1, cap: 64, mask: 'random' },
      { name: 'decode Tq=5 with docs, kvCapacity 40', B: 1, Tq: 5, Tk: 37, Hq: 6, Hkv: 2, D: 128, causal: 1, cap: 40, docs: true },
      { name: 'chunked prefill Tq=20 < Tk=83, kvCapacity 90', B: 2, Tq: 20, Tk: 83, Hq: 4, Hkv: 4, D: 64, causal: 1, cap: 90 },
      { name: 'non-causal Tq=3 < Tk=10', B: 1, Tq: 3, Tk: 10, Hq: 2, Hkv: 1, D: 32, causal: 0 },
      { name: 'T=1', B: 3, Tq: 1, Tk: 1, Hq: 1, Hkv: 1, D: 4, causal: 1 },
      { name: 'large', B: 1, Tq: 300, Tk: 300, Hq: 4, Hkv: 2, D: 64, causal: 1, mask: 'random' },
    ];
    for (const cs of cases) {
      const { B, Tq, Tk, Hq, Hkv, D, causal } = cs;
      const cap = cs.cap ?? Tk, scale = cs.scale ?? 1 / Math.sqrt(D);
      const nq = B * Tq * Hq * D, rowKV = Hkv * D;
      const q = uniform(nq, -2, 2);
      // Cache rows past Tk hold NaN: reading them would poison the output.
      const k = uniform(B * cap * rowKV, -2, 2), v = uniform(B * cap * rowKV, -1, 1);
      for (let b = 0; b < B; b++) {
        k.fill(NaN, (b * cap + Tk) * rowKV, (b + 1) * cap * rowKV);
        v.fill(NaN, (b * cap + Tk) * rowKV, (b + 1) * cap * rowKV);
      }
      let mask: Int32Array | null = null;
      if (cs.mask === 'random') mask = Int32Array.from(pick(B * cap, [1, 1, 1, 0, 5]));
      else if (cs.mask === 'hide-first') {
        mask = new Int32Array(B * cap).fill(1);
        for (let b = 0; b < B; b++) mask[b * cap] = 0;
      } else if (cs.mask === 'hide-batch-1') mask = new Int32Array(B * cap).fill(1).fill(0, cap);
      let docs: Int32Array | null = null;
      if (cs.docs) {
        docs = new Int32Array(B * cap);
        for (let b = 0; b < B; b++) for (let s = 0; s < cap; s++) docs[b * cap + s] = b + Math.floor((s * s) / (cap * 9)); // docs of shrinking length
      }
      const name = `attention ${cs.name} (B ${B}, Tq ${Tq}, Tk ${Tk}, Hq ${Hq}, Hkv ${Hkv}, D ${D}, causal ${causal}${cap !== Tk ? `, kvCapacity ${cap}` : ''})`;
      const fwd = parity(rep, name, (s) => {
        const qi = s.in(q), ki = s.in(k), vi = s.in(v);
        const mi = mask ? s.in(mask) : NULL, di = docs ? s.in(docs) : NULL;
        const o = s.out(nq, F32), lse = s.out(B * Hq * Tq, F32);
        s.k.attention(qi.h, qi.o, ki.h, ki.o, vi.h, vi.o, mi.h, mi.o, di.h, di.o, o.h, o.o, lse.h, lse.o, B, Tq, Tk, Hq, Hkv, D, scale, causal, cap);
        return { out: s.get(o, nq, F32), lse: s.get(lse, B * Hq * Tq, F32) };
      }, (d, r, c) => {
        c.close('out', d.out, r.out);
        c.close('lse', d.lse, r.lse);
      });
      if (!fwd) continue;
      // The backward takes no capacity: pass the first Tk rows of each batch entry.
      const compact = <A extends Float32Array | Int32Array>(a: A, row: number): A => {
        if (cap === Tk) return a;
        const outA = new (a.constructor as { new (n: number): A })(B * Tk * row);
        for (let b = 0; b < B; b++) outA.set(a.subarray(b * cap * row, (b * cap + Tk) * row), b * Tk * row);
        return outA;
      };
      const kc = compact(k, rowKV), vc = compact(v, rowKV), mc = mask && compact(mask, 1), dc = docs && compact(docs, 1);
      const dout = uniform(nq, -1, 1);
      const nkv = B * Tk * rowKV;
      // Long rows (300 keys and queries per head): dq/dk/dv sum over another tiling order.
      const tol = Tk >= 256 ? 1e-4 : 1e-5;
      parity(rep, `${name} backward`, (s) => {
        const qi = s.in(q), ki = s.in(kc), vi = s.in(vc), oi = s.in(fwd.out), li = s.in(fwd.lse), doi = s.in(dout);
        const mi = mc ? s.in(mc) : NULL, di = dc ? s.in(dc) : NULL;
        const dq = s.out(nq, F32), dk = s.out(nkv, F32), dv = s.out(nkv, F32);
        s.k.attentionBackward(qi.h, qi.o, ki.h, ki.o, vi.h, vi.o, oi.h, oi.o, li.h, li.o, doi.h, doi.o, mi.h, mi.o, di.h, di.o,
          dq.h, dq.o, dk.h, dk.o, dv.h, dv.o, B, Tq, Tk, Hq, Hkv, D, scale, causal);
        return { dq: s.get(dq, nq, F32), dk: s.get(dk, nkv, F32), dv: s.get(dv, nkv, F32) };
      }, (d, r, c) => {
        c.close('dq', d.dq, r.dq, tol);
        c.close('dk', d.dk, r.dk, tol);
        c.close('dv', d.dv, r.dv, tol);
      });
    }
    rep.done(t);
  });

  test('attentionMixed / attentionBackwardMixed (autocast): bf16 q, k, v, dout; f32 out, lse, grads', (t) => {
    // D 64 and 128 on aligned buffers run the tensor-core kernels (native/cuda/attention_mma.cu),
    // which round P and dS to bf16 for their second products: 2e-2 of max(1, |cpu|). Other head dims
    // and misaligned views widen and run the f32 kernels: 1e-5 (1e-4 for long rows).
    const rep = new Report();
    interface MixCase {
      name: string; B: number; Tq: number; Tk: number; Hq: number; Hkv: number; D: number; causal: number;
      mask?: boolean; docs?: boolean; pad?: number;
    }
    const cases: MixCase[] = [
      { name: 'causal GQA', B: 2, Tq: 100, Tk: 100, Hq: 4, Hkv: 2, D: 64, causal: 1 },
      { name: 'causal Tq < Tk, keyMask + docs', B: 1, Tq: 70, Tk: 150, Hq: 2, Hkv: 1, D: 128, causal: 1, mask: true, docs: true },
      { name: 'non-causal MQA, keyMask', B: 2, Tq: 33, Tk: 130, Hq: 4, Hkv: 1, D: 128, causal: 0, mask: true },
      { name: 'non-causal docs', B: 1, Tq: 64, Tk: 64, Hq: 2, Hkv: 2, D: 64, causal: 0, docs: true },
      { name: 'long', B: 1, Tq: 300, Tk: 300, Hq: 2, Hkv: 1, D: 128, causal: 1 },
      { name: 'head dim 80: widened f32 kernels', B: 1, Tq: 40, Tk: 40, Hq: 2, Hkv: 1, D: 80, causal: 1, mask: true },
      { name: 'misaligned views: widened f32 kernels', B: 1, Tq: 20, Tk: 20, Hq: 2, Hkv: 2, D: 64, causal: 1, pad: 1 },
      { name: 'Tq = 0: dk = dv = 0', B: 1, Tq: 0, Tk: 5, Hq: 2, Hkv: 1, D: 64, causal: 0 },
    ];
    for (const cs of cases) {
      const { B, Tq, Tk, Hq, Hkv, D, causal } = cs;
      const scale = 1 / Math.sqrt(D), pad = cs.pad ?? 0;
      const nq = B * Tq * Hq * D, nkv = B * Tk * Hkv * D;
      const q = toBf16Array(uniform(nq, -2, 2)), k = toBf16Array(uniform(nkv, -2, 2)), v = toBf16Array(uniform(nkv, -1, 1));
      const dout = toBf16Array(uniform(nq, -1, 1));
      const mask = cs.mask ? Int32Array.from(pick(B * Tk, [1, 1, 1, 0, 5])) : null;
      let docs: Int32Array | null = null;
      if (cs.docs) {
        docs = new Int32Array(B * Tk);
        for (let b = 0; b < B; b++) for (let s = 0; s < Tk; s++) docs[b * Tk + s] = b + Math.floor((s * s) / (Tk * 9));
      }
      const mma = (D === 64 || D === 128) && pad === 0 && DEVICE !== 'cpu';
      const tol = mma ? 2e-2 : Tk >= 256 ? 1e-4 : 1e-5;
      const name = `attentionMixed ${cs.name} (B ${B}, Tq ${Tq}, Tk ${Tk}, Hq ${Hq}, Hkv ${Hkv}, D ${D}, causal ${causal})`;
      const fwd = parity(rep, name, (s) => {
        const qi = s.in(q, pad), ki = s.in(k, pad), vi = s.in(v, pad);
        const mi = mask ? s.in(mask) : NULL, di = docs ? s.in(docs) : NULL;
        const o = s.out(nq, F32), lse = s.out(B * Hq * Tq, F32);
        s.k.attentionMixed(qi.h, qi.o, ki.h, ki.o, vi.h, vi.o, mi.h, mi.o, di.h, di.o, o.h, o.o, lse.h, lse.o, B, Tq, Tk, Hq, Hkv, D, scale, causal);
        return { out: s.get(o, nq, F32), lse: s.get(lse, B * Hq * Tq, F32) };
      }, (d, r, c) => {
        c.close('out', d.out, r.out, tol);
        c.close('lse', d.lse, r.lse, mma ? 1e-4 : 1e-5);
      });
      if (!fwd) continue;
      parity(rep, `${name} backward`, (s) => {
        const qi = s.in(q, pad), ki = s.in(k, pad), vi = s.in(v, pad), oi = s.in(fwd.out), li = s.in(fwd.lse), doi = s.in(dout, pad);
        const mi = mask ? s.in(mask) : NULL, di = docs ? s.in(docs) : NULL;
        const dq = s.out(nq, F32), dk = s.out(nkv, F32), dv = s.out(nkv, F32);
        s.k.attentionBackwardMixed(qi.h, qi.o, ki.h, ki.o, vi.h, vi.o, oi.h, oi.o, li.h, li.o, doi.h, doi.o, mi.h, mi.o, di.h, di.o,
          dq.h, dq.o, dk.h, dk.o, dv.h, dv.o, B, Tq, Tk, Hq, Hkv, D, scale, causal);
        return { dq: s.get(dq, nq, F32), dk: s.get(dk, nkv, F32), dv: s.get(dv, nkv, F32) };
      }, (d, r, c) => {
        c.close('dq', d.dq, r.dq, tol);
        c.close('dk', d.dk, r.dk, tol);
        c.close('dv', d.dv, r.dv, tol);
      });
    }
    rep.done(t);
  });

  test('crossEntropy forward/backward: ignoreIndex, label smoothing, masked vocab, bad labels', (t) => {
    const rep = new Report();
    interface CeCase {
      N: number;
      V: number;
      ignore: number;
      eps: number;
      labels?: (l: Int32Array) => void;
      logits?: (x: Float32Array) => void;
      note?: string;
    }
    const cases: CeCase[] = [
      { N: 1, V: 1, ignore: -100, eps: 0 },
      { N: 7, V: 13, ignore: -100, eps: 0, labels: (l) => (l[2] = -100), note: 'row 2 ignored' },
      { N: 5, V: 1000, ignore: -100, eps: 0.1 },
      { N: 4, V: LARGE_V, ignore: -100, eps: 0.1, labels: (l) => (l[1] = -100), note: 'row 1 ignored' },
      { N: 4, V: LARGE_V, ignore: -100, eps: 0 },
      { N: 3, V: 33, ignore: 2, eps: 0, labels: (l) => l.set([2, 5, 2]), note: 'ignoreIndex is a class id' },
      { N: 6, V: 17, ignore: -100, eps: 0, logits: (x) => { for (let i = 0; i < x.length; i++) if ((i % 17) % 3 === 0) x[i] = -Infinity; }, labels: (l) => l.forEach((_, i) => (l[i] = 1 + (i % 2))), note: 'masked vocab (-inf logits)' },
      { N: 4, V: 5000, ignore: -100, eps: 1 },
      { N: 3, V: 7, ignore: -100, eps: 0.2, labels: (l) => l.fill(-100), note: 'all rows ignored' },
      { N: 5, V: 10, ignore: -100, eps: 0, labels: (l) => (l[3] = 10), note: 'bad label 10 at row 3' },
      { N: 5, V: 10, ignore: -100, eps: 0.1, labels: (l) => { l[1] = -5; l[3] = 10; }, note: 'bad labels at rows 1 and 3' },
      { N: 5, V: 10, ignore: 3, eps: 0, labels: (l) => (l[4] = -100), note: 'bad label -100 when ignoreIndex is 3' },
    ];
    for (const cs of cases) {
      const { N, V, ignore, eps } = cs;
      const x = uniform(N * V, -4, 4);
      cs.logits?.(x);
      const labels = ints(N, 0, V);
      cs.labels?.(labels);
      const g = uniform(N, -1, 1);
      const name = `crossEntropy (N ${N}, V ${V}) ignoreIndex ${ignore} eps ${eps}${cs.note ? ` ${cs.note}` : ''}`;
      const fwd = parity(rep, name, (s) => {
        const xi = s.in(x), li = s.in(labels), loss = s.out(N, F32), lse = s.out(N, F32);
        const code = s.k.crossEntropy(xi.h, xi.o, li.h, li.o, loss.h, loss.o, lse.h, lse.o, N, V, ignore, eps);
        return { code, loss: code === 0 ? s.get(loss, N, F32) : null, lse: code === 0 ? s.get(lse, N, F32) : null };
      }, (d, r, c) => {
        c.code('return code', d.code, r.code);
        if (d.loss && r.loss) c.close('loss', d.loss, r.loss);
        if (d.lse && r.lse) c.close('lse', d.lse, r.lse);
      });
      if (!fwd?.lse) continue;
      const lse = fwd.lse;
      parity(rep, `${name} backward`, (s) => {
        const xi = s.in(x), li = s.in(labels), le = s.in(lse), gi = s.in(g), dx = s.out(N * V, F32);
        s.k.crossEntropyBackward(xi.h, xi.o, li.h, li.o, le.h, le.o, gi.h, gi.o, dx.h, dx.o, N, V, ignore, eps);
        return s.get(dx, N * V, F32);
        // Gradients are probabilities of size ~1/V: compare relative to 1/V rather than 1.
      }, (d, r, c) => c.close('dlogits', d, r, 1e-5, 1 / V));
    }
    rep.done(t);
  });

  test('adamw, sumSquares, scaleInplace', (t) => {
    const rep = new Report();
    const hypers = [
      { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01, step: 1, gs: 1 },
      { lr: 3e-4, b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0, step: 1000, gs: 0.25 },
    ];
    for (const n of [1, 7, 1000, (1 << 20) + 5]) {
      const p = uniform(n, -1, 1), g = uniform(n, -1, 1, [0], 0.1), m = uniform(n, -0.1, 0.1), v = uniform(n, 0, 0.01);
      for (const h of hypers) {
        const pad = n === 1000 ? 1 : 0;
        parity(rep, `adamw n=${n} ${JSON.stringify(h)}${pad ? ' offsets 1' : ''}`, (s) => {
          const pi = s.in(p, pad), gi = s.in(g), mi = s.in(m, pad), vi = s.in(v);
          s.k.adamw(pi.h, pi.o, gi.h, gi.o, mi.h, mi.o, vi.h, vi.o, n, h.lr, h.b1, h.b2, h.eps, h.wd, h.step, h.gs);
          return { p: s.get(pi, n, F32), m: s.get(mi, n, F32), v: s.get(vi, n, F32) };
        }, (d, r, c) => {
          c.close('p', d.p, r.p);
          c.close('m', d.m, r.m);
          c.close('v', d.v, r.v);
        });
      }
    }
    for (const [n, specials] of [[0, []], [1, []], [7, []], [65536, []], [65537, []], [(1 << 20) + 3, []], [1000, [NaN]], [1000, [Infinity]]] as [number, number[]][]) {
      const x = specials.length ? withSpecials(n, -3, 3, specials, 0) : uniform(n, -3, 3);
      parity(rep, `sumSquares n=${n}${specials.length ? ` with ${specials}` : ''}`, (s) => {
        const xi = s.in(x, n === 7 ? 1 : 0);
        return s.k.sumSquares(xi.h, xi.o, n);
        // Returned in double: compare as a one-element f32-style array.
      }, (d, r, c) => c.close('sum', [d], [r]));
    }
    for (const n of [1, 13, 100003]) {
      const x = withSpecials(n, -3, 3, [NaN, Infinity, -Infinity, -0]);
      for (const sc of [0.5, -3, 0]) {
        parity(rep, `scaleInplace n=${n} s=${sc}`, (s) => {
          const xi = s.in(x, n === 13 ? 1 : 0);
          s.k.scaleInplace(xi.h, xi.o, n, sc);
          return s.get(xi, n, F32);
        }, (d, r, c) => c.exact('x', d, r));
      }
    }
    rep.done(t);
  });

  test('adamwMulti, sumSquaresMulti', (t) => {
    const rep = new Report();
    // Tensor sets: empty and one-element tensors, odd tails, both sides of the device's 16384-element
    // chunks, misaligned views (pad 1: the unvectorized path), and many small tensors (the chunk search).
    const many = Array.from({ length: 300 }, (_, i) => (i * 37) % 101);
    const sets: { sizes: number[]; pad: (i: number) => number }[] = [
      { sizes: [0], pad: () => 0 },
      { sizes: [1], pad: () => 0 },
      { sizes: [1, 0, 7, 1000, 65537, 3], pad: () => 0 },
      { sizes: [(1 << 20) + 5, 13, 16384, 16385, 0, 1, 16383], pad: (i) => (i % 3 === 1 ? 1 : 0) },
      { sizes: many, pad: (i) => i % 2 },
    ];
    const hypers = [
      { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, step: 1, gs: 1 },
      { lr: 3e-4, b1: 0.8, b2: 0.95, eps: 1e-6, step: 1000, gs: 0.25 },
    ];
    const flat = (ps: Ptr[]): (Handle | null | number)[] => ps.flatMap((q) => [q.h, q.o]);
    for (const { sizes, pad } of sets) {
      const p = sizes.map((n) => uniform(n, -1, 1)), g = sizes.map((n) => uniform(n, -1, 1, [0], 0.1));
      const m = sizes.map((n) => uniform(n, -0.1, 0.1)), v = sizes.map((n) => uniform(n, 0, 0.01));
      const wd = sizes.map((_, i) => [0, 0.01, 0.1][i % 3]!);
      const label = sizes.length > 10 ? `${sizes.length} tensors` : `[${sizes}]`;
      for (const h of hypers) {
        // Each side runs adamwMulti and, on copies, adamw per tensor: the multi kernel must be
        // bitwise its own backend's per-tensor kernel, and close to the cpu.
        parity(rep, `adamwMulti ${label} ${JSON.stringify(h)}`, (s) => {
          const run = () => {
            const pi = p.map((a, i) => s.in(a, pad(i))), gi = g.map((a, i) => s.in(a, pad(i + 1)));
            const mi = m.map((a, i) => s.in(a, pad(i))), vi = v.map((a, i) => s.in(a, pad(i + 2)));
            return { pi, gi, mi, vi };
          };
          const a = run(), b = run();
          s.k.adamwMulti(flat(a.pi), flat(a.gi), flat(a.mi), flat(a.vi), sizes, wd, h.lr, h.b1, h.b2, h.eps, h.step, h.gs);
          sizes.forEach((n, i) => s.k.adamw(b.pi[i]!.h, b.pi[i]!.o, b.gi[i]!.h, b.gi[i]!.o, b.mi[i]!.h, b.mi[i]!.o, b.vi[i]!.h,
            b.vi[i]!.o, n, h.lr, h.b1, h.b2, h.eps, wd[i]!, h.step, h.gs));
          const cat = (ps: Ptr[]): Float32Array => {
            const out = new Float32Array(sizes.reduce((x, y) => x + y, 0));
            let off = 0;
            ps.forEach((q, i) => {
              out.set(s.get(q, sizes[i]!, F32), off);
              off += sizes[i]!;
            });
            return out;
          };
          return { p: cat(a.pi), m: cat(a.mi), v: cat(a.vi), p1: cat(b.pi), m1: cat(b.mi), v1: cat(b.vi) };
        }, (d, r, c) => {
          c.close('p', d.p, r.p);
          c.close('m', d.m, r.m);
          c.close('v', d.v, r.v);
          c.bits('p vs per-tensor adamw', d.p, d.p1);
          c.bits('m vs per-tensor adamw', d.m, d.m1);
          c.bits('v vs per-tensor adamw', d.v, d.v1);
        });
      }
      for (const specials of [[], [NaN], [Infinity]]) {
        const xs = sizes.map((n, i) => (specials.length && i === sizes.length - 1 ? withSpecials(n, -3, 3, specials, 0) : uniform(n, -3, 3)));
        parity(rep, `sumSquaresMulti ${label}${specials.length ? ` with ${specials}` : ''}`, (s) => {
          const xi = xs.map((a, i) => s.in(a, pad(i)));
          let each = 0;
          for (const [i, q] of xi.entries()) each += s.k.sumSquares(q.h, q.o, sizes[i]!);
          return { multi: s.k.sumSquaresMulti(flat(xi), sizes), each };
          // Returned in double: compare as one-element arrays; on each side also against the
          // per-tensor sums (a different summation order on the device, so close, not equal).
        }, (d, r, c) => {
          c.close('sum', [d.multi], [r.multi]);
          c.close('sum vs per-tensor sums', [d.multi], [d.each], 1e-12);
          c.exact('cpu sum vs per-tensor sums added in order', [r.multi], [r.each]);
        });
      }
    }
    rep.done(t);
  });
});
