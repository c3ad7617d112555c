// Policies for runner tests, loadable by module path inside worker threads (createPolicyFactory(options)).
import type { Env, Policy } from '../../src/sim/types.js';
import type { FakeEnv } from './fake-env.js';

export type FakeBehaviour = 'expert' | 'nan' | 'six' | 'throw' | 'strings';

export interface FakePolicyOptions {
  /** how the policy misbehaves on `badSeed` (every other episode gets the expert) */
  behaviour?: FakeBehaviour;
  badSeed?: number;
  /** misbehave from this step on */
  badStep?: number;
  /** act with a fixed offset on x and report the clean command as the label (a noisy expert with DART labels) */
  labelledOffset?: number;
}

/** Proportional controller on the fake env's privileged target; the gripper closes when near. */
export function fakeExpert(env: Env): Policy {
  const fake = env as FakeEnv;
  return {
    act() {
      const delta = fake.target.map((t, d) => (t - fake.position[d]) / 0.1);
      const near = Math.hypot(...delta) < 1;
      return [...delta.map((v) => Math.max(-1, Math.min(1, v))), 0, 0, 0, near ? 1 : -1];
    },
  };
}

export function misbehaving(env: Env, options: FakePolicyOptions): Policy {
  const expert = fakeExpert(env);
  const behaviour = env.seed === options.badSeed ? (options.behaviour ?? 'expert') : 'expert';
  return {
    act(observation) {
      const action = expert.act(observation) as number[];
      if (observation.step < (options.badStep ?? 0)) return action;
      switch (behaviour) {
        case 'nan':
          return [...action.slice(0, 6), Number.NaN];
        case 'six':
          return action.slice(0, 6);
        case 'throw':
          throw new Error('policy exploded');
        case 'strings':
          return action.map(String) as unknown as number[];
        default:
          return action;
      }
    },
  };
}

/** The fake expert, acting `offset` off on x and labelling each step with its clean command. */
export function labelledExpert(env: Env, offset: number): Policy {
  const expert = fakeExpert(env);
  let clean: number[] | undefined;
  return {
    act(observation) {
      clean = expert.act(observation) as number[];
      return [Math.max(-1, Math.min(1, clean[0] + offset)), ...clean.slice(1)];
    },
    label: () => clean,
  };
}

export function createPolicyFactory(options: FakePolicyOptions = {}) {
  return (env: Env) => (options.labelledOffset !== undefined ? labelledExpert(env, options.labelledOffset) : misbehaving(env, options));
}
