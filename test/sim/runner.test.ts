import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { invalidActionReason, runEpisode } from '../../src/sim/episode.js';
import { runEpisodes, type RunSpec, type RunSummary } from '../../src/sim/runner.js';
import { wilsonInterval } from '../../src/sim/statistics.js';
import { createEnv } from './fake-env.js';
import { fakeExpert, misbehaving, type FakeBehaviour } from './fake-policy.js';

const FAKE_ENV = fileURLToPath(new URL('./fake-env.ts', import.meta.url));
const FAKE_POLICY = fileURLToPath(new URL('./fake-policy.ts', import.meta.url));
const TASKS = ['fake_reach_near', 'fake_reach_far'];

const withoutTimes = (summary: RunSummary) => summary.results.map(({ wallMs: _, ...rest }) => rest);

test('the fake expert succeeds and the episode stops at success', async () => {
  const env = await createEnv('fake_reach_far', 3);
  const steps: number[] = [];
  const result = await runEpisode(env, fakeExpert(env), { recordFrames: true, onStep: (info) => steps.push(info.step) });
  assert.equal(result.success, true);
  assert.equal(result.failureReason, undefined);
  assert.equal(result.steps, env.stepCount);
  assert.ok(result.steps < env.task.maxSteps);
  assert.deepEqual(steps, [...Array(result.steps).keys()]);
  assert.equal(result.frames?.length, result.steps);
});

test('an episode that never succeeds stops at the step limit', async () => {
  const env = await createEnv('fake_reach_near', 0);
  const result = await runEpisode(env, { act: () => [0, 0, 0, 0, 0, 0, -1] });
  assert.deepEqual([result.success, result.steps, result.failureReason], [false, env.task.maxSteps, undefined]);
});

test('invalid actions and throwing policies fail that episode with a reason', async () => {
  const cases: [FakeBehaviour, RegExp][] = [
    ['nan', /^invalid action at step 2: expected 7 finite numbers, got \[.*, NaN\]$/],
    ['six', /^invalid action at step 2: expected 7 finite numbers, got \[[^\]]*\]$/],
    ['strings', /^invalid action at step 2: expected 7 finite numbers, got \["/],
    ['throw', /^policy error at step 2: policy exploded$/],
  ];
  for (const [behaviour, reason] of cases) {
    const env = await createEnv('fake_reach_far', 5);
    const result = await runEpisode(env, misbehaving(env, { behaviour, badSeed: 5, badStep: 2 }));
    assert.equal(result.success, false, behaviour);
    assert.match(result.failureReason ?? '', reason, behaviour);
    assert.equal(result.steps, 2, behaviour);
  }
  assert.match(invalidActionReason([1, 2, 3, 4, 5, 6, Infinity]) ?? '', /Infinity/);
  assert.match(invalidActionReason(new Float32Array(7)) ?? '', /Float32Array/);
  assert.equal(invalidActionReason([0, 0, 0, 0, 0, 0, 1]), undefined);
});

test('one bad episode does not stop the run (function policy, main thread)', async () => {
  const summary = await runEpisodes({
    tasks: TASKS,
    episodes: 3,
    seed: 10,
    policy: (env) => misbehaving(env, { behaviour: 'throw', badSeed: 11 }),
    envModule: FAKE_ENV,
  });
  assert.equal(summary.episodes, 6);
  assert.equal(summary.workers, 1);
  const failed = summary.results.filter((result) => !result.success);
  assert.deepEqual(failed.map((result) => [result.taskId, result.seed]), [['fake_reach_near', 11], ['fake_reach_far', 11]]);
  assert.ok(failed.every((result) => result.failureReason === 'policy error at step 0: policy exploded'));
  assert.equal(summary.tasks.fake_reach_near.successes, 2);
  assert.equal(summary.success_rate, 4 / 6);
});

test('results are the same for 1 and 2 worker threads, in job order', async () => {
  const framesDir = mkdtempSync(join(tmpdir(), 'sqap-runner-'));
  try {
    const spec = {
      tasks: TASKS,
      episodes: 3,
      seed: 100,
      policy: { module: FAKE_POLICY, options: { behaviour: 'nan', badSeed: 101 } },
      envModule: FAKE_ENV,
    } as const;
    const progress: number[] = [];
    const one = await runEpisodes({ ...spec, workers: 1 });
    const two = await runEpisodes({ ...spec, workers: 2, frames: framesDir, onProgress: (p) => progress.push(p.done) });
    assert.equal(two.workers, 2);
    assert.deepEqual(withoutTimes(two), withoutTimes(one));
    assert.deepEqual(progress, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(
      one.results.map((result) => `${result.taskId}/${result.seed}`),
      TASKS.flatMap((task) => [100, 101, 102].map((seed) => `${task}/${seed}`)),
    );
    assert.equal(one.results.filter((result) => result.failureReason?.startsWith('invalid action at step 0')).length, 2);
    const episodeDir = join(framesDir, 'fake_reach_far', 'seed_100');
    assert.equal(readdirSync(episodeDir).length, two.results[3].steps);
    assert.ok(existsSync(join(episodeDir, 'step_0000.png')));
  } finally {
    rmSync(framesDir, { recursive: true, force: true });
  }
});

test('the MuJoCo env with the scripted expert gives the same results for 1 and 2 workers', async () => {
  const { listTasks } = await import('../../src/sim/tasks.js');
  const spec: RunSpec = { tasks: [listTasks()[0].id], episodes: 2, seed: 40, policy: 'expert' };
  const one = await runEpisodes({ ...spec, workers: 1 });
  const two = await runEpisodes({ ...spec, workers: 2 });
  assert.deepEqual(withoutTimes(two), withoutTimes(one));
  assert.ok(one.results.every((result) => result.steps > 0 && result.failureReason === undefined));
});

test('a policy module without the factory export is a user error', async () => {
  await assert.rejects(
    runEpisodes({ tasks: TASKS, episodes: 2, seed: 0, workers: 2, envModule: FAKE_ENV, policy: { module: FAKE_POLICY, exportName: 'nope' } }),
    { name: 'UserError', message: /has no exported function 'nope'/ },
  );
  await assert.rejects(
    runEpisodes({ tasks: TASKS, episodes: 1, seed: 0, policy: { module: 'no/such/policy.ts' } }),
    { name: 'UserError', message: /does not exist/ },
  );
});

test('Wilson 95% interval matches the closed form', () => {
  const [low0, high0] = wilsonInterval(0, 10);
  assert.equal(low0, 0);
  assert.ok(Math.abs(high0 - 0.27753) < 1e-4);
  const [low, high] = wilsonInterval(5, 10);
  assert.ok(Math.abs(low - 0.23659) < 1e-4 && Math.abs(high - 0.76341) < 1e-4);
  assert.deepEqual(wilsonInterval(0, 0), [0, 1]);
});

