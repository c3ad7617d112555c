// GPTQ on a synthetic layer with correlated inputs: it must reconstruct the layer's outputs better than RTN on its
// calibration data (the objective it minimizes), use the same scales, and keep codes in range.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HessianAccumulator, invertSpd, quantizeGptq } from '../../src/quant/gptq.js';
import { dequantizeCodes, quantizeRtn } from '../../src/quant/rtn.js';
import { mulberry32, standardNormal } from '../../src/random.js';
import { EXACT, HESSIAN_LAYERWISE_RTOL } from '../tolerances.js';
import { readImageFile } from '../../src/io/image.js';
import { Llama, LLAMA_LINEARS } from '../../src/models/llama.js';
import { OpenVla } from '../../src/models/openvla.js';
import { collectHessians, layerHessians, quantizeLlama, specFromVariant } from '../../src/quant/apply.js';
import { calibrationPrefixes } from '../../src/quant/calibration.js';
import { getBackend } from '../../src/tensor/backends/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { parseVariant } from '../../src/variant.js';
import { fixturePath } from '../support/fixtures.js';

/** ||X·Wᵀ - X·Ŵᵀ||² */
function outputError(x: Float32Array, w: ArrayLike<number>, wq: ArrayLike<number>, rows: number, cols: number): number {
  const m = x.length / cols;
  let total = 0;
  for (let i = 0; i < m; i++) {
    for (let r = 0; r < rows; r++) {
      let d = 0;
      for (let c = 0; c < cols; c++) d += x[i * cols + c] * (w[r * cols + c] - wq[r * cols + c]);
      total += d * d;
    }
  }
  return total;
}

test('invertSpd: A·A⁻¹ = I', () => {
  const a = Float64Array.of(4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 2);
  const inv = invertSpd(a, 3);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
    let s = 0;
    for (let k = 0; k < 3; k++) s += a[i * 3 + k] * inv[k * 3 + j];
    assert.ok(Math.abs(s - (i === j ? 1 : 0)) <= EXACT);
  }
});

for (const [bits, groupSize, actOrder] of [[4, 0, false], [4, 16, false], [4, 0, true], [8, 0, false]] as const) {
  test(`gptq w${bits} group ${groupSize || 'row'}${actOrder ? ' act-order' : ''}: lower output error than RTN on calibration data`, () => {
    const rows = 24;
    const cols = 48;
    const samples = 256;
    const uniform = mulberry32(bits * 100 + groupSize + (actOrder ? 1 : 0));
    // correlated inputs: x = z·M with a random mixing matrix, a few loud channels
    const mix = Float64Array.from({ length: cols * cols }, () => standardNormal(uniform) / Math.sqrt(cols));
    const x = new Float32Array(samples * cols);
    for (let s = 0; s < samples; s++) {
      const z = Array.from({ length: cols }, (_, i) => standardNormal(uniform) * (i % 11 === 0 ? 5 : 1));
      for (let c = 0; c < cols; c++) {
        let v = 0;
        for (let k = 0; k < cols; k++) v += z[k] * mix[k * cols + c];
        x[s * cols + c] = v;
      }
    }
    const w = Float32Array.from({ length: rows * cols }, () => standardNormal(uniform));
    const acc = new HessianAccumulator(cols);
    acc.add(x.subarray(0, 100 * cols));
    acc.add(x.subarray(100 * cols));
    const spec = { bits, groupSize } as const;
    const gptq = quantizeGptq(w, rows, cols, acc.hessian(), spec, { actOrder });
    const rtn = quantizeRtn(w, rows, cols, spec);
    assert.deepEqual(gptq.scales, rtn.scales);
    const qmax = 2 ** (bits - 1) - 1;
    assert.ok(gptq.codes.every((c) => c >= -qmax && c <= qmax));
    const errGptq = outputError(x, w, dequantizeCodes(gptq), rows, cols);
    const errRtn = outputError(x, w, dequantizeCodes(rtn), rows, cols);
    assert.ok(errGptq < 0.8 * errRtn, `gptq ${errGptq.toExponential(3)} vs rtn ${errRtn.toExponential(3)}`);
  });
}

