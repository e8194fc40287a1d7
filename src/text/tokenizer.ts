// Hugging Face tokenizers from a model folder (tokenizer.json + tokenizer_config.json), on
// top of @huggingface/tokenizers, with the special-token bookkeeping transformers and TRL do
// (BOS/EOS/PAD ids, pad falling back to EOS, named chat templates, stop ids for generation).
// Not a tokenizer implementation of its own and not a trainer of tokenizers.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { TemperError } from '../tensor/index.js';
import { readJsonFile as readJson } from '../io/index.js';
import { templateEndOfTurn } from './chat_template.js';

export interface EncodeOptions {
  /** Add the special tokens of tokenizer.json's post_processor (e.g. BOS). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, `<|im_end|>`, …) from the output. Default false. */
  skipSpecialTokens?: boolean;
}

/** The special-token names transformers passes to chat templates (`special_tokens_map`). */
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;
type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

interface AddedTokenJson { id: number; content: string; special?: boolean }
interface TokenizerJson {
  model: { type?: string; byte_fallback?: boolean; vocab: unknown };
  added_tokens?: AddedTokenJson[];
  decoder?: unknown;
  normalizer?: unknown;
  pre_tokenizer?: unknown;
}

/** How a vocabulary entry maps back to the bytes of the text it covers (for offsets). */
type PieceKind = 'byte_level' | 'sentencepiece' | null;

