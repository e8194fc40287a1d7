// Model references: a local folder, or a hub id ("org/name", optional revision) resolved
// through @huggingface/hub into the standard HF cache ($HF_HOME/hub/models--org--name/),
// so Python tools and temper share downloads. A revision already in the cache resolves
// without the network. Only the files a model needs are fetched (root-level json,
// safetensors and chat templates), not every format a repository carries.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { downloadFileToCacheDir, getHFHubCachePath, listFiles } from '@huggingface/hub';
import { TemperError } from '../tensor/index.js';
import { resolveBuiltin } from './builtin.js';

export interface ResolveOptions {
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Hub cache directory (default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Download progress, a few times a second while files are fetched. */
  onProgress?: (p: DownloadProgress) => void;
}

export interface DownloadProgress {
  /** The file being fetched. */
  file: string;
  /** Bytes on disk so far, over every file of this download. */
  loaded: number;
  /** Bytes of every file of this download. */
  total: number;
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const WANTED = /^[^/]+\.(json|safetensors|jinja)$/;

/** True when `ref` names a folder on disk. */
function isLocalDir(ref: string): boolean {
  return existsSync(ref) && statSync(ref).isDirectory();
}

/** The cached snapshot folder for a repo id and revision, if complete enough to load. */
export function cachedSnapshot(repo: string, revision = 'main', cacheDir = getHFHubCachePath()): string | null {
  const root = join(cacheDir, `models--${repo.replace('/', '--')}`);
  let commit = revision;
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    const refFile = join(root, 'refs', revision);
    if (!existsSync(refFile)) return null;
    commit = readFileSync(refFile, 'utf8').trim();
  }
  const snap = join(root, 'snapshots', commit);
  const hasWeights = existsSync(join(snap, 'model.safetensors')) || existsSync(join(snap, 'model.safetensors.index.json'));
  return existsSync(join(snap, 'config.json')) && hasWeights ? snap : null;
}

function incompleteBytes(blobs: string): number {
  try {
    return readdirSync(blobs)
      .filter((f) => f.endsWith('.incomplete'))
      .reduce((n, f) => n + statSync(join(blobs, f)).size, 0);
  } catch {
    return 0;
  }
}

/** A local folder for `ref`: a built-in model (`builtin:tiny`), the folder itself, a cached snapshot, or a fresh download into the cache. */
export async function resolveModelRef(ref: string, opts: ResolveOptions = {}): Promise<string> {
  const builtin = resolveBuiltin(ref, 'model');
  if (builtin !== null) return builtin;
  if (isLocalDir(ref)) return ref;
  if (!HUB_ID.test(ref)) throw new TemperError(`model '${ref}': no such folder, and not a hub id of the form org/name`);
  const revision = opts.revision ?? 'main';
  const cacheDir = opts.cacheDir ?? getHFHubCachePath();
  const cached = cachedSnapshot(ref, revision, cacheDir);
  if (cached) return cached;
  const accessToken = process.env.HF_TOKEN || undefined;
  const repo = { type: 'model' as const, name: ref };
  let snapshot: string | null = null;
  // The library logs each file with console.debug, which goes to stdout: keep stdout for results.
  const debug = console.debug;
  console.debug = () => {};
  try {
    const files: { path: string; size: number }[] = [];
    for await (const entry of listFiles({ repo, revision, accessToken })) {
      if (entry.type === 'file' && WANTED.test(entry.path)) files.push({ path: entry.path, size: entry.size });
    }
    const total = files.reduce((n, f) => n + f.size, 0);
    let done = 0;
    const blobs = join(cacheDir, `models--${ref.replace('/', '--')}`, 'blobs');
    for (const f of files) {
      // Progress from the size of the library's `.incomplete` blob, so no reliance on its internals.
      const tick = () => opts.onProgress?.({ file: f.path, loaded: done + incompleteBytes(blobs), total });
      const timer = opts.onProgress ? setInterval(tick, 250) : null;
      try {
        const file = await downloadFileToCacheDir({ repo, path: f.path, revision, cacheDir, accessToken });
        snapshot = file.slice(0, file.length - f.path.length - 1);
      } finally {
        if (timer) clearInterval(timer);
      }
      done += f.size;
      opts.onProgress?.({ file: f.path, loaded: done, total });
    }
  } catch (e) {
    throw new TemperError(`model '${ref}' (revision ${revision}): not in the cache at ${cacheDir} and the download failed: ${(e as Error).message}`);
  } finally {
    console.debug = debug;
  }
  if (!snapshot || !existsSync(join(snapshot, 'config.json')))
    throw new TemperError(`model '${ref}' (revision ${revision}): the repository has no config.json at its root`);
  return snapshot;
}
