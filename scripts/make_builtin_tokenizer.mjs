#!/usr/bin/env node
// Trains the byte-level BPE tokenizer of builtin:tiny on the built-in corpus and writes a
// standard Hugging Face tokenizer.json + tokenizer_config.json into assets/builtin/tiny/.
// GPT-2 style: ByteLevel pre-tokenizer (GPT-2 regex, no prefix space) and decoder, no
// normalizer, so any text round-trips through its bytes. Merges come from a plain
// count-and-merge loop (most frequent adjacent pair, ties broken by the pair's text); pairs
// with a digit are never merged, so every number is spelled one digit per token, which is
// what lets a tiny model learn carries. Not a general-purpose tokenizer: 512 tokens in all.
// Usage: node scripts/make_builtin_tokenizer.mjs   (after make_builtin_data.mjs)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, baseDocument, chatSplits, makeRng } from './make_builtin_data.mjs';

const OUT = join(ROOT, 'assets/builtin/tiny');
/** Total size: 256 bytes + merges + SPECIAL. */
const VOCAB_SIZE = 512;
const SPECIAL = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|pad|>'];
export const CHAT_TEMPLATE =
  "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" +
  '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
/** GPT-2's pre-tokenization regex (what ByteLevel use_regex applies). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's bytes_to_unicode: byte -> the printable character that stands for it. */
function bytesToUnicode() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Array(256);
  bs.forEach((b, i) => (out[b] = String.fromCharCode(cs[i])));
  return out;
}
const BYTE_CHAR = bytesToUnicode();
const DIGIT_CHARS = new Set('0123456789');
const hasDigit = (s) => [...s].some((c) => DIGIT_CHARS.has(c));

/** Common English words, so text outside the corpus does not fall to single bytes everywhere. */
const COMMON =
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not ' +
  'what all were we when your can said there use an each which she do how their if will up other about out many then ' +
  'them these so some her would make like him into time has look two more write go see number no way could people my ' +
  'than first water been call who oil its now find long down day did get come made may part hello world yes please thank ' +
  'question answer system user assistant model text data train test';

/** The training text: base documents, the chat train split's turns (role names included), COMMON twice. */
function corpus() {
  const rng = makeRng(99);
  const texts = Array.from({ length: 4000 }, () => baseDocument(rng));
  texts.push(COMMON, COMMON);
  for (const m of chatSplits().train) for (const t of m) texts.push(`${t.role}\n${t.content}`);
  return texts;
}

/** word (as byte-level chars) -> count, from GPT-2 pre-tokenization. */
function wordCounts(texts) {
  const enc = new TextEncoder();
  const counts = new Map();
  for (const t of texts) {
    for (const m of t.matchAll(GPT2_SPLIT)) {
      const w = [...enc.encode(m[0])].map((b) => BYTE_CHAR[b]).join('');
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  return counts;
}

/** Learns up to `n` merges; stops early when no pair occurs twice. */
function learnMerges(counts, n) {
  const words = [...counts].map(([w, c]) => ({ syms: [...w], c }));
  const merges = [];
  while (merges.length < n) {
    const pairs = new Map();
    for (const { syms, c } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        if (hasDigit(syms[i]) || hasDigit(syms[i + 1])) continue;
        const k = `${syms[i]} ${syms[i + 1]}`;
        pairs.set(k, (pairs.get(k) ?? 0) + c);
      }
    }
    let best = null, bestCount = 1;
    for (const [k, c] of pairs) if (c > bestCount || (c === bestCount && best !== null && k < best)) [best, bestCount] = [k, c];
    if (best === null) break;
    merges.push(best);
    const [a, b] = best.split(' ');
    for (const w of words) {
      const s = w.syms;
      const out = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(s[i]);
      }
      w.syms = out;
    }
  }
  return merges;
}

function main() {
  const merges = learnMerges(wordCounts(corpus()), VOCAB_SIZE - 256 - SPECIAL.length);
  const vocab = {};
  // Byte tokens in byte order (id = byte value), then merges in rank order.
  for (let b = 0; b < 256; b++) vocab[BYTE_CHAR[b]] = b;
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  const base = Object.keys(vocab).length;
  const added = SPECIAL.map((content, i) => ({ id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const config = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...t }) => [String(id), t])),
    bos_token: null,
    eos_token: '<|endoftext|>',
    pad_token: '<|pad|>',
    unk_token: null,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    errors: 'replace',
    model_max_length: 256,
    split_special_tokens: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'tokenizer.json'), JSON.stringify(tokenizer, null, 2) + '\n');
  writeFileSync(join(OUT, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
  process.stdout.write(`wrote ${OUT}/tokenizer.json: ${base} BPE tokens (${merges.length} merges) + ${SPECIAL.length} special = ${base + SPECIAL.length}\n`);
}

main();
