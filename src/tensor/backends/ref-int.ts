// The integer half of the reference backend: the bit-exact oracle for the native integer kernels. Every step is
// the arithmetic docs/quantization.md ("Kernel contract") writes down, in the same order: f32 values are rounded
// with Math.fround exactly where the contract rounds to f32, integers are exact, and the attention softmax runs in
// f64 with expPortable (basic operations only, so C++ compiled without FMA contraction gets the same bits).
import type { ActivationQuantOptions, AttentionOptions, AttentionResult, QuantizedActivations, WeightTensor } from '../backend.js';
import { floatAt, type AnyTypedArray } from '../dtype.js';
import { codeAt, roundHalfEven, type QuantizedWeight } from '../formats.js';
import { shapeSize, Tensor } from '../tensor.js';
import { UserError } from '../../errors.js';

function assert(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(`ref backend: ${message()}`);
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Hadamard block checks shared by both backends: a power of two that divides K. */
export function checkHadamardBlock(K: number, blockSize: number): void {
  if (!isPowerOfTwo(blockSize) || K % blockSize !== 0) {
    throw new UserError(`Hadamard block ${blockSize} must be a power of two that divides the width ${K}`);
  }
}

/** In-place normalized FWHT of v[offset .. offset+B): butterflies by stride 1, 2, 4, ... then · f32(1/√B). */
function fwhtBlock(v: Float32Array, offset: number, B: number): void {
  for (let len = 1; len < B; len <<= 1) {
    for (let i = offset; i < offset + B; i += 2 * len) {
      for (let j = i; j < i + len; j++) {
        const a = v[j];
        const b = v[j + len];
        v[j] = a + b; // stored to a Float32Array: rounded to f32
        v[j + len] = a - b;
      }
    }
  }
  const s = Math.fround(1 / Math.sqrt(B));
  for (let j = offset; j < offset + B; j++) v[j] = v[j] * s;
}

/** x [M,K] -> [M,K] */
export function fwht(x: Tensor<'f32'>, blockSize: number): Tensor<'f32'> {
  const K = x.shape[x.rank - 1];
  checkHadamardBlock(K, blockSize);
  const out = Float32Array.from(x.data);
  for (let offset = 0; offset < out.length; offset += blockSize) fwhtBlock(out, offset, blockSize);
  return Tensor.f32(x.shape, out);
}

/** x [M,K] -> codes [M,K], scales [M] (contract steps Q1–Q5) */
export function quantizeActivations(x: Tensor<'f32'>, options: ActivationQuantOptions): QuantizedActivations {
  const K = x.shape[x.rank - 1];
  const M = shapeSize(x.shape.slice(0, -1));
  const bits = options.bits;
  assert(bits === 4 || bits === 8, () => `quantizeActivations: bits must be 4 or 8, got ${bits}`);
  if (options.hadamardBlock !== undefined) checkHadamardBlock(K, options.hadamardBlock);
  const qmax = bits === 8 ? 127 : 7;
  const clip = options.clipRatio ?? 1;
  assert(clip > 0 && clip <= 1, () => `quantizeActivations: clipRatio must be in (0, 1], got ${clip}`);
  const norm = options.rmsNorm;
  const weight = norm?.weight;
  assert(!weight || weight.size === K, () => `quantizeActivations: norm weight ${weight} does not match width ${K}`);
  const codes = new Int8Array(M * K);
  const scales = new Float32Array(M);
  const h = new Float32Array(K);
  for (let m = 0; m < M; m++) {
    const base = m * K;
    // Q1: RMSNorm (sum of squares in f64 in k order; x·inv rounded to f32, then · weight rounded to f32)
    if (norm) {
      let sum = 0;
      for (let k = 0; k < K; k++) sum += x.data[base + k] * x.data[base + k];
      const inv = 1 / Math.sqrt(sum / K + norm.eps);
      for (let k = 0; k < K; k++) {
        const t = Math.fround(x.data[base + k] * inv);
        h[k] = weight ? t * weightAt(weight, k) : t;
      }
    } else {
      h.set(x.data.subarray(base, base + K));
    }
    // Q2: block Hadamard
    if (options.hadamardBlock !== undefined) for (let o = 0; o < K; o += options.hadamardBlock) fwhtBlock(h, o, options.hadamardBlock);
    // Q3: absolute maximum, clipped
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(h[k]));
    if (clip !== 1) amax = Math.fround(amax * Math.fround(clip));
    // Q4: scale, Q5: codes
    const scale = Math.fround(amax / qmax);
    scales[m] = scale;
    if (scale === 0) continue;
    for (let k = 0; k < K; k++) {
      codes[base + k] = Math.min(qmax, Math.max(-qmax, roundHalfEven(Math.fround(h[k] / scale))));
    }
  }
  return { shape: [...x.shape], bits, codes, scales };
}

