// Llama decoder as transformers' LlamaForCausalLM computes it: RMSNorm (f32), RoPE (rotate_half), grouped-query
// attention, SwiGLU MLP, final norm, untied lm_head; a KV cache for greedy decoding. Intermediates are reported
// through hooks under fixed names so tests, debugging and token pruning can read them.
// An optional LlamaQuantization runs the same decoder on integer kernels (W8A8/W4A8/W4A4) and/or with QuaRot
// rotations (src/quant/rotate.ts writes the rotated weights; docs/quantization.md describes both).
import type {
  AttentionOptions,
  AttentionResult,
  AttentionScoreRequest,
  AttentionScores,
  Backend,
  LinearWeight,
  QuantizedActivations,
  WeightTensor,
} from '../tensor/backend.js';
import { isQuantizedWeight as isQuantized } from '../tensor/formats.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../errors.js';
import { KVCache } from './kv-cache.js';
import { QuantizedKVCache, type DecoderCache } from './kv-cache-quant.js';
import { countBlocks, readWeight, type TensorSource } from './weights.js';

export interface LlamaConfig {
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  bosTokenId: number;
  eosTokenId: number;
}

export interface LlamaLayer {
  inputNorm: WeightTensor;
  q: LinearWeight;
  k: LinearWeight;
  v: LinearWeight;
  o: LinearWeight;
  postAttentionNorm: WeightTensor;
  gate: LinearWeight;
  up: LinearWeight;
  down: LinearWeight;
}

/** The names of a layer's linears, in checkpoint order. */
export const LLAMA_LINEARS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type LlamaLinearName = (typeof LLAMA_LINEARS)[number];

/**
 * How a quantized and/or rotated decoder runs (weights are prepared by src/quant). Without it the decoder is
 * transformers' function on float weights.
 */
export interface LlamaQuantization {
  /**
   * Bits of the activations fed to every linear (quantized per token, dynamic, symmetric), of Q and K for QKᵀ
   * (per token and head) and of the cached K/V; 16 keeps activations and attention in float (weight-only schemes
   * and `had` alone). Below 16 every linear weight must be a QuantizedWeight.
   */
  activationBits: 4 | 8 | 16;
  /** activation absolute maxima are multiplied by this before the scale is taken (default 1) */
  clipRatio?: number;
  /**
   * QuaRot rotations (src/quant/rotate.ts): the weights were rotated offline; online, the residual stream is
   * rotated by Q = diag(signs)·H at the decoder input and back before the final norm, down_proj's input gets a
   * block Hadamard, and Q/K get a per-head Hadamard before they are quantized.
   */
  rotation?: { residualSigns: Tensor<'f32'> };
}

/** Hadamard block order used for a width: the largest power of two dividing it (src/quant/hadamard.ts). */
export function hadamardBlockFor(width: number): number {
  return width & -width;
}

/** The input of a linear: float rows, or rows already quantized (shared by q/k/v and by gate/up). */
type LinearInput = Tensor<'f32'> | QuantizedActivations;

export interface LlamaWeights {
  embedTokens: WeightTensor;
  layers: LlamaLayer[];
  norm: WeightTensor;
  /** as stored (untied: its own tensor; tied: embedTokens), or int8 per output channel (quantize --lm-head w8) */
  lmHead: LinearWeight;
}

/**
 * Observers of one forward pass. Names of captured intermediates (layer = -1 for model-level ones):
 * 'embeddings' [T,D], 'attn_out' [T,D], 'layer_out' [T,D] (residual stream after the layer, rotated when the
 * decoder is), 'final_norm' [T,D]. When activations are float, also the inputs of the linears (what calibration
 * reads): 'attn_in' [T,D] (q/k/v), 'o_in' [T,Hq*Dh], 'mlp_in' [T,D] (gate/up), 'down_in' [T,F].
 */
export interface LlamaHooks {
  capture?(name: string, layer: number, tensor: Tensor<'f32'>): void;
  /** Layers whose attention probabilities [H, T, S] are wanted (costs memory; off by default). */
  wantAttention?(layer: number): boolean;
  onAttention?(layer: number, probs: Tensor<'f32'>): void;
}

export type LogitsMode = 'all' | 'last' | 'none';

/**
 * Token pruning inside one forward pass (the prefill), FastV-style: layers 0 .. K-1 run on every token; layer K-1's
 * attention also returns the scores asked for (so a model is scored by the Q/K it really computes); `choose` picks
 * the rows of this pass to keep; layers K .. run on those rows only, and only their keys and values enter the
 * cache of layers >= K. Kept rows keep their original positions, and later tokens continue after the full length.
 */
