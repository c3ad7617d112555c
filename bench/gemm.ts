// linear (x [M,K] · w [N,K]ᵀ) throughput of the native backend next to ref, on OpenVLA-7B's Llama shapes, measured in
// one run. M=1 is a decode step (GEMV, memory-bound); M=290 is the prefill of ~256 visual + ~34 text tokens
// (compute-bound). Then the quantized linears (W8A8, W4A8 per channel and group 128, W4A16) against our bf16 in the
// same run, with M=1 as a share of the measured memory bandwidth. Ends with the tiny-openvla policy-step latency per
// backend (bench/step.ts).
// Run: npx tsx bench/gemm.ts [--quick] [--quant-only]
import type { Backend, WeightTensor } from '../src/tensor/backend.js';
import { refBackend } from '../src/tensor/backends/ref.js';
import { nativeBackend, nativeInfo, nativeLoadError } from '../src/tensor/backends/native.js';
import { f32ToBf16 } from '../src/tensor/dtype.js';
import { Tensor } from '../src/tensor/tensor.js';
import { printStepLatency } from './step.js';
import { benchActivations, benchWeights, CASES, makeCase, measureBandwidth, timeInterleaved } from './linear-cases.js';

const quick = process.argv.includes('--quick');
const quantOnly = process.argv.includes('--quant-only');

// (K, N): q/k/v/o projections, gate/up projections, down projection
const FULL_SHAPES: Array<[number, number]> = [
  [4096, 4096],
  [4096, 11008],
  [11008, 4096],
];
const SHAPES: Array<[number, number]> = quick ? [[4096, 4096]] : FULL_SHAPES;
const ROWS = quick ? [1, 64] : [1, 290];
const DTYPES = ['f32', 'bf16'] as const;

/** Repetitions: native is cheap to repeat; ref at M=290 takes seconds per call, so once is enough for a ratio. */
function reps(backend: 'native' | 'ref', m: number): number {
  if (backend === 'native') return quick ? 3 : m === 1 ? 15 : 5;
  return m === 1 ? (quick ? 2 : 3) : 1;
}

function randomWeight(n: number, k: number, dtype: 'f32' | 'bf16', seed: number): WeightTensor {
  let state = seed;
  const next = () => ((state = (state * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.05;
  if (dtype === 'f32') return Tensor.f32([n, k], Float32Array.from({ length: n * k }, next));
  const bits = new Uint16Array(n * k);
  for (let i = 0; i < bits.length; i++) bits[i] = f32ToBf16(next());
  return new Tensor('bf16', [n, k], bits);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median GFLOP/s of `count` calls (after one warm-up call for native). */
function measure(backend: Backend, x: Tensor<'f32'>, w: WeightTensor, count: number, warmUp: boolean): number {
  const flops = 2 * x.shape[0] * w.shape[0] * w.shape[1];
  if (warmUp) backend.linear(x, w);
  const times: number[] = [];
  for (let r = 0; r < count; r++) {
    const start = performance.now();
    backend.linear(x, w);
    times.push((performance.now() - start) / 1e3);
  }
  return flops / median(times) / 1e9;
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  console.log('');
}

/** Quantized linears vs our bf16 (same run, interleaved), M=1 also as a share of the memory bandwidth. */
function quantTable(): void {
  const backend = nativeBackend!;
  const bandwidth = measureBandwidth();
  console.log(`quantized linear (native, isa ${nativeInfo()!.isa}); memory bandwidth (256 MiB stream read) ${(bandwidth / 1e9).toFixed(1)} GB/s`);
  console.log('GOP/s = 2·M·K·N / median time, activation quantization included; vs bf16 = our bf16 time / this time;');
  console.log('M=1: weight bytes / time as a share of that bandwidth\n');
  const header = ['case', 'M', 'K', 'N', 'GOP/s', 'vs bf16', 'weight GB/s', 'of bandwidth'];
  const rows: string[][] = [];
  for (const [k, n] of SHAPES) {
    const w = benchWeights(n, k, k * 31 + n);
    for (const m of ROWS) {
      const x = benchActivations(m, k);
      const cases = CASES.map((name) => makeCase(backend, name, x, w, n, k));
      const seconds = timeInterleaved(cases.map((c) => c.run), quick ? 3 : m === 1 ? 15 : 5);
      const bf16 = seconds[CASES.indexOf('bf16')];
      cases.forEach((c, i) => {
        const gbs = c.weightBytes / seconds[i] / 1e9;
        rows.push([c.name, `${m}`, `${k}`, `${n}`, ((2 * m * k * n) / seconds[i] / 1e9).toFixed(1), `${(bf16 / seconds[i]).toFixed(2)}x`,
          m === 1 ? gbs.toFixed(1) : '', m === 1 ? `${((100 * gbs * 1e9) / bandwidth).toFixed(0)}%` : '']);
      });
      console.error(`  measured quantized M=${m} K=${k} N=${n}`);
    }
  }
  printTable(header, rows);
}

function main(): void {
  if (!nativeBackend) {
    console.error(`bench/gemm: the native addon is not built (${nativeLoadError()}). Run \`npm rebuild\` first.`);
    process.exit(1);
  }
  if (quantOnly) {
    quantTable();
    return;
  }
  const info = nativeInfo()!;
  console.log(`native linear vs ref — isa ${info.isa}, ${info.threads} threads${quick ? ' (--quick)' : ''}`);
  console.log('GFLOP/s = 2·M·K·N / median time; native: median of several calls after a warm-up; ref: fewer calls\n');
  const header = ['weights', 'M', 'K', 'N', 'native GFLOP/s', 'ref GFLOP/s', 'native/ref'];
  const rows: string[][] = [];
  for (const dtype of DTYPES) {
    for (const [k, n] of SHAPES) {
      const w = randomWeight(n, k, dtype, k * 31 + n);
      for (const m of ROWS) {
        const x = Tensor.f32([m, k], Float32Array.from({ length: m * k }, (_, i) => Math.sin(i)));
        const native = measure(nativeBackend, x, w, reps('native', m), true);
        const ref = measure(refBackend, x, w, reps('ref', m), false);
        rows.push([dtype, `${m}`, `${k}`, `${n}`, native.toFixed(2), ref.toFixed(3), `${(native / ref).toFixed(1)}x`]);
        console.error(`  measured ${dtype} M=${m} K=${k} N=${n}`);
      }
    }
  }
  printTable(header, rows);
  quantTable();
  printStepLatency('models/tiny-openvla', quick ? 10 : 30);
}

main();
