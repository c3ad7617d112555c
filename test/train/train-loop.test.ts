// The training loop end to end on the `tiny` preset: loss goes down on a fixed batch, a resumed run equals an
// uninterrupted one bit for bit, `train` writes a checkpoint that `act` loads, and user errors are one line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseOpenVlaConfig } from '../../src/models/openvla.js';
import { mapSource } from '../../src/models/weights.js';
import { mulberry32 } from '../../src/random.js';
import { refBackend } from '../../src/tensor/backends/ref.js';
import { refGradBackend } from '../../src/tensor/backends/ref-grad.js';
import { getBackend } from '../../src/tensor/backends/index.js';
import { getGradBackend } from '../../src/tensor/backends/grad-index.js';
import { AdamW } from '../../src/train/adamw.js';
import { trainingStep, TrainableOpenVla, type TrainSample } from '../../src/train/model.js';
import { getPreset, initWeights, openVlaConfigJson } from '../../src/train/presets.js';
import { train, TRAIN_DEFAULTS, type TrainOptions } from '../../src/train/trainer.js';
import { buildVocabulary } from '../../src/train/vocabulary.js';

const BIN = fileURLToPath(new URL('../../bin/sqap-vla.js', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'sqap-train-'));
const demos = join(scratch, 'demos');
after(() => rmSync(scratch, { recursive: true, force: true }));