export interface TokenPruning {
  /** K, 1 <= K <= layers - 1 */
  layer: number;
  /** what layer K-1's attention returns; queryRows index this pass's T tokens */
  scores: AttentionScoreRequest;
  /**
   * Layer K-1's scores -> rows of this pass to keep (strictly ascending, in [0, T)). Keys of the scores are in cache
   * order: the `cachedTokens` tokens already in the cache before this pass come first.
   */
  choose(scores: AttentionScores, cachedTokens: number): Int32Array;
}

export interface ForwardResult {
  /** [T or 1, V]; with pruning, rows are the kept tokens' */
  logits?: Tensor<'f32'>;
  /** final hidden states [T, D] ([kept, D] with pruning) */
  hidden: Tensor<'f32'>;
  /** with pruning: the kept rows of this pass and the time spent choosing and gathering them */
  pruned?: { keptRows: Int32Array; overheadMs: number };
}

/**
 * Reads one linear weight `name` [N,K] of layer `layer` (quantize-at-load and quantized checkpoints hook in here;
 * the default reads the float weight as stored).
 */
export type LinearReader = (name: string, shape: [number, number], site: LlamaLinearName, layer: number) => LinearWeight;

/**
 * Reads the HF text config (`config.json` of a Llama, or OpenVLA's `text_config`); sizes come from tensor shapes.
 * `readLinear` reads each layer's linears (one at a time, so a transform at load never holds every float weight).
 */
export function loadLlama(
  source: TensorSource,
  textConfig: Record<string, unknown>,
  readLinear?: LinearReader,
  readLmHead?: (shape: [number, number]) => LinearWeight,
): { config: LlamaConfig; weights: LlamaWeights } {
  const num = (key: string, fallback?: number): number => {
    const v = textConfig[key];
    if (typeof v === 'number') return v;
    if (fallback !== undefined) return fallback;
    throw new UserError(`${source.description}: config is missing numeric field '${key}'`);
  };
  const embedTokens = readWeight(source, 'model.embed_tokens.weight');
  const [vocabSize, hidden] = embedTokens.shape;
  const layers = countBlocks(source, 'model.layers', 'input_layernorm.weight');
  const heads = num('num_attention_heads');
  const kvHeads = num('num_key_value_heads', heads);
  const headDim = num('head_dim', hidden / heads);
  const intermediate = linearShape(source, 'model.layers.0.mlp.gate_proj')[0];
  const rope = (textConfig.rope_parameters ?? {}) as Record<string, unknown>;
  const ropeType = rope.rope_type ?? (textConfig.rope_scaling as Record<string, unknown> | null)?.rope_type ?? 'default';
  if (ropeType !== 'default') throw new UserError(`${source.description}: rope_type '${String(ropeType)}' is not supported (only 'default')`);
  const config: LlamaConfig = {
    vocabSize,
    hidden,
    intermediate,
    layers,
    heads,
    kvHeads,
    headDim,
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta: typeof rope.rope_theta === 'number' ? rope.rope_theta : num('rope_theta', 10000),
    bosTokenId: num('bos_token_id', 1),
    eosTokenId: num('eos_token_id', 2),
  };
  if (heads % kvHeads !== 0) throw new UserError(`${source.description}: ${heads} heads is not a multiple of ${kvHeads} KV heads`);
  const qWidth = heads * headDim;
  const kvWidth = kvHeads * headDim;
  const layerWeights: LlamaLayer[] = [];
  const read = readLinear ?? ((name: string, shape: [number, number]) => readWeight(source, name, shape));
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    layerWeights.push({
      inputNorm: readWeight(source, `${p}.input_layernorm.weight`, [hidden]),
      q: read(`${p}.self_attn.q_proj.weight`, [qWidth, hidden], 'q', i),
      k: read(`${p}.self_attn.k_proj.weight`, [kvWidth, hidden], 'k', i),
      v: read(`${p}.self_attn.v_proj.weight`, [kvWidth, hidden], 'v', i),
      o: read(`${p}.self_attn.o_proj.weight`, [hidden, qWidth], 'o', i),
      postAttentionNorm: readWeight(source, `${p}.post_attention_layernorm.weight`, [hidden]),
      gate: read(`${p}.mlp.gate_proj.weight`, [intermediate, hidden], 'gate', i),
      up: read(`${p}.mlp.up_proj.weight`, [intermediate, hidden], 'up', i),
      down: read(`${p}.mlp.down_proj.weight`, [hidden, intermediate], 'down', i),
    });
  }
  const tied = !source.has('lm_head.weight');
  // a quantized lm_head (readLmHead) is its own tensor even where the float model ties it to the embeddings
  const lmHead = readLmHead ? readLmHead([vocabSize, hidden]) : tied ? embedTokens : readWeight(source, 'lm_head.weight', [undefined, hidden]);
  return {
    config,
    weights: {
      embedTokens,
      layers: layerWeights,
      norm: readWeight(source, 'model.norm.weight', [hidden]),
      lmHead,
    },
  };
}

