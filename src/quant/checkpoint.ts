// Quantized checkpoints: the Hugging Face layout with each quantized linear stored as integer codes + scales, and
// a `quantization_config` in config.json named after compressed-tensors/llm-compressor where it fits. The layout is
// documented in docs/quantization.md ("Quantized checkpoints"); this file writes and reads it, and builds the
// decoder loaders that policy.ts hands to OpenVla.load (a stored quantized decoder, or RTN/rotation at load).
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { Checkpoint, INDEX_FILE_NAME, SINGLE_FILE_NAME } from '../io/checkpoint.js';
import { SIDE_FILES } from '../io/convert.js';
import { writeSafetensors } from '../io/safetensors.js';
import { Llama, LLAMA_LINEARS, loadLlama, type LinearReader, type LlamaLinearName } from '../models/llama.js';
import type { OpenVla } from '../models/openvla.js';
import { readWeight, type TensorSource } from '../models/weights.js';
import type { Backend, LinearWeight } from '../tensor/backend.js';
import { isPrepackedWeight, isQuantizedWeight, makeQuantizedWeight, prepackedDtype, unpackPrepacked, WEIGHT_FORMATS } from '../tensor/formats.js';
import { Tensor } from '../tensor/tensor.js';
import { normBefore, quantizeLmHead, runtimeQuantization, specName, transformLinear, type QuantizationSpec } from './apply.js';
import { DEFAULT_ROTATION_SEED, makeRotation, onesNorm, type LlamaRotation } from './rotate.js';

export const QUANT_METHOD = 'sqap-vla';
/** Name (under language_model.) of the residual rotation's signs in a rotated checkpoint. */
export const RESIDUAL_SIGNS_TENSOR = 'model.rotation.residual_signs';

const LINEAR_PATHS: Record<LlamaLinearName, string> = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj', gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
};

/** The `quantization_config` object of config.json for a spec. */
export function quantizationConfig(spec: QuantizationSpec): Record<string, unknown> {
  const activations = spec.activationBits < 16
    ? { num_bits: spec.activationBits, type: 'int', symmetric: true, strategy: 'token', dynamic: true, clip_ratio: spec.clipRatio }
    : null;
  return {
    quant_method: QUANT_METHOD,
    format: spec.weightBits === 4 ? 'pack-quantized' : spec.weightBits === 8 ? 'int-quantized' : 'dense',
    quantization_status: 'frozen',
    variant: specName(spec),
    config_groups: spec.weightBits
      ? {
          group_0: {
            targets: ['re:.*self_attn\\.(q|k|v|o)_proj$', 're:.*mlp\\.(gate|up|down)_proj$'],
            weights: {
              num_bits: spec.weightBits, type: 'int', symmetric: true,
              strategy: spec.groupSize ? 'group' : 'channel', group_size: spec.groupSize || null,
              observer: spec.gptq ? 'gptq' : 'minmax', actorder: spec.gptq && spec.actOrder ? 'dynamic' : null,
            },
            input_activations: activations,
          },
          ...lmHeadGroup(spec),
        }
      : lmHeadGroup(spec),
    kv_cache_scheme: activations ? { num_bits: spec.activationBits, type: 'int', symmetric: true, strategy: 'attn_head', dynamic: true } : null,
    ignore: [...(spec.lmHeadBits ? [] : ['lm_head']), 're:.*embed_tokens', 're:vision_backbone\\..*', 're:projector\\..*'],
    transform_config: spec.had
      ? {
          type: 'quarot', seed: spec.seed, residual_signs: `language_model.${RESIDUAL_SIGNS_TENSOR}`,
          hadamard: 'block-diagonal Sylvester, block = largest power of two dividing the width',
          online: ['decoder_input', 'decoder_output', 'down_proj_input', 'qk_after_rope'],
          fused: ['rmsnorm_into_linears', 'residual_readers_writers', 'v_o_per_head'],
        }
      : null,
  };
}

/** config_groups.group_1: lm_head in int8 per output channel, weight-only (quantize --lm-head w8); none otherwise. */
function lmHeadGroup(spec: QuantizationSpec): Record<string, unknown> {
  if (!spec.lmHeadBits) return {};
  return {
    group_1: {
      targets: ['lm_head'],
      weights: { num_bits: spec.lmHeadBits, type: 'int', symmetric: true, strategy: 'channel', group_size: null, observer: 'minmax', actorder: null },
      input_activations: null,
    },
  };
}

