// The vision towers and projector with weights as stored against the same weights prepacked (Backend.prepack, what
// OpenVla.load does by default) with f32 activations and, for bf16 weights on a CPU with AVX512-BF16, with bf16
// activations (OpenVlaLoadOptions.visionBf16, the default there), in one process, interleaved: median ms of the
// image -> projected patches part of a step, the ratios, and how far the bf16-activation output is from the f32 one.
// Run: npx tsx bench/vision-prepack.ts --model DIR [--reps 7]
import { parseArgs } from 'node:util';
import { OpenVla } from '../src/models/openvla.js';
import { getBackend } from '../src/tensor/backends/index.js';
import { nativeInfo } from '../src/tensor/backends/native.js';
import { median } from './linear-cases.js';

const { values } = parseArgs({ options: { model: { type: 'string', default: 'models/tabletop-policy' }, reps: { type: 'string', default: '7' } } });
const reps = Number(values.reps);
const backend = getBackend('native');
const plain = OpenVla.load(values.model!, backend, { prepack: false });
const packed = plain.withPrepackedVision();
const dot = plain.withPrepackedVision({ bf16Activations: true });
const side = plain.backbones[0].config.imageSize;
const pixels = Float32Array.from({ length: 3 * plain.backbones.length * side * side }, (_, i) => Math.sin(i * 0.37));
const run = (m: OpenVla) => m.projector.forward(m.visionPatches(pixels));
const models = [plain, packed, dot];
const outputs = models.map(run);
const times: number[][] = models.map(() => []);
for (let r = 0; r < reps; r++) {
  models.forEach((m, i) => {
    const start = performance.now();
    run(m);
    times[i].push(performance.now() - start);
  });
}
const [a, b, c] = times.map(median);
const f32 = outputs[1].data, bf = outputs[2].data;
let dotProduct = 0, nf = 0, nb = 0, worst = 0, rms = 0;
for (let i = 0; i < f32.length; i++) {
  dotProduct += f32[i] * bf[i];
  nf += f32[i] * f32[i];
  nb += bf[i] * bf[i];
  worst = Math.max(worst, Math.abs(f32[i] - bf[i]));
}
rms = Math.sqrt(nf / f32.length);
const usesDot = dot.projector.layers.some(([w]) => (w as { format?: string }).format === 'bf16-dot');
console.log(`${values.model}: vision + projector, native ${nativeInfo()?.isa}, median of ${reps} interleaved`);
console.log(`  as stored ${a.toFixed(1)} ms, prepacked ${b.toFixed(1)} ms (${(a / b).toFixed(2)}x), prepacked with bf16 activations ${c.toFixed(1)} ms (${(a / c).toFixed(2)}x; ${(b / c).toFixed(2)}x over prepacked)${usesDot ? '' : ' [no bf16 dot-product kernel here: same as prepacked]'}`);
console.log(`  bf16 activations vs f32: cosine ${(dotProduct / Math.sqrt(nf * nb)).toFixed(6)}, max |diff| ${worst.toExponential(2)} (output rms ${rms.toExponential(2)})`);
