// Weight formats and the reference integer ops against math: round trips within half a quantization step, exact
// nibble packing, a group size that does not divide K, the FWHT against the explicit Sylvester Hadamard matrix
// (power-of-two widths and widths that are several blocks), and integer linear/attention against float formulas.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../src/errors.js';
import { refBackend as ref } from '../../src/tensor/backends/ref.js';
import { expPortable } from '../../src/tensor/backends/ref-int.js';
import {
  codeAt,
  dequantizeWeight,
  makeQuantizedWeight,
  quantizeWeight,
  roundHalfEven,
  WEIGHT_FORMATS,
} from '../../src/tensor/formats.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { mulberry32 as random } from '../../src/random.js';

function uniform(rng: () => number, shape: number[], scale = 1): Tensor<'f32'> {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = (rng() * 2 - 1) * scale;
  return t;
}

/** Sylvester Hadamard entry H_B[i][j] = (-1)^popcount(i & j) */
function hadamard(i: number, j: number): number {
  let v = i & j;
  let parity = 0;
  while (v) {
    parity ^= v & 1;
    v >>= 1;
  }
  return parity ? -1 : 1;
}

describe('weight formats', () => {
  it('one table: codes 0..4 and bytes per row', () => {
    assert.deepEqual(Object.values(WEIGHT_FORMATS).map((f) => [f.name, f.code]), [['f32', 0], ['bf16', 1], ['f16', 2], ['i8', 3], ['i4', 4]]);
    assert.equal(WEIGHT_FORMATS.i4.bytesPerRow(7), 4);
    assert.equal(WEIGHT_FORMATS.i8.bytesPerRow(7), 7);
    assert.equal(WEIGHT_FORMATS.bf16.bytesPerRow(7), 14);
  });

  it('roundHalfEven rounds ties to the even neighbour', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -3.5001].map(roundHalfEven), [0, 2, 2, -0, -2, -2, 2, -4]);
  });

  for (const format of ['i8', 'i4'] as const) {
    for (const [N, K, group] of [[5, 7, undefined], [3, 64, 32], [4, 33, 11]] as const) {
      it(`${format} [${N},${K}] group ${group ?? 'per channel'}: round trip within half a step, codes in range`, () => {
        const rng = random(N * 100 + K);
        const w = uniform(rng, [N, K]);
        const q = quantizeWeight(w, format, group);
        const back = dequantizeWeight(q);
        const qmax = WEIGHT_FORMATS[format].qmax;
        const G = K / (group ?? K);
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < K; k++) {
            const scale = q.scales[n * G + Math.floor(k / (group ?? K))];
            assert.ok(Math.abs(back[n * K + k] - w.data[n * K + k]) <= scale / 2 + 1e-7, `element ${n},${k}`);
            assert.ok(Math.abs(codeAt(q, n, k)) <= qmax);
          }
          // the largest magnitude of each group maps to ±qmax
          for (let g = 0; g < G; g++) {
            let best = 0;
            for (let k = g * (K / G); k < (g + 1) * (K / G); k++) best = Math.max(best, Math.abs(codeAt(q, n, k)));
            assert.equal(best, qmax);
          }
        }
      });
    }
  }

  it('i4 nibbles: even k in the low nibble, two-complement negatives', () => {
    const codes = new Uint8Array([0x8f, 0x07]); // k0 = -1, k1 = -8, k2 = 7 (row of K = 3)
    const w = makeQuantizedWeight('i4', [1, 3], 3, codes, new Float32Array([0.5]));
    assert.deepEqual([0, 1, 2].map((k) => codeAt(w, 0, k)), [-1, -8, 7]);
    assert.deepEqual([...dequantizeWeight(w)], [-0.5, -4, 3.5]);
  });

  it('a group size that does not divide K, or a mis-shaped scale, is a UserError', () => {
    const w = Tensor.f32([2, 10], new Float32Array(20));
    assert.throws(() => quantizeWeight(w, 'i4', 4), (e: unknown) => e instanceof UserError && /group size 4 does not divide/.test(e.message));
    assert.throws(() => makeQuantizedWeight('i8', [2, 10], 10, new Int8Array(20), new Float32Array(3)), UserError);
    assert.throws(() => makeQuantizedWeight('i4', [2, 10], 10, new Uint8Array(20), new Float32Array(2)), UserError);
  });
});

