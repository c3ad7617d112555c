// The README's library example runs and prints the reference action tokens of tiny-openvla.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixturePath } from '../support/fixtures.js';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('examples/act.ts (the README library example) prints the reference action tokens', () => {
  const expected = JSON.parse(fs.readFileSync(fixturePath('tiny-openvla', 'expected.json'), 'utf8')) as { action_token_ids: number[] };
  const readme = fs.readFileSync(nodePath.join(ROOT, 'README.md'), 'utf8');
  const example = fs.readFileSync(nodePath.join(ROOT, 'examples', 'act.ts'), 'utf8');
  assert.ok(readme.includes(example.split('\n').slice(1).join('\n').trim()), 'README and examples/act.ts differ');
  // the `source` export condition resolves 'sqap-vla' to src/index.ts (the tests run on sources; library.test.ts
  // runs the compiled dist/ with plain node)
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', 'examples/act.ts'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const printed = r.stdout.replace(/\s+/g, ' ');
  assert.ok(printed.includes(expected.action_token_ids.join(', ')), printed);
});
