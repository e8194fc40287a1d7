#!/usr/bin/env node
// Step 2 of the HF interop check (see scripts/gpu/hf_interop.py, which makes WORK and checks
// what this writes): for each WORK/<arch>/hf written by transformers' save_pretrained,
//   - temper loads it (loadModelFromDir) and its logits on WORK/inputs.json must match
//     WORK/<arch>/hf_logits.json (max abs diff < 1e-4 at real positions);
//   - saveModel writes WORK/<arch>/temper_saved; temper loads that back (same check);
//   - applyLora (r 4, alpha 8, q_proj+v_proj or GPT-2's c_attn), lora_B re-drawn so the adapter
//     changes the output, saveAdapter writes WORK/<arch>/temper_adapter and the adapted logits go
//     to WORK/<arch>/temper_lora_logits.json (for PEFT to reproduce); loadAdapter on temper_saved
//     must give those logits back.
// One line per check: PASS|FAIL <arch> <check> maxdiff=<x> [note]; exit 1 on any FAIL.
// Usage, from the repo root after `npm run build`: node scripts/gpu/hf_interop.mjs WORK
// (temper runs on its default device: cpu, or TEMPER_DEVICE).
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as T from '../../dist/src/index.js';

const TOL = 1e-4;
const work = process.argv[2];
if (!work || process.argv.length > 3) {
  console.error('usage: node scripts/gpu/hf_interop.mjs WORK   (WORK made by python3 scripts/gpu/hf_interop.py WORK)');
  process.exit(2);
}
let failed = false;
function report(status, arch, check, diff, note = '') {
  if (status === 'FAIL') failed = true;
  const d = diff === undefined ? 'maxdiff=-' : `maxdiff=${Number.isNaN(diff) ? 'nan' : diff.toExponential(3)}`;
  console.log(`${status} ${arch} ${check} ${d}${note ? ` ${note}` : ''}`);
}

if (!existsSync(join(work, 'inputs.json'))) {
  console.log(`FAIL - find maxdiff=- no ${join(work, 'inputs.json')} (run python3 scripts/gpu/hf_interop.py ${work} first)`);
  process.exit(1);
}
const inputs = JSON.parse(readFileSync(join(work, 'inputs.json'), 'utf8'));
const [B, L] = [inputs.input_ids.length, inputs.input_ids[0].length];
const mask = inputs.attention_mask.flat();
const i32 = (rows) => T.fromArray(Int32Array.from(rows.flat()), [B, L]);

/** Logits (flat f32) and shape of `model` on the fixed batch. */
function logitsOf(model) {
  return T.noGrad(() =>
    T.scope(() => {
      const { logits } = model.forward({ inputIds: i32(inputs.input_ids), attentionMask: i32(inputs.attention_mask), positionIds: i32(inputs.position_ids) });
      return { shape: [...logits.shape], data: Float32Array.from(logits.toArray()) };
    }),
  );
}
const readLogits = (path) => {
  const j = JSON.parse(readFileSync(path, 'utf8'));
  return { shape: j.shape, data: Float32Array.from(j.data) };
};
const writeLogits = (path, l) => writeFileSync(path, JSON.stringify({ shape: l.shape, data: Array.from(l.data) }));

/** Max abs difference over real (mask 1) positions; NaN anywhere there gives NaN. */
function maxDiff(a, b) {
  if (a.shape.join() !== b.shape.join()) throw new Error(`logits shape [${a.shape}] vs [${b.shape}]`);
  const V = a.shape[a.shape.length - 1];
  let m = 0;
  for (let p = 0; p < B * L; p++) {
    if (!mask[p]) continue;
    for (let v = p * V; v < (p + 1) * V; v++) {
      const d = Math.abs(a.data[v] - b.data[v]);
      if (!(d <= m)) m = Number.isNaN(d) ? NaN : d;
      if (Number.isNaN(m)) return NaN;
    }
  }
  return m;
}
const verdict = (d) => (d < TOL ? 'PASS' : 'FAIL');

