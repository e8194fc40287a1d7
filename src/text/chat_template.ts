// Chat templates: renders a model's Jinja chat template with @huggingface/jinja the way
// transformers' apply_chat_template does (same variables, raise_exception, strftime_now), and
// tokenizes the result with a mask of the assistant tokens for assistant-only SFT losses.
// Not a Jinja engine and not a template editor: templates run as the model ships them.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { TemperError } from '../tensor/index.js';
import type { Tokenizer } from './tokenizer.js';

/** One part of a multimodal message (`{type: 'text', text}`, `{type: 'image'}`, …). */
export interface ChatContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** A chat message as transformers takes it; extra keys (tool_calls, reasoning_content, …) reach the template. */
export interface ChatMessage {
  role: string;
  content?: string | ChatContentPart[] | null;
  [key: string]: unknown;
}

/** A tool as a JSON schema: `{type: 'function', function: {name, description, parameters}}`. */
export type ToolSchema = Record<string, unknown>;

export interface RenderChatTemplateOptions {
  messages: readonly ChatMessage[];
  /** JSON-schema tools; templates test `tools` for none, so absent means null. */
  tools?: readonly ToolSchema[] | null;
  /** RAG documents for templates that support them. */
  documents?: readonly Record<string, unknown>[] | null;
  /** End with the header that starts an assistant turn. Default false. */
  addGenerationPrompt?: boolean;
  bosToken?: string | null;
  eosToken?: string | null;
  /** The rest of transformers' special_tokens_map (pad_token, unk_token, …); bosToken/eosToken win. */
  specialTokens?: Readonly<Record<string, string | string[]>>;
  /** The clock `strftime_now` reads (Llama 3.x writes "Today Date: 26 Jul 2024"). Default: now. */
  now?: Date;
  /** More template variables, e.g. `{enable_thinking: false}` for Qwen3 or `{date_string: '26 Jul 2024'}`. */
  vars?: Readonly<Record<string, unknown>>;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's `datetime.strftime` in the C locale for the common directives (local time). */
export function strftime(date: Date, format: string): string {
  const p2 = (n: number) => String(n).padStart(2, '0');
  return format.replace(/%[aAbBdejHIMmpSyYZ%]/g, (d) => {
    switch (d) {
      case '%a': return DAYS[date.getDay()]!.slice(0, 3);
      case '%A': return DAYS[date.getDay()]!;
      case '%b': return MONTHS[date.getMonth()]!.slice(0, 3);
      case '%B': return MONTHS[date.getMonth()]!;
      case '%d': return p2(date.getDate());
      case '%e': return String(date.getDate()).padStart(2, ' ');
      case '%j': {
        const start = new Date(date.getFullYear(), 0, 1);
        return String(Math.round((+new Date(date.getFullYear(), date.getMonth(), date.getDate()) - +start) / 86400000) + 1).padStart(3, '0');
      }
      case '%H': return p2(date.getHours());
      case '%I': return p2(date.getHours() % 12 || 12);
      case '%M': return p2(date.getMinutes());
      case '%m': return p2(date.getMonth() + 1);
      case '%p': return date.getHours() < 12 ? 'AM' : 'PM';
      case '%S': return p2(date.getSeconds());
      case '%y': return p2(date.getFullYear() % 100);
      case '%Y': return String(date.getFullYear());
      case '%Z': return '';
      default: return '%';
    }
  });
}

/** Python's range(stop) / range(start, stop[, step]). */
function pyRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new TemperError('chat template: range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** Python's str.strip/lstrip/rstrip with a `chars` argument. */
function pyStrip(s: string, chars: string, left: boolean, right: boolean): string {
  let a = 0, b = s.length;
  if (left) while (a < b && chars.includes(s[a]!)) a++;
  if (right) while (b > a && chars.includes(s[b - 1]!)) b--;
  return s.slice(a, b);
}

interface RuntimeValueLike { type: string; value: unknown; builtins?: Map<string, RuntimeValueLike> }
type RuntimeCtor = new (value: unknown) => RuntimeValueLike;

/**
 * @huggingface/jinja 0.5.11 ignores the argument of `s.strip(chars)` / `lstrip` / `rstrip`
 * and strips whitespace; Qwen3's template writes `content.lstrip('\n')`, so content that
 * starts with spaces rendered differently from transformers. This wraps the interpreter's
 * member lookup so those calls follow Python when given `chars` (the fixture test pins it).
 */
function stripWithChars(interpreter: Interpreter): void {
  const it = interpreter as unknown as {
    evaluate(node: unknown, env: unknown): RuntimeValueLike;
    evaluateMemberExpression(expr: { computed: boolean; object: unknown; property: { value: unknown } }, env: unknown): RuntimeValueLike;
  };
  const original = it.evaluateMemberExpression;
  it.evaluateMemberExpression = function (expr, env) {
    const name = expr.property.value;
    if (!expr.computed && (name === 'strip' || name === 'lstrip' || name === 'rstrip')) {
      const object = this.evaluate(expr.object, env);
      const builtin = object.type === 'StringValue' ? object.builtins?.get(name) : undefined;
      if (builtin) {
        const FunctionValue = builtin.constructor as RuntimeCtor;
        const StringValue = object.constructor as RuntimeCtor;
        const s = object.value as string;
        return new FunctionValue((args: RuntimeValueLike[]) => {
          const chars = args[0];
          if (!chars || chars.type === 'NullValue' || chars.type === 'UndefinedValue') {
            return (builtin.value as (a: RuntimeValueLike[]) => RuntimeValueLike)(args);
          }
          return new StringValue(pyStrip(s, String(chars.value), name !== 'rstrip', name !== 'lstrip'));
        });
      }
    }
    return original.call(this, expr, env);
  };
}

const compiled = new Map<string, Template>();

function compile(template: string): Template {
  let t = compiled.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (e) {
      throw new TemperError(`chat template: cannot parse (${(e as Error).message})`);
    }
    if (compiled.size > 32) compiled.clear();
    compiled.set(template, t);
  }
  return t;
}

/**
 * Renders a chat template with the variables transformers passes: messages, tools,
 * documents, add_generation_prompt, the special tokens, `raise_exception` and `strftime_now`.
 *
 * @example
 * renderChatTemplate(tok.chatTemplate!, { messages: [{ role: 'user', content: 'Hi' }], addGenerationPrompt: true });
 * // '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'
 */
export function renderChatTemplate(template: string, opts: RenderChatTemplateOptions): string {
  const t = compile(template);
  const now = opts.now ?? new Date();
  // Template.render would refuse to redefine its globals, so the environment is built here:
  // the library's globals, with raise_exception and strftime_now replaced.
  const vars: Record<string, unknown> = {
    false: false, true: true, none: null, False: false, True: true, None: null,
    range: pyRange,
    raise_exception: (msg: unknown) => {
      throw new TemperError(`chat template: ${String(msg)}`);
    },
    strftime_now: (fmt: unknown) => strftime(now, String(fmt)),
    ...(opts.specialTokens ?? {}),
  };
  if (opts.bosToken != null) vars.bos_token = opts.bosToken;
  if (opts.eosToken != null) vars.eos_token = opts.eosToken;
  Object.assign(vars, {
    messages: opts.messages,
    tools: opts.tools ?? null,
    documents: opts.documents ?? null,
    add_generation_prompt: opts.addGenerationPrompt ?? false,
    ...(opts.vars ?? {}),
  });
  try {
    const env = new Environment();
    for (const [k, v] of Object.entries(vars)) env.set(k, v);
    const interpreter = new Interpreter(env);
    stripWithChars(interpreter);
    return String(interpreter.run(t.parsed).value);
  } catch (e) {
    if (e instanceof TemperError) throw e;
    throw new TemperError(`chat template: render failed (${(e as Error).message})`);
  }
}

export interface ApplyChatTemplateOptions {
  addGenerationPrompt?: boolean;
  /**
   * Leave the final message open (no end-of-turn), to continue it: the text is cut right after
   * its content, as transformers' continue_final_message. Not with addGenerationPrompt.
   */
  continueFinalMessage?: boolean;
  tools?: readonly ToolSchema[] | null;
  documents?: readonly Record<string, unknown>[] | null;
  /** A template name from tokenizer.chatTemplates or a template text; default: the tokenizer's. */
  chatTemplate?: string;
  now?: Date;
  vars?: Readonly<Record<string, unknown>>;
}

export interface ChatEncoding {
  /** The rendered conversation. */
  text: string;
  /** `text` tokenized without adding special tokens (the template wrote BOS if the model wants it). */
  ids: number[];
  /**
   * 1 for tokens of assistant messages as rendered (content, tool calls, and the end-of-turn
   * token after them), 0 elsewhere (system/user/tool turns, assistant headers, generation prompt).
   */
  assistantMask: number[];
}

/** Assistant content stand-in for probing what a template writes after a message. */
const SENTINEL = 'TemperAssistantContent8f3b';

function chatRenderer(tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions) {
  if (!Array.isArray(messages)) throw new TemperError('applyChatTemplate: messages must be an array of {role, content}');
  for (const [i, m] of messages.entries()) {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string') {
      throw new TemperError(`applyChatTemplate: messages[${i}] must be an object with a string role`);
    }
  }
  if (opts.continueFinalMessage && opts.addGenerationPrompt) {
    throw new TemperError('applyChatTemplate: continueFinalMessage and addGenerationPrompt exclude each other (one continues the last message, the other starts a new one)');
  }
  const template = tokenizer.getChatTemplate(opts.chatTemplate, { tools: opts.tools ? [...opts.tools] : null });
  return (msgs: readonly ChatMessage[], addGenerationPrompt: boolean) =>
    renderChatTemplate(template, {
      messages: msgs,
      tools: opts.tools,
      documents: opts.documents,
      addGenerationPrompt,
      specialTokens: tokenizer.specialTokensMap,
      now: opts.now,
      vars: opts.vars,
    });
}

