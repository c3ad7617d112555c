// The native backend against the ref oracle: every op, every instruction-set path this CPU runs (generic, avx2,
// avx512 via setNativeIsa), randomized inputs with sizes that are not multiples of any vector width or register
// tile, f32/bf16/f16 weights, GQA and causal attention. Bounds are TOLERANCE in test/tolerances.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import type { Backend, WeightTensor } from '../../src/tensor/backend.js';
import { refBackend } from '../../src/tensor/backends/ref.js';
import {
  NATIVE_ADDON_PATH,
  NATIVE_ISAS,
  nativeBackend,
  nativeInfo,
  nativeLoadError,
  setNativeIsa,
  type NativeIsa,
} from '../../src/tensor/backends/native.js';
import { f32ToBf16, f32ToF16 } from '../../src/tensor/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { TOLERANCE, type Tolerance } from '../tolerances.js';
import { mulberry32 as random } from '../../src/random.js';

const skip = nativeBackend ? false : `native addon not built (${nativeLoadError()}); run \`npm rebuild\``;


type WeightDType = 'f32' | 'bf16' | 'f16';
const WEIGHT_DTYPES: WeightDType[] = ['f32', 'bf16', 'f16'];

function uniform(rng: () => number, shape: number[], scale = 1): Tensor<'f32'> {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = (rng() * 2 - 1) * scale;
  return t;
}

function weight(rng: () => number, shape: number[], dtype: WeightDType, offset = 0): WeightTensor {
  const values = uniform(rng, shape);
  if (dtype === 'f32') {
    for (let i = 0; i < values.size; i++) values.data[i] += offset;
    return values;
  }
  const encode = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  const bits = new Uint16Array(values.size);
  for (let i = 0; i < bits.length; i++) bits[i] = encode(values.data[i] + offset);
  return dtype === 'bf16' ? new Tensor('bf16', shape, bits) : new Tensor('f16', shape, bits);
}

/** The worst element of |actual - expected| measured against atol + rtol·|expected|, or undefined when all pass. */
function firstViolation(actual: Tensor, expected: Tensor, tol: Tolerance): string | undefined {
  if (actual.shape.join() !== expected.shape.join()) return `shape ${actual} != ${expected}`;
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < expected.size; i++) {
    const a = actual.data[i] as number;
    const e = expected.data[i] as number;
    const error = Math.abs(a - e);
    const bound = tol.atol + tol.rtol * Math.abs(e);
    if (!(error <= bound) && (worst < 0 || error / (bound || Number.MIN_VALUE) > worstRatio)) {
      worst = i;
      worstRatio = error / (bound || Number.MIN_VALUE);
    }
  }
  if (worst < 0) return undefined;
  const a = actual.data[worst] as number;
  const e = expected.data[worst] as number;
  return `element ${worst}: native ${a} vs ref ${e} (|diff| ${Math.abs(a - e)} > atol ${tol.atol} + rtol ${tol.rtol}·|ref|)`;
}

function assertClose(actual: Tensor, expected: Tensor, tol: Tolerance, what: string): void {
  const violation = firstViolation(actual, expected, tol);
  assert.equal(violation, undefined, `${what}: ${violation}`);
}

