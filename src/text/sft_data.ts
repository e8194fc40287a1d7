// Dataset rows -> SFT training examples (token ids + loss mask), as TRL's SFTTrainer prepares
// them: conversational `messages`, prompt/completion (strings or messages), or plain text.
// Not a collator: batching, packing and labels live in packing.ts; no tensors here.
import { TemperError } from '../tensor/index.js';
import type { DatasetRows, DatasetRow } from '../io/dataset.js';
import { applyChatTemplate, renderChat, type ChatEncoding, type ChatMessage, type ToolSchema } from './chat_template.js';
import type { Tokenizer } from './tokenizer.js';

/** How a row is read: chat `messages`, `prompt` + `completion`, or a text column. */
export type SftRowFormat = 'messages' | 'prompt_completion' | 'text';

export interface SftDataOptions {
  /** Skip detection and read every row this way. */
  format?: SftRowFormat;
  /** The text column of plain-text rows (TRL's dataset_text_field). Default "text". */
  datasetTextField?: string;
  /**
   * Loss on the completion only, for prompt/completion rows (TRL's completion_only_loss; null,
   * the default, means true for prompt/completion). Without it every token counts.
   */
  completionOnlyLoss?: boolean | null;
  /** Loss on assistant turns only, from applyChatTemplate's assistantMask (conversational rows). Default false. */
  assistantOnlyLoss?: boolean;
  /** Keep the first maxLength tokens (TRL's truncation_mode 'keep_start'). Default 1024; null: no limit. */
  maxLength?: number | null;
  /** Append EOS to plain text and string completions that do not end with it, as TRL does. Default true. */
  addEos?: boolean;
  /** The EOS text appended (TRL's eos_token). Default: the tokenizer's. */
  eosToken?: string | null;
  /** A chat template name or text (default: the tokenizer's). */
  chatTemplate?: string;
  /** Template variables for every row, e.g. `{enable_thinking: false}`; a row's `chat_template_kwargs` column wins. */
  chatTemplateKwargs?: Readonly<Record<string, unknown>>;
  /** Non-fatal findings (a prompt whose tokens are not a prefix of prompt+completion). Default console.warn. */
  onWarning?: (message: string) => void;
}

/** One training example: token ids and, per token, 1 when it is a target of the loss. */
export interface TokenizedExample {
  inputIds: number[];
  lossMask: number[];
}

/** Which columns each format reads (ShareGPT `conversations` counts as messages). */
function detect(row: DatasetRow, textField: string): SftRowFormat | null {
  if ('prompt' in row && 'completion' in row) return 'prompt_completion';
  if (Array.isArray(row.messages) || Array.isArray(row.conversations)) return 'messages';
  if (textField in row) return 'text';
  return null;
}

/**
 * The format of a row, as TRL decides it: `prompt` + `completion` -> prompt_completion, a
 * `messages` (or ShareGPT `conversations`) list -> messages, the text field -> text.
 * Throws, naming the columns found, when none applies.
 */
export function detectSftFormat(row: DatasetRow, opts: { datasetTextField?: string; origin?: string } = {}): SftRowFormat {
  const field = opts.datasetTextField ?? 'text';
  const f = detect(row, field);
  if (f) return f;
  const hint = 'prompt' in row ? " (a prompt without a completion is for RL trainers; SFT needs 'completion')" : '';
  throw new TemperError(
    `${opts.origin ?? 'row'}: no SFT columns: expected 'messages', 'prompt' + 'completion', or '${field}'${hint}; found ${columnList(row)}`,
  );
}

function columnList(row: DatasetRow): string {
  const keys = Object.keys(row);
  return keys.length ? keys.map((k) => `'${k}'`).join(', ') : 'no columns';
}

/** Parses a column that datasets often store as a JSON string (tools, chat_template_kwargs). */
function jsonish(v: unknown, what: string, where: string): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new TemperError(`${where}: ${what} is a string that is not JSON (${(e as Error).message})`);
  }
}

const SHAREGPT_ROLES: Readonly<Record<string, string>> = { human: 'user', gpt: 'assistant' };

