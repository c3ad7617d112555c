// Robot context: the end effector projected with the testbed's calibrated camera lands on the gripper the renderer
// draws (within one patch), on frames from several tasks and arm poses; camera files load as the testbed writes
// them, and bad ones fail with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { UserError } from '../../src/errors.js';
import { eefImagePoint, patchAt, projectToPixel, readCameraFile, squareGrid } from '../../src/prune/index.js';
import { projectPoints } from '../../src/sim/camera.js';
import { createEnv } from '../../src/sim/env.js';
import { createExpert } from '../../src/sim/experts.js';
import { geomsFromMujoco, renderFrame } from '../../src/sim/render.js';
import { EXACT } from '../tolerances.js';

const GRIPPER_BODIES = ['hand', 'left_finger', 'right_finger'];
const TASKS = ['spatial-left-cube-to-plate', 'object-green-cylinder-to-basket', 'goal-push-red-cube-to-zone', 'long-both-cubes-to-basket'];

test('the projected end effector lies within one patch of the gripper the renderer draws', async () => {
  for (const [i, taskId] of TASKS.entries()) {
    const env = await createEnv(taskId, i, { render: false });
    try {
      const expert = createExpert(env);
      for (const steps of [0, 25]) {
        for (let s = 0; s < steps; s++) env.step(await expert.act(env.observe({ render: false })));
        const observation = env.observe({ render: false });
        const { camera, eePosition } = observation;
        const { mujoco, model, data } = env;
        const gripperBodies = new Set(GRIPPER_BODIES.map((name) => mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY.value, name)));
        const bodyOf = model.geom_bodyid as ArrayLike<number>;
        const geoms = geomsFromMujoco(model, data);
        const frame = renderFrame(geoms, camera);
        const pixel = projectToPixel(camera, eePosition)!;
        const patchPx = camera.width / 16; // 224 px, 16 x 16 patches
        let nearest = Infinity;
        let gripperPixels = 0;
        for (let p = 0; p < frame.geomIndex.length; p++) {
          const g = frame.geomIndex[p];
          if (g < 0 || !gripperBodies.has(bodyOf[geoms[g].geomId!])) continue;
          gripperPixels++;
          nearest = Math.min(nearest, Math.hypot((p % camera.width) + 0.5 - pixel[0], Math.floor(p / camera.width) + 0.5 - pixel[1]));
        }
        const where = `${taskId} after ${steps} steps`;
        assert.ok(gripperPixels > 20, `${where}: the gripper is barely visible (${gripperPixels} px)`);
        assert.ok(nearest <= patchPx, `${where}: projected end effector ${pixel.map((v) => v.toFixed(1))} is ${nearest.toFixed(1)} px from the gripper`);
        // the same numbers as the testbed's own projection
        const [reference] = projectPoints(camera, [eePosition]);
        assert.ok(Math.abs(reference.u - pixel[0]) < EXACT && Math.abs(reference.v - pixel[1]) < EXACT);
        const point = eefImagePoint({ eef: eePosition as [number, number, number], camera }, { width: 1, height: 1 })!;
        assert.equal(patchAt(squareGrid(256), point), Math.floor(pixel[1] / patchPx) * 16 + Math.floor(pixel[0] / patchPx));
      }
    } finally {
      env.close();
    }
  }
});

test('an end-effector pixel is relative to the input image; behind the camera there is none', () => {
  assert.deepEqual(eefImagePoint({ eefPixel: [320, 120] }, { width: 640, height: 480 }), { x: 0.5, y: 0.25 });
  const camera = { width: 100, height: 100, intrinsics: [50, 0, 50, 0, 50, 50, 0, 0, 1], worldToCamera: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] };
  assert.deepEqual(eefImagePoint({ eef: [0, 0, 2], camera }, { width: 1, height: 1 }), { x: 0.5, y: 0.5 });
  assert.equal(eefImagePoint({ eef: [0, 0, -1], camera }, { width: 1, height: 1 }), null);
});

test('camera files: a CameraParams JSON or an episode JSON holding one; unreadable ones are one-line user errors', () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-camera-'));
  const camera = { name: 'agentview', width: 224, height: 224, intrinsics: [270, 0, 112, 0, 270, 112, 0, 0, 1], worldToCamera: [0, -1, 0, 0, 0, 0, -1, 0.5, 1, 0, 0, 0.6, 0, 0, 0, 1] };
  fs.writeFileSync(nodePath.join(dir, 'camera.json'), JSON.stringify(camera));
  fs.writeFileSync(nodePath.join(dir, 'episode.json'), JSON.stringify({ task_id: 'x', camera }));
  assert.deepEqual(readCameraFile(nodePath.join(dir, 'camera.json')), camera);
  assert.deepEqual(readCameraFile(nodePath.join(dir, 'episode.json')), camera);
  fs.writeFileSync(nodePath.join(dir, 'bad.json'), '{"width": 224');
  fs.writeFileSync(nodePath.join(dir, 'short.json'), JSON.stringify({ ...camera, intrinsics: [1, 2, 3] }));
  for (const [file, pattern] of [['missing.json', /cannot read camera file/], ['bad.json', /cannot read camera file/], ['short.json', /intrinsics must be 9 numbers/]] as const) {
    assert.throws(() => readCameraFile(nodePath.join(dir, file)), (e: Error) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n'));
  }
  fs.rmSync(dir, { recursive: true });
});