/** The spec a config.json records, or undefined when it has no quantization_config. One-line errors for bad ones. */
export function readQuantizationConfig(json: Record<string, unknown>, path: string): QuantizationSpec | undefined {
  const qc = json.quantization_config as Record<string, unknown> | undefined;
  if (qc === undefined || qc === null) return undefined;
  const bad = (what: string) => new UserError(`${path}: quantization_config ${what}`);
  if (typeof qc !== 'object') throw bad('must be an object');
  if (qc.quant_method !== QUANT_METHOD) throw bad(`has quant_method '${String(qc.quant_method)}'; this build reads '${QUANT_METHOD}'`);
  const groups = qc.config_groups as Record<string, Record<string, unknown>> | undefined;
  const group = groups?.group_0;
  const lmHead = groups?.group_1;
  if (lmHead !== undefined) {
    const targets = lmHead.targets;
    const lmWeights = lmHead.weights as Record<string, unknown> | undefined;
    if (!Array.isArray(targets) || targets.length !== 1 || targets[0] !== 'lm_head') throw bad(`config_groups.group_1 must target ['lm_head'], got ${JSON.stringify(targets)}`);
    if (lmWeights?.num_bits !== 8 || lmWeights.strategy !== 'channel') throw bad('config_groups.group_1 (lm_head) must be 8-bit weights per channel');
    if (lmHead.input_activations !== null && lmHead.input_activations !== undefined) throw bad('config_groups.group_1 (lm_head) quantizes weights only');
  }
  const weights = group?.weights as Record<string, unknown> | undefined;
  const activations = group?.input_activations as Record<string, unknown> | null | undefined;
  const transform = qc.transform_config as Record<string, unknown> | null | undefined;
  const weightBits = weights?.num_bits;
  if (weights && weightBits !== 4 && weightBits !== 8) throw bad(`weights.num_bits must be 4 or 8, got ${String(weightBits)}`);
  const activationBits = activations ? activations.num_bits : 16;
  if (activationBits !== 4 && activationBits !== 8 && activationBits !== 16) throw bad(`input_activations.num_bits must be 4 or 8, got ${String(activationBits)}`);
  if (activationBits !== 16 && !weights) throw bad('quantizes activations but not weights');
  const groupSize = weights?.group_size ?? 0;
  if (!Number.isInteger(groupSize) || (groupSize as number) < 0) throw bad(`weights.group_size must be a positive integer or null, got ${String(groupSize)}`);
  const clipRatio = typeof activations?.clip_ratio === 'number' ? activations.clip_ratio : 1;
  if (!(clipRatio > 0 && clipRatio <= 1)) throw bad(`input_activations.clip_ratio ${clipRatio} is outside (0, 1]`);
  return {
    weightBits: weights ? (weightBits as 4 | 8) : undefined,
    activationBits: activationBits as 4 | 8 | 16,
    had: Boolean(transform),
    gptq: weights?.observer === 'gptq',
    groupSize: groupSize as number,
    clipRatio,
    seed: typeof transform?.seed === 'number' ? transform.seed : DEFAULT_ROTATION_SEED,
    actOrder: weights?.actorder === 'dynamic',
    ...(lmHead ? { lmHeadBits: 8 as const } : {}),
  };
}

/** Decoder loader for a checkpoint written by saveQuantizedCheckpoint (codes and scales read as stored). */
export function storedDecoderLoader(spec: QuantizationSpec, backend: Backend): (source: TensorSource, textConfig: Record<string, unknown>) => Llama {
  return (source, textConfig) => {
    const readLinear: LinearReader = (name, shape) => (spec.weightBits ? readQuantizedLinear(source, name.replace(/\.weight$/, ''), shape, spec) : readWeight(source, name, shape));
    const readLmHead = spec.lmHeadBits ? (shape: [number, number]) => readQuantizedLinear(source, 'lm_head', shape, { ...spec, weightBits: 8, groupSize: 0 }) : undefined;
    const { config, weights } = loadLlama(source, textConfig, readLinear, readLmHead);
    let rotation: LlamaRotation | undefined;
    if (spec.had) {
      const signs = readWeight(source, RESIDUAL_SIGNS_TENSOR, [config.hidden]).toF32();
      if (!signs.every((s) => s === 1 || s === -1)) throw new UserError(`${source.description}: ${RESIDUAL_SIGNS_TENSOR} must hold only +1 and -1`);
      rotation = { seed: spec.seed, residual: { width: config.hidden, signs } };
    }
    return new Llama(config, weights, backend, runtimeQuantization(spec, rotation));
  };
}

