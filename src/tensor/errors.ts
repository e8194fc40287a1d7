// Errors that name the op, the tensors and the fix, so a user never reads a native stack.

export class TemperError extends Error {
  override name = 'TemperError';
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function shapeError(op: string, detail: string): TemperError {
  return new TemperError(`${op}: ${detail}`);
}
