// The shared HF hub cache ($HF_HOME/hub/<type>s--org--name/{refs,snapshots,blobs}) through
// @huggingface/hub: finding a cached snapshot offline, listing a repository's files, and
// downloading a chosen set with progress. Used for models (hub.ts) and datasets
// (dataset.ts); which files a repository needs is the caller's decision.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { downloadFileToCacheDir, listFiles } from '@huggingface/hub';
import { TemperError } from '../tensor/index.js';

export type RepoType = 'model' | 'dataset';

export interface DownloadProgress {
  /** The file being fetched. */
  file: string;
  /** Bytes on disk so far, over every file of this download. */
  loaded: number;
  /** Bytes of every file of this download. */
  total: number;
}

const repoFolder = (cacheDir: string, type: RepoType, repo: string) => join(cacheDir, `${type}s--${repo.replace('/', '--')}`);

/** The snapshot folder of `repo` at `revision` (a branch, tag or commit) if the cache has one. */
export function snapshotDir(type: RepoType, repo: string, revision: string, cacheDir: string): string | null {
  const root = repoFolder(cacheDir, type, repo);
  let commit = revision;
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    const refFile = join(root, 'refs', revision);
    if (!existsSync(refFile)) return null;
    commit = readFileSync(refFile, 'utf8').trim();
  }
  const snap = join(root, 'snapshots', commit);
  return existsSync(snap) ? snap : null;
}

/** Bytes of the library's partial downloads, so progress does not rely on its internals. */
function incompleteBytes(blobs: string): number {
  try {
    return readdirSync(blobs)
      .filter((f) => f.endsWith('.incomplete'))
      .reduce((n, f) => n + statSync(join(blobs, f)).size, 0);
  } catch {
    return 0;
  }
}

/** Runs fn with @huggingface/hub's console.debug file logging off: stdout is for results. */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const debug = console.debug;
  console.debug = () => {};
  try {
    return await fn();
  } finally {
    console.debug = debug;
  }
}

const accessToken = () => process.env.HF_TOKEN || undefined;

function checkOnline(what: string, cacheDir: string): void {
  if (process.env.HF_HUB_OFFLINE === '1') throw new TemperError(`${what} is not in the cache at ${cacheDir}, and HF_HUB_OFFLINE=1 forbids downloading it`);
}

/** path -> size of every file in the repository (recursive when asked). */
export async function listRepoFiles(type: RepoType, repo: string, revision: string, cacheDir: string, what: string, recursive = false): Promise<Map<string, number>> {
  checkOnline(what, cacheDir);
  const out = new Map<string, number>();
  try {
    await quietly(async () => {
      for await (const e of listFiles({ repo: { type, name: repo }, revision, recursive, accessToken: accessToken() })) if (e.type === 'file') out.set(e.path, e.size);
    });
  } catch (e) {
    throw new TemperError(`${what}: not in the cache at ${cacheDir} and listing its files failed: ${(e as Error).message}`);
  }
  return out;
}

/** Downloads `paths` (with their sizes) into the cache; returns the local path of each, in order. */
export async function downloadRepoFiles(
  type: RepoType, repo: string, files: readonly { path: string; size: number }[],
  opts: { revision: string; cacheDir: string; what: string; onProgress?: (p: DownloadProgress) => void },
): Promise<string[]> {
  checkOnline(opts.what, opts.cacheDir);
  const total = files.reduce((n, f) => n + f.size, 0);
  const blobs = join(repoFolder(opts.cacheDir, type, repo), 'blobs');
  const local: string[] = [];
  let done = 0;
  await quietly(async () => {
    for (const f of files) {
      const tick = () => opts.onProgress?.({ file: f.path, loaded: done + incompleteBytes(blobs), total });
      const timer = opts.onProgress ? setInterval(tick, 250) : null;
      try {
        local.push(await downloadFileToCacheDir({ repo: { type, name: repo }, path: f.path, revision: opts.revision, cacheDir: opts.cacheDir, accessToken: accessToken() }));
      } catch (e) {
        throw new TemperError(`${opts.what}: downloading ${f.path} failed: ${(e as Error).message}`);
      } finally {
        if (timer) clearInterval(timer);
      }
      done += f.size;
      opts.onProgress?.({ file: f.path, loaded: done, total });
    }
  });
  return local;
}
