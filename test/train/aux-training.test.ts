// The auxiliary training signals (docs/training.md, "Why the auxiliary losses"): the recording's privileged
// positions, the vision and query readouts, the soft action labels, and a run that uses them end to end.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { parseOpenVlaConfig } from '../../src/models/openvla.js';
import { mapSource } from '../../src/models/weights.js';
import { mulberry32 } from '../../src/random.js';
import { refBackend } from '../../src/tensor/backends/ref.js';
import { refGradBackend } from '../../src/tensor/backends/ref-grad.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { AdamW } from '../../src/train/adamw.js';
import { QUERY_PREFIX, queryRowTargets } from '../../src/train/aux-query.js';
import { addAuxHead, AUX_PREFIX, auxLoss, auxTargets, buildAuxSpec, readoutLoss } from '../../src/train/aux-vision.js';
import { DemoDataset } from '../../src/train/dataset.js';
import { Gradients } from '../../src/train/gradients.js';
import { trainingStep, TrainableOpenVla, type TrainSample } from '../../src/train/model.js';
import { ParamStore } from '../../src/train/params.js';
import { getPreset, initWeights, openVlaConfigJson } from '../../src/train/presets.js';
import { softCrossEntropy } from '../../src/train/soft-labels.js';
import { train, TRAIN_DEFAULTS, type TrainOptions } from '../../src/train/trainer.js';
import { buildVocabulary } from '../../src/train/vocabulary.js';

const BIN = fileURLToPath(new URL('../../bin/sqap-vla.js', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'sqap-aux-'));
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

test('a recording holds every object position per step and the fixtures; a placed cube ends on its plate', () => {
  const files = readdirSync(demos).filter((f) => /^episode_\d+\.json$/.test(f));
  assert.equal(files.length, 4);
  let placed = 0;
  for (const f of files) {
    const e = JSON.parse(readFileSync(join(demos, f), 'utf8'));
    const objects = Object.entries(e.object_positions as Record<string, number[][]>);
    assert.ok(objects.length >= 1, f);
    for (const [name, track] of objects) {
      assert.equal(track.length, e.steps, `${f} ${name}`);
      assert.ok(track.every((p) => p.length === 3 && p.every(Number.isFinite) && p[2] > 0), `${f} ${name}: on or above the table`);
    }
    for (const [name, p] of Object.entries(e.fixture_positions as Record<string, number[]>)) assert.equal(p.length, 3, name);
    if (e.task_id === 'goal-red-cube-on-plate' && e.success) {
      // the physics, not the recorder, decides where the cube ends: within a cube's width of the plate's centre
      const last = e.object_positions.red_cube.at(-1);
      const plate = e.fixture_positions.plate;
      assert.ok(Math.hypot(last[0] - plate[0], last[1] - plate[1]) < 0.05, `${f}: cube at ${last}, plate at ${plate}`);
      placed++;
    }
  }
  assert.ok(placed >= 1);
});

test('auxiliary targets are standardized over the recording and masked where an episode lacks the thing', () => {
  const dataset = DemoDataset.open(demos);
  const spec = buildAuxSpec(dataset.episodes.map((e) => e.state));
  assert.deepEqual(spec.names.slice(0, 4), ['ee.x', 'ee.y', 'ee.z', 'gripper_opening']);
  const k = spec.names.length;
  const sum = new Float64Array(k);
  const sq = new Float64Array(k);
  const count = new Float64Array(k);
  for (const e of dataset.episodes) {
    for (let t = 0; t < e.state.proprio.length; t++) {
      const { values, mask } = auxTargets(spec, e.state, t);
      for (let i = 0; i < k; i++) {
        if (!mask[i]) {
          assert.equal(values[i], 0);
          continue;
        }
        sum[i] += values[i];
        sq[i] += values[i] ** 2;
        count[i]++;
      }
      // a thing the episode's task does not have is masked out
      const names = new Set([...Object.keys(e.state.objectPositions ?? {}), ...Object.keys(e.state.fixturePositions ?? {}), 'ee', 'gripper_opening']);
      spec.names.forEach((name, i) => assert.equal(mask[i], names.has(name.replace(/\.[xyz]$/, '')) ? 1 : 0, name));
    }
  }
  for (let i = 0; i < k; i++) {
    assert.ok(Math.abs(sum[i] / count[i]) < 1e-6, `${spec.names[i]} mean ${sum[i] / count[i]}`);
    const variance = sq[i] / count[i];
    // unit variance, except a target that hardly moves (a resting cube's height): its scale is floored at 1 mm
    if (spec.std[i] > 1e-3) assert.ok(Math.abs(variance - 1) < 1e-6, `${spec.names[i]} variance ${variance}`);
    else assert.ok(variance < 1 && spec.std[i] === 1e-3, `${spec.names[i]} variance ${variance}`);
  }
});

