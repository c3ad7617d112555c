// OpenVLA assembly (Hugging Face `OpenVLAForActionPrediction` layout): fused DINOv2 + SigLIP vision backbone ->
// projector -> patches inserted after BOS in the Llama prompt -> 7 greedy action tokens -> un-normalized action.
import nodePath from 'node:path';
import fs from 'node:fs';
import type { AttentionScoreRequest, AttentionScores, Backend, PrepackOptions } from '../tensor/backend.js';
import { concatLastAxis, concatRows, Tensor } from '../tensor/tensor.js';
import { UserError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { readJsonFile } from '../io/json.js';
import type { RgbImage } from '../io/image.js';
import { chooseUnnormKey, detokenizeActions, unnormalizeAction, type NormStats } from './action-tokenizer.js';
import { Llama, type LlamaHooks, type TokenPruning } from './llama.js';
import { parsePreprocessorConfig, preprocessImage, type PreprocessorConfig } from './preprocess.js';
import { Projector } from './projector.js';
import { VisionTransformer } from './vit.js';
import { checkpointSource, scoped, type TensorSource } from './weights.js';
import { checkOpenVlaCheckpoint, checkOpenVlaConfigJson, checkPredictInput } from './validate.js';

/** Action tokens OpenVLA generates: one per action dimension. */
export const ACTION_DIMS = 7;

/** Attention heads of the timm ViTs OpenVLA names (head counts cannot be read from tensor shapes). */
const TIMM_HEADS: Record<string, number> = {
  vit_large_patch14_reg4_dinov2: 16,
  vit_large_patch14_dinov2: 16,
  vit_base_patch14_reg4_dinov2: 12,
  vit_so400m_patch14_siglip_224: 16,
  vit_so400m_patch14_siglip_384: 16,
  vit_base_patch16_siglip_224: 12,
  vit_large_patch14_clip_224: 16,
  vit_large_patch14_clip_336: 16,
};

export interface OpenVlaConfig {
  timmModelIds: string[];
  vitHeads: number[];
  nActionBins: number;
  /** text vocab size minus padding: the action bins are its last `nActionBins` ids */
  realVocabSize: number;
  normStats: NormStats;
  textConfig: Record<string, unknown>;
  /**
   * `sqap_vla_camera_image_size`: the side in pixels of the square camera images the checkpoint was trained on
   * (`train` writes it from the recording). Closed-loop commands render at this size unless told otherwise, so the
   * policy sees frames rendered as in training rather than a 224 px render resized to its input.
   */
  cameraImageSize?: number;
}

export function parseOpenVlaConfig(json: unknown, path: string): OpenVlaConfig {
  if (typeof json !== 'object' || json === null) throw new UserError(`${path}: expected a JSON object`);
  const c = json as Record<string, unknown>;
  const textConfig = c.text_config as Record<string, unknown> | undefined;
  if (!textConfig || typeof textConfig.vocab_size !== 'number') throw new UserError(`${path}: missing text_config.vocab_size`);
  const timmModelIds = (c.timm_model_ids as string[] | undefined) ?? [];
  if (!Array.isArray(timmModelIds) || timmModelIds.length === 0) throw new UserError(`${path}: missing timm_model_ids`);
  // `timm_model_overrides` (one entry per timm_model_ids entry: the timm constructor arguments embed_dim, depth,
  // num_heads, mlp_ratio, img_size of a scaled-down ViT, e.g. the `mini` preset) replaces the fixtures' older name.
  const overrides = (c.timm_model_overrides ?? c.timm_overrides_for_tiny_fixture ?? []) as { num_heads?: number }[];
  const vitHeads = timmModelIds.map((id, i) => {
    const heads = overrides[i]?.num_heads ?? TIMM_HEADS[id.split('.')[0]];
    if (!heads) throw new UserError(`${path}: unknown vision backbone '${id}' (known: ${Object.keys(TIMM_HEADS).join(', ')})`);
    return heads;
  });
  const padTo = typeof c.pad_to_multiple_of === 'number' ? c.pad_to_multiple_of : 0;
  const camera = c.sqap_vla_camera_image_size;
  if (camera !== undefined && !(Number.isInteger(camera) && (camera as number) > 0)) {
    throw new UserError(`${path}: sqap_vla_camera_image_size must be a positive integer (pixels), got ${JSON.stringify(camera)}`);
  }
  return {
    timmModelIds,
    vitHeads,
    nActionBins: typeof c.n_action_bins === 'number' ? c.n_action_bins : 256,
    realVocabSize: textConfig.vocab_size - padTo,
    normStats: (c.norm_stats ?? {}) as NormStats,
    textConfig,
    ...(camera !== undefined ? { cameraImageSize: camera as number } : {}),
  };
}

/** Where the visual tokens sit in the prompt: rows [visualStart, visualStart + visualCount) of `tokens`. */
export interface PromptLayout {
  tokens: number;
  visualStart: number;
  visualCount: number;
}

/**
 * Visual-token pruning for one prediction (src/prune builds these; policy.ts passes them in): layers 0 .. layer-1
 * run on the whole prompt; `request` names the scores layer-1's attention returns; `choose` turns them into the
 * visual tokens to keep. Every text token is always kept.
 */
export interface VisualTokenPruner {
  layer: number;
  request(layout: PromptLayout): AttentionScoreRequest;
  /** scores (keys in prompt order) -> kept visual token indices, strictly ascending, in [0, visualCount) */
  choose(scores: AttentionScores, layout: PromptLayout): Int32Array;
}

export interface PredictInput {
  /** an RGB image (preprocessed with the checkpoint's processor) or ready pixel values [1, 3*backbones, H, W] */
  image?: RgbImage;
  pixelValues?: Float32Array;
  /** prompt token ids, used as given (they must start with BOS and end with the space token, as OpenVLA's do) */
  inputIds: number[];
  unnormKey?: string;
  hooks?: LlamaHooks;
  /** prune visual tokens inside the prefill (none when absent) */
  pruner?: VisualTokenPruner;
  /**
   * Teacher forcing (fidelity measurements, `compare`): feed these 7 action tokens back instead of the model's own
   * picks; the result's stepLogits are then each step's logits given the forced prefix.
   */
  forcedTokens?: number[];
}

export interface PredictResult {
  actionTokenIds: number[];
  normalizedAction: number[];
  action: number[];
  unnormKey: string;
  /**
   * vision: towers + projector; prefill: the prompt pass (pruning included); decode: the remaining single-token
   * passes (ACTION_DIMS - 1 of them); llm = prefill + decode; pruning: choosing and gathering kept tokens (part of
   * prefill; the extra scoring work inside layer K-1's attention is not separable here, bench measures it).
   */
  timingsMs: { vision: number; prefill: number; decode: number; llm: number; pruning: number; total: number };
  /** kept visual token indices (row-major patch grid) when a pruner ran */
  keptVisualTokens?: number[];
  /** with forcedTokens: the logits [V] of each of the 7 decode steps */
  stepLogits?: Float32Array[];
}

export interface OpenVlaLoadOptions {
  onProgress?: (done: number, total: number) => void;
  /** builds the decoder from its tensors (quantized checkpoints and quantize-at-load, src/quant); default Llama.load */
  loadDecoder?: (source: TensorSource, textConfig: Record<string, unknown>) => Llama;
  /**
   * Prepack the vision towers' and the projector's weights for the backend's GEMM (Backend.prepack): default true,
   * false (or SQAP_PREPACK=0 in the environment) keeps them as stored. The decoder's float linears stay as stored:
   * its decode steps (one row) read weights in place. Training never loads through here with prepacking (its
   * weights change every step).
   */
  prepack?: boolean;
  /**
   * With prepacking, let the vision towers' and the projector's bf16 weights multiply activations rounded to bf16
   * (Backend.prepack bf16Activations), as the checkpoint's own bf16 inference in PyTorch does, where the backend has
   * bf16 dot-product instructions (AVX512-BF16): about twice the rate of the f32 GEMM these GEMMs run otherwise.
   * Default true; false (or SQAP_VISION_BF16=0) keeps f32 activations, bit-identical to the stored weights' GEMM.
   * f32 checkpoints, and CPUs without the instructions, are unaffected. The decoder never rounds its activations.
   */
  visionBf16?: boolean;
}

export class OpenVla {
  constructor(
    readonly config: OpenVlaConfig,
    readonly preprocessor: PreprocessorConfig,
    readonly backbones: VisionTransformer[],
    readonly projector: Projector,
    readonly llm: Llama,
    readonly backend: Backend,
    readonly path: string,
  ) {}

  /**
   * Load from a checkpoint directory (config.json, preprocessor_config.json, safetensors). Weights keep their stored
   * dtype (a BF16 checkpoint stays BF16 in memory). `onProgress(done, total)` counts tensors read.
   */
  static load(dir: string, backend: Backend, options: OpenVlaLoadOptions = {}): OpenVla {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`model directory not found: ${dir}`);
    const configPath = nodePath.join(dir, 'config.json');
    const configJson = readJsonFile(configPath, 'model config');
    checkOpenVlaConfigJson(configJson, configPath, ACTION_DIMS);
    const config = parseOpenVlaConfig(configJson, configPath);
    const preprocessorPath = nodePath.join(dir, 'preprocessor_config.json');
    const preprocessor = parsePreprocessorConfig(readJsonFile(preprocessorPath, 'preprocessor config'), preprocessorPath);
    const checkpoint = Checkpoint.open(dir);
    try {
      checkOpenVlaCheckpoint({ dir, configJson: configJson as Record<string, unknown>, vitHeads: config.vitHeads, inputSizes: preprocessor.backbones, headers: checkpoint });
      const total = checkpoint.keys().length;
      let done = 0;
      const source = checkpointSource(checkpoint, () => options.onProgress?.(++done, total));
      const model = OpenVla.fromSource(config, preprocessor, source, backend, dir, options.loadDecoder);
      const prepack = options.prepack ?? process.env.SQAP_PREPACK !== '0';
      const visionBf16 = options.visionBf16 ?? process.env.SQAP_VISION_BF16 !== '0';
      return prepack ? model.withPrepackedVision({ bf16Activations: visionBf16 }) : model;
    } finally {
      checkpoint.close();
    }
  }

  /** Assemble from tensors under the HF names (a checkpoint, or the f32 master weights of a training run). */
  static fromSource(
    config: OpenVlaConfig,
    preprocessor: PreprocessorConfig,
    source: TensorSource,
    backend: Backend,
    path: string,
    loadDecoder?: OpenVlaLoadOptions['loadDecoder'],
  ): OpenVla {
    const prefixes = ['vision_backbone.featurizer', 'vision_backbone.fused_featurizer'].slice(0, config.timmModelIds.length);
    const backbones = prefixes.map((p, i) => VisionTransformer.load(scoped(source, p), config.vitHeads[i], backend));
    const projector = Projector.load(scoped(source, 'projector'), backend);
    const llmSource = scoped(source, 'language_model');
    const llm = loadDecoder ? loadDecoder(llmSource, config.textConfig) : Llama.load(llmSource, config.textConfig, backend);
    const visionWidth = backbones.reduce((a, b) => a + b.config.width, 0);
    if (projector.inputWidth !== visionWidth || projector.outputWidth !== llm.config.hidden) {
      throw new UserError(`${path}: projector maps ${projector.inputWidth} -> ${projector.outputWidth}, but vision width is ${visionWidth} and LLM width ${llm.config.hidden}`);
    }
    return new OpenVla(config, preprocessor, backbones, projector, llm, backend, path);
  }

  /** The same model with the vision towers and projector prepacked (OpenVlaLoadOptions.prepack). */
  withPrepackedVision(options?: PrepackOptions): OpenVla {
    return new OpenVla(this.config, this.preprocessor, this.backbones.map((b) => b.prepacked(options)), this.projector.prepacked(options),
      this.llm, this.backend, this.path);
  }

  /** image -> pixel values [1, 3*backbones, H, W] */
  preprocess(image: RgbImage): Float32Array {
    return preprocessImage(image, this.preprocessor);
  }

  /** pixel values [1, 3*backbones, H, W] -> patch features [nPatches, sum of ViT widths] */
  visionPatches(pixelValues: Float32Array): Tensor<'f32'> {
    const plane = pixelValues.length / (3 * this.backbones.length);
    return concatLastAxis(this.backbones.map((vit, i) => vit.penultimatePatches(pixelValues.subarray(i * 3 * plane, (i + 1) * 3 * plane))));
  }

  /** input ids [L] (BOS first), projected patches [N, D] -> prompt embeddings [1 + N + L - 1, D] */
  prefixEmbeds(inputIds: number[], projected: Tensor<'f32'>): Tensor<'f32'> {
    const embeds = this.llm.embed(Int32Array.from(inputIds));
    return concatRows([embeds.rows(0, 1), projected, embeds.rows(1, inputIds.length)]);
  }

  predictAction(input: PredictInput): PredictResult {
    const unnormKey = chooseUnnormKey(this.config.normStats, input.unnormKey);
    checkPredictInput(this, input);
    const start = performance.now();
    const pixels = input.pixelValues ?? (input.image ? this.preprocess(input.image) : undefined);
    if (!pixels) throw new UserError('predictAction needs an image or pixel values');
    const projected = this.projector.forward(this.visionPatches(pixels));
    const visionDone = performance.now();
    const prefix = this.prefixEmbeds(input.inputIds, projected);
    const layout: PromptLayout = { tokens: prefix.shape[0], visualStart: 1, visualCount: projected.shape[0] };
    const pruning = input.pruner ? visualPruning(input.pruner, layout) : undefined;
    const { ids, pruned, timingsMs, stepLogits } = this.llm.generateGreedy(prefix, ACTION_DIMS, input.hooks, { pruning, forcedTokens: input.forcedTokens });
    const end = performance.now();
    const normalizedAction = detokenizeActions(ids, this.config.realVocabSize, this.config.nActionBins);
    return {
      actionTokenIds: ids,
      normalizedAction,
      action: unnormalizeAction(normalizedAction, this.config.normStats[unnormKey].action),
      unnormKey,
      timingsMs: {
        vision: visionDone - start,
        prefill: timingsMs.prefill,
        decode: timingsMs.decode,
        llm: end - visionDone,
        pruning: pruned?.overheadMs ?? 0,
        total: end - start,
      },
      keptVisualTokens: pruned ? keptVisual(pruned.keptRows, layout) : undefined,
      stepLogits,
    };
  }
}

/** A visual-token pruner -> the Llama's row pruning: BOS and every text token are kept, visual rows as chosen. */
function visualPruning(pruner: VisualTokenPruner, layout: PromptLayout): TokenPruning {
  return {
    layer: pruner.layer,
    scores: pruner.request(layout),
    choose(scores, cachedTokens) {
      if (cachedTokens !== 0) throw new Error('visual-token pruning expects the prompt to start an empty cache');
      const visual = pruner.choose(scores, layout);
      const rows: number[] = [];
      for (let t = 0; t < layout.visualStart; t++) rows.push(t);
      visual.forEach((j) => rows.push(layout.visualStart + j));
      for (let t = layout.visualStart + layout.visualCount; t < layout.tokens; t++) rows.push(t);
      return Int32Array.from(rows);
    },
  };
}

function keptVisual(keptRows: Int32Array, layout: PromptLayout): number[] {
  const end = layout.visualStart + layout.visualCount;
  return Array.from(keptRows.filter((row) => row >= layout.visualStart && row < end), (row) => row - layout.visualStart);
}
