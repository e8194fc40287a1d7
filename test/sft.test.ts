// `temper sft` as a user runs it, on the built-in model and data: config validation before
// any work, full and LoRA runs whose outputs load back, an exact resume after SIGKILL, and
// Ctrl-C saving a checkpoint.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';

const bin = fileURLToPath(new URL('../../bin/temper.js', import.meta.url));
const temper = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-sft-'));
const BASE = ['--model', 'builtin:tiny', '--dataset', 'builtin:arith-chat', '--quiet', 'true', '--per_device_train_batch_size', '4', '--max_length', '64'];
const losses = (dir: string) =>
  new Map(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((e) => 'loss' in e).map((e) => [e.step!, e.loss!]));

test('bad configs fail up front with one message naming the key', () => {
  const dir = tmp();
  const cases: [string[], RegExp][] = [
    [['--dataset', 'x'], /missing required 'model'/],
    [['--model', 'builtin:tiny', '--dataset', 'x', '--learning_rat', '1'], /unknown key 'learning_rat'/],
    [['--model', 'builtin:tiny', '--dataset', 'x', '--learning_rate', 'fast'], /--learning_rate: .*number/],
    [['--model', 'builtin:tiny', '--dataset', 'x', '--lr_scheduler_type', 'sawtooth'], /lr_scheduler_type/],
    [['--config', join(dir, 'nope.yaml')], /config .*nope\.yaml: cannot read/],
  ];
  for (const [args, re] of cases) {
    const r = temper('sft', ...args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  writeFileSync(join(dir, 'c.yaml'), 'model: builtin:tiny\ndataset: builtin:arith-chat\nnum_train_epochs: three\n');
  const y = temper('sft', '--config', join(dir, 'c.yaml'));
  assert.match(y.stderr, /c\.yaml: num_train_epochs/);
  const h = temper('sft', '--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--gradient_accumulation_steps\s+micro-batches per optimizer step \(default: 1\)/);
});

test('full fine-tuning writes an HF folder that loads back, with metrics and a report', () => {
  const out = tmp();
  const r = temper('sft', ...BASE, '--max_steps', '3', '--logging_steps', '1', '--learning_rate', '1e-3', '--output_dir', out, '--save_dtype', 'BF16');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /done: 3 steps/);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'metrics.jsonl', 'report.html']) assert.ok(existsSync(join(out, f)), f);
  assert.equal(losses(out).size, 3);
  const m = T.loadModelFromDir(out);
  assert.equal(m.config.modelType, 'llama');
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  m.dispose();
});

test('LoRA on packed data writes a PEFT adapter that loads onto the base model', async () => {
  const out = tmp();
  const r = temper('sft', ...BASE, '--use_peft', 'true', '--lora_target_modules', 'all-linear', '--packing', 'true', '--max_steps', '2', '--output_dir', out,
    '--eval_strategy', 'steps', '--eval_steps', '2');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /LoRA r=16 alpha=32 on 28 modules/);
  assert.match(r.stderr, /eval @ step 2: eval_loss/);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.base_model_name_or_path, 'builtin:tiny');
  const lora = T.loadAdapter(await T.loadModel('builtin:tiny'), out);
  assert.equal(lora.layers.size, 28);
  lora.model.dispose();
  // An adapter folder as --model continues that adapter on its base.
  const more = tmp();
  const c = temper('sft', ...BASE.slice(2), '--model', out, '--max_steps', '1', '--output_dir', more);
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stderr, /continuing the LoRA adapter in .* on builtin:tiny/);
  assert.equal(JSON.parse(readFileSync(join(more, 'adapter_config.json'), 'utf8')).base_model_name_or_path, 'builtin:tiny');
});

test('a run killed with SIGKILL and resumed logs the same losses as an uninterrupted run', async () => {
  const args = [...BASE, '--max_steps', '16', '--logging_steps', '1', '--save_steps', '8', '--learning_rate', '1e-3', '--lr_scheduler_type', 'cosine', '--warmup_steps', '2'];
  const full = tmp();
  assert.equal(temper('sft', ...args, '--output_dir', full).status, 0);
  const killed = tmp();
  const child = spawn(process.execPath, [bin, 'sft', ...args, '--output_dir', killed], { stdio: 'ignore' });
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (existsSync(join(killed, 'checkpoint-8', 'trainer_state.json')) || child.exitCode !== null) {
        clearInterval(poll);
        child.kill('SIGKILL');
        resolve();
      }
    }, 20);
  });
  await new Promise((r) => child.once('exit', r));
  assert.ok(!existsSync(join(killed, 'checkpoint-16')), 'killed before the end');
  const r = temper('sft', ...args, '--output_dir', killed, '--resume_from_checkpoint', 'true');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /resuming at step 8 of 16/);
  const a = losses(full), b = losses(killed);
  assert.equal(b.size, 16);
  for (const [step, l] of a) assert.ok(Math.abs(l - b.get(step)!) < 1e-6, `step ${step}: ${l} vs ${b.get(step)}`);
});

test('Ctrl-C saves a checkpoint and exits with 130', async () => {
  const out = tmp();
  const child = spawn(process.execPath, [bin, 'sft', ...BASE, '--max_steps', '100000', '--output_dir', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (existsSync(join(out, 'metrics.jsonl')) && readFileSync(join(out, 'metrics.jsonl'), 'utf8').length > 0) {
        clearInterval(poll);
        child.kill('SIGINT');
        resolve();
      }
    }, 20);
  });
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 130, err);
  assert.match(err, /interrupted at step \d+; checkpoint: .*checkpoint-\d+/);
  const ck = err.match(/checkpoint: (\S+)/)![1]!;
  assert.ok(existsSync(join(ck, 'trainer_state.json')));
});

test('temper demo (shortened) measures accuracy before and after and leaves a loadable adapter', () => {
  const out = tmp();
  const r = temper('demo', '--output_dir', out, '--max_steps', '20', '--eval_examples', '8', '--quiet', 'true');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /before: \d+\.\d% exact answers on 8 held-out questions/);
  assert.match(r.stdout, /after: +\d+\.\d% exact answers on the same questions/);
  assert.match(r.stdout, /adapter \(PEFT format\): .*report: .*report\.html/);
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
});

test('sft --bf16 true (mixed precision) tracks the f32 run', () => {
  const run = (extra: string[]) => {
    const dir = tmp();
    const r = temper('sft', ...BASE, '--output_dir', dir, '--max_steps', '6', '--logging_steps', '1', '--save_strategy', 'no', '--learning_rate', '1e-3', ...extra);
    assert.equal(r.status, 0, r.stderr);
    return [...losses(dir).values()];
  };
  const f = run([]), m = run(['--bf16', 'true']);
  assert.equal(m.length, 6);
  for (let i = 0; i < f.length; i++) assert.ok(Math.abs(f[i]! - m[i]!) < 0.02 * f[i]!, `step ${i + 1}: f32 ${f[i]} vs bf16 ${m[i]}`);
});