test('soft labels: sigma 0 is the one-hot cross-entropy; otherwise the loss against the Gaussian, with its exact gradient', () => {
  const vocab = 12;
  const random = mulberry32(3);
  const logits = Float32Array.from({ length: 3 * vocab }, () => random() * 4 - 2);
  const labels = Int32Array.from([5, 9, 1]); // ids 4..10 are the "action bins"; 1 is outside (a one-hot target)
  const hard = refGradBackend.crossEntropy(Tensor.f32([3, vocab], logits), labels, 3);
  const none = softCrossEntropy(logits, vocab, labels, 3, { sigma: 0, first: 4, last: 10 });
  assert.ok(Math.abs(none.loss - hard.loss) < 1e-9 && Math.abs(none.nll - hard.loss) < 1e-9);
  none.dLogits.forEach((g, i) => assert.ok(Math.abs(g - hard.dLogits.data[i]) < 1e-7));

  const sigma = 1.5;
  const soft = softCrossEntropy(logits, vocab, labels, 3, { sigma, first: 4, last: 10 });
  // the loss by its definition: q = normalized exp(-(j-label)²/2σ²) over the bins within 3σ and inside 4..10
  let expected = 0;
  labels.forEach((label, r) => {
    const row = Array.from(logits.subarray(r * vocab, (r + 1) * vocab));
    const lse = Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
    const q = row.map((_, j) => (label >= 4 && j >= 4 && j <= 10 && Math.abs(j - label) <= Math.ceil(3 * sigma) ? Math.exp(-((j - label) ** 2) / (2 * sigma ** 2)) : label < 4 && j === label ? 1 : 0));
    const z = q.reduce((a, v) => a + v, 0);
    q.forEach((qj, j) => (expected -= (qj / z) * (row[j] - lse)));
  });
  assert.ok(Math.abs(soft.loss - expected / 3) < 1e-9, `${soft.loss} vs ${expected / 3}`);
  assert.ok(Math.abs(soft.nll - hard.loss) < 1e-9);
  // central differences in float64 on a copy of the logits
  for (const i of [0, 5, 7, 13, 21, 25, 30]) {
    const h = 1e-3;
    const at = (d: number) => {
      const x = Float32Array.from(logits);
      x[i] += d;
      return softCrossEntropy(x, vocab, labels, 3, { sigma, first: 4, last: 10 }).loss;
    };
    const numeric = (at(h) - at(-h)) / (2 * h);
    assert.ok(Math.abs(numeric - soft.dLogits[i]) < 1e-4, `logit ${i}: ${numeric} vs ${soft.dLogits[i]}`);
  }
});

test('a readout head gives the exact gradient of its masked mean squared error', () => {
  const params = new ParamStore(new Map());
  addAuxHead(params, 3, 5, 1, QUERY_PREFIX);
  const random = mulberry32(9);
  const x = Tensor.f32([4, 5], Float32Array.from({ length: 20 }, () => random() * 2 - 1));
  const targets = Float32Array.from({ length: 12 }, () => random());
  const mask = Float32Array.from({ length: 12 }, (_, i) => (i % 5 === 4 ? 0 : 1));
  const grads = new Gradients(refGradBackend);
  const r = readoutLoss(refBackend, refGradBackend, params, QUERY_PREFIX, x, targets, mask, 0.7, grads);
  const lossAt = (tensor: Tensor<'f32'>, i: number, d: number) => {
    const saved = tensor.data[i];
    tensor.data[i] = saved + d;
    const value = readoutLoss(refBackend, refGradBackend, params, QUERY_PREFIX, x, targets, mask, 0.7, new Gradients(refGradBackend)).loss;
    tensor.data[i] = saved;
    return value;
  };
  const h = 1e-2; // the loss is quadratic, so central differences are exact up to float32 rounding
  const w = params.get(`${QUERY_PREFIX}weight`);
  const dw = { data: grads.get(`${QUERY_PREFIX}weight`)! };
  for (let i = 0; i < 15; i += 2) assert.ok(Math.abs((lossAt(w, i, h) - lossAt(w, i, -h)) / (2 * h) - dw.data[i]) < 2e-4, `dW[${i}]`);
  for (let i = 0; i < 20; i += 3) assert.ok(Math.abs((lossAt(x, i, h) - lossAt(x, i, -h)) / (2 * h) - r.dX.data[i]) < 2e-4, `dX[${i}]`);
  assert.ok(Math.abs(r.loss - 0.7 * r.mse) < 1e-9);
});

