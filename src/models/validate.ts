// Load-time validation of an OpenVLA checkpoint: config.json's fields (type, sign, integrality, range) and every
// tensor the model will read (shape and dtype from the config and the other tensors), from the safetensors headers
// alone, before any tensor is read or any compute runs. The model loaders keep their own checks as internal
// assertions; a user's mistake is reported here first, as one UserError naming the file, the field or tensor,
// what was expected and what was found.
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { checkImageSize } from '../io/image.js';
import type { DType } from '../tensor/dtype.js';
import type { OpenVla, PredictInput } from './openvla.js';

/** What validation needs of a checkpoint: names and header entries (the Checkpoint class has these). */
export interface TensorHeaders {
  has(name: string): boolean;
  info(name: string): { dtype: DType; shape: readonly number[]; file: string };
}

/** Most action bins a checkpoint may declare (OpenVLA uses 256; the bins must also fit in the vocabulary). */
export const MAX_ACTION_BINS = 65536;
/** Largest model dimension accepted from a config field (hidden sizes, heads, vocabulary, positions). */
export const MAX_CONFIG_DIMENSION = 1 << 24;

const FLOAT_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}

/** A checker for one JSON file: every message starts with the file's path. */
class FieldChecker {
  constructor(readonly file: string) {}

  fail(field: string, expected: string, found: unknown): never {
    throw new UserError(`${this.file}: ${field} must be ${expected}, found ${show(found)}.`);
  }

  /** A positive integer (or, with `allowZero`, a non-negative one) at most `max`; undefined stays undefined. */
  integer(value: unknown, field: string, options: { min?: number; max?: number; optional?: boolean } = {}): number | undefined {
    const { min = 1, max = MAX_CONFIG_DIMENSION, optional = false } = options;
    if (value === undefined && optional) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(field, `an integer from ${min} to ${max}`, value);
    }
    return value;
  }

  positive(value: unknown, field: string, options: { max?: number; optional?: boolean } = {}): number | undefined {
    const { max = Number.MAX_VALUE, optional = false } = options;
    if (value === undefined && optional) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) this.fail(field, `a finite number > 0${max < Number.MAX_VALUE ? ` and <= ${max}` : ''}`, value);
    return value;
  }
}

/** The limits a loaded model's prompt must respect (from config.json). */
export interface PromptLimits {
  /** text_config.max_position_embeddings: prompt + image patches + generated tokens */
  maxPositions?: number;
  /** llm_max_length: prompt tokens, as OpenVLA's tokenizer truncates */
  maxPromptTokens?: number;
}

/**
 * Checks config.json of an OpenVLA checkpoint before it is parsed: field types, signs, integrality and ranges,
 * and the normalization statistics. `actionDims` is the number of action tokens the model decodes.
 */
