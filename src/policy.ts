// The one place that turns (checkpoint directory, variant string) into a runnable policy. Every command that runs
// a policy (act, compare, bench, eval, serve, sim run --policy model) goes through loadPolicy, so a variant means
// the same configuration everywhere. Quantization parts are applied at load (src/quant), pruning parts at each
// prediction (src/prune).
import { UserError } from './errors.js';
import { OpenVla, type PredictInput, type PredictResult } from './models/openvla.js';
import type { Backend } from './tensor/backend.js';
import { parseVariant, type Variant } from './variant.js';

export interface LoadPolicyOptions {
  backend: Backend;
  /** tensors read so far / total, for a progress bar */
  onProgress?: (done: number, total: number) => void;
}

export interface LoadedPolicy {
  variant: Variant;
  model: OpenVla;
  /** one policy step with this variant's configuration */
  predict(input: PredictInput): PredictResult;
}

export function loadPolicy(dir: string, variant: Variant | string, options: LoadPolicyOptions): LoadedPolicy {
  const v = typeof variant === 'string' ? parseVariant(variant) : variant;
  // Parts land as their subsystems do; until then a variant that needs one is refused with a clear message.
  if (v.quant || v.had || v.gptq) throw new UserError(`variant '${v.name}': quantization and rotations are not available in this build`);
  if (v.prune) throw new UserError(`variant '${v.name}': token pruning is not available in this build`);
  const model = OpenVla.load(dir, options.backend, { onProgress: options.onProgress });
  return { variant: v, model, predict: (input) => model.predictAction(input) };
}
