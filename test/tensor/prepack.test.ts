// Prepacked float weights (Backend.prepack; native/kernels.h "Prepacked float weights"): the layout against its
// written definition, the native prepacked GEMM against ref on every instruction-set path this CPU runs (paths
// without a prepacked kernel run the portable one on the same layout), bit-identity with the plain GEMM where the
// layout's kernel is the plain panel kernel, and a whole model loaded both ways.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OpenVla } from '../../src/models/openvla.js';
import { readImageFile } from '../../src/io/image.js';
import type { WeightTensor } from '../../src/tensor/backend.js';
import { refBackend } from '../../src/tensor/backends/ref.js';
import { nativeBackend, nativeInfo, nativeLoadError, nativeReleaseMappedPages, setNativeIsa } from '../../src/tensor/backends/native.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { activationToBf16, bf16ToF32, f32ToBf16 } from '../../src/tensor/dtype.js';
import { isPrepackedWeight, prepackedSize, unpackPrepacked, type PrepackedFloatWeight } from '../../src/tensor/formats.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { mulberry32 as random } from '../../src/random.js';
import { fixturePath } from '../support/fixtures.js';
import { TOLERANCE } from '../tolerances.js';

const skip = nativeBackend ? false : `native addon not built (${nativeLoadError()}); run \`npm rebuild\``;

function uniform(rng: () => number, shape: number[]): Tensor<'f32'> {
  return Tensor.f32(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() * 2 - 1));
}

function weightOf(values: Tensor<'f32'>, dtype: 'f32' | 'bf16'): WeightTensor {
  return dtype === 'f32' ? values : new Tensor('bf16', values.shape, Uint16Array.from(values.data, f32ToBf16));
}

/** The layout as native/kernels.h writes it down, built here independently of src/tensor/formats.ts. */
function packByDefinition(w: WeightTensor): PrepackedFloatWeight {
  const [N, K] = w.shape;
  const format = w.dtype === 'f32' ? 'f32' : 'bf16';
  const panels = Math.ceil(N / 32);
  const data = format === 'f32' ? new Float32Array(panels * 32 * K) : new Uint16Array(panels * 32 * K);
  for (let n = 0; n < N; n++) {
    const p = Math.floor(n / 32), j = n % 32;
    const slot = format === 'f32' ? j : j < 16 ? 2 * j : 2 * (j - 16) + 1;
    for (let k = 0; k < K; k++) data[(p * K + k) * 32 + slot] = w.data[n * K + k];
  }
  return { kind: 'prepacked', format, shape: [N, K], backend: 'native', data };
}

function maxViolation(got: Float32Array, want: Float32Array, tol: { atol: number; rtol: number }): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (tol.atol + tol.rtol * Math.abs(want[i])));
  return worst;
}

const SHAPES: Array<[number, number, number]> = [[1, 17, 5], [5, 100, 33], [8, 40, 64], [13, 300, 70], [40, 129, 97]];

describe('prepacked weights: layout', () => {
  it('unpackPrepacked inverts the written layout exactly, f32 and bf16, N not a multiple of 32', () => {
    const rng = random(1);
    for (const dtype of ['f32', 'bf16'] as const) {
      const w = weightOf(uniform(rng, [45, 19]), dtype);
      const packed = packByDefinition(w);
      assert.equal(packed.data.length, prepackedSize(45, 19));
      assert.deepEqual(Array.from(unpackPrepacked(packed)), Array.from(w.data));
    }
  });

  it('native prepack writes exactly that layout, rows past N zero (where the CPU has the kernel)', { skip }, () => {
    const rng = random(2);
    for (const dtype of ['f32', 'bf16'] as const) {
      const w = weightOf(uniform(rng, [70, 23]), dtype);
      const got = nativeBackend!.prepack(w);
      if (!nativeInfo()!.prepackedFast) {
        assert.equal(got, w, 'a path without a prepacked kernel keeps the weight as stored');
        continue;
      }
      assert.ok(isPrepackedWeight(got));
      assert.deepEqual(Array.from(got.data), Array.from(packByDefinition(w).data));
    }
  });

  it('ref keeps weights as stored, f16 is never prepacked, and a foreign layout is refused', { skip }, () => {
    const w = uniform(random(3), [4, 8]);
    assert.equal(refBackend.prepack(w), w);
    const f16 = new Tensor('f16', [4, 8], new Uint16Array(32));
    assert.equal(nativeBackend!.prepack(f16), f16);
    const foreign = { ...packByDefinition(w), backend: 'other' };
    assert.throws(() => nativeBackend!.linear(Tensor.f32([2, 8], new Float32Array(16)), foreign), /prepacked by 'other'/);
  });
});

