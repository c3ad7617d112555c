// The vision towers and projector with weights as stored against the same weights prepacked (Backend.prepack, what
// OpenVla.load does by default), in one process, interleaved: median ms of the image -> projected patches part of
// a step, and the ratio. Run: npx tsx bench/vision-prepack.ts --model DIR [--reps 7]
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
const side = plain.backbones[0].config.imageSize;
const pixels = Float32Array.from({ length: 3 * plain.backbones.length * side * side }, (_, i) => Math.sin(i * 0.37));
const run = (m: OpenVla) => m.projector.forward(m.visionPatches(pixels));
run(plain);
run(packed);
const times: [number[], number[]] = [[], []];
for (let r = 0; r < reps; r++) {
  [plain, packed].forEach((m, i) => {
    const start = performance.now();
    run(m);
    times[i].push(performance.now() - start);
  });
}
const [a, b] = times.map(median);
console.log(`${values.model}: vision + projector, native ${nativeInfo()?.isa}, median of ${reps} interleaved`);
console.log(`  as stored ${a.toFixed(1)} ms, prepacked ${b.toFixed(1)} ms, speedup ${(a / b).toFixed(2)}x`);
