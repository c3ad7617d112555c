// Training throughput, measured in one run: (1) every GEMM shape of a mini-preset training step at batch B, forward
// linear vs the backward GEMMs (dX = dY·W and dW = dYᵀ·X) on the native backend, GFLOP/s and their ratio; (2) whole
// training steps (forward + backward, no optimizer) of the mini preset from a fresh initialization: step time,
// samples/s, and where the time goes (forward ops, backward GEMMs, other backward ops) with the achieved GFLOP/s of
// the forward and backward GEMMs inside the real step. Medians of repeated runs.
// Run: npx tsx bench/train-step.ts [--batch 16] [--steps 5] [--preset mini] [--backend native|ref]
import type { Backend } from '../src/tensor/backend.js';
import type { GradBackend } from '../src/tensor/grad-backend.js';
import { getBackend } from '../src/tensor/backends/index.js';
import { getGradBackend } from '../src/tensor/backends/grad-index.js';
import { nativeInfo } from '../src/tensor/backends/native.js';
import { Tensor } from '../src/tensor/tensor.js';
import { mapSource } from '../src/models/weights.js';
import { parseOpenVlaConfig } from '../src/models/openvla.js';
import { listTasks } from '../src/sim/tasks.js';
import { getPreset, initWeights, openVlaConfigJson, PATCH_SIZE } from '../src/train/presets.js';
import { buildVocabulary, ACTION_BINS } from '../src/train/vocabulary.js';
import { TrainableOpenVla, trainingStep, type TrainSample } from '../src/train/model.js';
import { mulberry32 } from '../src/random.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const batchSize = Number(flag('batch', '16'));
const steps = Number(flag('steps', '5'));
const presetName = flag('preset', 'mini');
const backendName = flag('backend', 'native') as 'native' | 'ref';
const backend = getBackend(backendName);
const grad = getGradBackend(backendName);
const rng = mulberry32(7);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function random(shape: number[], scale = 1): Tensor<'f32'> {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = (2 * rng() - 1) * scale;
  return t;
}

const sizes = getPreset(presetName);
const vocab = buildVocabulary(listTasks().map((t) => t.instruction));
const config = parseOpenVlaConfig(openVlaConfigJson(sizes, vocab, {}, presetName), 'preset config');
const model = TrainableOpenVla.fromSource(mapSource(Object.fromEntries(initWeights(sizes, vocab.embeddingRows, 1))), config, backend, grad);
const tokensPerImage = (sizes.imageSize / PATCH_SIZE) ** 2;
const promptIds = 28; // BOS + the prompt template and instruction (docs/training.md: ~28)
const targets = 8;

// (1) GEMM shapes of one step: [name, M, K, N]
const B = batchSize;
const seqRows = B * (tokensPerImage + promptIds + targets - 1);
const visionWidth = sizes.vitWidths[0] + sizes.vitWidths[1];
const shapes: Array<[string, number, number, number]> = [];
sizes.vitWidths.forEach((d, b) => {
  const rows = B * (tokensPerImage + (b === 0 ? 5 : 0));
  shapes.push([`vit${b} patch`, B * tokensPerImage, 3 * PATCH_SIZE * PATCH_SIZE, d], [`vit${b} qkv`, rows, d, 3 * d], [`vit${b} proj`, rows, d, d],
    [`vit${b} fc1`, rows, d, sizes.vitMlp[b]], [`vit${b} fc2`, rows, sizes.vitMlp[b], d]);
});
shapes.push(['proj fc1', B * tokensPerImage, visionWidth, 4 * visionWidth], ['proj fc2', B * tokensPerImage, 4 * visionWidth, sizes.llmHidden]);
shapes.push(['llm q/k/v/o', seqRows, sizes.llmHidden, sizes.llmHidden], ['llm gate/up', seqRows, sizes.llmHidden, sizes.llmIntermediate],
  ['llm down', seqRows, sizes.llmIntermediate, sizes.llmHidden], ['lm_head', B * targets, sizes.llmHidden, vocab.embeddingRows]);

const info = nativeInfo();
console.log(`# training GEMMs, ${presetName} preset, batch ${B}, backend ${backend.name}/${grad.name}` +
  (info ? ` (isa ${info.isa}, ${info.threads} threads)` : ''));
