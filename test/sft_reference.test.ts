// SFT rebuilt on the shared trainer pieces must train exactly as before: three fixed-seed runs
// (full fine-tuning with accumulation and an eval_ratio hold-out, LoRA with packing and dropout,
// padding-free over two epochs with a short last step) log bit-identical losses, gradient norms,
// learning rates, token counts and accuracies to the reference made by the code before the
// refactor (scripts/make_sft_reference.mjs, test/fixtures/train/sft_reference.json).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const reference = JSON.parse(readFileSync(join(root, 'test/fixtures/train/sft_reference.json'), 'utf8')) as Record<string, { args: string[]; log: Record<string, number>[] }>;

for (const [name, { args, log }] of Object.entries(reference)) {
  test(`sft reference run '${name}' logs the same numbers bit for bit`, { skip: process.env.TEMPER_DEVICE ? 'a CPU reference; run in the CPU pass' : false }, () => {
    const out = mkdtempSync(join(tmpdir(), 'temper-sftref-'));
    const r = spawnSync(process.execPath, ['bin/temper.js', 'sft', ...args, '--quiet', 'true', '--output_dir', out], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    assert.equal(got.length, log.length);
    log.forEach((want, i) => {
      for (const [k, v] of Object.entries(want)) {
        // Evaluation entries now report the epoch from the batch cursor, as train entries always did.
        if (k === 'epoch' && 'eval_loss' in want) continue;
        assert.equal(got[i]![k], v, `entry ${i} (step ${want.step}) ${k}`);
      }
    });
  });
}