describe('reference integer ops against math', () => {
  for (const [M, K, B] of [[3, 8, 8], [2, 64, 64], [4, 96, 32], [1, 11 * 16, 16], [2, 40, 8]] as const) {
    it(`fwht [${M},${K}] block ${B} equals x · blockdiag(H_${B}) / √${B}`, () => {
      const rng = random(K + B);
      const x = uniform(rng, [M, K]);
      const y = ref.fwht(x, B);
      for (let m = 0; m < M; m++) {
        for (let k = 0; k < K; k++) {
          const block = Math.floor(k / B) * B;
          let sum = 0;
          for (let j = 0; j < B; j++) sum += hadamard(k - block, j) * x.data[m * K + block + j];
          assert.ok(Math.abs(y.data[m * K + k] - sum / Math.sqrt(B)) < 1e-5, `element ${m},${k}`);
        }
      }
    });
  }

  it('fwht rejects a block that is not a power of two or does not divide K', () => {
    assert.throws(() => ref.fwht(Tensor.zeros([1, 12]), 12), UserError);
    assert.throws(() => ref.fwht(Tensor.zeros([1, 12]), 8), UserError);
  });

  it('expPortable agrees with Math.exp to 1e-15 relative', () => {
    for (let x = -60; x <= 0; x += 0.0137) {
      assert.ok(Math.abs(expPortable(x) - Math.exp(x)) <= 1e-15 * Math.exp(x), `x = ${x}`);
    }
    assert.equal(expPortable(0), 1);
    assert.equal(expPortable(-800), 0);
  });

  it('quantizeActivations: codes·scale reproduce x within half a step; max maps to qmax', () => {
    const rng = random(7);
    const x = uniform(rng, [5, 37], 3);
    for (const bits of [8, 4] as const) {
      const q = ref.quantizeActivations(x, { bits });
      const qmax = bits === 8 ? 127 : 7;
      for (let m = 0; m < 5; m++) {
        let best = 0;
        for (let k = 0; k < 37; k++) {
          assert.ok(Math.abs(q.codes[m * 37 + k] * q.scales[m] - x.data[m * 37 + k]) <= q.scales[m] / 2 + 1e-6);
          best = Math.max(best, Math.abs(q.codes[m * 37 + k]));
        }
        assert.equal(best, qmax);
      }
    }
  });

  it('quantizeActivations with rmsNorm and Hadamard quantizes fwht(rmsNorm(x))', () => {
    const rng = random(8);
    const x = uniform(rng, [3, 64], 2);
    const g = uniform(rng, [64]);
    const fused = ref.quantizeActivations(x, { bits: 8, rmsNorm: { weight: g, eps: 1e-5 }, hadamardBlock: 32 });
    const steps = ref.quantizeActivations(ref.fwht(ref.rmsNorm(x, g, 1e-5), 32), { bits: 8 });
    assert.deepEqual(fused.codes, steps.codes);
    assert.deepEqual(fused.scales, steps.scales);
  });

  it('linearInt equals (codes·scales) · (weight codes·scales)ᵀ + bias', () => {
    const rng = random(9);
    const [M, K, N] = [3, 48, 5];
    const xq = ref.quantizeActivations(uniform(rng, [M, K]), { bits: 8 });
    const w = quantizeWeight(uniform(rng, [N, K]), 'i4', 16);
    const bias = uniform(rng, [N]);
    const y = ref.linearInt(xq, w, bias);
    const wf = dequantizeWeight(w);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let k = 0; k < K; k++) sum += xq.codes[m * K + k] * xq.scales[m] * wf[n * K + k];
        assert.ok(Math.abs(y.data[m * N + n] - (sum + bias.data[n])) < 1e-5, `${m},${n}`);
      }
    }
  });

  it('attentionInt is close to float attention on the dequantized q, k, v', () => {
    const rng = random(10);
    const [T, S, Hq, Hkv, Dh] = [3, 5, 4, 2, 16];
    const q = uniform(rng, [T, Hq, Dh]);
    const k = uniform(rng, [S, Hkv, Dh]);
    const v = uniform(rng, [S, Hkv, Dh]);
    const [qq, kq, vq] = [q, k, v].map((t) => ref.quantizeActivations(t, { bits: 8 }));
    const dq = (t: Tensor<'f32'>, a: typeof qq) => Tensor.f32(t.shape, Float32Array.from(a.codes, (c, i) => c * a.scales[Math.floor(i / Dh)]));
    const expected = ref.attention(dq(q, qq), dq(k, kq), dq(v, vq), { causal: true, returnProbs: true });
    const got = ref.attentionInt(qq, kq, vq, { causal: true, returnProbs: true });
    for (let i = 0; i < expected.probs!.size; i++) assert.ok(Math.abs(got.probs!.data[i] - expected.probs!.data[i]) < 1e-6);
    // the u8 probabilities cost at most half a step (max u / 510) per key, times |v| <= 1
    for (let i = 0; i < expected.out.size; i++) assert.ok(Math.abs(got.out.data[i] - expected.out.data[i]) < (S / 510) * 1.01);
  });
});
