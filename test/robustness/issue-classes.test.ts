// Issue #11, one test per class: every reproduction ends in its expected result or one clean UserError that names
// the problem, leaves nothing behind, and never reaches an internal assertion. The same cases run as CLI calls
// with a timeout and a memory cap in scripts/robustness-repro.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { scratchDir } from '../support/broken-models.js';
import { ISSUE_CASES, type IssueClass } from '../support/issue-cases.js';
import { errorLines, isCleanError, runCli } from './in-process.js';

const classes = [...new Set(ISSUE_CASES.map((c) => c.klass))] as IssueClass[];

for (const klass of classes) {
  test(`issue #11 class '${klass}': a result or one clean error, nothing left behind`, async () => {
    for (const c of ISSUE_CASES.filter((x) => x.klass === klass)) {
      const dir = scratchDir('sqap-issue');
      try {
        const r = await runCli(c.setup(dir));
        const what = `${c.name}: exit ${r.status}, stderr ${JSON.stringify(r.stderr.slice(0, 400))}`;
        if (c.expect === 'ok') {
          assert.equal(r.status, 0, what);
        } else {
          assert.ok(isCleanError(r), what);
          if (c.message) assert.match(errorLines(r.stderr)[0], c.message, what);
          const leftover = c.after?.(dir);
          assert.equal(leftover, undefined, `${c.name}: ${leftover}`);
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });
}

test('a policy module whose createPolicyFactory throws fails each episode with the reason', async () => {
  const c = ISSUE_CASES.find((x) => x.name.includes('createPolicyFactory throws'))!;
  const dir = scratchDir('sqap-issue');
  try {
    const r = await runCli(c.setup(dir));
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { episodes: number; successes: number; results: { failureReason?: string }[] };
    assert.equal(summary.episodes, 2);
    assert.equal(summary.successes, 0);
    for (const result of summary.results) assert.match(result.failureReason ?? '', /createPolicyFactory threw: no weights/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
