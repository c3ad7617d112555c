// DAgger recordings (src/eval/dagger-policy.ts, `sim record --policy model`) and training on them (`train
// --add-demos`): the checkpoint drives, the noiseless expert labels every state; the dataset takes every labelled
// step of such a recording, failed episodes too, normalized with the primary recording's statistics.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DemoDataset } from '../../src/train/dataset.js';
import { makeTinyInstructionModel } from '../eval/tiny-model.js';

const BIN = fileURLToPath(new URL('../../bin/sqap-vla.js', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'sqap-dagger-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const expertDir = join(scratch, 'expert');
const mixedDir = join(scratch, 'dagger-mixed');
const expertDrivenDir = join(scratch, 'dagger-expert-driven');
const TASK = 'goal-red-cube-on-plate';

function cli(...args: string[]) {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 240_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

interface EpisodeFile {
  steps: number;
  success: boolean;
  actions: number[][];
  expert_actions?: number[][];
}

function episodes(dir: string): EpisodeFile[] {
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { episodes: { file: string }[] };
  return meta.episodes.map((e) => JSON.parse(readFileSync(join(dir, e.file), 'utf8')) as EpisodeFile);
}

let model: string;
before(() => {
  // tiny-openvla's random weights drive: their actions are noise, so the episodes fail and run to the step limit
  model = makeTinyInstructionModel(scratch);
  const common = ['--task', TASK, '--image-size', '56', '--workers', '1', '--backend', 'ref'];
  let r = cli('sim', 'record', '--task', TASK, '--episodes', '2', '--seed', '20000', '--image-size', '56', '--workers', '1', '--out', expertDir);
  assert.equal(r.code, 0, r.stderr);
  r = cli('sim', 'record', ...common, '--episodes', '1', '--seed', '41000', '--out', mixedDir, '--policy', 'model', '--model', model, '--expert-mix', '0.5');
  assert.equal(r.code, 0, r.stderr);
  r = cli('sim', 'record', ...common, '--episodes', '1', '--seed', '41000', '--out', expertDrivenDir, '--policy', 'model', '--model', model, '--expert-mix', '1', '--json');
  assert.equal(r.code, 0, r.stderr);
});

test('a DAgger recording says so in meta.json and labels every step with the expert command', () => {
  const meta = JSON.parse(readFileSync(join(mixedDir, 'meta.json'), 'utf8'));
  assert.deepEqual(meta.dagger, { model, variant: 'base', expert_mix: 0.5, label_approach: 'funnel' });
  const [episode] = episodes(mixedDir);
  assert.ok(episode.expert_actions, 'labels stored');
  assert.equal(episode.expert_actions.length, episode.steps);
  assert.equal(episode.actions.length, episode.steps);
  // half the steps execute the model's action, half the expert's: taken and labelled actions agree on some steps only
  const same = episode.actions.filter((a, t) => a.every((v, d) => v === episode.expert_actions![t][d])).length;
  assert.ok(same > 0 && same < episode.steps, `${same} of ${episode.steps} steps executed the label`);
});

test('with an expert mix of 1 the expert drives: every executed action is its label, and it solves the task', () => {
  const [episode] = episodes(expertDrivenDir);
  assert.deepEqual(episode.actions, episode.expert_actions);
  // the noiseless funnel expert solves this task on its own (the same expert the testbed's demonstrations use)
  assert.equal(episode.success, true);
});

test('--add-demos joins every labelled step of a DAgger recording, failed episodes too, under the primary statistics', () => {
  const primary = DemoDataset.open(expertDir);
  const joined = DemoDataset.open(expertDir, () => true, 0, [mixedDir]);
  const [dagger] = episodes(mixedDir);
  assert.equal(dagger.success, false, 'the random model fails (the case a plain recording would drop)');
  assert.equal(joined.steps.length, primary.steps.length + dagger.steps);
  assert.deepEqual(joined.stats, primary.stats);
  assert.deepEqual(joined.normStats, primary.normStats);
  // the target of a step the model drove is the expert's label, not the action taken
  const last = joined.episodes.length - 1;
  const driven = dagger.actions.findIndex((a, t) => a.some((v, d) => v !== dagger.expert_actions![t][d]));
  assert.ok(driven >= 0);
  assert.deepEqual(joined.action({ episode: last, step: driven }), dagger.expert_actions![driven]);
  assert.notDeepEqual(joined.action({ episode: last, step: driven }), dagger.actions[driven]);
});

test('an extra recording must match the frame size and have something to train on', () => {
  const small = join(scratch, 'small');
  const r = cli('sim', 'record', '--task', TASK, '--episodes', '1', '--seed', '20000', '--image-size', '48', '--workers', '1', '--out', small);
  assert.equal(r.code, 0, r.stderr);
  assert.throws(() => DemoDataset.open(expertDir, () => true, 0, [small]), /48x48 frames.*56x56: a run trains on one frame size/);
  assert.throws(() => DemoDataset.open(expertDir, () => true, 0, [join(scratch, 'missing')]), /demonstrations folder not found/);
});

test('sim record --policy flags are checked before anything runs', () => {
  const out = join(scratch, 'never');
  const cases: [string[], RegExp][] = [
    [['--policy', 'model'], /needs --model DIR/],
    [['--model', model], /--model applies to --policy model/],
    [['--policy', 'model', '--model', model, '--expert-mix', '1.5'], /--expert-mix must be a number from 0 to 1, got '1.5'/],
    [['--policy', 'model', '--model', model, '--expert-mix', ''], /--expert-mix must be a number from 0 to 1/],
    [['--policy', 'scripted'], /--policy must be 'expert' or 'model', got 'scripted'/],
  ];
  for (const [flags, message] of cases) {
    const r = cli('sim', 'record', '--task', TASK, '--episodes', '1', '--out', out, ...flags);
    assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('train --add-demos trains on both and a resumed run keeps its data and its evaluation settings', () => {
  const out = join(scratch, 'run');
  const r = cli('train', '--demos', expertDir, '--add-demos', mixedDir, '--out', out, '--preset', 'tiny', '--steps', '2', '--batch', '2', '--holdout', '1', '--eval-every', '2', '--eval-samples', '3', '--backend', 'ref', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trimEnd().split('\n').at(-1)!).eval.samples, 3);
  const state = JSON.parse(readFileSync(join(out, 'training', 'state.json'), 'utf8'));
  assert.deepEqual(state.options.addDemos, [mixedDir]);
  // extended by one step without --add-demos or --eval-*: the run's own data, and it still evaluates as it did
  const again = cli('train', '--demos', expertDir, '--out', out, '--resume', '--steps', '4', '--backend', 'ref', '--json');
  assert.equal(again.code, 0, again.stderr);
  const summary = JSON.parse(again.stdout.trimEnd().split('\n').at(-1)!);
  assert.equal(summary.step, 4);
  assert.equal(summary.eval.samples, 3, 'the resumed run kept --eval-every 2 --eval-samples 3');
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'training', 'state.json'), 'utf8')).options.addDemos, [mixedDir]);
});
