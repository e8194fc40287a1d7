// `temper builtin`: lists the models and datasets shipped with temper (builtin:<name>), with
// kinds, sizes and descriptions. Only parses arguments and reads src/io's registry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags } from './flags.js';
import { listBuiltins, type BuiltinListing } from '../io/builtin.js';

export const BUILTIN_HELP = `Usage: temper builtin [--json]

Lists the models and datasets shipped with temper. Use them anywhere a model or dataset is
expected, e.g. --model builtin:tiny --dataset builtin:arith-chat; they need no network.

  --json   print the list as JSON (one object per asset, with its absolute folder)
`;

function formatBytes(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

/** "train 2000, test 200" from the line counts of each split file. */
function splitRows(b: BuiltinListing): string {
  if (!b.splits) return '';
  return Object.entries(b.splits)
    .map(([name, file]) => {
      let rows: number | string = '?';
      try {
        rows = readFileSync(join(b.dir, file), 'utf8').split('\n').filter((l) => l.trim()).length;
      } catch {
        // A missing file shows as '?'; `temper builtin` still lists the entry.
      }
      return `${name} ${rows}`;
    })
    .join(', ');
}

/** Runs `temper builtin ARGV`; returns the exit code. */
export async function builtinCommand(argv: string[]): Promise<number> {
  const values = parseFlags('builtin', argv, { json: { type: 'boolean', default: false } });
  if (values.help) {
    process.stdout.write(BUILTIN_HELP);
    return 0;
  }
  const items = listBuiltins();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(items.map((b) => ({ ref: `builtin:${b.name}`, ...b })), null, 2)}\n`);
    return 0;
  }
  const rows = [
    ['NAME', 'KIND', 'SIZE', 'ROWS', 'DESCRIPTION'],
    ...items.map((b) => [`builtin:${b.name}`, b.kind, b.bytes ? formatBytes(b.bytes) : 'missing', splitRows(b) || '-', b.description]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')}\n`);
  return 0;
}