/**
 * The conversation rendered with the tokenizer's chat template (the text half of
 * applyChatTemplate, without tokenizing or masking).
 *
 * @example
 * renderChat(tok, [{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
 */
export function renderChat(tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions = {}): string {
  const render = chatRenderer(tokenizer, messages, opts);
  const text = render(messages, opts.addGenerationPrompt ?? false);
  return opts.continueFinalMessage ? cutAfterFinalContent(text, messages) : text;
}

/**
 * Renders and tokenizes a conversation, with a mask of the assistant tokens.
 *
 * The mask is for the rendered text, which is not always the messages verbatim: Qwen3's
 * template drops the `<think>…</think>` part of assistant turns before the last user message
 * and writes an empty think block into the final one; Llama 3 and Gemma trim content. Each
 * assistant turn starts where the rendering of the messages before it with a generation prompt
 * ends (so its header is not masked) and ends after the first end-of-turn token that follows
 * (the first special token the template writes after the content, e.g. `<|im_end|>`,
 * `<|eot_id|>`, `<end_of_turn>`). A token that straddles a boundary counts as assistant, like
 * transformers' char_to_token mapping of return_assistant_tokens_mask.
 *
 * @example
 * const { ids, assistantMask } = applyChatTemplate(tok, [
 *   { role: 'user', content: 'What is 2+2?' },
 *   { role: 'assistant', content: '4' },
 * ]);
 * tok.decode(ids.filter((_, i) => assistantMask[i]));
 * // Llama 3: '4<|eot_id|>'; Qwen3: '<think>\n\n</think>\n\n4<|im_end|>' (its template adds the empty think block)
 */
