// The MuJoCo tabletop env: task list, determinism, action validation, physical grasping, scripted experts.
// Rendering is off except in the one observation test. Run: npx tsx --test test/sim/env.test.ts
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { projectPoints } from '../../src/sim/camera.js';
import { createEnv, InvalidActionError, type SimEnv } from '../../src/sim/env.js';
import { createExpert } from '../../src/sim/experts.js';
import { SUITES, getTask, listTasks, sampleLayout } from '../../src/sim/tasks.js';
import type { Action } from '../../src/sim/types.js';

/** Expert seeds per task in the success test (the 50-seed rates come from scripts/expert-success.ts). */
const EXPERT_SEEDS = [0, 1, 2];
/** A cube counts as lifted when its centre is this far above its resting height. */
const LIFTED_M = 0.03;

const clip = (v: number) => Math.max(-1, Math.min(1, v));

/** Action moving the TCP towards `target` (P-control, as the expert does), gripper command `gripper`. */
function towards(env: SimEnv, target: number[], gripper: number): Action {
  const ee = env.privileged().eePosition;
  return [0, 1, 2].map((i) => clip((0.8 * (target[i] - ee[i])) / 0.05)).concat([0, 0, 0, gripper]);
}

function drive(env: SimEnv, target: number[], gripper: number, steps: number): void {
  for (let i = 0; i < steps; i++) env.step(towards(env, target, gripper));
}

/** Flattened ee positions and all object poses after each of `actions`. */
function trajectory(env: SimEnv, actions: Action[]): number[] {
  const out: number[] = [];
  for (const action of actions) {
    env.step(action);
    const state = env.privileged();
    out.push(...state.eePosition);
    for (const o of Object.values(state.objects)) out.push(...o.position, ...o.quaternion);
  }
  return out;
}

function fixedActions(n: number): Action[] {
  // a deterministic wiggle that moves down, sideways, turns and closes
  return Array.from({ length: n }, (_, t) => [
    0.3 * Math.sin(t / 3),
    0.3 * Math.cos(t / 4),
    -0.4,
    0.1 * Math.sin(t / 5),
    0,
    0.3,
    t > n / 2 ? 1 : -1,
  ]);
}

describe('task suite', () => {
  it('has at least 10 tasks in the four suites with kebab-case ids', () => {
    const tasks = listTasks();
    assert.ok(tasks.length >= 10);
    assert.equal(new Set(tasks.map((t) => t.id)).size, tasks.length);
    for (const suite of SUITES) assert.ok(tasks.some((t) => t.suite === suite), `suite ${suite} has tasks`);
    for (const t of tasks) {
      assert.match(t.id, /^[a-z0-9]+(-[a-z0-9]+)*$/);
      assert.ok(t.id.startsWith(`${t.suite}-`));
      assert.ok(t.maxSteps > 0 && t.instruction.length > 0);
    }
    assert.ok(getTask('long-both-cubes-to-basket').goals.length === 2);
  });

  it('names an unknown task in a clear error', () => {
    assert.throws(() => getTask('no-such-task'), /Unknown task 'no-such-task'.*spatial-left-cube-to-plate/);
  });

  it('samples the same layout for the same seed and different ones for different seeds', () => {
    const task = getTask('object-blue-cube-to-basket');
    assert.deepEqual(sampleLayout(task, 7), sampleLayout(task, 7));
    assert.notDeepEqual(sampleLayout(task, 7), sampleLayout(task, 8));
    const spatial = sampleLayout(getTask('spatial-left-cube-to-plate'), 3).scene.objects;
    const left = spatial.find((o) => o.name === 'red_cube_left')!;
    const right = spatial.find((o) => o.name === 'red_cube_right')!;
    assert.ok(left.position[1] < right.position[1], 'the left cube has the smaller y (image left)');
  });
});

