// The heatmap targets and loss (src/train/aux-heatmap.ts), checked against their definitions: the projection of a
// known camera, a Gaussian whose centroid is the pixel, the crop it follows, and the gradient by finite differences.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '../../src/random.js';
import { refBackend } from '../../src/tensor/backends/ref.js';
import { refGradBackend } from '../../src/tensor/backends/ref-grad.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { augmentImage, augmentWithCrop, OPENVLA_AUGMENT } from '../../src/train/augment.js';
import { addHeatmapHead, buildHeatmapSpec, HEATMAP_WEIGHT, heatmapLoss, heatmapTargets } from '../../src/train/aux-heatmap.js';
import type { AuxEpisode } from '../../src/train/aux-vision.js';
import { Gradients } from '../../src/train/gradients.js';
import { ParamStore } from '../../src/train/params.js';

// a camera looking down its z axis from 1 m: world (X, Y, 0) lands on pixel (100·X + 50, 100·Y + 50) of a 100 px frame
const camera = { width: 100, height: 100, intrinsics: [100, 0, 50, 0, 100, 50, 0, 0, 1], worldToCamera: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1] };
const withPlate: AuxEpisode = {
  proprio: [[0.1, -0.1, 0, 0, 0, 0, 0.04]],
  objectPositions: { cube: [[0.6, 0, 0]] }, // pixel 110: outside the frame
  fixturePositions: { plate: [-0.2, 0.2, 0] },
};
const withoutPlate: AuxEpisode = { proprio: [[0, 0, 0, 0, 0, 0, 0]], objectPositions: { cube: [[0, 0, 0]] }, fixturePositions: {} };

/** the target's centroid (column, row) in patch units and its argmax patch, for entity k */
function centroid(values: Float32Array, entities: number, k: number, side: number): { u: number; v: number; sum: number; argmax: number } {
  let u = 0;
  let v = 0;
  let sum = 0;
  let argmax = 0;
  for (let p = 0; p < side * side; p++) {
    const t = values[p * entities + k];
    u += t * ((p % side) + 0.5);
    v += t * (Math.floor(p / side) + 0.5);
    sum += t;
    if (t > values[argmax * entities + k]) argmax = p;
  }
  return { u, v, sum, argmax };
}

test('heatmap targets: a Gaussian over the patches centred on the projected pixel, following the crop, masked when unseen', () => {
  const spec = buildHeatmapSpec([withPlate, withoutPlate]);
  assert.deepEqual(spec.entities, ['ee', 'ee_ground', 'cube', 'plate']);
  const E = spec.entities.length;
  const side = 4; // 25 px patches over the whole frame
  const full = heatmapTargets(spec, withPlate, 0, camera, { x0: 0, y0: 0, width: 100, height: 100 }, side);
  assert.deepEqual(Array.from(full.mask), [1, 1, 0, 1]);
  // ee at pixel (60, 40): patch units (2.4, 1.6), inside patch row 1, column 2
  const ee = centroid(full.values, E, 0, side);
  assert.ok(Math.abs(ee.sum - 1) < 1e-6);
  assert.equal(ee.argmax, 1 * side + 2);
  // the sampled Gaussian's centroid is the pixel up to the grid's edge (2.4 is 1.6 patches from the border)
  assert.ok(Math.abs(ee.u - 2.4) < 0.03 && Math.abs(ee.v - 1.6) < 0.03, `${ee.u}, ${ee.v}`);
  // ee_ground is the same point here (z = 0)
  for (let p = 0; p < side * side; p++) assert.equal(full.values[p * E + 1], full.values[p * E]);
  // the plate at pixel (30, 70): patch units (1.2, 2.8)
  const plate = centroid(full.values, E, 3, side);
  assert.equal(plate.argmax, 2 * side + 1);
  // a masked entity has an all-zero target
  for (let p = 0; p < side * side; p++) assert.equal(full.values[p * E + 2], 0);

  // the crop [10, 90) × [0, 80): the ee pixel moves to ((60 − 10) / 80, 40 / 80) of the crop, patch units (2.5, 2.0)
  const cropped = heatmapTargets(spec, withPlate, 0, camera, { x0: 10, y0: 0, width: 80, height: 80 }, side);
  const moved = centroid(cropped.values, E, 0, side);
  assert.ok(Math.abs(moved.u - 2.5) < 0.03 && Math.abs(moved.v - 2.0) < 0.03, `${moved.u}, ${moved.v}`);
  // ... and the plate at (30 − 10) / 80, 70 / 80 is still inside; a crop that leaves it out masks it
  assert.equal(cropped.mask[3], 1);
  assert.equal(heatmapTargets(spec, withPlate, 0, camera, { x0: 40, y0: 0, width: 60, height: 60 }, side).mask[3], 0);
  // an episode without the fixture masks it
  assert.equal(heatmapTargets(spec, withoutPlate, 0, camera, { x0: 0, y0: 0, width: 100, height: 100 }, side).mask[3], 0);
});

