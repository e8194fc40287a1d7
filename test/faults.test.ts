// Bad input and faults, tried as a careful new user would: every case must end in one
// `temper: …` line with exit code 2 that names the file, key or tensor, before any work is lost
// or a file is half-written. Output folders (a file in the way, read-only, a full disk mid-save,
// another run's checkpoints), resuming, merge parameters and non-finite merges, data files
// (invalid UTF-8, invalid JSON lines, empty or fake parquet, folders without data), and a model
// that collapses during training. The file-system cases mount a small tmpfs and run as root only.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';

const bin = fileURLToPath(new URL('../../bin/temper.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-faults-'));
const temper = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
const SFT = ['sft', '--model', 'builtin:tiny', '--dataset', 'builtin:arith-chat', '--quiet', 'true', '--per_device_train_batch_size', '2', '--max_length', '32', '--max_steps', '2'];
/** These cases are about the CLI and the file system, not the device: the CPU pass runs them. */
const cpuPass = { skip: process.env.TEMPER_DEVICE ? 'CLI and file-system faults; run in the CPU pass' : false };

/** The run failed cleanly: exit 2 and a `temper:` line matching `re`, no stack trace. */
function fails(r: ReturnType<typeof temper>, re: RegExp): string {
  assert.equal(r.status, 2, `exit ${r.status}\n${r.stderr}`);
  const last = r.stderr.trim().split('\n').at(-1)!;
  assert.match(last, /^temper: /);
  assert.match(last, re);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  return last;
}

/** Runs fn with a fresh tmpfs of `size` mounted (root only); skips the test where mounting is not allowed. */
function withTmpfs(t: TestContext, size: string, fn: (dir: string) => void): void {
  const dir = tmp();
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (m.status !== 0) return void t.skip(`cannot mount a tmpfs here (${(m.stderr || m.error?.message || '').trim()}); needs root`);
  try {
    fn(dir);
  } finally {
    spawnSync('umount', [dir]);
  }
}

const hidden = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('.checkpoint-'));

test('output_dir that is a file, or lies below a file, is refused before any work', cpuPass, () => {
  const d = tmp();
  writeFileSync(join(d, 'afile'), 'x');
  fails(temper(...SFT, '--output_dir', join(d, 'afile')), /output_dir .*afile: is a file, not a folder/);
  fails(temper(...SFT, '--output_dir', join(d, 'afile', 'sub', 'run')), /output_dir .*: .*afile is a file, not a folder/);
  assert.equal(readFileSync(join(d, 'afile'), 'utf8'), 'x');
  // A folder where nothing can be created (Node's recursive mkdir never returns there).
  if (existsSync('/proc/self')) fails(spawnSync(process.execPath, [bin, ...SFT, '--output_dir', '/proc/temper/run'], { encoding: 'utf8', timeout: 60_000 }), /output_dir \/proc\/temper\/run: cannot create \/proc\/temper/);
});

