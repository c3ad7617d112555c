// The reference backward kernels: each op's vector-Jacobian product written as the math, in float64 JS numbers,
// results stored as float32. The oracle native-grad.ts is tested against; finite differences test it.
import type { AdamWHyper, AttentionGrads, GradBackend, LinearGrads } from '../grad-backend.js';
import { sameShape, Tensor } from '../tensor.js';
import { erf, rotatePairs } from './ref.js';

function assert(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(`ref grad backend: ${message()}`);
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** dy [M,N], x [M,K], w [N,K] -> dx [M,K], dw [N,K], db [N] */
function linearBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>, w: Tensor<'f32'>, options: { dx: boolean; bias: boolean }): LinearGrads {
  const [n, k] = w.shape;
  const m = x.size / k;
  assert(w.rank === 2 && x.shape[x.rank - 1] === k && dy.size === m * n, () => `linearBackward: dy ${dy}, x ${x}, w ${w}`);
  const dw = new Float32Array(n * k);
  const acc = new Float64Array(k);
  for (let j = 0; j < n; j++) {
    acc.fill(0);
    for (let i = 0; i < m; i++) {
      const g = dy.data[i * n + j];
      if (g === 0) continue;
      for (let p = 0; p < k; p++) acc[p] += g * x.data[i * k + p];
    }
    dw.set(acc, j * k);
  }
  let dx: Tensor<'f32'> | undefined;
  if (options.dx) {
    const out = new Float32Array(m * k);
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      for (let j = 0; j < n; j++) {
        const g = dy.data[i * n + j];
        if (g === 0) continue;
        for (let p = 0; p < k; p++) acc[p] += g * w.data[j * k + p];
      }
      out.set(acc, i * k);
    }
    dx = Tensor.f32(x.shape, out);
  }
  let db: Tensor<'f32'> | undefined;
  if (options.bias) {
    const sums = new Float64Array(n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) sums[j] += dy.data[i * n + j];
    db = Tensor.f32([n], Float32Array.from(sums));
  }
  return { dx, dw: Tensor.f32([n, k], dw), db };
}

/** dy [T,D], ids [T] -> dTable [V,D] */
function embeddingBackward(dy: Tensor<'f32'>, ids: Int32Array, vocab: number): Tensor<'f32'> {
  const dim = dy.size / ids.length;
  assert(Number.isInteger(dim) && dy.shape[dy.rank - 1] === dim, () => `embeddingBackward: dy ${dy} for ${ids.length} ids`);
  const acc = new Float64Array(vocab * dim);
  ids.forEach((id, t) => {
    assert(id >= 0 && id < vocab, () => `embeddingBackward: id ${id} outside vocabulary of ${vocab}`);
    for (let d = 0; d < dim; d++) acc[id * dim + d] += dy.data[t * dim + d];
  });
  return Tensor.f32([vocab, dim], Float32Array.from(acc));
}

/** dy, x [M,D], weight [D] -> dx [M,D], dWeight [D], dBias [D] */
function layerNormBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>, weight: Tensor<'f32'>, eps: number) {
  const dim = weight.size;
  assert(sameShape(dy.shape, x.shape) && x.shape[x.rank - 1] === dim, () => `layerNormBackward: dy ${dy}, x ${x}, weight ${weight}`);
  const rows = x.size / dim;
  const dx = new Float32Array(x.size);
  const dWeight = new Float64Array(dim);
  const dBias = new Float64Array(dim);
  const xhat = new Float64Array(dim);
  const dxhat = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let mean = 0;
    for (let d = 0; d < dim; d++) mean += x.data[base + d];
    mean /= dim;
    let variance = 0;
    for (let d = 0; d < dim; d++) variance += (x.data[base + d] - mean) ** 2;
    variance /= dim;
    const inv = 1 / Math.sqrt(variance + eps);
    let meanDxhat = 0;
    let meanDxhatXhat = 0;
    for (let d = 0; d < dim; d++) {
      const g = dy.data[base + d];
      xhat[d] = (x.data[base + d] - mean) * inv;
      dxhat[d] = g * weight.data[d];
      dWeight[d] += g * xhat[d];
      dBias[d] += g;
      meanDxhat += dxhat[d];
      meanDxhatXhat += dxhat[d] * xhat[d];
    }
    meanDxhat /= dim;
    meanDxhatXhat /= dim;
    for (let d = 0; d < dim; d++) dx[base + d] = inv * (dxhat[d] - meanDxhat - xhat[d] * meanDxhatXhat);
  }
  return { dx: Tensor.f32(x.shape, dx), dWeight: Tensor.f32([dim], Float32Array.from(dWeight)), dBias: Tensor.f32([dim], Float32Array.from(dBias)) };
}

