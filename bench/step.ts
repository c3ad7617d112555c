// Policy-step latency of the bundled tiny-openvla checkpoint (image -> 7 action tokens -> action), per backend,
// measured in one run: median of N steps after warm-up, and the ratio to `ref`. bench/gemm.ts prints it too.
// Run: npx tsx bench/step.ts [--steps 30] [--model DIR]
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { readImageFile } from '../src/io/image.js';
import { OpenVla } from '../src/models/openvla.js';
import { availableBackends, getBackend, type BackendName } from '../src/tensor/backends/index.js';

const TINY_INPUT_IDS = [1, 40, 77, 300, 9, 123, 56, 201, 88, 14, 3];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Measures every available backend and prints one table with the speedup over ref. */
export function printStepLatency(modelDir = 'models/tiny-openvla', steps = 30): void {
  const image = readImageFile(`${modelDir}/image.png`);
  const rows: { backend: string; medianMs: number; visionMs: number; llmMs: number }[] = [];
  for (const name of availableBackends() as BackendName[]) {
    const model = OpenVla.load(modelDir, getBackend(name));
    for (let i = 0; i < 3; i++) model.predictAction({ image, inputIds: TINY_INPUT_IDS });
    const total: number[] = [];
    const vision: number[] = [];
    const llm: number[] = [];
    for (let i = 0; i < steps; i++) {
      const start = performance.now();
      const r = model.predictAction({ image, inputIds: TINY_INPUT_IDS });
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
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { steps: { type: 'string', default: '30' }, model: { type: 'string', default: 'models/tiny-openvla' } } });
  printStepLatency(values.model, Number(values.steps));
}
