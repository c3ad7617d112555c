import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { computeDatasetStatistics, openDemonstrations, recordDemonstrations } from '../../src/sim/record.js';
import { runEpisode } from '../../src/sim/episode.js';
import { columnStatistics, quantileSorted } from '../../src/sim/statistics.js';
import type { RgbImage } from '../../src/sim/types.js';
import { createEnv } from './fake-env.js';
import { fakeExpert } from './fake-policy.js';

const FAKE_ENV = fileURLToPath(new URL('./fake-env.ts', import.meta.url));
const FAKE_POLICY = fileURLToPath(new URL('./fake-policy.ts', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'sqap-record-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('statistics follow numpy: q01/q99 of 0..100 are 1 and 99, std with ddof 0', () => {
  const rows = Array.from({ length: 101 }, (_, i) => [i, 100 - i]);
  const stats = columnStatistics(rows);
  assert.deepEqual(stats.min, [0, 0]);
  assert.deepEqual(stats.max, [100, 100]);
  assert.deepEqual(stats.mean, [50, 50]);
  // population variance of 0..n is n(n+2)/12 = 850 for n = 100
  assert.ok(Math.abs(stats.std[0] - Math.sqrt(850)) < 1e-12);
  assert.ok(Math.abs(stats.q01[0] - 1) < 1e-12 && Math.abs(stats.q99[0] - 99) < 1e-12);
  // linear interpolation between order statistics: np.quantile([1, 2, 3, 4], [0.01, 0.99]) = [1.03, 3.97]
  assert.ok(Math.abs(quantileSorted([1, 2, 3, 4], 0.01) - 1.03) < 1e-12);
  assert.ok(Math.abs(quantileSorted([1, 2, 3, 4], 0.99) - 3.97) < 1e-12);
  const layout = computeDatasetStatistics('toy', [{ actions: [[0, 0, 0, 0, 0, 0, -1], [1, 1, 1, 1, 1, 1, 1]], proprio: [[0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]] }]);
  assert.deepEqual(Object.keys(layout.toy).sort(), ['action', 'num_trajectories', 'num_transitions', 'proprio']);
  assert.deepEqual(layout.toy.action.mask, [true, true, true, true, true, true, false]);
  assert.deepEqual(layout.toy.action.mean, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0]);
  assert.equal(layout.toy.num_transitions, 2);
});

test('recorded episodes read back identical to a direct run; statistics cover successful episodes only', async () => {
  const dir = join(scratch, 'demos');
  const summary = await recordDemonstrations({
    tasks: ['fake_reach_far'],
    episodes: 3,
    seed: 20,
    out: dir,
    workers: 2,
    envModule: FAKE_ENV,
    policy: { module: FAKE_POLICY, options: { behaviour: 'throw', badSeed: 21, badStep: 1 } },
    datasetName: 'fake_demos',
  });
  assert.equal(summary.episodes, 3);
  assert.equal(summary.successes, 2);
  assert.equal(summary.statistics_written, true);

  const demos = openDemonstrations(dir);
  assert.equal(demos.length, 3);
  assert.equal(demos.meta.num_successful, 2);
  assert.deepEqual(demos.meta.episodes.map((entry) => [entry.file, entry.seed, entry.success]), [
    ['episode_000000.json', 20, true],
    ['episode_000001.json', 21, false],
    ['episode_000002.json', 22, true],
  ]);
  const successful = [...demos.episodes({ successfulOnly: true })];
  assert.deepEqual(successful.map((episode) => episode.seed), [20, 22]);

  for (const episode of demos.episodes()) {
    const env = await createEnv('fake_reach_far', episode.seed);
    const actions: number[][] = [];
    const proprio: number[][] = [];
    const policy = episode.seed === 21 ? { act: () => { if (actions.length >= 1) throw new Error('policy exploded'); return fakeExpert(env).act(env.observe()) as number[]; } } : fakeExpert(env);
    const direct = await runEpisode(env, policy, { recordFrames: true, onStep: (info) => { actions.push(info.action); proprio.push(info.observation.proprio); } });
    assert.equal(episode.success, direct.success);
    assert.equal(episode.steps, direct.frames?.length);
    assert.deepEqual(episode.actions, actions);
    assert.deepEqual(episode.proprio, proprio);
    assert.equal(episode.instruction, 'reach the far point');
    assert.deepEqual(episode.frames.map(plain), (direct.frames ?? []).map(plain));
    const rgbBytes = statSync(join(dir, `episode_00000${episode.index}.rgb`)).size;
    assert.equal(rgbBytes, episode.steps * 8 * 8 * 3);
  }
  assert.equal(demos.episode(1).failureReason, 'policy error at step 1: policy exploded');

  const expected = computeDatasetStatistics('fake_demos', successful);
  assert.deepEqual(demos.statistics, JSON.parse(JSON.stringify(expected)));
  assert.equal(demos.statistics?.fake_demos.num_trajectories, 2);
});

