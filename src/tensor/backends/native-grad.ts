// The native backward kernels: native/generic/grad.cc through native/grad_binding.cc, in the same addon as the
// forward kernels. This file checks shapes, allocates outputs and forwards flat arrays (the binding checks them
// again). If the addon is not built, or was built without the backward kernels, nativeGradBackend is undefined and
// grad-index.ts falls back to ref.
import { createRequire } from 'node:module';
import type { AdamWHyper, AttentionGrads, GradBackend, LinearGrads } from '../grad-backend.js';
import { allocF32 } from '../arena.js';
import { sameShape, Tensor } from '../tensor.js';
import { NATIVE_ADDON_PATH } from './native.js';

/** The addon's backward exports (native/grad_binding.cc). Outputs are passed in. */
interface GradAddon {
  linearBackward(dx: Float32Array | null, dw: Float32Array, db: Float32Array | null, dy: Float32Array, x: Float32Array,
    w: Float32Array, M: number, K: number, N: number): void;
  embeddingBackward(dtable: Float32Array, dy: Float32Array, ids: Int32Array, V: number, D: number): void;
  layerNormBackward(dx: Float32Array, dweight: Float32Array, dbias: Float32Array, dy: Float32Array, x: Float32Array,
    weight: Float32Array, M: number, D: number, eps: number): void;
  rmsNormBackward(dx: Float32Array, dweight: Float32Array, dy: Float32Array, x: Float32Array, weight: Float32Array,
    M: number, D: number, eps: number): void;
  geluBackward(dx: Float32Array, dy: Float32Array, x: Float32Array): void;
  siluMulBackward(dgate: Float32Array, dup: Float32Array, dy: Float32Array, gate: Float32Array, up: Float32Array): void;
  scaleChannelsBackward(dx: Float32Array, dscale: Float32Array, dy: Float32Array, x: Float32Array, scale: Float32Array,
    M: number, D: number): void;
  ropeBackward(dx: Float32Array, dy: Float32Array, positions: Int32Array, T: number, H: number, Dh: number, theta: number): void;
  attentionBackward(dq: Float32Array, dk: Float32Array, dv: Float32Array, dout: Float32Array, q: Float32Array,
    k: Float32Array, v: Float32Array, T: number, S: number, Hq: number, Hkv: number, Dh: number, causal: boolean): void;
  crossEntropy(dlogits: Float32Array, logits: Float32Array, labels: Int32Array, T: number, V: number, divisor: number): number;
  adamwUpdate(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, beta1: number, beta2: number, eps: number,
    decay: number, stepSize: number, sqrtCorrection2: number): void;
  sumOfSquares(x: Float32Array): number;
}

function loadGradAddon(): GradAddon | undefined {
  try {
    const addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as Partial<GradAddon>;
    return typeof addon.linearBackward === 'function' ? (addon as GradAddon) : undefined;
  } catch {
    return undefined;
  }
}

function check(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(`native grad backend: ${message()}`);
}

function lastDim(x: Tensor): number {
  return x.shape[x.rank - 1];
}