export function checkOpenVlaConfigJson(json: unknown, file: string, actionDims: number): PromptLimits {
  const c: FieldChecker = new FieldChecker(file);
  if (!isRecord(json)) c.fail('the file', 'a JSON object', json);
  const ids = json.timm_model_ids;
  if (!Array.isArray(ids) || ids.length < 1 || ids.length > 2 || !ids.every((id) => typeof id === 'string' && id.length > 0)) {
    c.fail('timm_model_ids', 'a list of 1 or 2 timm model names (strings)', ids);
  }
  const text = json.text_config;
  if (!isRecord(text)) c.fail('text_config', 'an object (the Llama config)', text);
  const vocab = c.integer(text.vocab_size, 'text_config.vocab_size')!;
  for (const key of ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_key_value_heads', 'head_dim']) {
    c.integer(text[key], `text_config.${key}`, { optional: true });
  }
  const heads = c.integer(text.num_attention_heads, 'text_config.num_attention_heads')!;
  const kvHeads = c.integer(text.num_key_value_heads, 'text_config.num_key_value_heads', { optional: true }) ?? heads;
  if (heads % kvHeads !== 0) c.fail('text_config.num_attention_heads', `a multiple of num_key_value_heads (${kvHeads})`, heads);
  const hidden = text.hidden_size as number | undefined;
  if (hidden !== undefined && text.head_dim === undefined && hidden % heads !== 0) {
    c.fail('text_config.num_attention_heads', `a divisor of hidden_size (${hidden}) when head_dim is not given`, heads);
  }
  c.positive(text.rms_norm_eps, 'text_config.rms_norm_eps', { max: 1, optional: true });
  const rope = text.rope_parameters;
  if (rope !== undefined && rope !== null && !isRecord(rope)) c.fail('text_config.rope_parameters', 'an object', rope);
  if (isRecord(rope) && rope.rope_theta !== undefined) c.positive(rope.rope_theta, 'text_config.rope_parameters.rope_theta');
  else c.positive(text.rope_theta, 'text_config.rope_theta', { optional: true });
  for (const key of ['bos_token_id', 'eos_token_id']) {
    if (typeof text[key] === 'number') c.integer(text[key], `text_config.${key}`, { min: 0, max: vocab - 1 });
  }
  const maxPositions = c.integer(text.max_position_embeddings, 'text_config.max_position_embeddings', { optional: true });
  const maxPromptTokens = c.integer(json.llm_max_length, 'llm_max_length', { optional: true });

  const padTo = c.integer(json.pad_to_multiple_of, 'pad_to_multiple_of', { min: 0, max: vocab - 1, optional: true }) ?? 0;
  const realVocab = vocab - padTo;
  const bins = c.integer(json.n_action_bins, 'n_action_bins', { min: 2, max: MAX_ACTION_BINS, optional: true }) ?? 256;
  if (bins > realVocab) {
    c.fail('n_action_bins', `at most the real vocabulary (text_config.vocab_size ${vocab} - pad_to_multiple_of ${padTo} = ${realVocab}), as the bins are its last ids`, bins);
  }
  checkNormStats(c, json.norm_stats, actionDims);
  return { ...(maxPositions ? { maxPositions } : {}), ...(maxPromptTokens ? { maxPromptTokens } : {}) };
}

function checkNormStats(c: FieldChecker, normStats: unknown, dims: number): void {
  if (normStats === undefined) return; // un-normalization then fails with its own message when asked for
  if (!isRecord(normStats)) c.fail('norm_stats', 'an object {dataset name: statistics}', normStats);
  for (const [key, entry] of Object.entries(normStats)) {
    const at = `norm_stats.${key}`;
    if (!isRecord(entry)) c.fail(at, 'an object with "action" statistics', entry);
    const action = entry.action;
    if (!isRecord(action)) c.fail(`${at}.action`, 'an object with q01, q99 (and mask)', action);
    for (const field of ['q01', 'q99']) {
      const values = action[field];
      if (!Array.isArray(values) || values.length !== dims || !values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        c.fail(`${at}.action.${field}`, `a list of ${dims} finite numbers`, values);
      }
    }
    const mask = action.mask;
    if (mask !== undefined && (!Array.isArray(mask) || mask.length !== dims || !mask.every((m) => typeof m === 'boolean'))) {
      c.fail(`${at}.action.mask`, `a list of ${dims} booleans`, mask);
    }
  }
}

/** ViT head counts (from the config or the timm name table) must divide the width; checked with the tensors. */
function checkHeads(c: FieldChecker, heads: unknown, index: number): number {
  return c.integer(heads, `the head count of vision backbone ${index} (timm overrides num_heads or its timm model)`, { max: 4096 })!;
}

/** A tensor check against a header: present, a float dtype, and the expected shape (undefined = any size). */
class TensorChecker {
  constructor(
    readonly headers: TensorHeaders,
    readonly description: string,
  ) {}

  fileOf(name: string): string {
    return this.headers.info(name).file;
  }

  expect(name: string, shape: readonly (number | undefined)[], why = ''): readonly number[] {
    if (!this.headers.has(name)) throw new UserError(`${this.description} is missing tensor '${name}'${why ? ` (${why})` : ''}.`);
    const info = this.headers.info(name);
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new UserError(`${info.file}: tensor '${name}' has dtype ${info.dtype}, expected a float weight (f32, bf16 or f16).`);
    }
    if (info.shape.length !== shape.length || shape.some((d, i) => d !== undefined && d !== info.shape[i])) {
      const expected = `[${shape.map((d) => d ?? '?').join(',')}]`;
      throw new UserError(`${info.file}: tensor '${name}' has shape [${info.shape.join(',')}], expected ${expected}${why ? ` (${why})` : ''}.`);
    }
    if (info.shape.some((d) => d === 0)) throw new UserError(`${info.file}: tensor '${name}' has an empty dimension: [${info.shape.join(',')}].`);
    return info.shape;
  }

  count(prefix: string, probe: string): number {
    let n = 0;
    while (this.headers.has(`${prefix}.${n}.${probe}`)) n++;
    return n;
  }
}

