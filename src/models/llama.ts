// Llama decoder as transformers' LlamaForCausalLM computes it: RMSNorm (f32), RoPE (rotate_half), grouped-query
// attention, SwiGLU MLP, final norm, untied lm_head; a KV cache for greedy decoding. Intermediates are reported
// through hooks under fixed names so tests, debugging and token pruning can read them.
import type { AttentionScoreRequest, AttentionScores, Backend, WeightTensor } from '../tensor/backend.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../errors.js';
import { KVCache } from './kv-cache.js';
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

interface LlamaLayer {
  inputNorm: WeightTensor;
  q: WeightTensor;
  k: WeightTensor;
  v: WeightTensor;
  o: WeightTensor;
  postAttentionNorm: WeightTensor;
  gate: WeightTensor;
  up: WeightTensor;
  down: WeightTensor;
}

export interface LlamaWeights {
  embedTokens: WeightTensor;
  layers: LlamaLayer[];
  norm: WeightTensor;
  lmHead: WeightTensor;
}

/**
 * Observers of one forward pass. Names of captured intermediates (layer = -1 for model-level ones):
 * 'embeddings' [T,D], 'attn_out' [T,D], 'layer_out' [T,D] (residual stream after the layer), 'final_norm' [T,D].
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

/** Reads the HF text config (`config.json` of a Llama, or OpenVLA's `text_config`); sizes come from tensor shapes. */
export function loadLlama(source: TensorSource, textConfig: Record<string, unknown>): { config: LlamaConfig; weights: LlamaWeights } {
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
  const intermediate = readWeight(source, 'model.layers.0.mlp.gate_proj.weight').shape[0];
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
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    layerWeights.push({
      inputNorm: readWeight(source, `${p}.input_layernorm.weight`, [hidden]),
      q: readWeight(source, `${p}.self_attn.q_proj.weight`, [qWidth, hidden]),
      k: readWeight(source, `${p}.self_attn.k_proj.weight`, [kvWidth, hidden]),
      v: readWeight(source, `${p}.self_attn.v_proj.weight`, [kvWidth, hidden]),
      o: readWeight(source, `${p}.self_attn.o_proj.weight`, [hidden, qWidth]),
      postAttentionNorm: readWeight(source, `${p}.post_attention_layernorm.weight`, [hidden]),
      gate: readWeight(source, `${p}.mlp.gate_proj.weight`, [intermediate, hidden]),
      up: readWeight(source, `${p}.mlp.up_proj.weight`, [intermediate, hidden]),
      down: readWeight(source, `${p}.mlp.down_proj.weight`, [hidden, intermediate]),
    });
  }
  const tied = !source.has('lm_head.weight');
  return {
    config,
    weights: {
      embedTokens,
      layers: layerWeights,
      norm: readWeight(source, 'model.norm.weight', [hidden]),
      lmHead: tied ? embedTokens : readWeight(source, 'lm_head.weight', [undefined, hidden]),
    },
  };
}

export class Llama {
  constructor(
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    readonly backend: Backend,
  ) {}

  static load(source: TensorSource, textConfig: Record<string, unknown>, backend: Backend): Llama {
    const { config, weights } = loadLlama(source, textConfig);
    return new Llama(config, weights, backend);
  }

  newCache(): KVCache {
    return new KVCache(this.config.layers, this.config.kvHeads, this.config.headDim);
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
    cache: KVCache,
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
    let x = embeds;
    hooks?.capture?.('embeddings', -1, x);
    this.weights.layers.forEach((layer, i) => {
      if (keptRows && i === pruning!.layer) {
        const start = performance.now();
        x = gatherRows(x, keptRows);
        positions = keptRows.map((row) => positions[row]);
        tokens = keptRows.length;
        overheadMs += performance.now() - start;
      }
      const h = bk.rmsNorm(x, layer.inputNorm, rmsNormEps);
      const q = bk.rope(bk.linear(h, layer.q).reshape([tokens, heads, headDim]), positions, ropeTheta);
      const k = bk.rope(bk.linear(h, layer.k).reshape([tokens, kvHeads, headDim]), positions, ropeTheta);
      const v = bk.linear(h, layer.v).reshape([tokens, kvHeads, headDim]);
      const [keys, values] = cache.append(i, k, v);
      const wantProbs = hooks?.wantAttention?.(i) ?? false;
      const scoring = pruning !== undefined && i === pruning.layer - 1;
      const attention = bk.attention(q, keys, values, { causal: true, returnProbs: wantProbs, scores: scoring ? pruning.scores : undefined });
      if (attention.probs) hooks?.onAttention?.(i, attention.probs);
      if (scoring) {
        const start = performance.now();
        // a backend that ignores the request returns no scores; criteria that need them then fail by name
        keptRows = pruning.choose(attention.scores ?? {}, cachedTokens);
        checkRows(keptRows, tokens);
        overheadMs += performance.now() - start;
      }
      const attnOut = bk.linear(attention.out, layer.o);
      hooks?.capture?.('attn_out', i, attnOut);
      x = bk.add(x, attnOut);
      const m = bk.rmsNorm(x, layer.postAttentionNorm, rmsNormEps);
      x = bk.add(x, bk.linear(bk.siluMul(bk.linear(m, layer.gate), bk.linear(m, layer.up)), layer.down));
      hooks?.capture?.('layer_out', i, x);
    });
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
    options: { pruning?: TokenPruning } = {},
  ): { ids: number[]; cache: KVCache; pruned?: ForwardResult['pruned']; timingsMs: { prefill: number; decode: number } } {
    const cache = this.newCache();
    const ids: number[] = [];
    let next = prefix;
    let pruned: ForwardResult['pruned'];
    const start = performance.now();
    let prefillDone = start;
    for (let step = 0; step < maxNewTokens; step++) {
      const first = step === 0;
      const result = this.forward(next, cache, { logits: 'last', hooks: first ? hooks : undefined, pruning: first ? options.pruning : undefined });
      if (first) pruned = result.pruned;
      const id = argmax(result.logits!.data);
      ids.push(id);
      if (first) prefillDone = performance.now();
      if (step + 1 < maxNewTokens) next = this.embed(Int32Array.of(id));
    }
    return { ids, cache, pruned, timingsMs: { prefill: prefillDone - start, decode: performance.now() - prefillDone } };
  }
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
