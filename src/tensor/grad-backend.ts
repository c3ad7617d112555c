// The backward kernels training calls: the vector-Jacobian product of every forward op in backend.ts that the
// OpenVLA forward uses. A separate interface (and separate files: backends/ref-grad.ts, backends/native-grad.ts)
// so the forward Backend stays what inference needs. `ref` is the oracle, written as the math in float64;
// `native` must agree with it within test/tolerances.ts.
//
// Conventions: `dy` is the gradient of the loss with respect to the forward op's output, same shape as it. Every op
// returns new tensors and never mutates its inputs. Weights in training are f32 master copies, so weight inputs are
// Tensor<'f32'>. Two forward ops need no kernel of their own:
// - add: both inputs receive dy unchanged;
// - the patch embedding is `linear` over im2col patch rows, so its backward is linearBackward without dx
//   (pixels need no gradient).
import type { Tensor } from './tensor.js';

export interface LinearGrads {
  /** [..., K], when requested */
  dx?: Tensor<'f32'>;
  /** [N, K] */
  dw: Tensor<'f32'>;
  /** [N], when requested */
  db?: Tensor<'f32'>;
}

export interface AttentionGrads {
  /** [T, Hq, Dh] */
  dq: Tensor<'f32'>;
  /** [S, Hkv, Dh] */
  dk: Tensor<'f32'>;
  /** [S, Hkv, Dh] */
  dv: Tensor<'f32'>;
}

/** The per-step constants of one AdamW update (see adamwUpdate). */
export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  /** the decoupled weight decay as a factor, 1 - lr·λ (1: none) */
  decay: number;
  /** lr / (1 - β1ᵗ) */
  stepSize: number;
  /** √(1 - β2ᵗ) */
  sqrtCorrection2: number;
}

export interface GradBackend {
  readonly name: string;

  /**
   * y = x · wᵀ + b: dy [M,N], x [M,K], w [N,K] -> dx = dy · w [M,K] (if options.dx), dw = dyᵀ · x [N,K],
   * db = Σ_rows dy [N] (if options.bias).
   */
  linearBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>, w: Tensor<'f32'>, options: { dx: boolean; bias: boolean }): LinearGrads;

  /** y = table[ids]: dy [T,D], ids [T] -> dTable [V,D] (rows scatter-added; ids may repeat) */
  embeddingBackward(dy: Tensor<'f32'>, ids: Int32Array, vocab: number): Tensor<'f32'>;

  /** y = LayerNorm(x)·w + b: dy [M,D], x [M,D] (the forward input), weight [D] -> dx [M,D], dWeight [D], dBias [D] */
  layerNormBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>, weight: Tensor<'f32'>, eps: number): { dx: Tensor<'f32'>; dWeight: Tensor<'f32'>; dBias: Tensor<'f32'> };

  /** y = x / rms(x) · w: dy [M,D], x [M,D], weight [D] -> dx [M,D], dWeight [D] */
  rmsNormBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>, weight: Tensor<'f32'>, eps: number): { dx: Tensor<'f32'>; dWeight: Tensor<'f32'> };

  /** exact GELU: dy, x (the forward input), any shape -> dx = dy · (Φ(x) + x·φ(x)) */
  geluBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>): Tensor<'f32'>;

  /** y = silu(gate)·up: dy, gate, up [M,F] -> dGate, dUp [M,F] */
  siluMulBackward(dy: Tensor<'f32'>, gate: Tensor<'f32'>, up: Tensor<'f32'>): { dGate: Tensor<'f32'>; dUp: Tensor<'f32'> };

  /** y = x·scale (LayerScale): dy [M,D], x [M,D], scale [D] -> dx [M,D], dScale [D] */
  scaleChannelsBackward(dy: Tensor<'f32'>, x: Tensor<'f32'>, scale: Tensor<'f32'>): { dx: Tensor<'f32'>; dScale: Tensor<'f32'> };

  /** rotate_half RoPE is a rotation per pair, so dx is dy rotated back: dy [T,H,Dh], positions [T] -> dx [T,H,Dh] */
  ropeBackward(dy: Tensor<'f32'>, positions: Int32Array, theta: number): Tensor<'f32'>;

  /**
   * Grouped-query attention as backend.attention computes it (probabilities recomputed from q and k, so the forward
   * need not keep them): dOut [T,Hq*Dh], q [T,Hq,Dh], k/v [S,Hkv,Dh] -> dq, dk, dv (dk/dv summed over the query
   * heads that share a kv head).
   */
  attentionBackward(dOut: Tensor<'f32'>, q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, options: { causal: boolean }): AttentionGrads;

  /**
   * Softmax cross-entropy summed over rows and divided by `divisor` (default T: the mean): logits [T,V], labels [T]
   * (each in [0, V)) -> the loss (a float64 number) and dLogits = (softmax(logits) - onehot(labels)) / divisor [T,V].
   * A batch split into pieces passes the whole batch's target count as the divisor so the pieces' losses add up.
   */
  crossEntropy(logits: Tensor<'f32'>, labels: Int32Array, divisor?: number): { loss: number; dLogits: Tensor<'f32'> };

  /**
   * One AdamW update of one parameter in place, torch.optim.AdamW's formula with float64 arithmetic and float32
   * storage (bit-identical on every backend): m ← β1·m + (1-β1)·g; v ← β2·v + (1-β2)·g·g;
   * p ← p·decay - stepSize·m / (√v / sqrtCorrection2 + eps). p, g, m, v [n].
   */
  adamwUpdate(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, hyper: AdamWHyper): void;

  /** Σ x² accumulated in float64 in index order (bit-identical on every backend) */
  sumOfSquares(x: Float32Array): number;
}