export interface VitGeometry {
  width: number;
  patchSize: number;
  /** input side in pixels: patch grid side x patch size */
  imageSize: number;
}

/** One timm ViT under `prefix` (e.g. 'vision_backbone.featurizer'): every tensor it reads, and its geometry. */
export function checkVitTensors(t: TensorChecker, prefix: string, heads: number, index: number, configFile: string): VitGeometry {
  const p = (name: string) => `${prefix}.${name}`;
  const conv = t.expect(p('patch_embed.proj.weight'), [undefined, 3, undefined, undefined], 'a 3-channel patch convolution');
  const [width, , patchSize, patchSide] = conv;
  if (patchSize !== patchSide) throw new UserError(`${t.fileOf(p('patch_embed.proj.weight'))}: tensor '${p('patch_embed.proj.weight')}' has non-square patches ${patchSize}x${patchSide}.`);
  if (width % heads !== 0) {
    throw new UserError(`${configFile}: vision backbone ${index} has width ${width} (from ${p('patch_embed.proj.weight')}), which ${heads} heads do not divide.`);
  }
  t.expect(p('patch_embed.proj.bias'), [width]);
  let prefixTokens = 0;
  if (t.headers.has(p('cls_token'))) {
    t.expect(p('cls_token'), [1, 1, width]);
    prefixTokens++;
  }
  if (t.headers.has(p('reg_token'))) prefixTokens += t.expect(p('reg_token'), [1, undefined, width])[1];
  const rows = t.expect(p('pos_embed'), [1, undefined, width])[1];
  const patches = isSquare(rows) ? rows : rows - prefixTokens;
  if (patches <= 0 || !isSquare(patches)) {
    throw new UserError(`${t.fileOf(p('pos_embed'))}: tensor '${p('pos_embed')}' has ${rows} rows, which is not a square patch grid (with or without ${prefixTokens} prefix tokens).`);
  }
  const depth = t.count(p('blocks'), 'norm1.weight');
  if (depth < 1) throw new UserError(`${t.description} has no blocks under '${p('blocks')}' (expected ${p('blocks.0.norm1.weight')} ...).`);
  for (let i = 0; i < depth; i++) {
    const b = (name: string) => p(`blocks.${i}.${name}`);
    for (const norm of ['norm1', 'norm2']) {
      t.expect(b(`${norm}.weight`), [width]);
      t.expect(b(`${norm}.bias`), [width]);
    }
    t.expect(b('attn.qkv.weight'), [3 * width, width]);
    t.expect(b('attn.qkv.bias'), [3 * width]);
    t.expect(b('attn.proj.weight'), [width, width]);
    t.expect(b('attn.proj.bias'), [width]);
    const hiddenUnits = t.expect(b('mlp.fc1.weight'), [undefined, width])[0];
    t.expect(b('mlp.fc1.bias'), [hiddenUnits]);
    t.expect(b('mlp.fc2.weight'), [width, hiddenUnits], `fc1 has ${hiddenUnits} outputs`);
    t.expect(b('mlp.fc2.bias'), [width]);
    for (const ls of ['ls1', 'ls2']) {
      for (const scale of ['scale_factor', 'gamma']) if (t.headers.has(b(`${ls}.${scale}`))) t.expect(b(`${ls}.${scale}`), [width]);
    }
  }
  t.expect(p('norm.weight'), [width]);
  t.expect(p('norm.bias'), [width]);
  return { width, patchSize, imageSize: Math.round(Math.sqrt(patches)) * patchSize };
}

/** The fused-GELU MLP projector: vision width -> LLM width through fc1, fc2, fc3. */
export function checkProjectorTensors(t: TensorChecker, prefix: string, visionWidth: number, llmWidth: number): void {
  const p = (name: string) => `${prefix}.${name}`;
  if (!t.headers.has(p('fc3.weight'))) throw new UserError(`${t.description}: only the fused GELU-MLP projector (fc1, fc2, fc3) is supported; '${p('fc3.weight')}' is missing.`);
  let inputs = visionWidth;
  ['fc1', 'fc2', 'fc3'].forEach((layer, i) => {
    const why = i === 0 ? `the vision backbones' widths sum to ${visionWidth}` : `the previous layer has ${inputs} outputs`;
    const rows = t.expect(p(`${layer}.weight`), [i === 2 ? llmWidth : undefined, inputs], i === 2 ? `the LLM width is ${llmWidth}; ${why}` : why)[0];
    t.expect(p(`${layer}.bias`), [rows], `${layer}.weight has ${rows} rows`);
    inputs = rows;
  });
}

