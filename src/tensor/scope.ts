// Ownership scopes: every tensor created inside `scope(fn)` is disposed when fn ends,
// except what fn returns (moved to the enclosing scope) and what `keep` marks.
// Scopes and grad mode follow async continuations (AsyncLocalStorage), so an awaited
// step still frees its temporaries; they are not tied to the garbage collector.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Tensor } from './tensor.js';

export class Scope {
  readonly tensors = new Set<Tensor>();
  constructor(readonly parent: Scope | null) {}
}

interface Context {
  scope: Scope | null;
  grad: boolean;
  /** Matrix products of f32 operands run in this dtype (mixed precision), or null. */
  autocast: 'bf16' | null;
}

const rootContext: Context = { scope: null, grad: true, autocast: null };
const als = new AsyncLocalStorage<Context>();

function ctx(): Context {
  return als.getStore() ?? rootContext;
}

/** Called by the Tensor constructor. */
export function track(t: Tensor): void {
  ctx().scope?.tensors.add(t);
}

/** Called by Tensor.dispose. */
export function untrack(t: Tensor): void {
  for (let s = ctx().scope; s; s = s.parent) if (s.tensors.delete(t)) return;
}

/**
 * Takes tensors out of every enclosing scope: the caller now owns them and must dispose them.
 * Returns its argument.
 */
export function keep<T>(value: T): T {
  forEachTensor(value, (t) => {
    for (let s = ctx().scope; s; s = s.parent) s.tensors.delete(t);
  });
  return value;
}

function forEachTensor(value: unknown, f: (t: Tensor) => void, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if ((value as { __isTensor?: boolean }).__isTensor) return f(value as Tensor);
  if (Array.isArray(value)) for (const v of value) forEachTensor(v, f, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) forEachTensor(v, f, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) forEachTensor(v, f, depth + 1);
}

function finish(s: Scope, result: unknown): void {
  const returned = new Set<Tensor>();
  forEachTensor(result, (t) => returned.add(t));
  for (const t of s.tensors) {
    if (returned.has(t)) s.parent?.tensors.add(t);
    else t.dispose();
  }
  s.tensors.clear();
}

/**
 * Runs fn and disposes every tensor it created except those in its result
 * (a tensor, or arrays / plain objects / Maps of them), which move to the enclosing scope.
 * Works for async fn: cleanup happens when the promise settles.
 * @example const loss = scope(() => crossEntropy(model.forward(x), y));
 */
export function scope<T>(fn: () => T): T {
  const outer = ctx();
  const s = new Scope(outer.scope);
  const result = als.run({ ...outer, scope: s }, fn);
  if (result instanceof Promise) {
    return result.then(
      (v) => {
        finish(s, v);
        return v;
      },
      (e) => {
        finish(s, undefined);
        throw e;
      },
    ) as T;
  }
  finish(s, result);
  return result;
}

/** Runs fn with gradient recording off (for evaluation, generation, optimizer steps). */
export function noGrad<T>(fn: () => T): T {
  return als.run({ ...ctx(), grad: false }, fn);
}

/** Runs fn with gradient recording forced on or off. */
export function withGrad<T>(enabled: boolean, fn: () => T): T {
  return als.run({ ...ctx(), grad: enabled }, fn);
}

export function isGradEnabled(): boolean {
  return ctx().grad;
}

/**
 * Mixed precision, as torch.autocast(dtype=torch.bfloat16): inside fn, matmul (and linear) of
 * f32 operands rounds them to bf16, multiplies on bf16 tensor cores with f32 accumulation and
 * returns f32, and its backward does the same; so does fused attention (q, k, v and its incoming
 * gradient rounded, f32 out and gradients). Everything else (norms, softmax, losses, optimizer,
 * the parameters themselves) stays f32. `null` turns it off inside fn.
 */
export function autocast<T>(dtype: 'bf16' | null, fn: () => T): T {
  return als.run({ ...ctx(), autocast: dtype }, fn);
}

export function autocastDtype(): 'bf16' | null {
  return ctx().autocast;
}