/** Runs the op suite on `native` with the kernels switched to `isa`. */
function opSuite(isa: NativeIsa, native: Backend): void {
  const ref = refBackend;
  const use = () => setNativeIsa(isa);

  it('linear: f32/bf16/f16 weights, odd M, K, N, with and without bias', () => {
    use();
    const rng = random(1);
    // K = 1037 crosses the K blocks (256 avx2, 512 avx512); M = 17 leaves row remainders of every register tile.
    const shapes: Array<[number, number, number]> = [];
    for (const m of [1, 3, 17]) for (const k of [1, 7, 33, 130]) for (const n of [1, 5, 67]) shapes.push([m, k, n]);
    shapes.push([7, 1037, 19], [1, 1037, 131], [290, 64, 35]);
    for (const dtype of WEIGHT_DTYPES) {
      for (const [m, k, n] of shapes) {
        const x = uniform(rng, [m, k]);
        const w = weight(rng, [n, k], dtype);
        const bias = (m + k + n) % 2 === 0 ? weight(rng, [n], dtype) : undefined;
        const what = `linear ${dtype} M=${m} K=${k} N=${n}${bias ? ' +bias' : ''}`;
        assertClose(native.linear(x, w, bias), ref.linear(x, w, bias), TOLERANCE[dtype].linear, what);
      }
    }
  });

  it('linear: leading batch axes are flattened into M', () => {
    use();
    const rng = random(2);
    const x = uniform(rng, [2, 3, 9]);
    const w = weight(rng, [5, 9], 'bf16');
    const out = native.linear(x, w);
    assert.deepEqual(out.shape, [2, 3, 5]);
    assertClose(out, ref.linear(x, w), TOLERANCE.bf16.linear, 'linear [2,3,9]');
  });

  it('linear and rmsNorm: tensors that are views into larger (and shared) buffers', () => {
    use();
    const rng = random(12);
    const [m, k, n] = [3, 37, 11];
    const source = uniform(rng, [m * k + 5]);
    const shared = new Float32Array(new SharedArrayBuffer(4 * (m * k + 9)));
    shared.set(source.data.subarray(5), 9);
    const wBits = new Uint16Array(n * k + 3);
    for (let i = 0; i < wBits.length; i++) wBits[i] = f32ToBf16(rng() * 2 - 1);
    const w = new Tensor('bf16', [n, k], wBits.subarray(3));
    const xView = Tensor.f32([m, k], source.data.subarray(5));
    const xShared = Tensor.f32([m, k], shared.subarray(9));
    const want = ref.linear(xView, w);
    assertClose(native.linear(xView, w), want, TOLERANCE.bf16.linear, 'linear on views');
    assertClose(native.linear(xShared, w), want, TOLERANCE.bf16.linear, 'linear on a SharedArrayBuffer');
    const g = new Tensor('bf16', [k], wBits.subarray(1, 1 + k));
    assertClose(native.rmsNorm(xView, g, 1e-6), ref.rmsNorm(xView, g, 1e-6), TOLERANCE.bf16.rmsNorm, 'rmsNorm on views');
  });

  it('attention: MHA and GQA, causal and not, with probabilities', () => {
    use();
    const rng = random(3);
    const cases: Array<[number, number, number, number, number]> = [
      // T, S, Hq, Hkv, Dh
      [1, 1, 1, 1, 1],
      [5, 5, 4, 4, 7],
      [1, 19, 8, 2, 33],
      [6, 23, 6, 3, 16],
      [13, 13, 4, 1, 65],
      [17, 40, 2, 2, 17],
      // the row kernel (T >= 4 on AVX-512): 64-key blocks and a masked tail, Dh with a masked last vector (72, as
      // SigLIP-So400m's heads), Dh over 128 (two accumulator passes)
      [4, 4, 1, 1, 8],
      [70, 150, 4, 2, 72],
      [9, 200, 2, 1, 136],
    ];
    for (const [t, s, hq, hkv, dh] of cases) {
      for (const causal of [false, true]) {
        if (!causal && t > s) continue;
        const q = uniform(rng, [t, hq, dh], 2);
        const k = uniform(rng, [s, hkv, dh], 2);
        const v = uniform(rng, [s, hkv, dh]);
        const what = `attention T=${t} S=${s} Hq=${hq} Hkv=${hkv} Dh=${dh} causal=${causal}`;
        const got = native.attention(q, k, v, { causal, returnProbs: true });
        const want = ref.attention(q, k, v, { causal, returnProbs: true });
        assertClose(got.out, want.out, TOLERANCE.f32.attention, what);
        assert.ok(got.probs && want.probs);
        assertClose(got.probs, want.probs, TOLERANCE.f32.attentionProbs, `${what} probs`);
        const withoutProbs = native.attention(q, k, v, { causal });
        assert.equal(withoutProbs.probs, undefined);
        assertClose(withoutProbs.out, got.out, { atol: 0, rtol: 0 }, `${what} without probs`);
      }
    }
  });

  it('attention: causal masks exactly the keys after each query', () => {
    use();
    const rng = random(4);
    const [t, s] = [4, 9];
    const q = uniform(rng, [t, 2, 8]);
    const k = uniform(rng, [s, 1, 8]);
    const { probs } = native.attention(q, k, uniform(rng, [s, 1, 8]), { causal: true, returnProbs: true });
    assert.ok(probs);
    for (let h = 0; h < 2; h++) {
      for (let i = 0; i < t; i++) {
        const row = probs.data.subarray((h * t + i) * s, (h * t + i + 1) * s);
        row.forEach((p, j) => assert.ok(j <= s - t + i ? p > 0 : p === 0, `h=${h} t=${i} key ${j}: p=${p}`));
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-6);
      }
    }
  });

  it('attention: large scores stay finite (stable softmax)', () => {
    use();
    const rng = random(5);
    const q = uniform(rng, [3, 2, 16], 60);
    const k = uniform(rng, [3, 2, 16], 60);
    const v = uniform(rng, [3, 2, 16]);
    const got = native.attention(q, k, v, { causal: false, returnProbs: true });
    assert.ok(got.out.data.every(Number.isFinite));
    assertClose(got.out, ref.attention(q, k, v, { causal: false }).out, TOLERANCE.f32.attention, 'attention scaled');
  });

  it('layerNorm and rmsNorm: f32/bf16/f16 weights, single and threaded row counts', () => {
    use();
    const rng = random(6);
    for (const dtype of WEIGHT_DTYPES) {
      for (const [m, d] of [[1, 1], [3, 7], [17, 130], [33, 1031]]) {
        const x = uniform(rng, [m, d], 3);
        for (let i = 0; i < x.size; i++) x.data[i] += 0.5; // a non-zero mean
        const w = weight(rng, [d], dtype, 1);
        const b = weight(rng, [d], dtype);
        assertClose(native.layerNorm(x, w, b, 1e-6), ref.layerNorm(x, w, b, 1e-6), TOLERANCE[dtype].layerNorm,
          `layerNorm ${dtype} [${m},${d}]`);
        assertClose(native.rmsNorm(x, w, 1e-5), ref.rmsNorm(x, w, 1e-5), TOLERANCE[dtype].rmsNorm,
          `rmsNorm ${dtype} [${m},${d}]`);
      }
    }
  });

  it('gelu, siluMul and add: odd lengths, and one long enough to thread', () => {
    use();
    const rng = random(7);
    for (const shape of [[1], [7], [3, 33], [70001]]) {
      const a = uniform(rng, shape, 6);
      const b = uniform(rng, shape, 2);
      assertClose(native.gelu(a), ref.gelu(a), TOLERANCE.f32.gelu, `gelu [${shape}]`);
      assertClose(native.siluMul(a, b), ref.siluMul(a, b), TOLERANCE.f32.siluMul, `siluMul [${shape}]`);
      assertClose(native.add(a, b), ref.add(a, b), TOLERANCE.f32.add, `add [${shape}]`);
    }
  });

  it('scaleChannels and embedding: f32/bf16/f16', () => {
    use();
    const rng = random(8);
    for (const dtype of WEIGHT_DTYPES) {
      for (const [m, d] of [[1, 1], [5, 33], [129, 517]]) {
        const x = uniform(rng, [m, d]);
        const scale = weight(rng, [d], dtype);
        assertClose(native.scaleChannels(x, scale), ref.scaleChannels(x, scale), TOLERANCE[dtype].scaleChannels,
          `scaleChannels ${dtype} [${m},${d}]`);
        const table = weight(rng, [m, d], dtype);
        const ids = Int32Array.from({ length: 11 }, () => Math.floor(rng() * m));
        assertClose(native.embedding(table, ids), ref.embedding(table, ids), TOLERANCE[dtype].embedding,
          `embedding ${dtype} [${m},${d}]`);
      }
    }
  });

  it('rope: odd head counts, pruned (non-contiguous) positions', () => {
    use();
    const rng = random(9);
    for (const [t, h, dh] of [[1, 1, 2], [5, 3, 18], [31, 4, 128], [300, 2, 64]]) {
      const x = uniform(rng, [t, h, dh]);
      const positions = Int32Array.from({ length: t }, (_, i) => i * 3 + (i % 2));
      assertClose(native.rope(x, positions, 10000), ref.rope(x, positions, 10000), TOLERANCE.f32.rope,
        `rope [${t},${h},${dh}]`);
    }
  });
}

