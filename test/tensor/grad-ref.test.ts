// Finite-difference checks of every backward op on `ref`: for a scalar L = Σ forward(inputs)·r with fixed random r,
// each element's analytic gradient (the backward op applied to dy = r) must match the central difference
// (L(x+h) - L(x-h)) / 2h of the ref forward op itself. Reference values come from the forward math, never from the
// backward code under test.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { refBackend } from '../../src/tensor/backends/ref.js';
import { refGradBackend as grad } from '../../src/tensor/backends/ref-grad.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { im2col } from '../../src/models/vit.js';
import { mulberry32 } from '../../src/random.js';
import { FINITE_DIFFERENCE } from '../tolerances.js';

const rand = mulberry32(20261129);

function uniform(shape: number[], scale = 1): Tensor<'f32'> {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = (2 * rand() - 1) * scale;
  return t;
}

/** Σ y·r in float64 */
function project(y: Tensor<'f32'>, r: Tensor<'f32'>): number {
  let sum = 0;
  for (let i = 0; i < y.size; i++) sum += y.data[i] * r.data[i];
  return sum;
}

/**
 * Compare analytic[i] with the central difference of loss() as values[i] moves by ±h (values is mutated and
 * restored). The step actually taken is measured after float32 rounding.
 */
function checkGradient(label: string, values: Float32Array, analytic: Tensor<'f32'>, loss: () => number, h = FINITE_DIFFERENCE.step): void {
  assert.equal(analytic.size, values.length, `${label}: gradient has ${analytic.size} elements, input ${values.length}`);
  let worst = 0;
  for (let i = 0; i < values.length; i++) {
    const original = values[i];
    values[i] = original + h;
    const up = values[i];
    const lossUp = loss();
    values[i] = original - h;
    const down = values[i];
    const lossDown = loss();
    values[i] = original;
    const numeric = (lossUp - lossDown) / (up - down);
    const error = Math.abs(numeric - analytic.data[i]);
    const bound = FINITE_DIFFERENCE.atol + FINITE_DIFFERENCE.rtol * Math.abs(numeric);
    worst = Math.max(worst, error / bound);
    assert.ok(error <= bound, `${label}[${i}]: analytic ${analytic.data[i]} vs finite difference ${numeric}`);
  }
  assert.ok(worst <= 1, label);
}