function cli(...args: string[]) {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

before(() => {
  const r = cli('sim', 'record', '--task', 'goal-red-cube-on-plate', '--task', 'goal-push-red-cube-to-zone', '--episodes', '2', '--seed', '20000', '--image-size', '56', '--workers', '1', '--out', demos);
  assert.equal(r.code, 0, r.stderr);
});

test('a few AdamW steps on a fixed batch lower the loss (tiny preset, ref backward)', () => {
  const sizes = getPreset('tiny');
  const vocab = buildVocabulary(['put the red cube on the plate']);
  const config = parseOpenVlaConfig(openVlaConfigJson(sizes, vocab, {}, 'tiny'), 'config.json');
  const model = TrainableOpenVla.fromSource(mapSource(Object.fromEntries(initWeights(sizes, vocab.embeddingRows, 1))), config, refBackend, refGradBackend);
  const random = mulberry32(7);
  const batch: TrainSample[] = [0, 1].map((b) => ({
    pixelValues: Float32Array.from({ length: 6 * sizes.imageSize ** 2 }, () => random() * 2 - 1),
    inputIds: Int32Array.from([1, 10, 11, 12, vocab.spaceId, 300 + b, 350, 400]),
    targets: Int32Array.from([300 + b, 350, 400, 2]),
  }));
  const optimizer = new AdamW({ lr: 3e-3 });
  const first = trainingStep(model, batch).loss;
  let loss = first;
  for (let i = 0; i < 12; i++) {
    const step = trainingStep(model, batch);
    loss = step.loss;
    optimizer.step(model.params, step.grads);
  }
  assert.ok(loss < first - 1, `loss ${first} -> ${loss}`);
});

function options(out: string, steps: number): TrainOptions {
  return { ...TRAIN_DEFAULTS, demos, out, preset: 'tiny', steps, batch: 2, lr: 2e-3, warmupSteps: 2, holdoutPerTask: 1, saveEverySeconds: 1e9, evalEvery: 0, evalEpisodes: 0, seed: 3 };
}

test('a run stopped and resumed ends with the same weights as an uninterrupted run', async () => {
  const straight = join(scratch, 'straight');
  const resumed = join(scratch, 'resumed');
  await train(options(straight, 6), refBackend, refGradBackend);
  let step = 0;
  const first = await train(options(resumed, 6), refBackend, refGradBackend, { onStep: (r) => (step = r.step), shouldStop: () => step >= 3 });
  assert.equal(first.step, 3);
  const second = await train(options(resumed, 6), refBackend, refGradBackend);
  assert.equal(second.resumedFrom, 3);
  assert.equal(second.step, 6);
  for (const file of ['training/master.safetensors', 'training/optimizer.safetensors', 'model.safetensors']) {
    assert.ok(readFileSync(join(straight, file)).equals(readFileSync(join(resumed, file))), `${file} differs`);
  }
  const losses = (dir: string) => readFileSync(join(dir, 'loss.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
  assert.deepEqual(losses(resumed), losses(straight));
});

test('the per-step buffer pool changes no bit: same weights and losses with it and without it (every auxiliary loss on)', async () => {
  // the fast backends (native where built), which take their outputs from the pool; the auxiliary losses and soft
  // labels cover every training-side buffer that goes back to the pool at a step's end
  const withAux = (out: string, bufferPool: boolean): TrainOptions => ({
    ...options(out, 6), visionSteps: 2, auxWeight: 0.5, queryAuxWeight: 1, heatmapWeight: 1, labelSigma: 2, auxPool: 'mean', bufferPool,
  });
  const pooled = join(scratch, 'pooled');
  const fresh = join(scratch, 'unpooled');
  await train(withAux(pooled, true), getBackend('auto'), getGradBackend('auto'));
  await train(withAux(fresh, false), getBackend('auto'), getGradBackend('auto'));
  for (const file of ['training/master.safetensors', 'training/optimizer.safetensors']) {
    assert.ok(readFileSync(join(pooled, file)).equals(readFileSync(join(fresh, file))), `${file} differs`);
  }
  const log = (dir: string) => readFileSync(join(dir, 'loss.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const a = log(pooled);
  assert.equal(a.length, 6);
  assert.ok(a.some((r) => Number.isFinite(r.heatmap_ce)) && a.some((r) => Number.isFinite(r.query_mse)), 'the auxiliary losses ran');
  assert.deepEqual(a.map((r) => [r.loss, r.grad_norm]), log(fresh).map((r) => [r.loss, r.grad_norm]));
});

test('train on a recorded dataset writes a checkpoint that act loads with its own tokenizer', () => {
  const out = join(scratch, 'cli-run');
  const r = cli('train', '--demos', demos, '--out', out, '--preset', 'tiny', '--steps', '3', '--batch', '2', '--holdout', '1', '--eval-every', '3', '--eval-samples', '4', '--backend', 'ref', '--json');
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trimEnd().split('\n').at(-1)!);
  assert.equal(summary.step, 3);
  assert.equal(summary.eval.samples, 4);
  // per-dimension errors: 7 of them, averaging to the overall error; the constant answer's are non-negative
  assert.equal(summary.eval.action_mae_per_dim.length, 7);
  const mean = summary.eval.action_mae_per_dim.reduce((a: number, b: number) => a + b, 0) / 7;
  assert.ok(Math.abs(mean - summary.eval.action_mae) < 1e-12);
  assert.equal(summary.eval.constant_mae_per_dim.length, 7);
  assert.ok(summary.eval.constant_mae_per_dim.every((v: number) => v >= 0 && v <= 2));
  // --resume without --steps keeps the run's own length (nothing left to do), rather than stretching it to the default
  const again = cli('train', '--demos', demos, '--out', out, '--resume', '--backend', 'ref', '--json');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout.trimEnd().split('\n').at(-1)!).step, 3);
  const image = join(scratch, 'frame.png');
  assert.equal(cli('sim', 'render', '--task', 'goal-red-cube-on-plate', '--seed', '5', '--out', image).code, 0);
  const act = cli('act', '--model', out, '--image', image, '--instruction', 'put the red cube on the plate', '--json');
  assert.equal(act.code, 0, act.stderr);
  const result = JSON.parse(act.stdout.trimEnd().split('\n').at(-1)!);
  assert.equal(result.action.length, 7);
  assert.equal(result.unnorm_key, 'sqap_sim');
  // the checkpoint records the recording's frame size (56 px, not the preset's input size), and closed loop renders
  // at it unless --image-size says otherwise
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.sqap_vla_camera_image_size, 56);
  assert.notEqual(getPreset('tiny').imageSize, 56);
  for (const [flags, size] of [[[], 56], [['--image-size', '64'], 64]] as const) {
    const frames = join(scratch, `frames-${size}`);
    const run = cli('sim', 'run', '--task', 'goal-red-cube-on-plate', '--policy', 'model', '--model', out, '--episodes', '1', '--seed', '7', '--frames', frames, ...flags, '--json');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout.trimEnd().split('\n').at(-1)!).image_size, size);
    // the frames the policy saw: the PNG header's width and height
    const png = readFileSync(join(frames, 'goal-red-cube-on-plate', 'seed_7', 'step_0000.png'));
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [size, size]);
  }
});

test('user errors are one line: missing demos, not a recording, unknown preset, resume without a checkpoint', () => {
  const notRecording = join(scratch, 'empty');
  mkdirSync(notRecording, { recursive: true });
  const cases: [string[], RegExp][] = [
    [['--demos', join(scratch, 'nope'), '--out', join(scratch, 'o1')], /demonstrations folder not found/],
    [['--demos', notRecording, '--out', join(scratch, 'o2')], /not a demonstration directory/],
    [['--demos', demos, '--out', join(scratch, 'o3'), '--preset', 'huge'], /unknown preset 'huge'/],
    [['--demos', demos, '--out', join(scratch, 'o4'), '--resume'], /--resume: no training checkpoint/],
  ];
  for (const [args, message] of cases) {
    const r = cli('train', ...args, '--steps', '1', '--backend', 'ref');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
