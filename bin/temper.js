#!/usr/bin/env node
// The `temper` command: runs the compiled CLI (build with `npm run setup` or `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const main = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  console.error('temper: not built yet. Run `npm run setup` in the temper folder first.');
  process.exit(1);
}
const { run } = await import(main);
process.exitCode = await run(process.argv.slice(2));
