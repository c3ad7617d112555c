// Llama decoder as transformers' LlamaForCausalLM computes it: RMSNorm (f32), RoPE (rotate_half), grouped-query
// attention, SwiGLU MLP, final norm, untied lm_head; a KV cache for greedy decoding. Intermediates are reported
// through hooks under fixed names so tests, debugging and token pruning can read them.
import type { Backend, WeightTensor } from '../tensor/backend.js';
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
   * states [T, D]. Positions continue from cache.nextPosition.
   */
  forward(
    embeds: Tensor<'f32'>,
    cache: KVCache,
    options: { logits?: LogitsMode; hooks?: LlamaHooks } = {},
  ): { logits?: Tensor<'f32'>; hidden: Tensor<'f32'> } {
    const { hooks, logits = 'last' } = options;
    const bk = this.backend;
    const { heads, kvHeads, headDim, rmsNormEps, ropeTheta } = this.config;
    const tokens = embeds.shape[0];
    const positions = cache.takePositions(tokens);
    let x = embeds;
    hooks?.capture?.('embeddings', -1, x);
    this.weights.layers.forEach((layer, i) => {
      const h = bk.rmsNorm(x, layer.inputNorm, rmsNormEps);
      const q = bk.rope(bk.linear(h, layer.q).reshape([tokens, heads, headDim]), positions, ropeTheta);
      const k = bk.rope(bk.linear(h, layer.k).reshape([tokens, kvHeads, headDim]), positions, ropeTheta);
      const v = bk.linear(h, layer.v).reshape([tokens, kvHeads, headDim]);
      const [keys, values] = cache.append(i, k, v);
      const wantProbs = hooks?.wantAttention?.(i) ?? false;
      const attention = bk.attention(q, keys, values, { causal: true, returnProbs: wantProbs });
      if (attention.probs) hooks?.onAttention?.(i, attention.probs);
      const attnOut = bk.linear(attention.out, layer.o);
      hooks?.capture?.('attn_out', i, attnOut);
      x = bk.add(x, attnOut);
      const m = bk.rmsNorm(x, layer.postAttentionNorm, rmsNormEps);
      x = bk.add(x, bk.linear(bk.siluMul(bk.linear(m, layer.gate), bk.linear(m, layer.up)), layer.down));
      hooks?.capture?.('layer_out', i, x);
    });
    const hidden = bk.rmsNorm(x, this.weights.norm, rmsNormEps);
    hooks?.capture?.('final_norm', -1, hidden);
    if (logits === 'none') return { hidden };
    const rows = logits === 'last' ? hidden.rows(tokens - 1, tokens) : hidden;
    return { logits: bk.linear(rows, this.weights.lmHead), hidden };
  }

  /**
   * Greedy decoding: prefix embeds [T, D] -> `maxNewTokens` ids (argmax at each step, KV cache reused). `hooks`
   * observe the prefix pass only (where token pruning reads attention); decode steps run without them.
   */
  generateGreedy(prefix: Tensor<'f32'>, maxNewTokens: number, hooks?: LlamaHooks): { ids: number[]; cache: KVCache } {
    const cache = this.newCache();
    const ids: number[] = [];
    let next = prefix;
    for (let step = 0; step < maxNewTokens; step++) {
      const { logits } = this.forward(next, cache, { logits: 'last', hooks: step === 0 ? hooks : undefined });
      const id = argmax(logits!.data);
      ids.push(id);
      next = this.embed(Int32Array.of(id));
    }
    return { ids, cache };
  }
}

/** Index of the largest value (first one on ties, as torch.argmax does). */
export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
