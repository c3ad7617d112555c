// `sqap-vla demo`: base and the SQAP variant side by side on one episode, as an animated GIF.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';

const BUNDLED_POLICY = fileURLToPath(new URL('../../models/tabletop-policy', import.meta.url));
const DEFAULT_TASK = 'spatial-left-cube-to-plate';

const HELP = `usage: sqap-vla demo [--task ID] [--seed S] [--out DIR] [--model DIR] [--variant V] [--json]

Runs one episode with the checkpoint as stored (base) and one with the SQAP configuration (w4a4+had+sqap@0.5, or
the best accelerated variant this build can load), and writes them side by side as an animated GIF with the kept
patches (dropped ones darkened, the protected ring in yellow) and each step's measured policy time.
  --task ID       task (default ${DEFAULT_TASK}); see 'sqap-vla sim tasks'
  --seed S        scene seed (default 0)
  --out DIR       where demo.gif, demo-frame.png and demo.json go (default ./sqap-demo)
  --model DIR     checkpoint (default the bundled models/tabletop-policy)
  --variant V     compare base with this variant instead of the best available
  --max-steps N   stop each episode after N steps (a quicker look)
  --image-size PX camera side (default the size the checkpoint was trained on, else the testbed's 224)
  --backend NAME  auto (default), ref, native
  --json          print {"gif", "frame", "panels":[{variant, success, steps, step_ms}]} last`;

export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      task: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      model: { type: 'string' },
      variant: { type: 'string' },
      'max-steps': { type: 'string' },
      'image-size': { type: 'string' },
      backend: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const model = values.model !== undefined ? resolve(values.model) : BUNDLED_POLICY;
  if (!existsSync(model)) {
    throw new UserError(values.model !== undefined ? `model directory not found: ${values.model}` : `the bundled policy ${model} is not in this build; pass --model DIR.`);
  }
  const { listTasks } = await import('../sim/tasks.js');
  const { selectTasks, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE } = await import('./sim.js');
  const [task] = selectTasks(listTasks(), [values.task ?? DEFAULT_TASK]);
  const integer = (value: string | undefined, flag: string, minimum: number) => {
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value) || Number(value) < minimum) throw new UserError(`--${flag} must be an integer >= ${minimum}, got '${value}'.`);
    return Number(value);
  };
  const seed = integer(values.seed, 'seed', 0) ?? 0;
  const maxSteps = integer(values['max-steps'], 'max-steps', 1);
  const { closedLoopImageSize } = await import('./camera-size.js');
  const imageSize = closedLoopImageSize(integer(values['image-size'], 'image-size', MIN_IMAGE_SIZE), model, { min: MIN_IMAGE_SIZE, max: MAX_IMAGE_SIZE });
  const { parseBackendName } = await import('./act.js');
  const { parseVariant } = await import('../variant.js');
  const { createEnv } = await import('../sim/env.js');
  const { runDemo } = await import('../eval/demo.js');
  const result = await runDemo({
    model,
    task,
    seed,
    out: resolve(values.out ?? 'sqap-demo'),
    backend: parseBackendName(values.backend ?? 'auto'),
    ...(values.variant !== undefined ? { variant: parseVariant(values.variant).name } : {}),
    ...(maxSteps !== undefined ? { maxSteps } : {}),
    ...(imageSize !== undefined ? { imageSize } : {}),
    createEnv,
  });
  if (values.json) {
    console.log(
      JSON.stringify({
        gif: result.gif,
        frame: result.frame,
        task,
        seed,
        panels: result.panels.map((p) => ({ variant: p.variant, success: p.success, steps: p.steps, step_ms: p.stepMsMedian, ...(p.failureReason ? { failure_reason: p.failureReason } : {}) })),
        unavailable: result.unavailable.map((u) => u.variant),
      }),
    );
    return 0;
  }
  for (const panel of result.panels) {
    console.log(`${panel.variant}: ${panel.success ? 'success' : 'failure'} in ${panel.steps} steps, median policy step ${panel.stepMsMedian.toFixed(1)} ms${panel.failureReason ? ` (${panel.failureReason})` : ''}`);
  }
  if (result.panels.length < 2) console.log(`no accelerated variant is available in this build (${result.unavailable.map((u) => u.variant).join(', ')}): the GIF shows base alone`);
  console.log(`demo: ${result.gif}`);
  return 0;
}