test('heatmap loss: the masked mean cross-entropy of a softmax over the patches, with the exact gradient', () => {
  const [images, patches, channels, entities] = [2, 4, 3, 3];
  const params = new ParamStore(new Map());
  addHeatmapHead(params, entities, channels, 5);
  const random = mulberry32(21);
  const features = Tensor.f32([images * patches, channels], Float32Array.from({ length: images * patches * channels }, () => random() * 2 - 1));
  const targets = new Float32Array(images * patches * entities);
  for (let b = 0; b < images; b++) {
    for (let k = 0; k < entities; k++) {
      const raw = Array.from({ length: patches }, () => random());
      const z = raw.reduce((a, v) => a + v, 0);
      raw.forEach((v, p) => (targets[(b * patches + p) * entities + k] = v / z));
    }
  }
  const mask = Float32Array.from([1, 0, 1, 1, 1, 0]);
  const r = heatmapLoss(refBackend, refGradBackend, params, features, images, targets, mask, 0.5, new Gradients(refGradBackend));
  // by definition, in float64
  const w = params.get(HEATMAP_WEIGHT);
  let ce = 0;
  for (let b = 0; b < images; b++) {
    for (let k = 0; k < entities; k++) {
      if (!mask[b * entities + k]) continue;
      const logits = Array.from({ length: patches }, (_, p) => {
        let s = 0;
        for (let c = 0; c < channels; c++) s += features.data[(b * patches + p) * channels + c] * w.data[k * channels + c];
        return s; // the bias starts at zero, and a softmax over the patches ignores it anyway
      });
      const lse = Math.log(logits.reduce((a, v) => a + Math.exp(v), 0));
      logits.forEach((l, p) => (ce -= targets[(b * patches + p) * entities + k] * (l - lse)));
    }
  }
  assert.ok(Math.abs(r.ce - ce / 4) < 1e-6, `${r.ce} vs ${ce / 4}`);
  assert.ok(Math.abs(r.loss - 0.5 * r.ce) < 1e-9);
  const h = 1e-2;
  const lossAt = (tensor: Tensor<'f32'>, i: number, d: number) => {
    const saved = tensor.data[i];
    tensor.data[i] = saved + d;
    const value = heatmapLoss(refBackend, refGradBackend, params, features, images, targets, mask, 0.5, new Gradients(refGradBackend)).loss;
    tensor.data[i] = saved;
    return value;
  };
  for (let i = 0; i < features.size; i += 3) {
    assert.ok(Math.abs((lossAt(features, i, h) - lossAt(features, i, -h)) / (2 * h) - r.dFeatures.data[i]) < 5e-4, `dFeatures[${i}]`);
  }
  const grads = new Gradients(refGradBackend);
  heatmapLoss(refBackend, refGradBackend, params, features, images, targets, mask, 0.5, grads);
  const dw = grads.get(HEATMAP_WEIGHT)!;
  for (let i = 0; i < w.size; i += 2) assert.ok(Math.abs((lossAt(w, i, h) - lossAt(w, i, -h)) / (2 * h) - dw[i]) < 5e-4, `dW[${i}]`);
});

test('augmentWithCrop reports the crop it took and draws the same image as augmentImage', () => {
  const image = { width: 20, height: 20, data: Uint8Array.from({ length: 20 * 20 * 3 }, (_, i) => (i * 7) % 256) };
  const a = augmentWithCrop(image, mulberry32(4));
  const b = augmentImage(image, mulberry32(4));
  assert.deepEqual(a.image, b);
  assert.equal(a.crop.width, a.image.width);
  assert.ok(a.crop.x0 >= 0 && a.crop.x0 + a.crop.width <= 20 && a.crop.y0 + a.crop.height <= 20);
  // the crop's rows are the frame's rows (before the colour jitter, which maps equal pixels to equal pixels)
  const whole = augmentWithCrop(image, mulberry32(4), { ...OPENVLA_AUGMENT, cropScale: [1, 1] });
  assert.deepEqual(whole.crop, { x0: 0, y0: 0, width: 20, height: 20 });
});
