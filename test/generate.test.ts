// Generation: the KV-cache path reproduces full recomputation (reference greedy tokens,
// log-probabilities), sampling filters select exactly transformers' token sets, seeded
// sampling is reproducible, and stop tokens / stop strings / early-finish compaction work.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';

const root = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const load = (name: string) => T.loadModelFromDir(join(root, name)) as T.CausalLM;
const greedyFixture = (name: string) =>
  (JSON.parse(readFileSync(join(root, name, 'expected.json'), 'utf8')) as { greedy: { prompt_ids: number[][]; max_new_tokens: number; tokens: number[][] } }).greedy;

for (const name of ['llama', 'smollm', 'llama3', 'mistral', 'qwen2', 'qwen3', 'gpt2']) {
  test(`${name}: KV-cache greedy generation equals the reference continuation`, () => {
    const model = load(name);
    const g = greedyFixture(name);
    const out = T.generate(model, g.prompt_ids, { temperature: 0, maxNewTokens: g.max_new_tokens, stopTokenIds: [] });
    assert.deepEqual(out.map((o) => o.tokens), g.tokens);
    assert.ok(out.every((o) => o.finishReason === 'length'));
    model.dispose();
  });
}

test('prompts of different lengths in one batch generate what each generates alone', () => {
  const model = load('qwen3');
  const prompts = [[5, 17, 33], [9, 8, 7, 6, 5, 4, 3], [100]];
  const batch = T.generate(model, prompts, { temperature: 0, maxNewTokens: 6, stopTokenIds: [] });
  prompts.forEach((p, i) => {
    const [alone] = T.generate(model, [p], { temperature: 0, maxNewTokens: 6, stopTokenIds: [] });
    assert.deepEqual(batch[i]!.tokens, alone!.tokens, `row ${i}`);
    batch[i]!.logprobs.forEach((lp, j) => assert.ok(Math.abs(lp - alone!.logprobs[j]!) < 1e-4));
  });
  model.dispose();
});

test('log-probabilities equal log_softmax of a full forward over prompt + completion', () => {
  const model = load('llama');
  const prompt = [11, 22, 33, 44];
  const [g] = T.generate(model, [prompt], { temperature: 0.7, maxNewTokens: 5, seed: 3, stopTokenIds: [] });
  T.noGrad(() => T.scope(() => {
    const seq = [...prompt, ...g!.tokens];
    const { logits } = model.forward({ inputIds: T.fromArray(Int32Array.from(seq), [1, seq.length]) });
    const lp = T.logSoftmax(T.div(logits, 0.7), -1).toArray();
    const V = model.config.vocabSize;
    g!.tokens.forEach((tok, j) => {
      const ref = lp[(prompt.length - 1 + j) * V + tok]!;
      assert.ok(Math.abs(ref - g!.logprobs[j]!) < 1e-4, `step ${j}: ${g!.logprobs[j]} vs ${ref}`);
    });
  }));
  model.dispose();
});

test('seeded sampling is reproducible, seed-dependent, and a row does not depend on its batch', () => {
  const model = load('smollm');
  const prompts = [[3, 4, 5], [60, 61]];
  const opts = { temperature: 1.5, maxNewTokens: 12, seed: 7, stopTokenIds: [] };
  const a = T.generate(model, prompts, opts);
  const b = T.generate(model, prompts, opts);
  assert.deepEqual(a, b);
  const c = T.generate(model, prompts, { ...opts, seed: 8 });
  assert.notDeepEqual(a.map((g) => g.tokens), c.map((g) => g.tokens));
  const [alone] = T.generate(model, [prompts[0]!], opts);
  assert.deepEqual(alone!.tokens, a[0]!.tokens);
  // top_k = 1, min_p = 1 and a tiny top_p all reduce sampling to greedy.
  const greedy = T.generate(model, prompts, { temperature: 0, maxNewTokens: 12, stopTokenIds: [] });
  for (const f of [{ topK: 1 }, { minP: 1 }, { topP: 1e-6 }]) {
    assert.deepEqual(T.generate(model, prompts, { ...opts, ...f }).map((g) => g.tokens), greedy.map((g) => g.tokens), JSON.stringify(f));
  }
  model.dispose();
});