function weightAt(w: WeightTensor, i: number): number {
  return floatAt(w.dtype, w.data as AnyTypedArray, i);
}

function checkLinear(xq: QuantizedActivations, w: QuantizedWeight): [number, number, number] {
  const [N, K] = w.shape;
  assert(xq.shape[xq.shape.length - 1] === K, () => `linearInt: activations [${xq.shape}] do not match weight [${N},${K}]`);
  return [xq.codes.length / K, K, N];
}

/** xq [M,K], w [N,K] -> acc [M,N,G], G = K/groupSize (contract step L1) */
export function linearIntAccumulators(xq: QuantizedActivations, w: QuantizedWeight): Int32Array {
  const [M, K, N] = checkLinear(xq, w);
  const group = w.groupSize;
  const G = K / group;
  const acc = new Int32Array(M * N * G);
  const row = new Int32Array(K);
  const codes = w.codes; // once: a packed weight rebuilds them on every read
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) row[k] = codeAt(w, n, k, codes);
    for (let m = 0; m < M; m++) {
      for (let g = 0; g < G; g++) {
        let sum = 0;
        for (let k = g * group; k < (g + 1) * group; k++) sum += xq.codes[m * K + k] * row[k];
        acc[(m * N + n) * G + g] = sum;
      }
    }
  }
  return acc;
}

/** xq [M,K] · w [N,K]ᵀ + bias [N] -> [..., N] (contract steps L1–L3) */
export function linearInt(xq: QuantizedActivations, w: QuantizedWeight, bias?: WeightTensor): Tensor<'f32'> {
  const [M, , N] = checkLinear(xq, w);
  assert(!bias || bias.size === N, () => `linearInt: bias ${bias} does not match N = ${N}`);
  const G = w.shape[1] / w.groupSize;
  const acc = linearIntAccumulators(xq, w);
  const out = new Float32Array(M * N);
  const scales = w.scales; // once (see linearIntAccumulators)
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let g = 0; g < G; g++) {
        s = Math.fround(s + Math.fround(Math.fround(acc[(m * N + n) * G + g]) * scales[n * G + g]));
      }
      let y = Math.fround(s * xq.scales[m]);
      if (bias) y = Math.fround(y + weightAt(bias, n));
      out[m * N + n] = y;
    }
  }
  return Tensor.f32([...xq.shape.slice(0, -1), N], out);
}

const LN2_HI = 6.93147180369123816490e-1; // ln 2 with its low 21 bits cleared: n·LN2_HI is exact for |n| < 2^21
const LN2_LO = 1.90821492927058770002e-10;
const LOG2E = 1.4426950408889634;

/**
 * e^x for x <= 0 from +, -, ·, floor and a power of two only, so TypeScript and C++ (without FMA contraction)
 * return the same bits: n = floor(x·log2e + 1/2), r = (x - n·LN2_HI) - n·LN2_LO, e^r by its Taylor series to r^13
 * (Horner), times 2^n. Relative error < 4e-16. x < -700 gives 0.
 */
