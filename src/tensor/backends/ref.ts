// The reference backend: plain TypeScript loops, written to be obviously right rather than fast. It is the
// oracle every other backend is tested against. Math in float64 JS numbers, results stored as float32.
import type { AttentionOptions, AttentionResult, Backend, LinearWeight, WeightTensor } from '../backend.js';
import { activationToBf16, bf16ToF32, floatAt, type AnyTypedArray } from '../dtype.js';
import { codeAt, isPrepackedWeight, isQuantizedWeight, scaleAt, unpackPrepacked } from '../formats.js';
import { attentionInt, fwht, linearInt, linearIntAccumulators, quantizeActivations } from './ref-int.js';
import { sameShape, Tensor } from '../tensor.js';

/** The message is built only on failure: formatting shapes on every call would cost more than small kernels. */
function assert(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(`ref backend: ${message()}`);
}

/** Weight element reader: bf16/f16 are converted on access, never copied to f32. */
function reader(w: WeightTensor): (i: number) => number {
  const data = w.data as AnyTypedArray;
  if (w.dtype === 'f32') return (i) => (data as Float32Array)[i];
  return (i) => floatAt(w.dtype, data, i);
}

/** Element reader of a linear weight as w[n·K + k]; integer weights dequantize to f32(code · scale). */
function linearReader(w: LinearWeight): (i: number) => number {
  if (isPrepackedWeight(w)) {
    const values = unpackPrepacked(w);
    return w.format === 'f32' ? (i) => values[i] : (i) => floatAt('bf16', values, i); // bf16 and bf16-dot: bf16 bits
  }
  if (!isQuantizedWeight(w)) return reader(w);
  const K = w.shape[1];
  const { codes, scales } = w; // once: a packed weight rebuilds them on every read
  return (i) => {
    const n = Math.floor(i / K);
    return Math.fround(codeAt(w, n, i - n * K, codes) * scaleAt(w, n, i - n * K, scales));
  };
}

/** x [M,K] · w[N,K]ᵀ + bias[N] -> [M,N] */
function linear(x: Tensor<'f32'>, w: LinearWeight, bias?: WeightTensor): Tensor<'f32'> {
  const [n, k] = w.shape;
  assert(w.shape.length === 2 && x.shape[x.rank - 1] === k, () => `linear: x ${x} does not match w [${w.shape}]`);
  const m = x.size / k;
  const out = new Float32Array(m * n);
  const wAt = linearReader(w);
  // the bf16-dot layout multiplies x rounded to bf16 (PrepackedFloatWeight.format)
  const xs = isPrepackedWeight(w) && w.format === 'bf16-dot' ? Float32Array.from(x.data, (v) => bf16ToF32(activationToBf16(v))) : x.data;
  const bAt = bias ? reader(bias) : undefined;
  // Convert one weight row at a time so the inner loop is a plain dot product.
  const row = new Float64Array(k);
  for (let j = 0; j < n; j++) {
    for (let p = 0; p < k; p++) row[p] = wAt(j * k + p);
    const b = bAt ? bAt(j) : 0;
    for (let i = 0; i < m; i++) {
      let sum = 0;
      const base = i * k;
      for (let p = 0; p < k; p++) sum += xs[base + p] * row[p];
      out[i * n + j] = sum + b;
    }
  }
  return Tensor.f32([...x.shape.slice(0, -1), n], out);
}

/** table [V,D], ids [T] -> [T,D] */
function embedding(table: WeightTensor, ids: Int32Array): Tensor<'f32'> {
  const [vocab, dim] = table.shape;
  const out = new Float32Array(ids.length * dim);
  const at = reader(table);
  ids.forEach((id, t) => {
    assert(id >= 0 && id < vocab, () => `embedding: id ${id} outside vocabulary of ${vocab}`);
    for (let d = 0; d < dim; d++) out[t * dim + d] = at(id * dim + d);
  });
  return Tensor.f32([ids.length, dim], out);
}

