// GPTQ on a synthetic layer with correlated inputs: it must reconstruct the layer's outputs better than RTN on its
// calibration data (the objective it minimizes), use the same scales, and keep codes in range.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HessianAccumulator, invertSpd, quantizeGptq } from '../../src/quant/gptq.js';
import { dequantizeCodes, quantizeRtn } from '../../src/quant/rtn.js';
import { mulberry32, standardNormal } from '../../src/random.js';
import { EXACT } from '../tolerances.js';

/** ||X·Wᵀ - X·Ŵᵀ||² */
export function outputError(x: Float32Array, w: ArrayLike<number>, wq: ArrayLike<number>, rows: number, cols: number): number {
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