export function applyChatTemplate(tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions = {}): ChatEncoding {
  const render = chatRenderer(tokenizer, messages, opts);
  const text = renderChat(tokenizer, messages, opts);

  // Char spans [start, end) of assistant turns in `text`.
  const spans: Array<[number, number]> = [];
  for (let k = 0; k < messages.length; k++) {
    if (messages[k]!.role !== 'assistant') continue;
    const where = `assistant mask: messages[${k}]`;
    let pre: string;
    try {
      pre = render(messages.slice(0, k), true);
    } catch (e) {
      throw new TemperError(`${where}: rendering the messages before it failed (${(e as Error).message})`);
    }
    let start = pre.length;
    if (!text.startsWith(pre)) {
      // The generation prompt may hold more than the header (Qwen3 with enable_thinking=false
      // writes an empty think block); the turn then starts where the two renderings part.
      const bare = render(messages.slice(0, k), false);
      const common = commonPrefixLength(pre, text);
      if (!text.startsWith(bare) || common <= bare.length) {
        throw new TemperError(`${where}: the template renders the messages before it differently from the same messages in the whole conversation, so the turn's start cannot be found`);
      }
      start = common;
    }
    let end: number;
    if (opts.continueFinalMessage && k === messages.length - 1) end = text.length;
    else {
      const marker = endOfTurnMarker(tokenizer, render, messages, k);
      if (marker === null) throw new TemperError(`${where}: the template writes no special token after an assistant message, so the turn's end cannot be found`);
      const at = text.indexOf(marker, start);
      if (at < 0) throw new TemperError(`${where}: no '${marker}' after the turn's start`);
      end = at + marker.length;
    }
    const prev = spans.at(-1);
    if (prev && start < prev[1]) throw new TemperError(`${where}: overlaps the previous assistant turn (end-of-turn token not found where expected)`);
    spans.push([start, end]);
  }

  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  return { text, ids, assistantMask: spansToTokenMask(tokenizer, text, ids, spans) };
}