describe('backward ops on ref match finite differences of the forward ops', () => {
  test('linear with bias: dx, dw, db', () => {
    const x = uniform([3, 5]);
    const w = uniform([4, 5]);
    const b = uniform([4]);
    const r = uniform([3, 4]);
    const loss = () => project(refBackend.linear(x, w, b), r);
    const g = grad.linearBackward(r, x, w, { dx: true, bias: true });
    checkGradient('dx', x.data, g.dx!, loss);
    checkGradient('dw', w.data, g.dw, loss);
    checkGradient('db', b.data, g.db!, loss);
    const noBias = grad.linearBackward(r, x, w, { dx: false, bias: false });
    assert.equal(noBias.dx, undefined);
    assert.equal(noBias.db, undefined);
    assert.deepEqual(noBias.dw.data, g.dw.data);
  });

  test('patch embedding (conv with stride = kernel as linear over im2col rows): dw, db', () => {
    const channels = 3;
    const size = 8;
    const patch = 4;
    const pixels = uniform([channels * size * size]).data;
    const w = uniform([5, channels * patch * patch], 0.3);
    const b = uniform([5]);
    const r = uniform([(size / patch) ** 2, 5]);
    const patches = im2col(pixels, channels, size, patch);
    const loss = () => project(refBackend.linear(im2col(pixels, channels, size, patch), w, b), r);
    const g = grad.linearBackward(r, patches, w, { dx: false, bias: true });
    checkGradient('patch dw', w.data, g.dw, loss);
    checkGradient('patch db', b.data, g.db!, loss);
  });

  test('embedding with repeated ids: rows scatter-added', () => {
    const table = uniform([6, 4]);
    const ids = Int32Array.of(2, 5, 2, 0);
    const r = uniform([4, 4]);
    const g = grad.embeddingBackward(r, ids, 6);
    checkGradient('dTable', table.data, g, () => project(refBackend.embedding(table, ids), r));
  });

  test('layerNorm: dx, dWeight, dBias', () => {
    const x = uniform([3, 8], 2);
    const w = uniform([8]);
    const b = uniform([8]);
    const r = uniform([3, 8]);
    const loss = () => project(refBackend.layerNorm(x, w, b, 1e-6), r);
    const g = grad.layerNormBackward(r, x, w, 1e-6);
    checkGradient('dx', x.data, g.dx, loss);
    checkGradient('dWeight', w.data, g.dWeight, loss);
    checkGradient('dBias', b.data, g.dBias, loss);
  });

  test('rmsNorm: dx, dWeight', () => {
    const x = uniform([3, 8], 2);
    const w = uniform([8]);
    const r = uniform([3, 8]);
    const loss = () => project(refBackend.rmsNorm(x, w, 1e-6), r);
    const g = grad.rmsNormBackward(r, x, w, 1e-6);
    checkGradient('dx', x.data, g.dx, loss);
    checkGradient('dWeight', w.data, g.dWeight, loss);
  });

  test('gelu (exact erf)', () => {
    const x = uniform([24], 4);
    const r = uniform([24]);
    checkGradient('dx', x.data, grad.geluBackward(r, x), () => project(refBackend.gelu(x), r));
  });

  test('siluMul: dGate, dUp', () => {
    const gate = uniform([3, 5], 4);
    const up = uniform([3, 5], 2);
    const r = uniform([3, 5]);
    const loss = () => project(refBackend.siluMul(gate, up), r);
    const g = grad.siluMulBackward(r, gate, up);
    checkGradient('dGate', gate.data, g.dGate, loss);
    checkGradient('dUp', up.data, g.dUp, loss);
  });

  test('add: both inputs receive dy', () => {
    const a = uniform([2, 3]);
    const b = uniform([2, 3]);
    const r = uniform([2, 3]);
    const loss = () => project(refBackend.add(a, b), r);
    checkGradient('da', a.data, r, loss);
    checkGradient('db', b.data, r, loss);
  });

  test('scaleChannels (LayerScale): dx, dScale', () => {
    const x = uniform([3, 6]);
    const scale = uniform([6]);
    const r = uniform([3, 6]);
    const loss = () => project(refBackend.scaleChannels(x, scale), r);
    const g = grad.scaleChannelsBackward(r, x, scale);
    checkGradient('dx', x.data, g.dx, loss);
    checkGradient('dScale', scale.data, g.dScale, loss);
  });

  test('rope (rotate_half) at scattered positions', () => {
    const x = uniform([3, 2, 8]);
    const positions = Int32Array.of(0, 5, 17);
    const r = uniform([3, 2, 8]);
    const g = grad.ropeBackward(r, positions, 10000);
    checkGradient('dx', x.data, g, () => project(refBackend.rope(x, positions, 10000), r));
  });

  for (const causal of [true, false]) {
    test(`attention, grouped-query, ${causal ? 'causal with 2 earlier keys' : 'full'}: dq, dk, dv`, () => {
      const q = uniform([3, 4, 4], 1.5);
      const k = uniform([5, 2, 4], 1.5);
      const v = uniform([5, 2, 4]);
      const r = uniform([3, 16]);
      const loss = () => project(refBackend.attention(q, k, v, { causal }).out, r);
      const g = grad.attentionBackward(r, q, k, v, { causal });
      checkGradient('dq', q.data, g.dq, loss);
      checkGradient('dk', k.data, g.dk, loss);
      checkGradient('dv', v.data, g.dv, loss);
    });
  }

  test('softmax cross-entropy: the loss from the definition, dLogits by finite differences', () => {
    const logits = uniform([3, 7], 3);
    const labels = Int32Array.of(6, 0, 3);
    const { loss, dLogits } = grad.crossEntropy(logits, labels);
    let expected = 0;
    for (let row = 0; row < 3; row++) {
      const z = Array.from(logits.data.subarray(row * 7, row * 7 + 7));
      expected += -Math.log(Math.exp(z[labels[row]]) / z.reduce((a, v) => a + Math.exp(v), 0));
    }
    assert.ok(Math.abs(loss - expected / 3) < 1e-12, `loss ${loss} vs ${expected / 3}`);
    checkGradient('dLogits', logits.data, dLogits, () => grad.crossEntropy(logits, labels).loss);
    const halved = grad.crossEntropy(logits, labels, 6);
    assert.ok(Math.abs(halved.loss - expected / 6) < 1e-12);
  });
});