describe('prepacked weights: GEMM', { skip }, () => {
  const info = nativeInfo();
  for (const isa of info?.supportedIsas ?? []) {
    it(`isa=${isa}: prepacked linear matches ref on the stored weight (M 1-40, odd K and N, f32 and bf16, bias)`, () => {
      setNativeIsa(isa);
      const rng = random(4);
      for (const [M, K, N] of SHAPES) {
        for (const dtype of ['f32', 'bf16'] as const) {
          const w = weightOf(uniform(rng, [N, K]), dtype);
          const x = uniform(rng, [M, K]);
          const bias = uniform(rng, [N]);
          const got = nativeBackend!.linear(x, packByDefinition(w), bias);
          const want = refBackend.linear(x, w, bias);
          assert.ok(maxViolation(got.data, want.data, TOLERANCE[dtype].linear) <= 1, `${isa} ${dtype} [${M},${K}]x[${N},${K}]`);
        }
      }
    });
    if (isa === 'avx512' || isa === 'avx512vnni') {
      it(`isa=${isa}: from 8 rows on, prepacked equals the plain panel GEMM bit for bit`, () => {
        setNativeIsa(isa);
        const rng = random(5);
        for (const [M, K, N] of SHAPES.filter(([m]) => m >= 8)) {
          for (const dtype of ['f32', 'bf16'] as const) {
            const w = weightOf(uniform(rng, [N, K]), dtype);
            const x = uniform(rng, [M, K]);
            assert.deepEqual(Array.from(nativeBackend!.linear(x, nativeBackend!.prepack(w)).data), Array.from(nativeBackend!.linear(x, w).data));
          }
        }
      });
    }
  }
  it('ref runs a prepacked weight as the stored one, exactly', () => {
    const rng = random(6);
    const w = weightOf(uniform(rng, [33, 21]), 'bf16');
    const x = uniform(rng, [3, 21]);
    assert.deepEqual(Array.from(refBackend.linear(x, packByDefinition(w)).data), Array.from(refBackend.linear(x, w).data));
  });
  it('restores the best ISA', () => {
    const supported = nativeInfo()?.supportedIsas ?? [];
    setNativeIsa(supported[supported.length - 1]);
  });
});

describe('prepacked weights: a model', { skip }, () => {
  it('tiny-openvla loaded prepacked computes the same vision patches and projection as loaded as stored', () => {
    const plain = OpenVla.load(fixturePath('tiny-openvla'), nativeBackend!, { prepack: false });
    const packed = OpenVla.load(fixturePath('tiny-openvla'), nativeBackend!, { prepack: true });
    const expectPacked = nativeInfo()!.prepackedFast;
    assert.equal(isPrepackedWeight(packed.backbones[0].weights.blocks[0].fc1[0]), expectPacked);
    assert.equal(isPrepackedWeight(packed.projector.layers[0][0]), expectPacked);
    assert.equal(isPrepackedWeight(plain.backbones[0].weights.blocks[0].fc1[0]), false);
    const pixels = plain.preprocess(readImageFile(fixturePath('tiny-openvla', 'image.png')));
    const a = plain.projector.forward(plain.visionPatches(pixels));
    const b = packed.projector.forward(packed.visionPatches(pixels));
    // every vision GEMM has at least 8 rows (the patch tokens), where prepacked and plain run the same kernel
    assert.deepEqual(Array.from(b.data as Float32Array), Array.from(a.data as Float32Array));
  });
});

/** The bf16-dot layout as native/kernels.h writes it down: pair q of row j of panel p at ((p·Q + q)·32 + j)·2. */
function packDotByDefinition(w: WeightTensor): PrepackedFloatWeight {
  const [N, K] = w.shape;
  const Q = Math.ceil(K / 2);
  const data = new Uint16Array(Math.ceil(N / 32) * 32 * 2 * Q);
  for (let n = 0; n < N; n++) {
    const p = Math.floor(n / 32), j = n % 32;
    for (let k = 0; k < K; k++) data[((p * Q + (k >> 1)) * 32 + j) * 2 + (k & 1)] = w.data[n * K + k];
  }
  return { kind: 'prepacked', format: 'bf16-dot', shape: [N, K], backend: 'native', data };
}

