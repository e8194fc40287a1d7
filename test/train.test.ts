// The shared training loop and its parts: schedules against transformers' formulas, AdamW's
// no-decay groups, the accumulation invariant (8 x 1 == 1 x 8), exact resume from a
// checkpoint, checkpoint rotation, and the stop on a non-finite loss that names the step.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';
import { loadWeightsInto } from './helpers.js';
import { AdamW, EpochBatches, lrLambda, trainLoop, type TrainingConfig, type TrainerHooks } from '../src/train/index.js';

const fixture = fileURLToPath(new URL('../../test/fixtures/models/llama', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-train-'));

test('schedules follow transformers get_scheduler', () => {
  const c = (type: Parameters<typeof lrLambda>[0]['type'], warmupSteps = 2) => ({ type, warmupSteps, totalSteps: 10 });
  assert.deepEqual([0, 1, 2, 6, 10].map((s) => lrLambda(c('linear'), s)), [0, 0.5, 1, 0.5, 0]);
  assert.deepEqual([0, 1, 5].map((s) => lrLambda(c('constant'), s)), [1, 1, 1]);
  assert.deepEqual([0, 1, 5].map((s) => lrLambda(c('constant_with_warmup'), s)), [0, 0.5, 1]);
  const cos = [2, 6, 10].map((s) => lrLambda(c('cosine'), s));
  assert.ok(Math.abs(cos[0]! - 1) < 1e-12 && Math.abs(cos[1]! - 0.5) < 1e-12 && Math.abs(cos[2]!) < 1e-12);
  const wsd = { type: 'warmup_stable_decay' as const, warmupSteps: 2, totalSteps: 10, decaySteps: 4 };
  assert.deepEqual([1, 2, 5, 6].map((s) => lrLambda(wsd, s)), [0.5, 1, 1, 1]);
  assert.ok(Math.abs(lrLambda(wsd, 8) - 0.5) < 1e-12 && lrLambda(wsd, 10) < 1e-12);
});

test('AdamW decays matrices but not biases or norm weights', () => {
  const w = T.keep(T.ones([2, 2])), b = T.keep(T.ones([2]));
  w.requiresGrad = true;
  b.requiresGrad = true;
  w.grad = T.keep(T.zeros([2, 2]));
  b.grad = T.keep(T.zeros([2]));
  using opt = new AdamW([['layer.weight', w], ['layer.bias', b]], { lr: 0.1, weightDecay: 0.5 });
  opt.update(0.1);
  assert.deepEqual([...w.toArray()], [0.95, 0.95, 0.95, 0.95].map(Math.fround));
  assert.deepEqual([...b.toArray()], [1, 1]);
  w.dispose();
  b.dispose();
});

/** A causal-LM trainer over fixed random rows of the fixture llama: one micro-batch = `rows` rows. */
function hooksFor(model: T.CausalLM, rows: number[][], microRows: number, opts: { nanAt?: number } = {}): TrainerHooks<number[][]> {
  let calls = 0;
  return {
    model,
    paramGroups: [{ params: model.namedParameters() }],
    settings: { rows: rows.length, micro: microRows },
    source: new EpochBatches(() => Array.from({ length: Math.ceil(rows.length / microRows) }, (_, i) => rows.slice(i * microRows, (i + 1) * microRows))),
    normalizer: (b) => b.length * (b[0]!.length - 1),
    lossSum: (b) => {
      calls++;
      const ids = T.fromArray(Int32Array.from(b.flat()), [b.length, b[0]!.length]);
      const { logits } = model.forward({ inputIds: ids });
      const loss = T.crossEntropy(logits, T.shiftLabels(ids), { reduction: 'sum' });
      return { loss: opts.nanAt === calls ? T.mul(loss, NaN) : loss };
    },
    saveWeights: (dir) => T.saveModel(model, dir),
    loadWeights: (dir) => loadWeightsInto(model, dir),
  };
}

const rowsOf = (n: number, T_: number, seed: number) => {
  let s = seed;
  return Array.from({ length: n }, () => Array.from({ length: T_ }, () => 3 + ((s = (s * 1103515245 + 12345) >>> 0) % 120)));
};

function config(outputDir: string, over: Partial<TrainingConfig> = {}): TrainingConfig {
  return {
    outputDir, learningRate: 1e-2, lrSchedulerType: 'linear', warmupRatio: 0, warmupSteps: 0, weightDecay: 0.01, adamBeta1: 0.9,
    adamBeta2: 0.999, adamEpsilon: 1e-8, maxGradNorm: 1, gradientAccumulationSteps: 1, numTrainEpochs: 1, maxSteps: -1, loggingSteps: 1,
    evalStrategy: 'no', evalSteps: null, saveStrategy: 'no', saveSteps: 500, saveTotalLimit: null, seed: 0, skipNonfinite: false,
    resumeFromCheckpoint: null, ...over,
  };
}

test('batch 8 x accumulation 1 equals batch 1 x accumulation 8', async () => {
  const rows = rowsOf(8, 6, 1);
  const a = T.loadModelFromDir(fixture) as T.CausalLM, b = T.loadModelFromDir(fixture) as T.CausalLM;
  const ra = await trainLoop(config(tmp()), hooksFor(a, rows, 8));
  const rb = await trainLoop(config(tmp(), { gradientAccumulationSteps: 8 }), hooksFor(b, rows, 1));
  assert.equal(ra.globalStep, 1);
  assert.equal(rb.globalStep, 1);
  assert.ok(Math.abs(ra.logHistory[0]!.loss! - rb.logHistory[0]!.loss!) < 1e-6);
  const pb = new Map(b.namedParameters());
  for (const [n, p] of a.namedParameters()) {
    const x = p.toArray(), y = pb.get(n)!.toArray();
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
    assert.ok(m < 1e-6, `${n}: max diff ${m}`);
  }
  a.dispose();
  b.dispose();
});

test('a run resumed from its checkpoint logs the same losses as an uninterrupted run', async () => {
  const rows = rowsOf(12, 6, 2);
  const full = T.loadModelFromDir(fixture) as T.CausalLM;
  const fullRun = await trainLoop(config(tmp(), { numTrainEpochs: 2 }), hooksFor(full, rows, 2));
  assert.equal(fullRun.globalStep, 12);
  const out = tmp();
  const first = T.loadModelFromDir(fixture) as T.CausalLM;
  await trainLoop(config(out, { maxSteps: 7, saveStrategy: 'steps', saveSteps: 7, lrSchedulerType: 'constant' }), hooksFor(first, rows, 2));
  // A second process: fresh weights, resumed from checkpoint-7 (mid second epoch), schedule as the full run.
  const fullCfg = { numTrainEpochs: 2 };
  const resumed = T.loadModelFromDir(fixture) as T.CausalLM;
  const fullA = await trainLoop(config(tmp(), { ...fullCfg, lrSchedulerType: 'constant' }), hooksFor(T.loadModelFromDir(fixture) as T.CausalLM, rows, 2));
  const r = await trainLoop(config(out, { ...fullCfg, lrSchedulerType: 'constant', resumeFromCheckpoint: true }), hooksFor(resumed, rows, 2));
  assert.equal(r.globalStep, 12);
  const tail = r.logHistory.filter((e) => e.step > 7).map((e) => e.loss!);
  const ref = fullA.logHistory.filter((e) => e.step > 7).map((e) => e.loss!);
  assert.equal(tail.length, 5);
  tail.forEach((l, i) => assert.ok(Math.abs(l - ref[i]!) < 1e-6, `step ${8 + i}: ${l} vs ${ref[i]}`));
  const logged = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.deepEqual(logged, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  for (const m of [full, first, resumed]) m.dispose();
});

test('checkpoints rotate with save_total_limit and hold weights, optimizer and state', async () => {
  const out = tmp();
  const m = T.loadModelFromDir(fixture) as T.CausalLM;
  await trainLoop(config(out, { maxSteps: 4, saveStrategy: 'steps', saveSteps: 1, saveTotalLimit: 2 }), hooksFor(m, rowsOf(4, 5, 3), 1));
  assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('checkpoint')).sort(), ['checkpoint-3', 'checkpoint-4']);
  for (const f of ['model.safetensors', 'config.json', 'optimizer.safetensors', 'trainer_state.json']) assert.ok(existsSync(join(out, 'checkpoint-4', f)), f);
  assert.equal(JSON.parse(readFileSync(join(out, 'checkpoint-4', 'trainer_state.json'), 'utf8')).global_step, 4);
  m.dispose();
});

test('a non-finite loss stops with the step named, or is skipped with skip_nonfinite', async () => {
  const m = T.loadModelFromDir(fixture) as T.CausalLM;
  await assert.rejects(trainLoop(config(tmp(), { maxSteps: 3 }), hooksFor(m, rowsOf(3, 5, 4), 1, { nanAt: 2 })), /step 2: loss is not finite/);
  const r = await trainLoop(config(tmp(), { maxSteps: 3, skipNonfinite: true }), hooksFor(m, rowsOf(3, 5, 4), 1, { nanAt: 2 }));
  assert.equal(r.globalStep, 3);
  assert.equal(r.logHistory[1]!.skipped_steps, 1);
  m.dispose();
});

test('report.html is self-contained: inline SVG charts of the logged metrics, the config, no scripts or URLs', async () => {
  const out = tmp();
  const m = T.loadModelFromDir(fixture) as T.CausalLM;
  await trainLoop(config(out, { maxSteps: 4 }), hooksFor(m, rowsOf(4, 5, 5), 1));
  m.dispose();
  const { writeReport } = await import('../src/train/index.js');
  const path = writeReport(out, 'a <test> run');
  const html = readFileSync(path, 'utf8');
  assert.match(html, /<title>a &lt;test&gt; run<\/title>/);
  for (const c of ['loss', 'learning rate', 'gradient norm', 'throughput']) assert.match(html, new RegExp(`<figcaption>${c}`));
  assert.equal((html.match(/<svg /g) ?? []).length, 4, 'no eval chart without eval metrics');
  assert.doesNotMatch(html, /<script|https?:\/\//);
  assert.match(html, /<th>steps<\/th><td>4<\/td>/);
});

test('report.html renders in headless Chromium (when installed)', async (t) => {
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  if (!chromium) return t.skip('chromium not installed');
  const out = tmp();
  const m = T.loadModelFromDir(fixture) as T.CausalLM;
  await trainLoop(config(out, { maxSteps: 6 }), hooksFor(m, rowsOf(6, 5, 6), 1));
  m.dispose();
  const { writeReport } = await import('../src/train/index.js');
  const page = writeReport(out);
  const png = join(out, 'shot.png');
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(chromium, ['--headless', '--no-sandbox', '--disable-gpu', `--screenshot=${png}`, '--window-size=1000,900', `file://${page}`], { timeout: 60_000 });
  assert.equal(r.status, 0, String(r.stderr));
  const bytes = readFileSync(png);
  assert.equal(bytes.subarray(1, 4).toString(), 'PNG');
  assert.ok(bytes.length > 20_000, `a page with charts, not a blank one (${bytes.length} bytes)`);
});