describe('createEnv', () => {
  it('is deterministic: same task and seed give identical trajectories; other seeds differ', async () => {
    const actions = fixedActions(40);
    const run = async (seed: number) => {
      const env = await createEnv('goal-stack-blue-on-red', seed, { render: false });
      try {
        return trajectory(env, actions);
      } finally {
        env.close();
      }
    };
    const a = await run(11);
    const b = await run(11);
    const c = await run(12);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('rejects invalid actions with a clear error', async () => {
    const env = await createEnv('goal-red-cube-on-plate', 0, { render: false });
    try {
      const bad: [unknown, RegExp][] = [
        [[0, 0, 0, 0, 0, 0], /expected length 7, got length 6/],
        [[0, 0, 0, 0, 0, 0, 0, 0], /expected length 7, got length 8/],
        [[0, 0, NaN, 0, 0, 0, 0], /action\[2\] is NaN/],
        [[0, 0, 0, 0, 0, Infinity, 0], /action\[5\] is Infinity/],
        [[0, 0, 0, 0, '1', 0, 0], /action\[4\] is 1/],
        [undefined, /expected an array/],
      ];
      for (const [action, message] of bad) {
        assert.throws(() => env.step(action as Action), (error: unknown) => {
          assert.ok(error instanceof InvalidActionError && error instanceof TypeError);
          assert.match((error as Error).message, message);
          return true;
        });
      }
      assert.equal(env.stepCount, 0, 'rejected actions do not advance the episode');
      env.step([5, -5, 0, 0, 0, 0, 2]); // out of range is clipped, not an error
      assert.equal(env.stepCount, 1);
    } finally {
      env.close();
    }
  });

  it('observes instruction, proprio, cameras and a 224x224 agent-view image', async () => {
    const env = await createEnv('spatial-right-cube-to-plate', 0, { wristImage: true });
    try {
      const o = env.observe();
      assert.equal(o.instruction, getTask('spatial-right-cube-to-plate').instruction);
      assert.equal(o.image.width, 224);
      assert.equal(o.image.data.length, 224 * 224 * 3);
      assert.ok(o.image.data.some((v) => v !== 0));
      assert.equal(o.wristImage?.width, 224);
      assert.equal(o.camera.name, 'agentview');
      assert.equal(o.wristCamera?.name, 'wrist');
      assert.equal(o.proprio.length, 7);
      assert.deepEqual(o.proprio.slice(0, 3), o.eePosition);
      assert.ok(Math.abs(Math.hypot(...o.eeQuaternion) - 1) < 1e-9);
      assert.ok(Math.abs(o.proprio[6] - 0.09) < 1e-3, 'fingers start open');
      assert.equal(o.step, 0);
    } finally {
      env.close();
    }
  });

  it('puts the "left" cube on the left of the agent-view image', async () => {
    for (const seed of [0, 1, 2, 3]) {
      const env = await createEnv('spatial-left-cube-to-plate', seed, { render: false });
      try {
        const { objects } = env.privileged();
        const [left, right] = projectPoints(env.observe().camera, [objects.red_cube_left.position, objects.red_cube_right.position]);
        assert.ok(left.visible && right.visible);
        assert.ok(left.u < right.u, `seed ${seed}: left cube at u=${left.u}, right cube at u=${right.u}`);
      } finally {
        env.close();
      }
    }
  });

  it('throws after close, and close is idempotent', async () => {
    const env = await createEnv('goal-red-cube-on-plate', 0, { render: false });
    env.close();
    env.close();
    assert.throws(() => env.step([0, 0, 0, 0, 0, 0, 0]), /closed/);
  });
});

describe('grasping is physical (contacts and friction, no welds)', () => {
  it('closing on air holds nothing and moves no object', async () => {
    const env = await createEnv('goal-red-cube-on-plate', 0, { render: false });
    try {
      const before = env.privileged().objects;
      const ee = env.privileged().eePosition;
      drive(env, [ee[0], ee[1], 0.15], 1, 15);
      drive(env, [ee[0], ee[1], 0.25], 1, 10);
      const after = env.privileged();
      assert.ok(after.gripperOpening < 0.005, `fingers closed fully on air (opening ${after.gripperOpening})`);
      for (const [name, o] of Object.entries(after.objects)) {
        assert.ok(!o.touchingLeftPad && !o.touchingRightPad, `${name} not touched`);
        const d = Math.hypot(...o.position.map((v, i) => v - before[name].position[i]));
        assert.ok(d < 1e-3, `${name} did not move (${d} m)`);
      }
    } finally {
      env.close();
    }
  });

  it('a cube rises only when the closed fingers touch it', async () => {
    const env = await createEnv('goal-red-cube-on-plate', 0, { render: false });
    try {
      const cube = () => env.privileged().objects.red_cube;
      const rest = cube().position[2];
      const [x, y] = cube().position;
      const yaw = (() => {
        const [w, qx, qy, qz] = cube().quaternion;
        return Math.atan2(2 * (w * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz));
      })();
      // turn the open hand to the cube's faces above it, go down around it, and lift with the fingers open
      for (let i = 0; i < 20; i++) {
        const a = towards(env, [x, y, 0.12], -1);
        a[5] = clip((0.8 * (yaw - env.privileged().eeRollPitchYaw[2])) / 0.25);
        env.step(a);
      }
      drive(env, [x, y, rest], -1, 15);
      assert.ok(!cube().touchingLeftPad || !cube().touchingRightPad, 'open fingers do not squeeze the cube');
      drive(env, [x, y, 0.15], -1, 12);
      assert.ok(cube().position[2] < rest + 0.005, 'open fingers do not lift the cube');
      // now grasp: descend, close, lift
      drive(env, [x, y, rest], -1, 15);
      drive(env, [x, y, rest], 1, 6);
      assert.ok(cube().touchingLeftPad && cube().touchingRightPad, 'both pads touch the cube after closing');
      const opening = env.privileged().gripperOpening;
      assert.ok(Math.abs(opening - 0.04) < 0.004, `fingers stop at the cube's width (opening ${opening})`);
      drive(env, [x, y, 0.15], 1, 12);
      assert.ok(cube().position[2] > rest + LIFTED_M, `cube lifted to ${cube().position[2]}`);
      // open: it falls back to the table
      drive(env, [x, y, 0.15], -1, 15);
      assert.ok(cube().position[2] < rest + 0.01, 'released cube falls');
    } finally {
      env.close();
    }
  });
});

describe('scripted experts', () => {
  for (const task of listTasks()) {
    it(`succeed on ${task.id}`, async () => {
      for (const seed of EXPERT_SEEDS) {
        const env = await createEnv(task.id, seed, { render: false });
        try {
          const expert = createExpert(env);
          await expert.reset?.(task.id, seed);
          let result = { success: false, done: false };
          while (!result.done) {
            const action = await expert.act(env.observe({ render: false }));
            assert.equal(action.length, 7);
            assert.ok(action.every((v) => Number.isFinite(v) && v >= -1 && v <= 1));
            result = env.step(action);
          }
          assert.ok(result.success, `${task.id} seed ${seed} failed after ${env.stepCount} steps`);
          assert.ok(env.isSuccess());
        } finally {
          env.close();
        }
      }
    });
  }

  it('label the command before noise: equal to the action without noise, and the noise is what differs', async () => {
    const task = listTasks()[0];
    const rollout = async (options: Parameters<typeof createExpert>[2]) => {
      const env = await createEnv(task.id, 3, { render: false });
      try {
        const expert = createExpert(env, 3, options);
        await expert.reset?.(task.id, 3);
        const steps: { action: Action; label: Action }[] = [];
        for (let t = 0; t < 12; t++) {
          const action = await expert.act(env.observe({ render: false }));
          steps.push({ action, label: expert.label?.() as Action });
          env.step(action);
        }
        return steps;
      } finally {
        env.close();
      }
    };
    const quiet = await rollout({ actionNoise: 0, perturbationRate: 0, dropRate: 0 });
    for (const { action, label } of quiet) assert.deepEqual(label, action);
    const noisy = await rollout({ actionNoise: 0.05, perturbationRate: 0, dropRate: 0 });
    // the first step starts from the same state, so its label is the quiet expert's first command
    assert.deepEqual(noisy[0].label, quiet[0].action);
    const differs = noisy.filter(({ action, label }) => action.slice(0, 6).some((v, i) => Math.abs(v - label[i]) > 1e-6));
    assert.ok(differs.length >= 10, `noise changed only ${differs.length} of 12 actions`);
    for (const { action, label } of noisy) assert.equal(label[6], action[6]); // no drops: the gripper command is untouched
  });

  it("with approach 'funnel', succeed on every task", async () => {
    for (const task of listTasks()) {
      const env = await createEnv(task.id, 1, { render: false });
      try {
        const expert = createExpert(env, 1, { approach: 'funnel' });
        await expert.reset?.(task.id, 1);
        let result = { success: false, done: false };
        while (!result.done) {
          const action = await expert.act(env.observe({ render: false }));
          assert.ok(action.every((v) => Number.isFinite(v) && v >= -1 && v <= 1));
          result = env.step(action);
        }
        assert.ok(result.success, `${task.id} failed after ${env.stepCount} steps`);
      } finally {
        env.close();
      }
    }
  });

  it("with approach 'funnel', come down while centring: no stop at the hover height once centred, as 'hover' makes", async () => {
    const task = getTask('spatial-left-cube-to-plate');
    /** steps centred within 1 cm of the cube at HOVER_Z (0.12 m) +- 1 cm before the first close, and the height then */
    const approach = async (mode: 'hover' | 'funnel') => {
      const env = await createEnv(task.id, 1, { render: false });
      try {
        const expert = createExpert(env, 1, { approach: mode, actionNoise: 0, perturbationRate: 0, dropRate: 0 });
        await expert.reset?.(task.id, 1);
        let hoverStops = 0;
        for (let t = 0; t < 100; t++) {
          const state = env.privileged();
          const goal = state.goals[0];
          assert.equal(goal.kind, 'on');
          const o = state.objects[goal.object].position;
          const xyError = Math.hypot(o[0] - state.eePosition[0], o[1] - state.eePosition[1]);
          const action = await expert.act(env.observe({ render: false }));
          if (action[6] > 0) return { hoverStops, closedAbove: state.eePosition[2] - o[2], xyError };
          if (xyError < 0.01 && Math.abs(state.eePosition[2] - 0.12) < 0.01) hoverStops++;
          env.step(action);
        }
        throw new Error(`${mode}: no grasp in 100 steps`);
      } finally {
        env.close();
      }
    };
    const hover = await approach('hover');
    const funnel = await approach('funnel');
    assert.ok(hover.hoverStops >= 2, `the hover expert stopped centred at hover height ${hover.hoverStops} times`);
    assert.equal(funnel.hoverStops, 0);
    for (const r of [hover, funnel]) {
      assert.ok(r.closedAbove < 0.01 && r.xyError < 0.008, `closed ${r.closedAbove} m above, ${r.xyError} m off the cube`);
    }
  });

  it('reject an unknown approach', async () => {
    const env = await createEnv(listTasks()[0].id, 0, { render: false });
    try {
      assert.throws(() => createExpert(env, 0, { approach: 'dive' as never }), /approach must be 'hover' or 'funnel'/);
    } finally {
      env.close();
    }
  });

  it('refuses an env without privileged state', () => {
    const fake = { task: listTasks()[0], seed: 0 } as unknown as SimEnv;
    assert.throws(() => createExpert({ ...fake, privileged: undefined } as never), /privileged/);
  });
});
