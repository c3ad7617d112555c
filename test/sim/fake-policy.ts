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

export function createPolicyFactory(options: FakePolicyOptions = {}) {
  return (env: Env) => misbehaving(env, options);
}