/** Runs one check; an exception is a FAIL with its message. Returns fn's value or null. */
function attempt(arch, check, fn) {
  try {
    return fn();
  } catch (e) {
    report('FAIL', arch, check, undefined, `${e?.name ?? 'Error'}: ${e?.message ?? e}`);
    if (process.env.HF_INTEROP_TRACE) console.error(e);
    return null;
  }
}

console.log(`# temper ${T.getDefaultDevice()} (node ${process.version}), work ${work}, tolerance ${TOL}`);
const quiet = { warn: (m) => console.log(`# temper warning: ${m}`) };
const archs = readdirSync(work, { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(join(work, e.name, 'hf', 'config.json')) && existsSync(join(work, e.name, 'hf_logits.json')))
  .map((e) => e.name)
  .sort();
if (archs.length === 0) report('FAIL', '-', 'find', undefined, `no WORK/<arch>/hf with hf_logits.json under ${work}`);

for (const arch of archs) {
  const dir = join(work, arch);
  const hfDir = join(dir, 'hf'), savedDir = join(dir, 'temper_saved'), adapterDir = join(dir, 'temper_adapter');
  for (const p of [savedDir, adapterDir, join(dir, 'temper_lora_logits.json')]) rmSync(p, { recursive: true, force: true });
  const ref = readLogits(join(dir, 'hf_logits.json'));

  const model = attempt(arch, 'temper-loads-hf', () => T.loadModelFromDir(hfDir, quiet));
  if (!model) continue;
  try {
    const base = attempt(arch, 'temper-loads-hf', () => {
      const l = logitsOf(model);
      const d = maxDiff(l, ref);
      report(verdict(d), arch, 'temper-loads-hf', d, `${model.constructor.name} ${model.config.architectures[0] ?? model.config.modelType}`);
      return l;
    });
    if (!base) continue;

    attempt(arch, 'temper-reloads-temper_saved', () => {
      T.saveModel(model, savedDir);
      const again = T.loadModelFromDir(savedDir, quiet);
      try {
        const d = maxDiff(logitsOf(again), ref);
        report(verdict(d), arch, 'temper-reloads-temper_saved', d);
      } finally {
        again.dispose();
      }
    });

    const targets = model.config.modelType === 'gpt2' ? ['c_attn'] : ['q_proj', 'v_proj'];
    const adapted = attempt(arch, 'temper-lora', () => {
      const lora = T.applyLora(model, { r: 4, lora_alpha: 8, target_modules: targets }, { seed: 11 });
      const g = new T.Generator(13);
      T.noGrad(() => T.scope(() => {
        for (const l of lora.layers.values()) T.assign(l.lora_B.weight, T.randn(l.lora_B.weight.shape, { std: 0.2, generator: g }));
      }));
      T.saveAdapter(lora, adapterDir, { baseModelNameOrPath: resolve(hfDir) });
      const l = logitsOf(model);
      writeLogits(join(dir, 'temper_lora_logits.json'), l);
      const effect = maxDiff(l, base);
      // The adapter must change the output, or PEFT's check would prove nothing.
      report(effect > 1e-3 ? 'PASS' : 'FAIL', arch, 'temper-lora-saved', undefined,
        `${lora.layers.size} layers (${targets.join(',')}), adapter effect ${effect.toExponential(3)}`);
      return l;
    });

    if (adapted) attempt(arch, 'temper-loads-temper_adapter', () => {
      const again = T.loadModelFromDir(savedDir, quiet);
      try {
        T.loadAdapter(again, adapterDir);
        const d = maxDiff(logitsOf(again), adapted);
        report(verdict(d), arch, 'temper-loads-temper_adapter', d);
      } finally {
        again.dispose();
      }
    });
  } finally {
    model.dispose();
  }
}
process.exit(failed ? 1 : 0);