/** dy, x [M,D], weight [D] -> dx [M,D], dWeight [D] */
function rmsNormBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>, weight: Tensor<'f32'>, eps: number) {
  const dim = weight.size;
  assert(sameShape(dy.shape, x.shape) && x.shape[x.rank - 1] === dim, () => `rmsNormBackward: dy ${dy}, x ${x}, weight ${weight}`);
  const rows = x.size / dim;
  const dx = new Float32Array(x.size);
  const dWeight = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let meanSquare = 0;
    for (let d = 0; d < dim; d++) meanSquare += x.data[base + d] ** 2;
    meanSquare /= dim;
    const inv = 1 / Math.sqrt(meanSquare + eps);
    // n = x·inv; dn = dy·w; dx = inv·(dn - n·mean(dn·n))
    let meanDnN = 0;
    for (let d = 0; d < dim; d++) {
      const n = x.data[base + d] * inv;
      const g = dy.data[base + d];
      dWeight[d] += g * n;
      meanDnN += g * weight.data[d] * n;
    }
    meanDnN /= dim;
    for (let d = 0; d < dim; d++) {
      const n = x.data[base + d] * inv;
      dx[base + d] = inv * (dy.data[base + d] * weight.data[d] - n * meanDnN);
    }
  }
  return { dx: Tensor.f32(x.shape, dx), dWeight: Tensor.f32([dim], Float32Array.from(dWeight)) };
}

function geluBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>): Tensor<'f32'> {
  assert(sameShape(dy.shape, x.shape), () => `geluBackward: dy ${dy}, x ${x}`);
  const out = new Float32Array(x.size);
  for (let i = 0; i < out.length; i++) {
    const v = x.data[i];
    out[i] = dy.data[i] * (0.5 * (1 + erf(v / Math.SQRT2)) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
  }
  return Tensor.f32(x.shape, out);
}

function siluMulBackward(dy: Tensor<'f32'>, gate: Tensor<'f32'>, up: Tensor<'f32'>) {
  assert(sameShape(dy.shape, gate.shape) && sameShape(gate.shape, up.shape), () => `siluMulBackward: dy ${dy}, gate ${gate}, up ${up}`);
  const dGate = new Float32Array(gate.size);
  const dUp = new Float32Array(gate.size);
  for (let i = 0; i < dGate.length; i++) {
    const g = gate.data[i];
    const sigmoid = 1 / (1 + Math.exp(-g));
    dUp[i] = dy.data[i] * g * sigmoid;
    dGate[i] = dy.data[i] * up.data[i] * sigmoid * (1 + g * (1 - sigmoid));
  }
  return { dGate: Tensor.f32(gate.shape, dGate), dUp: Tensor.f32(gate.shape, dUp) };
}

function scaleChannelsBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>, scale: Tensor<'f32'>) {
  const dim = scale.size;
  assert(sameShape(dy.shape, x.shape) && x.shape[x.rank - 1] === dim, () => `scaleChannelsBackward: dy ${dy}, x ${x}, scale ${scale}`);
  const dx = new Float32Array(x.size);
  const dScale = new Float64Array(dim);
  for (let i = 0; i < dx.length; i++) {
    const d = i % dim;
    dx[i] = dy.data[i] * scale.data[d];
    dScale[d] += dy.data[i] * x.data[i];
  }
  return { dx: Tensor.f32(x.shape, dx), dScale: Tensor.f32([dim], Float32Array.from(dScale)) };
}

/** dy [T,H,Dh] -> dx [T,H,Dh]: the forward's rotation by -angle (same f32 angle math as ref.rope) */
function ropeBackward(dy: Tensor<'f32'>, positions: Int32Array, theta: number): Tensor<'f32'> {
  return rotatePairs(dy, positions, theta, -1);
}