/** Messages of a column, checked; ShareGPT `{from, value}` turns become `{role, content}`. */
function messagesOf(v: unknown, column: string, where: string): ChatMessage[] {
  if (!Array.isArray(v)) throw new TemperError(`${where}: '${column}' must be a list of {role, content} messages, got ${v === null ? 'null' : typeof v}`);
  return v.map((m, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new TemperError(`${where}: ${column}[${i}] is not a {role, content} object`);
    let msg = m as Record<string, unknown>;
    if (!('role' in msg) && 'from' in msg) {
      const { from, value, ...rest } = msg;
      msg = { ...rest, role: SHAREGPT_ROLES[from as string] ?? from, content: value };
    }
    if (typeof msg.role !== 'string') throw new TemperError(`${where}: ${column}[${i}] has no string 'role' (keys: ${Object.keys(msg).join(', ')})`);
    const c = msg.content;
    if (c !== undefined && c !== null && typeof c !== 'string' && !Array.isArray(c)) {
      throw new TemperError(`${where}: ${column}[${i}].content must be a string or a list of parts, got ${typeof c}`);
    }
    return msg as ChatMessage;
  });
}

interface RowResult extends TokenizedExample {
  /** Token count before truncation. */
  fullLength: number;
}

/**
 * Render + tokenize with the row's tools and template variables; template failures name the row.
 * The assistant mask is computed only when asked for (`mask`): it needs more of the template
 * (the turns' boundaries) than rendering does. Without it the ids are applyChatTemplate's.
 */
function chat(tok: Tokenizer, messages: ChatMessage[], row: DatasetRow, opts: SftDataOptions, where: string, addGenerationPrompt: boolean, mask: boolean): ChatEncoding {
  const tools = jsonish(row.tools ?? null, "'tools'", where);
  if (tools !== null && !Array.isArray(tools)) throw new TemperError(`${where}: 'tools' must be a list of JSON-schema tools`);
  const rowVars = jsonish(row.chat_template_kwargs ?? null, "'chat_template_kwargs'", where);
  if (rowVars !== null && (typeof rowVars !== 'object' || Array.isArray(rowVars))) throw new TemperError(`${where}: 'chat_template_kwargs' must be an object`);
  const chatOpts = {
    addGenerationPrompt,
    tools: tools as ToolSchema[] | null,
    chatTemplate: opts.chatTemplate,
    vars: { ...opts.chatTemplateKwargs, ...(rowVars as Record<string, unknown> | null) },
  };
  try {
    if (mask) return applyChatTemplate(tok, messages, chatOpts);
    const text = renderChat(tok, messages, chatOpts);
    const ids = tok.encode(text, { addSpecialTokens: false });
    return { text, ids, assistantMask: [] };
  } catch (e) {
    throw new TemperError(`${where}: the chat template failed: ${(e as Error).message}`);
  }
}

