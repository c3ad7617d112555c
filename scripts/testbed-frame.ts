// Writes one agent-view frame of a testbed task with what the robot knows at that step, for `act --save-mask`
// figures: OUT/frame.png, OUT/camera.json (the calibrated camera, CameraParams), OUT/eef.json (end-effector world
// position from the robot's own state, and the instruction). The scripted expert drives the arm for --steps steps
// first so the gripper is somewhere interesting.
//   npx tsx scripts/testbed-frame.ts --task goal-red-cube-on-plate --seed 0 --steps 30 --out DIR
import fs from 'node:fs';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { writePng } from '../src/io/image.js';
import { createEnv } from '../src/sim/env.js';
import { createExpert } from '../src/sim/experts.js';

const { values } = parseArgs({
  options: { task: { type: 'string' }, seed: { type: 'string', default: '0' }, steps: { type: 'string', default: '0' }, out: { type: 'string' } },
});
if (!values.task || !values.out) throw new Error('usage: testbed-frame.ts --task ID [--seed S] [--steps N] --out DIR');
const env = await createEnv(values.task, Number(values.seed), { render: false });
try {
  const expert = createExpert(env);
  for (let i = 0; i < Number(values.steps); i++) env.step(await expert.act(env.observe({ render: false })));
  const observation = env.observe({ render: true });
  fs.mkdirSync(values.out, { recursive: true });
  writePng(nodePath.join(values.out, 'frame.png'), observation.image);
  fs.writeFileSync(nodePath.join(values.out, 'camera.json'), JSON.stringify(observation.camera, null, 1));
  const eef = { eef: observation.eePosition, instruction: observation.instruction, task: values.task, seed: Number(values.seed), steps: Number(values.steps) };
  fs.writeFileSync(nodePath.join(values.out, 'eef.json'), JSON.stringify(eef, null, 1));
  console.log(JSON.stringify(eef));
} finally {
  env.close();
}
