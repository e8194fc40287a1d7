// Text files read as Python reads them: strict UTF-8. Node's 'utf8' decoding silently turns
// bad bytes into U+FFFD; here a file that is not valid UTF-8 is an error naming its line and
// column, as Python's json and datasets reject it. A leading BOM is dropped.
import { readFileSync } from 'node:fs';
import { TemperError } from '../tensor/index.js';

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Where the first byte that is not UTF-8 sits in `buf`: 1-based line and byte column. */
function firstBadByte(buf: Uint8Array): { line: number; column: number; byte: number } {
  let line = 1, start = 0;
  for (;;) {
    let end = buf.indexOf(0x0a, start);
    if (end < 0) end = buf.length;
    try {
      strict.decode(buf.subarray(start, end));
    } catch {
      // Narrow down to the byte: the longest prefix that decodes (a cut sequence at its end also fails).
      let lo = 0, hi = end - start;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(start, start + mid), { stream: true });
          lo = mid;
        } catch {
          hi = mid - 1;
        }
      }
      // A sequence left open at the end of that prefix is where the bad bytes begin.
      let at = lo;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(start, start + lo));
      } catch {
        while (at > 0 && (buf[start + at - 1]! & 0xc0) === 0x80) at--;
        at--;
      }
      return { line, column: at + 1, byte: buf[start + at] ?? 0 };
    }
    if (end >= buf.length) return { line, column: 0, byte: 0 };
    start = end + 1;
    line++;
  }
}

/** The message for bytes of `file` that are not UTF-8 (`at` adds the line when the caller knows it). */
export function invalidUtf8(file: string, buf: Uint8Array, at?: number): TemperError {
  const p = firstBadByte(buf);
  const where = at === undefined ? `line ${p.line}, column ${p.column}` : `line ${at}, column ${p.column}`;
  return new TemperError(`${file} ${where}: not valid UTF-8 (byte 0x${p.byte.toString(16).padStart(2, '0')}); save the file as UTF-8`);
}

/** Decodes bytes strictly; `file` names them in the error. */
export function decodeUtf8(buf: Uint8Array, file: string, line?: number): string {
  try {
    return strict.decode(buf);
  } catch {
    throw invalidUtf8(file, buf, line);
  }
}

/** A whole text file, strictly decoded; `what` names it in errors ("dataset", "--file"). */
export function readUtf8File(path: string, what = path): string {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new TemperError(`${what}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  return decodeUtf8(buf, what);
}
