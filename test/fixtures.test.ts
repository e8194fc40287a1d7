// temper vs PyTorch: forward values and gradients of every fixture case made by
// scripts/make_fixtures.py (torch, float64 reference from the same f32 inputs).
// Relative error (max |a-b| / max |b|) under 1e-5 in f32, as the runtime issue requires.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { maxRelErr } from './helpers.js';

interface Arr { shape: number[]; dtype: 'f32' | 'i32'; data: (number | null)[] }
interface Case { name: string; params: Record<string, unknown>; inputs: Record<string, Arr>; outputs: Record<string, Arr>; grads?: Record<string, Arr> }

const dir = fileURLToPath(new URL('../../test/fixtures/ops/', import.meta.url));
const load = (f: string) => JSON.parse(readFileSync(dir + f, 'utf8')) as { op: string; cases: Case[] };
const host = (a: Arr) => (a.dtype === 'i32' ? Int32Array : Float32Array).from(a.data.map((v) => (v === null ? -Infinity : v)));
const mk = (a: Arr, grad: boolean) => T.fromArray(host(a), a.shape, { dtype: a.dtype, requiresGrad: grad && a.dtype === 'f32' });
const TOL = 1e-5;

/** Runs one case: forward, compare outputs, backward with the fixture's upstream grads, compare grads. */
function check(file: string, c: Case, run: (x: Record<string, Tensor>) => Record<string, Tensor>, tol = TOL, gradTol = tol): void {
  T.scope(() => {
    const diff = new Set(Object.keys(c.grads ?? {}));
    const x: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(c.inputs)) if (!k.startsWith('grad_')) x[k] = mk(v, diff.has(k));
    const out = run(x);
    for (const [k, t] of Object.entries(out)) {
      const exp = c.outputs[k];
      assert.ok(exp, `${file}/${c.name}: fixture has no output '${k}'`);
      assert.deepEqual(t.shape, exp.shape, `${file}/${c.name}: ${k} shape`);
      const e = maxRelErr(t.toArray(), host(exp));
      assert.ok(e < tol, `${file}/${c.name}: output ${k} rel err ${e.toExponential(3)}`);
    }
    if (!diff.size) return;
    let loss: Tensor | null = null;
    for (const [k, t] of Object.entries(out)) {
      const g = c.inputs[`grad_${k}`];
      if (!g) continue;
      const term = T.sum(T.mul(t, mk(g, false)));
      loss = loss ? T.add(loss, term) : term;
    }
    assert.ok(loss, `${file}/${c.name}: no upstream gradient in fixture`);
    loss.backward();
    for (const k of diff) {
      const got = x[k]!.grad;
      assert.ok(got, `${file}/${c.name}: no gradient for ${k}`);
      const e = maxRelErr(got.toArray(), host(c.grads![k]!));
      assert.ok(e < gradTol, `${file}/${c.name}: grad ${k} rel err ${e.toExponential(3)}`);
    }
  });
}

const P = <V>(c: Case, k: string) => c.params[k] as V;