export function expPortable(x: number): number {
  if (x < -700) return 0;
  const n = Math.floor(x * LOG2E + 0.5);
  const r = x - n * LN2_HI - n * LN2_LO;
  let p = 1 / 6227020800; // 1/13!
  for (const c of EXP_TAYLOR) p = p * r + c;
  return p * 2 ** n;
}
// 1/12!, 1/11!, ..., 1/1!, 1/0!
const EXP_TAYLOR = [
  1 / 479001600, 1 / 39916800, 1 / 3628800, 1 / 362880, 1 / 40320, 1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1,
];

/** q [T,Hq,Dh], k/v [S,Hkv,Dh] quantized per (token, head) -> out [T,Hq*Dh], probs [Hq,T,S] (steps A1–A6) */
export function attentionInt(
  q: QuantizedActivations,
  k: QuantizedActivations,
  v: QuantizedActivations,
  options: AttentionOptions,
): AttentionResult {
  const [tokens, qHeads, headDim] = q.shape;
  const [keys, kvHeads] = k.shape;
  assert(q.shape.length === 3 && k.shape.length === 3 && v.shape.length === 3, () => 'attentionInt: q, k, v must be [tokens, heads, Dh]');
  assert(k.shape[2] === headDim && v.shape[2] === headDim && v.shape[0] === keys && v.shape[1] === kvHeads,
    () => `attentionInt: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not match`);
  assert(qHeads % kvHeads === 0 && keys >= tokens, () => `attentionInt: q [${q.shape}] incompatible with k [${k.shape}]`);
  const group = qHeads / kvHeads;
  const invSqrt = 1 / Math.sqrt(headDim);
  const out = new Float32Array(tokens * qHeads * headDim);
  const probs = options.returnProbs ? new Float32Array(qHeads * tokens * keys) : undefined;
  const e = new Float64Array(keys);
  const pc = new Int32Array(keys);
  for (let h = 0; h < qHeads; h++) {
    const kvHead = Math.floor(h / group);
    for (let t = 0; t < tokens; t++) {
      const visible = options.causal ? keys - tokens + t + 1 : keys;
      const qRow = t * qHeads + h;
      // A1–A2: integer scores, scaled in f64
      let max = -Infinity;
      for (let s = 0; s < visible; s++) {
        const kRow = s * kvHeads + kvHead;
        let acc = 0;
        for (let d = 0; d < headDim; d++) acc += q.codes[qRow * headDim + d] * k.codes[kRow * headDim + d];
        e[s] = acc * (q.scales[qRow] * k.scales[kRow]) * invSqrt;
        if (e[s] > max) max = e[s];
      }
      // A3: softmax in f64 with the portable exp, summed in s order
      let total = 0;
      for (let s = 0; s < visible; s++) {
        e[s] = expPortable(e[s] - max);
        total += e[s];
      }
      // A4: p·sv quantized to u8 with one scale per (query, head)
      let pmax = 0;
      for (let s = 0; s < visible; s++) {
        const p = e[s] / total;
        if (probs) probs[(h * tokens + t) * keys + s] = p;
        e[s] = p * v.scales[s * kvHeads + kvHead];
        if (e[s] > pmax) pmax = e[s];
      }
      if (pmax === 0) continue;
      const sp = pmax / 255;
      for (let s = 0; s < visible; s++) pc[s] = Math.min(255, roundHalfEven(e[s] / sp));
      // A5–A6: PV in int32, times sp, rounded to f32
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let s = 0; s < visible; s++) acc += pc[s] * v.codes[(s * kvHeads + kvHead) * headDim + d];
        out[qRow * headDim + d] = acc * sp;
      }
    }
  }
  return {
    out: Tensor.f32([tokens, qHeads * headDim], out),
    probs: probs ? Tensor.f32([qHeads, tokens, keys], probs) : undefined,
  };
}