/** One stored quantized linear `prefix` [N,K]: codes + weight_scale, checked against the shape and group size. */
function readQuantizedLinear(source: TensorSource, prefix: string, [n, k]: [number, number], spec: QuantizationSpec): LinearWeight {
  const where = source.description;
  const need = (name: string) => {
    if (!source.has(name)) throw new UserError(`${where}: quantized checkpoint is missing tensor '${name}'`);
    return source.read(name);
  };
  const format = spec.weightBits === 8 ? 'i8' : 'i4';
  const codes = need(spec.weightBits === 8 ? `${prefix}.weight` : `${prefix}.weight_packed`);
  const rowBytes = WEIGHT_FORMATS[format].bytesPerRow(k);
  const codesDtype = format === 'i8' ? 'i8' : 'u8';
  if (codes.dtype !== codesDtype || codes.rank !== 2 || codes.shape[0] !== n || codes.shape[1] !== rowBytes) {
    throw new UserError(`${where}: '${prefix}' codes are ${codes.dtype} [${codes.shape.join(',')}], expected ${codesDtype} [${n},${rowBytes}] for a ${format} weight [${n},${k}]`);
  }
  const scale = need(`${prefix}.weight_scale`);
  if (spec.groupSize && k % spec.groupSize !== 0) throw new UserError(`${where}: group size ${spec.groupSize} does not divide the ${k} input channels of '${prefix}'`);
  const groups = spec.groupSize ? k / spec.groupSize : 1;
  if (scale.dtype !== 'f32' || scale.rank !== 2 || scale.shape[0] !== n || scale.shape[1] !== groups) {
    throw new UserError(`${where}: '${prefix}.weight_scale' is ${scale.dtype} [${scale.shape.join(',')}], expected f32 [${n},${groups}]`);
  }
  // read fresh from a checkpoint: the native backend may pack these very arrays (one copy, nothing allocated)
  return makeQuantizedWeight(format, [n, k], k / groups, codes.data as Int8Array | Uint8Array, scale.data as Float32Array, { owned: source.freshReads === true });
}

/**
 * Decoder loader that rotates (had) and RTN-quantizes each linear as it is read, so the float weights of a large
 * checkpoint are never all in memory. (GPTQ needs the whole float decoder: see quantizeLlama.)
 */
