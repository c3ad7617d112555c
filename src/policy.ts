// The one place that turns (checkpoint directory, variant string) into a runnable policy. Every command that runs
// a policy (act, compare, bench, eval, serve, sim run --policy model) goes through loadPolicy, so a variant means
// the same configuration everywhere. Quantization parts are applied at load (src/quant), pruning parts at each
// prediction (src/prune).
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from './errors.js';
import { readJsonFile } from './io/json.js';
import { OpenVla, type PredictInput, type PredictResult } from './models/openvla.js';
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
}

export interface LoadedPolicy {
  variant: Variant;
  model: OpenVla;
  /** the quantization the decoder runs with (stored in the checkpoint or applied at load); undefined = as stored float */
  quantization?: QuantizationSpec;
  /** one policy step with this variant's configuration */
  predict(input: PredictInput): PredictResult;
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

export function loadPolicy(dir: string, variant: Variant | string, options: LoadPolicyOptions): LoadedPolicy {
  const v = typeof variant === 'string' ? parseVariant(variant) : variant;
  // Parts land as their subsystems do; until then a variant that needs one is refused with a clear message.
  if (v.prune) throw new UserError(`variant '${v.name}': token pruning is not available in this build`);
  const { backend, onProgress } = options;
  const stored = storedQuantization(dir);
  let model: OpenVla;
  let quantization: QuantizationSpec | undefined;
  if (stored) {
    // A quantized checkpoint runs as stored: 'base' or the variant it was quantized to.
    const asked = specFromVariant(v);
    if (asked && (specName(asked) !== specName(stored))) {
      throw new UserError(`${dir} is quantized as '${specName(stored)}'; run it as 'base' or '${specName(stored)}', or quantize the float checkpoint to '${specName(asked)}'`);
    }
    model = OpenVla.load(dir, backend, { onProgress, loadDecoder: storedDecoderLoader(stored, backend) });
    quantization = stored;
  } else {
    quantization = specFromVariant(v, { groupSize: options.groupSize, clipRatio: options.clipRatio });
    if (!quantization) {
      model = OpenVla.load(dir, backend, { onProgress });
    } else if (!quantization.gptq) {
      model = OpenVla.load(dir, backend, { onProgress, loadDecoder: quantizeAtLoadDecoder(quantization, backend) });
    } else {
      if (!options.calibration?.length) {
        throw new UserError(`variant '${v.name}' quantizes with GPTQ and needs calibration samples: quantize the checkpoint first (sqap-vla quantize), or use a command that takes --calib`);
      }
      const float = OpenVla.load(dir, backend, { onProgress });
      model = withDecoder(float, quantizeLlama(float.llm, quantization, calibrationPrefixes(float, options.calibration)));
    }
  }
  return { variant: v, model, quantization, predict: (input) => model.predictAction(input) };
}
