// Model presets for training from scratch: the OpenVLA architecture (DINOv2-reg4-style + SigLIP-style ViTs with
// patch 14, fused-GELU projector, Llama decoder) scaled down, with the f32 master weights' initialization and the
// Hugging Face files (config.json, preprocessor_config.json) that make a checkpoint loadable by every command.
//
// The ViT sizes go in config.json under `timm_model_overrides`: one object per `timm_model_ids` entry with the timm
// constructor arguments of the scaled-down model (embed_dim, depth, num_heads, mlp_ratio, img_size, patch_size).
import { UserError } from '../errors.js';
import { mulberry32, standardNormal } from '../random.js';
import { Tensor } from '../tensor/tensor.js';

export interface PresetSizes {
  /** input side in pixels; (imageSize / 14)² visual tokens per image */
  imageSize: number;
  /** [DINOv2, SigLIP] */
  vitWidths: [number, number];
  /** blocks per ViT; OpenVLA reads the second-to-last block's output, so depth - 1 blocks run */
  vitDepths: [number, number];
  vitHeads: [number, number];
  vitMlp: [number, number];
  llmHidden: number;
  llmLayers: number;
  llmHeads: number;
  llmIntermediate: number;
}

export const PATCH_SIZE = 14;
const DINO_REGISTERS = 4;

/**
 * `mini`: 112 px -> 8x8 = 64 visual tokens; two 128-wide ViTs (4 blocks, 3 used), a 256-wide 4-layer Llama. Sized
 * for CPU training: about 0.9 GFLOP per sample forward (see docs/training.md), 6 M parameters, 12 MB in bf16.
 * `tiny`: for tests (28 px, 4 tokens).
 */
export const PRESETS: Record<string, PresetSizes> = {
  mini: {
    imageSize: 112, vitWidths: [128, 128], vitDepths: [4, 4], vitHeads: [4, 4], vitMlp: [512, 512],
    llmHidden: 256, llmLayers: 4, llmHeads: 4, llmIntermediate: 688,
  },
  tiny: {
    imageSize: 28, vitWidths: [16, 16], vitDepths: [2, 2], vitHeads: [2, 2], vitMlp: [32, 32],
    llmHidden: 32, llmLayers: 2, llmHeads: 2, llmIntermediate: 48,
  },
};

export function getPreset(name: string): PresetSizes {
  const preset = PRESETS[name];
  if (!preset) throw new UserError(`unknown preset '${name}' (known: ${Object.keys(PRESETS).join(', ')})`);
  return preset;
}

/**
 * 2-D sine-cosine position embedding [1, side², d] (MAE's `get_2d_sincos_pos_embed`): the first d/2 channels encode
 * the patch's row, the last d/2 its column, each as sin(p·ω_i) then cos(p·ω_i) for ω_i = 10000^(-i/(d/4)),
 * i < d/4. Used as the *initial* value of the (trained) pos_embed: a from-scratch ViT starts with each patch
 * token carrying where it is, at the scale of its content, instead of N(0, 0.02) noise it must first amplify.
 * Measured on the testbed: with the noise init the policy still answered a constant action after 2,200 steps.
 */
export function sincosPositionEmbedding(side: number, d: number): Tensor<'f32'> {
  if (d % 4 !== 0) throw new Error(`sincos position embedding needs a width divisible by 4, got ${d}`);
  const quarter = d / 4;
  const out = new Float32Array(side * side * d);
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      const row = out.subarray((r * side + c) * d, (r * side + c + 1) * d);
      for (let i = 0; i < quarter; i++) {
        const omega = 1 / 10000 ** (i / quarter);
        row[i] = Math.sin(r * omega);
        row[quarter + i] = Math.cos(r * omega);
        row[2 * quarter + i] = Math.sin(c * omega);
        row[3 * quarter + i] = Math.cos(c * omega);
      }
    }
  }
  return Tensor.f32([1, side * side, d], out);
}

/**
 * Freshly initialized f32 weights under the HF OpenVLA names: linear weights N(0, 0.02) with residual-output
 * projections scaled by 1/√(2·layers) (GPT-2), biases 0, norms 1, LayerScale 0.1, embeddings N(0, 0.02), ViT
 * position embeddings 2-D sine-cosine (sincosPositionEmbedding).
 */