describe('native backend vs ref', { skip }, () => {
  const info = nativeInfo();
  for (const isa of NATIVE_ISAS) {
    const missing = info && !info.supportedIsas.includes(isa);
    const reason = missing ? `this CPU cannot run the ${isa} path (supported: ${info.supportedIsas.join(', ')})` : false;
    describe(`isa=${isa}`, { skip: reason }, () => opSuite(isa, nativeBackend as Backend));
  }
  it('restores the best ISA', () => {
    const supported = nativeInfo()?.supportedIsas ?? [];
    setNativeIsa(supported[supported.length - 1]);
  });
});

describe('native backend: the comparisons can fail', { skip }, () => {
  it('a weight perturbed by 1e-3 is caught by the linear tolerance', () => {
    const native = nativeBackend as Backend;
    const rng = random(10);
    const x = uniform(rng, [3, 33]);
    const w = uniform(rng, [5, 33]);
    const perturbed = Tensor.f32(w.shape, w.data.slice());
    perturbed.data[40] += 1e-3;
    assert.notEqual(firstViolation(native.linear(x, perturbed), refBackend.linear(x, w), TOLERANCE.f32.linear), undefined);
  });

  it('a causal/non-causal mix-up is caught by the attention tolerance', () => {
    const native = nativeBackend as Backend;
    const rng = random(11);
    const [q, k, v] = [uniform(rng, [4, 2, 8]), uniform(rng, [4, 2, 8]), uniform(rng, [4, 2, 8])];
    const violation = firstViolation(native.attention(q, k, v, { causal: true }).out,
      refBackend.attention(q, k, v, { causal: false }).out, TOLERANCE.f32.attention);
    assert.notEqual(violation, undefined);
  });
});