export function quantizeAtLoadDecoder(spec: QuantizationSpec, backend: Backend): (source: TensorSource, textConfig: Record<string, unknown>) => Llama {
  if (spec.gptq) throw new Error('quantizeAtLoadDecoder: GPTQ needs calibration on the float decoder');
  return (source, textConfig) => {
    let rotation: LlamaRotation | undefined;
    const headDim = (hidden: number) => (typeof textConfig.head_dim === 'number' ? textConfig.head_dim : hidden / Number(textConfig.num_attention_heads));
    const readLinear: LinearReader = (name, shape, site, layer) => {
      const hidden = site === 'o' || site === 'down' ? shape[0] : shape[1];
      if (spec.had) rotation ??= makeRotation(hidden, spec.seed);
      const w = readWeight(source, name, shape, { transient: true }); // converted and dropped here: copied, not mapped
      const normKey = normBefore(site);
      const norm = normKey ? readWeight(source, `model.layers.${layer}.${normKey === 'inputNorm' ? 'input_layernorm' : 'post_attention_layernorm'}.weight`, [hidden]) : undefined;
      return transformLinear(site, w, norm, headDim(hidden), spec, rotation);
    };
    const readLmHead = spec.lmHeadBits
      ? (shape: [number, number]) => quantizeLmHead(readWeight(source, source.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight', shape, { transient: true }), spec)
      : undefined;
    const { config, weights } = loadLlama(source, textConfig, readLinear, readLmHead);
    const layers = rotation ? weights.layers.map((l) => ({ ...l, inputNorm: onesNorm(config.hidden), postAttentionNorm: onesNorm(config.hidden) })) : weights.layers;
    return new Llama(config, { ...weights, layers }, backend, runtimeQuantization(spec, rotation));
  };
}

/** The decoder's tensors as a quantized checkpoint stores them (names under language_model.). */
export function decoderTensors(llm: Llama): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  llm.weights.layers.forEach((layer, i) => {
    out[`model.layers.${i}.input_layernorm.weight`] = layer.inputNorm;
    out[`model.layers.${i}.post_attention_layernorm.weight`] = layer.postAttentionNorm;
    for (const site of LLAMA_LINEARS) {
      const prefix = `model.layers.${i}.${LINEAR_PATHS[site]}`;
      const w = layer[site];
      if (isPrepackedWeight(w)) {
        out[`${prefix}.weight`] = new Tensor(prepackedDtype(w), w.shape, unpackPrepacked(w));
        continue;
      }
      if (!isQuantizedWeight(w)) {
        out[`${prefix}.weight`] = w;
        continue;
      }
      const [n, k] = w.shape;
      const scales = Tensor.f32([n, k / w.groupSize], w.scales);
      if (w.format === 'i8') {
        out[`${prefix}.weight`] = new Tensor('i8', [n, k], w.codes as Int8Array);
      } else {
        out[`${prefix}.weight_packed`] = new Tensor('u8', [n, w.codes.length / n], w.codes as Uint8Array);
        out[`${prefix}.weight_shape`] = new Tensor('i64', [2], BigInt64Array.of(BigInt(n), BigInt(k)));
      }
      out[`${prefix}.weight_scale`] = scales;
    }
  });
  const head = llm.weights.lmHead;
  if (isQuantizedWeight(head)) {
    // int8 per output channel (QuantizationSpec.lmHeadBits); a float lm_head is copied from the source as stored
    out['lm_head.weight'] = new Tensor('i8', [...head.shape], head.codes as Int8Array);
    out['lm_head.weight_scale'] = Tensor.f32([head.shape[0], 1], head.scales);
  }
  const signs = llm.quantization?.rotation?.residualSigns;
  if (signs) out[RESIDUAL_SIGNS_TENSOR] = signs;
  return out;
}

/**
 * Write `model` (whose decoder was quantized with `spec`) to `outDir`: vision, projector, embeddings, final norm and
 * lm_head copied from the source checkpoint as stored, the decoder layers from memory; shards of at most
 * `maxShardBytes`; config.json with quantization_config; the side files (preprocessor, tokenizer) copied.
 */
export function saveQuantizedCheckpoint(model: OpenVla, spec: QuantizationSpec, outDir: string, options: { maxShardBytes?: number; onProgress?: (done: number, total: number) => void } = {}): { shards: number; bytes: number } {
  const fromDir = model.path;
  if (nodePath.resolve(fromDir) === nodePath.resolve(outDir)) throw new UserError('--out must differ from --model');
  if (fs.existsSync(outDir) && fs.readdirSync(outDir).length > 0) throw new UserError(`--out ${outDir} is not empty`);
  fs.mkdirSync(outDir, { recursive: true });
  const decoder = Object.fromEntries(Object.entries(decoderTensors(model.llm)).map(([k, t]) => [`language_model.${k}`, t]));
  const checkpoint = Checkpoint.open(fromDir);
  try {
    const copied = checkpoint.keys().filter((k) => !k.startsWith('language_model.model.layers.') && !(k in decoder));
    const names = [...copied, ...Object.keys(decoder)];
    const bytesOf = (name: string) => (name in decoder ? decoder[name].data.byteLength : checkpoint.info(name).byteLength);
    const maxShardBytes = options.maxShardBytes ?? 2e9;
    const shards: string[][] = [[]];
    let size = 0;
    for (const name of names) {
      if (shards[shards.length - 1].length > 0 && size + bytesOf(name) > maxShardBytes) {
        shards.push([]);
        size = 0;
      }
      shards[shards.length - 1].push(name);
      size += bytesOf(name);
    }
    const weightMap: Record<string, string> = {};
    let total = 0;
    let done = 0;
    shards.forEach((shard, i) => {
      const file = shards.length === 1 ? SINGLE_FILE_NAME : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      const tensors: Record<string, Tensor> = {};
      for (const name of shard) {
        tensors[name] = decoder[name] ?? checkpoint.read(name, { map: false }); // written and dropped: copied
        weightMap[name] = file;
        total += tensors[name].data.byteLength;
        options.onProgress?.(++done, names.length);
      }
      writeSafetensors(nodePath.join(outDir, file), tensors, { format: 'pt' });
    });
    if (shards.length > 1) fs.writeFileSync(nodePath.join(outDir, INDEX_FILE_NAME), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
    for (const side of SIDE_FILES) {
      const src = nodePath.join(fromDir, side);
      if (side !== 'config.json' && fs.existsSync(src)) fs.copyFileSync(src, nodePath.join(outDir, side));
    }
    const config = JSON.parse(fs.readFileSync(nodePath.join(fromDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    config.quantization_config = quantizationConfig(spec);
    fs.writeFileSync(nodePath.join(outDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    return { shards: shards.length, bytes: total };
  } finally {
    checkpoint.close();
  }
}