function tokenizeRow(tok: Tokenizer, row: DatasetRow, opts: SftDataOptions, where: string): RowResult {
  const field = opts.datasetTextField ?? 'text';
  const format = opts.format ?? detectSftFormat(row, { datasetTextField: field, origin: where });
  const eos = opts.eosToken === undefined ? tok.eosToken : opts.eosToken;
  const withEos = (s: string) => (opts.addEos !== false && eos && !s.endsWith(eos) ? s + eos : s);
  const missing = (cols: string) => new TemperError(`${where}: format '${format}' needs ${cols}; found ${columnList(row)}`);
  if (opts.assistantOnlyLoss && format === 'text') throw new TemperError(`${where}: assistantOnlyLoss needs conversational rows (messages, or prompt/completion as messages), not plain text`);
  let ids: number[];
  let mask: number[];

  if (format === 'text') {
    const text = row[field];
    if (typeof text !== 'string') throw text === undefined ? missing(`'${field}'`) : new TemperError(`${where}: '${field}' must be a string, got ${typeof text}`);
    if (text === '') throw new TemperError(`${where}: '${field}' is empty`);
    ids = tok.encode(withEos(text));
    mask = ids.map(() => 1);
  } else if (format === 'messages') {
    const column = Array.isArray(row.messages) || !('conversations' in row) ? 'messages' : 'conversations';
    if (!(column in row)) throw missing("'messages'");
    const messages = messagesOf(row[column], column, where);
    if (messages.length === 0) throw new TemperError(`${where}: '${column}' is empty`);
    const enc = chat(tok, messages, row, opts, where, false, opts.assistantOnlyLoss === true);
    ids = enc.ids;
    mask = opts.assistantOnlyLoss ? enc.assistantMask : ids.map(() => 1);
    if (opts.assistantOnlyLoss && !mask.includes(1)) throw new TemperError(`${where}: assistantOnlyLoss, but the conversation has no assistant tokens`);
  } else {
    if (!('prompt' in row) || !('completion' in row)) throw missing("'prompt' and 'completion'");
    const { prompt, completion } = row;
    const completionOnly = opts.completionOnlyLoss ?? true;
    let promptLen: number;
    if (typeof prompt === 'string' && typeof completion === 'string') {
      if (completion === '') throw new TemperError(`${where}: empty completion`);
      if (opts.assistantOnlyLoss) throw new TemperError(`${where}: assistantOnlyLoss needs conversational rows, but prompt and completion are strings`);
      const promptIds = tok.encode(prompt);
      ids = tok.encode(prompt + withEos(completion));
      promptLen = promptIds.length;
      // As TRL: the mask follows the prompt's token count even when the tokens merge across the
      // boundary (e.g. a prompt ending in a space), and says so.
      if (!promptIds.every((id, i) => ids[i] === id)) {
        (opts.onWarning ?? console.warn)(`${where}: the prompt's tokens are not a prefix of prompt+completion's (tokens merge across the boundary); the completion mask starts after ${promptLen} tokens`);
      }
    } else if (Array.isArray(prompt) && Array.isArray(completion)) {
      const p = messagesOf(prompt, 'prompt', where);
      const c = messagesOf(completion, 'completion', where);
      if (c.length === 0) throw new TemperError(`${where}: empty completion`);
      const promptEnc = chat(tok, p, row, opts, where, true, false);
      const full = chat(tok, [...p, ...c], row, opts, where, false, opts.assistantOnlyLoss === true);
      promptLen = promptEnc.ids.length;
      if (!promptEnc.ids.every((id, i) => full.ids[i] === id)) {
        throw new TemperError(`${where}: the prompt rendered with a generation prompt is not a prefix of prompt+completion, so the completion cannot be found (the template renders them differently)`);
      }
      ids = full.ids;
      if (ids.length === promptLen) throw new TemperError(`${where}: the completion renders to no tokens`);
      if (opts.assistantOnlyLoss) {
        const m = full.assistantMask.map((a, i) => (completionOnly && i < promptLen ? 0 : a));
        if (!m.includes(1)) throw new TemperError(`${where}: assistantOnlyLoss, but the completion has no assistant tokens`);
        return truncate(ids, m, opts);
      }
    } else {
      if (typeof prompt === 'string' && Array.isArray(completion)) throw new TemperError(`${where}: prompt is a string but completion is a list of messages; use both strings or both lists`);
      if (Array.isArray(prompt) && typeof completion === 'string') throw new TemperError(`${where}: prompt is a list of messages but completion is a string; use both strings or both lists`);
      throw new TemperError(`${where}: prompt and completion must be strings or lists of messages, got ${prompt === null ? 'null' : typeof prompt} and ${completion === null ? 'null' : typeof completion}`);
    }
    mask = ids.map((_, i) => (completionOnly && i < promptLen ? 0 : 1));
  }
  return truncate(ids, mask, opts);
}

function truncate(ids: number[], mask: number[], opts: SftDataOptions): RowResult {
  const max = opts.maxLength === undefined ? 1024 : opts.maxLength;
  if (max !== null && !(Number.isInteger(max) && max > 0)) throw new TemperError(`maxLength must be a positive integer or null, got ${max}`);
  const fullLength = ids.length;
  if (max !== null && ids.length > max) return { inputIds: ids.slice(0, max), lossMask: mask.slice(0, max), fullLength };
  return { inputIds: ids, lossMask: mask, fullLength };
}

