// Fuzz suite (issue #11): random damage to checkpoint headers and tensors, configs, preprocessor configs, images
// and command lines; every case must end in a well-formed result or one clean UserError (no other exception, no
// malformed action). FUZZ_RUNS sets the cases per category (default 40, a few hundred in all, for CI);
// FUZZ_RUNS=3500 is the long run. FUZZ_SEED replays a run; FUZZ_REPORT=file.json writes the counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fc from 'fast-check';
import { scratchDir } from '../support/broken-models.js';
import { CATEGORIES, type CaseResult, type Outcome } from './fuzz-cases.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;
/** Resident memory above this after a case counts as runaway memory. */
const RSS_LIMIT_BYTES = 2 * 2 ** 30;

const report: Record<string, Record<Outcome | 'memory', number>> = {};

for (const category of CATEGORIES) {
  test(`fuzz ${category.name}: ${RUNS} cases end in a result or one clean UserError (seed ${SEED})`, { timeout: Math.max(120_000, RUNS * 5_000) }, async (t) => {
    const counts = (report[category.name] = { ok: 0, 'user-error': 0, bug: 0, garbage: 0, memory: 0 });
    const failures: string[] = [];
    const root = scratchDir('sqap-fuzz');
    let n = 0;
    try {
      await fc.assert(
        fc.asyncProperty(category.arbitrary, async (value) => {
          const dir = `${root}/${n++}`;
          let result: CaseResult;
          try {
            result = await category.run(value, dir);
          } catch (error) {
            result = { outcome: 'bug', detail: `escaped: ${(error as Error).stack ?? String(error)}`.slice(0, 400) };
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
          counts[result.outcome]++;
          if (process.memoryUsage().rss > RSS_LIMIT_BYTES) counts.memory++;
          if (result.outcome === 'bug' || result.outcome === 'garbage') failures.push(`${JSON.stringify(value).slice(0, 300)} -> ${result.outcome}: ${result.detail}`);
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
    t.diagnostic(`${category.name}: ${JSON.stringify(counts)}`);
    if (process.env.FUZZ_REPORT) fs.writeFileSync(process.env.FUZZ_REPORT, JSON.stringify({ seed: SEED, runs_per_category: RUNS, counts: report }, null, 1));
    assert.equal(failures.length, 0, `${failures.length} case(s) were not a result or a clean UserError (seed ${SEED}):\n${failures.slice(0, 5).join('\n')}`);
    assert.equal(counts.memory, 0, 'resident memory exceeded the limit');
  });
}