describe('native binding: argument checks throw instead of crashing', { skip }, () => {
  // The raw addon, to reach binding.cc's checks without native.ts's shape checks in front of them.
  const addon = skip ? undefined : (createRequire(import.meta.url)(NATIVE_ADDON_PATH) as Record<string, Function>);
  const f32 = (n: number) => new Float32Array(n);

  it('wrong lengths, array types, sizes and ranges', () => {
    assert.ok(addon);
    assert.throws(() => addon.linear(f32(6), f32(6), f32(9), 0, null, 0, 2, 3, 4), { name: 'TypeError', message: /linear: out has 6 elements, expected 8/ });
    assert.throws(() => addon.linear(f32(8), f32(6), new Uint16Array(12), 0, null, 0, 2, 3, 4), { name: 'TypeError', message: /w must be a Float32Array/ });
    assert.throws(() => addon.linear(f32(8), f32(6), f32(12), 1, null, 0, 2, 3, 4), { name: 'TypeError', message: /Uint16Array/ });
    assert.throws(() => addon.linear(f32(8), f32(6), f32(12), 0, f32(3), 0, 2, 3, 4), { name: 'TypeError', message: /bias has 3 elements/ });
    assert.throws(() => addon.linear(f32(8), f32(6), f32(12), 0, null, 0, 2, 3.5, 4), { name: 'TypeError', message: /K must be a non-negative integer/ });
    assert.throws(() => addon.linear(f32(8), f32(6), f32(12), 7, null, 0, 2, 3, 4), { name: 'TypeError', message: /wType must be 0/ });
    assert.throws(() => addon.linear(f32(8)), { name: 'TypeError', message: /expected 9 arguments/ });
    assert.throws(() => addon.embedding(f32(4), f32(8), 0, Int32Array.of(0, 4), 4, 2), { name: 'RangeError', message: /ids\[1\] = 4 is outside/ });
    assert.throws(() => addon.attention(f32(8), null, f32(8), f32(4), f32(4), 2, 1, 1, 1, 4, true), { name: 'TypeError', message: /T <= S/ });
    assert.throws(() => addon.attention(f32(24), null, f32(24), f32(8), f32(8), 1, 1, 3, 2, 8, false), { name: 'TypeError', message: /multiple of Hkv/ });
    assert.throws(() => addon.rope(f32(3), f32(3), Int32Array.of(0), 1, 1, 3, 10000), { name: 'TypeError', message: /Dh must be even/ });
    assert.throws(() => addon.setIsa('sse9'), { name: 'TypeError', message: /unknown ISA/ });
  });
});

describe('native dispatch: SQAP_NATIVE_ISA and SQAP_THREADS', { skip }, () => {
  function infoWith(env: Record<string, string>): { isa: string; requestedIsa: string | null; threads: number } {
    const script = `process.stdout.write(JSON.stringify(require(${JSON.stringify(NATIVE_ADDON_PATH)}).info()))`;
    const child = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    return JSON.parse(child.stdout);
  }

  it('forces each supported path; an unsupported one falls back to the best', () => {
    const supported = nativeInfo()?.supportedIsas ?? [];
    for (const isa of NATIVE_ISAS) {
      const info = infoWith({ SQAP_NATIVE_ISA: isa });
      assert.equal(info.requestedIsa, isa);
      assert.equal(info.isa, supported.includes(isa) ? isa : supported[supported.length - 1]);
    }
  });

  it('SQAP_THREADS sets the pool size', () => {
    assert.equal(infoWith({ SQAP_THREADS: '1' }).threads, 1);
    assert.equal(infoWith({ SQAP_THREADS: '3' }).threads, 3);
  });
});