test('a labelling policy writes expert_actions, and the statistics describe the labels', async () => {
  const dir = join(scratch, 'labelled');
  await recordDemonstrations({
    tasks: ['fake_reach_far'], episodes: 2, seed: 30, out: dir, workers: 1, envModule: FAKE_ENV,
    policy: { module: FAKE_POLICY, options: { labelledOffset: 0.25 } }, datasetName: 'fake_labelled',
  });
  const demos = openDemonstrations(dir);
  const episodes = [demos.episode(0, { frames: false }), demos.episode(1, { frames: false })];
  for (const episode of episodes) {
    assert.equal(episode.expertActions?.length, episode.steps);
    episode.actions.forEach((action, t) => {
      const label = episode.expertActions?.[t] ?? [];
      assert.deepEqual(action.slice(1), label.slice(1));
      assert.equal(action[0], Math.max(-1, Math.min(1, label[0] + 0.25)));
    });
  }
  const fromLabels = computeDatasetStatistics('fake_labelled', episodes.map((e) => ({ actions: e.expertActions ?? [], proprio: e.proprio })));
  const fromActions = computeDatasetStatistics('fake_labelled', episodes);
  assert.deepEqual(demos.statistics, JSON.parse(JSON.stringify(fromLabels)));
  assert.notDeepEqual(fromLabels.fake_labelled.action.mean, fromActions.fake_labelled.action.mean);
});

test("the scripted expert's options reach the recording: --expert-approach funnel labels as a direct funnel expert does", async () => {
  const task = 'spatial-left-cube-to-plate';
  const dir = join(scratch, 'funnel');
  await recordDemonstrations({ tasks: [task], episodes: 1, seed: 4, out: dir, workers: 2, imageSize: 32, policy: { expert: { approach: 'funnel' } } });
  const demos = openDemonstrations(dir);
  assert.equal(demos.meta.expert_approach, 'funnel');
  const recorded = demos.episode(0, { frames: false }).expertActions;
  const { createEnv: createSimEnv } = await import('../../src/sim/env.js');
  const { createExpert } = await import('../../src/sim/experts.js');
  const labels = async (approach: 'hover' | 'funnel') => {
    const env = await createSimEnv(task, 4, { render: false });
    try {
      const expert = createExpert(env, 4, { approach });
      await expert.reset?.(task, 4);
      const out: number[][] = [];
      let result = { done: false };
      while (!result.done) {
        const action = await expert.act(env.observe({ render: false }));
        out.push(expert.label?.() as number[]);
        result = env.step(action);
      }
      return out;
    } finally {
      env.close();
    }
  };
  const round = (rows: number[][]) => rows.map((row) => row.map((v) => Math.fround(v)));
  assert.deepEqual(round(recorded ?? []), round(await labels('funnel')));
  assert.notDeepEqual(round(recorded ?? []), round(await labels('hover')));
});

test('the files do not depend on the worker count', async () => {
  const spec = { tasks: ['fake_reach_near', 'fake_reach_far'], episodes: 2, seed: 7, envModule: FAKE_ENV, policy: { module: FAKE_POLICY } };
  await recordDemonstrations({ ...spec, out: join(scratch, 'w1'), workers: 1 });
  await recordDemonstrations({ ...spec, out: join(scratch, 'w2'), workers: 2 });
  const files = readdirSync(join(scratch, 'w1')).filter((name) => name !== 'meta.json');
  assert.deepEqual(files, readdirSync(join(scratch, 'w2')).filter((name) => name !== 'meta.json'));
  for (const name of files) assert.ok(readFileSync(join(scratch, 'w1', name)).equals(readFileSync(join(scratch, 'w2', name))), name);
  await assert.rejects(recordDemonstrations({ ...spec, out: join(scratch, 'w1') }), { name: 'UserError', message: /not empty/ });
});

function plain(image: RgbImage) {
  return { width: image.width, height: image.height, data: Buffer.from(image.data).toString('base64') };
}
