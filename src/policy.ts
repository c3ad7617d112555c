// The one place that turns (checkpoint directory, variant string) into a runnable policy. Every command that runs
// a policy (act, compare, bench, eval, serve, sim run --policy model) goes through loadPolicy, so a variant means
// the same configuration everywhere. Quantization parts are applied at load (src/quant), pruning parts at each
// prediction (src/prune).
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from './errors.js';
import type { RgbImage } from './io/image.js';
import { readJsonFile } from './io/json.js';
import { OpenVla, type PredictInput, type PredictResult } from './models/openvla.js';
import { checkPruneLayer, createPruner, pruneConfig, pruningMask, type PruneConfig, type PruningReport, type RobotContext } from './prune/index.js';
import { quantizeLlama, specFromVariant, specName, withDecoder, type QuantizationSpec } from './quant/apply.js';
import { calibrationPrefixes, type CalibrationSample } from './quant/calibration.js';
import { quantizeAtLoadDecoder, readQuantizationConfig, storedDecoderLoader } from './quant/checkpoint.js';
import type { Backend } from './tensor/backend.js';
import { parseVariant, type Variant } from './variant.js';

export interface LoadPolicyOptions {
  backend: Backend;
  /** tensors read so far / total, for a progress bar */
  onProgress?: (done: number, total: number) => void;
  /**
   * Calibration samples for a `gptq` variant on a float checkpoint. Commands get the default (rendered testbed
   * frames) or --calib from src/cli/calibration.ts; without them such a variant is refused with a clear message.
   */
  calibration?: CalibrationSample[];
  /** weight group size for quantize-at-load (0 = per output channel; default 0) */
  groupSize?: number;
  /** activation clip ratio for quantize-at-load (default 1) */
  clipRatio?: number;
  /** 8: quantize lm_head to int8 per output channel as well (quantize --lm-head w8); default: as stored */
  lmHeadBits?: 8;
  /** pruning settings beyond the variant's METHOD@KEEP: layer K, sqap share and radius, seed (defaults otherwise) */
  prune?: Partial<Omit<PruneConfig, 'method' | 'keep'>>;
  /**
   * A policy loaded earlier from the same directory: when its variant differs from this one only in pruning (the
   * weights are the same), its model is reused instead of loading (and quantizing) the checkpoint again.
   */
  reuse?: LoadedPolicy;
}

/** What the weights of a variant depend on: everything but its pruning part. */
export function weightsKey(v: Variant): string {
  return JSON.stringify([v.quant ?? null, v.had, v.gptq]);
}

/** One step's input: the model's, plus what the robot knows about itself (for sqap's end-effector protection). */
export interface PolicyInput extends PredictInput {
  robot?: RobotContext;
}

export interface PolicyResult extends PredictResult {
  /** the pruning decision of this step (variants with a pruning part) */
  pruning?: PruningReport;
  /** the input image with dropped patches darkened and the protected ring outlined (variants with a pruning part) */
  pruningMask?(image: RgbImage): RgbImage;
}

export interface LoadedPolicy {
  variant: Variant;
  model: OpenVla;
  /** the quantization the decoder runs with (stored in the checkpoint or applied at load); undefined = as stored float */
  quantization?: QuantizationSpec;
  /** the resolved pruning configuration (variants with a pruning part) */
  prune?: PruneConfig;
  /** one policy step with this variant's configuration */
  predict(input: PolicyInput): PolicyResult;
}

export function loadPolicy(dir: string, variant: Variant | string, options: LoadPolicyOptions): LoadedPolicy {
  const v = typeof variant === 'string' ? parseVariant(variant) : variant;
  // Parts land as their subsystems do; until then a variant that needs one is refused with a clear message.
  // Pruning: validate the options before the (possibly long) load, the layer against the model after it.
  const prune = v.prune ? pruneConfig(v.prune.method, v.prune.keep, options.prune) : undefined;
  const { model, quantization } =
    options.reuse && weightsKey(options.reuse.variant) === weightsKey(v) ? options.reuse : loadModel(dir, v, options);
  if (!prune) return { variant: v, model, quantization, predict: (input) => model.predictAction(input) };
  checkPruneLayer(prune.layer, model.llm.config.layers);
  return {
    variant: v,
    model,
    quantization,
    prune,
    predict(input) {
      const pruner = createPruner(prune, input.robot, inputImageSize(model, input));
      const result = model.predictAction({ ...input, pruner });
      const decision = pruner.selection();
      return {
        ...result,
        pruning: pruner.report(),
        pruningMask: decision && ((image) => pruningMask(image, decision.grid, decision.selection.kept, decision.selection.ring, decision.eef)),
      };
    },
  };
}

/** The quantization a checkpoint directory stores (config.json `quantization_config`), if any. */
export function storedQuantization(dir: string): QuantizationSpec | undefined {
  const configPath = nodePath.join(dir, 'config.json');
  if (!fs.existsSync(configPath)) return undefined;
  return readQuantizationConfig(readJsonFile(configPath, 'model config') as Record<string, unknown>, configPath);
}

/** Whether loading `variant` from `dir` quantizes with GPTQ at load (and so needs calibration samples). */
export function needsCalibration(dir: string, variant: Variant | string): boolean {
  const v = typeof variant === 'string' ? parseVariant(variant) : variant;
  return v.gptq && !storedQuantization(dir);
}

/**
 * The model with the variant's quantization: a quantized checkpoint as stored ('base' or the variant it was written
 * with); a float one quantized at load (RTN tensor by tensor, or GPTQ on the calibration samples) or as stored.
 */
function loadModel(dir: string, v: Variant, options: LoadPolicyOptions): { model: OpenVla; quantization?: QuantizationSpec } {
  const { backend, onProgress } = options;
  const stored = storedQuantization(dir);
  if (stored) {
    const asked = specFromVariant(v);
    if (asked && specName(asked) !== specName(stored)) {
      throw new UserError(`${dir} is quantized as '${specName(stored)}'; run it as 'base' or '${specName(stored)}', or quantize the float checkpoint to '${specName(asked)}'`);
    }
    return { model: OpenVla.load(dir, backend, { onProgress, loadDecoder: storedDecoderLoader(stored, backend) }), quantization: stored };
  }
  const quantization = specFromVariant(v, { groupSize: options.groupSize, clipRatio: options.clipRatio, lmHeadBits: options.lmHeadBits });
  if (!quantization) return { model: OpenVla.load(dir, backend, { onProgress }) };
  if (!quantization.gptq) return { model: OpenVla.load(dir, backend, { onProgress, loadDecoder: quantizeAtLoadDecoder(quantization, backend) }), quantization };
  if (!options.calibration?.length) {
    throw new UserError(`variant '${v.name}' quantizes with GPTQ and needs calibration samples: quantize the checkpoint first (sqap-vla quantize), or use a command that takes --calib`);
  }
  const float = OpenVla.load(dir, backend, { onProgress });
  return { model: withDecoder(float, quantizeLlama(float.llm, quantization, calibrationPrefixes(float, options.calibration))), quantization };
}

/** The size an end-effector pixel refers to: the input image's, or the model's input size for ready pixel values. */
function inputImageSize(model: OpenVla, input: PredictInput): { width: number; height: number } {
  if (input.image) return { width: input.image.width, height: input.image.height };
  const { width, height } = model.preprocessor.backbones[0];
  return { width, height };
}