// Two measures per call: wall time (median of interleaved reps) and the process's CPU time (user + system of all
// threads, summed over the reps). On a machine shared with other work, wall time includes waiting for a core; CPU
// time does not, so GFLOP per CPU-second compares forward and backward kernels stably (×threads = wall GFLOP/s on
// an idle machine).
console.log('shape            M     K     N | wall GFLOP/s: fwd  bwd(dX+dW)  dW  bwd/fwd | GFLOP per CPU-s: fwd  bwd  dW  bwd/fwd');
const ratios: number[] = [];
const cpuRatios: number[] = [];
for (const [name, m, k, n] of shapes) {
  const x = random([m, k]);
  const w = random([n, k], 0.05);
  const dy = random([m, n]);
  const flops = 2 * m * k * n;
  // the three measurements interleaved rep by rep, so a busy machine slows them alike
  const reps = backend.name === 'ref' ? 1 : 15;
  const wall = { fwd: [] as number[], both: [] as number[], dw: [] as number[] };
  const cpu = { fwd: 0, both: 0, dw: 0 };
  const run = (fn: () => void, kind: 'fwd' | 'both' | 'dw', warm: boolean) => {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    fn();
    const ms = performance.now() - start;
    const used = process.cpuUsage(cpuStart);
    if (warm) return;
    wall[kind].push(ms);
    cpu[kind] += (used.user + used.system) / 1000;
  };
  for (let r = 0; r <= reps; r++) {
    run(() => backend.linear(x, w), 'fwd', r === 0);
    run(() => grad.linearBackward(dy, x, w, { dx: true, bias: false }), 'both', r === 0);
    run(() => grad.linearBackward(dy, x, w, { dx: false, bias: false }), 'dw', r === 0);
  }
  const fwd = flops / median(wall.fwd) / 1e6;
  const both = (2 * flops) / median(wall.both) / 1e6;
  const dw = flops / median(wall.dw) / 1e6;
  const cpuFwd = (reps * flops) / cpu.fwd / 1e6;
  const cpuBoth = (reps * 2 * flops) / cpu.both / 1e6;
  const cpuDw = (reps * flops) / cpu.dw / 1e6;
  ratios.push(both / fwd);
  cpuRatios.push(cpuBoth / cpuFwd);
  const f = (v: number, width: number) => v.toFixed(1).padStart(width);
  console.log(`${name.padEnd(14)} ${String(m).padStart(5)} ${String(k).padStart(5)} ${String(n).padStart(5)} | ${f(fwd, 21)} ${f(both, 11)} ${f(dw, 5)} ${(both / fwd).toFixed(2).padStart(8)} | ${f(cpuFwd, 20)} ${f(cpuBoth, 4)} ${f(cpuDw, 4)} ${(cpuBoth / cpuFwd).toFixed(2).padStart(8)}`);
}
console.log(`median bwd/fwd ratio over shapes: wall GFLOP/s ${median(ratios).toFixed(2)}, GFLOP per CPU-second ${median(cpuRatios).toFixed(2)}`);

// attention of one segment (one image, one sequence), forward vs backward time, interleaved; backward does about
// twice the forward's work (dP, dQ, dK, dV against scores and P·V), so 2.0 is parity
console.log('\nattention (one segment)        T  heads  Dh  causal   fwd ms   bwd ms   bwd/fwd');
const segmentShapes: Array<[string, number, number, number, boolean]> = [
  ['vit0 (cls + registers)', tokensPerImage + 5, sizes.vitHeads[0], sizes.vitWidths[0] / sizes.vitHeads[0], false],
  ['llm sequence', tokensPerImage + promptIds + targets - 1, sizes.llmHeads, sizes.llmHidden / sizes.llmHeads, true],
];
for (const [name, t, heads, dh, causal] of segmentShapes) {
  const q = random([t, heads, dh]);
  const k = random([t, heads, dh]);
  const v = random([t, heads, dh]);
  const dOut = random([t, heads * dh]);
  const fwdMs: number[] = [];
  const bwdMs: number[] = [];
  for (let r = 0; r <= 15; r++) {
    let start = performance.now();
    backend.attention(q, k, v, { causal });
    fwdMs.push(performance.now() - start);
    start = performance.now();
    grad.attentionBackward(dOut, q, k, v, { causal });
    bwdMs.push(performance.now() - start);
  }
  fwdMs.shift();
  bwdMs.shift();
  const f = median(fwdMs);
  const b = median(bwdMs);
  console.log(`${name.padEnd(28)} ${String(t).padStart(4)} ${String(heads).padStart(6)} ${String(dh).padStart(3)}  ${String(causal).padEnd(6)} ${f.toFixed(3).padStart(8)} ${b.toFixed(3).padStart(8)} ${(b / f).toFixed(2).padStart(9)}`);
}