/** dOut [T,Hq*Dh], q [T,Hq,Dh], k/v [S,Hkv,Dh] -> dq, dk, dv */
function attentionBackward(dOut: Tensor<'f32'>, q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, options: { causal: boolean }): AttentionGrads {
  const [tokens, qHeads, headDim] = q.shape;
  const [keys, kvHeads] = k.shape;
  assert(q.rank === 3 && k.rank === 3 && sameShape(k.shape, v.shape) && k.shape[2] === headDim, () => `attentionBackward: q ${q}, k ${k}, v ${v}`);
  assert(qHeads % kvHeads === 0 && keys >= tokens && dOut.size === q.size, () => `attentionBackward: q ${q}, k ${k}, dOut ${dOut}`);
  const group = qHeads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const dq = new Float32Array(q.size);
  const dk = new Float64Array(k.size);
  const dv = new Float64Array(v.size);
  const probs = new Float64Array(keys);
  const dProbs = new Float64Array(keys);
  const qAt = (t: number, h: number, d: number) => q.data[(t * qHeads + h) * headDim + d];
  const kvIndex = (s: number, h: number, d: number) => (s * kvHeads + h) * headDim + d;
  for (let h = 0; h < qHeads; h++) {
    const kvHead = Math.floor(h / group);
    for (let t = 0; t < tokens; t++) {
      const visible = options.causal ? keys - tokens + t + 1 : keys;
      let max = -Infinity;
      for (let s = 0; s < visible; s++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += qAt(t, h, d) * k.data[kvIndex(s, kvHead, d)];
        probs[s] = dot * scale;
        max = Math.max(max, probs[s]);
      }
      let total = 0;
      for (let s = 0; s < visible; s++) {
        probs[s] = Math.exp(probs[s] - max);
        total += probs[s];
      }
      const dRow = (t * qHeads + h) * headDim;
      // dP[s] = dO·v[s]; dV[s] += P[s]·dO; dS = P·(dP - Σ P·dP)
      let weighted = 0;
      for (let s = 0; s < visible; s++) {
        probs[s] /= total;
        let dot = 0;
        for (let d = 0; d < headDim; d++) {
          const g = dOut.data[dRow + d];
          dot += g * v.data[kvIndex(s, kvHead, d)];
          dv[kvIndex(s, kvHead, d)] += probs[s] * g;
        }
        dProbs[s] = dot;
        weighted += probs[s] * dot;
      }
      for (let s = 0; s < visible; s++) {
        const dScore = probs[s] * (dProbs[s] - weighted) * scale;
        for (let d = 0; d < headDim; d++) {
          dq[dRow + d] += dScore * k.data[kvIndex(s, kvHead, d)];
          dk[kvIndex(s, kvHead, d)] += dScore * qAt(t, h, d);
        }
      }
    }
  }
  return { dq: Tensor.f32(q.shape, dq), dk: Tensor.f32(k.shape, Float32Array.from(dk)), dv: Tensor.f32(v.shape, Float32Array.from(dv)) };
}

/** logits [T,V], labels [T] -> summed cross-entropy / divisor, dLogits [T,V] */
function crossEntropy(logits: Tensor<'f32'>, labels: Int32Array, divisor = labels.length) {
  const [rows, vocab] = logits.shape;
  assert(logits.rank === 2 && rows === labels.length && divisor > 0, () => `crossEntropy: logits ${logits}, ${labels.length} labels, divisor ${divisor}`);
  const dLogits = new Float32Array(logits.size);
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const label = labels[r];
    assert(label >= 0 && label < vocab, () => `crossEntropy: label ${label} outside vocabulary of ${vocab}`);
    const base = r * vocab;
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) max = Math.max(max, logits.data[base + j]);
    let total = 0;
    for (let j = 0; j < vocab; j++) total += Math.exp(logits.data[base + j] - max);
    loss += Math.log(total) + max - logits.data[base + label];
    for (let j = 0; j < vocab; j++) dLogits[base + j] = (Math.exp(logits.data[base + j] - max) / total - (j === label ? 1 : 0)) / divisor;
  }
  return { loss: loss / divisor, dLogits: Tensor.f32(logits.shape, dLogits) };
}

function adamwUpdate(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, h: AdamWHyper): void {
  assert(g.length === p.length && m.length === p.length && v.length === p.length, () => `adamwUpdate: lengths ${p.length}, ${g.length}, ${m.length}, ${v.length}`);
  const { beta1, beta2, eps, decay, stepSize, sqrtCorrection2 } = h;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    p[i] = p[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / sqrtCorrection2 + eps);
  }
}

function sumOfSquares(x: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
  return sum;
}

export const refGradBackend: GradBackend = {
  name: 'ref',
  linearBackward,
  embeddingBackward,
  layerNormBackward,
  rmsNormBackward,
  geluBackward,
  siluMulBackward,
  scaleChannelsBackward,
  ropeBackward,
  attentionBackward,
  crossEntropy,
  adamwUpdate,
  sumOfSquares,
};
