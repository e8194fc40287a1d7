// Fused residual add + RMSNorm (addRmsNorm): on the CPU its outputs and gradients are bitwise those
// of add followed by rmsNorm, whichever order backward reaches the two outputs in and however many
// other consumers the sum has; the bf16 forward rounds the sum before the norm as the unfused bf16
// chain does; bad inputs are errors; the tiny llama, which fuses every residual add that a norm
// follows, gives the same logits and training gradients as with the fusion off; nothing leaks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { kernelsFor } from '../src/tensor/backend.js';
import { hostRandom } from './helpers.js';

const tiny = fileURLToPath(new URL('../../assets/builtin/tiny', import.meta.url));
const live = () => T.memoryStats().liveBytes;

/** Bitwise equality of two f32 arrays (NaN patterns included), naming the first difference. */
function assertBits(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let bad = 0, first = -1;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && bad++ === 0) first = i;
  assert.equal(bad, 0, `${what}: ${bad} of ${a.length} elements differ; first at ${first}: ${got[first]} vs ${want[first]}`);
}
const arr = (t: Tensor) => t.toArray() as Float32Array;

// N*C above and below the kernels' threading threshold (2^15), C odd and not a vector multiple.
const SHAPES: number[][] = [[1, 1], [3, 7], [2, 5, 192], [33, 1000], [5, 4099], [70, 1000]];

test('addRmsNorm forward: bitwise add then rmsNorm (f32)', () => {
  const before = live();
  T.scope(() => {
    for (const [i, shape] of SHAPES.entries()) {
      const C = shape[shape.length - 1]!, n = shape.reduce((a, b) => a * b, 1);
      const x = T.fromArray(hostRandom(n, 10 + i, -3, 3), shape);
      const r = T.fromArray(hostRandom(n, 20 + i, -3, 3), shape);
      const w = T.fromArray(hostRandom(C, 30 + i, 0.5, 1.5), [C]);
      for (const eps of [1e-6, 1e-5]) {
        const [s, y] = T.addRmsNorm(x, r, w, eps);
        const s0 = T.add(x, r);
        assertBits(arr(s), arr(s0), `sum ${shape}`);
        assertBits(arr(y), arr(T.rmsNorm(s0, w, eps)), `normed ${shape} eps ${eps}`);
        assert.deepEqual(y.shape, shape);
      }
    }
    // A zero row (rstd = 1/sqrt(eps)) and a row that cancels to zero.
    const x = T.tensor([[0, 0, 0], [1, -2, 3]]), r = T.tensor([[0, 0, 0], [-1, 2, -3]]), w = T.tensor([1, 2, 3]);
    const [s, y] = T.addRmsNorm(x, r, w, 1e-6);
    assertBits(arr(s), arr(T.add(x, r)), 'sum of special rows');
    assertBits(arr(y), arr(T.rmsNorm(T.add(x, r), w, 1e-6)), 'normed special rows');
  });
  assert.equal(live(), before, 'no leaks');
});

test('addRmsNorm forward on bf16: the sum rounds to bf16 before the norm, bitwise the unfused bf16 chain', () => {
  T.scope(() => {
    for (const [i, shape] of SHAPES.entries()) {
      const C = shape[shape.length - 1]!, n = shape.reduce((a, b) => a * b, 1);
      const x = T.fromArray(hostRandom(n, 40 + i, -3, 3), shape).to('bf16');
      const r = T.fromArray(hostRandom(n, 50 + i, -3, 3), shape).to('bf16');
      const w = T.fromArray(hostRandom(C, 60 + i, 0.5, 1.5), [C]).to('bf16');
      const [s, y] = T.addRmsNorm(x, r, w, 1e-5);
      assert.equal(s.dtype, 'bf16');
      assert.equal(y.dtype, 'bf16');
      const s0 = T.add(x, r);
      assertBits(arr(s), arr(s0), `bf16 sum ${shape}`);
      assertBits(arr(y), arr(T.rmsNorm(s0, w, 1e-5)), `bf16 normed ${shape}`);
      assert.equal(y.gradFn, null);
    }
  });
});