export function initWeights(sizes: PresetSizes, embeddingRows: number, seed: number): Map<string, Tensor<'f32'>> {
  const uniform = mulberry32(seed);
  const params = new Map<string, Tensor<'f32'>>();
  const normal = (name: string, shape: number[], std: number) => {
    const t = Tensor.zeros(shape);
    for (let i = 0; i < t.size; i++) t.data[i] = std * standardNormal(uniform);
    params.set(name, t);
  };
  const fill = (name: string, shape: number[], value: number) => params.set(name, Tensor.f32(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value)));
  const linear = (name: string, out: number, inp: number, options: { bias?: boolean; std?: number } = {}) => {
    normal(`${name}.weight`, [out, inp], options.std ?? 0.02);
    if (options.bias ?? true) fill(`${name}.bias`, [out], 0);
  };
  const grid = (sizes.imageSize / PATCH_SIZE) ** 2;
  ['featurizer', 'fused_featurizer'].forEach((part, b) => {
    const p = `vision_backbone.${part}`;
    const d = sizes.vitWidths[b];
    const residualStd = 0.02 / Math.sqrt(2 * sizes.vitDepths[b]);
    normal(`${p}.patch_embed.proj.weight`, [d, 3, PATCH_SIZE, PATCH_SIZE], 0.02);
    fill(`${p}.patch_embed.proj.bias`, [d], 0);
    params.set(`${p}.pos_embed`, sincosPositionEmbedding(Math.round(Math.sqrt(grid)), d));
    if (b === 0) {
      normal(`${p}.cls_token`, [1, 1, d], 0.02);
      normal(`${p}.reg_token`, [1, DINO_REGISTERS, d], 0.02);
    }
    for (let i = 0; i < sizes.vitDepths[b]; i++) {
      const k = `${p}.blocks.${i}`;
      for (const norm of ['norm1', 'norm2']) {
        fill(`${k}.${norm}.weight`, [d], 1);
        fill(`${k}.${norm}.bias`, [d], 0);
      }
      linear(`${k}.attn.qkv`, 3 * d, d);
      linear(`${k}.attn.proj`, d, d, { std: residualStd });
      linear(`${k}.mlp.fc1`, sizes.vitMlp[b], d);
      linear(`${k}.mlp.fc2`, d, sizes.vitMlp[b], { std: residualStd });
      if (b === 0) {
        fill(`${k}.ls1.scale_factor`, [d], 0.1);
        fill(`${k}.ls2.scale_factor`, [d], 0.1);
      }
    }
    fill(`${p}.norm.weight`, [d], 1);
    fill(`${p}.norm.bias`, [d], 0);
  });
  const visionWidth = sizes.vitWidths[0] + sizes.vitWidths[1];
  const h = sizes.llmHidden;
  linear('projector.fc1', 4 * visionWidth, visionWidth);
  linear('projector.fc2', h, 4 * visionWidth);
  linear('projector.fc3', h, h);
  const residualStd = 0.02 / Math.sqrt(2 * sizes.llmLayers);
  normal('language_model.model.embed_tokens.weight', [embeddingRows, h], 0.02);
  for (let i = 0; i < sizes.llmLayers; i++) {
    const k = `language_model.model.layers.${i}`;
    fill(`${k}.input_layernorm.weight`, [h], 1);
    fill(`${k}.post_attention_layernorm.weight`, [h], 1);
    for (const proj of ['q_proj', 'k_proj', 'v_proj']) linear(`${k}.self_attn.${proj}`, h, h, { bias: false });
    linear(`${k}.self_attn.o_proj`, h, h, { bias: false, std: residualStd });
    linear(`${k}.mlp.gate_proj`, sizes.llmIntermediate, h, { bias: false });
    linear(`${k}.mlp.up_proj`, sizes.llmIntermediate, h, { bias: false });
    linear(`${k}.mlp.down_proj`, h, sizes.llmIntermediate, { bias: false, std: residualStd });
  }
  fill('language_model.model.norm.weight', [h], 1);
  linear('language_model.lm_head', embeddingRows, h, { bias: false });
  return params;
}

/** config.json of an OpenVLA checkpoint with these sizes (norm_stats from the training demonstrations). */
export function openVlaConfigJson(sizes: PresetSizes, vocab: { embeddingRows: number; padId: number }, normStats: Record<string, unknown>, preset: string): Record<string, unknown> {
  const h = sizes.llmHidden;
  return {
    architectures: ['OpenVLAForActionPrediction'],
    model_type: 'openvla',
    sqap_vla_preset: preset,
    use_fused_vision_backbone: true,
    timm_model_ids: ['vit_large_patch14_reg4_dinov2.lvd142m', 'vit_so400m_patch14_siglip_224'],
    timm_model_overrides: [0, 1].map((b) => ({
      embed_dim: sizes.vitWidths[b],
      depth: sizes.vitDepths[b],
      num_heads: sizes.vitHeads[b],
      mlp_ratio: sizes.vitMlp[b] / sizes.vitWidths[b],
      img_size: sizes.imageSize,
      patch_size: PATCH_SIZE,
    })),
    image_sizes: [sizes.imageSize, sizes.imageSize],
    image_resize_strategy: 'resize-naive',
    pad_token_id: vocab.padId,
    pad_to_multiple_of: 64,
    n_action_bins: 256,
    norm_stats: normStats,
    text_config: {
      model_type: 'llama', vocab_size: vocab.embeddingRows, hidden_size: h, intermediate_size: sizes.llmIntermediate,
      num_hidden_layers: sizes.llmLayers, num_attention_heads: sizes.llmHeads, num_key_value_heads: sizes.llmHeads,
      head_dim: h / sizes.llmHeads, rms_norm_eps: 1e-6, rope_parameters: { rope_theta: 10000, rope_type: 'default' },
      bos_token_id: 1, eos_token_id: 2, pad_token_id: vocab.padId, tie_word_embeddings: false,
    },
  };
}

/** preprocessor_config.json: OpenVLA's, at this preset's image size (DINOv2 ImageNet stats, SigLIP 0.5/0.5). */
export function preprocessorConfigJson(sizes: PresetSizes): Record<string, unknown> {
  const s = sizes.imageSize;
  const normalize = [
    { mean: [0.484375, 0.455078125, 0.40625], std: [0.228515625, 0.2236328125, 0.224609375] },
    { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  ];
  return {
    image_processor_type: 'PrismaticImageProcessor',
    image_resize_strategy: 'resize-naive',
    use_fused_vision_backbone: true,
    input_sizes: [[3, s, s], [3, s, s]],
    interpolations: ['bicubic', 'bicubic'],
    means: [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]],
    stds: [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]],
    tvf_normalize_params: normalize.map((n) => ({ ...n, inplace: false })),
    tvf_do_letterbox: false,
  };
}