function makeGradBackend(native: GradAddon): GradBackend {
  return {
    name: 'native',

    // dy [M,N], x [M,K], w [N,K] -> dx [M,K], dw [N,K], db [N]
    linearBackward(dy, x, w, options): LinearGrads {
      check(w.rank === 2 && lastDim(x) === w.shape[1], () => `linearBackward: x ${x} does not match w ${w}`);
      const [n, k] = w.shape;
      const m = x.size / k;
      check(dy.size === m * n, () => `linearBackward: dy ${dy} for x ${x}, w ${w}`);
      const dx = options.dx ? allocF32(m * k) : null;
      const dw = allocF32(n * k);
      const db = options.bias ? allocF32(n) : null;
      native.linearBackward(dx, dw, db, dy.data, x.data, w.data, m, k, n);
      return { dx: dx ? Tensor.f32(x.shape, dx) : undefined, dw: Tensor.f32([n, k], dw), db: db ? Tensor.f32([n], db) : undefined };
    },

    // dy [T,D], ids [T] -> [V,D]
    embeddingBackward(dy, ids, vocab) {
      const dim = lastDim(dy);
      check(dy.size === ids.length * dim, () => `embeddingBackward: dy ${dy} for ${ids.length} ids`);
      const out = allocF32(vocab * dim);
      native.embeddingBackward(out, dy.data, ids, vocab, dim);
      return Tensor.f32([vocab, dim], out);
    },

    layerNormBackward(dy, x, weight, eps) {
      const dim = weight.size;
      check(sameShape(dy.shape, x.shape) && lastDim(x) === dim, () => `layerNormBackward: dy ${dy}, x ${x}, weight ${weight}`);
      const dx = allocF32(x.size);
      const dWeight = allocF32(dim);
      const dBias = allocF32(dim);
      native.layerNormBackward(dx, dWeight, dBias, dy.data, x.data, weight.data, x.size / dim, dim, eps);
      return { dx: Tensor.f32(x.shape, dx), dWeight: Tensor.f32([dim], dWeight), dBias: Tensor.f32([dim], dBias) };
    },

    rmsNormBackward(dy, x, weight, eps) {
      const dim = weight.size;
      check(sameShape(dy.shape, x.shape) && lastDim(x) === dim, () => `rmsNormBackward: dy ${dy}, x ${x}, weight ${weight}`);
      const dx = allocF32(x.size);
      const dWeight = allocF32(dim);
      native.rmsNormBackward(dx, dWeight, dy.data, x.data, weight.data, x.size / dim, dim, eps);
      return { dx: Tensor.f32(x.shape, dx), dWeight: Tensor.f32([dim], dWeight) };
    },

    geluBackward(dy, x) {
      check(sameShape(dy.shape, x.shape), () => `geluBackward: dy ${dy}, x ${x}`);
      const dx = allocF32(x.size);
      native.geluBackward(dx, dy.data, x.data);
      return Tensor.f32(x.shape, dx);
    },

    siluMulBackward(dy, gate, up) {
      check(sameShape(dy.shape, gate.shape) && sameShape(gate.shape, up.shape), () => `siluMulBackward: dy ${dy}, gate ${gate}, up ${up}`);
      const dGate = allocF32(gate.size);
      const dUp = allocF32(gate.size);
      native.siluMulBackward(dGate, dUp, dy.data, gate.data, up.data);
      return { dGate: Tensor.f32(gate.shape, dGate), dUp: Tensor.f32(gate.shape, dUp) };
    },

    scaleChannelsBackward(dy, x, scale) {
      const dim = scale.size;
      check(sameShape(dy.shape, x.shape) && lastDim(x) === dim, () => `scaleChannelsBackward: dy ${dy}, x ${x}, scale ${scale}`);
      const dx = allocF32(x.size);
      const dScale = allocF32(dim);
      native.scaleChannelsBackward(dx, dScale, dy.data, x.data, scale.data, x.size / dim, dim);
      return { dx: Tensor.f32(x.shape, dx), dScale: Tensor.f32([dim], dScale) };
    },

    // dy [T,H,Dh] -> dx [T,H,Dh]
    ropeBackward(dy, positions, theta) {
      check(dy.rank === 3 && positions.length === dy.shape[0], () => `ropeBackward: dy ${dy} with ${positions.length} positions`);
      const [tokens, heads, headDim] = dy.shape;
      const dx = allocF32(dy.size);
      native.ropeBackward(dx, dy.data, positions, tokens, heads, headDim, theta);
      return Tensor.f32(dy.shape, dx);
    },

    // dOut [T,Hq*Dh], q [T,Hq,Dh], k/v [S,Hkv,Dh]
    attentionBackward(dOut, q, k, v, options): AttentionGrads {
      check(q.rank === 3 && k.rank === 3 && sameShape(k.shape, v.shape) && k.shape[2] === q.shape[2] && dOut.size === q.size,
        () => `attentionBackward: dOut ${dOut}, q ${q}, k ${k}, v ${v}`);
      const [tokens, qHeads, headDim] = q.shape;
      const [keys, kvHeads] = k.shape;
      const dq = allocF32(q.size);
      const dk = allocF32(k.size);
      const dv = allocF32(v.size);
      native.attentionBackward(dq, dk, dv, dOut.data, q.data, k.data, v.data, tokens, keys, qHeads, kvHeads, headDim, options.causal);
      return { dq: Tensor.f32(q.shape, dq), dk: Tensor.f32(k.shape, dk), dv: Tensor.f32(v.shape, dv) };
    },

    crossEntropy(logits, labels, divisor = labels.length) {
      check(logits.rank === 2 && logits.shape[0] === labels.length, () => `crossEntropy: logits ${logits}, ${labels.length} labels`);
      const dLogits = allocF32(logits.size);
      const loss = native.crossEntropy(dLogits, logits.data, labels, logits.shape[0], logits.shape[1], divisor);
      return { loss, dLogits: Tensor.f32(logits.shape, dLogits) };
    },

    adamwUpdate(p, g, m, v, h: AdamWHyper) {
      check(g.length === p.length && m.length === p.length && v.length === p.length, () => `adamwUpdate: lengths ${p.length}, ${g.length}, ${m.length}, ${v.length}`);
      native.adamwUpdate(p, g, m, v, h.beta1, h.beta2, h.eps, h.decay, h.stepSize, h.sqrtCorrection2);
    },

    sumOfSquares(x) {
      return native.sumOfSquares(x);
    },
  };
}

const gradAddon = loadGradAddon();

/** The native backward kernels, or undefined when the addon (with them) is not built. */
export const nativeGradBackend: GradBackend | undefined = gradAddon ? makeGradBackend(gradAddon) : undefined;
