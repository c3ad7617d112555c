// A checkpoint as a simulator policy: each control step, the observation's instruction (OpenVLA's prompt through
// the checkpoint's tokenizer, as `act --instruction` builds it; cached per instruction) and its agent-view image go
// through loadPolicy(dir, variant) — the same seam as every other command — and the un-normalized 7-D action comes
// back. The policy sees only what a real robot has: the camera image, the instruction, and (for pruning: SQAP's
// protected ring) its own end-effector position (observation.eePosition) and the calibrated camera
// (observation.camera); never object poses.
//
// `createPolicyFactory` is the module-policy entry of the episode runner (src/sim/runner.ts): it loads the model
// once per thread that runs episodes (the main thread with --workers 1, the default for `sim run --policy model`,
// else each worker thread) and hands every episode of that thread a light policy over the same weights.
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { chooseUnnormKey } from '../models/action-tokenizer.js';
import { instructionInputIds } from '../models/prompt.js';
import { loadTokenizer, type Tokenizer } from '../models/tokenizer.js';
import { loadPolicy, type LoadedPolicy } from '../policy.js';
import type { PolicyFactory } from '../sim/runner.js';
import type { BatchPolicy, PatchOverlay } from './lockstep.js';
import type { Action, Observation, Policy } from '../sim/types.js';
import { getBackend, type BackendName } from '../tensor/backends/index.js';

/** This module's path, for runner specs ({ module: MODEL_POLICY_MODULE, options }). */
export const MODEL_POLICY_MODULE = fileURLToPath(import.meta.url);

/** Options of createPolicyFactory; structured-cloneable so they cross into worker threads. */
export interface ModelPolicyOptions {
  /** checkpoint directory (HF layout) */
  model: string;
  /** variant string, default 'base' */
  variant?: string;
  backend?: BackendName;
  /** dataset statistics for un-normalization; needed when the checkpoint has several */
  unnormKey?: string;
  /** give the model this instruction instead of each task's own (the instruction-swap test: does it listen?) */
  instruction?: string;
}

/** Per-step latency in milliseconds as the model reports it (prefill/decode once the model splits llm). */
export interface StepTimingsMs {
  vision: number;
  llm: number;
  total: number;
  prefill?: number;
  decode?: number;
  /** choosing and gathering the kept tokens (part of prefill) */
  pruning?: number;
}

/** The loaded model plus the per-instruction prompt cache; shared by every episode of one thread. */
export class ModelPolicy {
  private readonly promptCache = new Map<string, number[]>();
  readonly unnormKey: string;

  constructor(
    readonly loaded: LoadedPolicy,
    private readonly tokenizer: Tokenizer,
    unnormKey?: string,
  ) {
    // checked at load, so a wrong key is one error for the run rather than one failed episode per task
    this.unnormKey = chooseUnnormKey(loaded.model.config.normStats, unnormKey);
  }

  static load(options: ModelPolicyOptions): ModelPolicy {
    const backend = getBackend(options.backend ?? 'auto');
    const loaded = loadPolicy(options.model, options.variant ?? 'base', { backend });
    return new ModelPolicy(loaded, loadTokenizer(options.model), options.unnormKey);
  }

  get variantName(): string {
    return this.loaded.variant.name;
  }

  /** OpenVLA prompt ids for an instruction (BOS first, the space piece last), computed once per instruction. */
  promptIds(instruction: string): number[] {
    let ids = this.promptCache.get(instruction);
    if (!ids) {
      ids = instructionInputIds(this.tokenizer, instruction);
      const vocab = this.loaded.model.llm.config.vocabSize;
      const outside = ids.find((id) => id >= vocab);
      if (outside !== undefined) {
        throw new UserError(
          `the prompt of '${instruction}' has token id ${outside}, outside the model's vocabulary of ${vocab}: ` +
            `${this.loaded.model.path} needs a tokenizer.json that matches it`,
        );
      }
      this.promptCache.set(instruction, ids);
    }
    return ids;
  }

  /**
   * One policy step on one observation: the 7-D action (env units), the model's timings and, for pruned variants,
   * the overlay of what it kept. The robot context is the robot's own end-effector position and calibrated camera.
   */
  step(observation: Observation): { action: Action; timingsMs: StepTimingsMs; overlay?: PatchOverlay } {
    const [x, y, z] = observation.eePosition;
    const result = this.loaded.predict({
      image: observation.image,
      inputIds: this.promptIds(observation.instruction),
      unnormKey: this.unnormKey,
      robot: { eef: [x, y, z], camera: observation.camera },
    });
    return {
      action: Array.from(result.action),
      timingsMs: { ...result.timingsMs },
      ...(result.pruningMask ? { overlay: result.pruningMask } : {}),
    };
  }

  /**
   * The eval harness's view: one call for the B observations of a lockstep batch. There is no batched forward in
   * the model yet, so the B sequences run one after another (docs/evaluation.md has the measurement).
   */
  batchPolicy(): BatchPolicy {
    return {
      actBatch: (items) => {
        const steps = items.map((item) => this.step(item.observation));
        return { actions: steps.map((s) => s.action), timingsMs: steps.map((s) => s.timingsMs), masks: steps.map((s) => s.overlay) };
      },
    };
  }

  /** A sim Policy over this model; `onStep` sees every step's timings (the eval harness collects them). */
  policy(onStep?: (timingsMs: StepTimingsMs) => void): Policy {
    return {
      act: (observation) => {
        const { action, timingsMs } = this.step(observation);
        onStep?.(timingsMs);
        return action;
      },
    };
  }
}

/** Runner entry: loads the model once for this thread; every episode gets a policy over it. */
export function createPolicyFactory(options: ModelPolicyOptions): PolicyFactory {
  if (!options || typeof options.model !== 'string') throw new UserError('the model policy needs options.model (a checkpoint directory)');
  const model = ModelPolicy.load(options);
  const instruction = options.instruction;
  if (instruction === undefined) return () => model.policy();
  if (typeof instruction !== 'string' || instruction.trim() === '') throw new UserError('the model policy\'s instruction must be non-empty text');
  const policy = model.policy();
  return () => ({ act: (observation) => policy.act({ ...observation, instruction }) });
}
