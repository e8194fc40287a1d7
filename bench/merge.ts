// `temper bench merge`: dare_ties of 3 fine-tunes of a smollm-135m-shaped model (random
// weights, BF16, written to a temp folder) with `temper merge`, against the same merge in
// PyTorch (bench/torch_merge.py, every tensor loaded first, as mergekit's default path) in
// the same run. Both run as child processes under /usr/bin/time: wall time and peak RSS.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import { TRAIN_SHAPES, buildModel } from './models.js';
import { findTorchPython, peerEnv } from './ops.js';

interface Measured {
  seconds: number;
  maxRssMb: number;
}

/** Runs argv under /usr/bin/time; wall seconds and peak RSS from its last stderr line. */
function timed(argv: string[], env: NodeJS.ProcessEnv): Measured | { note: string } {
  if (!existsSync('/usr/bin/time')) return { note: '/usr/bin/time not found (apt-get install time)' };
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', ...argv], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  const line = (r.stderr || '').trim().split('\n').filter((l) => l.startsWith('TIME ')).pop();
  if (r.status !== 0 || !line) return { note: `${argv[0]} failed: ${(r.stderr || '').trim().split('\n').slice(-2).join(' ')}` };
  const [, s, kb] = line.split(' ');
  return { seconds: Number(s), maxRssMb: Number(kb) / 1024 };
}

export function runMergeBench(o: { json: boolean; peer: boolean }): void {
  const work = mkdtempSync(join(tmpdir(), 'temper-bench-merge-'));
  try {
    // A base and three "fine-tunes" (the base plus small independent noise per tensor).
    const model = buildModel(TRAIN_SHAPES['smollm-135m']);
    const dirs = ['base', 'ft1', 'ft2', 'ft3'].map((n) => join(work, n));
    T.saveModel(model, dirs[0]!, { dtype: 'BF16' });
    const gen = new T.Generator(3);
    const original = model.namedParameters().map(([n, p]) => [n, T.keep(T.clone(p))] as const);
    for (const dir of dirs.slice(1)) {
      T.noGrad(() => {
        for (const [name, p] of model.namedParameters()) {
          const base = original.find(([n]) => n === name)![1];
          T.scope(() => T.assign(p, T.add(base, T.randn(p.shape, { std: 1e-3, generator: gen }))));
        }
      });
      T.saveModel(model, dir, { dtype: 'BF16' });
    }
    original.forEach(([, t]) => t.dispose());
    model.dispose();
    T.emptyCache();
    // Both sides start with the inputs flushed to disk (still in the page cache), not mid-writeback.
    spawnSync('sync');
    const cfg = join(work, 'dare_ties.yaml');
    writeFileSync(cfg, [
      'merge_method: dare_ties',
      `base_model: ${dirs[0]}`,
      'models:',
      ...dirs.slice(1).map((d) => `  - model: ${d}\n    parameters: {density: 0.5, weight: 0.33}`),
      'dtype: float32',
      'out_dtype: bfloat16',
    ].join('\n') + '\n');

    const bin = fileURLToPath(new URL('../../bin/temper.js', import.meta.url));
    const mine = timed([process.execPath, bin, 'merge', cfg, join(work, 'out-temper'), '--seed', '1'], process.env);
    const py = o.peer ? findTorchPython() : null;
    const script = fileURLToPath(new URL('../../bench/torch_merge.py', import.meta.url));
    const peer = !o.peer
      ? { note: 'peer skipped (--no_peer)' }
      : !py
        ? { note: 'PyTorch not found: peer skipped' }
        : timed([py, script, '--base', dirs[0]!, '--models', dirs.slice(1).join(','), '--out', join(work, 'out-torch'), '--threads', String(T.getNumThreads())], peerEnv());
    if ('note' in mine) throw new T.TemperError(`bench merge: temper merge failed: ${mine.note}`);
    const p = 'note' in peer ? null : peer;
    const row = {
      suite: 'merge', case: 'dare_ties_3x_smollm-135m', temper: +(mine.seconds * 1e3).toFixed(0), peer: p ? +(p.seconds * 1e3).toFixed(0) : null,
      peer_name: p ? 'torch (bench/torch_merge.py)' : null, unit: 'ms', ratio: p ? +(p.seconds / mine.seconds).toFixed(3) : null,
      temper_max_rss_mb: +mine.maxRssMb.toFixed(0), peer_max_rss_mb: p ? +p.maxRssMb.toFixed(0) : null, ...('note' in peer ? { note: peer.note } : {}),
    };
    process.stdout.write(
      (o.json
        ? JSON.stringify(row)
        : `merge dare_ties 3 x smollm-135m: temper ${mine.seconds.toFixed(1)} s, peak RSS ${mine.maxRssMb.toFixed(0)} MB   ` +
          (p ? `torch ${p.seconds.toFixed(1)} s, peak RSS ${p.maxRssMb.toFixed(0)} MB   ratio ${(p.seconds / mine.seconds).toFixed(2)}x` : `peer n/a (${(peer as { note: string }).note})`)) + '\n',
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
