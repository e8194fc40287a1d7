// The assets shipped inside the package (assets/builtin/): a tiny base model and small
// datasets, named `builtin:<name>`, so the demo and the tests run with no network. An
// explicit list of small objects; not a dataset loader (that reads the files this resolves)
// and not a cache. Every asset is made by a committed script under scripts/.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TemperError } from '../tensor/index.js';

export type BuiltinKind = 'model' | 'dataset';

export interface Builtin {
  /** The name after `builtin:`. */
  name: string;
  kind: BuiltinKind;
  description: string;
  /** The asset's folder, relative to the package root. */
  path: string;
  /** Datasets: split name -> JSON-lines file in `path`. */
  splits?: Readonly<Record<string, string>>;
  /** Datasets: the row shape, in TRL's terms. */
  format?: 'text' | 'messages' | 'prompt-completion';
  /** The script that makes it. */
  madeBy: string;
}

export const BUILTIN_PREFIX = 'builtin:';

const SPLITS = { train: 'train.jsonl', test: 'test.jsonl' } as const;

export const BUILTINS: readonly Builtin[] = [
  {
    name: 'tiny',
    kind: 'model',
    description: '1.7M-parameter Llama pre-trained on synthetic arithmetic text ("23 + 58 = 81"); byte-level BPE (512 tokens), ChatML template',
    path: 'assets/builtin/tiny',
    madeBy: 'scripts/train_builtin_tiny.mjs',
  },
  {
    name: 'arith-chat',
    kind: 'dataset',
    description: 'chat SFT: "What is 23 plus 58?" -> "23 + 58 = 81. Answer: 81"; test problems held out of train',
    path: 'assets/builtin/datasets/arith-chat',
    splits: SPLITS,
    format: 'messages',
    madeBy: 'scripts/make_builtin_data.mjs',
  },
  {
    name: 'arith-pc',
    kind: 'dataset',
    description: 'arith-chat as conversational prompt/completion pairs',
    path: 'assets/builtin/datasets/arith-pc',
    splits: SPLITS,
    format: 'prompt-completion',
    madeBy: 'scripts/make_builtin_data.mjs',
  },
  {
    name: 'arith-text',
    kind: 'dataset',
    description: "plain text: a sample of builtin:tiny's pre-training documents; test = held-out facts",
    path: 'assets/builtin/datasets/arith-text',
    splits: SPLITS,
    format: 'text',
    madeBy: 'scripts/make_builtin_data.mjs',
  },
];

let packageRoot: string | null = null;

/** The package root: the first folder above this file (src/io or dist/src/io) holding assets/builtin. */
export function builtinRoot(): string {
  if (packageRoot) return packageRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'assets', 'builtin'))) return (packageRoot = dir);
    dir = dirname(dir);
  }
  throw new TemperError('built-in assets not found: this temper installation has no assets/builtin folder (is "assets" in the package files?)');
}

/** The entry for `builtin:<name>` (or a bare name), or an error listing the available ones. */
export function getBuiltin(ref: string, kind?: BuiltinKind): Builtin {
  const name = ref.startsWith(BUILTIN_PREFIX) ? ref.slice(BUILTIN_PREFIX.length) : ref;
  const pool = kind ? BUILTINS.filter((b) => b.kind === kind) : BUILTINS;
  const found = BUILTINS.find((b) => b.name === name);
  const available = pool.map((b) => `${BUILTIN_PREFIX}${b.name}`).join(', ');
  if (!found) throw new TemperError(`unknown built-in '${BUILTIN_PREFIX}${name}' (available${kind ? ` ${kind}s` : ''}: ${available})`);
  if (kind && found.kind !== kind) throw new TemperError(`'${BUILTIN_PREFIX}${name}' is a built-in ${found.kind}, not a ${kind} (available ${kind}s: ${available})`);
  return found;
}

/**
 * The folder of a `builtin:` reference, or null when `ref` does not start with `builtin:`.
 * With `kind`, a reference to the other kind is an error.
 * @example resolveBuiltin('builtin:tiny');   // '/…/node_modules/temper/assets/builtin/tiny'
 */
export function resolveBuiltin(ref: string, kind?: BuiltinKind): string | null {
  if (!ref.startsWith(BUILTIN_PREFIX)) return null;
  const b = getBuiltin(ref, kind);
  const dir = join(builtinRoot(), b.path);
  if (!existsSync(dir)) throw new TemperError(`${BUILTIN_PREFIX}${b.name}: ${dir} is missing (made by ${b.madeBy})`);
  return dir;
}

/**
 * The JSON-lines file of one split of a built-in dataset.
 * @example resolveBuiltinDataset('builtin:arith-chat', 'test');   // '/…/assets/builtin/datasets/arith-chat/test.jsonl'
 */
export function resolveBuiltinDataset(ref: string, split = 'train'): string {
  if (!ref.startsWith(BUILTIN_PREFIX)) throw new TemperError(`'${ref}' is not a built-in dataset reference (builtin:<name>)`);
  const b = getBuiltin(ref, 'dataset');
  const file = b.splits?.[split];
  if (file === undefined) throw new TemperError(`${BUILTIN_PREFIX}${b.name} has no split '${split}' (splits: ${Object.keys(b.splits ?? {}).join(', ')})`);
  const path = join(resolveBuiltin(ref, 'dataset')!, file);
  if (!existsSync(path)) throw new TemperError(`${BUILTIN_PREFIX}${b.name}: ${path} is missing (made by ${b.madeBy})`);
  return path;
}

export interface BuiltinListing extends Builtin {
  /** Absolute folder. */
  dir: string;
  /** Bytes on disk of every file in the folder (0 when missing). */
  bytes: number;
}

function folderBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) n += f.isDirectory() ? folderBytes(join(dir, f.name)) : statSync(join(dir, f.name)).size;
  return n;
}

/** Every built-in asset with its folder and size on disk. */
export function listBuiltins(): BuiltinListing[] {
  const root = builtinRoot();
  return BUILTINS.map((b) => ({ ...b, dir: join(root, b.path), bytes: folderBytes(join(root, b.path)) }));
}