/** Leaves x, residual, w and upstream gradients for both outputs. */
function leaves(shape: number[], seed: number) {
  const C = shape[shape.length - 1]!, n = shape.reduce((a, b) => a * b, 1);
  return {
    x: T.fromArray(hostRandom(n, seed, -2, 2), shape, { requiresGrad: true }),
    r: T.fromArray(hostRandom(n, seed + 1, -2, 2), shape, { requiresGrad: true }),
    w: T.fromArray(hostRandom(C, seed + 2, 0.5, 1.5), [C], { requiresGrad: true }),
    gs: T.fromArray(hostRandom(n, seed + 3), shape),
    gy: T.fromArray(hostRandom(n, seed + 4), shape),
    g2: T.fromArray(hostRandom(n, seed + 5), shape),
  };
}
type Leaves = ReturnType<typeof leaves>;

/**
 * The ways a pre-norm block uses the sum and normed outputs: the gradients of x, residual and w
 * for one of them, computed with the fused op or with add + rmsNorm.
 */
const USES: Record<string, (s: Tensor, y: Tensor, l: Leaves) => Tensor> = {
  // The residual stream's other consumer is reached first: its gradient is folded into the norm's dx.
  'sum consumer first': (s, y, l) => T.sum(T.add(T.mul(y, l.gy), T.mul(s, l.gs))),
  'norm first': (s, y, l) => T.sum(T.add(T.mul(s, l.gs), T.mul(y, l.gy))),
  'normed only': (_s, y, l) => T.sum(T.mul(y, l.gy)),
  'sum only': (s, _y, l) => T.sum(T.mul(s, l.gs)),
  // Three contributions to the sum's gradient: two before the norm's and one after.
  'three consumers of the sum': (s, y, l) => T.sum(T.add(T.add(T.mul(T.tanh(s), l.g2), T.mul(y, l.gy)), T.mul(s, l.gs))),
  'two consumers then the norm': (s, y, l) => T.sum(T.add(T.mul(y, l.gy), T.add(T.mul(s, l.gs), T.mul(T.tanh(s), l.g2)))),
};

function grads(l: Leaves, fused: boolean, use: (s: Tensor, y: Tensor, l: Leaves) => Tensor): (Float32Array | null)[] {
  T.scope(() => {
    let s: Tensor, y: Tensor;
    if (fused) {
      [s, y] = T.addRmsNorm(l.x, l.r, l.w, 1e-6);
      assert.equal(s.gradFn?.prim, 'add');
      assert.equal(y.gradFn?.prim, 'add_rms_norm');
    } else {
      s = T.add(l.x, l.r);
      y = T.rmsNorm(s, l.w, 1e-6);
    }
    use(s, y, l).backward();
  });
  return [l.x, l.r, l.w].map((t) => {
    const g = t.grad ? arr(t.grad) : null;
    t.zeroGrad();
    return g;
  });
}

test('addRmsNorm backward: gradients of x, residual and w bitwise the unfused chain, for every use of the two outputs', () => {
  const before = live();
  T.scope(() => {
    for (const [i, shape] of [[3, 7], [2, 4, 192], [70, 1000]].entries()) {
      const l = leaves(shape, 100 + 10 * i);
      for (const [name, use] of Object.entries(USES)) {
        const want = grads(l, false, use), got = grads(l, true, use);
        ['x', 'residual', 'w'].forEach((n, k) => {
          assert.equal(got[k] === null, want[k] === null, `${name} ${shape}: d${n} present in only one`);
          if (got[k]) assertBits(got[k]!, want[k]!, `${name} ${shape}: d${n}`);
        });
        if (name !== 'sum only') assertBits(want[0]!, want[1]!, `${name}: dx = dresidual`);
      }
    }
  });
  assert.equal(live(), before, 'no leaks');
});

