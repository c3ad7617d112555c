// Random-weight OpenVLA checkpoints of any size, in the Hugging Face layout, for tests and benchmarks: the real
// architecture and key names (as the bundled tiny fixture has them), seeded weights. An OpenVLA-7B-shaped one
// (DINOv2-L + SigLIP-SO400M at 224 px, Llama-2-7B) lets speed and memory be measured without downloading weights.
import fs from 'node:fs';
import nodePath from 'node:path';
import { castFloat, type FloatDType } from '../io/convert.js';
import { writeSafetensors } from '../io/safetensors.js';
import { mulberry32, standardNormal } from '../random.js';
import { shapeSize, Tensor } from '../tensor/tensor.js';

export interface SyntheticSizes {
  imageSize: number;
  patchSize: number;
  /** [DINOv2 width, SigLIP width] */
  vitWidths: [number, number];
  vitDepths: [number, number];
  vitHeads: [number, number];
  vitMlp: [number, number];
  llmHidden: number;
  llmLayers: number;
  llmHeads: number;
  llmKvHeads: number;
  llmIntermediate: number;
  /** embedding rows, including the padding to a multiple of 64 */
  vocabSize: number;
}

export const TINY_SIZES: SyntheticSizes = {
  imageSize: 56, patchSize: 14, vitWidths: [64, 72], vitDepths: [3, 3], vitHeads: [4, 4], vitMlp: [256, 269],
  llmHidden: 64, llmLayers: 3, llmHeads: 4, llmKvHeads: 4, llmIntermediate: 160, vocabSize: 576,
};

/** Fill and write the tensors shard by shard (a single model.safetensors when everything fits in one). */
function writeShards(dir: string, specs: TensorSpec[], options: SyntheticOptions): void {
  const dtype = options.dtype ?? 'f32';
  const bytesPer = dtype === 'f32' ? 4 : 2;
  const maxShardBytes = options.maxShardBytes ?? 2e9;
  const shards: TensorSpec[][] = [[]];
  let shardBytes = 0;
  for (const spec of specs) {
    const bytes = shapeSize(spec.shape) * bytesPer;
    if (shards[shards.length - 1].length > 0 && shardBytes + bytes > maxShardBytes) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push(spec);
    shardBytes += bytes;
  }
  const totalBytes = specs.reduce((a, spec) => a + shapeSize(spec.shape) * bytesPer, 0);
  const uniform = mulberry32(options.seed ?? 1);
  const weightMap: Record<string, string> = {};
  let doneBytes = 0;
  shards.forEach((shard, i) => {
    const file = shards.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const tensors: Record<string, Tensor> = {};
    for (const spec of shard) {
      const t = Tensor.zeros(spec.shape);
      for (let j = 0; j < t.size; j++) t.data[j] = spec.offset + spec.scale * standardNormal(uniform);
      tensors[spec.name] = castFloat(t, dtype);
      weightMap[spec.name] = file;
      doneBytes += t.size * bytesPer;
      options.onProgress?.(doneBytes, totalBytes);
    }
    writeSafetensors(nodePath.join(dir, file), tensors, { format: 'pt' });
  });
  if (shards.length > 1) {
    fs.writeFileSync(nodePath.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 1));
  }
}

/** OpenVLA-7B: DINOv2-L/14-reg4 + SigLIP-SO400M/14 at 224 px (24 + 27 blocks), Llama-2-7B, vocab 32064. */
export const OPENVLA_7B_SIZES: SyntheticSizes = {
  imageSize: 224, patchSize: 14, vitWidths: [1024, 1152], vitDepths: [24, 27], vitHeads: [16, 16], vitMlp: [4096, 4304],
  llmHidden: 4096, llmLayers: 32, llmHeads: 32, llmKvHeads: 32, llmIntermediate: 11008, vocabSize: 32064,
};