describe('prepacked weights: bf16 dot products (bf16Activations)', { skip }, () => {
  it('the layout: prepackedSize, unpackPrepacked inverts it, and native writes it where it has the kernel', () => {
    const rng = random(8);
    const w = weightOf(uniform(rng, [45, 19]), 'bf16'); // N not a multiple of 32, K odd
    const packed = packDotByDefinition(w);
    assert.equal(packed.data.length, prepackedSize(45, 19, 'bf16-dot'));
    assert.deepEqual(Array.from(unpackPrepacked(packed)), Array.from(w.data));
    const got = nativeBackend!.prepack(w, { bf16Activations: true });
    if (!nativeInfo()!.prepackedDotFast) {
      assert.ok(!isPrepackedWeight(got) || got.format === 'bf16', 'without the kernel, bf16 activations are not used');
      return;
    }
    assert.ok(isPrepackedWeight(got) && got.format === 'bf16-dot');
    assert.deepEqual(Array.from(got.data), Array.from(packed.data));
  });

  it('f32 weights keep f32 activations, and ref never packs', () => {
    const w = uniform(random(9), [40, 16]);
    const got = nativeBackend!.prepack(w, { bf16Activations: true });
    assert.ok(!isPrepackedWeight(got) || got.format === 'f32');
    const wb = weightOf(w, 'bf16');
    assert.equal(refBackend.prepack(wb, { bf16Activations: true }), wb);
  });

  for (const isa of nativeInfo()?.supportedIsas ?? []) {
    it(`isa=${isa}: x is rounded to bf16 as activationToBf16 rounds it, exactly (K = 1: one exact product)`, () => {
      setNativeIsa(isa);
      // ties to even both ways, values that carry into the exponent, denormals (flushed), huge, negative, zero
      const xs = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 1 - 2 ** -9, 1.9999999, 3.0e38, -2.5e-3, 1e-40, -1e-41, 0, -0, 123.456];
      const M = xs.length;
      const w = new Tensor('bf16', [3, 1], Uint16Array.from([1, -0.5, 3], f32ToBf16));
      const got = nativeBackend!.linear(Tensor.f32([M, 1], Float32Array.from(xs)), packDotByDefinition(w));
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < 3; n++) {
          // out starts at +0 (no bias) and adds the one product, exact in f32
          const want = 0 + Math.fround(bf16ToF32(activationToBf16(xs[m])) * bf16ToF32(w.data[n]));
          assert.equal(got.data[m * 3 + n], want, `${isa}: x = ${xs[m]}, w = ${bf16ToF32(w.data[n])}`);
        }
      }
    });

    it(`isa=${isa}: the bf16-dot GEMM matches ref (x rounded to bf16, exact sums) within f32 accumulation (M 1-40, odd K and N, bias)`, () => {
      setNativeIsa(isa);
      const rng = random(10);
      for (const [M, K, N] of [...SHAPES, [290, 64, 40] as [number, number, number]]) {
        const w = weightOf(uniform(rng, [N, K]), 'bf16');
        const x = uniform(rng, [M, K]);
        const bias = uniform(rng, [N]);
        const packed = packDotByDefinition(w);
        const got = nativeBackend!.linear(x, packed, bias);
        const want = refBackend.linear(x, packed, bias);
        assert.ok(maxViolation(got.data, want.data, TOLERANCE.bf16.linear) <= 1, `${isa} [${M},${K}]x[${N},${K}]`);
        // and it is not the f32-activation product: the rounding of x shows at this size
        if (K >= 100) assert.ok(maxViolation(got.data, refBackend.linear(x, w, bias).data, TOLERANCE.bf16.linear) > 1);
      }
    });
  }

  it('the bundled bf16 policy: vision with bf16 activations stays within cosine 0.9999 of f32 activations', () => {
    const supported = nativeInfo()?.supportedIsas ?? [];
    setNativeIsa(supported[supported.length - 1]);
    const dir = nodePath.join(import.meta.dirname, '..', '..', 'models', 'tabletop-policy');
    const f32 = OpenVla.load(dir, nativeBackend!, { visionBf16: false });
    const bf16 = OpenVla.load(dir, nativeBackend!, { visionBf16: true });
    const fc1 = bf16.backbones[0].weights.blocks[0].fc1[0];
    assert.equal(isPrepackedWeight(fc1) && fc1.format === 'bf16-dot', nativeInfo()!.prepackedDotFast);
    const pixels = f32.preprocess(readImageFile(nodePath.join(dir, 'frame.png')));
    const a = f32.projector.forward(f32.visionPatches(pixels)).data;
    const b = bf16.projector.forward(bf16.visionPatches(pixels)).data;
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    assert.ok(ab / Math.sqrt(aa * bb) >= 0.9999, `cosine ${ab / Math.sqrt(aa * bb)}`);
  });
});

describe('prepacked weights: the stored copy gives its memory back', { skip }, () => {
  it('releaseMappedPages drops a memory-mapped tensor\'s pages, which read back unchanged; heap arrays are left alone', () => {
    const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-prepack-'));
    try {
      const values = uniform(random(7), [1024, 600]); // 2.4 MB: above the mapping threshold
      writeSafetensors(nodePath.join(dir, 'w.safetensors'), { w: values });
      const file = SafetensorsFile.open(nodePath.join(dir, 'w.safetensors'));
      const mapped = file.read('w', { map: true });
      file.close();
      assert.equal(nativeReleaseMappedPages(mapped.data), true, 'a mapped tensor is recognised');
      assert.deepEqual(Array.from(mapped.data as Float32Array), Array.from(values.data));
      assert.equal(nativeReleaseMappedPages(values.data), false, 'a heap array is not a mapping');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
