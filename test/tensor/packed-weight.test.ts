// One copy of every quantized weight: the native backend packs a QuantizedWeight into its kernel layout on first
// use and releases the canonical codes and scales (src/tensor/formats.ts packWeight), in the weight's own arrays when
// it owns them and the layouts have the same size. Checks that the weight then holds only the packed bytes, that
// reading codes/scales rebuilds them exactly (unpackIntWeight, the inverse of the packer), and that ref and native
// still agree bit for bit on a packed weight.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refBackend as ref } from '../../src/tensor/backends/ref.js';
import { nativeBackend, nativeLoadError } from '../../src/tensor/backends/native.js';
import { heldWeightBytes, makeQuantizedWeight, quantizeWeight, WEIGHT_FORMATS, type IntFormatName } from '../../src/tensor/formats.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { mulberry32 as random } from '../../src/random.js';

const skip = nativeBackend ? false : `native addon not built (${nativeLoadError()}); run \`npm rebuild\``;

function uniform(rng: () => number, shape: number[]): Tensor<'f32'> {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = rng() * 2 - 1;
  return t;
}

// [N, K, group (undefined: per channel)]: odd K and N tails, groups that are not a multiple of the packing step
const SHAPES: Array<[number, number, number | undefined]> = [[17, 37, undefined], [33, 130, 65], [49, 72, 24], [1, 1, undefined], [64, 256, 128]];

describe('packed quantized weights (native)', { skip }, () => {
  const native = nativeBackend!;
  for (const format of ['i8', 'i4'] as IntFormatName[]) {
    it(`${format}: after the first linearInt the weight holds only the packed copy, and codes/scales read back exactly`, () => {
      const rng = random(5);
      for (const [N, K, group] of SHAPES) {
        const w = quantizeWeight(uniform(rng, [N, K]), format, group);
        const codes = w.codes.slice();
        const scales = w.scales.slice();
        const canonicalBytes = N * WEIGHT_FORMATS[format].bytesPerRow(K) + scales.byteLength;
        assert.equal(heldWeightBytes(w), canonicalBytes, `[${N},${K}] before packing`);
        assert.equal(w.packed === undefined, true);
        const xq = ref.quantizeActivations(uniform(rng, [3, K]), { bits: 8 });
        const expected = ref.linearInt(xq, w);
        const out = native.linearInt(xq, w);
        assert.equal(w.packed?.backend, 'native', `[${N},${K}] was not packed`);
        const packedBytes = w.packed!.codes.byteLength + w.packed!.scales.byteLength;
        assert.equal(heldWeightBytes(w), packedBytes, `[${N},${K}] ${format}: the canonical codes were not released`);
        // the layout pads N to 16 rows and each group to 8 columns: at aligned shapes it is exactly the canonical size
        if (N % 16 === 0 && (group ?? K) % 8 === 0) assert.equal(packedBytes, canonicalBytes);
        assert.deepEqual(w.codes, codes, `[${N},${K}] ${format}: codes rebuilt from the packed layout`);
        assert.deepEqual(w.scales, scales, `[${N},${K}] ${format}: scales rebuilt from the packed layout`);
        // still one copy after the reads, and both backends still compute the same bits
        assert.equal(heldWeightBytes(w), packedBytes);
        assert.deepEqual(ref.linearInt(xq, w).data, expected.data);
        assert.deepEqual(native.linearInt(xq, w).data, expected.data);
        assert.deepEqual(out.data, expected.data);
      }
    });
  }

  for (const format of ['i8', 'i4'] as IntFormatName[]) {
    it(`${format}: an owned weight whose layouts have the same size is packed in its own arrays (nothing allocated)`, () => {
      const rng = random(9);
      // [N, K, group]: N % 16 == 0 and group % 8 == 0 -> in place; otherwise a new packed copy (still one held)
      for (const [N, K, group, inPlace] of [[32, 64, undefined, true], [48, 96, 24, true], [16, 40, 8, true], [17, 64, undefined, false], [32, 60, 12, false]] as const) {
        const w = quantizeWeight(uniform(rng, [N, K]), format, group, { owned: true });
        const codes = w.codes;
        const scales = w.scales;
        const canonicalCodes = codes.slice();
        const canonicalScales = scales.slice();
        const xq = ref.quantizeActivations(uniform(rng, [3, K]), { bits: 8 });
        const expected = ref.linearInt(xq, w);
        assert.deepEqual(native.linearInt(xq, w).data, expected.data, `[${N},${K}] ${format}`);
        const p = w.packed!;
        assert.equal(p.codes.buffer === codes.buffer, inPlace, `[${N},${K}] group ${group}: packed in place`);
        assert.equal(p.scales === scales, inPlace);
        assert.equal(heldWeightBytes(w), p.codes.byteLength + p.scales.byteLength);
        // the rebuilt canonical arrays are the originals, and the kernel result is unchanged
        assert.deepEqual(w.codes, canonicalCodes);
        assert.deepEqual(w.scales, canonicalScales);
        assert.deepEqual(native.linearInt(xq, w).data, expected.data);
        assert.deepEqual(ref.linearInt(xq, w).data, expected.data);
      }
    });
  }

  it('a weight that is not owned is never packed in place (its arrays are left as they were)', () => {
    const rng = random(10);
    const w = quantizeWeight(uniform(rng, [32, 64]), 'i4');
    const codes = w.codes;
    const before = codes.slice();
    native.linearInt(ref.quantizeActivations(uniform(rng, [1, 64]), { bits: 8 }), w);
    assert.notEqual(w.packed!.codes.buffer, codes.buffer);
    assert.deepEqual(codes, before);
  });

  it('a weight packed once is not packed again (the same packed arrays serve every call)', () => {
    const rng = random(6);
    const w = quantizeWeight(uniform(rng, [40, 64]), 'i4');
    const xq = ref.quantizeActivations(uniform(rng, [2, 64]), { bits: 4 });
    native.linearInt(xq, w);
    const first = w.packed!;
    native.linearIntAccumulators(xq, w);
    native.linearInt(xq, w);
    assert.equal(w.packed, first);
  });

  it('a weight built as a plain object still works (packed copy cached beside it, its arrays untouched)', () => {
    const rng = random(7);
    const made = quantizeWeight(uniform(rng, [20, 48]), 'i8');
    const plain = { kind: 'quantized' as const, format: made.format, shape: made.shape, groupSize: made.groupSize, codes: made.codes, scales: made.scales };
    const xq = ref.quantizeActivations(uniform(rng, [2, 48]), { bits: 8 });
    assert.deepEqual(native.linearInt(xq, plain).data, ref.linearInt(xq, made).data);
    assert.equal(plain.codes, made.codes);
  });

  it('makeQuantizedWeight weights are released the same way (what a loaded checkpoint builds)', () => {
    const rng = random(8);
    const N = 16;
    const K = 30;
    const codes = Uint8Array.from({ length: N * WEIGHT_FORMATS.i4.bytesPerRow(K) }, () => Math.floor(rng() * 256) & 0x77);
    const w = makeQuantizedWeight('i4', [N, K], 10, codes, Float32Array.from({ length: N * 3 }, () => rng()));
    const xq = ref.quantizeActivations(uniform(rng, [1, K]), { bits: 8 });
    const expected = ref.linearInt(xq, w);
    assert.deepEqual(native.linearInt(xq, w).data, expected.data);
    assert.equal(heldWeightBytes(w), w.packed!.codes.byteLength + w.packed!.scales.byteLength);
    assert.deepEqual(w.codes, codes);
  });
});