/** [N, K] of a linear `prefix` (e.g. model.layers.0.mlp.gate_proj), float or quantized (docs/quantization.md). */
function linearShape(source: TensorSource, prefix: string): number[] {
  if (source.has(`${prefix}.weight_shape`)) return Array.from(source.read(`${prefix}.weight_shape`).data as ArrayLike<number | bigint>, Number);
  if (!source.has(`${prefix}.weight`)) throw new UserError(`${source.description} is missing tensor '${prefix}.weight'`);
  return [...source.read(`${prefix}.weight`).shape];
}

export class Llama {
  constructor(
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    readonly backend: Backend,
    readonly quantization?: LlamaQuantization,
  ) {}

  static load(source: TensorSource, textConfig: Record<string, unknown>, backend: Backend): Llama {
    const { config, weights } = loadLlama(source, textConfig);
    return new Llama(config, weights, backend);
  }

  /** `capacity`: tokens to reserve room for (it grows by doubling beyond); known up front, it saves the slack. */
  newCache(capacity?: number): DecoderCache {
    const bits = this.quantization?.activationBits;
    if (bits !== undefined && bits < 16) return new QuantizedKVCache(this.config.layers, this.config.kvHeads, this.config.headDim, bits as 4 | 8, capacity);
    return new KVCache(this.config.layers, this.config.kvHeads, this.config.headDim, capacity);
  }

  /** ids [T] -> [T, D] */
  embed(ids: Int32Array): Tensor<'f32'> {
    return this.backend.embedding(this.weights.embedTokens, ids);
  }

  /**
   * embeds [T, D] appended after what `cache` holds -> logits [T or 1, V] (per `logits`) and the final hidden
   * states [T, D]. Positions continue from cache.nextPosition. With `pruning`, layers >= K see only the kept rows.
   */
  forward(
    embeds: Tensor<'f32'>,
    cache: DecoderCache,
    options: { logits?: LogitsMode; hooks?: LlamaHooks; pruning?: TokenPruning } = {},
  ): ForwardResult {
    const { hooks, logits = 'last', pruning } = options;
    const bk = this.backend;
    const { heads, kvHeads, headDim, rmsNormEps, ropeTheta, layers: layerCount } = this.config;
    if (pruning && !(Number.isInteger(pruning.layer) && pruning.layer >= 1 && pruning.layer < layerCount)) {
      throw new Error(`Llama.forward: pruning layer ${pruning.layer} is outside 1..${layerCount - 1}`);
    }
    const cachedTokens = cache.layerLength(0);
    // token count and positions change at layer K when pruning; everything below reads these two
    let positions = cache.takePositions(embeds.shape[0]);
    let tokens = embeds.shape[0];
    let keptRows: Int32Array | undefined;
    let overheadMs = 0;
    const rotation = this.quantization?.rotation;
    let x = embeds;
    hooks?.capture?.('embeddings', -1, x);
    // rotated decoder: x·Q = (x ⊙ s)·H
    if (rotation) x = bk.fwht(bk.scaleChannels(x, rotation.residualSigns), hadamardBlockFor(x.shape[1]));
    this.weights.layers.forEach((layer, i) => {
      if (keptRows && i === pruning!.layer) {
        const start = performance.now();
        x = gatherRows(x, keptRows);
        positions = keptRows.map((row) => positions[row]);
        tokens = keptRows.length;
        overheadMs += performance.now() - start;
      }
      const h = this.linearInput(x, layer.inputNorm);
      this.captureInput(hooks, 'attn_in', i, h);
      const q = bk.rope(this.project(h, layer.q).reshape([tokens, heads, headDim]), positions, ropeTheta);
      const k = bk.rope(this.project(h, layer.k).reshape([tokens, kvHeads, headDim]), positions, ropeTheta);
      const v = this.project(h, layer.v).reshape([tokens, kvHeads, headDim]);
      const wantProbs = hooks?.wantAttention?.(i) ?? false;
      const scoring = pruning !== undefined && i === pruning.layer - 1;
      const attention = this.attend(i, q, k, v, cache, { causal: true, returnProbs: wantProbs, scores: scoring ? pruning.scores : undefined });
      if (attention.probs) hooks?.onAttention?.(i, attention.probs);
      if (scoring) {
        const start = performance.now();
        // a backend that ignores the request returns no scores; criteria that need them then fail by name
        keptRows = pruning.choose(attention.scores ?? {}, cachedTokens);
        checkRows(keptRows, tokens);
        overheadMs += performance.now() - start;
      }
      const oIn = this.linearInput(attention.out);
      this.captureInput(hooks, 'o_in', i, oIn);
      const attnOut = this.project(oIn, layer.o);
      hooks?.capture?.('attn_out', i, attnOut);
      x = bk.add(x, attnOut);
      const m = this.linearInput(x, layer.postAttentionNorm);
      this.captureInput(hooks, 'mlp_in', i, m);
      const gated = bk.siluMul(this.project(m, layer.gate), this.project(m, layer.up));
      const downIn = this.linearInput(gated, undefined, rotation ? hadamardBlockFor(gated.shape[1]) : undefined);
      this.captureInput(hooks, 'down_in', i, downIn);
      x = bk.add(x, this.project(downIn, layer.down));
      hooks?.capture?.('layer_out', i, x);
    });
    // back to the stored basis: x·Qᵀ = (x·H) ⊙ s
    if (rotation) x = bk.scaleChannels(bk.fwht(x, hadamardBlockFor(x.shape[1])), rotation.residualSigns);
    const hidden = bk.rmsNorm(x, this.weights.norm, rmsNormEps);
    hooks?.capture?.('final_norm', -1, hidden);
    const pruned = keptRows ? { keptRows, overheadMs } : undefined;
    if (logits === 'none') return { hidden, pruned };
    const rows = logits === 'last' ? hidden.rows(tokens - 1, tokens) : hidden;
    return { logits: bk.linear(rows, this.weights.lmHead), hidden, pruned };
  }