/**
 * Token ids and loss mask of one row, as TRL's SFTTrainer tokenizes it:
 * - text: `tok.encode(text + eos)` (special tokens added, e.g. Llama's BOS), every token counts;
 * - messages: the chat template's rendering; every token counts, or only assistant turns with
 *   assistantOnlyLoss;
 * - prompt/completion strings: `encode(prompt + completion + eos)`, the loss on the tokens after
 *   `encode(prompt)`'s count (completionOnlyLoss, default on);
 * - prompt/completion messages: prompt rendered with the generation prompt must be a token
 *   prefix of prompt+completion rendered in full; the loss on what follows it.
 * Then the first maxLength tokens are kept. Throws TemperError naming `opts.origin` for a row
 * that cannot be used (missing columns, empty completion, a template that fails).
 *
 * @example
 * const ex = tokenizeExample(tok, { prompt: 'The sky is', completion: ' blue.' });
 * tok.decode(ex.inputIds.filter((_, i) => ex.lossMask[i]));   // ' blue.<|im_end|>' (Qwen3)
 */
export function tokenizeExample(tok: Tokenizer, row: DatasetRow, opts: SftDataOptions & { origin?: string } = {}): TokenizedExample {
  const { inputIds, lossMask } = tokenizeRow(tok, row, opts, opts.origin ?? 'row');
  return { inputIds, lossMask };
}

export interface TokenizeDatasetOptions extends SftDataOptions {
  /** Count and skip rows that cannot be used instead of throwing on the first. Default false. */
  skipInvalidRows?: boolean;
}

export interface TokenizedDataset {
  examples: TokenizedExample[];
  /** The dataset row each example came from. */
  rowIndex: number[];
  /** The format used (given, or detected from the first usable row). */
  format: SftRowFormat;
  /** Rows skipped (skipInvalidRows), and the reasons for the first few, each naming its row. */
  skipped: number;
  skipReasons: string[];
  /** Examples cut to maxLength. */
  truncated: number;
  /** Non-fatal findings (first few) and their count. */
  warnings: string[];
  warningCount: number;
}

const KEEP = 5;

/**
 * Every row of a dataset as an SFT example (see tokenizeExample), the format taken from
 * `opts.format` or the first row, errors naming the row's file and line.
 *
 * @example
 * const ds = await loadDataset('data/chat.jsonl');
 * const { examples, skipped } = tokenizeDataset(tok, ds, { assistantOnlyLoss: true, skipInvalidRows: true });
 */
export function tokenizeDataset(tok: Tokenizer, ds: DatasetRows, opts: TokenizeDatasetOptions = {}): TokenizedDataset {
  const out: TokenizedDataset = { examples: [], rowIndex: [], format: opts.format ?? 'text', skipped: 0, skipReasons: [], truncated: 0, warnings: [], warningCount: 0 };
  let format = opts.format;
  const onWarning = (m: string) => {
    out.warningCount++;
    if (out.warnings.length < KEEP) out.warnings.push(m);
    opts.onWarning?.(m);
  };
  for (let i = 0; i < ds.length; i++) {
    const where = ds.origin(i);
    try {
      format ??= detectSftFormat(ds.rows[i]!, { datasetTextField: opts.datasetTextField, origin: where });
      const r = tokenizeRow(tok, ds.rows[i]!, { ...opts, format, onWarning }, where);
      out.examples.push({ inputIds: r.inputIds, lossMask: r.lossMask });
      out.rowIndex.push(i);
      if (r.fullLength > r.inputIds.length) out.truncated++;
    } catch (e) {
      if (!opts.skipInvalidRows || !(e instanceof TemperError)) throw e;
      out.skipped++;
      if (out.skipReasons.length < KEEP) out.skipReasons.push(e.message);
    }
  }
  if (out.examples.length === 0) {
    throw new TemperError(`dataset (${ds.files.join(', ')}): no usable rows${out.skipped ? `; ${out.skipped} skipped, e.g. ${out.skipReasons[0]}` : ''}`);
  }
  out.format = format!;
  return out;
}
