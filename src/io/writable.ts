// Output folders a command is about to fill: checked before the work starts (a file in the
// way, a parent that is a file, a read-only or full file system, no permission), and file-
// system failures during a save turned into one line that names the path and says what
// happened in words (ENOSPC -> "the disk is full"). Not atomic writes themselves: each writer
// writes to a temporary name and renames.
import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { TemperError } from '../tensor/index.js';

const WORDS: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOTDIR: 'a parent of it is a file, not a folder',
  EISDIR: 'it is a folder',
  ENOENT: 'no such file or folder',
  EEXIST: 'it already exists',
  EMFILE: 'too many open files',
  EIO: 'an I/O error',
};

/** The errno code of a Node file-system error, or null. */
export function fsErrorCode(e: unknown): string | null {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : null;
}

/** "<what>: <code in words> (<CODE>)" for a file-system error; other errors pass through. */
export function fsError(what: string, e: unknown): Error {
  if (e instanceof TemperError) return e;
  const code = fsErrorCode(e);
  if (!code) return e as Error;
  return new TemperError(`${what}: ${WORDS[code] ?? (e as Error).message} (${code})`);
}

/** Runs fn; a file-system error becomes a TemperError naming `what`. */
export function withFsErrors<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fsError(what, e);
  }
}

/**
 * Makes sure `dir` is (or can become) a folder this process can write, before any work:
 * `label` names it in errors ("output_dir", "merge output"). Creates it when missing.
 * @example ensureWritableDir('out/run1', 'output_dir');
 */
export function ensureWritableDir(dir: string, label: string): void {
  const say = (msg: string) => new TemperError(`${label} ${dir}: ${msg}`);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw say('is a file, not a folder');
  // The nearest existing ancestor must be a folder (mkdir's ENOTDIR names no path).
  const missing: string[] = [];
  let ancestor = resolve(dir);
  while (!existsSync(ancestor) && ancestor !== dirname(ancestor)) {
    missing.unshift(ancestor);
    ancestor = dirname(ancestor);
  }
  if (!statSync(ancestor).isDirectory()) throw say(`${ancestor} is a file, not a folder`);
  // One level at a time: Node's recursive mkdir never returns on file systems such as /proc.
  for (const p of missing) {
    try {
      mkdirSync(p);
    } catch (e) {
      // A read-only parent may report ENOENT; asking the parent gives the real reason.
      let code = fsErrorCode(e);
      try {
        accessSync(dirname(p), constants.W_OK);
      } catch (a) {
        code = fsErrorCode(a) ?? code;
      }
      throw say(`cannot create ${p === resolve(dir) ? 'it' : p}: ${WORDS[code ?? ''] ?? (e as Error).message}`);
    }
  }
  const probe = resolve(dir, `.temper-write-test-${process.pid}`);
  try {
    writeFileSync(probe, 'ok');
  } catch (e) {
    throw say(`cannot write there: ${WORDS[fsErrorCode(e) ?? ''] ?? (e as Error).message}`);
  } finally {
    rmSync(probe, { force: true });
  }
}
