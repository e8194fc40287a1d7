// The progress display's plain mode (non-TTY stderr): throttled lines with sizes, rate and ETA.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createProgress } from '../src/cli/progress.js';

test('plain progress prints sizes, percentage, rate and ETA, and always the final line', () => {
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => (lines.push(s), true)) as typeof process.stderr.write;
  try {
    const p = createProgress('downloading x', 2_000_000, 'bytes', { plain: true });
    p.update(500_000, 'model.safetensors');
    p.update(600_000); // throttled: within 2 s of the previous line
    p.update(2_000_000);
    p.stop();
  } finally {
    process.stderr.write = write;
  }
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^downloading x: 500\.0 kB\/2\.0 MB \(25%\) .*\/s eta \S+ model\.safetensors\n$/);
  assert.match(lines[1]!, /^downloading x: 2\.0 MB\/2\.0 MB \(100%\)/);
});