/** A Llama decoder under `prefix` (e.g. 'language_model') against its HF text config. Returns the hidden width. */
export function checkLlamaTensors(t: TensorChecker, prefix: string, text: Json, configFile: string, options: { quantizedLinears?: boolean } = {}): number {
  const p = (name: string) => (prefix ? `${prefix}.${name}` : name);
  const vocab = text.vocab_size as number;
  const declaredHidden = text.hidden_size as number | undefined;
  const embed = t.expect(p('model.embed_tokens.weight'), [vocab, declaredHidden], `text_config.vocab_size x hidden_size in ${nodePath.basename(configFile)}`);
  const hidden = embed[1];
  const heads = text.num_attention_heads as number;
  const kvHeads = (text.num_key_value_heads as number | undefined) ?? heads;
  const headDim = (text.head_dim as number | undefined) ?? hidden / heads;
  if (!Number.isInteger(headDim)) throw new UserError(`${configFile}: text_config.num_attention_heads ${heads} does not divide the hidden width ${hidden} (and head_dim is not given).`);
  const layers = t.count(p('model.layers'), 'input_layernorm.weight');
  const declaredLayers = text.num_hidden_layers as number | undefined;
  if (layers < 1) throw new UserError(`${t.description} has no decoder layers (expected '${p('model.layers.0.input_layernorm.weight')}').`);
  if (declaredLayers !== undefined && declaredLayers !== layers) {
    throw new UserError(`${configFile}: text_config.num_hidden_layers is ${declaredLayers}, but the checkpoint has ${layers} decoder layers.`);
  }
  // A quantized checkpoint (config.json quantization_config) stores its linears as codes and scales, which the
  // quantized loader (src/quant/checkpoint.ts) checks against these shapes; the float tensors are checked here.
  const linears = !options.quantizedLinears;
  const intermediate = (text.intermediate_size as number | undefined) ?? (linears ? t.expect(p('model.layers.0.mlp.gate_proj.weight'), [undefined, hidden])[0] : 0);
  for (let i = 0; i < layers; i++) {
    const l = (name: string) => p(`model.layers.${i}.${name}`);
    t.expect(l('input_layernorm.weight'), [hidden]);
    t.expect(l('post_attention_layernorm.weight'), [hidden]);
    if (!linears) continue;
    t.expect(l('self_attn.q_proj.weight'), [heads * headDim, hidden], `num_attention_heads ${heads} x head_dim ${headDim}`);
    t.expect(l('self_attn.k_proj.weight'), [kvHeads * headDim, hidden], `num_key_value_heads ${kvHeads} x head_dim ${headDim}`);
    t.expect(l('self_attn.v_proj.weight'), [kvHeads * headDim, hidden], `num_key_value_heads ${kvHeads} x head_dim ${headDim}`);
    t.expect(l('self_attn.o_proj.weight'), [hidden, heads * headDim]);
    t.expect(l('mlp.gate_proj.weight'), [intermediate, hidden], 'intermediate_size x hidden');
    t.expect(l('mlp.up_proj.weight'), [intermediate, hidden], 'intermediate_size x hidden');
    t.expect(l('mlp.down_proj.weight'), [hidden, intermediate], 'hidden x intermediate_size');
  }
  t.expect(p('model.norm.weight'), [hidden]);
  if (linears && t.headers.has(p('lm_head.weight'))) t.expect(p('lm_head.weight'), [vocab, hidden], `as embed_tokens: text_config.vocab_size ${vocab} x ${hidden}`);
  return hidden;
}

export interface OpenVlaCheckInput {
  dir: string;
  /** config.json as parsed JSON (already through checkOpenVlaConfigJson) */
  configJson: Json;
  /** heads per vision backbone, as the model config resolved them */
  vitHeads: readonly unknown[];
  /** input side (H and W) per backbone from preprocessor_config.json */
  inputSizes: readonly { height: number; width: number }[];
  headers: TensorHeaders;
}

