// The native integer kernels against the ref oracle, BIT FOR BIT (docs/quantization.md, Kernel contract): activation
// codes and scales, int32 accumulators, linearInt outputs, FWHT and integer attention, on every ISA path this CPU
// runs (generic, avx2 maddubs, avxvnni, avx512 without VNNI, avx512vnni), random shapes with odd K and N tails,
// per-channel and group-wise scales (groups that are not a multiple of the kernel's 4/8-column step), and the
// extreme codes that would saturate vpmaddubsw if the AVX2 path were careless. W4A16 (dequantizing linear) is
// float and is compared within TOLERANCE.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QuantizedActivations } from '../../src/tensor/backend.js';
import { refBackend as ref } from '../../src/tensor/backends/ref.js';
import { nativeBackend, nativeInfo, nativeLoadError, nativeWeightTypes, setNativeIsa, type NativeIsa } from '../../src/tensor/backends/native.js';
import { dequantizeWeight, makeQuantizedWeight, quantizeWeight, WEIGHT_FORMATS, type IntFormatName, type QuantizedWeight } from '../../src/tensor/formats.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { mulberry32 as random } from '../../src/random.js';
import { TOLERANCE } from '../tolerances.js';

const skip = nativeBackend ? false : `native addon not built (${nativeLoadError()}); run \`npm rebuild\``;

function uniform(rng: () => number, shape: number[], scale = 1): Tensor<'f32'> {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = (rng() * 2 - 1) * scale;
  return t;
}

/** Bitwise equality of two typed arrays (so -0 vs 0 or one ulp fails), with the first difference in the message. */
function assertBitIdentical(actual: ArrayBufferView, expected: ArrayBufferView, what: string): void {
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  assert.equal(a.length, e.length, `${what}: lengths differ`);
  const per = (actual as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      const index = Math.floor(i / per);
      const av = (actual as unknown as ArrayLike<number>)[index];
      const ev = (expected as unknown as ArrayLike<number>)[index];
      assert.fail(`${what}: element ${index} differs: native ${av} vs ref ${ev}`);
    }
  }
}

// [M, K, N, group (undefined: per channel)]
const SHAPES: Array<[number, number, number, number | undefined]> = [
  [1, 37, 17, undefined],
  [7, 64, 70, undefined],
  [13, 130, 33, 65],
  [6, 96, 16, 32],
  [5, 72, 49, 24],
  [2, 1, 1, undefined],
  [19, 40, 131, 20],
];

/** Codes over the whole range (i8: -128..127, i4: -8..7) and large scales: the saturation cases. */
function extremeWeight(rng: () => number, format: IntFormatName, n: number, k: number): QuantizedWeight {
  const codes = format === 'i8' ? new Int8Array(n * k) : new Uint8Array(n * Math.ceil(k / 2));
  for (let i = 0; i < codes.length; i++) {
    const r = rng();
    codes[i] = format === 'i8' ? (r < 0.4 ? -128 : r < 0.8 ? 127 : Math.floor(rng() * 256) - 128) : r < 0.5 ? 0x88 : Math.floor(rng() * 256);
  }
  return makeQuantizedWeight(format, [n, k], k, codes, Float32Array.from({ length: n }, () => rng()));
}

function extremeActivations(rng: () => number, m: number, k: number): QuantizedActivations {
  const codes = Int8Array.from({ length: m * k }, () => (rng() < 0.5 ? 127 : -127));
  return { shape: [m, k], bits: 8, codes, scales: Float32Array.from({ length: m }, () => rng()) };
}

