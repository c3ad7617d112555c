// The one place that turns (checkpoint directory, variant string) into a runnable policy. Every command that runs
// a policy (act, compare, bench, eval, serve, sim run --policy model) goes through loadPolicy, so a variant means
// the same configuration everywhere. Quantization parts are applied at load (src/quant), pruning parts at each
// prediction (src/prune).
import { UserError } from './errors.js';
import type { RgbImage } from './io/image.js';
import { OpenVla, type PredictInput, type PredictResult } from './models/openvla.js';
import { checkPruneLayer, createPruner, pruneConfig, pruningMask, type PruneConfig, type PruningReport, type RobotContext } from './prune/index.js';
import type { Backend } from './tensor/backend.js';
import { parseVariant, type Variant } from './variant.js';

export interface LoadPolicyOptions {
  backend: Backend;
  /** tensors read so far / total, for a progress bar */
  onProgress?: (done: number, total: number) => void;
  /** pruning settings beyond the variant's METHOD@KEEP: layer K, sqap share and radius, seed (defaults otherwise) */
  prune?: Partial<Omit<PruneConfig, 'method' | 'keep'>>;
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
  /** the resolved pruning configuration (variants with a pruning part) */
  prune?: PruneConfig;
  /** one policy step with this variant's configuration */
  predict(input: PolicyInput): PolicyResult;
}

export function loadPolicy(dir: string, variant: Variant | string, options: LoadPolicyOptions): LoadedPolicy {
  const v = typeof variant === 'string' ? parseVariant(variant) : variant;
  // Parts land as their subsystems do; until then a variant that needs one is refused with a clear message.
  if (v.quant || v.had || v.gptq) throw new UserError(`variant '${v.name}': quantization and rotations are not available in this build`);
  // Pruning: validate the options before the (possibly long) load, the layer against the model after it.
  const prune = v.prune ? pruneConfig(v.prune.method, v.prune.keep, options.prune) : undefined;
  const model = OpenVla.load(dir, options.backend, { onProgress: options.onProgress });
  if (!prune) return { variant: v, model, predict: (input) => model.predictAction(input) };
  checkPruneLayer(prune.layer, model.llm.config.layers);
  return {
    variant: v,
    model,
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

/** The size an end-effector pixel refers to: the input image's, or the model's input size for ready pixel values. */
function inputImageSize(model: OpenVla, input: PredictInput): { width: number; height: number } {
  if (input.image) return { width: input.image.width, height: input.image.height };
  const { width, height } = model.preprocessor.backbones[0];
  return { width, height };
}