/** x [M,D] -> [M,D] */
function layerNorm(x: Tensor<'f32'>, weight: WeightTensor, bias: WeightTensor, eps: number): Tensor<'f32'> {
  const dim = x.shape[x.rank - 1];
  const rows = x.size / dim;
  const out = new Float32Array(x.size);
  const g = reader(weight);
  const b = reader(bias);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let mean = 0;
    for (let d = 0; d < dim; d++) mean += x.data[base + d];
    mean /= dim;
    let variance = 0;
    for (let d = 0; d < dim; d++) variance += (x.data[base + d] - mean) ** 2;
    variance /= dim;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let d = 0; d < dim; d++) out[base + d] = (x.data[base + d] - mean) * inv * g(d) + b(d);
  }
  return Tensor.f32(x.shape, out);
}

/** x [M,D] -> [M,D] */
function rmsNorm(x: Tensor<'f32'>, weight: WeightTensor, eps: number): Tensor<'f32'> {
  const dim = x.shape[x.rank - 1];
  const rows = x.size / dim;
  const out = new Float32Array(x.size);
  const g = reader(weight);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let meanSquare = 0;
    for (let d = 0; d < dim; d++) meanSquare += x.data[base + d] ** 2;
    meanSquare /= dim;
    // transformers rounds the normalized activations to float32 before the weight multiply
    const inv = 1 / Math.sqrt(meanSquare + eps);
    for (let d = 0; d < dim; d++) out[base + d] = Math.fround(x.data[base + d] * inv) * g(d);
  }
  return Tensor.f32(x.shape, out);
}

/** erf with |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev fit), ample for float32 outputs. */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

function map(x: Tensor<'f32'>, f: (v: number, i: number) => number): Tensor<'f32'> {
  const out = new Float32Array(x.size);
  for (let i = 0; i < out.length; i++) out[i] = f(x.data[i], i);
  return Tensor.f32(x.shape, out);
}

function gelu(x: Tensor<'f32'>): Tensor<'f32'> {
  return map(x, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
}

function siluMul(gate: Tensor<'f32'>, up: Tensor<'f32'>): Tensor<'f32'> {
  assert(sameShape(gate.shape, up.shape), () => `siluMul: ${gate} vs ${up}`);
  return map(gate, (g, i) => (g / (1 + Math.exp(-g))) * up.data[i]);
}

function add(a: Tensor<'f32'>, b: Tensor<'f32'>): Tensor<'f32'> {
  assert(sameShape(a.shape, b.shape), () => `add: ${a} vs ${b}`);
  return map(a, (v, i) => v + b.data[i]);
}

function scaleChannels(x: Tensor<'f32'>, scale: WeightTensor): Tensor<'f32'> {
  const dim = scale.size;
  assert(x.shape[x.rank - 1] === dim, () => `scaleChannels: ${x} vs ${scale}`);
  const s = reader(scale);
  return map(x, (v, i) => v * s(i % dim));
}

/** x [T,H,Dh] -> [T,H,Dh]; pairs (d, d + Dh/2), inv_freq = θ^(-2d/Dh), angles and cos/sin in float32 like transformers */
function rope(x: Tensor<'f32'>, positions: Int32Array, theta: number): Tensor<'f32'> {
  return rotatePairs(x, positions, theta, 1);
}

/**
 * x [T,H,Dh] -> [T,H,Dh]: each pair (d, d + Dh/2) rotated by direction · angle, with rope's float32 angle math.
 * direction 1 is rope itself; -1 is its inverse and transpose, which is rope's backward.
 */
export function rotatePairs(x: Tensor<'f32'>, positions: Int32Array, theta: number, direction: 1 | -1): Tensor<'f32'> {
  const [tokens, heads, headDim] = x.shape;
  assert(x.rank === 3 && positions.length === tokens && headDim % 2 === 0, () => `rope: ${x}, ${positions.length} positions`);
  const half = headDim / 2;
  const out = new Float32Array(x.size);
  for (let t = 0; t < tokens; t++) {
    for (let d = 0; d < half; d++) {
      const invFreq = Math.fround(1 / theta ** ((2 * d) / headDim));
      const angle = Math.fround(positions[t] * invFreq);
      const cos = Math.fround(Math.cos(angle));
      const sin = direction * Math.fround(Math.sin(angle));
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * headDim;
        const a = x.data[base + d];
        const b = x.data[base + d + half];
        out[base + d] = a * cos - b * sin;
        out[base + d + half] = b * cos + a * sin;
      }
    }
  }
  return Tensor.f32(x.shape, out);
}

