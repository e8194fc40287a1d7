// Element types temper tensors can hold. Compute on CPU is f32; i32 holds ids and
// masks, bool is one byte per element, bf16 is storage only (convert with `.to('f32')`).

export type DType = 'f32' | 'i32' | 'bool' | 'bf16';

/** Bytes per element. */
export const DTYPE_SIZE: { [D in DType]: number } = { f32: 4, i32: 4, bool: 1, bf16: 2 };

/** Codes shared with native/src/kernels.h `cast`. */
export const DTYPE_CODE: { [D in DType]: number } = { f32: 0, i32: 1, bool: 2, bf16: 3 };

/** The typed array a dtype reads back into (bf16 widens to f32). */
export type HostArray<D extends DType = DType> = D extends 'f32' | 'bf16'
  ? Float32Array
  : D extends 'i32'
    ? Int32Array
    : Uint8Array;

export function hostArrayFor(dtype: DType, buffer: ArrayBuffer): Float32Array | Int32Array | Uint8Array {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer);
    case 'i32':
      return new Int32Array(buffer);
    case 'bool':
      return new Uint8Array(buffer);
    case 'bf16':
      throw new Error('bf16 reads back through f32');
    default:
      return dtype satisfies never;
  }
}

export function isDType(x: unknown): x is DType {
  return x === 'f32' || x === 'i32' || x === 'bool' || x === 'bf16';
}