test('sampling filters keep exactly the token sets transformers keeps', () => {
  const opts = (o: T.SamplingOptions) => T.checkSampling({ temperature: 1, ...o });
  // softmax([3, 2, 1, 0]) = [0.644, 0.237, 0.087, 0.032]
  const support = (o: T.SamplingOptions, logits = [3, 2, 1, 0]) => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(T.pickToken(Float32Array.from(logits), opts(o), [], i / 200).token);
    return [...seen].sort();
  };
  assert.deepEqual(support({}), [0, 1, 2, 3]);
  assert.deepEqual(support({ topK: 3 }), [0, 1, 2]);
  assert.deepEqual(support({ topP: 0.7 }), [0, 1]); // mass above token 1 is 0.644 < 0.7; above token 2 is 0.881
  assert.deepEqual(support({ topP: 0.9 }), [0, 1, 2]);
  assert.deepEqual(support({ minP: 0.3 }), [0, 1]); // keeps p >= 0.3 * 0.644
  assert.deepEqual(support({ topK: 3, topP: 0.95 }), [0, 1, 2]); // top_p renormalizes over the top 3: [0.665, 0.245, 0.090]
  assert.deepEqual(support({ topK: 3, topP: 0.85 }), [0, 1]); // mass above token 2 is 0.910
  // The draw is an inverse CDF over the kept tokens: u below 0.644 / 0.881 picks token 0.
  assert.equal(T.pickToken(Float32Array.of(3, 2, 1, 0), opts({ topP: 0.7 }), [], 0.72).token, 0);
  assert.equal(T.pickToken(Float32Array.of(3, 2, 1, 0), opts({ topP: 0.7 }), [], 0.74).token, 1);
  // CTRL repetition penalty: positive logits divided, negative multiplied.
  const pen = T.pickToken(Float32Array.of(2, -1, 1.5), T.checkSampling({ temperature: 0, repetitionPenalty: 2 }), [0, 1], 0);
  assert.equal(pen.token, 2);
  const lp = T.pickToken(Float32Array.of(3, 2, 1, 0), opts({ topK: 1 }), [], 0.5).logprob;
  assert.ok(Math.abs(lp - (3 - Math.log(Math.exp(3) + Math.exp(2) + Math.exp(1) + 1))) < 1e-6, 'logprob before truncation');
  assert.throws(() => T.checkSampling({ topP: 0 }), /top_p must be in \(0, 1\]/);
  assert.throws(() => T.checkSampling({ temperature: -1 }), /temperature must be >= 0/);
});

test('stop tokens end rows early (compacting the batch) without changing the others', () => {
  const model = load('mistral');
  const prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14]];
  const free = T.generate(model, prompts, { temperature: 0, maxNewTokens: 10, stopTokenIds: [] });
  const stop = free[0]!.tokens[2]!;
  const stopped = T.generate(model, prompts, { temperature: 0, maxNewTokens: 10, stopTokenIds: [stop] });
  stopped.forEach((g, i) => {
    const full = free[i]!.tokens;
    const at = full.indexOf(stop);
    const want = at >= 0 ? full.slice(0, at + 1) : full;
    assert.deepEqual(g.tokens, want, `row ${i}`);
    assert.equal(g.finishReason, at >= 0 ? 'stop' : 'length');
  });
  assert.equal(stopped[0]!.tokens.length, 3);
  model.dispose();
});

test('stop strings cut the text; the tokenizer decodes completions without the stop token', () => {
  const model = load('llama');
  // A stand-in decoder: token i is the letter for i mod 26, and id 2 is a special token.
  const decoder: T.Decoder = { decode: (ids, o) => ids.filter((i) => !(o?.skipSpecialTokens && i === 2)).map((i) => String.fromCharCode(97 + (i % 26))).join('') };
  const [free] = T.generate(model, [[5, 6, 7]], { temperature: 0, maxNewTokens: 8, stopTokenIds: [], tokenizer: decoder });
  assert.equal(free!.text, decoder.decode(free!.tokens));
  const stopStr = free!.text!.slice(3, 5);
  const [cut] = T.generate(model, [[5, 6, 7]], { temperature: 0, maxNewTokens: 8, stopTokenIds: [], tokenizer: decoder, stopStrings: [stopStr] });
  assert.equal(cut!.finishReason, 'stop');
  assert.equal(cut!.text, free!.text!.slice(0, free!.text!.indexOf(stopStr)));
  assert.throws(() => T.generate(model, [[1]], { stopStrings: ['x'] }), /stop strings need a tokenizer/);
  assert.throws(() => T.generate(model, [[]]), /prompt 0 is empty/);
  model.dispose();
});

test('generation frees its cache and temporaries', () => {
  const model = load('gpt2');
  T.generate(model, [[1, 2, 3], [4]], { maxNewTokens: 4, seed: 1 });
  const live = T.memoryStats().liveBytes;
  T.generate(model, [[1, 2, 3], [4]], { maxNewTokens: 4, seed: 1 });
  assert.equal(T.memoryStats().liveBytes, live);
  model.dispose();
});

test('picking on the device (GPU decoding path) agrees with the host sampler', async () => {
  const { devicePicks } = await import('../src/generate/generate.js');
  const { pickFromProbs, softmaxRow, checkSampling } = await import('../src/generate/sampler.js');
  const R = 6, V = 1000;
  const logits = T.mul(T.randn([R, V], { generator: new T.Generator(5) }), 3);
  const host = logits.toArray() as Float32Array;
  let s = 12345;
  const us = Array.from({ length: R }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296));
  for (const temperature of [0, 1, 0.7]) {
    const o = checkSampling({ temperature });
    const got = devicePicks(logits, temperature, us);
    for (let i = 0; i < R; i++) {
      const want = pickFromProbs(softmaxRow(host.slice(i * V, (i + 1) * V), temperature), o, us[i]!);
      assert.equal(got[i]!.token, want.token, `T=${temperature} row ${i}`);
      assert.ok(Math.abs(got[i]!.logprob - want.logprob) < 1e-5, `T=${temperature} row ${i}: logprob ${got[i]!.logprob} vs ${want.logprob}`);
    }
  }
  logits.dispose();
});
