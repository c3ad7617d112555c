// DAgger-style recording (Ross et al. 2011): a checkpoint drives the robot and the scripted expert labels every state
// the checkpoint reaches. Behaviour cloning on the expert's own episodes never shows the learner the states its own
// mistakes lead to (a hand a few centimetres off the cube, a gripper closed on air); here those states are recorded
// with the expert's command from them, so training on them (train --add-demos) teaches the recovery.
//
// Each step the expert (noise, shoves and drops off: its command is the label) reads the privileged state and
// computes its command; with probability `expertMix` that command is executed (a per-step mixture, DAgger's beta),
// otherwise the model's action. The runner stores the labels as the episode's expert_actions (Policy.label), which
// is what the training dataset imitates. The model still sees only the camera image and the instruction.
//
// `createPolicyFactory` is a runner module-policy entry (src/sim/runner.ts), like model-policy.ts's: the model is
// loaded once per thread, the expert is built per episode (it needs the episode's env).
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { createExpert } from '../sim/experts.js';
import { createRng } from '../sim/prng.js';
import type { PolicyFactory } from '../sim/runner.js';
import type { Action, Policy } from '../sim/types.js';
import { ModelPolicy, type ModelPolicyOptions } from './model-policy.js';

/** This module's path, for runner specs ({ module: DAGGER_POLICY_MODULE, options }). */
export const DAGGER_POLICY_MODULE = fileURLToPath(import.meta.url);

export interface DaggerPolicyOptions extends ModelPolicyOptions {
  /** per-step probability of executing the expert's command instead of the model's action (0..1, default 0) */
  expertMix?: number;
  /** the labelling expert's approach (default 'funnel', the one the bundled policy was trained on) */
  approach?: 'hover' | 'funnel';
}

export function checkDaggerOptions(options: DaggerPolicyOptions): void {
  const mix = options.expertMix ?? 0;
  if (typeof mix !== 'number' || !Number.isFinite(mix) || mix < 0 || mix > 1) {
    throw new UserError(`the expert mix must be a number from 0 to 1, got ${String(mix)}`);
  }
  if (options.approach !== undefined && options.approach !== 'hover' && options.approach !== 'funnel') {
    throw new UserError(`the labelling expert's approach must be 'hover' or 'funnel', got '${String(options.approach)}'`);
  }
}

/** Runner entry: loads the model once for this thread; every episode gets the model driving and the expert labelling. */
export function createPolicyFactory(options: DaggerPolicyOptions): PolicyFactory {
  if (!options || typeof options.model !== 'string') throw new UserError('the DAgger policy needs options.model (a checkpoint directory)');
  checkDaggerOptions(options);
  const model = ModelPolicy.load(options);
  const mix = options.expertMix ?? 0;
  const approach = options.approach ?? 'funnel';
  return (env) => {
    const expert = createExpert(env, env.seed, { actionNoise: 0, perturbationRate: 0, dropRate: 0, approach });
    // the mixture's coin is seeded by the episode, so a recording is the same for any worker count
    const coin = createRng(env.seed, `dagger:${env.task.id}`);
    let label: Action | undefined;
    const policy: Policy = {
      reset: (taskId, seed) => expert.reset?.(taskId, seed),
      act: async (observation) => {
        // the expert acts every step, whoever's action is executed: its phases follow the world the learner makes
        const command = await expert.act(observation);
        label = [...(expert.label?.() ?? command)];
        if (mix > 0 && coin.next() < mix) return command;
        return model.step(observation).action;
      },
      label: () => label,
    };
    return policy;
  };
}