/** q [T,Hq,Dh], k/v [S,Hkv,Dh] -> out [T,Hq*Dh], probs [Hq,T,S] */
function attention(q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, options: AttentionOptions): AttentionResult {
  const [tokens, qHeads, headDim] = q.shape;
  const [keys, kvHeads] = k.shape;
  assert(q.rank === 3 && k.rank === 3 && sameShape(k.shape, v.shape), () => `attention: q ${q}, k ${k}, v ${v}`);
  assert(k.shape[2] === headDim && qHeads % kvHeads === 0 && keys >= tokens, () => `attention: q ${q} incompatible with k ${k}`);
  const group = qHeads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(tokens * qHeads * headDim);
  const probs = options.returnProbs ? new Float32Array(qHeads * tokens * keys) : undefined;
  // Pruning scores: the probability rows of a few queries, and per-key totals over heads and queries (float64).
  const scoreRows = options.scores?.queryRows ?? new Int32Array(0);
  scoreRows.forEach((t, r) => assert(t >= 0 && t < tokens && (r === 0 || t > scoreRows[r - 1]), () => `attention: score rows must be ascending in [0, ${tokens})`));
  const rowOf = new Int32Array(tokens).fill(-1);
  scoreRows.forEach((t, r) => (rowOf[t] = r));
  const queryProbs = options.scores?.queryRows ? new Float32Array(qHeads * scoreRows.length * keys) : undefined;
  const keyTotals = options.scores?.keyTotals ? new Float64Array(keys) : undefined;
  const scores = new Float64Array(keys);
  const accumulator = new Float64Array(headDim);
  for (let h = 0; h < qHeads; h++) {
    const kvHead = Math.floor(h / group);
    for (let t = 0; t < tokens; t++) {
      const visible = options.causal ? keys - tokens + t + 1 : keys;
      let max = -Infinity;
      for (let s = 0; s < visible; s++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q.data[(t * qHeads + h) * headDim + d] * k.data[(s * kvHeads + kvHead) * headDim + d];
        scores[s] = dot * scale;
        max = Math.max(max, scores[s]);
      }
      let total = 0;
      for (let s = 0; s < visible; s++) {
        scores[s] = Math.exp(scores[s] - max);
        total += scores[s];
      }
      accumulator.fill(0);
      for (let s = 0; s < visible; s++) {
        const p = scores[s] / total;
        if (probs) probs[(h * tokens + t) * keys + s] = p;
        if (queryProbs && rowOf[t] >= 0) queryProbs[(h * scoreRows.length + rowOf[t]) * keys + s] = p;
        if (keyTotals) keyTotals[s] += p;
        for (let d = 0; d < headDim; d++) accumulator[d] += p * v.data[(s * kvHeads + kvHead) * headDim + d];
      }
      out.set(accumulator, (t * qHeads + h) * headDim);
    }
  }
  return {
    out: Tensor.f32([tokens, qHeads * headDim], out),
    probs: probs ? Tensor.f32([qHeads, tokens, keys], probs) : undefined,
    scores: options.scores
      ? {
          queryProbs: queryProbs ? Tensor.f32([qHeads, scoreRows.length, keys], queryProbs) : undefined,
          keyTotals: keyTotals ? Float32Array.from(keyTotals) : undefined,
        }
      : undefined,
  };
}

export const refBackend: Backend = {
  name: 'ref',
  linear,
  // the oracle reads weights as stored: no layout of its own
  prepack: (w) => w,
  embedding,
  layerNorm,
  rmsNorm,
  gelu,
  siluMul,
  add,
  scaleChannels,
  rope,
  attention,
  quantizeActivations,
  linearInt,
  linearIntAccumulators,
  fwht,
  attentionInt,
};
