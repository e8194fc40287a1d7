// Method-style access to the ops (x.add(y).sum()), attached to Tensor's prototype so
// tensor.ts stays free of op imports. Each method is the function of the same name.
// tensor.ts calls installMethods when its class exists (a hoisted function, so the import
// cycle tensor -> methods -> ops -> tensor is safe from any entry point, deep imports too).
import { backward as runBackward, type BackwardOptions } from './autograd.js';
import { type DType, isDType } from './dtype.js';
import type { Device } from './backend.js';
import type { Tensor } from './tensor.js';
import { ones, rawCopy, toDType, toDevice } from './ops/creation.js';
import * as E from './ops/elementwise.js';
import * as R from './ops/reduce.js';
import * as S from './ops/shape.js';
import * as N from './ops/nn.js';
import { matmul, type MatmulOptions } from './ops/matmul.js';

type T = Tensor;
type TN = Tensor | number;

declare module './tensor.js' {
  interface Tensor {
    /** Accumulates gradients of this tensor into every leaf's .grad. */
    backward(grad?: Tensor, opts?: BackwardOptions): void;
    /** Converts dtype, or copies to a device ('cpu', 'cuda', 'cuda:N'); always a new tensor. */
    to(target: DType | Device): Tensor;
    clone(): Tensor;
    add(o: TN): T; sub(o: TN): T; mul(o: TN): T; div(o: TN): T; pow(o: TN): T;
    maximum(o: TN): T; minimum(o: TN): T;
    eq(o: TN): T; ne(o: TN): T; lt(o: TN): T; le(o: TN): T; gt(o: TN): T; ge(o: TN): T;
    neg(): T; exp(): T; log(): T; sqrt(): T; rsqrt(): T; abs(): T; silu(): T; sigmoid(): T; tanh(): T;
    softplus(): T; relu(): T; square(): T; reciprocal(): T; gelu(approximate?: 'none' | 'tanh'): T;
    clamp(lo?: number, hi?: number): T;
    sum(axes?: number | number[], keepdim?: boolean): T;
    mean(axes?: number | number[], keepdim?: boolean): T;
    max(axes?: number | number[], keepdim?: boolean): T;
    min(axes?: number | number[], keepdim?: boolean): T;
    logsumexp(axes?: number | number[], keepdim?: boolean): T;
    var(axes?: number | number[], keepdim?: boolean, correction?: number): T;
    argmax(axis?: number, keepdim?: boolean): T;
    argmin(axis?: number, keepdim?: boolean): T;
    matmul(o: Tensor, opts?: MatmulOptions): T;
    reshape(shape: readonly number[]): T;
    view(shape: readonly number[]): T;
    flatten(start?: number, end?: number): T;
    unsqueeze(dim: number): T;
    squeeze(dim?: number): T;
    permute(dims: readonly number[]): T;
    transpose(d0?: number, d1?: number): T;
    contiguous(): T;
    slice(dim: number, start: number, end?: number): T;
    expand(shape: readonly number[]): T;
    softmax(dim?: number): T;
    logSoftmax(dim?: number): T;
    cumsum(dim?: number): T;
  }
}

/** Puts the op methods on Tensor's prototype; called once by tensor.ts. @internal */
export function installMethods(cls: typeof Tensor): void {
  const proto = cls.prototype;
  proto.backward = function (this: T, grad?: Tensor, opts: BackwardOptions = {}) {
    runBackward(this, grad, opts, { ones: (s) => ones(s, { device: this.device }), add: E.add, clone: rawCopy });
  };
  proto.to = function (this: T, target: DType | Device) { return isDType(target) ? toDType(this, target) : toDevice(this, target); };
  proto.clone = function (this: T) { return S.clone(this); };
  for (const name of ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const) {
    proto[name] = function (this: T, o: TN) { return E[name](this, o); };
  }
  for (const name of ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'silu', 'sigmoid', 'tanh', 'softplus', 'relu', 'square', 'reciprocal'] as const) {
    proto[name] = function (this: T) { return E[name](this); };
  }
  proto.gelu = function (this: T, approximate: 'none' | 'tanh' = 'none') { return E.gelu(this, approximate); };
  proto.clamp = function (this: T, lo?: number, hi?: number) { return E.clamp(this, lo, hi); };
  for (const name of ['sum', 'mean', 'max', 'min', 'logsumexp'] as const) {
    proto[name] = function (this: T, axes?: number | number[], keepdim = false) { return R[name](this, axes, keepdim); };
  }
  proto.var = function (this: T, axes?: number | number[], keepdim = false, correction = 1) { return R.variance(this, axes, keepdim, correction); };
  proto.argmax = function (this: T, axis = -1, keepdim = false) { return R.argmax(this, axis, keepdim); };
  proto.argmin = function (this: T, axis = -1, keepdim = false) { return R.argmin(this, axis, keepdim); };
  proto.matmul = function (this: T, o: Tensor, opts?: MatmulOptions) { return matmul(this, o, opts); };
  proto.reshape = function (this: T, shape: readonly number[]) { return S.reshape(this, shape); };
  proto.view = proto.reshape;
  proto.flatten = function (this: T, start = 0, end = -1) { return S.flatten(this, start, end); };
  proto.unsqueeze = function (this: T, dim: number) { return S.unsqueeze(this, dim); };
  proto.squeeze = function (this: T, dim?: number) { return S.squeeze(this, dim); };
  proto.permute = function (this: T, dims: readonly number[]) { return S.permute(this, dims); };
  proto.transpose = function (this: T, d0 = -2, d1 = -1) { return S.transpose(this, d0, d1); };
  proto.contiguous = function (this: T) { return S.contiguous(this); };
  proto.slice = function (this: T, dim: number, start: number, end?: number) { return S.slice(this, dim, start, end); };
  proto.expand = function (this: T, shape: readonly number[]) { return S.expand(this, shape); };
  proto.softmax = function (this: T, dim = -1) { return N.softmax(this, dim); };
  proto.logSoftmax = function (this: T, dim = -1) { return N.logSoftmax(this, dim); };
  proto.cumsum = function (this: T, dim = -1) { return N.cumsum(this, dim); };
}