// (2) whole steps, with the time split by op
interface Tally {
  ms: number;
  flops: number;
}
const tallies = new Map<string, Tally>();
function timed<T extends object>(target: T, prefix: string, flopsOf: Record<string, (...args: any[]) => number>): T {
  return new Proxy(target, {
    get(obj, key, receiver) {
      const value = Reflect.get(obj, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const start = performance.now();
        const result = value.apply(obj, args);
        const name = `${prefix}.${String(key)}`;
        const tally = tallies.get(name) ?? { ms: 0, flops: 0 };
        tally.ms += performance.now() - start;
        tally.flops += flopsOf[String(key)]?.(...args) ?? 0;
        tallies.set(name, tally);
        return result;
      };
    },
  });
}
const gemmFlops = (x: Tensor, w: Tensor) => 2 * x.size * w.shape[0];
const timedModel = new TrainableOpenVla(model.config, model.params, model.vits, model.llm,
  timed(backend, 'fwd', { linear: gemmFlops }) as Backend,
  timed(grad, 'bwd', { linearBackward: (dy: Tensor, x: Tensor, w: Tensor, o: { dx: boolean }) => gemmFlops(x, w) * (o.dx ? 2 : 1) }) as GradBackend);

function randomBatch(): TrainSample[] {
  const plane = sizes.imageSize * sizes.imageSize;
  return Array.from({ length: B }, () => ({
    pixelValues: random([6 * plane]).data,
    inputIds: Int32Array.from({ length: promptIds + targets - 1 }, (_, i) => (i === 0 ? 1 : 3 + Math.floor(rng() * (vocab.realVocabSize - 3)))),
    targets: Int32Array.from({ length: targets }, (_, i) => (i === targets - 1 ? 2 : vocab.realVocabSize - 1 - Math.floor(rng() * ACTION_BINS))),
  }));
}

const stepTimes: number[] = [];
trainingStep(timedModel, randomBatch()); // warm-up
tallies.clear();
for (let s = 0; s < steps; s++) {
  const batch = randomBatch();
  const start = performance.now();
  trainingStep(timedModel, batch);
  stepTimes.push(performance.now() - start);
}
const stepMs = median(stepTimes);
const total = stepTimes.reduce((a, b) => a + b, 0);
const get = (name: string) => tallies.get(name) ?? { ms: 0, flops: 0 };
const fwdOps = [...tallies].filter(([k]) => k.startsWith('fwd.')).reduce((a, [, t]) => a + t.ms, 0);
const bwdOps = [...tallies].filter(([k]) => k.startsWith('bwd.')).reduce((a, [, t]) => a + t.ms, 0);
const fl = get('fwd.linear');
const bl = get('bwd.linearBackward');
console.log(`\n# ${presetName} training step, batch ${B}, ${steps} steps (forward + backward, no optimizer)`);
console.log(`step median ${stepMs.toFixed(0)} ms, ${(B / stepMs * 1000).toFixed(1)} samples/s`);
console.log(`time share: forward ops ${(100 * fwdOps / total).toFixed(0)}%, backward ops ${(100 * bwdOps / total).toFixed(0)}%, ` +
  `glue (packing, TS loops) ${(100 * (total - fwdOps - bwdOps) / total).toFixed(0)}%`);
console.log(`in-step GEMMs: forward ${(fl.flops / fl.ms / 1e6).toFixed(1)} GFLOP/s (${(100 * fl.ms / total).toFixed(0)}% of time), ` +
  `backward ${(bl.flops / bl.ms / 1e6).toFixed(1)} GFLOP/s (${(100 * bl.ms / total).toFixed(0)}% of time), ratio ${((bl.flops / bl.ms) / (fl.flops / fl.ms)).toFixed(2)}`);
const top = [...tallies].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10);
for (const [name, t] of top) console.log(`  ${name.padEnd(28)} ${(t.ms / steps).toFixed(1).padStart(8)} ms/step`);