test('addRmsNorm backward: only the inputs that require grad get one; retainGraph runs twice', () => {
  T.scope(() => {
    const l = leaves([4, 6], 300);
    const x = T.fromArray(hostRandom(24, 301), [4, 6]); // no grad
    const [s, y] = T.addRmsNorm(x, l.r, l.w);
    const loss = T.sum(T.add(T.mul(y, l.gy), T.mul(s, l.gs)));
    loss.backward(undefined, { retainGraph: true });
    const dr = arr(l.r.grad!), dw = arr(l.w.grad!);
    loss.backward();
    assertBits(arr(l.r.grad!), arr(T.mul(T.fromArray(dr, [4, 6]), 2)), 'dr accumulated twice');
    assertBits(arr(l.w.grad!), arr(T.mul(T.fromArray(dw, [6]), 2)), 'dw accumulated twice');
    assert.equal(x.grad, null);
    // Only w requires grad: the sum is not recorded, the norm is.
    const [s2, y2] = T.addRmsNorm(x, T.fromArray(hostRandom(24, 302), [4, 6]), l.w);
    assert.equal(s2.gradFn, null);
    assert.equal(s2.requiresGrad, false);
    assert.equal(y2.gradFn?.prim, 'add_rms_norm');
  });
});

test('addRmsNormBackward kernel: dx = rmsNormBackward dx + gSum bitwise; without gSum, rmsNormBackward itself', () => {
  T.scope(() => {
    const k = kernelsFor('cpu');
    for (const [N, C] of [[1, 1], [7, 13], [33, 1000], [5, 4099], [300, 192]] as [number, number][]) {
      const n = N * C;
      const [s, w, gy, gs] = [[n, -2, 2], [C, 0.5, 1.5], [n, -1, 1], [n, -1, 1]].map(([m, lo, hi], j) => T.fromArray(hostRandom(m!, N + C + j, lo, hi), [m!]));
      const rstd = T.zeros([N]), y = T.zeros([n]);
      k.rmsNorm(s!.handle, 0, w!.handle, 0, y.handle, 0, rstd.handle, 0, N, C, 1e-6, 0);
      const [dx0, dw0, dx1, dw1, dx2, dw2] = [n, C, n, C, n, C].map((m) => T.zeros([m]));
      k.rmsNormBackward(s!.handle, 0, w!.handle, 0, rstd.handle, 0, gy!.handle, 0, dx0!.handle, 0, dw0!.handle, 0, N, C);
      k.addRmsNormBackward(s!.handle, 0, w!.handle, 0, rstd.handle, 0, gy!.handle, 0, gs!.handle, 0, dx1!.handle, 0, dw1!.handle, 0, N, C);
      k.addRmsNormBackward(s!.handle, 0, w!.handle, 0, rstd.handle, 0, gy!.handle, 0, null, 0, dx2!.handle, 0, dw2!.handle, 0, N, C);
      assertBits(arr(dx1!), arr(T.add(gs!, dx0!)), `dx with gSum (${N}, ${C})`);
      assertBits(arr(dw1!), arr(dw0!), `dw with gSum (${N}, ${C})`);
      assertBits(arr(dx2!), arr(dx0!), `dx without gSum (${N}, ${C})`);
      assertBits(arr(dw2!), arr(dw0!), `dw without gSum (${N}, ${C})`);
    }
  });
});