test('gptq on tiny-openvla (rotated): every linear of every layer reconstructs its calibration outputs better than RTN', () => {
  const model = OpenVla.load(fixturePath('tiny-openvla'), getBackend('auto'));
  const spec = specFromVariant(parseVariant('w4a8+had'))!;
  const rotated = quantizeLlama(model.llm, specFromVariant(parseVariant('had'))!);
  const image = readImageFile(fixturePath('tiny-openvla', 'image.png'));
  const samples = ['pick up the cube', 'push the red block to the left', 'put the bowl on the plate'].map((instruction) => ({ image, instruction }));
  const hessians = collectHessians(rotated, calibrationPrefixes(model, samples));
  const input: Record<string, string> = { q: 'attn_in', k: 'attn_in', v: 'attn_in', o: 'o_in', gate: 'mlp_in', up: 'mlp_in', down: 'down_in' };
  rotated.weights.layers.forEach((layer, i) => {
    for (const site of LLAMA_LINEARS) {
      const w = (layer[site] as Tensor<'f32'>).data;
      const [rows, cols] = (layer[site] as Tensor<'f32'>).shape;
      const h = hessians.get(`${i}.${input[site]}`)!.hessian();
      const weightSpec = { bits: spec.weightBits!, groupSize: 0 };
      const errGptq = hessianError(w, dequantizeCodes(quantizeGptq(w, rows, cols, h, weightSpec)), rows, cols, h);
      const errRtn = hessianError(w, dequantizeCodes(quantizeRtn(w, rows, cols, weightSpec)), rows, cols, h);
      assert.ok(errGptq < errRtn, `layer ${i} ${site}: gptq ${errGptq.toExponential(3)} >= rtn ${errRtn.toExponential(3)}`);
    }
  });
});

/** Σ_rows Δwᵀ·H·Δw: the output error on the calibration inputs (H = 2XᵀX/n) */
function hessianError(w: ArrayLike<number>, wq: ArrayLike<number>, rows: number, cols: number, h: Float64Array): number {
  let total = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) d[c] = w[r * cols + c] - wq[r * cols + c];
    for (let i = 0; i < cols; i++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += h[i * cols + j] * d[j];
      total += d[i] * s;
    }
  }
  return total;
}

test('gptq goes layer by layer: each layer\'s Hessians from the carried residual stream equal a whole-decoder pass', () => {
  const model = OpenVla.load(fixturePath('tiny-openvla'), getBackend('auto'));
  const image = readImageFile(fixturePath('tiny-openvla', 'image.png'));
  const prefixes = calibrationPrefixes(model, ['pick up the cube', 'open the drawer'].map((instruction) => ({ image, instruction })));
  const rotated = quantizeLlama(model.llm, specFromVariant(parseVariant('had'))!);
  for (const [name, llm] of [['float', model.llm], ['rotated', rotated]] as const) {
    const whole = collectHessians(llm, prefixes);
    let states = prefixes;
    llm.weights.layers.forEach((layer, i) => {
      const step = layerHessians(new Llama(llm.config, { ...llm.weights, layers: [layer] }, llm.backend, llm.quantization), states);
      states = step.outputs;
      assert.deepEqual([...step.hessians.keys()].sort(), ['attn_in', 'down_in', 'mlp_in', 'o_in']);
      for (const [hook, acc] of step.hessians) {
        const expected = whole.get(`${i}.${hook}`)!;
        assert.equal(acc.samples, expected.samples);
        if (name === 'float') {
          // the same operations on the same inputs: bit for bit
          assert.deepEqual(acc.xtx, expected.xtx, `layer ${i} ${hook}`);
          continue;
        }
        let scale = 0;
        let diff = 0;
        for (let j = 0; j < acc.xtx.length; j++) {
          scale = Math.max(scale, Math.abs(expected.xtx[j]));
          diff = Math.max(diff, Math.abs(acc.xtx[j] - expected.xtx[j]));
        }
        assert.ok(diff <= HESSIAN_LAYERWISE_RTOL * scale, `layer ${i} ${hook}: max diff ${diff} vs max ${scale}`);
      }
    });
  }
});
