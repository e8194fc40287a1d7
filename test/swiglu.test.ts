// Fused SwiGLU: silu(gate) * up in one kernel, the backward recomputing silu. Checked against the
// unfused silu-then-mul chain (bitwise on the CPU, forward and gradients, f32 and bf16), its
// errors, its peak memory against the chain's, and the tiny llama's logits and a training step
// with the fused gated MLP against the same model forced onto the unfused path.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { AdamW } from '../src/train/index.js';
import { hostRandom } from './helpers.js';

const device = T.getDefaultDevice();
// The emulated cuda:0 (TEMPER_CUDA_EMULATE) runs the CPU kernels, so it is held to the CPU's bitwise checks.
const onCpu = T.runsCpuKernels(device);
const tiny = fileURLToPath(new URL('../../assets/builtin/tiny', import.meta.url));

/** Bit-identical on the CPU (any NaN matches any NaN); within 1e-6 relative elsewhere. */
function same(what: string, gotA: ArrayLike<number>, wantA: ArrayLike<number>): void {
  const f32 = (a: ArrayLike<number>) => (a instanceof Float32Array ? a : Float32Array.from(a));
  const got = f32(gotA), want = f32(wantA);
  assert.equal(got.length, want.length, `${what}: length`);
  const gu = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const wu = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!, b = want[i]!;
    if (a !== a || b !== b) {
      assert.ok(a !== a && b !== b, `${what}[${i}]: ${a} vs ${b}`);
      continue;
    }
    if (onCpu) assert.equal(gu[i], wu[i], `${what}[${i}]: ${a} vs ${b} (not bit-identical)`);
    else assert.ok(a === b || Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${what}[${i}]: ${a} vs ${b}`);
  }
}

/** Values over the whole silu range: wide randoms plus zeros, infinities, NaN, huge and tiny ones. */
function inputs(n: number, seed: number): Float32Array {
  const a = hostRandom(n, seed, -12, 12);
  const specials = [0, -0, Infinity, -Infinity, NaN, 88.5, -88.5, 100, -100, 1e-30, -1e-30, 20, -20];
  for (let i = 0; i < specials.length && i < n; i++) a[(i * 97 + seed) % n] = specials[i]!;
  return a;
}

const unfused = (gate: Tensor, up: Tensor) => T.mul(T.silu(gate), up);

test('swiglu forward and gradients equal silu(gate) * up by the unfused ops', () => {
  // Sizes around the vector width and the kernels' thread grain (2^15).
  for (const shape of [[1], [7], [3, 5], [4, 33], [40, 1000], [(1 << 15) + 3]]) {
    T.scope(() => {
      const n = shape.reduce((a, b) => a * b, 1);
      const gd = inputs(n, 1 + n), ud = inputs(n, 2 + n), gg = hostRandom(n, 3 + n, -2, 2);
      const run = (f: (a: Tensor, b: Tensor) => Tensor) => T.scope(() => {
        const gate = T.fromArray(gd, shape, { device, requiresGrad: true });
        const up = T.fromArray(ud, shape, { device, requiresGrad: true });
        const out = f(gate, up);
        out.backward(T.fromArray(gg, shape, { device }));
        return { out: out.toArray(), dgate: gate.grad!.toArray(), dup: up.grad!.toArray() };
      });
      const fused = run(T.swiglu), ref = run(unfused);
      same(`out ${shape}`, fused.out, ref.out);
      same(`dgate ${shape}`, fused.dgate, ref.dgate);
      same(`dup ${shape}`, fused.dup, ref.dup);
      // Without grad mode nothing is recorded and the forward is unchanged.
      const plain = T.noGrad(() => T.swiglu(T.fromArray(gd, shape, { device }), T.fromArray(ud, shape, { device })));
      assert.equal(plain.gradFn, null);
      same(`noGrad out ${shape}`, plain.toArray(), ref.out);
    });
  }
});

test('swiglu: only the input that requires grad gets one; views at an offset work', () => {
  T.scope(() => {
    const base = T.fromArray(hostRandom(2 * 6 * 10, 9, -4, 4), [12, 10], { device });
    const gate = T.slice(base, 0, 3, 9), up = T.fromArray(hostRandom(60, 10), [6, 10], { device, requiresGrad: true });
    const out = T.swiglu(gate, up);
    out.backward(T.onesLike(out));
    assert.ok(up.grad);
    same('offset view forward', out.toArray(), unfused(gate, up).toArray());
    same('dup of an offset gate', up.grad!.toArray(), T.noGrad(() => T.silu(gate)).toArray());
  });
});

test('swiglu bf16 forward is the unfused bf16 chain (silu rounded, then the product)', () => {
  T.scope(() => {
    const n = 40 * 129;
    const g = T.fromArray(inputs(n, 5), [40, 129], { device }).to('bf16');
    const u = T.fromArray(inputs(n, 6), [40, 129], { device }).to('bf16');
    const out = T.swiglu(g, u);
    assert.equal(out.dtype, 'bf16');
    assert.deepEqual(out.shape, [40, 129]);
    const chain = T.mul(T.silu(g), u);
    // The chain on the CPU in f32 math with the same roundings: bit-identical bf16 values.
    same('bf16 vs unfused bf16', out.to('f32').toArray(), chain.to('f32').toArray());
    const f32 = unfused(g.to('f32'), u.to('f32')).toArray(), got = out.to('f32').toArray();
    for (let i = 0; i < n; i++) {
      const a = got[i]!, b = f32[i]!;
      if (Number.isNaN(b)) assert.ok(Number.isNaN(a), `[${i}] ${a} vs NaN`);
      else if (Number.isFinite(b)) assert.ok(Math.abs(a - b) <= 1e-2 * Math.max(1e-3, Math.abs(b)), `bf16 [${i}]: ${a} vs f32 ${b}`);
      else assert.equal(a, b);
    }
  });
});

test('swiglu errors: shapes, dtypes, devices, disposed inputs', () => {
  T.scope(() => {
    const a = T.zeros([2, 3], { device }), b = T.zeros([3, 2], { device }), row = T.zeros([3], { device });
    assert.throws(() => T.swiglu(a, b), /swiglu: gate \[2, ?3\] and up \[3, ?2\] must have the same shape/);
    assert.throws(() => T.swiglu(a, row), /must have the same shape/); // no broadcasting
    assert.throws(() => T.swiglu(a, a.to('bf16')), /swiglu: operands have dtypes f32 and bf16/);
    assert.throws(() => T.swiglu(T.zeros([2, 3], { dtype: 'i32', device }), a), /swiglu: gate has dtype i32/);
    assert.throws(() => T.swiglu(a, T.zeros([2, 3], { dtype: 'bool', device })), /swiglu: up has dtype bool/);
    const d = T.zeros([2, 3], { device });
    d.dispose();
    assert.throws(() => T.swiglu(a, d), /used after dispose/);
  });
});

test('swiglu: tensors on different devices are an error', (t) => {
  if (T.cudaDeviceCount() === 0) return t.skip('no CUDA device');
  T.scope(() => {
    const a = T.zeros([4], { device: 'cpu' }), b = T.zeros([4], { device: 'cuda:0' });
    assert.throws(() => T.swiglu(a, b), /swiglu: tensors are on different devices/);
  });
});

/** Peak bytes above the live baseline while fn runs (inputs allocated before). */
function peakOf(fn: () => void, freesAll = true): number {
  const before = T.memoryStats(device).liveBytes;
  T.resetPeakMemory(device);
  fn();
  const peak = T.memoryStats(device).peakBytes - before;
  if (freesAll) assert.equal(T.memoryStats(device).liveBytes, before, 'everything freed');
  return peak;
}

test('swiglu forward + backward peaks lower than the unfused chain', (t) => {
  const shape = [64, 4096], n = 64 * 4096;
  const gd = hostRandom(n, 11, -4, 4), ud = hostRandom(n, 12), gg = hostRandom(n, 13);
  const gate = T.keep(T.fromArray(gd, shape, { device, requiresGrad: true }));
  const up = T.keep(T.fromArray(ud, shape, { device, requiresGrad: true }));
  const g = T.keep(T.fromArray(gg, shape, { device }));
  const measure = (f: (a: Tensor, b: Tensor) => Tensor) =>
    peakOf(() => {
      T.scope(() => f(gate, up).backward(g));
      for (const p of [gate, up]) {
        p.grad?.dispose();
        p.grad = null;
      }
    });
  const fused = measure(T.swiglu), chain = measure(unfused);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  t.diagnostic(`forward+backward peak over ${n} f32 elements (${mib(n * 4)} each): fused ${mib(fused)}, unfused ${mib(chain)}`);
  assert.ok(fused < chain, `fused ${fused} bytes >= unfused ${chain}`);
  for (const x of [gate, up, g]) x.dispose();
});

// ---- the tiny llama ---------------------------------------------------------------------------

function mlps(model: T.CausalLM): T.GatedMLP[] {
  assert.ok(model.body instanceof T.LlamaModel);
  return model.body.layers.items.map((l) => l.mlp);
}
/** Sends every gated MLP down the unfused silu-then-mul path (an activation that is not `silu`). */
function unfuse(model: T.CausalLM): void {
  for (const m of mlps(model)) (m as { act: T.Activation }).act = (x) => T.silu(x);
}
function hasPrim(root: Tensor, prim: string): boolean {
  const seen = new Set<unknown>(), stack = root.gradFn ? [root.gradFn] : [];
  while (stack.length) {
    const node = stack.pop()!;
    if (node.prim === prim) return true;
    for (const e of node.edges) if (e?.node && !seen.has(e.node)) (seen.add(e.node), stack.push(e.node));
  }
  return false;
}

function load(): T.CausalLM {
  const m = T.loadModelFromDir(tiny, { warn: () => {} });
  assert.ok(m instanceof T.CausalLM);
  if (!onCpu) m.to(device);
  return m;
}

test('tiny llama: logits and a training step identical with the fused and the unfused gated MLP', (t) => {
  const fused = load(), plain = load();
  unfuse(plain);
  for (const m of mlps(fused)) assert.equal(m.act, T.silu, 'the tiny llama uses silu');
  // B=4, T=64: the silu(gate) copies the unfused tape keeps are 4 layers x B*T*512 f32 = 2 MiB.
  const B = 4, L = 64;
  const tokens = Int32Array.from(hostRandom(B * L, 21, 0, 508), Math.floor);
  const ids = () => T.fromArray(tokens, [B, L], { device });

  // Logits without grad.
  T.scope(() => {
    const a = T.noGrad(() => fused.forward({ inputIds: ids() }).logits.toArray());
    const b = T.noGrad(() => plain.forward({ inputIds: ids() }).logits.toArray());
    same('logits', a, b);
  });

  // One AdamW step: loss, every gradient and every updated parameter; peak memory of each.
  const step = (model: T.CausalLM) => {
    const params = model.namedParameters();
    using opt = new AdamW(params, { lr: 1e-2, weightDecay: 0.01 });
    let loss = 0, sawSwiglu = false, taped = 0;
    const base = T.memoryStats(device).liveBytes;
    const peak = peakOf(() => {
      T.scope(() => {
        const x = ids();
        const { logits } = model.forward({ inputIds: x });
        const l = T.crossEntropy(logits, T.shiftLabels(x));
        taped = T.memoryStats(device).liveBytes - base; // what the tape holds for the backward
        sawSwiglu = hasPrim(l, 'swiglu');
        loss = l.item();
        l.backward();
      });
    }, false); // the gradients stay live for the update
    const grads = new Map(params.map(([n, p]) => [n, p.grad!.toArray()]));
    opt.update(1e-2);
    const after = new Map(params.map(([n, p]) => [n, p.toArray()]));
    for (const [, p] of params) {
      p.grad?.dispose();
      p.grad = null;
    }
    return { loss, grads, after, peak, taped, sawSwiglu };
  };
  const a = step(fused), b = step(plain);
  assert.ok(a.sawSwiglu, 'the fused model recorded swiglu');
  assert.ok(!b.sawSwiglu, 'the unfused model did not');
  if (onCpu) assert.equal(a.loss, b.loss, 'loss');
  else assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(b.loss), `loss ${a.loss} vs ${b.loss}`);
  for (const [n, g] of b.grads) same(`grad ${n}`, a.grads.get(n)!, g);
  for (const [n, p] of b.after) same(`updated ${n}`, a.after.get(n)!, p);
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(3)} MiB`;
  const msg = `tiny llama train step (B=${B}, T=${L}): live after forward fused ${mib(a.taped)}, unfused ${mib(b.taped)}; ` +
    `peak fused ${mib(a.peak)}, unfused ${mib(b.peak)}`;
  t.diagnostic(msg);
  assert.ok(a.taped < b.taped, `fused forward holds ${a.taped} bytes >= unfused ${b.taped}`);
  assert.ok(a.peak < b.peak, `fused step peak ${a.peak} >= unfused ${b.peak}`);
  fused.dispose();
  plain.dispose();
});
