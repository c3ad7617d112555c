import type { PrepackedFloatWeight, QuantizedWeight } from './formats.js';
import type { Tensor } from './tensor.js';

/** A weight matrix as stored: f32, or bf16/f16 kept in the checkpoint's dtype and converted inside the kernel. */
export type WeightTensor = Tensor<'f32'> | Tensor<'bf16'> | Tensor<'f16'>;

/**
 * What `linear` accepts: a float weight, an integer one (src/tensor/formats.ts) dequantized in the kernel, or a float
 * one a backend prepacked for inference (`Backend.prepack`).
 */
export type LinearWeight = WeightTensor | QuantizedWeight | PrepackedFloatWeight;

/** How Backend.prepack may compute with a weight. */
export interface PrepackOptions {
  /**
   * A bf16 weight may multiply x rounded to bf16 (round to nearest even; products exact, f32 sums), as PyTorch's
   * bf16 inference does, where the backend has bf16 dot-product instructions (AVX512-BF16: twice the f32 FMA's
   * rate). The result then differs from `linear` on the stored weight by x's rounding (8 significant bits). Default
   * false: f32 x, the stored weight's results.
   */
  bf16Activations?: boolean;
}

/**
 * Integer activations: per-row symmetric codes. Rows are the product of the leading dims of `shape`; for attention
 * the rows are (token, head) pairs: shape [T,H,Dh] has T·H rows of Dh codes and T·H scales.
 * value[r,k] ≈ codes[r,k] · scales[r]; codes lie in [-qmax, qmax] with qmax = 2^(bits-1) - 1 (never -128).
 */
export interface QuantizedActivations {
  readonly shape: readonly number[];
  readonly bits: 4 | 8;
  /** [rows·K], one code per int8 (4-bit codes are not packed) */
  readonly codes: Int8Array;
  /** [rows] */
  readonly scales: Float32Array;
}

/** The prologue of quantizeActivations, applied in this order (docs/quantization.md, Kernel contract). */
export interface ActivationQuantOptions {
  bits: 4 | 8;
  /** 1. RMSNorm first (weight optional: QuaRot folds it into the next linears) */
  rmsNorm?: { weight?: WeightTensor; eps: number };
  /** 2. then a normalized Walsh–Hadamard transform over blocks of this size (a power of two dividing K) */
  hadamardBlock?: number;
  /** 3. the row's absolute maximum is multiplied by this before the scale is taken (default 1: no clipping) */
  clipRatio?: number;
}

export interface AttentionOptions {
  /**
   * Causal masking. The S keys are in sequence order and the T queries are the last T of them, so query t may see
   * keys 0 .. S-T+t. (After token pruning the cache holds fewer, still ordered, keys; the rule is unchanged.)
   */
  causal: boolean;
  /** Also return the softmax probabilities [Hq, T, S] (parity tests read them; memory grows as T·S). */
  returnProbs?: boolean;
  /** Token-pruning scores of this same attention, without the full [Hq, T, S] probabilities (see AttentionScores). */
  scores?: AttentionScoreRequest;
}

/** What token pruning asks of one attention call: only the probability rows or sums a criterion needs. */
export interface AttentionScoreRequest {
  /** query rows (indices into the T queries, ascending) whose probabilities come back as queryProbs [Hq, R, S] */
  queryRows?: Int32Array;
  /** also return keyTotals [S]: the probability each key receives, summed over all heads and all T queries */
  keyTotals?: boolean;
}

export interface AttentionScores {
  /** [Hq, R, S] probabilities of the requested query rows (0 beyond each row's causal limit) */
  queryProbs?: Tensor<'f32'>;
  /** [S] per key: sum over heads and queries of its probability */
  keyTotals?: Float32Array;
}

export interface AttentionResult {
  /** [T, Hq*Dh] */
  out: Tensor<'f32'>;
  /** [Hq, T, S] when requested */
  probs?: Tensor<'f32'>;
  /** when options.scores asked for them */
  scores?: AttentionScores;
}

/**
 * The kernels model code may call. Activations are f32; weights may be any WeightTensor. Every op returns a new
 * tensor and never mutates its inputs. `ref` (pure TypeScript) is the oracle; `native` (C++ addon) must agree
 * with it within the tolerances in test/tolerances.ts.
 */
export interface Backend {
  readonly name: string;

  /**
   * x [M,K] · wᵀ where w [N,K] (PyTorch nn.Linear layout), + bias [N] -> [M,N]. A QuantizedWeight is dequantized
   * inside the kernel (W4A16/W8A16: f32 activations, f32 accumulation).
   */
  linear(x: Tensor<'f32'>, w: LinearWeight, bias?: WeightTensor): Tensor<'f32'>;

