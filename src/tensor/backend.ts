import type { Tensor } from './tensor.js';

/** A weight matrix as stored: f32, or bf16/f16 kept in the checkpoint's dtype and converted inside the kernel. */
export type WeightTensor = Tensor<'f32'> | Tensor<'bf16'> | Tensor<'f16'>;

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

  /** x [M,K] · wᵀ where w [N,K] (PyTorch nn.Linear layout), + bias [N] -> [M,N] */
  linear(x: Tensor<'f32'>, w: WeightTensor, bias?: WeightTensor): Tensor<'f32'>;

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
