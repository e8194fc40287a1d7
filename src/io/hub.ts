// Model references: a local folder, or a hub id ("org/name", optional revision) resolved
// through @huggingface/hub into the standard HF cache ($HF_HOME/hub/models--org--name/),
// so Python tools and temper share downloads. A revision already in the cache resolves
// without the network. Only the files a model needs are fetched (root-level json,
// safetensors and chat templates), not every format a repository carries.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { getHFHubCachePath } from '@huggingface/hub';
import { TemperError } from '../tensor/index.js';
import { resolveBuiltin } from './builtin.js';
import { downloadRepoFiles, listRepoFiles, snapshotDir, type DownloadProgress } from './hub_cache.js';

export type { DownloadProgress } from './hub_cache.js';

export interface ResolveOptions {
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Hub cache directory (default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Download progress, a few times a second while files are fetched. */
  onProgress?: (p: DownloadProgress) => void;
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const WANTED = /^[^/]+\.(json|safetensors|jinja)$/;

/** True when `ref` names a folder on disk. */
function isLocalDir(ref: string): boolean {
  return existsSync(ref) && statSync(ref).isDirectory();
}

/** The cached snapshot folder for a model id and revision, if complete enough to load. */
export function cachedSnapshot(repo: string, revision = 'main', cacheDir = getHFHubCachePath()): string | null {
  const snap = snapshotDir('model', repo, revision, cacheDir);
  if (!snap) return null;
  const hasWeights = existsSync(join(snap, 'model.safetensors')) || existsSync(join(snap, 'model.safetensors.index.json'));
  return existsSync(join(snap, 'config.json')) && hasWeights ? snap : null;
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
  const what = `model '${ref}' (revision ${revision})`;
  const listed = await listRepoFiles('model', ref, revision, cacheDir, what);
  const files = [...listed].filter(([p]) => WANTED.test(p)).map(([path, size]) => ({ path, size }));
  const local = await downloadRepoFiles('model', ref, files, { revision, cacheDir, what, onProgress: opts.onProgress });
  // Each local path is <snapshot>/<file>; root-level files name the snapshot directly.
  const snapshot = local.length ? local[0]!.slice(0, local[0]!.length - files[0]!.path.length - 1) : null;
  if (!snapshot || !existsSync(join(snapshot, 'config.json')))
    throw new TemperError(`model '${ref}' (revision ${revision}): the repository has no config.json at its root`);
  return snapshot;
}
