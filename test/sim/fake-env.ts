// A tiny deterministic stand-in for src/sim/env.ts (same createEnv signature) so that runner and recorder tests run
// in milliseconds and without MuJoCo: a point moves by 0.1 x action[0..2] a step towards a seeded target.
import type { Action, Env, Observation, StepResult, TaskInfo } from '../../src/sim/types.js';
import { mulberry32 as random } from '../../src/random.js';

export const FAKE_TASKS: TaskInfo[] = [
  { id: 'fake_reach_near', suite: 'spatial', instruction: 'reach the near point', maxSteps: 12 },
  { id: 'fake_reach_far', suite: 'goal', instruction: 'reach the far point', maxSteps: 20 },
];
const SUCCESS_RADIUS = 0.05;
const IMAGE_SIZE = 8;


export interface FakeEnv extends Env {
  /** privileged state for the fake expert */
  target: number[];
  position: number[];
}

export async function createEnv(taskId: string, seed: number, options: { render?: boolean; imageSize?: number } = {}): Promise<FakeEnv> {
  const task = FAKE_TASKS.find((candidate) => candidate.id === taskId);
  if (!task) throw new Error(`unknown fake task ${taskId}`);
  const next = random(seed * 7919 + task.maxSteps);
  const reach = task.id === 'fake_reach_far' ? 1.0 : 0.4;
  const target = [reach * (next() - 0.5), reach * (next() - 0.5), reach * next()];
  const position = [0, 0, 0];
  const size = options.imageSize ?? IMAGE_SIZE;
  let stepCount = 0;
  let gripper = 0.08;
  const env: FakeEnv = {
    task,
    seed,
    target,
    position,
    get stepCount() {
      return stepCount;
    },
    observe(observeOptions = {}): Observation {
      const data = new Uint8Array(size * size * 3);
      if (observeOptions.render ?? options.render ?? true) {
        for (let i = 0; i < data.length; i++) data[i] = (i * 31 + stepCount * 17 + seed * 5 + Math.round(position[i % 3] * 100)) & 255;
      }
      return {
        instruction: task.instruction,
        image: { width: size, height: size, data },
        camera: { name: 'agentview', width: size, height: size, intrinsics: [size, 0, size / 2, 0, size, size / 2, 0, 0, 1], worldToCamera: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1] },
        eePosition: [...position],
        eeQuaternion: [1, 0, 0, 0],
        proprio: [...position, 0, 0, 0, gripper],
        step: stepCount,
      };
    },
    step(action: Action): StepResult {
      if (action.length !== 7 || !action.every(Number.isFinite)) throw new Error('invalid action');
      for (let d = 0; d < 3; d++) position[d] += 0.1 * Math.max(-1, Math.min(1, action[d]));
      gripper = action[6] > 0 ? 0 : 0.08;
      stepCount++;
      const success = env.isSuccess();
      return { success, done: success || stepCount >= task.maxSteps };
    },
    isSuccess() {
      return Math.hypot(position[0] - target[0], position[1] - target[1], position[2] - target[2]) < SUCCESS_RADIUS;
    },
    close() {},
  };
  return env;
}
