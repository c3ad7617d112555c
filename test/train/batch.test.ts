// A packed batch (two sequences of different lengths, two images) must give exactly the gradients of the separate
// samples, weighted by their share of the targets: packing may not let attention leak across samples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrainableOpenVla, trainingStep, type TrainSample } from '../../src/train/model.js';
import { Gradients } from '../../src/train/gradients.js';
import { refBackend } from '../../src/tensor/backends/ref.js';
import { refGradBackend } from '../../src/tensor/backends/ref-grad.js';
import { fixturePath, ids, loadExpected, maxAbsDiff } from '../support/fixtures.js';
import { TRAIN_GRAD_MAX_RELATIVE } from '../tolerances.js';

test('a packed batch equals its samples accumulated one by one', () => {
  const expected = loadExpected('tiny-openvla-train');
  const model = TrainableOpenVla.load(fixturePath('tiny-openvla'), refBackend, refGradBackend);
  const pixels = expected.pixel_values.toF32();
  const inputIds = ids(expected.input_ids);
  const a: TrainSample = { pixelValues: pixels, inputIds: Int32Array.from(inputIds), targets: Int32Array.from(ids(expected.labels)) };
  const flipped = pixels.map((v, i) => pixels[pixels.length - 1 - i]);
  const b: TrainSample = { pixelValues: flipped, inputIds: Int32Array.from([1, 40, 9, 3, 300, 421]), targets: Int32Array.from([300, 421, 2]) };
  const batch = trainingStep(model, [a, b]);
  assert.equal(batch.targets, 11);
  const separate = new Gradients();
  const lossA = trainingStep(model, [a], { grads: separate, divisor: 11 }).loss;
  const lossB = trainingStep(model, [b], { grads: separate, divisor: 11 }).loss;
  assert.ok(Math.abs(batch.loss - (lossA + lossB)) < 1e-5, `${batch.loss} vs ${lossA} + ${lossB}`);
  for (const name of batch.grads.names()) {
    const ours = batch.grads.get(name)!;
    const reference = separate.get(name)!;
    const scale = reference.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(maxAbsDiff(ours, reference) <= TRAIN_GRAD_MAX_RELATIVE * scale, name);
  }
});