test('the mean-pooled vision readout is the readout of the patch average, with the exact gradient per patch', () => {
  const params = new ParamStore(new Map());
  const [images, patches, channels, k] = [2, 3, 4, 5];
  addAuxHead(params, k, channels, 4);
  const random = mulberry32(11);
  const features = Tensor.f32([images * patches, channels], Float32Array.from({ length: images * patches * channels }, () => random() * 2 - 1));
  const targets = Float32Array.from({ length: images * k }, () => random());
  const mask = Float32Array.from({ length: images * k }, (_, i) => (i === 3 ? 0 : 1));
  const r = auxLoss(refBackend, refGradBackend, params, features, images, targets, mask, 0.5, new Gradients(refGradBackend), 'mean');
  // by definition: average the patches of each image by hand, then the plain readout
  const pooled = new Float32Array(images * channels);
  for (let b = 0; b < images; b++) for (let p = 0; p < patches; p++) for (let c = 0; c < channels; c++) pooled[b * channels + c] += features.data[(b * patches + p) * channels + c] / patches;
  const direct = readoutLoss(refBackend, refGradBackend, params, AUX_PREFIX, Tensor.f32([images, channels], pooled), targets, mask, 0.5, new Gradients(refGradBackend));
  assert.ok(Math.abs(r.loss - direct.loss) < 1e-6, `${r.loss} vs ${direct.loss}`);
  const h = 1e-2;
  for (let i = 0; i < features.size; i += 5) {
    const at = (d: number) => {
      const saved = features.data[i];
      features.data[i] = saved + d;
      const value = auxLoss(refBackend, refGradBackend, params, features, images, targets, mask, 0.5, new Gradients(refGradBackend), 'mean').loss;
      features.data[i] = saved;
      return value;
    };
    assert.ok(Math.abs((at(h) - at(-h)) / (2 * h) - r.dFeatures.data[i]) < 2e-4, `dFeatures[${i}]`);
  }
  // a grid head does not fit a mean readout, and the other way round
  assert.throws(() => auxLoss(refBackend, refGradBackend, params, features, images, targets, mask, 0.5, new Gradients(refGradBackend), 'grid'), /reads 4 inputs/);
});

test('query targets repeat the state and action on the action rows and leave the </s> row out', () => {
  const t = queryRowTargets(Float32Array.from([1, 2]), Float32Array.from([1, 0]), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, -1], 8);
  assert.equal(t.values.length, 8 * 9);
  for (let r = 0; r < 7; r++) {
    assert.deepEqual(Array.from(t.mask.subarray(r * 9, r * 9 + 9)), [1, 0, 1, 1, 1, 1, 1, 1, 1]);
    assert.ok(Math.abs(t.values[r * 9 + 8] + 1) < 1e-7 && t.values[r * 9] === 1);
  }
  assert.ok(t.mask.subarray(63).every((m) => m === 0));
});

