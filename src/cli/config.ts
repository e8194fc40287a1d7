// Trainer configuration from a YAML file and `--key value` flags (flags win), validated
// against a zod schema before any work starts: an unknown key, a wrong type or a missing
// required value is one message naming the key. Also renders the schema as --help text.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { TemperError } from '../tensor/index.js';

/** A flag value as YAML would read it: numbers, booleans, null, [lists]; otherwise the string. */
function flagValue(raw: string): unknown {
  try {
    const v: unknown = parseYaml(raw);
    return v === undefined ? raw : v;
  } catch {
    return raw;
  }
}

/** Splits argv into a config-file path and `--key value` / `--key=value` / `--flag` pairs. */
export function parseConfigArgs(argv: readonly string[]): { configPath: string | null; flags: Record<string, unknown>; help: boolean } {
  const flags: Record<string, unknown> = {};
  let configPath: string | null = null;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') {
      help = true;
      continue;
    }
    if (!a.startsWith('--')) throw new TemperError(`unexpected argument '${a}' (options are --key value)`);
    const eq = a.indexOf('=');
    const key = (eq > 0 ? a.slice(2, eq) : a.slice(2)).replace(/-/g, '_');
    let value: unknown;
    if (eq > 0) value = flagValue(a.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) value = flagValue(argv[++i]!);
    else value = true;
    if (key === 'config') configPath = String(value);
    else flags[key] = value;
  }
  return { configPath, flags, help };
}

/** Reads a YAML (or JSON) config file into a plain object. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TemperError(`config ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let v: unknown;
  try {
    v = parseYaml(text);
  } catch (e) {
    throw new TemperError(`config ${path}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new TemperError(`config ${path}: expected a mapping of key: value`);
  return v as Record<string, unknown>;
}

/** File values overridden by flags, validated; errors name the key and where it came from. */
export function resolveConfig<S extends z.ZodType>(schema: S, file: Record<string, unknown>, flags: Record<string, unknown>, filePath: string | null): z.infer<S> {
  const merged = { ...file, ...flags };
  const r = schema.safeParse(merged);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = issue.path.join('.') || (issue as { keys?: string[] }).keys?.join(', ') || '?';
  const from = key in flags ? `--${key}` : filePath && key in file ? `${filePath}: ${key}` : key;
  let msg: string;
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    msg = `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `'${k}'`).join(', ')}${filePath ? ` (in ${filePath} or flags)` : ''}; see --help for the list`;
  } else if (issue.code === 'invalid_type' && merged[key] === undefined) {
    msg = `missing required '${key}' (set it in the config file or pass --${key})`;
  } else {
    msg = `${from}: ${issue.message} (got ${JSON.stringify(merged[key])})`;
  }
  throw new TemperError(`config: ${msg}`);
}

/**
 * `--key  description (default: v)` lines for every field of an object schema; with
 * `sections` ([title, keys] pairs), grouped under their titles in that order.
 */
export function schemaHelp(schema: z.ZodObject, sections?: readonly (readonly [string, readonly string[]])[]): string {
  const line = (key: string) => {
    const f = schema.shape[key] as z.ZodType;
    const desc = f.description ?? '';
    const parsed = f.safeParse(undefined);
    const dflt = parsed.success ? ` (default: ${JSON.stringify(parsed.data)})` : ' (required)';
    return `  --${key.padEnd(28)} ${desc.replace(/ \(required\)$/, '')}${dflt}`;
  };
  if (!sections) return Object.keys(schema.shape).map(line).join('\n');
  return sections.map(([title, keys]) => `${title}:\n${keys.map(line).join('\n')}`).join('\n\n');
}
