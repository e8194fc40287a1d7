// `temper chat-template`: renders a conversation file with a model folder's chat template.
// Only parses arguments and calls src/text; no template logic here.
import { parseFlags } from './flags.js';
import { readUtf8File } from '../io/index.js';
import { TemperError } from '../tensor/index.js';
import { Tokenizer, renderChat, type ChatMessage, type ToolSchema } from '../text/index.js';

export const CHAT_TEMPLATE_HELP = `Usage: temper chat-template --tokenizer PATH --messages FILE.json [options]

Renders the conversation with the tokenizer's chat template, as transformers'
apply_chat_template, and prints the text (followed by a newline).

  --tokenizer PATH            model or tokenizer folder (tokenizer.json + tokenizer_config.json)
  --messages FILE.json        [{"role": …, "content": …}, …] or {"messages": [...]}
  --add_generation_prompt     end with the header of a new assistant turn
  --continue_final_message    leave the last message open to be continued
  --tools FILE.json           JSON-schema tools: [{"type": "function", "function": {…}}, …]
  --template NAME             a named template of the tokenizer (default: its default one)
  --var KEY=JSON              extra template variable, e.g. --var enable_thinking=false (repeatable)
  --ids                       print the token ids (one JSON array) instead of the text
`;

function readJson(path: string, what: string): unknown {
  const text = readUtf8File(path, `chat-template: ${what} file ${path}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TemperError(`chat-template: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

function parseMessages(json: unknown, path: string): ChatMessage[] {
  const list = Array.isArray(json) ? json : typeof json === 'object' && json !== null ? (json as { messages?: unknown }).messages : undefined;
  if (!Array.isArray(list)) throw new TemperError(`chat-template: ${path}: expected an array of {role, content} messages or {"messages": [...]}`);
  for (const [i, m] of list.entries()) {
    if (typeof m !== 'object' || m === null || typeof (m as { role?: unknown }).role !== 'string') {
      throw new TemperError(`chat-template: ${path}: message ${i} has no string "role"`);
    }
  }
  return list as ChatMessage[];
}

/** Runs `temper chat-template ARGV`; returns the exit code. Throws TemperError for bad input. */
export async function chatTemplateCommand(argv: string[]): Promise<number> {
  const values = parseFlags('chat-template', argv, {
    tokenizer: { type: 'string' },
    messages: { type: 'string' },
    add_generation_prompt: { type: 'boolean', default: false },
    continue_final_message: { type: 'boolean', default: false },
    tools: { type: 'string' },
    template: { type: 'string' },
    var: { type: 'string', multiple: true, default: [] },
    ids: { type: 'boolean', default: false },
  });
  if (values.help) {
    process.stdout.write(CHAT_TEMPLATE_HELP);
    return 0;
  }
  if (!values.tokenizer) throw new TemperError('chat-template: --tokenizer PATH is required (a folder with tokenizer.json)');
  if (!values.messages) throw new TemperError('chat-template: --messages FILE.json is required');
  const messages = parseMessages(readJson(values.messages, '--messages'), values.messages);
  let tools: ToolSchema[] | null = null;
  if (values.tools) {
    const t = readJson(values.tools, '--tools');
    if (!Array.isArray(t) || !t.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x))) {
      throw new TemperError(`chat-template: ${values.tools}: expected an array of JSON-schema tool objects`);
    }
    tools = t as ToolSchema[];
  }
  const vars: Record<string, unknown> = {};
  for (const kv of values.var ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new TemperError(`chat-template: --var expects KEY=JSON, got '${kv}'`);
    const raw = kv.slice(eq + 1);
    try {
      vars[kv.slice(0, eq)] = JSON.parse(raw);
    } catch {
      vars[kv.slice(0, eq)] = raw; // a bare word is taken as a string
    }
  }
  const tok = await Tokenizer.fromDir(values.tokenizer);
  const text = renderChat(tok, messages, {
    addGenerationPrompt: values.add_generation_prompt,
    continueFinalMessage: values.continue_final_message,
    tools,
    chatTemplate: values.template,
    vars,
  });
  // The template already wrote BOS where the model wants one: no special tokens added.
  process.stdout.write(values.ids ? `${JSON.stringify(tok.encode(text, { addSpecialTokens: false }))}\n` : `${text}\n`);
  return 0;
}
