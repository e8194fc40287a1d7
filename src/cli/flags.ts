// Flags for the commands that are not trainers (generate, merge, bench, …), in one style:
// snake_case as TRL writes its keys, with the kebab-case spelling accepted as the same flag
// (--max-new-tokens is --max_new_tokens). Unknown flags and missing values are one-line
// errors that name the command. Trainers read flags through config.ts instead.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TemperError } from '../tensor/index.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<O extends Options> = { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { multiple: true } ? string[] : string } & { help?: boolean };

/** `--some-flag` -> `--some_flag` (the value after `=` is left alone). */
export function snakeFlag(arg: string): string {
  if (!arg.startsWith('--')) return arg;
  const eq = arg.indexOf('=');
  const name = eq < 0 ? arg : arg.slice(0, eq);
  return '--' + name.slice(2).replace(/-/g, '_') + (eq < 0 ? '' : arg.slice(eq));
}

/**
 * Parses argv for `command`; `options` are declared in snake_case. Adds --help / -h.
 * @example const v = parseFlags('generate', argv, { model: { type: 'string' } });
 */
export function parseFlags<O extends Options>(command: string, argv: readonly string[], options: O, opts: { positionals?: boolean } = {}): Values<O> & { positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv.map(snakeFlag),
      options: { ...options, help: { type: 'boolean', short: 'h', default: false } },
      strict: true,
      allowPositionals: opts.positionals ?? false,
    });
    return { ...(values as Values<O>), positionals };
  } catch (e) {
    const code = String((e as { code?: unknown }).code ?? '');
    if (!code.startsWith('ERR_PARSE_ARGS')) throw e;
    const msg = (e as Error).message.split('\n')[0]!.replace(/^Unknown option '(.*?)'.*$/, "unknown option '$1'").replace(/\. To specify a positional argument.*$/, '');
    throw new TemperError(`${command}: ${msg} (see temper ${command} --help)`);
  }
}