test('the query readout and soft labels give the exact gradient through the decoder, projector and ViTs', () => {
  const sizes = getPreset('tiny');
  const vocab = buildVocabulary(['put the red cube on the plate']);
  const config = parseOpenVlaConfig(openVlaConfigJson(sizes, vocab, {}, 'tiny'), 'config.json');
  const model = TrainableOpenVla.fromSource(mapSource(Object.fromEntries(initWeights(sizes, vocab.embeddingRows, 1))), config, refBackend, refGradBackend);
  const hidden = config.textConfig.hidden_size as number;
  addAuxHead(model.params, 2, hidden, 0, QUERY_PREFIX);
  const random = mulberry32(7);
  const batch: TrainSample[] = [0, 1].map((b) => ({
    pixelValues: Float32Array.from({ length: 6 * sizes.imageSize ** 2 }, () => random() * 2 - 1),
    inputIds: Int32Array.from([1, 10, 11, 12, vocab.spaceId, 300 + b, 350, 400]),
    targets: Int32Array.from([300 + b, 350, 400, 2]),
  }));
  const targets = Float32Array.from({ length: 8 * 2 }, (_, i) => (i < 8 ? 1 : -1));
  const mask = new Float32Array(16).fill(1);
  const objective = (grads: Gradients) => {
    const step = trainingStep(model, batch, {
      grads,
      rowLoss: (normed) => {
        const r = readoutLoss(refBackend, refGradBackend, model.params, QUERY_PREFIX, normed, targets, mask, 1, grads);
        return { loss: r.loss, dNormed: r.dX };
      },
      softLabels: { sigma: 2, first: 300, last: 420 },
    });
    assert.ok(step.nll > 0 && step.rowLoss! > 0);
    return { value: step.loss + step.rowLoss!, grads: step.grads };
  };
  const { grads } = objective(new Gradients(refGradBackend));
  // directional derivatives along unit directions, by central differences, against the gradient
  const names = ['language_model.model.layers.0.self_attn.q_proj.weight', 'projector.fc1.weight', 'vision_backbone.featurizer.patch_embed.proj.weight'];
  for (const name of names) {
    const p = model.params.get(name);
    const g = grads.get(name)!;
    // half along the gradient (so the derivative is large enough to measure), half a random direction
    const r = Float32Array.from({ length: p.size }, () => random() * 2 - 1);
    const rNorm = Math.hypot(...r);
    const gNorm = Math.hypot(...g);
    const d = r.map((v, i) => v / rNorm + g[i] / gNorm);
    const norm = Math.hypot(...d);
    d.forEach((v, i) => (d[i] = v / norm));
    const analytic = g.reduce((a, gi, i) => a + gi * d[i], 0);
    const saved = Float32Array.from(p.data);
    const at = (h: number) => {
      p.data.forEach((_, i) => (p.data[i] = saved[i] + h * d[i]));
      const v = objective(new Gradients(refGradBackend)).value;
      p.data.set(saved);
      return v;
    };
    const h = 2e-2;
    const numeric = (at(h) - at(-h)) / (2 * h);
    assert.ok(Math.abs(analytic) > 1e-4, `${name}: no gradient`);
    assert.ok(Math.abs(numeric - analytic) < 0.03 * Math.abs(analytic) + 2e-4, `${name}: ${numeric} vs ${analytic}`);
  }
  // and descent on it lowers the readout's error on this fixed batch
  const optimizer = new AdamW({ lr: 3e-3 });
  const values: number[] = [];
  for (let i = 0; i < 8; i++) {
    const step = objective(new Gradients(refGradBackend));
    values.push(step.value);
    optimizer.step(model.params, step.grads);
  }
  assert.ok(values.at(-1)! < values[0] - 1, `objective ${values[0]} -> ${values.at(-1)}`);
});

function options(out: string, steps: number): TrainOptions {
  return {
    ...TRAIN_DEFAULTS, demos, out, preset: 'tiny', steps, batch: 2, lr: 2e-3, warmupSteps: 1, holdoutPerTask: 1, saveEverySeconds: 1e9,
    evalEvery: 0, evalEpisodes: 0, seed: 5, visionSteps: 2, auxWeight: 0.5, queryAuxWeight: 1, labelSigma: 2,
  };
}