  /**
   * Greedy decoding: prefix embeds [T, D] -> `maxNewTokens` ids (argmax at each step, KV cache reused). `hooks`
   * observe the prefix pass only (where token pruning reads attention); decode steps run without them. `pruning`
   * applies to the prefix pass; decode steps attend to the pruned cache. Timings split prefill (the prefix pass)
   * and decode (the maxNewTokens - 1 single-token passes).
   */
  generateGreedy(
    prefix: Tensor<'f32'>,
    maxNewTokens: number,
    hooks?: LlamaHooks,
    options: { pruning?: TokenPruning; forcedTokens?: number[] } = {},
  ): { ids: number[]; cache: DecoderCache; pruned?: ForwardResult['pruned']; timingsMs: { prefill: number; decode: number }; stepLogits?: Float32Array[] } {
    // room for exactly the prompt and the new tokens: doubling from 64 would reserve 512 rows for OpenVLA's ~290
    // (a 7B float cache: 0.5 GB instead of 0.3 GB)
    const cache = this.newCache(prefix.shape[0] + maxNewTokens);
    const ids: number[] = [];
    let next = prefix;
    let pruned: ForwardResult['pruned'];
    // teacher forcing: the next input is the forced token, and every step's logits are kept
    const forced = options.forcedTokens;
    if (forced && forced.length < maxNewTokens - 1) throw new Error(`generateGreedy: ${forced.length} forced tokens for ${maxNewTokens} steps`);
    const stepLogits: Float32Array[] | undefined = forced ? [] : undefined;
    const start = performance.now();
    let prefillDone = start;
    for (let step = 0; step < maxNewTokens; step++) {
      const first = step === 0;
      const result = this.forward(next, cache, { logits: 'last', hooks: first ? hooks : undefined, pruning: first ? options.pruning : undefined });
      if (first) pruned = result.pruned;
      const id = argmax(result.logits!.data);
      ids.push(id);
      stepLogits?.push(result.logits!.data);
      if (first) prefillDone = performance.now();
      if (step + 1 < maxNewTokens) next = this.embed(Int32Array.of(forced ? forced[step] : id));
    }
    return { ids, cache, pruned, timingsMs: { prefill: prefillDone - start, decode: performance.now() - prefillDone }, stepLogits };
  }

