// Tape semantics: accumulation into .grad, explicit upstream gradients, noGrad, detach,
// and freeing the graph after backward unless retainGraph.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as T from '../src/index.js';

test('gradients accumulate across backward calls and reuse of a leaf', () => {
  T.scope(() => {
    const x = T.tensor([1, 2, 3], { requiresGrad: true });
    T.mul(x, x).sum().backward(); // d/dx x^2 = 2x
    assert.deepEqual([...x.grad!.toArray()], [2, 4, 6]);
    T.mul(x, 3).sum().backward();
    assert.deepEqual([...x.grad!.toArray()], [5, 7, 9]);
    x.zeroGrad();
    assert.equal(x.grad, null);
  });
});

test('backward with an explicit gradient, and a clear error without one for non-scalars', () => {
  T.scope(() => {
    const x = T.tensor([[1, 2], [3, 4]], { requiresGrad: true });
    const y = T.mul(x, 2);
    assert.throws(() => y.backward(), /pass a gradient of that shape/);
    y.backward(T.tensor([[1, 0], [0, 1]]));
    assert.deepEqual([...x.grad!.toArray()], [2, 0, 0, 2]);
  });
});

test('noGrad records nothing; detach cuts the graph', () => {
  T.scope(() => {
    const x = T.tensor([1, 2], { requiresGrad: true });
    const y = T.noGrad(() => T.mul(x, 2));
    assert.equal(y.requiresGrad, false);
    const d = x.detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(T.isGradEnabled(), true);
  });
});

test('a second backward through a freed graph says so; retainGraph allows it', () => {
  T.scope(() => {
    const x = T.tensor([1, 2], { requiresGrad: true });
    const y = T.exp(x).sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    const e = [...T.exp(T.tensor([1, 2])).toArray()];
    assert.ok(Math.abs(x.grad!.toArray()[0]! - 2 * e[0]!) < 1e-5);
    assert.throws(() => y.backward(), /already freed/);
  });
});

test('shared subexpressions sum their gradients (diamond graph)', () => {
  T.scope(() => {
    const x = T.tensor([0.5, -1], { requiresGrad: true });
    const a = T.tanh(x);
    const y = T.add(T.mul(a, a), a).sum(); // d/dx = (2a + 1)(1 - a^2)
    y.backward();
    const g = x.grad!.toArray();
    [0.5, -1].forEach((v, i) => {
      const t = Math.tanh(v);
      assert.ok(Math.abs(g[i]! - (2 * t + 1) * (1 - t * t)) < 1e-5);
    });
  });
});

test('grads of two leaves fed by one broadcast add do not share storage', () => {
  T.scope(() => {
    const a = T.tensor([1, 2], { requiresGrad: true });
    const b = T.tensor([3, 4], { requiresGrad: true });
    T.add(a, b).sum().backward();
    T.scaleInplace(a.grad!, 5);
    assert.deepEqual([...b.grad!.toArray()], [1, 1]);
  });
});
