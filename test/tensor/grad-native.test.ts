// The native backward kernels against the ref oracle, on every instruction-set path this CPU runs (the backward
// GEMMs run on the forward linear kernel of that path): randomized inputs with sizes that are not multiples of any
// vector width or register tile, GQA, causal attention with earlier keys, repeated embedding ids. Bounds are
// GRAD_TOLERANCE in test/tolerances.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GradBackend } from '../../src/tensor/grad-backend.js';
import { refGradBackend as ref } from '../../src/tensor/backends/ref-grad.js';
import { nativeGradBackend } from '../../src/tensor/backends/native-grad.js';
import { NATIVE_ISAS, nativeInfo, setNativeIsa, type NativeIsa } from '../../src/tensor/backends/native.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { mulberry32 } from '../../src/random.js';
import { GRAD_TOLERANCE, type Tolerance } from '../tolerances.js';

const skip = nativeGradBackend ? false : 'native addon with backward kernels not built; run `npm rebuild`';

function uniform(rng: () => number, shape: number[], scale = 1): Tensor<'f32'> {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = (rng() * 2 - 1) * scale;
  return t;
}

function assertClose(actual: Tensor<'f32'> | undefined, expected: Tensor<'f32'> | undefined, tol: Tolerance, what: string): void {
  assert.ok(actual && expected, `${what}: missing`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  for (let i = 0; i < expected.size; i++) {
    const error = Math.abs(actual.data[i] - expected.data[i]);
    if (!(error <= tol.atol + tol.rtol * Math.abs(expected.data[i]))) {
      assert.fail(`${what}[${i}]: native ${actual.data[i]} vs ref ${expected.data[i]} (atol ${tol.atol}, rtol ${tol.rtol})`);
    }
  }
}

function suite(isa: NativeIsa, native: GradBackend): void {
  const rng = mulberry32(0x9e3779b9 ^ NATIVE_ISAS.indexOf(isa));
  const use = () => setNativeIsa(isa);

  it('linearBackward: dx, dw, db at odd sizes, with and without dx/bias', () => {
    use();
    for (const [m, k, n] of [[1, 1, 1], [7, 33, 19], [53, 97, 70], [130, 64, 48], [301, 131, 70]]) {
      const dy = uniform(rng, [m, n]);
      const x = uniform(rng, [m, k]);
      const w = uniform(rng, [n, k]);
      const a = native.linearBackward(dy, x, w, { dx: true, bias: true });
      const e = ref.linearBackward(dy, x, w, { dx: true, bias: true });
      assertClose(a.dx, e.dx, GRAD_TOLERANCE.linear, `dx ${m}x${k}x${n}`);
      assertClose(a.dw, e.dw, GRAD_TOLERANCE.linear, `dw ${m}x${k}x${n}`);
      assertClose(a.db, e.db, GRAD_TOLERANCE.linear, `db ${m}x${k}x${n}`);
      const only = native.linearBackward(dy, x, w, { dx: false, bias: false });
      assert.equal(only.dx, undefined);
      assert.equal(only.db, undefined);
      assertClose(only.dw, e.dw, GRAD_TOLERANCE.linear, 'dw alone');
    }
  });

  it('embeddingBackward with repeated ids', () => {
    use();
    const ids = Int32Array.of(3, 0, 3, 9, 3, 1);
    const dy = uniform(rng, [6, 13]);
    assertClose(native.embeddingBackward(dy, ids, 10), ref.embeddingBackward(dy, ids, 10), GRAD_TOLERANCE.elementwise, 'dTable');
  });

  it('layerNormBackward and rmsNormBackward', () => {
    use();
    for (const [m, d] of [[1, 5], [37, 67], [300, 130]]) {
      const dy = uniform(rng, [m, d]);
      const x = uniform(rng, [m, d], 3);
      for (let i = 0; i < x.size; i++) x.data[i] += 0.5;
      const w = uniform(rng, [d]);
      const a = native.layerNormBackward(dy, x, w, 1e-6);
      const e = ref.layerNormBackward(dy, x, w, 1e-6);
      assertClose(a.dx, e.dx, GRAD_TOLERANCE.norm, `layerNorm dx ${m}x${d}`);
      assertClose(a.dWeight, e.dWeight, GRAD_TOLERANCE.norm, 'layerNorm dWeight');
      assertClose(a.dBias, e.dBias, GRAD_TOLERANCE.norm, 'layerNorm dBias');
      const r = native.rmsNormBackward(dy, x, w, 1e-6);
      const re = ref.rmsNormBackward(dy, x, w, 1e-6);
      assertClose(r.dx, re.dx, GRAD_TOLERANCE.norm, `rmsNorm dx ${m}x${d}`);
      assertClose(r.dWeight, re.dWeight, GRAD_TOLERANCE.norm, 'rmsNorm dWeight');
    }
  });

  it('geluBackward, siluMulBackward, scaleChannelsBackward', () => {
    use();
    const x = uniform(rng, [41, 77], 6);
    const dy = uniform(rng, [41, 77]);
    assertClose(native.geluBackward(dy, x), ref.geluBackward(dy, x), GRAD_TOLERANCE.gelu, 'gelu dx');
    const up = uniform(rng, [41, 77], 2);
    const s = native.siluMulBackward(dy, x, up);
    const se = ref.siluMulBackward(dy, x, up);
    assertClose(s.dGate, se.dGate, GRAD_TOLERANCE.elementwise, 'siluMul dGate');
    assertClose(s.dUp, se.dUp, GRAD_TOLERANCE.elementwise, 'siluMul dUp');
    const scale = uniform(rng, [77]);
    const c = native.scaleChannelsBackward(dy, x, scale);
    const ce = ref.scaleChannelsBackward(dy, x, scale);
    assertClose(c.dx, ce.dx, GRAD_TOLERANCE.elementwise, 'scaleChannels dx');
    assertClose(c.dScale, ce.dScale, GRAD_TOLERANCE.norm, 'scaleChannels dScale');
  });

  it('ropeBackward at large positions', () => {
    use();
    const dy = uniform(rng, [9, 3, 16]);
    const positions = Int32Array.of(0, 1, 2, 17, 100, 255, 256, 1000, 4095);
    assertClose(native.ropeBackward(dy, positions, 10000), ref.ropeBackward(dy, positions, 10000), GRAD_TOLERANCE.rope, 'rope dx');
  });

  it('attentionBackward: GQA, causal with earlier keys, and full', () => {
    use();
    for (const [t, s, hq, hkv, dh, causal] of [[5, 9, 4, 2, 8, true], [33, 33, 6, 6, 16, false], [27, 27, 4, 1, 12, true]] as const) {
      const q = uniform(rng, [t, hq, dh], 2);
      const k = uniform(rng, [s, hkv, dh], 2);
      const v = uniform(rng, [s, hkv, dh]);
      const dOut = uniform(rng, [t, hq * dh]);
      const a = native.attentionBackward(dOut, q, k, v, { causal });
      const e = ref.attentionBackward(dOut, q, k, v, { causal });
      for (const key of ['dq', 'dk', 'dv'] as const) assertClose(a[key], e[key], GRAD_TOLERANCE.attention, `${key} T${t} S${s} causal ${causal}`);
    }
  });

  it('crossEntropy: loss and dLogits, with a divisor', () => {
    use();
    const logits = uniform(rng, [11, 301], 8);
    const labels = Int32Array.from({ length: 11 }, (_, i) => (i * 37) % 301);
    const a = native.crossEntropy(logits, labels, 20);
    const e = ref.crossEntropy(logits, labels, 20);
    assert.ok(Math.abs(a.loss - e.loss) <= GRAD_TOLERANCE.elementwise.atol + GRAD_TOLERANCE.elementwise.rtol * Math.abs(e.loss), `${a.loss} vs ${e.loss}`);
    assertClose(a.dLogits, e.dLogits, GRAD_TOLERANCE.elementwise, 'dLogits');
  });

  it('adamwUpdate and sumOfSquares: the same bits as ref', () => {
    use();
    const n = 1037;
    const start = () => [uniform(rng, [n]).data, uniform(rng, [n], 1e-3).data, uniform(rng, [n], 1e-2).data, uniform(rng, [n], 1e-4).data];
    const [p, g, m, v] = start();
    for (let i = 0; i < n; i++) v[i] = Math.abs(v[i]);
    g[0] = 0;
    g[1] = 1e-12;
    const copies = [p, g, m, v].map((a) => Float32Array.from(a));
    const hyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1 - 1e-3 * 0.01, stepSize: 1e-3 / (1 - 0.9 ** 3), sqrtCorrection2: Math.sqrt(1 - 0.999 ** 3) };
    native.adamwUpdate(p, g, m, v, hyper);
    ref.adamwUpdate(copies[0], copies[1], copies[2], copies[3], hyper);
    assert.deepEqual([p, m, v], [copies[0], copies[2], copies[3]]);
    assert.equal(native.sumOfSquares(p), ref.sumOfSquares(p));
  });

  it('rejects bad arguments with an error naming the op', () => {
    use();
    assert.throws(() => native.embeddingBackward(Tensor.zeros([1, 4]), Int32Array.of(7), 5), /embeddingBackward/);
    assert.throws(() => native.crossEntropy(Tensor.zeros([1, 4]), Int32Array.of(4)), /crossEntropy/);
  });
}

describe('native backward kernels vs ref', { skip }, () => {
  const info = nativeInfo();
  for (const isa of NATIVE_ISAS) {
    const supported = info?.supportedIsas.includes(isa) ?? false;
    describe(`${isa} path`, { skip: supported ? false : `this CPU does not run ${isa}` }, () => suite(isa, nativeGradBackend!));
  }
  it('restores the default path', () => setNativeIsa(nativeInfo()!.supportedIsas.at(-1)!));
});
