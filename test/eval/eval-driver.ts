// Runs a fake evaluation into argv[2] (for the resume test, which kills this process midway).
import { fileURLToPath } from 'node:url';
import { pathToFileURL } from 'node:url';
import { runEval } from '../../src/eval/run.js';

const out = process.argv[2];
const delayMs = Number(process.argv[3] ?? 0);
await runEval({
  out,
  source: { kind: 'module', module: fileURLToPath(new URL('./fake-eval-policy.ts', import.meta.url)), options: { delayMs } },
  variants: ['base', 'w4a4+sqap@0.5'],
  tasks: ['fake_reach_near', 'fake_reach_far'],
  episodes: 4,
  seed: 11,
  batch: 2,
  workers: 1,
  envModule: pathToFileURL(fileURLToPath(new URL('../sim/fake-env.ts', import.meta.url))).href,
});