test('merge-lora refuses to write into the adapter folder or its base folder', cpuPass, () => {
  const adapter = tmp();
  assert.equal(temper(...SFT, '--use_peft', 'true', '--output_dir', adapter).status, 0);
  fails(temper('merge-lora', '--adapter', adapter, '--output', adapter), /the output folder .* is the adapter folder/);
  fails(temper('merge-lora', '--adapter', adapter, '--output', T.resolveBuiltin('builtin:tiny', 'model')!), /is the base model's folder/);
  assert.ok(!existsSync(join(adapter, 'config.json')));
});

test('an output_dir on a read-only file system is refused before the model loads', cpuPass, (t) => {
  withTmpfs(t, '1m', (dir) => {
    spawnSync('mount', ['-o', 'remount,ro', dir]);
    fails(temper(...SFT, '--output_dir', join(dir, 'run')), /output_dir .*run: cannot create it: the file system is read-only/);
    mkdirSync(tmp(), { recursive: true });
  });
});

test('a disk that fills during a checkpoint: a clear error, the previous checkpoint intact, no half folder', cpuPass, (t) => {
  // LoRA checkpoints here are ~0.5 MB: two fit in 1.5 MB, the third does not.
  withTmpfs(t, '1500k', (dir) => {
    const out = join(dir, 'run');
    const r = temper(...SFT, '--use_peft', 'true', '--save_steps', '1', '--max_steps', '6', '--output_dir', out);
    fails(r, /saving .*checkpoint-(\d+) \(nothing of it was kept; the newest complete checkpoint is .*checkpoint-\d+\): the disk is full \(ENOSPC\)/);
    const kept = readdirSync(out).filter((f) => /^checkpoint-\d+$/.test(f)).sort();
    assert.ok(kept.length >= 1, 'an earlier checkpoint is kept');
    for (const k of kept) {
      const state = JSON.parse(readFileSync(join(out, k, 'trainer_state.json'), 'utf8'));
      assert.equal(state.global_step, Number(k.split('-')[1]));
      assert.ok(existsSync(join(out, k, 'adapter_model.safetensors')));
    }
    assert.deepEqual(hidden(out), [], 'the partial checkpoint folder is removed');
  });
});

test("a new run into another run's output_dir is refused; overwrite_output_dir replaces it; leftovers are cleared", cpuPass, () => {
  const out = tmp();
  assert.equal(temper(...SFT, '--output_dir', out, '--save_steps', '1').status, 0);
  assert.ok(existsSync(join(out, 'checkpoint-2')));
  fails(temper(...SFT, '--output_dir', out), /output_dir .* already holds another run's checkpoints \(checkpoint-1, checkpoint-2\); pass --resume_from_checkpoint true .* --overwrite_output_dir true/);
  // Leftovers of a killed save or deletion are cleared by the next run.
  mkdirSync(join(out, '.checkpoint-7.tmp-12345'));
  mkdirSync(join(out, '.checkpoint-1.old-12345'));
  const r = temper(...SFT, '--output_dir', out, '--overwrite_output_dir', 'true', '--max_steps', '3', '--save_steps', '3');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(out).filter((f) => f.includes('checkpoint')).sort(), ['checkpoint-3']);
  assert.deepEqual(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step), [3], 'metrics of the new run only');
});

test('resume_from_checkpoint: none to resume is an error; a changed setting is named', cpuPass, () => {
  fails(temper(...SFT, '--output_dir', tmp(), '--resume_from_checkpoint', 'true'), /resume_from_checkpoint: no checkpoint-N folder in output_dir .* to resume from/);
  const out = tmp();
  assert.equal(temper(...SFT, '--output_dir', out, '--save_steps', '1').status, 0);
  fails(
    temper(...SFT, '--output_dir', out, '--resume_from_checkpoint', 'true', '--max_steps', '4', '--gradient_accumulation_steps', '2'),
    /checkpoint-2 was written with other settings \(gradient_accumulation_steps was 1, now 2\)/,
  );
  fails(temper(...SFT, '--output_dir', out, '--resume_from_checkpoint', join(out, 'checkpoint-9')), /checkpoint-9 does not exist/);
});

test('save_total_limit rotates checkpoints without leaving hidden folders', cpuPass, () => {
  const out = tmp();
  const r = temper(...SFT, '--output_dir', out, '--max_steps', '5', '--save_steps', '1', '--save_total_limit', '2');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(out).filter((f) => f.includes('checkpoint')).sort(), ['checkpoint-4', 'checkpoint-5']);
});

test('a model that collapses (uniform predictions, zero gradient) is flagged with a warning', cpuPass, () => {
  const r = temper(...SFT, '--use_peft', 'true', '--lora_target_modules', 'all-linear', '--learning_rate', '30', '--max_steps', '30', '--save_strategy', 'no', '--output_dir', tmp());
  assert.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('temper: warning:'));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0]!, /the loss sits at 6\.2383 \(uniform predictions.*\) with a zero gradient norm: the model has collapsed .* Lower learning_rate \(now 30\)/);
  // A healthy run says nothing of the kind.
  assert.doesNotMatch(temper(...SFT, '--output_dir', tmp(), '--max_steps', '12', '--learning_rate', '1e-3').stderr, /collapsed/);
});