function readJsonFile(path: string, required: true): unknown;
function readJsonFile(path: string, required: false): unknown | undefined;
function readJsonFile(path: string, required: boolean): unknown {
  if (!existsSync(path)) {
    if (!required) return undefined;
    throw new TemperError(`${path}: not found (a Hugging Face tokenizer folder has tokenizer.json and tokenizer_config.json)`);
  }
  return readJson(path);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** A special token in a config is a string, an AddedToken dict `{content, …}`, or null. */
function tokenContent(x: unknown): string | null {
  if (typeof x === 'string') return x;
  if (isObject(x) && typeof x.content === 'string') return x.content;
  return null;
}

/** Every `type` in a (possibly nested Sequence) tokenizer.json component. */
function componentTypes(c: unknown): string[] {
  if (!isObject(c)) return [];
  const out = typeof c.type === 'string' ? [c.type] : [];
  for (const key of ['decoders', 'normalizers', 'pretokenizers', 'processors']) {
    const list = c[key];
    if (Array.isArray(list)) for (const x of list) out.push(...componentTypes(x));
  }
  return out;
}

/** GPT-2's bytes_to_unicode, inverted: the printable char a byte-level BPE uses → the byte. */
function byteLevelDecoder(): Map<string, number> {
  const bs: number[] = [];
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
  return new Map(bs.map((b, i) => [String.fromCharCode(cs[i]!), b]));
}

const utf8 = new TextEncoder();

/**
 * A Hugging Face tokenizer loaded from a model folder.
 *
 * @example
 * const tok = await Tokenizer.fromDir('models/Qwen3-0.6B');
 * tok.encode('Hello world');          // [9707, 1879]
 * tok.decode([9707, 1879]);           // 'Hello world'
 * tok.padTokenId;                     // 151643 (<|endoftext|>)
 */
export class Tokenizer {
  /** The folder it was loaded from (or '' when built from objects). */
  readonly dir: string;
  /** Number of distinct tokens, added tokens included (transformers' `len(tokenizer)`). */
  readonly vocabSize: number;
  /** Largest token id + 1: the smallest embedding matrix that covers every id. */
  readonly maxTokenId: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly unkToken: string | null;
  /** The pad token after TRL's fallback: EOS when the config names none. */
  readonly padToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly unkTokenId: number | null;
  readonly padTokenId: number | null;
  /** True when the config names no pad token and PAD was set to EOS (as TRL does). */
  readonly padTokenFallback: boolean;
  /** The default chat template, or null when the folder has none. */
  readonly chatTemplate: string | null;
  /** Named chat templates (a list `[{name, template}]` in tokenizer_config.json); 'default' included. */
  readonly chatTemplates: Readonly<Record<string, string>>;
  /** `special_tokens_map` as transformers passes it to chat templates (bos_token, eos_token, …). */
  readonly specialTokensMap: Readonly<Record<string, string | string[]>>;
  /** Contents of the added tokens marked special (plus additional_special_tokens). */
  readonly specialTokens: readonly string[];
  /** eos_token_id of generation_config.json (a number or a list), when the folder has one. */
  readonly generationEosTokenIds: readonly number[];

  private readonly hf: HFTokenizer;
  private readonly specialIds: Set<number>;
  private readonly addedById: Map<number, string>;
  private readonly pieceKind: PieceKind;
  private readonly byteFallback: boolean;
  private readonly pieceBytes = new Map<number, Uint8Array>();
  private eosIdsCache: number[] | null = null;

  /**
   * Builds a tokenizer from parsed files. `config` is tokenizer_config.json; `specialTokensMap`
   * (special_tokens_map.json) overrides its special tokens, as in transformers.
   */
  constructor(
    tokenizerJson: unknown,
    config: unknown,
    opts: { specialTokensMap?: unknown; chatTemplate?: string; namedChatTemplates?: Record<string, string>; generationConfig?: unknown; dir?: string } = {},
  ) {
    const where = opts.dir ?? 'tokenizer';
    if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
      throw new TemperError(`${join(where, 'tokenizer.json')}: not a tokenizer.json (no "model" object)`);
    }
    if (!isObject(config)) throw new TemperError(`${join(where, 'tokenizer_config.json')}: expected a JSON object`);
    const tj = tokenizerJson as unknown as TokenizerJson;
    const cfg: Record<string, unknown> = { ...config };
    const stm = isObject(opts.specialTokensMap) ? opts.specialTokensMap : {};
    for (const [k, v] of Object.entries(stm)) if (v !== null && v !== undefined) cfg[k] = v;
    // transformers ≥ 4.45 defaults clean_up_tokenization_spaces to false; the JS library to true.
    cfg.clean_up_tokenization_spaces = cfg.clean_up_tokenization_spaces ?? false;
    if (Array.isArray(cfg.additional_special_tokens)) {
      cfg.additional_special_tokens = cfg.additional_special_tokens.map(tokenContent).filter((x): x is string => x !== null);
    }
    this.dir = opts.dir ?? '';
    try {
      this.hf = new HFTokenizer(tj, cfg);
    } catch (e) {
      throw new TemperError(`${join(where, 'tokenizer.json')}: unsupported tokenizer (${(e as Error).message})`);
    }

    this.addedById = new Map();
    this.specialIds = new Set();
    const special: string[] = [];
    for (const t of tj.added_tokens ?? []) {
      this.addedById.set(t.id, t.content);
      if (t.special) {
        this.specialIds.add(t.id);
        special.push(t.content);
      }
    }
    for (const t of (cfg.additional_special_tokens as string[] | undefined) ?? []) {
      const id = this.hf.token_to_id(t);
      if (id !== undefined && !this.specialIds.has(id)) {
        this.specialIds.add(id);
        special.push(t);
      }
    }

    const vocab = this.hf.get_vocab(true);
    this.vocabSize = vocab.size;
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.maxTokenId = maxId + 1;

    const tok = (k: SpecialTokenKey) => tokenContent(cfg[k]);
    const idOf = (t: string | null) => (t === null ? null : this.hf.token_to_id(t) ?? null);
    this.bosToken = tok('bos_token');
    this.eosToken = tok('eos_token');
    this.unkToken = tok('unk_token');
    const pad = tok('pad_token');
    this.padTokenFallback = pad === null && this.eosToken !== null;
    this.padToken = pad ?? this.eosToken;
    this.bosTokenId = idOf(this.bosToken);
    this.eosTokenId = idOf(this.eosToken);
    this.unkTokenId = idOf(this.unkToken);
    this.padTokenId = idOf(this.padToken);

    // transformers counts the configured special tokens as special whatever tokenizer.json says.
    for (const k of SPECIAL_TOKEN_KEYS) {
      const id = idOf(tok(k));
      if (id !== null && !this.specialIds.has(id)) {
        this.specialIds.add(id);
        special.push(tok(k)!);
      }
    }
    this.specialTokens = special;

    const map: Record<string, string | string[]> = {};
    for (const k of SPECIAL_TOKEN_KEYS) {
      // The map the template sees is the configured one: no pad fallback there (as in transformers).
      const v = tok(k);
      if (v !== null) map[k] = v;
    }
    if (Array.isArray(cfg.additional_special_tokens) && cfg.additional_special_tokens.length > 0) {
      map.additional_special_tokens = cfg.additional_special_tokens as string[];
    }
    this.specialTokensMap = map;

    // Chat templates: a string, or a list of {name, template}; chat_template.jinja overrides.
    const named: Record<string, string> = {};
    const ct = cfg.chat_template;
    if (typeof ct === 'string') named.default = ct;
    else if (Array.isArray(ct)) {
      for (const item of ct) {
        if (!isObject(item) || typeof item.name !== 'string' || typeof item.template !== 'string') {
          throw new TemperError(`${join(where, 'tokenizer_config.json')}: chat_template list entries must be {name, template} strings`);
        }
        named[item.name] = item.template;
      }
    } else if (ct !== undefined && ct !== null) {
      throw new TemperError(`${join(where, 'tokenizer_config.json')}: chat_template must be a string or a list of {name, template}`);
    }
    Object.assign(named, opts.namedChatTemplates ?? {});
    if (opts.chatTemplate !== undefined) named.default = opts.chatTemplate;
    this.chatTemplates = named;
    this.chatTemplate = named.default ?? null;

    const gen = isObject(opts.generationConfig) ? opts.generationConfig.eos_token_id : undefined;
    this.generationEosTokenIds = typeof gen === 'number' ? [gen] : Array.isArray(gen) ? gen.filter((x): x is number => Number.isInteger(x)) : [];

    const decoderTypes = componentTypes(tj.decoder);
    const splitTypes = [...componentTypes(tj.normalizer), ...componentTypes(tj.pre_tokenizer), ...decoderTypes];
    this.pieceKind = decoderTypes.includes('ByteLevel')
      ? 'byte_level'
      : tj.model.type === 'BPE' && (splitTypes.includes('Metaspace') || splitTypes.includes('Replace'))
        ? 'sentencepiece'
        : null;
    this.byteFallback = tj.model.byte_fallback === true;
  }

  /**
   * Loads tokenizer.json, tokenizer_config.json and, when present, special_tokens_map.json,
   * chat_template.jinja (overrides the config's template), chat_template.json,
   * additional_chat_templates/*.jinja and generation_config.json from a model folder.
   * A path to a tokenizer.json file is taken as its folder.
   */
  static async fromDir(dir: string): Promise<Tokenizer> {
    if (!existsSync(dir)) throw new TemperError(`${dir}: no such tokenizer folder`);
    if (statSync(dir).isFile()) {
      if (basename(dir) !== 'tokenizer.json') throw new TemperError(`${dir}: expected a folder with tokenizer.json, or tokenizer.json itself`);
      dir = dirname(dir);
    }
    const tokenizerJson = readJsonFile(join(dir, 'tokenizer.json'), true);
    const config = readJsonFile(join(dir, 'tokenizer_config.json'), true);
    const specialTokensMap = readJsonFile(join(dir, 'special_tokens_map.json'), false);
    const generationConfig = readJsonFile(join(dir, 'generation_config.json'), false);
    let chatTemplate: string | undefined;
    const namedChatTemplates: Record<string, string> = {};
    const ctJson = readJsonFile(join(dir, 'chat_template.json'), false);
    if (ctJson !== undefined) {
      const t = isObject(ctJson) ? ctJson.chat_template : undefined;
      if (typeof t !== 'string') throw new TemperError(`${join(dir, 'chat_template.json')}: expected {"chat_template": "<template>"}`);
      chatTemplate = t;
    }
    const jinjaPath = join(dir, 'chat_template.jinja');
    if (existsSync(jinjaPath)) chatTemplate = readFileSync(jinjaPath, 'utf8');
    const extraDir = join(dir, 'additional_chat_templates');
    if (existsSync(extraDir) && statSync(extraDir).isDirectory()) {
      for (const f of readdirSync(extraDir)) {
        if (f.endsWith('.jinja')) namedChatTemplates[f.slice(0, -'.jinja'.length)] = readFileSync(join(extraDir, f), 'utf8');
      }
    }
    return new Tokenizer(tokenizerJson, config, { specialTokensMap, chatTemplate, namedChatTemplates, generationConfig, dir });
  }

  /** Token ids of `text`; special tokens written in the text (e.g. `<|im_end|>`) map to their ids. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TemperError(`encode: expected a string, got ${typeof text}`);
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  encodeBatch(texts: readonly string[], opts: EncodeOptions = {}): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  /** Text of `ids`. Byte-level pieces that do not form whole UTF-8 characters decode to U+FFFD. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.maxTokenId) {
        throw new TemperError(`decode: token id ${id} is outside the vocabulary [0, ${this.maxTokenId})`);
      }
    }
    const kept = opts.skipSpecialTokens ? ids.filter((id) => !this.specialIds.has(id)) : [...ids];
    if (kept.length === 0) return '';
    return this.hf.decode(kept, { skip_special_tokens: false });
  }

  /** The id of a vocabulary entry or added token (`'Ġworld'`, `'<|im_end|>'`), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** The vocabulary entry of an id (byte-level form, e.g. `'Ġworld'`), or undefined. */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** True when PAD and EOS are the same token (set that way or by the fallback): collators must not mask EOS as padding. */
  get padTokenIsEos(): boolean {
    return this.padTokenId !== null && this.padTokenId === this.eosTokenId;
  }

  /** Whether `id` is a special token (skipped by `decode(…, {skipSpecialTokens: true})`). */
  isSpecialId(id: number): boolean {
    return this.specialIds.has(id);
  }

  /**
   * Ids that end a generation: EOS, generation_config.json's eos_token_id, and the
   * end-of-turn token the chat template writes after an assistant message (e.g. `<|eot_id|>`).
   */
  get eosTokenIds(): number[] {
    if (this.eosIdsCache) return this.eosIdsCache;
    const ids = new Set<number>();
    if (this.eosTokenId !== null) ids.add(this.eosTokenId);
    for (const id of this.generationEosTokenIds) ids.add(id);
    if (this.chatTemplate !== null) {
      const eot = templateEndOfTurn(this);
      const id = eot === null ? undefined : this.tokenToId(eot);
      if (id !== undefined) ids.add(id);
    }
    this.eosIdsCache = [...ids];
    return this.eosIdsCache;
  }

  /**
   * The chat template to use: `nameOrTemplate` may be a template name, a template text, or
   * absent (then 'tool_use' when tools are given and such a template exists, else 'default'),
   * as transformers' get_chat_template.
   */
  getChatTemplate(nameOrTemplate?: string, opts: { tools?: unknown[] | null } = {}): string {
    const names = Object.keys(this.chatTemplates);
    if (nameOrTemplate !== undefined) return this.chatTemplates[nameOrTemplate] ?? nameOrTemplate;
    if (opts.tools && this.chatTemplates.tool_use !== undefined) return this.chatTemplates.tool_use;
    if (this.chatTemplate !== null) return this.chatTemplate;
    if (names.length > 0) {
      throw new TemperError(`${this.dir || 'tokenizer'}: several chat templates (${names.sort().join(', ')}) and none named 'default'; pass a template name`);
    }
    throw new TemperError(`${this.dir || 'tokenizer'}: no chat template (tokenizer_config.json has no chat_template and there is no chat_template.jinja)`);
  }

  /**
   * Character offsets [start, end) in `text` of each token of `ids` (the encoding of `text`
   * without special tokens), from the bytes each piece stands for. Returns null when the
   * pieces do not spell `text` byte for byte (a normalizer changed it, a Metaspace prefix, an
   * unknown token), so callers can fall back to another method.
   */
  charOffsets(text: string, ids: readonly number[]): Array<[number, number]> | null {
    if (this.pieceKind === null) return null;
    const bytes = utf8.encode(text);
    // byteToChar[b] = index in `text` (UTF-16 units) of the character that byte b belongs to.
    const byteToChar = new Int32Array(bytes.length + 1);
    let b = 0;
    for (let c = 0; c < text.length; ) {
      const cp = text.codePointAt(c)!;
      const units = cp > 0xffff ? 2 : 1;
      const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      for (let k = 0; k < n; k++) byteToChar[b + k] = c;
      b += n;
      c += units;
    }
    byteToChar[bytes.length] = text.length;
    const out: Array<[number, number]> = [];
    let pos = 0;
    for (const id of ids) {
      const piece = this.bytesOf(id);
      if (piece === null || pos + piece.length > bytes.length) return null;
      for (let k = 0; k < piece.length; k++) if (bytes[pos + k] !== piece[k]) return null;
      const start = byteToChar[pos]!;
      pos += piece.length;
      // A piece ending inside a multi-byte character covers that whole character.
      const end = pos === bytes.length || byteToChar[pos] !== byteToChar[pos - 1] ? byteToChar[pos]! : nextChar(text, byteToChar[pos]!);
      out.push([start, piece.length === 0 ? start : end]);
    }
    return pos === bytes.length ? out : null;
  }

  /** The bytes of text one token stands for, or null when unknown. */
  private bytesOf(id: number): Uint8Array | null {
    const cached = this.pieceBytes.get(id);
    if (cached) return cached;
    const added = this.addedById.get(id);
    let out: Uint8Array | null;
    if (added !== undefined) out = utf8.encode(added);
    else {
      const piece = this.hf.id_to_token(id);
      if (piece === undefined) return null;
      if (this.pieceKind === 'byte_level') {
        const arr = new Uint8Array(piece.length);
        for (let i = 0; i < piece.length; i++) {
          const v = BYTE_DECODER.get(piece[i]!);
          if (v === undefined) return null;
          arr[i] = v;
        }
        out = arr;
      } else {
        const m = this.byteFallback ? /^<0x([0-9A-Fa-f]{2})>$/.exec(piece) : null;
        out = m ? Uint8Array.of(parseInt(m[1]!, 16)) : utf8.encode(piece.replaceAll('\u2581', ' '));
      }
    }
    this.pieceBytes.set(id, out);
    return out;
  }
}

const BYTE_DECODER = byteLevelDecoder();

function nextChar(text: string, c: number): number {
  return c + ((text.codePointAt(c) ?? 0) > 0xffff ? 2 : 1);
}