  /**
   * w [N,K] in this backend's fastest layout for `linear`, for a weight that never changes afterwards (inference):
   * the same products in the same order as `linear` on w where the layout has a kernel, so results match the
   * unpacked weight's. Returns w itself when there is nothing to gain (ref; a native path without a prepacked kernel;
   * f16 weights). Never for weights that training updates.
   */
  prepack(w: WeightTensor, options?: PrepackOptions): LinearWeight;

  // ---- integer path (docs/quantization.md, "Kernel contract"): ref and native agree bit for bit ----

  /** x [M,K] -> codes [M,K] + scales [M]: optional RMSNorm, optional block Hadamard, symmetric per-row RNE. */
  quantizeActivations(x: Tensor<'f32'>, options: ActivationQuantOptions): QuantizedActivations;

  /** xq [M,K] (codes) · w [N,K]ᵀ in int32, epilogue in f32 in a fixed order, + bias [N] -> [M,N] */
  linearInt(xq: QuantizedActivations, w: QuantizedWeight, bias?: WeightTensor): Tensor<'f32'>;

  /** The int32 accumulators of linearInt: xq [M,K], w [N,K] with G = K/groupSize groups -> [M,N,G] (for checks). */
  linearIntAccumulators(xq: QuantizedActivations, w: QuantizedWeight): Int32Array;

  /** x [M,K] -> [M,K]: each block of `blockSize` columns times the Sylvester Hadamard matrix / √blockSize */
  fwht(x: Tensor<'f32'>, blockSize: number): Tensor<'f32'>;

  /**
   * Integer attention: q [T,Hq,Dh], k [S,Hkv,Dh], v [S,Hkv,Dh], each quantized per (token, head). QKᵀ in int32,
   * softmax in f64 with a portable exp, probabilities·V-scales quantized to u8 per (query, head), PV in int32.
   * -> out [T,Hq*Dh] (+ probs [Hq,T,S], the f64 softmax rounded to f32)
   */
  attentionInt(q: QuantizedActivations, k: QuantizedActivations, v: QuantizedActivations, options: AttentionOptions): AttentionResult;

  /** table [V,D], ids [T] -> [T,D] (rows of the embedding table, converted to f32) */
  embedding(table: WeightTensor, ids: Int32Array): Tensor<'f32'>;

  /** x [M,D], weight [D], bias [D] -> [M,D]: (x - mean) / sqrt(var + eps) * weight + bias */
  layerNorm(x: Tensor<'f32'>, weight: WeightTensor, bias: WeightTensor, eps: number): Tensor<'f32'>;

  /** x [M,D], weight [D] -> [M,D]: x / sqrt(mean(x²) + eps) * weight (Llama RMSNorm, f32 math) */
  rmsNorm(x: Tensor<'f32'>, weight: WeightTensor, eps: number): Tensor<'f32'>;

  /** exact GELU, 0.5·x·(1 + erf(x/√2)), any shape */
  gelu(x: Tensor<'f32'>): Tensor<'f32'>;

  /** gate [M,F], up [M,F] -> silu(gate) * up [M,F] (Llama SwiGLU) */
  siluMul(gate: Tensor<'f32'>, up: Tensor<'f32'>): Tensor<'f32'>;

  /** elementwise a + b, same shape */
  add(a: Tensor<'f32'>, b: Tensor<'f32'>): Tensor<'f32'>;

  /** x [M,D] * scale [D] broadcast over rows (LayerScale) */
  scaleChannels(x: Tensor<'f32'>, scale: WeightTensor): Tensor<'f32'>;

  /**
   * Rotary position embedding as transformers' Llama applies it (rotate_half: the first and second half of each
   * head are the pair). x [T,H,Dh], positions [T] (absolute ids, kept through pruning) -> [T,H,Dh]
   */
  rope(x: Tensor<'f32'>, positions: Int32Array, theta: number): Tensor<'f32'>;

  /**
   * Scaled dot-product attention with grouped-query heads: q [T,Hq,Dh], k [S,Hkv,Dh], v [S,Hkv,Dh], Hq % Hkv == 0,
   * query head h reads kv head floor(h / (Hq/Hkv)); scale 1/√Dh. -> out [T,Hq*Dh] (+ probs [Hq,T,S])
   */
  attention(q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, options: AttentionOptions): AttentionResult;
}