test('a run with every auxiliary signal resumes exactly and writes a plain OpenVLA checkpoint that act loads', async () => {
  const straight = join(scratch, 'straight');
  const resumed = join(scratch, 'resumed');
  const run = (out: string): TrainOptions => ({ ...options(out, 5), auxPool: 'mean', heatmapWeight: 1 });
  await train(run(straight), refBackend, refGradBackend);
  let step = 0;
  await train(run(resumed), refBackend, refGradBackend, { onStep: (r) => (step = r.step), shouldStop: () => step >= 3 });
  // the resumed run takes its readout from the checkpoint, not from the (default) options it is called with
  const second = await train({ ...run(resumed), auxPool: 'grid' }, refBackend, refGradBackend);
  assert.equal(second.resumedFrom, 3);
  for (const file of ['training/master.safetensors', 'training/optimizer.safetensors', 'model.safetensors']) {
    assert.ok(readFileSync(join(straight, file)).equals(readFileSync(join(resumed, file))), `${file} differs`);
  }
  const log = readFileSync(join(straight, 'loss.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(log.map((r) => r.phase), ['vision', 'vision', 'bc', 'bc', 'bc']);
  assert.ok(log.slice(2).every((r) => r.query_mse > 0 && r.nll > 0 && r.aux_mse > 0));
  // the heatmaps train in both phases; a cross-entropy over 4 patches is at most about ln 4 at the start
  assert.ok(log.every((r) => r.heatmap_ce > 0 && r.heatmap_ce < 2), JSON.stringify(log.map((r) => r.heatmap_ce)));
  const checkpoint = Checkpoint.open(straight);
  try {
    const names = checkpoint.keys();
    assert.ok(names.length > 0 && !names.some((n) => n.startsWith('aux_')), 'training-only heads stay out of the model');
  } finally {
    checkpoint.close();
  }
  const image = join(scratch, 'frame.png');
  assert.equal(cli('sim', 'render', '--task', 'goal-red-cube-on-plate', '--seed', '5', '--out', image).code, 0);
  const act = cli('act', '--model', straight, '--image', image, '--instruction', 'put the red cube on the plate', '--json');
  assert.equal(act.code, 0, act.stderr);
  assert.equal(JSON.parse(act.stdout.trimEnd().split('\n').at(-1)!).action.length, 7);
});

test('--init-vision starts the ViTs from a checkpoint and the projector and decoder fresh', async () => {
  const source = join(scratch, 'vision-source');
  await train({ ...options(source, 3), lr: 2e-2 }, refBackend, refGradBackend);
  const out = join(scratch, 'vision-init');
  // one step at a tiny rate: AdamW moves each weight by about lr, so the copy is visible in the master weights
  await train({ ...options(out, 1), visionSteps: 0, initVision: source, lr: 1e-7, warmupSteps: 0 }, refBackend, refGradBackend);
  const from = Checkpoint.open(source);
  const to = Checkpoint.open(join(out, 'training', 'master.safetensors'));
  try {
    const maxDiff = (a: Checkpoint, b: Checkpoint, name: string) => {
      const x = a.read(name).toF32();
      const y = b.read(name).toF32();
      return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
    };
    for (const name of ['vision_backbone.featurizer.patch_embed.proj.weight', 'vision_backbone.fused_featurizer.blocks.0.attn.qkv.weight']) {
      assert.ok(maxDiff(from, to, name) < 1e-5, `${name} was not copied`);
    }
    // the source run trained its projector and decoder at a high rate from the same seed's initialization, which the
    // new run starts from afresh
    for (const name of ['projector.fc1.weight', 'language_model.model.layers.0.self_attn.q_proj.weight']) {
      assert.ok(maxDiff(from, to, name) > 1e-3, `${name} was copied`);
    }
  } finally {
    from.close();
    to.close();
  }
});

test('bad auxiliary options and a recording without positions are one-line errors', () => {
  const old = join(scratch, 'old-recording');
  cpSync(demos, old, { recursive: true });
  for (const f of readdirSync(old).filter((n) => /^episode_\d+\.json$/.test(n))) {
    const e = JSON.parse(readFileSync(join(old, f), 'utf8'));
    delete e.object_positions;
    delete e.fixture_positions;
    writeFileSync(join(old, f), JSON.stringify(e));
  }
  const cases: [string[], RegExp][] = [
    [['--demos', demos, '--out', join(scratch, 'e1'), '--steps', '3', '--vision-steps', '3'], /--vision-steps must be an integer from 0 to/],
    [['--demos', demos, '--out', join(scratch, 'e2'), '--steps', '3', '--label-sigma', '-1'], /--label-sigma must be a non-negative number/],
    [['--demos', demos, '--out', join(scratch, 'e3'), '--steps', '3', '--label-sigma', '100'], /--label-sigma must be a number of bins from 0 to 64/],
    [['--demos', old, '--out', join(scratch, 'e4'), '--steps', '3', '--query-aux-weight', '1'], /no object positions/],
    [['--demos', demos, '--out', join(scratch, 'e5'), '--steps', '3', '--init', demos, '--init-vision', demos], /--init and --init-vision exclude each other/],
    [['--demos', demos, '--out', join(scratch, 'e6'), '--steps', '3', '--aux-pool', 'max'], /--aux-pool must be one of grid, mean, got max/],
    [['--demos', demos, '--out', join(scratch, 'e7'), '--steps', '3', '--crop-scale', '1.5'], /--crop-scale must be a fraction of the area in \(0, 1\], got 1.5/],
    [['--demos', demos, '--out', join(scratch, 'e8'), '--steps', '3', '--heatmap-weight', 'x'], /--heatmap-weight must be a non-negative number/],
  ];
  for (const [args, message] of cases) {
    const r = cli('train', ...args, '--preset', 'tiny', '--batch', '1', '--holdout', '1', '--backend', 'ref');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
