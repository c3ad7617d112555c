// OpenVLA's image processor (Prismatic `PrismaticImageProcessor.apply_transform`) driven by the checkpoint's
// preprocessor_config.json: resize -> [0,1] -> per-backbone normalize -> stack the backbones on the channel axis.
//
// Only 'resize-naive' is supported (what every released OpenVLA checkpoint uses): the image is resized straight to
// each backbone's input size with Pillow bicubic, so the centre crop that follows is the identity. Arithmetic
// follows torch float32: x / 255, then (x - mean) / std, each step rounded to float32.
import { UserError } from '../errors.js';
import { oneLine } from '../io/json.js';
import { resizeBicubicPillow } from '../io/resize.js';
import type { RgbImage } from '../io/image.js';
import { allocF32 } from '../tensor/arena.js';

export type ResizeStrategy = 'resize-naive';

export interface BackboneTransform {
  /** input height and width in pixels */
  height: number;
  width: number;
  /** per-channel RGB mean and std, as float32 values (the reference rounds them to bf16 first) */
  mean: [number, number, number];
  std: [number, number, number];
}

export interface PreprocessorConfig {
  resizeStrategy: ResizeStrategy;
  /** one entry per vision backbone, in channel order (DINOv2 then SigLIP for the fused OpenVLA backbone) */
  backbones: BackboneTransform[];
}

const SOURCE = 'preprocessor_config.json';

/** Largest backbone input side accepted (OpenVLA's ViTs take 224 or 384; the checkpoint check pins the exact size). */
export const MAX_INPUT_SIDE = 2048;

let source = SOURCE;

function fail(message: string): never {
  throw new UserError(`Invalid ${source}: ${message}`);
}

function show(value: unknown): string {
  return oneLine(JSON.stringify(value) ?? String(value), 80);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function rgbTriple(value: unknown, what: string): [number, number, number] {
  if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    fail(`${what} must be a list of 3 numbers, got ${show(value)}.`);
  }
  return [value[0], value[1], value[2]];
}

/** torchvision / PIL codes for bicubic: the string name, InterpolationMode's value 'bicubic', PIL.Image.BICUBIC = 3. */
function isBicubic(value: unknown): boolean {
  return value === 'bicubic' || value === 3;
}

/** Validate a parsed preprocessor_config.json (Hugging Face Prismatic/OpenVLA layout). */
export function parsePreprocessorConfig(json: unknown, path = SOURCE): PreprocessorConfig {
  source = path;
  if (!isRecord(json)) fail('expected a JSON object.');
  const strategy = json.image_resize_strategy;
  if (strategy !== 'resize-naive') {
    fail(`image_resize_strategy ${show(strategy)} is not supported (only "resize-naive").`);
  }
  if (json.tvf_do_letterbox === true) fail('tvf_do_letterbox = true is not supported with "resize-naive".');

  const inputSizes = json.input_sizes;
  if (!Array.isArray(inputSizes) || inputSizes.length === 0) fail('input_sizes must be a non-empty list of [3, H, W].');
  const count = inputSizes.length;
  if (json.use_fused_vision_backbone === true && count !== 2) {
    fail(`use_fused_vision_backbone is true but input_sizes has ${count} entries (expected 2).`);
  }

  const interpolations = json.interpolations;
  if (interpolations !== undefined) {
    if (!Array.isArray(interpolations) || interpolations.length !== count) {
      fail(`interpolations must list one entry per backbone (${count}).`);
    }
    interpolations.forEach((v, i) => {
      if (!isBicubic(v)) fail(`interpolations[${i}] = ${show(v)} is not supported (only "bicubic").`);
    });
  }
  const resizeParams = json.tvf_resize_params;
  if (Array.isArray(resizeParams)) {
    resizeParams.forEach((p, i) => {
      if (isRecord(p) && p.interpolation !== undefined && !isBicubic(p.interpolation)) {
        fail(`tvf_resize_params[${i}].interpolation = ${show(p.interpolation)} is not supported (only bicubic = 3).`);
      }
    });
  }

  // Prefer the normalize params torchvision actually received (bf16-rounded in OpenVLA) over the nominal stats.
  const normalize = json.tvf_normalize_params;
  const useTvf = Array.isArray(normalize);
  if (useTvf && normalize.length !== count) fail(`tvf_normalize_params must have ${count} entries.`);
  if (!useTvf && (!Array.isArray(json.means) || !Array.isArray(json.stds))) {
    fail('needs tvf_normalize_params or means and stds.');
  }
  if (!useTvf && ((json.means as unknown[]).length !== count || (json.stds as unknown[]).length !== count)) {
    fail(`means and stds must have ${count} entries.`);
  }

  const backbones = inputSizes.map((size, i): BackboneTransform => {
    if (!Array.isArray(size) || size.length !== 3 || size[0] !== 3 || !size.every((d) => Number.isInteger(d) && d > 0 && d <= MAX_INPUT_SIDE)) {
      fail(`input_sizes[${i}] must be [3, H, W] with integers H, W from 1 to ${MAX_INPUT_SIDE}, got ${oneLine(JSON.stringify(size) ?? String(size), 60)}.`);
    }
    let mean: [number, number, number];
    let std: [number, number, number];
    if (useTvf) {
      const p = normalize[i];
      if (!isRecord(p)) fail(`tvf_normalize_params[${i}] must be an object with mean and std.`);
      mean = rgbTriple(p.mean, `tvf_normalize_params[${i}].mean`);
      std = rgbTriple(p.std, `tvf_normalize_params[${i}].std`);
    } else {
      mean = rgbTriple((json.means as unknown[])[i], `means[${i}]`);
      std = rgbTriple((json.stds as unknown[])[i], `stds[${i}]`);
    }
    if (std.some((s) => s === 0)) fail(`std of backbone ${i} contains 0.`);
    return {
      height: size[1],
      width: size[2],
      mean: mean.map(Math.fround) as [number, number, number],
      std: std.map(Math.fround) as [number, number, number],
    };
  });
  const { height, width } = backbones[0];
  if (backbones.some((b) => b.height !== height || b.width !== width)) {
    fail(`all backbones must share one input size to stack channels, got ${show(inputSizes)}.`);
  }
  return { resizeStrategy: 'resize-naive', backbones };
}

/**
 * image RGB8 -> pixel values [1, 3 * backbones, H, W] float32 (channels of backbone 0, then backbone 1, ...).
 */
export function preprocessImage(image: RgbImage, config: PreprocessorConfig): Float32Array {
  const { height, width } = config.backbones[0];
  const resized = resizeBicubicPillow(image, width, height);
  const plane = height * width;
  // to_tensor: [3, H, W] in [0, 1], float32
  const unit = allocF32(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) unit[c * plane + p] = resized.data[p * 3 + c] / 255;
  }
  const out = allocF32(config.backbones.length * 3 * plane);
  config.backbones.forEach((backbone, b) => {
    for (let c = 0; c < 3; c++) {
      const mean = backbone.mean[c];
      const std = backbone.std[c];
      const offset = (b * 3 + c) * plane;
      for (let p = 0; p < plane; p++) out[offset + p] = Math.fround(unit[c * plane + p] - mean) / std;
    }
  });
  return out;
}