const RUNNERS: Record<string, (c: Case) => void> = {
  'matmul.json': (c) => check('matmul', c, (x) => ({ y: T.matmul(x.a!, x.b!, { transA: P(c, 'trans_a'), transB: P(c, 'trans_b') }) })),
  'softmax.json': (c) => check('softmax', c, (x) => ({ y: P<boolean>(c, 'log') ? T.logSoftmax(x.x!, P(c, 'dim')) : T.softmax(x.x!, P(c, 'dim')) })),
  'rms_norm.json': (c) => check('rms_norm', c, (x) => ({ y: T.rmsNorm(x.x!, x.w!, P(c, 'eps')) })),
  'layer_norm.json': (c) => check('layer_norm', c, (x) => ({ y: T.layerNorm(x.x!, x.w!, x.b!, P(c, 'eps')) })),
  'rotary.json': (c) => check('rotary', c, (x) => ({ out: T.rotary(x.x!, x.positions!, x.inv_freq!) })),
  'attention.json': (c) =>
    check('attention', c, (x) => ({
      out: T.attention(x.q!, x.k!, x.v!, { causal: P(c, 'causal'), scale: P(c, 'scale'), keyMask: x.key_mask ?? null, docIds: x.doc_ids ?? null }),
    })),
  'cross_entropy.json': (c) => {
    const opts = { ignoreIndex: P<number>(c, 'ignore_index'), labelSmoothing: P<number>(c, 'label_smoothing') };
    check('cross_entropy', c, (x) => ({
      loss_rows: T.noGrad(() => T.crossEntropy(x.logits!, x.labels!, { ...opts, reduction: 'none' })),
      loss_mean: T.crossEntropy(x.logits!, x.labels!, opts),
    }));
  },
  'elementwise.json': (c) => {
    const op = P<string>(c, 'op');
    check('elementwise', c, (x) => {
      if (P<string>(c, 'kind') === 'binary') return { y: T.binary(op as T.BinaryName, x.a!, x.b!) };
      return { y: op === 'gelu_tanh' ? T.gelu(x.x!, 'tanh') : T.unary(op as T.UnaryName, x.x!) };
    });
  },
  'reduce.json': (c) => {
    const op = P<string>(c, 'op'), axes = P<number[]>(c, 'axes'), keep = P<boolean>(c, 'keepdim');
    check('reduce', c, (x) => {
      switch (op) {
        case 'argmax': return { y: T.argmax(x.x!, axes[0], keep) };
        case 'var': return { y: T.variance(x.x!, axes, keep, 1) };
        default: return { y: (T[op as 'sum' | 'mean' | 'max' | 'min' | 'logsumexp'])(x.x!, axes, keep) };
      }
    });
  },
  'adamw.json': (c) => checkAdamW(c),
};

function checkAdamW(c: Case): void {
  T.scope(() => {
    const [b1, b2] = P<[number, number]>(c, 'betas');
    const o = { lr: P<number>(c, 'lr'), beta1: b1, beta2: b2, eps: P<number>(c, 'eps'), weightDecay: P<number>(c, 'weight_decay') };
    const steps = P<number>(c, 'steps');
    const single = 'param' in c.inputs;
    const names = single ? [''] : ['0', '1'];
    const params = names.map((n) => mk(c.inputs[`param${n}`]!, false));
    const grads = names.map((n) => mk(c.inputs[`grads${n}`]!, false));
    const state = params.map((p) => ({ m: T.zerosLike(p), v: T.zerosLike(p) }));
    const after: number[][] = names.map(() => []);
    for (let s = 0; s < steps; s++) {
      const g = grads.map((gr, i) => T.reshape(T.slice(gr, 0, s, s + 1), params[i]!.shape).clone());
      if (!single) {
        const norm = T.clipGradNorm(g, P<number>(c, 'max_norm'));
        const e = Math.abs(norm - host(c.outputs.total_norm!)[s]!) / host(c.outputs.total_norm!)[s]!;
        assert.ok(e < 1e-6, `adamw/${c.name}: total norm at step ${s + 1} rel err ${e}`);
      }
      params.forEach((p, i) => {
        T.adamwStep(p, g[i]!, state[i]!.m, state[i]!.v, { ...o, step: s + 1 });
        after[i]!.push(...p.toArray());
      });
    }
    names.forEach((n, i) => {
      const key = single ? 'param_after' : `param${n}_after`;
      assert.ok(maxRelErr(after[i]!, host(c.outputs[key]!)) < 1e-6, `adamw/${c.name}: ${key}`);
      assert.ok(maxRelErr(state[i]!.m.toArray(), host(c.outputs[`exp_avg${n}`]!)) < 1e-6, `adamw/${c.name}: exp_avg${n}`);
      assert.ok(maxRelErr(state[i]!.v.toArray(), host(c.outputs[`exp_avg_sq${n}`]!)) < 1e-6, `adamw/${c.name}: exp_avg_sq${n}`);
    });
  });
}

for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
  const runner = RUNNERS[file];
  test(`fixtures ${file}`, () => {
    assert.ok(runner, `no runner for fixture file ${file}`);
    for (const c of load(file).cases) runner(c);
  });
}
