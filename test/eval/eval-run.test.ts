// The eval harness on fake and real environments: paired episodes, resume after a kill, the report.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeReport } from '../../src/eval/report.js';
import { readResults, RESULTS_FILE } from '../../src/eval/results.js';
import { runEval, type EvalSpec } from '../../src/eval/run.js';

const scratch = mkdtempSync(join(tmpdir(), 'sqap-eval-run-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const FAKE_POLICY = fileURLToPath(new URL('./fake-eval-policy.ts', import.meta.url));
const FAKE_ENV = pathToFileURL(fileURLToPath(new URL('../sim/fake-env.ts', import.meta.url))).href;
const DRIVER = fileURLToPath(new URL('./eval-driver.ts', import.meta.url));
// one process (tsx's loader in-process, not the tsx CLI, which would run the script in a child a kill misses)
const TSX_IMPORT = ['--import', import.meta.resolve('tsx/esm')];

function fakeSpec(out: string, overrides: Partial<EvalSpec> = {}): EvalSpec {
  return {
    out,
    source: { kind: 'module', module: FAKE_POLICY },
    variants: ['base', 'w4a4', 'sqap@0.5', 'sqap@0.25'],
    tasks: ['fake_reach_near', 'fake_reach_far'],
    episodes: 5,
    seed: 3,
    batch: 3,
    workers: 1,
    envModule: FAKE_ENV,
    ...overrides,
  };
}

test('paired: every variant runs the same (task, seed) episodes from identical initial states', async () => {
  const out = join(scratch, 'paired');
  const progress: number[] = [];
  const outcome = await runEval({ ...fakeSpec(out), onProgress: (p) => progress.push(p.done) });
  assert.equal(outcome.ran, 40);
  assert.deepEqual(progress, [...Array(41).keys()], 'progress counts every episode once');
  const { episodes } = readResults(out);
  const byVariant = (v: string) => episodes.filter((e) => e.variant === v).map((e) => `${e.task}/${e.seed}/${e.init_hash}`);
  for (const v of ['w4a4', 'sqap@0.5', 'sqap@0.25']) assert.deepEqual(byVariant(v), byVariant('base'), v);
  // the hash does tell states apart
  assert.equal(new Set(episodes.map((e) => e.init_hash)).size, 10);
  // the variants really behave differently on those episodes (so pairing is not trivially satisfied)
  assert.notDeepEqual(
    episodes.filter((e) => e.variant === 'base').map((e) => e.success),
    episodes.filter((e) => e.variant === 'w4a4').map((e) => e.success),
  );
});

test('paired on the MuJoCo testbed: two variants see the same first observation per seed', async () => {
  const out = join(scratch, 'paired-mujoco');
  await runEval({
    out,
    source: { kind: 'module', module: fileURLToPath(new URL('./still-policy.ts', import.meta.url)) },
    variants: ['base', 'w8a8'],
    tasks: ['goal-stack-blue-on-red'],
    episodes: 2,
    seed: 7,
    batch: 2,
    workers: 1,
    maxSteps: 1,
  });
  const { episodes } = readResults(out);
  const hashes = (v: string) => episodes.filter((e) => e.variant === v).map((e) => e.init_hash);
  assert.deepEqual(hashes('w8a8'), hashes('base'));
  assert.notEqual(hashes('base')[0], hashes('base')[1], 'different seeds, different scenes');
});

test('resume: a run killed midway and rerun writes the same results file as an uninterrupted run', async () => {
  const whole = join(scratch, 'whole');
  const cut = join(scratch, 'cut');
  const uninterrupted = spawnSync(process.execPath, [...TSX_IMPORT, DRIVER, whole, '0'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(uninterrupted.status, 0, uninterrupted.stderr);

  const child = spawn(process.execPath, [...TSX_IMPORT, DRIVER, cut, '40'], { stdio: 'ignore' });
  const results = join(cut, RESULTS_FILE);
  // kill it once some but not all episodes are written
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      const lines = existsSync(results) ? readFileSync(results, 'utf8').split('\n').length - 2 : 0;
      if (lines >= 4) {
        clearInterval(timer);
        child.kill('SIGKILL');
        resolve();
      }
    }, 20);
    child.on('exit', () => {
      clearInterval(timer);
      reject(new Error('the driver finished before it could be killed'));
    });
  });
  const partial = readFileSync(results, 'utf8');
  const total = readFileSync(join(whole, RESULTS_FILE), 'utf8');
  assert.ok(partial.length < total.length, 'the kill left a partial file');
  const resumed = spawnSync(process.execPath, [...TSX_IMPORT, DRIVER, cut, '0'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.equal(readFileSync(results, 'utf8'), total);
});

test('a line cut by a kill is dropped on resume; another run\'s folder is refused with one line', async () => {
  const out = join(scratch, 'truncated');
  const spec = fakeSpec(out, { variants: ['base'], episodes: 2 });
  await runEval(spec);
  const full = readFileSync(join(out, RESULTS_FILE), 'utf8');
  const { writeFileSync } = await import('node:fs');
  // drop the last two episodes, and leave half of the line before them
  const lines = full.split('\n');
  writeFileSync(join(out, RESULTS_FILE), `${lines.slice(0, -3).join('\n')}\n${lines.at(-3)!.slice(0, 20)}`);
  const outcome = await runEval(spec);
  assert.equal(outcome.ran, 2);
  assert.equal(readFileSync(join(out, RESULTS_FILE), 'utf8'), full);
  await assert.rejects(runEval({ ...spec, episodes: 3 }), /holds the results of another run \(episodes 2 there, 3 now\)/);
  await assert.rejects(runEval({ ...spec, variants: ['base', 'w4a4'] }), /holds the results of another run \(variants/);
  await assert.rejects(runEval({ ...spec, out: scratch }), /is not empty and holds no results\.jsonl/);
});

test('report: self-contained HTML with the table, the plots and the frame strips; markdown; summary', async () => {
  const out = join(scratch, 'paired');
  const report = await writeReport(out, { title: 'Made with a fake policy on a fake env (test)' });
  const html = readFileSync(report.html, 'utf8');
  assert.doesNotMatch(html, /https?:\/\//, 'no URL: nothing is fetched');
  assert.doesNotMatch(html, /<script|<link|@import/);
  for (const heading of ['Headline', 'Success versus policy step time', 'Keep-ratio sweep', 'Success per task', 'What the policy looked at']) {
    assert.ok(html.includes(heading), heading);
  }
  assert.equal((html.match(/<svg/g) ?? []).length, 3, 'three plots: step time, keep sweep, per task');
  for (const variant of ['base', 'w4a4', 'sqap@0.5', 'sqap@0.25']) assert.ok(html.includes(`<td>${variant}</td>`), variant);
  assert.ok((html.match(/src="data:image\/png;base64,/g) ?? []).length >= 4, 'frame strips inline');
  assert.ok(html.includes('Dropped patches darkened'), 'pruned variants say what the overlay shows');
  // the plots carry the data: a point per variant in the step-time plot
  const md = readFileSync(report.markdown, 'utf8');
  assert.match(md, /\| variant \| success \| 95% CI \| Δ vs first \| p \(McNemar\) \|/);
  assert.match(md, /\| base \| /);
  for (const plot of ['success-vs-step-time', 'keep-sweep', 'per-task-success']) assert.ok(statSync(join(out, 'plots', `${plot}.svg`)).size > 1000, plot);
  // numbers: the fake timings (vision 10, prefill 30 x llm scale x keep, decode 20 x llm scale)
  const byName = new Map(report.summary.variants.map((v) => [v.name, v]));
  assert.equal(byName.get('base')!.step_ms.total, 60);
  assert.equal(byName.get('w4a4')!.step_ms.total, 10 + 0.4 * 50);
  assert.equal(byName.get('w4a4')!.speedup, 2);
  assert.equal(byName.get('sqap@0.5')!.step_ms.prefill, 15);
  assert.ok(report.summary.complete);
});