test('data: invalid UTF-8, invalid JSON lines (skipped with skip_invalid_rows), empty or fake parquet, folders without data', cpuPass, async () => {
  const d = tmp();
  const good = '{"messages":[{"role":"user","content":"What is 1 plus 1?"},{"role":"assistant","content":"1 + 1 = 2. Answer: 2"}]}\n';
  writeFileSync(join(d, 'latin1.jsonl'), Buffer.concat([Buffer.from(good + good), Buffer.from('{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
  fails(temper('sft', '--model', 'builtin:tiny', '--dataset', join(d, 'latin1.jsonl'), '--output_dir', tmp()), /latin1\.jsonl line 3, column 13: not valid UTF-8 \(byte 0xe9\)/);
  writeFileSync(join(d, 'latin1.csv'), Buffer.concat([Buffer.from('text\nok\ncaf'), Buffer.from([0xe9]), Buffer.from('\n')]));
  await assert.rejects(T.loadDataset(join(d, 'latin1.csv')), /latin1\.csv line 3, column 4: not valid UTF-8/);

  writeFileSync(join(d, 'broken.jsonl'), good + '{"messages": [oops\n' + good + 'not json at all\n' + good);
  fails(temper('sft', '--model', 'builtin:tiny', '--dataset', join(d, 'broken.jsonl'), '--output_dir', tmp()), /broken\.jsonl line 2: not valid JSON/);
  const out = tmp();
  const r = temper('sft', '--model', 'builtin:tiny', '--dataset', join(d, 'broken.jsonl'), '--skip_invalid_rows', 'true', '--max_steps', '1', '--quiet', 'true', '--output_dir', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /train: skipped 2 invalid row\(s\), e\.g\. .*broken\.jsonl line 2: not valid JSON/);
  assert.match(r.stderr, /data: 3 training examples/);

  writeFileSync(join(d, 'empty.parquet'), '');
  await assert.rejects(T.loadDataset(join(d, 'empty.parquet')), /empty\.parquet: empty file \(0 bytes\), not a parquet file/);
  writeFileSync(join(d, 'fake.parquet'), 'prompt,completion\na,b\n');
  fails(temper('sft', '--model', 'builtin:tiny', '--dataset', join(d, 'fake.parquet'), '--output_dir', tmp()), /fake\.parquet: not a parquet file/);
  const folder = join(d, 'nodata');
  mkdirSync(folder);
  writeFileSync(join(folder, 'README.md'), '# no rows here');
  fails(temper('sft', '--model', 'builtin:tiny', '--dataset', folder, '--output_dir', tmp()), /nodata: no data files in it \(temper reads \.jsonl, \.json, \.csv and \.parquet; found README\.md\)/);
  mkdirSync(join(d, 'empty_folder'));
  await assert.rejects(T.loadDataset(join(d, 'empty_folder')), /empty_folder: no data files in it .*it is empty/);

  writeFileSync(join(d, 'text.txt'), Buffer.from([0x68, 0x69, 0x0a, 0xff, 0xfe]));
  fails(temper('tokenize', '--tokenizer', T.resolveBuiltin('builtin:tiny', 'model')!, '--file', join(d, 'text.txt')), /--file .*text\.txt line 2, column 1: not valid UTF-8 \(byte 0xff\)/);
});

/** A copy of a merge fixture model whose config.json and tensors `edit` may change. */
function modelCopy(name: string, edit: (tensors: Map<string, T.Tensor>, config: Record<string, unknown>) => void): string {
  const dir = tmp();
  cpSync(join(fixtures, 'merge', name), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const tensors = new Map<string, T.Tensor>();
  {
    using r = new T.WeightsReader(dir);
    for (const k of r.keys()) tensors.set(k, r.tensor(k));
  }
  edit(tensors, config);
  T.writeSafetensors(join(dir, 'model.safetensors'), tensors);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  for (const t of tensors.values()) t.dispose();
  return dir;
}

test('merge: parameters type- and range-checked by key; zero-sum normalize and non-finite outputs stop before writing; vocabularies compared', cpuPass, () => {
  const base = join(fixtures, 'merge', 'base'), a = join(fixtures, 'merge', 'ft_a'), b = join(fixtures, 'merge', 'ft_b');
  const d = tmp();
  const merge = (yaml: string, out = join(tmp(), 'out')) => {
    writeFileSync(join(d, 'm.yaml'), yaml);
    return { r: temper('merge', join(d, 'm.yaml'), out), out };
  };
  const models = (pa: string, pb: string) => `models:\n  - model: ${a}\n    parameters: {${pa}}\n  - model: ${b}\n    parameters: {${pb}}\n`;
  fails(merge(`merge_method: linear\n${models('weight: heavy', 'weight: 1')}`).r, /'models\[0\]\.parameters\.weight' must be a finite number \(got "heavy"\)/);
  fails(merge(`merge_method: ties\nbase_model: ${base}\n${models('weight: 1, density: 0', 'weight: 1, density: 0.5')}`).r, /'models\[0\]\.parameters\.density' must be in \(0, 1\] \(got 0\)/);
  fails(merge(`merge_method: dare_ties\nbase_model: ${base}\n${models('weight: 1, density: 0.5', 'weight: 1, density: [0.5, 1.5]')}`).r, /'models\[1\]\.parameters\.density' must be in \(0, 1\] \(got 1\.5\)/);
  fails(merge(`merge_method: slerp\nbase_model: ${base}\nmodels:\n  - model: ${base}\n  - model: ${a}\nparameters: {t: 1.2}\n`).r, /'parameters\.t' must be in \[0, 1\] \(got 1\.2\)/);
  fails(merge(`merge_method: linear\nparameters: {normalize: yes please}\n${models('weight: 1', 'weight: 1')}`).r, /'parameters\.normalize' must be true or false/);
  fails(merge(`merge_method: dare_linear\nbase_model: ${base}\nparameters: {rescale_mode: l2}\n${models('weight: 1, density: 0.5', 'weight: 1, density: 0.5')}`).r, /'parameters\.rescale_mode' must be one of exact, l1/);

  const zero = merge(`merge_method: linear\n${models('weight: 1', 'weight: -1')}`);
  fails(zero.r, /tensor '.*': the weights sum to 0 and normalize is true/);
  assert.ok(!existsSync(join(zero.out, 'config.json')), 'nothing that looks like a model is left');
  assert.equal(merge(`merge_method: linear\nparameters: {normalize: false}\n${models('weight: 1', 'weight: -1')}`).r.status, 0, 'normalize: false makes a difference of models');

  const nan = modelCopy('ft_a', (ts) => {
    const [name, t] = [...ts].find(([n]) => n.includes('layers.0.mlp'))!;
    const v = t.toArray() as Float32Array;
    v[3] = NaN;
    ts.set(name, T.fromArray(v, t.shape));
    t.dispose();
  });
  const bad = merge(`merge_method: linear\nmodels:\n  - model: ${nan}\n    parameters: {weight: 1}\n  - model: ${b}\n    parameters: {weight: 1}\n`);
  fails(bad.r, /the merged tensor 'model\.layers\.0\.mlp\.[a-z_]+\.weight' has NaN at element 3; nothing was written/);
  assert.ok(!existsSync(join(bad.out, 'config.json')) && !existsSync(join(bad.out, 'model.safetensors')));

  const outFile = join(d, 'taken');
  writeFileSync(outFile, 'x');
  fails(merge(`merge_method: linear\n${models('weight: 1', 'weight: 1')}`, outFile).r, /merge output .*taken: is a file, not a folder/);

  // Different vocabularies: merged as asked, with a warning that says what it means.
  const bigger = modelCopy('ft_b', (ts, cfg) => {
    for (const [n, t] of [...ts]) {
      if (!/embed_tokens|lm_head/.test(n)) continue;
      const v = t.toArray() as Float32Array, C = t.shape[1]!;
      const grown = new Float32Array(v.length + 2 * C);
      grown.set(v);
      ts.set(n, T.fromArray(grown, [t.shape[0]! + 2, C]));
      t.dispose();
    }
    cfg.vocab_size = Number(cfg.vocab_size) + 2;
  });
  const w = merge(`merge_method: linear\nmodels:\n  - model: ${a}\n    parameters: {weight: 1}\n  - model: ${bigger}\n    parameters: {weight: 1}\n`);
  assert.equal(w.r.status, 0, w.r.stderr);
  assert.match(w.r.stderr, /temper: warning: the models' vocabularies differ \(.*: 32 tokens, .*: 34 tokens\).*tokenizer_source: union/);
});