function intSuite(isa: NativeIsa): void {
  const native = nativeBackend!;
  const use = () => setNativeIsa(isa);

  it('quantizeActivations: identical codes and scales (plain, clipped, RMSNorm + weight, Hadamard, 4 and 8 bits)', () => {
    use();
    const rng = random(11);
    for (const [M, K] of [[1, 37], [9, 64], [4, 256], [3, 96]] as const) {
      const x = uniform(rng, [M, K], 4);
      x.data[0] = 40; // an outlier
      const g = uniform(rng, [K]);
      const options = [
        { bits: 8 as const },
        { bits: 4 as const, clipRatio: 0.9 },
        { bits: 8 as const, rmsNorm: { weight: g, eps: 1e-5 } },
        { bits: 4 as const, rmsNorm: { eps: 1e-6 }, hadamardBlock: K % 32 === 0 ? 32 : 1 },
        ...(K % 64 === 0 ? [{ bits: 8 as const, rmsNorm: { weight: g, eps: 1e-5 }, hadamardBlock: 64, clipRatio: 0.95 }] : []),
      ];
      for (const o of options) {
        const r = ref.quantizeActivations(x, o);
        const n = native.quantizeActivations(x, o);
        assertBitIdentical(n.codes, r.codes, `codes [${M},${K}] ${JSON.stringify({ ...o, rmsNorm: !!o.rmsNorm })}`);
        assertBitIdentical(n.scales, r.scales, `scales [${M},${K}]`);
      }
    }
  });

  for (const format of ['i8', 'i4'] as const) {
    it(`linearInt ${format}: identical int32 accumulators and f32 outputs on odd shapes, with and without bias`, () => {
      use();
      const rng = random(format === 'i8' ? 21 : 22);
      for (const [M, K, N, group] of SHAPES) {
        const w = quantizeWeight(uniform(rng, [N, K]), format, group);
        const xq = ref.quantizeActivations(uniform(rng, [M, K], 2), { bits: rng() < 0.5 ? 8 : 4 });
        const bias = uniform(rng, [N]);
        const what = `${format} M=${M} K=${K} N=${N} group=${group ?? K}`;
        assertBitIdentical(native.linearIntAccumulators(xq, w), ref.linearIntAccumulators(xq, w), `${what} accumulators`);
        assertBitIdentical(native.linearInt(xq, w).data, ref.linearInt(xq, w).data, `${what} out`);
        assertBitIdentical(native.linearInt(xq, w, bias).data, ref.linearInt(xq, w, bias).data, `${what} out + bias`);
      }
    });

    it(`linearInt ${format}: extreme codes (every int value, ±127 activations) accumulate exactly (no vpmaddubsw saturation)`, () => {
      use();
      const rng = random(format === 'i8' ? 31 : 32);
      for (const [M, K, N] of [[3, 64, 16], [8, 200, 35]] as const) {
        const w = extremeWeight(rng, format, N, K);
        const xq = extremeActivations(rng, M, K);
        assertBitIdentical(native.linearIntAccumulators(xq, w), ref.linearIntAccumulators(xq, w), `${format} [${M},${K}]x[${N}]`);
        assertBitIdentical(native.linearInt(xq, w).data, ref.linearInt(xq, w).data, `${format} out`);
      }
    });

    it(`linear with a ${format} weight (W${format === 'i8' ? 8 : 4}A16) matches ref's dequantized product`, () => {
      use();
      const rng = random(41);
      // RTN weights on odd shapes, plus every code value (the SIMD dequantization's sign extension and nibble order)
      const cases = [...SHAPES.map(([M, K, N, group]) => ({ M, K, N, w: quantizeWeight(uniform(rng, [N, K]), format, group) })),
        ...([[1, 256, 35], [3, 200, 16]] as const).map(([M, K, N]) => ({ M, K, N, w: extremeWeight(rng, format, N, K) }))];
      for (const { M, K, N, w } of cases) {
        const x = uniform(rng, [M, K]);
        const bias = uniform(rng, [N]);
        const expected = ref.linear(x, w, bias);
        const actual = native.linear(x, w, bias);
        const tol = TOLERANCE.f32.linear;
        // the f32 tolerance, relative to the sum of |terms| (the extreme codes' sums cancel: a few ulps of 127·scale
        // terms are far more than rtol of a small result); a wrong code or nibble order is off by whole terms
        const dequantized = dequantizeWeight(w);
        for (let i = 0; i < expected.size; i++) {
          const m = Math.floor(i / N);
          const n = i % N;
          let magnitude = Math.abs(bias.data[n]);
          for (let k = 0; k < K; k++) magnitude += Math.abs(x.data[m * K + k] * dequantized[n * K + k]);
          const e = expected.data[i];
          assert.ok(Math.abs(actual.data[i] - e) <= tol.atol + tol.rtol * magnitude, `M=${M} K=${K} N=${N} element ${i}: ${actual.data[i]} vs ${e}`);
        }
      }
    });
  }

  it('fwht: identical to ref for blocks 1 .. 256', () => {
    use();
    const rng = random(51);
    for (const [M, K, B] of [[3, 8, 8], [2, 256, 256], [5, 96, 32], [1, 11 * 16, 16], [4, 7, 1]] as const) {
      const x = uniform(rng, [M, K], 3);
      assertBitIdentical(native.fwht(x, B).data, ref.fwht(x, B).data, `fwht [${M},${K}] block ${B}`);
    }
  });

  it('attentionInt: identical outputs and probabilities (GQA, causal and not, 4 and 8 bits)', () => {
    use();
    const rng = random(61);
    // the last case's scores spread over thousands, so the softmax meets exponents below -700 (exactly 0) and deep
    // negative powers of two
    for (const [T, S, Hq, Hkv, Dh, causal, bits, scale] of [
      [1, 9, 4, 2, 16, true, 8, 2],
      [5, 5, 2, 2, 24, true, 4, 2],
      [3, 11, 6, 3, 40, false, 8, 2],
      [7, 20, 4, 1, 128, true, 8, 2],
      [6, 6, 2, 1, 80, true, 4, 2],
      [4, 13, 2, 1, 16, false, 8, 40],
    ] as const) {
      const q = ref.quantizeActivations(uniform(rng, [T, Hq, Dh], scale), { bits });
      const k = ref.quantizeActivations(uniform(rng, [S, Hkv, Dh], scale), { bits });
      const v = ref.quantizeActivations(uniform(rng, [S, Hkv, Dh]), { bits });
      const r = ref.attentionInt(q, k, v, { causal, returnProbs: true });
      const n = native.attentionInt(q, k, v, { causal, returnProbs: true });
      assertBitIdentical(n.out.data, r.out.data, `out T=${T} S=${S}`);
      assertBitIdentical(n.probs!.data, r.probs!.data, `probs T=${T} S=${S}`);
    }
  });
}