/**
 * The special token a chat template writes after an assistant message (`<|im_end|>`,
 * `<|eot_id|>`, `<end_of_turn>`), found by rendering a user turn and an assistant turn; null
 * when the template cannot render that or writes none.
 */
export function templateEndOfTurn(tokenizer: Tokenizer, template?: string): string | null {
  let t: string;
  try {
    t = template ?? tokenizer.getChatTemplate();
  } catch {
    return null;
  }
  const msgs: ChatMessage[] = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: SENTINEL },
  ];
  try {
    const text = renderChatTemplate(t, { messages: msgs, specialTokens: tokenizer.specialTokensMap });
    const at = text.lastIndexOf(SENTINEL);
    return at < 0 ? null : firstSpecialToken(tokenizer, text.slice(at + SENTINEL.length));
  } catch {
    return null;
  }
}

/** What follows assistant message k: probe with its content replaced, keep its other fields (tool_calls). */
function endOfTurnMarker(
  tokenizer: Tokenizer,
  render: (msgs: readonly ChatMessage[], agp: boolean) => string,
  messages: readonly ChatMessage[],
  k: number,
): string | null {
  try {
    const probe = render([...messages.slice(0, k), { ...messages[k]!, content: SENTINEL }], false);
    const at = probe.lastIndexOf(SENTINEL);
    const marker = at < 0 ? null : firstSpecialToken(tokenizer, probe.slice(at + SENTINEL.length));
    if (marker !== null) return marker;
  } catch {
    // fall through to the generic probe
  }
  return templateEndOfTurn(tokenizer, undefined);
}

/** The special token that occurs first in `s` (the longest one at that position), or null. */
function firstSpecialToken(tokenizer: Tokenizer, s: string): string | null {
  let best: string | null = null;
  let bestAt = Infinity;
  for (const tok of tokenizer.specialTokens) {
    if (tok.length === 0) continue;
    const at = s.indexOf(tok);
    if (at >= 0 && (at < bestAt || (at === bestAt && tok.length > best!.length))) {
      best = tok;
      bestAt = at;
    }
  }
  return best;
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function cutAfterFinalContent(text: string, messages: readonly ChatMessage[]): string {
  const last = messages.at(-1);
  if (!last) throw new TemperError('applyChatTemplate: continueFinalMessage needs at least one message');
  let content = last.content;
  if (Array.isArray(content)) content = [...content].reverse().find((p) => typeof p.text === 'string')?.text ?? '';
  if (typeof content !== 'string') throw new TemperError('applyChatTemplate: continueFinalMessage needs the final message to have text content');
  // Templates such as Llama 3's trim the content before writing it.
  for (const c of [content, content.trim()]) {
    const at = text.lastIndexOf(c);
    if (at >= 0) return text.slice(0, at + c.length);
  }
  throw new TemperError('applyChatTemplate: continueFinalMessage: the final message content does not appear in the rendered text');
}

/**
 * mask[i] = 1 when token i covers a character of a span. Uses the tokens' character offsets;
 * where the tokenizer cannot give them, tokenizes the text before each boundary and requires
 * it to be a prefix of the whole tokenization.
 */
function spansToTokenMask(tokenizer: Tokenizer, text: string, ids: number[], spans: ReadonlyArray<[number, number]>): number[] {
  const mask = new Array<number>(ids.length).fill(0);
  if (spans.length === 0) return mask;
  const offsets = tokenizer.charOffsets(text, ids);
  if (offsets) {
    for (let i = 0; i < ids.length; i++) {
      const [s, e] = offsets[i]!;
      if (spans.some(([a, b]) => s < b && e > a)) mask[i] = 1;
    }
    return mask;
  }
  const tokenIndexAt = (charPos: number): number => {
    const prefix = tokenizer.encode(text.slice(0, charPos), { addSpecialTokens: false });
    for (let i = 0; i < prefix.length; i++) {
      if (prefix[i] !== ids[i]) {
        throw new TemperError(`assistant mask: a token straddles character ${charPos} of the rendered text and this tokenizer gives no offsets to place it`);
      }
    }
    return prefix.length;
  };
  for (const [a, b] of spans) {
    const from = tokenIndexAt(a);
    const to = b >= text.length ? ids.length : tokenIndexAt(b);
    for (let i = from; i < to; i++) mask[i] = 1;
  }
  return mask;
}
