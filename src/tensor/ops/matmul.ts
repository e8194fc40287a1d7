// Matrix products through the BLAS: batched with broadcast batch dims, and transposed
// operands as flags (no copies). `linear` is x @ W^T + b with W stored as (out, in), as HF does.
import { record } from '../autograd.js';
import { DTYPE_CODE } from '../dtype.js';
import { TemperError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { autocastDtype } from '../scope.js';
import { toDType } from './creation.js';
import { FLOATS, broadcastShapes, check, empty, kern, numelOf, sameDevice } from './util.js';
import { expand } from './shape.js';
import { add } from './elementwise.js';

export interface MatmulOptions {
  /** a is stored (..., K, M) and used transposed. */
  transA?: boolean;
  /** b is stored (..., N, K) and used transposed. */
  transB?: boolean;
}

/**
 * op(a) @ op(b) over the last two dims; leading dims broadcast. bf16 operands give a bf16
 * product (f32 accumulation, not recorded for autograd). Inside `autocast('bf16', …)`, f32
 * operands are rounded to bf16 and the product is f32 (mixed precision), differentiable.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  check('matmul', a, 'a', FLOATS);
  check('matmul', b, 'b', FLOATS);
  sameDevice('matmul', a, b);
  if (a.dtype !== b.dtype) throw new TemperError(`matmul: operands have dtypes ${a.dtype} and ${b.dtype}; convert one with .to()`);
  const mixed = a.dtype === 'f32' && autocastDtype() === 'bf16';
  if (!mixed) {
    const out = gemm(a, b, opts, a.dtype as 'f32' | 'bf16');
    record('matmul', [a, b], out, [a, b], { transA: !!opts.transA, transB: !!opts.transB });
    return out;
  }
  // The backward multiplies by the rounded operands, as torch.autocast does; saving them in
  // bf16 also halves what the tape holds for every linear layer.
  const a16 = toDType(a, 'bf16'), b16 = toDType(b, 'bf16');
  const out = gemm(a16, b16, opts, 'f32');
  record('matmul', [a, b], out, [a16, b16], { transA: !!opts.transA, transB: !!opts.transB, mixed: true });
  a16.dispose();
  b16.dispose();
  return out;
}

/**
 * The product without autograd: operands of one dtype, the result in `outDtype` (the operands'
 * dtype, or f32 from bf16 operands: the mixed-precision GEMM the autocast backward uses). @internal
 */
export function gemm(a: Tensor, b: Tensor, opts: MatmulOptions, outDtype: 'f32' | 'bf16'): Tensor {
  if (a.ndim < 2 || b.ndim < 2)
    throw new TemperError(`matmul: operands must be at least 2-d, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)} (unsqueeze vectors)`);
  const ta = !!opts.transA, tb = !!opts.transB;
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const M = ta ? ac : ar, K = ta ? ar : ac;
  const Kb = tb ? bc : br, N = tb ? br : bc;
  if (K !== Kb)
    throw new TemperError(
      `matmul: shapes ${fmtShape(a.shape)}${ta ? '^T' : ''} and ${fmtShape(b.shape)}${tb ? '^T' : ''} do not match (inner dims ${K} vs ${Kb})`,
    );
  const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = numelOf(batchShape);
  // An operand whose batch is neither 1 nor the full batch is materialized to the full batch.
  const fit = (t: Tensor): [Tensor, number] => {
    const tb = numelOf(t.shape.slice(0, -2));
    const mat = numelOf(t.shape.slice(-2));
    if (tb === 1) return [t, 0];
    if (t.shape.slice(0, -2).join() === batchShape.join()) return [t, mat];
    return [expand(t, [...batchShape, ...t.shape.slice(-2)]), mat];
  };
  const [A, aStride] = fit(a);
  const [B, bStride] = fit(b);
  const out = empty([...batchShape, M, N], outDtype, a);
  kern(a).matmul(A.handle, A.byteOffset, B.handle, B.byteOffset, out.handle, 0, batch, M, N, K, ta ? 1 : 0, tb ? 1 : 0, aStride, bStride, 1, 0,
    DTYPE_CODE[a.dtype], DTYPE_CODE[outDtype]);
  if (A !== a) A.dispose();
  if (B !== b) B.dispose();
  return out;
}

/** y = x @ w^T (+ bias). x (..., in), w (out, in), bias (out). */
export function linear(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
  if (w.ndim !== 2) throw new TemperError(`linear: weight must be 2-d (out, in), got ${fmtShape(w.shape)}`);
  const y = matmul(x, w, { transB: true });
  if (!bias) return y;
  const z = add(y, bias);
  y.dispose();
  return z;
}
