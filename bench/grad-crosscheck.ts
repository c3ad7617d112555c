// Native against ref gradients at a real checkpoint's size: one behaviour-cloning step of a trained (or fresh) run on
// random pixels and a full-length prompt, every parameter's gradient compared as max |native - ref| / max |ref|.
// The PyTorch fixture (test/train/parity.test.ts) covers a 34-token sequence; this covers the mini preset's ~100
// tokens and 64 patches, where tiled kernels take their other paths.
// Run: npx tsx bench/grad-crosscheck.ts --model DIR
import { parseArgs } from 'node:util';
import { getBackend } from '../src/tensor/backends/index.js';
import { getGradBackend } from '../src/tensor/backends/grad-index.js';
import { TrainableOpenVla, trainingStep, type TrainSample } from '../src/train/model.js';
import { mulberry32 } from '../src/random.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, prompt: { type: 'string', default: '30' } } });
if (!values.model) throw new Error('usage: grad-crosscheck.ts --model DIR [--prompt TOKENS]');
const load = (name: 'ref' | 'native') => TrainableOpenVla.load(values.model!, getBackend(name), getGradBackend(name));
const ref = load('ref');
const native = load('native');
const size = ref.vits[0].config.imageSize;
const rand = mulberry32(7);
const vocab = ref.llm.config.vocabSize;
const T = Number(values.prompt);
const samples: TrainSample[] = [0, 1].map(() => ({
  pixelValues: Float32Array.from({ length: 6 * size * size }, () => rand() * 4 - 2),
  inputIds: Int32Array.from({ length: T + 8 }, (_, i) => (i === 0 ? 1 : 3 + Math.floor(rand() * (vocab - 80)))),
  targets: new Int32Array(0),
}));
for (const s of samples) s.targets = s.inputIds.slice(-8);
const a = trainingStep(ref, samples);
const b = trainingStep(native, samples);
console.log(`loss ref ${a.loss.toFixed(6)} native ${b.loss.toFixed(6)}`);
const rows: [string, number][] = [];
for (const name of a.grads.names()) {
  const r = a.grads.get(name)!;
  const n = b.grads.get(name)!;
  let scale = 0, err = 0;
  for (let i = 0; i < r.length; i++) { scale = Math.max(scale, Math.abs(r[i])); err = Math.max(err, Math.abs(r[i] - n[i])); }
  rows.push([name, err / (scale || 1)]);
}
rows.sort((x, y) => y[1] - x[1]);
for (const [name, e] of rows.slice(0, 15)) console.log(`${e.toExponential(2)}  ${name}`);
