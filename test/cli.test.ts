// The `temper` command as a user runs it: help, the benchmarks' JSON line format,
// and a clear error with exit code 2 for bad arguments.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/temper.js', import.meta.url));
const temper = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

test('temper --help lists the commands', () => {
  const r = temper('--help');
  assert.equal(r.status, 0);
  for (const c of ['generate', 'tokenize', 'chat-template', 'bench']) assert.match(r.stdout, new RegExp(`\\n  ${c} `));
});

test('temper bench train --json prints tokens/s and MFU in the same line format', () => {
  const r = temper('bench', 'train', '--shape', 'tiny', '--json', '--no-peer', '--repeats', '1');
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
  assert.equal(o.suite, 'train');
  assert.equal(o.case, 'tiny');
  assert.equal(o.unit, 'ms');
  assert.ok((o.temper_tokens_per_s as number) > 0 && (o.mfu as number) > 0 && (o.mfu as number) < 1);
  assert.ok('peer' in o && 'ratio' in o);
  const bad = temper('bench', 'train', '--shape', 'huge', '--no-peer');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown --shape 'huge'/);
});

test('temper bench ops --json prints one object per case in the documented format', () => {
  const r = temper('bench', 'ops', '--json', '--no-peer', '--repeats', '1', '--cases', 'rotary,adamw_10M');
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const cases = rows.filter((o) => !String(o.case).startsWith('_'));
  assert.deepEqual(cases.map((o) => o.case), ['rotary', 'adamw_10M']);
  for (const o of cases) {
    assert.equal(o.suite, 'ops');
    assert.equal(o.unit, 'ms');
    assert.ok(typeof o.temper === 'number' && o.temper > 0);
    assert.ok('peer' in o && 'peer_name' in o && 'ratio' in o);
  }
  assert.ok(rows.some((o) => o.case === '_meta' && typeof o.sgemm_gflops === 'number'));
});

test('bad arguments get a one-line error and exit code 2', () => {
  const r = temper('bench', 'ops', '--cases', 'nope', '--no-peer');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown case 'nope'/);
  const u = temper('frobnicate');
  assert.equal(u.status, 2);
  assert.match(u.stderr, /unknown command 'frobnicate'/);
});
