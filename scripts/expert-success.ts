// Scripted-expert success per task over N seeds, and simulator speed (no rendering, one thread).
//   npx tsx scripts/expert-success.ts [--episodes 50] [--tasks id,id] [--first-seed 0] [--clean]
// --approach funnel uses the funnel approach (src/sim/experts.ts). --clean turns the expert's noise and perturbations off. 'recovering' is the share of episodes in which the expert
// had to re-grasp or re-approach at least once. Exits non-zero when a task is below 95%.
import { parseArgs } from 'node:util';
import { createEnv } from '../src/sim/env.js';
import { createExpert } from '../src/sim/experts.js';
import { PHYSICS } from '../src/sim/scene.js';
import { getTask, listTasks } from '../src/sim/tasks.js';

const REQUIRED_SUCCESS = 0.95;

const { values } = parseArgs({
  options: {
    episodes: { type: 'string', default: '50' },
    tasks: { type: 'string' },
    'first-seed': { type: 'string', default: '0' },
    clean: { type: 'boolean', default: false },
    approach: { type: 'string', default: 'hover' },
  },
});
const episodes = Number(values.episodes);
const firstSeed = Number(values['first-seed']);
if (!(Number.isInteger(episodes) && episodes > 0)) throw new Error(`--episodes must be a positive integer, got ${values.episodes}.`);
const taskIds = values.tasks ? values.tasks.split(',').map((id) => getTask(id.trim()).id) : listTasks().map((t) => t.id);
const approach = values.approach === 'funnel' ? 'funnel' : values.approach === 'hover' ? 'hover' : undefined;
if (!approach) throw new Error(`--approach must be 'hover' or 'funnel', got ${values.approach}.`);
const expertOptions = { approach, ...(values.clean ? { actionNoise: 0, perturbationRate: 0, dropRate: 0 } : {}) } as const;

let totalSteps = 0;
let stepMs = 0;
let allPass = true;
const started = performance.now();
console.log(`expert success over ${episodes} seeds (${firstSeed}..${firstSeed + episodes - 1})${values.clean ? ', clean expert' : ''}`);
console.log('task'.padEnd(44) + 'success'.padStart(9) + 'rate'.padStart(8) + 'steps(mean)'.padStart(13) + 'steps(max)'.padStart(12) + 'limit'.padStart(7) + 'recovering'.padStart(12));
for (const id of taskIds) {
  let successes = 0;
  let steps = 0;
  let maxSteps = 0;
  let recovered = 0;
  const failures: string[] = [];
  for (let seed = firstSeed; seed < firstSeed + episodes; seed++) {
    const env = await createEnv(id, seed, { render: false });
    try {
      const expert = createExpert(env, seed, expertOptions);
      await expert.reset?.(id, seed);
      let result = { success: false, done: false };
      while (!result.done) {
        const action = await expert.act(env.observe({ render: false }));
        const t = performance.now();
        result = env.step(action);
        stepMs += performance.now() - t;
      }
      if (expert.recoveries > 0) recovered++;
      if (result.success) successes++;
      else failures.push(String(seed));
      steps += env.stepCount;
      maxSteps = Math.max(maxSteps, env.stepCount);
    } finally {
      env.close();
    }
  }
  totalSteps += steps;
  const rate = successes / episodes;
  if (rate < REQUIRED_SUCCESS) allPass = false;
  console.log(
    id.padEnd(44) +
      `${successes}/${episodes}`.padStart(9) +
      `${(100 * rate).toFixed(0)}%`.padStart(8) +
      (steps / episodes).toFixed(1).padStart(13) +
      String(maxSteps).padStart(12) +
      String(getTask(id).maxSteps).padStart(7) +
      `${((100 * recovered) / episodes).toFixed(0)}%`.padStart(12) +
      (failures.length ? `   failed seeds: ${failures.join(' ')}` : ''),
  );
}
const wallS = (performance.now() - started) / 1000;
const controlPerS = totalSteps / (stepMs / 1000);
console.log(
  `\nsimulator: ${controlPerS.toFixed(0)} control steps/s in env.step (${(stepMs / totalSteps).toFixed(3)} ms each, ` +
    `${PHYSICS.substeps} physics steps of ${PHYSICS.timestep * 1000} ms = ${(controlPerS * PHYSICS.substeps).toFixed(0)} physics steps/s); ` +
    `${(totalSteps / wallS).toFixed(0)} control steps/s end to end incl. env creation and the expert (${wallS.toFixed(1)} s)`,
);
if (!allPass) {
  console.log(`FAIL: at least one task is below ${100 * REQUIRED_SUCCESS}%`);
  process.exitCode = 1;
}