describe('native integer kernels vs ref, bit for bit', { skip }, () => {
  it('the addon uses the format codes of WEIGHT_FORMATS', () => {
    const codes = nativeWeightTypes()!;
    for (const f of Object.values(WEIGHT_FORMATS)) assert.equal(codes[f.name], f.code, f.name);
  });

  it('a group size that does not divide K is refused before any kernel runs', () => {
    assert.throws(() => quantizeWeight(Tensor.f32([4, 30], new Float32Array(120)), 'i4', 8), /group size 8 does not divide/);
  });

  const info = nativeInfo();
  for (const isa of info?.supportedIsas ?? []) {
    describe(`ISA ${isa}`, () => intSuite(isa));
  }
  it('restores the best ISA', () => setNativeIsa(info!.supportedIsas[info!.supportedIsas.length - 1]));
});

describe('native binding: integer argument checks', { skip }, () => {
  it('activation codes of -128, bad bits, a non-dividing group and a non-power-of-two block throw', async () => {
    const { createRequire } = await import('node:module');
    const { NATIVE_ADDON_PATH } = await import('../../src/tensor/backends/native.js');
    const addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as Record<string, (...args: unknown[]) => unknown>;
    const layout = addon.intWeightLayout(3, 16, 8, 8) as { bytes: number; scales: number };
    const x = Int8Array.of(1, 2, 3, -128, 0, 0, 0, 0);
    assert.throws(() => addon.linearInt(new Float32Array(16), null, x, new Float32Array(1), new Uint8Array(layout.bytes),
      new Float32Array(layout.scales), 3, 1, 8, 16, 8, null, 0), { name: 'RangeError', message: /-128/ });
    assert.throws(() => addon.intWeightLayout(4, 16, 10, 4), { name: 'TypeError', message: /group size 4 does not divide K = 10/ });
    assert.throws(() => addon.quantizeActivations(new Int8Array(8), new Float32Array(1), new Float32Array(8), 1, 8, 5, false, null, 0, 0, 0, 1),
      { name: 'TypeError', message: /bits must be 4 or 8/ });
    assert.throws(() => addon.fwht(new Float32Array(12), new Float32Array(12), 1, 12, 12), { name: 'TypeError', message: /power of two/ });
  });
});