  /**
   * x [T,K] -> the input of a linear: RMSNorm with `norm` when given, then a block Hadamard of order
   * `hadamardBlock` when given, then (A8/A4) per-token quantization, fused in one Backend call.
   */
  private linearInput(x: Tensor<'f32'>, norm?: WeightTensor, hadamardBlock?: number): LinearInput {
    const bk = this.backend;
    const bits = this.quantization?.activationBits ?? 16;
    const eps = this.config.rmsNormEps;
    if (bits < 16) {
      return bk.quantizeActivations(x, {
        bits: bits as 4 | 8,
        rmsNorm: norm ? { weight: norm, eps } : undefined,
        hadamardBlock,
        clipRatio: this.quantization?.clipRatio,
      });
    }
    let y = norm ? bk.rmsNorm(x, norm, eps) : x;
    if (hadamardBlock !== undefined) y = bk.fwht(y, hadamardBlock);
    return y;
  }

  /** input [T,K] · wᵀ -> [T,N]: integer GEMM for quantized rows, else float (a QuantizedWeight is W4A16/W8A16) */
  private project(input: LinearInput, w: LinearWeight): Tensor<'f32'> {
    if (input instanceof Tensor) return this.backend.linear(input, w);
    if (!isQuantized(w)) throw new Error('Llama: quantized activations need quantized weights');
    return this.backend.linearInt(input, w);
  }

  private captureInput(hooks: LlamaHooks | undefined, name: string, layer: number, input: LinearInput): void {
    if (hooks?.capture && input instanceof Tensor) hooks.capture(name, layer, input);
  }

  /**
   * q [T,Hq,Dh], k/v [T,Hkv,Dh] after RoPE -> attention over the cache. Float, or (A8/A4) on integers: Q and K
   * quantized per token and head (after a per-head Hadamard when rotated), V per token and head, K/V cached as codes.
   * Pruning scores of an integer attention come from its own probabilities, so tokens are ranked by what the
   * quantized model computes.
   */
  private attend(layer: number, q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, cache: DecoderCache, options: AttentionOptions): AttentionResult {
    const bk = this.backend;
    if (cache instanceof KVCache) {
      const [keys, values] = cache.append(layer, k, v);
      return bk.attention(q, keys, values, options);
    }
    const bits = cache.bits;
    const hadamardBlock = this.quantization?.rotation ? hadamardBlockFor(this.config.headDim) : undefined;
    const [keys, values] = cache.append(layer, bk.quantizeActivations(k, { bits, hadamardBlock }), bk.quantizeActivations(v, { bits }));
    const qq = bk.quantizeActivations(q, { bits, hadamardBlock });
    const result = bk.attentionInt(qq, keys, values, { causal: true, returnProbs: options.returnProbs || options.scores !== undefined });
    if (!options.scores) return result;
    return { out: result.out, probs: options.returnProbs ? result.probs : undefined, scores: scoresFromProbs(result.probs!, options.scores) };
  }
}

/** Pruning scores (backend.ts AttentionScores) from full probabilities probs [Hq, T, S]. */
export function scoresFromProbs(probs: Tensor<'f32'>, request: AttentionScoreRequest): AttentionScores {
  const [heads, tokens, keys] = probs.shape;
  const scores: AttentionScores = {};
  if (request.queryRows) {
    const rows = request.queryRows;
    const out = new Float32Array(heads * rows.length * keys);
    for (let h = 0; h < heads; h++) {
      rows.forEach((t, r) => out.set(probs.data.subarray((h * tokens + t) * keys, (h * tokens + t + 1) * keys), (h * rows.length + r) * keys));
    }
    scores.queryProbs = Tensor.f32([heads, rows.length, keys], out);
  }
  if (request.keyTotals) {
    const totals = new Float64Array(keys);
    for (let i = 0; i < heads * tokens; i++) for (let s = 0; s < keys; s++) totals[s] += probs.data[i * keys + s];
    scores.keyTotals = Float32Array.from(totals);
  }
  return scores;
}

/** x [T, D], rows [R] -> [R, D] */
function gatherRows(x: Tensor<'f32'>, rows: Int32Array): Tensor<'f32'> {
  const width = x.size / x.shape[0];
  const out = new Float32Array(rows.length * width);
  rows.forEach((row, i) => out.set(x.data.subarray(row * width, (row + 1) * width), i * width));
  return Tensor.f32([rows.length, ...x.shape.slice(1)], out);
}

function checkRows(rows: Int32Array, tokens: number): void {
  if (rows.length === 0) throw new Error('Llama.forward: pruning kept no rows');
  rows.forEach((row, i) => {
    if (row < 0 || row >= tokens || (i > 0 && row <= rows[i - 1])) throw new Error(`Llama.forward: kept rows must be strictly ascending in [0, ${tokens}) (at ${i}: ${row})`);
  });
}

/** Index of the largest value (first one on ties, as torch.argmax does). */
export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
