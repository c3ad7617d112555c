// One behaviour-cloning step of tiny-openvla against PyTorch autograd (test/fixtures/tiny-openvla-train, float64):
// the loss, the logits the loss reads, the gradient of every used parameter, and the parameters after one AdamW
// step, on every backend pair this build has.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readJsonFile } from '../../src/io/json.js';
import { TrainableOpenVla, trainingStep, type TrainSample } from '../../src/train/model.js';
import { AdamW } from '../../src/train/adamw.js';
import { PARITY_F32_MAX_ABS, TRAIN_ADAMW_MAX_ABS, TRAIN_GRAD_MAX_RELATIVE } from '../tolerances.js';
import { fixturePath, ids, loadExpected, maxAbsDiff } from '../support/fixtures.js';
import { testGradBackends } from '../support/backends.js';

const expected = loadExpected('tiny-openvla-train');
const meta = readJsonFile(fixturePath('tiny-openvla-train', 'expected.json'), 'fixture') as {
  loss: number;
  unused_parameters: string[];
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number };
};
const gradNames = Object.keys(expected).filter((k) => k.startsWith('grad.')).map((k) => k.slice(5)).sort();

function sample(): TrainSample {
  return {
    pixelValues: expected.pixel_values.toF32(),
    inputIds: Int32Array.from(ids(expected.input_ids)),
    targets: Int32Array.from(ids(expected.labels)),
  };
}

for (const { backend, grad } of await testGradBackends()) {
  describe(`training step parity with PyTorch on ${backend.name} (backward: ${grad.name})`, () => {
    test('loss, logits, every gradient, one AdamW step', (t) => {
      const model = TrainableOpenVla.load(fixturePath('tiny-openvla'), backend, grad);
      assert.deepEqual([...model.usedParameters()].sort(), gradNames);
      const { loss, grads, targets, logits } = trainingStep(model, [sample()]);
      assert.equal(targets, 8);
      assert.ok(Math.abs(loss - meta.loss) <= PARITY_F32_MAX_ABS, `loss ${loss} vs ${meta.loss}`);
      // the fixture's logits cover all 34 positions; the loss reads the last 8
      const vocab = logits.shape[1];
      const reference = expected.logits.toF32().subarray((34 - 8) * vocab);
      const logitsError = maxAbsDiff(logits.data, reference);
      assert.ok(logitsError <= PARITY_F32_MAX_ABS, `logits: max abs error ${logitsError}`);

      assert.deepEqual(grads.names().sort(), gradNames);
      const worst = new Map<string, number>();
      for (const name of gradNames) {
        const ref = expected[`grad.${name}`].toF32();
        let scale = 0;
        for (const v of ref) scale = Math.max(scale, Math.abs(v));
        const relative = maxAbsDiff(grads.get(name)!, ref) / scale;
        assert.ok(relative <= TRAIN_GRAD_MAX_RELATIVE, `grad.${name}: relative error ${relative.toExponential(2)}`);
        const kind = name.replace(/\.\d+\./g, '.*.');
        worst.set(kind, Math.max(worst.get(kind) ?? 0, relative));
      }

      const { lr, betas, eps, weight_decay: weightDecay } = meta.adamw;
      new AdamW({ lr, betas, eps, weightDecay }).step(model.params, grads);
      let adamError = 0;
      for (const name of gradNames) adamError = Math.max(adamError, maxAbsDiff(model.params.get(name).data, expected[`adamw_step1.${name}`].toF32()));
      assert.ok(adamError <= TRAIN_ADAMW_MAX_ABS, `AdamW step: max abs error ${adamError}`);
      // unused parameters are untouched
      for (const name of meta.unused_parameters) assert.equal(grads.has(name), false, name);

      const overall = Math.max(...worst.values());
      t.diagnostic(`loss ${loss.toFixed(7)} (ref ${meta.loss.toFixed(7)}), logits max abs ${logitsError.toExponential(2)}, ` +
        `max relative gradient error ${overall.toExponential(2)}, AdamW max abs ${adamError.toExponential(2)}`);
      for (const [kind, error] of [...worst].sort((a, b) => b[1] - a[1]).slice(0, 8)) t.diagnostic(`  ${kind}: ${error.toExponential(2)}`);
    });
  });
}