export interface SyntheticOptions {
  seed?: number;
  dtype?: FloatDType;
  /** shard size bound in bytes; tensors are generated one shard at a time, so memory stays near one shard */
  maxShardBytes?: number;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** What one tensor is filled with: offset + scale * N(0, 1). */
interface TensorSpec {
  name: string;
  shape: number[];
  scale: number;
  offset: number;
}

export function writeSyntheticOpenVla(dir: string, sizes: SyntheticSizes, options: SyntheticOptions = {}): void {
  const specs: TensorSpec[] = [];
  const add = (name: string, shape: number[], scale: number, offset = 0) => specs.push({ name, shape, scale, offset });
  const linear = (name: string, out: number, inp: number, bias = true) => {
    add(`${name}.weight`, [out, inp], 1 / Math.sqrt(inp));
    if (bias) add(`${name}.bias`, [out], 0.02);
  };
  const grid = (sizes.imageSize / sizes.patchSize) ** 2;
  ['featurizer', 'fused_featurizer'].forEach((part, b) => {
    const p = `vision_backbone.${part}`;
    const d = sizes.vitWidths[b];
    add(`${p}.patch_embed.proj.weight`, [d, 3, sizes.patchSize, sizes.patchSize], 1 / Math.sqrt(3 * sizes.patchSize ** 2));
    add(`${p}.patch_embed.proj.bias`, [d], 0.02);
    add(`${p}.pos_embed`, [1, grid, d], 0.02);
    if (b === 0) {
      add(`${p}.cls_token`, [1, 1, d], 0.02);
      add(`${p}.reg_token`, [1, 4, d], 0.02);
    }
    for (let i = 0; i < sizes.vitDepths[b]; i++) {
      const k = `${p}.blocks.${i}`;
      for (const norm of ['norm1', 'norm2']) {
        add(`${k}.${norm}.weight`, [d], 0.1, 1);
        add(`${k}.${norm}.bias`, [d], 0.02);
      }
      linear(`${k}.attn.qkv`, 3 * d, d);
      linear(`${k}.attn.proj`, d, d);
      linear(`${k}.mlp.fc1`, sizes.vitMlp[b], d);
      linear(`${k}.mlp.fc2`, d, sizes.vitMlp[b]);
      if (b === 0) {
        add(`${k}.ls1.scale_factor`, [d], 0.1, 0.5);
        add(`${k}.ls2.scale_factor`, [d], 0.1, 0.5);
      }
    }
    add(`${p}.norm.weight`, [d], 0.1, 1);
    add(`${p}.norm.bias`, [d], 0.02);
  });
  const visionWidth = sizes.vitWidths[0] + sizes.vitWidths[1];
  linear('projector.fc1', 4 * visionWidth, visionWidth);
  linear('projector.fc2', sizes.llmHidden, 4 * visionWidth);
  linear('projector.fc3', sizes.llmHidden, sizes.llmHidden);
  const h = sizes.llmHidden;
  const headDim = h / sizes.llmHeads;
  add('language_model.model.embed_tokens.weight', [sizes.vocabSize, h], 1);
  for (let i = 0; i < sizes.llmLayers; i++) {
    const k = `language_model.model.layers.${i}`;
    add(`${k}.input_layernorm.weight`, [h], 0.1, 1);
    add(`${k}.post_attention_layernorm.weight`, [h], 0.1, 1);
    linear(`${k}.self_attn.q_proj`, h, h, false);
    linear(`${k}.self_attn.k_proj`, sizes.llmKvHeads * headDim, h, false);
    linear(`${k}.self_attn.v_proj`, sizes.llmKvHeads * headDim, h, false);
    linear(`${k}.self_attn.o_proj`, h, h, false);
    linear(`${k}.mlp.gate_proj`, sizes.llmIntermediate, h, false);
    linear(`${k}.mlp.up_proj`, sizes.llmIntermediate, h, false);
    linear(`${k}.mlp.down_proj`, h, sizes.llmIntermediate, false);
  }
  add('language_model.model.norm.weight', [h], 0.1, 1);
  linear('language_model.lm_head', sizes.vocabSize, h, false);

  fs.mkdirSync(dir, { recursive: true });
  writeShards(dir, specs, options);
  const stats = (v: number) => Array(7).fill(v);
  const config = {
    architectures: ['OpenVLAForActionPrediction'],
    model_type: 'openvla',
    use_fused_vision_backbone: true,
    timm_model_ids: ['vit_large_patch14_reg4_dinov2.lvd142m', 'vit_so400m_patch14_siglip_224'],
    image_sizes: [sizes.imageSize, sizes.imageSize],
    image_resize_strategy: 'resize-naive',
    pad_token_id: 32000,
    pad_to_multiple_of: 64,
    n_action_bins: 256,
    norm_stats: {
      synthetic: {
        action: { q01: stats(-0.5), q99: stats(0.5), mask: [true, true, true, true, true, true, false], mean: stats(0), std: stats(1), min: stats(-1), max: stats(1) },
      },
    },
    text_config: {
      model_type: 'llama', vocab_size: sizes.vocabSize, hidden_size: h, intermediate_size: sizes.llmIntermediate,
      num_hidden_layers: sizes.llmLayers, num_attention_heads: sizes.llmHeads, num_key_value_heads: sizes.llmKvHeads,
      head_dim: headDim, rms_norm_eps: 1e-6, rope_parameters: { rope_theta: 10000, rope_type: 'default' }, bos_token_id: 1, eos_token_id: 2,
    },
    timm_model_overrides: sizes.vitHeads.map((heads, i) => ({ embed_dim: sizes.vitWidths[i], depth: sizes.vitDepths[i] + 1, num_heads: heads })),
  };
  fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(config, null, 1));
  const normalize = [{ mean: [0.484375, 0.455078125, 0.40625], std: [0.228515625, 0.2236328125, 0.224609375] }, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }];
  const preprocessor = {
    image_processor_type: 'PrismaticImageProcessor',
    image_resize_strategy: 'resize-naive',
    use_fused_vision_backbone: true,
    input_sizes: [[3, sizes.imageSize, sizes.imageSize], [3, sizes.imageSize, sizes.imageSize]],
    interpolations: ['bicubic', 'bicubic'],
    means: [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]],
    stds: [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]],
    tvf_normalize_params: normalize.map((n) => ({ ...n, inplace: false })),
    tvf_do_letterbox: false,
  };
  fs.writeFileSync(nodePath.join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessor, null, 1));
}
