// Writes test/fixtures/train/sft_reference.json: the metrics of three fixed-seed `temper sft` runs
// (full + accumulation + eval_ratio, LoRA + packing + dropout, padding-free over two epochs with a
// short last step). Made with the code before the trainer-foundation refactor; test/sft_reference.test.ts
// checks that every later version logs the same numbers bit for bit on a CPU of the same kind
// (`machine`: the BLAS kernels differ between CPU models, and so does the rounding).
// Run: node scripts/make_sft_reference.mjs
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const CASES = {
  full_accum_evalratio: ['--model', 'builtin:tiny', '--dataset', 'builtin:arith-chat', '--per_device_train_batch_size', '4', '--gradient_accumulation_steps', '2',
    '--max_length', '64', '--max_steps', '6', '--learning_rate', '1e-3', '--lr_scheduler_type', 'cosine', '--warmup_steps', '2', '--weight_decay', '0.1',
    '--eval_ratio', '0.01', '--eval_strategy', 'steps', '--eval_steps', '3', '--logging_steps', '1', '--save_strategy', 'no'],
  lora_packed_dropout: ['--model', 'builtin:tiny', '--dataset', 'builtin:arith-chat', '--use_peft', 'true', '--lora_dropout', '0.1', '--lora_target_modules', 'all-linear',
    '--packing', 'true', '--max_length', '128', '--per_device_train_batch_size', '2', '--max_steps', '5', '--learning_rate', '2e-3', '--logging_steps', '1',
    '--eval_strategy', 'steps', '--eval_steps', '5', '--per_device_eval_batch_size', '16', '--save_strategy', 'no'],
  padding_free_epochs: ['--model', 'builtin:tiny', '--dataset', 'test/fixtures/train/pc10.jsonl', '--padding_free', 'true', '--per_device_train_batch_size', '3',
    '--gradient_accumulation_steps', '3', '--num_train_epochs', '2', '--learning_rate', '1e-3', '--logging_steps', '1', '--save_strategy', 'no', '--seed', '7'],
};
/** The CPU kind the numbers hold for: vendor, family and model from /proc/cpuinfo. */
function cpuSignature() {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const field = (k) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '?';
  return `${field('vendor_id')} family ${field('cpu family')} model ${field('model')}`;
}

const out = {};
for (const [name, args] of Object.entries(CASES)) {
  const dir = mkdtempSync(join(tmpdir(), 'ref-'));
  const r = spawnSync(process.execPath, ['bin/temper.js', 'sft', ...args, '--quiet', 'true', '--output_dir', dir], { encoding: 'utf8' });
  if (r.status !== 0) { console.error(r.stderr); process.exit(1); }
  out[name] = { args, log: readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => { const e = JSON.parse(l); delete e.tokens_per_second; return e; }) };
}
writeFileSync('test/fixtures/train/sft_reference.json', JSON.stringify({ machine: cpuSignature(), runs: out }, null, 1) + '\n');
