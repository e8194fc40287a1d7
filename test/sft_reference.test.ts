// SFT rebuilt on the shared trainer pieces must train exactly as before: three fixed-seed runs
// (full fine-tuning with accumulation and an eval_ratio hold-out, LoRA with packing and dropout,
// padding-free over two epochs with a short last step) log bit-identical losses, gradient norms,
// learning rates, token counts and accuracies to the reference made by the code before the
// refactor (scripts/make_sft_reference.mjs, test/fixtures/train/sft_reference.json). Bit for bit
// holds on the CPU kind the reference was made on; another CPU model runs other BLAS kernels,
// which round differently, so there the numbers are compared to 1e-3 (relative) instead.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const reference = JSON.parse(readFileSync(join(root, 'test/fixtures/train/sft_reference.json'), 'utf8')) as {
  machine: string;
  runs: Record<string, { args: string[]; log: Record<string, number>[] }>;
};

/** The CPU kind, as scripts/make_sft_reference.mjs records it: vendor, family and model. */
function cpuSignature(): string {
  const info = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '?';
  return `${field('vendor_id')} family ${field('cpu family')} model ${field('model')}`;
}
const sameCpu = cpuSignature() === reference.machine;

for (const [name, { args, log }] of Object.entries(reference.runs)) {
  test(`sft reference run '${name}' logs the same numbers ${sameCpu ? 'bit for bit' : 'to 1e-3 (another CPU kind than the reference)'}`, { skip: process.env.TEMPER_DEVICE ? 'a CPU reference; run in the CPU pass' : false }, (t) => {
    if (!sameCpu) t.diagnostic(`reference made on ${reference.machine}, this is ${cpuSignature()}: comparing to 1e-3 relative`);
    const out = mkdtempSync(join(tmpdir(), 'temper-sftref-'));
    const r = spawnSync(process.execPath, ['bin/temper.js', 'sft', ...args, '--quiet', 'true', '--output_dir', out], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    assert.equal(got.length, log.length);
    log.forEach((want, i) => {
      for (const [k, v] of Object.entries(want)) {
        // Evaluation entries now report the epoch from the batch cursor, as train entries always did.
        if (k === 'epoch' && 'eval_loss' in want) continue;
        if (sameCpu) assert.equal(got[i]![k], v, `entry ${i} (step ${want.step}) ${k}`);
        else assert.ok(Math.abs(got[i]![k]! - v) <= 1e-3 * Math.max(1, Math.abs(v)), `entry ${i} (step ${want.step}) ${k}: ${got[i]![k]} vs ${v}`);
      }
    });
  });
}