/** Every tensor of an OpenVLA checkpoint against config.json and preprocessor_config.json, from headers only. */
export function checkOpenVlaCheckpoint(input: OpenVlaCheckInput): void {
  const configFile = nodePath.join(input.dir, 'config.json');
  const preprocessorFile = nodePath.join(input.dir, 'preprocessor_config.json');
  const c: FieldChecker = new FieldChecker(configFile);
  const t = new TensorChecker(input.headers, `checkpoint ${input.dir}`);
  const ids = input.configJson.timm_model_ids as string[];
  const prefixes = ['vision_backbone.featurizer', 'vision_backbone.fused_featurizer'].slice(0, ids.length);
  if (input.inputSizes.length !== prefixes.length) {
    throw new UserError(`${preprocessorFile}: input_sizes has ${input.inputSizes.length} entries, but config.json names ${prefixes.length} vision backbones.`);
  }
  const vits = prefixes.map((prefix, i) => checkVitTensors(t, prefix, checkHeads(c, input.vitHeads[i], i), i, configFile));
  vits.forEach((vit, i) => {
    const { height, width } = input.inputSizes[i];
    if (height !== vit.imageSize || width !== vit.imageSize) {
      throw new UserError(
        `${preprocessorFile}: input_sizes[${i}] is [3, ${height}, ${width}], but vision backbone ${i} takes ${vit.imageSize}x${vit.imageSize} pixels (a ${vit.imageSize / vit.patchSize}x${vit.imageSize / vit.patchSize} grid of ${vit.patchSize}-pixel patches).`,
      );
    }
  });
  const quantizedLinears = input.configJson.quantization_config !== undefined && input.configJson.quantization_config !== null;
  const llmWidth = checkLlamaTensors(t, 'language_model', input.configJson.text_config as Json, configFile, { quantizedLinears });
  checkProjectorTensors(t, 'projector', vits.reduce((sum, vit) => sum + vit.width, 0), llmWidth);
}

function isSquare(n: number): boolean {
  return n >= 0 && Math.round(Math.sqrt(n)) ** 2 === n;
}

export { TensorChecker };

/** Tokens the model generates after the prompt (one per action dimension), for the position budget. */
const GENERATED_TOKENS = 7;

/** The inputs of one prediction: prompt ids in the vocabulary and within the model's positions, well-formed pixels. */
export function checkPredictInput(model: OpenVla, input: PredictInput): void {
  const ids = input.inputIds as unknown;
  const vocab = model.llm.config.vocabSize;
  if (!Array.isArray(ids) || ids.length < 1) throw new UserError('input ids are empty (give at least BOS)');
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
  if (bad !== undefined) throw new UserError(`token id ${show(bad)} is outside this model's vocabulary of ${vocab}; give ids from 0 to ${vocab - 1}`);
  const side = model.backbones[0].config.imageSize;
  const patches = (side / model.backbones[0].config.patchSize) ** 2;
  const maxPositions = (model.config.textConfig.max_position_embeddings as number | undefined) ?? Infinity;
  const positions = ids.length + patches + GENERATED_TOKENS;
  if (positions > maxPositions) {
    throw new UserError(
      `the prompt has ${ids.length} tokens; with ${patches} image patches and ${GENERATED_TOKENS} action tokens that is ${positions} positions, more than this model's max_position_embeddings of ${maxPositions}`,
    );
  }
  if (input.pixelValues !== undefined) {
    const expected = 3 * model.backbones.length * side * side;
    if (!(input.pixelValues instanceof Float32Array) || input.pixelValues.length !== expected) {
      throw new UserError(`pixel values must be a Float32Array of ${expected} values ([1, ${3 * model.backbones.length}, ${side}, ${side}]), got ${input.pixelValues?.length ?? 'none'}`);
    }
  } else if (input.image !== undefined) {
    checkImageSize(input.image.width, input.image.height, 'image');
    if (!(input.image.data instanceof Uint8Array) || input.image.data.length !== input.image.width * input.image.height * 3) {
      throw new UserError(`image data must be ${input.image.width}x${input.image.height}x3 bytes (RGB8), got ${input.image.data?.length ?? 'none'}`);
    }
  }
}
