// Policy-step latency of the bundled tiny-openvla checkpoint (image -> 7 action tokens -> action), per backend,
// measured in one run: median of N steps after warm-up, and the ratio to `ref`.
// Run: npx tsx bench/step.ts [--steps 30] [--model DIR]
import { parseArgs } from 'node:util';
import { readImageFile } from '../src/io/image.js';
import { OpenVla } from '../src/models/openvla.js';
import { availableBackends, getBackend, type BackendName } from '../src/tensor/backends/index.js';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '30' }, model: { type: 'string', default: 'models/tiny-openvla' } } });
const steps = Number(values.steps);
const image = readImageFile(`${values.model}/image.png`);
const inputIds = [1, 40, 77, 300, 9, 123, 56, 201, 88, 14, 3];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const rows: { backend: string; medianMs: number; visionMs: number; llmMs: number }[] = [];
for (const name of availableBackends() as BackendName[]) {
  const model = OpenVla.load(values.model!, getBackend(name));
  for (let i = 0; i < 3; i++) model.predictAction({ image, inputIds });
  const total: number[] = [];
  const vision: number[] = [];
  const llm: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    const r = model.predictAction({ image, inputIds });
    total.push(performance.now() - start);
    vision.push(r.timingsMs.vision);
    llm.push(r.timingsMs.llm);
  }
  rows.push({ backend: name, medianMs: median(total), visionMs: median(vision), llmMs: median(llm) });
}
const refMs = rows.find((r) => r.backend === 'ref')!.medianMs;
console.log(`tiny-openvla policy step (preprocess + vision + projector + 7 greedy tokens), median of ${steps}:`);
console.log('backend   step ms   vision ms   llm ms   speedup vs ref');
for (const r of rows) {
  console.log(`${r.backend.padEnd(8)} ${r.medianMs.toFixed(2).padStart(8)} ${r.visionMs.toFixed(2).padStart(11)} ${r.llmMs.toFixed(2).padStart(8)} ${(refMs / r.medianMs).toFixed(2).padStart(12)}x`);
}