test('addRmsNorm errors: shapes, weight, dtypes, disposed inputs', () => {
  T.scope(() => {
    const x = T.zeros([2, 3]), w = T.ones([3]);
    assert.throws(() => T.addRmsNorm(x, T.zeros([3]), w), /addRmsNorm: residual shape \[3\] does not match input \[2, 3\] \(no broadcasting\)/);
    assert.throws(() => T.addRmsNorm(x, T.zeros([2, 4]), w), /residual shape \[2, 4\]/);
    assert.throws(() => T.addRmsNorm(x, x, T.ones([4])), /addRmsNorm: weight shape \[4\] does not match the last dim of input \[2, 3\]/);
    assert.throws(() => T.addRmsNorm(x, x, T.ones([1, 3])), /weight shape/);
    assert.throws(() => T.addRmsNorm(x, x.to('bf16'), w), /addRmsNorm/);
    assert.throws(() => T.addRmsNorm(x.to('bf16'), x.to('bf16'), w), /addRmsNorm/);
    assert.throws(() => T.addRmsNorm(T.zeros([2, 3], { dtype: 'i32' }), x, w), /addRmsNorm: input has dtype i32/);
    const gone = T.zeros([2, 3]);
    gone.dispose();
    assert.throws(() => T.addRmsNorm(x, gone, w), /used after dispose/);
  });
});

test('tiny llama: fused residual norms give the same logits and training gradients as add + rmsNorm, and nothing leaks', () => {
  const before = live();
  const model = (T.loadModelFromDir(tiny) as T.CausalLM).train();
  const params = model.namedParameters();
  // The state dict keeps its names (the norms are the same modules).
  for (const name of ['model.layers.0.input_layernorm.weight', 'model.layers.3.post_attention_layernorm.weight', 'model.norm.weight'])
    assert.ok(params.some(([n]) => n === name), `parameter ${name}`);
  // Turning the fusion off: a subclass of RMSNorm is not fused (it might override forward).
  class UnfusedRMSNorm extends T.RMSNorm {}
  const norms = model.namedModules().map(([, m]) => m).filter((m) => m instanceof T.RMSNorm);
  assert.equal(norms.length, 9);
  const setFused = (on: boolean) => norms.forEach((m) => Object.setPrototypeOf(m, on ? T.RMSNorm.prototype : UnfusedRMSNorm.prototype));
  const ids = Array.from({ length: 2 }, (_, b) => Array.from({ length: 48 }, (_, t) => (b * 131 + t * 17 + 5) % 500));

  const run = (fused: boolean) => {
    setFused(fused);
    const logits = T.scope(() => arr(T.noGrad(() => model.forward({ inputIds: T.tensor(ids, { dtype: 'i32' }) })).logits));
    model.zeroGrad();
    const loss = T.scope(() => {
      const inputIds = T.tensor(ids, { dtype: 'i32' });
      const out = model.forward({ inputIds, labels: inputIds, returnLogits: false });
      out.loss.backward();
      return out.loss.item();
    });
    const g = params.map(([, p]) => arr(p.grad!));
    model.zeroGrad();
    return { logits, loss, g };
  };
  const unfused = run(false), fused = run(true);
  assertBits(fused.logits, unfused.logits, 'logits');
  assert.ok(Object.is(fused.loss, unfused.loss), `loss ${fused.loss} vs ${unfused.loss}`);
  params.forEach(([n], i) => assertBits(fused.g[i]!, unfused.g[i]!, `grad of ${n}`));

  // Gradient checkpointing fuses only inside each layer: the same gradients again.
  model.gradientCheckpointingEnable();
  const ckpt = run(true);
  model.gradientCheckpointingDisable();
  params.forEach(([n], i) => assertBits(ckpt.g[i]!, unfused.g[i]!, `grad of ${n} with gradient checkpointing`));

  // Generation with a KV cache goes through the fused path too.
  const greedy = (fused: boolean) => {
    setFused(fused);
    return T.scope(() => T.noGrad(() => {
      const cache = model.body.newCache(1, 16);
      const a = model.forward({ inputIds: T.tensor([[5, 9, 13]], { dtype: 'i32' }), cache, lastTokenOnly: true }).logits;
      const b = model.forward({ inputIds: T.tensor([[7]], { dtype: 'i32' }), cache, lastTokenOnly: true }).logits;
      const out = [...arr(a), ...arr(b)];
      cache.dispose();
      return Float32Array.from(out);
    }));
  };
  assertBits(greedy(true), greedy(false), 'cached decode logits');
  setFused(true);
  model.dispose();
  assert.equal(live(), before, 'no leaks');
});
